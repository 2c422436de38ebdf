//! A `corral daemon` of its own for each test: fresh policy dir, socket and events file.

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use serde_json::Value;

use crate::env;
use crate::events::{self, has};
use crate::policy::Policy;
use crate::process::{self, Background, RunOutput};
use crate::scratch::Scratch;

/// How long the daemon may take to become ready (loading and verifying the eBPF programs under
/// software emulation is slow: a restarted daemon attaching 21 LSM programs while a confined
/// loop saturates the VM's one vCPU took about 70 s on the 6.1 VM).
pub const READY_TIMEOUT: Duration = Duration::from_secs(150);
/// How long an event may take to reach the events file.
pub const EVENT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long to keep watching for events that must NOT arrive (or for extra copies).
pub const SETTLE: Duration = Duration::from_secs(1);

/// `corral run`'s flag to run a task even where some of its operations are not enforced.
pub const ACCEPT_UNENFORCED: &str = "--accept-unenforced";

/// A daemon stopped by `Daemon::frozen`; continued when dropped.
pub struct Frozen<'a> {
    daemon: &'a Daemon,
}

impl Drop for Frozen<'_> {
    fn drop(&mut self) {
        // No assertion here: this also runs while a failed test unwinds.
        let _ = self.daemon.signal(libc::SIGCONT);
    }
}

/// Why a daemon did not become ready.
#[derive(Debug)]
pub struct StartFailure {
    /// Exit code, `None` if it was killed by a signal or had to be killed after `READY_TIMEOUT`.
    pub code: Option<i32>,
    /// True when it was still running at the deadline (and was killed).
    pub timed_out: bool,
    pub stderr: String,
    /// True when its socket path exists after it exited.
    pub socket_left: bool,
}

/// Options of a daemon start beyond its policies.
#[derive(Default)]
pub struct Launch<'a> {
    /// `(file name, YAML)` pairs written into the policy directory.
    pub policies: &'a [(&'a str, &'a str)],
    /// Socket path; default: `corral.sock` in the daemon's scratch directory. Tests that must
    /// name the socket in a policy choose it first.
    pub socket: Option<&'a Path>,
    /// Extra environment variables for the daemon.
    pub env: &'a [(&'a str, &'a str)],
    /// A policy directory prepared by the test (then `policies` is ignored).
    pub policy_dir: Option<&'a Path>,
    /// A pin directory shared with another daemon of the test (a restart); the test removes it.
    /// Default: one of this daemon's own, removed (`corral unload`) when it is dropped.
    pub pin_dir: Option<&'a Path>,
    /// Leave `--events` off the command line: the sinks come from `corral.toml` alone (then
    /// `Daemon::events` reads nothing; the test reads the files its configuration names).
    pub no_events_flag: bool,
}

/// A running `corral daemon`; SIGTERM, then SIGKILL, when dropped.
pub struct Daemon {
    child: Option<Child>,
    socket: PathBuf,
    events: PathBuf,
    stderr: PathBuf,
    dir: Scratch,
    pin_dir: PathBuf,
    /// Whether dropping the daemon removes its pins.
    owns_pins: bool,
}

impl Daemon {
    /// Starts a daemon with these `(file name, YAML)` policies and waits until
    /// `corral status` answers. Panics with the daemon's stderr if it exits or is not ready in
    /// `READY_TIMEOUT`.
    #[must_use]
    pub fn start(policies: &[(&str, &str)]) -> Self {
        Self::launch(&Launch {
            policies,
            ..Launch::default()
        })
    }

    /// `start` with policies built by `Policy`.
    #[must_use]
    pub fn with(policies: &[&Policy]) -> Self {
        Self::with_socket(policies, None)
    }

