//! `cargo xtask`: installs what Corral's builds and kernel tests need, and runs those tests,
//! natively and inside qemu VMs booting Debian's stock kernels (the only place BPF LSM loads).
mod apt;
mod bench;
mod binaries;
mod bpf_linker;
mod cargo;
mod command;
mod initramfs;
mod install;
mod kernels;
mod libtest;
#[cfg(test)]
mod manifest_tests;
mod newc;
mod paths;
mod run;
mod setup;
mod suite;
mod supervise;
mod test;
mod vm;
mod vm_modules;

use clap::{Parser, Subcommand};

use crate::kernels::Kernel;

/// Corral's developer tasks.
#[derive(Parser)]
#[command(name = "cargo xtask")]
struct Cli {
    #[command(subcommand)]
    task: Task,
}

#[derive(Subcommand)]
enum Task {
    /// Install rust-src, bpf-linker, qemu and busybox, and download the test kernels (idempotent).
    Setup,
    /// Run everything CI runs: fmt, clippy, unit tests, the native suite and the VM suites.
    Test(test::Args),
    /// Build `corral` and run its daemon on this machine with the repository's policies.
    Run {
        /// Extra arguments for `corral daemon`.
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<String>,
    },
    /// Install corral, its systemd unit, its configuration and the example policies.
    Install(install::Args),
    /// Boot a test VM with an interactive shell on its console (leave with `exit` or Ctrl-A x).
    VmShell {
        /// Kernel to boot.
        #[arg(long, value_enum, default_value_t = Kernel::V6_1)]
        kernel: Kernel,
    },
    /// Measure Corral's cost (issue 7) and regenerate BENCHMARKS.md.
    Bench(bench::Args),
}

fn main() {
    let cli = Cli::parse();
    let result = match cli.task {
        Task::Setup => setup::run(&Kernel::ALL).map(|_| true),
        // A failed suite is already reported; its summary must stay the last line printed.
        Task::Test(args) => test::run(&args),
        Task::Run { args } => run::daemon(&args).map(|()| true),
        Task::VmShell { kernel } => vm::shell(kernel).map(|()| true),
        Task::Bench(args) => bench::run(&args),
        Task::Install(args) => install::run(&args).map(|()| true),
    };
    match result {
        Ok(true) => {}
        Ok(false) => std::process::exit(1),
        Err(e) => {
            eprintln!("xtask: error: {e:#}");
            std::process::exit(1);
        }
    }
}
