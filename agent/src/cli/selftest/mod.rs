//! `corral doctor --selftest`: tries the bypass classes for real, as a process of the built-in
//! task `corral-selftest` run by the running daemon, and reports per probe whether this host
//! closes it (refused, and reported by an event where the backend reports) or not.

pub mod catalog;
pub mod fixtures;
pub mod ia32_abi;
pub mod probe;
mod probe_files;
mod probe_ia32;
pub mod report;
pub mod watch;

use std::{
    ffi::OsString,
    os::unix::process::ExitStatusExt,
    path::{Path, PathBuf},
    process::{Command, Stdio},
    time::{Duration, Instant},
};

use agent_common::Backend;

use crate::{
    loader::{Probe, guard_backend},
    policy::selftest_task::{SELFTEST_DIR, SELFTEST_TASK},
};
use catalog::{PROBES, ProbeSpec};

/// The hidden subcommand the probes run as.
pub const PROBE_COMMAND: &str = "__selftest-probe";

/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a refusal's event may take to arrive.
const EVENT_TIMEOUT: Duration = Duration::from_secs(5);

#[derive(Debug, thiserror::Error)]
pub enum SelftestError {
    #[error("cannot find this program's own path: {source}")]
    OwnPath { source: std::io::Error },
    #[error(transparent)]
    Fixture(#[from] fixtures::FixtureError),
    #[error(transparent)]
    Watch(#[from] watch::WatchError),
    #[error("the control probe (an allowed open of {}) did not succeed: {detail}; is the daemon running the same corral binary, with the built-in task `corral-selftest`?", path.display())]
    Control { path: PathBuf, detail: String },
}

/// What one probe found.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Status {
    /// Refused, with an event where the backend reports.
    Closed,
    /// The operation went through.
    Open,
    /// Refused, but the backend's event never came.
    NoEvent,
    /// Nothing on this host claims to close it.
    NotJudged,
    /// The kernel itself refused it before any backend could judge it (a socket family or
    /// protocol this host does not offer, for a backend that acts only after it succeeded).
    Unavailable,
    /// The probe proved nothing (it failed for another reason).
    Error,
}

impl Status {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Closed => "closed",
            Self::Open => "OPEN",
            Self::NoEvent => "NO EVENT",
            Self::NotJudged => "not judged on this backend",
            Self::Unavailable => "not available on this host",
            Self::Error => "ERROR",
        }
    }

    /// Whether this result breaks the host's claims.
    #[must_use]
    pub const fn fails(self) -> bool {
        matches!(self, Self::Open | Self::NoEvent | Self::Error)
    }
}

/// One line of the report.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub spec: ProbeSpec,
    pub backend: Option<Backend>,
    pub status: Status,
    pub detail: String,
}

/// What to run and against which daemon.
pub struct Options<'a> {
    pub socket: &'a Path,
    /// Probes replaced by an open of an allowed file (a deliberately weakened run, to show
    /// that the report can say OPEN).
    pub weaken: &'a [String],
}

