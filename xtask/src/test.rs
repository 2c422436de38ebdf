//! `cargo xtask test`: what CI runs. Setup, fmt, clippy and unit tests fail fast; then the
//! kernel tests run natively and in one VM per kernel, and every suite is reported.
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::binaries::{self, Binaries};
use crate::kernels::{Image, Kernel};
use crate::suite::{self, Suite};
use crate::{command, initramfs, libtest, paths, setup, supervise, vm};

/// Deadline for the native suite and for the unit tests (`CORRAL_HOST_TIMEOUT`, seconds).
const DEFAULT_HOST_TIMEOUT_SECS: u64 = 900;

#[derive(clap::Args)]
pub struct Args {
    /// Boot only this kernel.
    #[arg(long, value_enum, conflicts_with = "no_vm")]
    kernel: Option<Kernel>,
    /// Boot only one kernel (6.1, the oldest we support) for a faster round.
    #[arg(long, conflicts_with_all = ["kernel", "no_vm"])]
    quick_vm: bool,
    /// Skip the VM suites (local iteration only: the BPF LSM hooks are then NOT tested).
    #[arg(long)]
    no_vm: bool,
    /// Passed to the native and VM test executables (e.g. a test name filter).
    #[arg(last = true)]
    libtest: Vec<String>,
}

impl Args {
    fn kernels(&self) -> Vec<Kernel> {
        match (self.no_vm, self.quick_vm, self.kernel) {
            (true, _, _) => Vec::new(),
            (_, true, _) => vec![Kernel::V6_1],
            (_, _, Some(kernel)) => vec![kernel],
            _ => Kernel::ALL.to_vec(),
        }
    }
}

/// Runs everything; `Ok(false)` if a suite failed (already reported).
pub fn run(args: &Args) -> Result<bool> {
    let started = Instant::now();
    let images = setup::run(&args.kernels())?;
    let out = paths::xtask_out()?;

    step(
        "formatting",
        Command::new(command::cargo()).args(["fmt", "--all", "--", "--check"]),
    )?;
    // agent-ebpf is `no_std`/`no_main` for the bpfel target and does not build for the host
    // (`unwinding panics are not supported without std`); agent's build.rs builds it for bpfel,
    // and `ebpf_clippy` lints it for bpfel.
    step(
        "clippy",
        Command::new(command::cargo()).args([
            "clippy",
            "--workspace",
            "--all-targets",
            "--exclude",
            "agent-ebpf",
            "--",
            "-D",
            "warnings",
        ]),
    )?;
    step("clippy agent-ebpf", &mut ebpf_clippy(&out))?;
    let unit = unit_tests(&out)?;
    if let Some(why) = &unit.failure {
        println!("{}", unit.summary_line());
        anyhow::bail!("unit tests failed: {why}");
    }

    let binaries = binaries::build()?;
    let mut suites = vec![native_suite(&binaries, &args.libtest, &out)?];
    suites.push(crate::bench::smoke_suite(&out));
    suites.extend(vm_suites(&binaries, &images, &args.libtest, &out)?);

    println!();
    println!("{}", unit.summary_line());
    for suite in &suites {
        println!("{}", suite.summary_line());
    }
    if args.no_vm {
        println!("!!! --no-vm: the VM suites did NOT run; the BPF LSM hooks were NOT tested !!!");
    }
    let passed: u64 = suites.iter().map(|s| s.counts.passed).sum();
    let failed: u64 = suites.iter().map(Suite::failed).sum();
    println!("total time {:.0} s", started.elapsed().as_secs_f64());
    println!("{passed} passed, {failed} failed");
    Ok(suites.iter().all(|s| s.failure.is_none()))
}

/// Clippy on agent-ebpf as agent's build.rs (aya-build) builds it: nightly, the bpfel target,
/// `-Z build-std=core`, `bpf_target_arch` set; its own target directory under `out`, so it never
/// waits on or invalidates the eBPF build inside agent's `OUT_DIR`.
fn ebpf_clippy(out: &Path) -> Command {
    let mut cmd = Command::new("cargo");
    cmd.args([
        "+nightly",
        "clippy",
        "--package",
        "agent-ebpf",
        "--bins",
        "--release",
    ])
    .args(["--target", "bpfel-unknown-none", "-Z", "build-std=core"])
    .arg("--target-dir")
    .arg(out.join("ebpf-clippy"))
    .args(["--", "-D", "warnings"])
    .env(
        "CARGO_ENCODED_RUSTFLAGS",
        "--cfg=bpf_target_arch=\"x86_64\"",
    );
    // The outer cargo's compiler would win over `+nightly` (as in aya-build).
    for key in ["RUSTC", "RUSTC_WORKSPACE_WRAPPER"] {
        cmd.env_remove(key);
    }
    cmd
}