    /// `start` with policies built by `Policy` and, if given, this socket path.
    #[must_use]
    pub fn with_socket(policies: &[&Policy], socket: Option<&Path>) -> Self {
        let files: Vec<(String, String)> =
            policies.iter().map(|p| (p.file_name(), p.yaml())).collect();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, y)| (n.as_str(), y.as_str()))
            .collect();
        Self::launch(&Launch {
            policies: &refs,
            socket,
            ..Launch::default()
        })
    }

    /// Starts a daemon and reports how it failed instead of panicking.
    pub fn try_start(policies: &[(&str, &str)]) -> Result<Self, StartFailure> {
        Self::try_launch(&Launch {
            policies,
            ..Launch::default()
        })
    }

    /// `start` with the options of `launch`.
    #[must_use]
    pub fn launch(launch: &Launch) -> Self {
        Self::try_launch(launch).unwrap_or_else(|f| {
            panic!(
                "expected `corral daemon` to become ready (corral status answering) within {READY_TIMEOUT:?}; {}, stderr:\n{}",
                if f.timed_out {
                    "it never answered and was killed".to_owned()
                } else {
                    format!("it exited with code {:?}", f.code)
                },
                f.stderr
            )
        })
    }

    /// Starts a daemon with the options of `launch`; reports how it failed instead of panicking.
    pub fn try_launch(launch: &Launch) -> Result<Self, StartFailure> {
        let dir = Scratch::new("daemon");
        let policy_dir = if let Some(prepared) = launch.policy_dir {
            prepared.display().to_string()
        } else {
            let policy_dir = dir.mkdir("policies");
            for (name, yaml) in launch.policies {
                let _ = dir.file(&format!("policies/{name}"), yaml);
            }
            policy_dir
        };
        let socket = launch
            .socket
            .map_or_else(|| dir.path().join("corral.sock"), Path::to_path_buf);
        let events = dir.path().join("events.jsonl");
        let pin_dir = launch
            .pin_dir
            .map_or_else(|| own_pin_dir(&dir), Path::to_path_buf);
        let stderr = dir.path().join("daemon.stderr");
        let stdout = dir.path().join("daemon.stdout");
        let mut cmd = Command::new(env::corral_bin());
        cmd.arg("daemon")
            .arg("--policies")
            .arg(&policy_dir)
            .arg("--socket")
            .arg(&socket)
            .args(
                (!launch.no_events_flag)
                    .then(|| [std::ffi::OsStr::new("--events"), events.as_os_str()])
                    .into_iter()
                    .flatten(),
            )
            .arg("--pin-dir")
            .arg(&pin_dir)
            .envs(launch.env.iter().copied())
            .stdin(Stdio::null())
            .stdout(create(&stdout))
            .stderr(create(&stderr));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("expected to start {}: {e}", env::corral_bin().display()));
        let mut daemon = Self {
            child: Some(child),
            socket,
            events,
            stderr,
            dir,
            pin_dir,
            owns_pins: launch.pin_dir.is_none(),
        };
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Some(child) = daemon.child.as_mut() {
                if let Ok(Some(status)) = child.try_wait() {
                    daemon.child = None;
                    return Err(StartFailure {
                        code: status.code(),
                        timed_out: false,
                        stderr: daemon.stderr(),
                        socket_left: daemon.socket.exists(),
                    });
                }
            }
            if daemon.socket.exists() && daemon.status_output().code == Some(0) {
                return Ok(daemon);
            }
            if Instant::now() >= deadline {
                daemon.stop();
                return Err(StartFailure {
                    code: None,
                    timed_out: true,
                    stderr: daemon.stderr(),
                    socket_left: daemon.socket.exists(),
                });
            }
            std::thread::sleep(Duration::from_millis(250));
        }
    }

    /// Stops the daemon with SIGTERM (and SIGCONT, should it be stopped) and waits for it.
    /// Returns its exit code.
    pub fn terminate(&mut self) -> Option<i32> {
        let child = self.child.as_mut()?;
        let pid = libc::pid_t::try_from(child.id()).unwrap_or(0);
        // SAFETY: signalling our own child by pid.
        unsafe {
            libc::kill(pid, libc::SIGTERM);
            libc::kill(pid, libc::SIGCONT);
        }
        let code = process::wait_deadline(child, Duration::from_secs(30)).flatten();
        self.child = None;
        code
    }

    /// Stops the daemon like `kill -9` would: no clean-up of its own.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// The pin directory.
    #[must_use]
    pub fn pin_dir(&self) -> &Path {
        &self.pin_dir
    }

    /// The policy directory the daemon watches (when the test did not bring its own).
    #[must_use]
    pub fn policies(&self) -> PathBuf {
        self.dir.path().join("policies")
    }

    /// The daemon's scratch directory (policies, events file, stderr).
    #[must_use]
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    #[must_use]
    pub fn socket(&self) -> &Path {
        &self.socket
    }

    /// The socket path as a string (for policies and command lines).
    #[must_use]
    pub fn socket_str(&self) -> String {
        self.socket.display().to_string()
    }

    /// Pid of the daemon process.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.as_ref().map_or(0, Child::id)
    }

    /// What the daemon wrote on stderr so far.
    #[must_use]
    pub fn stderr(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// The `corral run` command for `task` and `argv`, for callers that adjust it.
    #[must_use]
    pub fn run_command(&self, task: &str, argv: &[&str]) -> Command {
        self.run_command_with(task, &[], argv)
    }

    /// `corral run --task TASK --socket SOCK FLAGS... -- argv...`.
    #[must_use]
    pub fn run_command_with(&self, task: &str, flags: &[&str], argv: &[&str]) -> Command {
        let mut cmd = Command::new(env::corral_bin());
        cmd.arg("run")
            .arg("--task")
            .arg(task)
            .arg("--socket")
            .arg(&self.socket)
            .args(flags)
            .arg("--")
            .args(argv);
        cmd
    }

    /// `corral run --accept-unenforced ...`, to completion: what a host that cannot enforce
    /// every operation of the task needs.
    #[must_use]
    pub fn run_accepting_unenforced(&self, task: &str, argv: &[&str]) -> RunOutput {
        process::run(self.run_command_with(task, &[ACCEPT_UNENFORCED], argv))
    }

    /// Stops the daemon (`SIGSTOP`) until the returned guard is dropped (`SIGCONT`): the kernel
    /// keeps judging and queueing events, nothing reads them meanwhile.
    #[must_use]
    pub fn frozen(&self) -> Frozen<'_> {
        if let Err(e) = self.signal(libc::SIGSTOP) {
            panic!("expected to stop the daemon (pid {}): {e}", self.pid());
        }
        Frozen { daemon: self }
    }

    /// Sends `sig` to the daemon.
    pub fn signal(&self, sig: libc::c_int) -> std::io::Result<()> {
        let pid = libc::pid_t::try_from(self.pid()).unwrap_or(0);
        if pid <= 0 {
            return Err(std::io::Error::other("the daemon is not running"));
        }
        // SAFETY: signalling our own child by pid.
        if unsafe { libc::kill(pid, sig) } == 0 {
            Ok(())
        } else {
            Err(std::io::Error::last_os_error())
        }
    }

    /// `corral run --task TASK --socket SOCK -- argv...`, to completion.
    #[must_use]
    pub fn run(&self, task: &str, argv: &[&str]) -> RunOutput {
        process::run(self.run_command(task, argv))
    }

    /// `run` with extra environment variables for the command.
    #[must_use]
    pub fn run_env(&self, task: &str, argv: &[&str], env: &[(&str, &str)]) -> RunOutput {
        let mut cmd = self.run_command(task, argv);
        cmd.envs(env.iter().copied());
        process::run(cmd)
    }

    /// `corral run` in the background (a tagged listener); see `Background`.
    #[must_use]
    pub fn run_background(&self, task: &str, argv: &[&str]) -> Background {
        Background::start(self.run_command(task, argv))
    }

    /// Every event written so far (complete lines only); panics on a line that is not JSON.
    #[must_use]
    pub fn events(&self) -> Vec<Value> {
        match std::fs::read_to_string(&self.events) {
            Ok(text) => events::parse_lines(&text, &self.events.display().to_string()),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("expected to read {}: {e}", self.events.display()),
        }
    }

    /// Waits until at least one event matches `pred` and returns all that match; panics after
    /// `timeout` with the last events.
    pub fn wait_events(&self, pred: impl Fn(&Value) -> bool, timeout: Duration) -> Vec<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            let all = self.events();
            let hits: Vec<Value> = all.iter().filter(|e| pred(e)).cloned().collect();
            if !hits.is_empty() {
                return hits;
            }
            assert!(
                Instant::now() < deadline,
                "expected a matching event within {timeout:?}; last events:\n{}\ndaemon stderr:\n{}",
                events::tail(&all, 10),
                self.stderr()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// Waits for the one event matching `fields` (see `events::has`), then `SETTLE` more, and
    /// asserts there is exactly one. Returns it.
    #[must_use]
    pub fn expect_one_event(&self, what: &str, fields: &[(&str, Value)]) -> Value {
        let _ = self.wait_events(|e| has(e, fields), EVENT_TIMEOUT);
        std::thread::sleep(SETTLE);
        let all = self.events();
        let hits: Vec<&Value> = all.iter().filter(|e| has(e, fields)).collect();
        assert_eq!(
            hits.len(),
            1,
            "expected exactly one event for {what} matching {fields:?}, got {}:\n{}",
            hits.len(),
            hits.iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
        hits[0].clone()
    }

    /// Waits `SETTLE` and asserts no event matches `fields`.
    pub fn expect_no_event(&self, what: &str, fields: &[(&str, Value)]) {
        std::thread::sleep(SETTLE);
        let all = self.events();
        let hits: Vec<&Value> = all.iter().filter(|e| has(e, fields)).collect();
        assert!(
            hits.is_empty(),
            "expected no event for {what} matching {fields:?}, got:\n{}",
            hits.iter()
                .map(|e| format!("  {e}"))
                .collect::<Vec<_>>()
                .join("\n")
        );
    }

    /// `corral status --socket SOCK --json`, parsed; panics if it fails.
    #[must_use]
    pub fn status(&self) -> Value {
        let out = self.status_output();
        assert_eq!(
            out.code,
            Some(0),
            "expected `corral status` to succeed\n{}",
            out.describe()
        );
        serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
            panic!(
                "expected `corral status --json` to print JSON: {e}\n{}",
                out.describe()
            )
        })
    }

    fn status_output(&self) -> RunOutput {
        let mut cmd = Command::new(env::corral_bin());
        cmd.arg("status")
            .arg("--socket")
            .arg(&self.socket)
            .arg("--json");
        process::run(cmd)
    }

    /// A counter of `corral status` (e.g. `("open", "denied")`), 0 if absent.
    #[must_use]
    pub fn counter(&self, op: &str, decision: &str) -> u64 {
        self.status()
            .pointer(&format!("/counters/{op}/{decision}"))
            .and_then(Value::as_u64)
            .unwrap_or(0)
    }

    /// Panics unless `out` is a probe that printed `ok` and exited 0.
    pub fn expect_ok(&self, out: &RunOutput) {
        assert!(
            out.code == Some(0) && out.first_line() == "ok",
            "expected the operation to succeed (stdout \"ok\", exit 0)\n{}\nlast events:\n{}",
            out.describe(),
            events::tail(&self.events(), 8)
        );
    }

    /// Panics unless `out` is a probe that printed `err <errno> ...` and exited 1.
    pub fn expect_errno(&self, out: &RunOutput, errno: &str) {
        let words: Vec<&str> = out.first_line().split(' ').collect();
        assert!(
            out.code == Some(1) && words.len() == 3 && words[0] == "err" && words[1] == errno,
            "expected the operation to fail with {errno} (stdout \"err {errno} <n>\", exit 1)\n{}\nlast events:\n{}",
            out.describe(),
            events::tail(&self.events(), 8)
        );
    }

    fn stop(&mut self) {
        let Some(mut child) = self.child.take() else {
            return;
        };
        // SAFETY: signalling our own child by pid.
        unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGTERM) };
        if process::wait_deadline(&mut child, Duration::from_secs(10)).is_none() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

