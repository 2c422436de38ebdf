//! The `corral` command line.

mod client;
pub mod daemon_flags;
pub mod doctor;
pub mod events;
pub mod policy_check;
pub mod policy_mode;
pub mod run;
pub mod selftest;
pub mod status;
pub mod unload;

use std::path::PathBuf;

use clap::{Parser, Subcommand};

use crate::{
    daemon::protocol::DEFAULT_SOCKET,
    loader::{DEFAULT_PIN_DIR, VMLINUX_BTF},
};

/// Keeps AI agents inside the scope of their task, enforced in the kernel.
#[derive(Debug, Parser)]
#[command(name = "corral", version, about)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Debug, Subcommand)]
pub enum Command {
    /// Load the kernel programs and the task policies, then serve the control socket.
    Daemon {
        /// Directory of task policies (`*.yaml`, one task per file).
        #[arg(long, default_value = "/etc/corral/policies")]
        policies: PathBuf,
        /// Control socket path.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Where events go, one JSON object per line: a file path, or `-` for stdout.
        #[arg(long, default_value = "-")]
        events: PathBuf,
        /// Kernel BTF to read struct offsets from.
        #[arg(long, default_value = VMLINUX_BTF, hide = true)]
        btf: PathBuf,
        /// Configuration file (TOML); flags given explicitly win over it. Default:
        /// `$CORRAL_CONFIG`, else `/etc/corral/corral.toml` (which may be absent).
        #[arg(long)]
        config: Option<PathBuf>,
        /// Where programs and maps are pinned (on bpffs) so enforcement outlives the daemon.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
    },
    /// Remove everything a daemon pinned: programs detach, every confined process is released.
    /// Refused while a daemon answers on the socket.
    Unload {
        /// The pin directory to remove.
        #[arg(long, default_value = DEFAULT_PIN_DIR)]
        pin_dir: PathBuf,
        /// The daemon's control socket (checked to be dead).
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
    /// Run a command confined by a task: the daemon tags this process, then it execs CMD.
    Run {
        /// Task to confine the command with.
        #[arg(long)]
        task: String,
        /// Control socket path.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Run even if this host cannot enforce some of the task's operations (see `corral
        /// doctor`); those operations are then neither refused nor reported.
        #[arg(long)]
        accept_unenforced: bool,
        /// Lifetime of this task instance (`30m`, `2h`, `90s`): afterwards its processes are
        /// denied everything.
        #[arg(long, value_parser = humantime::parse_duration)]
        ttl: Option<std::time::Duration>,
        /// The command and its arguments.
        #[arg(required = true, last = true, value_name = "CMD")]
        command: Vec<std::ffi::OsString>,
    },
    /// Validate task policy files.
    Policy {
        #[command(subcommand)]
        command: PolicyCommand,
    },
    /// Show what this host can enforce per operation, and how to fix what it cannot.
    Doctor {
        /// Print JSON for machines.
        #[arg(long)]
        json: bool,
        /// Kernel BTF to read struct offsets from.
        #[arg(long, default_value = VMLINUX_BTF, hide = true)]
        btf: PathBuf,
        /// Try the bypass classes for real under the built-in task `corral-selftest` of the
        /// running daemon, and report per probe whether this host closes it (root only).
        #[arg(long)]
        selftest: bool,
        /// Control socket path (with --selftest).
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Swap these probes' denied target for an allowed file: a deliberately weakened run,
        /// which must be reported OPEN (for tests).
        #[arg(long, hide = true)]
        selftest_weaken: Vec<String>,
    },
    /// One probe of `corral doctor --selftest`, run confined by it.
    #[command(name = "__selftest-probe", hide = true)]
    SelftestProbe {
        #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
        args: Vec<std::ffi::OsString>,
    },
    /// Show attached hooks, loaded tasks, confined processes and counters.
    Status {
        /// Control socket path.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
        /// Print the raw JSON.
        #[arg(long)]
        json: bool,
    },
    /// Show the recent events the daemon kept; with --follow, keep showing new ones.
    Events {
        /// Keep streaming new events until interrupted.
        #[arg(long, short)]
        follow: bool,
        /// Only events of this task.
        #[arg(long)]
        task: Option<String>,
        /// Only events of this operation (repeat for several).
        #[arg(long, value_enum)]
        op: Vec<events::OpName>,
        /// Only events with this decision (repeat for several; `allowed` events exist only with
        /// `events.allowed` in corral.toml).
        #[arg(long, value_enum)]
        decision: Vec<events::DecisionName>,
        /// Print the raw JSON lines (drop notices included) instead of the aligned view.
        #[arg(long)]
        json: bool,
        /// Control socket path.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

#[derive(Debug, Subcommand)]
pub enum PolicyCommand {
    /// Check policy files; prints `file:line:column: message` per error.
    Check {
        #[arg(required = true)]
        files: Vec<PathBuf>,
    },
    /// Switch a loaded task between enforce and audit, for its running processes too (until its
    /// policy file changes). Root only.
    Mode {
        /// The task's name.
        task: String,
        #[arg(value_enum)]
        mode: crate::daemon::protocol::ModeName,
        /// Control socket path.
        #[arg(long, default_value = DEFAULT_SOCKET)]
        socket: PathBuf,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    fn parse(args: &[&str]) -> Result<Cli, clap::Error> {
        Cli::try_parse_from(std::iter::once("corral").chain(args.iter().copied()))
    }

    #[test]
    fn run_takes_the_command_after_double_dash() {
        let cli = parse(&[
            "run",
            "--task",
            "repo-coder",
            "--",
            "git",
            "status",
            "--short",
        ])
        .unwrap_or_else(|e| panic!("expected run to parse: {e}"));
        let Command::Run {
            task,
            socket,
            command,
            accept_unenforced,
            ttl,
        } = cli.command
        else {
            panic!("expected the run subcommand");
        };
        assert_eq!(task, "repo-coder");
        assert_eq!(socket, PathBuf::from(DEFAULT_SOCKET));
        assert_eq!(command, ["git", "status", "--short"]);
        assert!(
            !accept_unenforced,
            "accepting unenforced operations must be explicit"
        );
        assert_eq!(ttl, None, "no expiry unless asked");
        let with_ttl = parse(&["run", "--task", "t", "--ttl", "30m", "--", "true"])
            .unwrap_or_else(|e| panic!("expected --ttl 30m to parse: {e}"));
        let Command::Run { ttl, .. } = with_ttl.command else {
            panic!("expected the run subcommand");
        };
        assert_eq!(ttl, Some(std::time::Duration::from_secs(1800)));
    }

    #[test]
    fn run_requires_a_task_and_a_command() {
        assert!(parse(&["run", "--", "true"]).is_err(), "--task is required");
        assert!(
            parse(&["run", "--task", "x"]).is_err(),
            "a command is required"
        );
    }

    #[test]
    fn daemon_defaults() {
        let cli = parse(&["daemon"]).unwrap_or_else(|e| panic!("expected daemon to parse: {e}"));
        let Command::Daemon {
            policies,
            socket,
            events,
            ..
        } = cli.command
        else {
            panic!("expected the daemon subcommand");
        };
        assert_eq!(policies, PathBuf::from("/etc/corral/policies"));
        assert_eq!(socket, PathBuf::from("/run/corral/corral.sock"));
        assert_eq!(events, PathBuf::from("-"));
    }

    #[test]
    fn policy_check_needs_files() {
        assert!(
            parse(&["policy", "check"]).is_err(),
            "at least one file is required"
        );
        assert!(parse(&["policy", "check", "a.yaml", "b.yaml"]).is_ok());
    }
}