/// Runs a fail-fast step in the repository.
fn step(what: &str, cmd: &mut Command) -> Result<()> {
    command::run(cmd.current_dir(paths::repo())).with_context(|| format!("{what} failed"))
}

fn host_timeout() -> Result<Duration> {
    match std::env::var("CORRAL_HOST_TIMEOUT") {
        Ok(v) => v
            .trim()
            .parse()
            .map(Duration::from_secs)
            .with_context(|| format!("CORRAL_HOST_TIMEOUT={v:?} is not a number of seconds")),
        Err(_) => Ok(Duration::from_secs(DEFAULT_HOST_TIMEOUT_SECS)),
    }
}

/// `cargo test` of everything but the eBPF crate and the kernel tests.
fn unit_tests(out: &Path) -> Result<Suite> {
    let log = out.join("unit.log");
    let mut cmd = Command::new(command::cargo());
    cmd.args([
        "test",
        "--workspace",
        "--exclude",
        "agent-ebpf",
        "--exclude",
        "corral-tests",
    ])
    .current_dir(paths::repo());
    let outcome = supervise::run(&mut cmd, "[unit] ", &log, host_timeout()?)?;
    let counts = libtest::summarize(&outcome.output);
    let mut problems = Vec::new();
    match outcome.status {
        None => problems.push("timed out (CORRAL_HOST_TIMEOUT)".to_owned()),
        Some(status) if !status.success() => problems.push(format!("cargo test exited {status}")),
        Some(_) => {}
    }
    if counts.failed > 0 {
        problems.push(format!("{} test(s) failed", counts.failed));
    }
    Ok(Suite::judge(
        "unit",
        counts,
        outcome.elapsed,
        &problems,
        &log,
    ))
}

/// The native test executables (`host`, `landlock`) on this machine, as root.
fn native_suite(binaries: &Binaries, test_args: &[String], out: &Path) -> Result<Suite> {
    // One log per executable (native-host.log, native-landlock.log); failures point at them all.
    let log = out.join("native-*.log");
    // SAFETY: geteuid has no preconditions and cannot fail.
    if unsafe { libc::geteuid() } != 0 {
        let why = "the native suite loads eBPF programs and must run as root".to_owned();
        return Ok(Suite::judge(
            "native",
            libtest::Counts::default(),
            Duration::ZERO,
            &[why],
            &log,
        ));
    }
    let timeout = host_timeout()?;
    let mut counts = libtest::Counts::default();
    let mut problems = Vec::new();
    let mut elapsed = Duration::ZERO;
    for (name, exe) in &binaries.native_tests {
        let mut cmd = Command::new(exe);
        cmd.arg("--test-threads=1")
            .args(test_args)
            .env("CORRAL_BIN", &binaries.corral)
            .env("CORRAL_PROBE", &binaries.probe)
            .env("CORRAL_POLICIES", paths::policies())
            .env("RUST_BACKTRACE", "1")
            .current_dir(paths::repo());
        let exe_log = out.join(format!("native-{name}.log"));
        let outcome = supervise::run(&mut cmd, &format!("[native {name}] "), &exe_log, timeout)?;
        counts += libtest::summarize(&outcome.output);
        elapsed += outcome.elapsed;
        match outcome.status {
            None => problems.push(format!(
                "{name} timed out after {} s (CORRAL_HOST_TIMEOUT) and was killed",
                timeout.as_secs()
            )),
            Some(status) if !status.success() => {
                problems.push(format!("{name} tests exited {status}"));
            }
            Some(_) => {}
        }
    }
    problems.extend(suite::count_problems(counts));
    Ok(Suite::judge("native", counts, elapsed, &problems, &log))
}

/// One VM per kernel image, all booting the same initramfs.
fn vm_suites(
    binaries: &Binaries,
    images: &[Image],
    test_args: &[String],
    out: &Path,
) -> Result<Vec<Suite>> {
    if images.is_empty() {
        return Ok(Vec::new());
    }
    let initrd = out.join("initramfs.cpio");
    let size = initramfs::build(&binaries.vm_contents(images), &initrd)?;
    println!("initramfs: {} ({} KiB)", initrd.display(), size / 1024);
    // Each TCG guest keeps one host core busy: boot them side by side when there are cores
    // for all of them (their consoles stay apart by prefix and log file).
    let cores = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    if cores < images.len() {
        return images
            .iter()
            .map(|image| vm::run_suite(image, &initrd, test_args, out))
            .collect();
    }
    std::thread::scope(|scope| {
        let running: Vec<_> = images
            .iter()
            .map(|image| scope.spawn(|| vm::run_suite(image, &initrd, test_args, out)))
            .collect();
        running
            .into_iter()
            .map(|vm| {
                vm.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a VM runner thread panicked")))
            })
            .collect()
    })
}