/// Panics unless `out` (a `corral` command) exited with `code` and printed exactly one
/// non-empty `corral: ...` line on stderr.
pub fn expect_corral_exit(out: &RunOutput, code: i32) {
    let lines: Vec<&str> = out
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    assert!(
        out.code == Some(code) && lines.len() == 1 && lines[0].starts_with("corral: "),
        "expected exit code {code} with exactly one stderr line \"corral: <message>\"\n{}",
        out.describe()
    );
}

impl Drop for Daemon {
    fn drop(&mut self) {
        let exited_early = match self.child.as_mut() {
            Some(child) => match child.try_wait() {
                Ok(Some(status)) => Some(status.code()),
                _ => None,
            },
            None => None,
        };
        self.stop();
        if self.owns_pins {
            unload(&self.pin_dir, &self.socket);
        }
        if let Some(code) = exited_early {
            assert!(
                std::thread::panicking(),
                "expected the daemon to keep running through the test; it exited with code {code:?}, stderr:\n{}",
                self.stderr()
            );
        }
    }
}

/// A pin directory on bpffs named after the daemon's scratch directory.
fn own_pin_dir(scratch: &Scratch) -> PathBuf {
    let name = scratch
        .path()
        .file_name()
        .map_or_else(|| "daemon".to_owned(), |n| n.to_string_lossy().into_owned());
    PathBuf::from("/sys/fs/bpf").join(name)
}