/// Runs every probe; the outcomes in catalog order.
pub fn run(host: &Probe, options: &Options<'_>) -> Result<Vec<Outcome>, SelftestError> {
    let exe = std::env::current_exe().map_err(|source| SelftestError::OwnPath { source })?;
    let dir = PathBuf::from(SELFTEST_DIR);
    // The payload is a copy of this binary: present on every host, and `--version` exits 0.
    let fixtures = fixtures::prepare(&dir, &exe)?;
    let seen = watch::start(options.socket)?;
    let loader = crate::landlock::interpreter_of(&exe)
        .and_then(|p| std::fs::canonicalize(p).ok())
        .unwrap_or_default();
    let fill = |arg: &str| -> OsString {
        arg.replace("{dir}", &dir.display().to_string())
            .replace("{port}", &fixtures.port.to_string())
            .replace(
                "{port6}",
                &fixtures.port6.unwrap_or(fixtures.port).to_string(),
            )
            .replace("{pid}", &std::process::id().to_string())
            .replace("{loader}", &loader.display().to_string())
            .into()
    };
    let runner = Runner {
        exe: &exe,
        socket: options.socket,
    };
    let control = dir.join("allowed/plain");
    let (code, detail) = runner.probe(&["open".into(), control.clone().into()]);
    if code != Some(i32::from(probe::SUCCEEDED)) {
        return Err(SelftestError::Control {
            path: control,
            detail,
        });
    }
    let backends = host.backends();
    let guard = guard_backend(host.caps);
    let mut outcomes = Vec::new();
    for spec in PROBES {
        let backend = catalog::backend(spec, &backends, guard, host.landlock_abi);
        let Some(judge) = backend.filter(|_| catalog::judged(spec, backend)) else {
            outcomes.push(Outcome {
                spec: *spec,
                backend,
                status: Status::NotJudged,
                detail: String::new(),
            });
            continue;
        };
        let weak = options.weaken.iter().any(|w| w == spec.name);
        let args: Vec<OsString> = if weak {
            vec!["open".into(), dir.join("allowed/plain").into()]
        } else {
            spec.args.iter().map(|a| fill(a)).collect()
        };
        let from = seen.count();
        let (code, mut detail) = runner.probe(&args);
        let refused = code == Some(i32::from(probe::REFUSED))
            // The kill backend lets the operation start, then kills the process.
            || (judge == Backend::Kill && code.is_none());
        // The kill backend never makes a call fail: an error from a socket it would judge after
        // the fact is the kernel's own (a family or protocol this host lacks).
        let unavailable = judge == Backend::Kill
            && spec.judged_by == catalog::JudgedBy::SocketGuard
            && code
                .is_some_and(|c| c == i32::from(probe::REFUSED) || c == i32::from(probe::FAILED));
        let status = if code == Some(i32::from(probe::SUCCEEDED)) {
            Status::Open
        } else if unavailable {
            Status::Unavailable
        } else if !refused {
            Status::Error
        } else if !catalog::reported(spec, judge) {
            // The refusal is all there is to see: this backend reports no event for it.
            detail.push_str(" (no event: this backend does not report it)");
            Status::Closed
        } else if seen
            .wait_for(from, spec.op.as_str(), EVENT_TIMEOUT)
            .is_some()
        {
            Status::Closed
        } else {
            Status::NoEvent
        };
        outcomes.push(Outcome {
            spec: *spec,
            backend,
            status,
            detail,
        });
    }
    Ok(outcomes)
}

/// Starts probes under `corral run --task corral-selftest`.
struct Runner<'a> {
    exe: &'a Path,
    socket: &'a Path,
}

impl Runner<'_> {
    /// Runs one probe; its exit code (`None`: killed by a signal or timed out) and what it said
    /// on stderr.
    fn probe(&self, args: &[OsString]) -> (Option<i32>, String) {
        let mut cmd = Command::new(self.exe);
        cmd.arg("run")
            .arg("--socket")
            .arg(self.socket)
            .args(["--task", SELFTEST_TASK, "--accept-unenforced", "--"])
            .arg(self.exe)
            .arg(PROBE_COMMAND)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = match cmd.spawn() {
            Ok(c) => c,
            Err(e) => {
                return (
                    Some(-1),
                    format!("cannot start {}: {e}", self.exe.display()),
                );
            }
        };
        let started = Instant::now();
        let status = loop {
            match child.try_wait() {
                Ok(Some(status)) => break Some(status),
                Ok(None) if started.elapsed() < PROBE_TIMEOUT => {
                    std::thread::sleep(Duration::from_millis(20));
                }
                _ => {
                    let _ = child.kill();
                    let _ = child.wait();
                    break None;
                }
            }
        };
        let mut stderr = String::new();
        if let Some(mut pipe) = child.stderr.take() {
            let _ = std::io::Read::read_to_string(&mut pipe, &mut stderr);
        }
        let stderr = stderr.trim().replace('\n', "; ");
        match status {
            None => (Some(-1), format!("timed out after {PROBE_TIMEOUT:?}")),
            Some(s) => match (s.code(), s.signal()) {
                (Some(code), _) => (Some(code), stderr),
                (None, Some(sig)) => (None, format!("killed by signal {sig}")),
                (None, None) => (Some(-1), stderr),
            },
        }
    }
}

/// `corral doctor --selftest`'s exit code: 0 when every probe this host claims to close is
/// closed, 1 otherwise.
#[must_use]
pub fn exit_code(outcomes: &[Outcome]) -> u8 {
    u8::from(outcomes.iter().any(|o| o.status.fails()))
}