/// `corral unload --pin-dir DIR --socket SOCK`: detaches what a stopped daemon left pinned.
/// Failures are reported, not raised (this also runs while a failed test unwinds).
pub fn unload(pin_dir: &Path, socket: &Path) {
    let out = process::run({
        let mut cmd = Command::new(env::corral_bin());
        cmd.arg("unload")
            .arg("--pin-dir")
            .arg(pin_dir)
            .arg("--socket")
            .arg(socket);
        cmd
    });
    if out.code != Some(0) {
        eprintln!(
            "warning: could not unload {}\n{}",
            pin_dir.display(),
            out.describe()
        );
    }
}

fn create(path: &Path) -> File {
    File::create(path).unwrap_or_else(|e| panic!("expected to create {}: {e}", path.display()))
}

/// A pin directory shared by the daemons of one test (a restart), unloaded when dropped.
pub struct SharedPins {
    pub dir: PathBuf,
}

impl SharedPins {
    #[must_use]
    pub fn new(label: &str) -> Self {
        let dir = PathBuf::from(format!(
            "/sys/fs/bpf/corral-tests-{}-{label}",
            std::process::id()
        ));
        Self { dir }
    }
}

impl Drop for SharedPins {
    fn drop(&mut self) {
        unload(&self.dir, Path::new("/nonexistent/corral.sock"));
    }
}
