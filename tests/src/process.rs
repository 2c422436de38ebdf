//! Running commands with a deadline and keeping what they printed.

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek};
use std::os::fd::FromRawFd;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use crate::env;

/// How long any single command may take. Generous: the VMs run under software emulation.
pub const COMMAND_TIMEOUT: Duration = Duration::from_secs(60);

/// A finished command: what ran, its pid, exit code and output.
#[derive(Debug, Clone)]
pub struct RunOutput {
    /// The command line, for messages.
    pub argv: Vec<String>,
    /// Pid of the process started. For `corral run` this is also the pid of CMD, which
    /// `corral run` replaces by exec.
    pub pid: u32,
    /// Exit code; `None` if it was killed by a signal.
    pub code: Option<i32>,
    pub stdout: String,
    pub stderr: String,
}

impl RunOutput {
    /// A multi-line description for assertion messages.
    #[must_use]
    pub fn describe(&self) -> String {
        format!(
            "command: {}\n  pid: {}\n  exit code: {}\n  stdout: {:?}\n  stderr: {:?}",
            self.argv.join(" "),
            self.pid,
            self.code
                .map_or_else(|| "killed by a signal".to_owned(), |c| c.to_string()),
            self.stdout,
            self.stderr
        )
    }

    /// The first stdout line, trimmed.
    #[must_use]
    pub fn first_line(&self) -> &str {
        self.stdout.lines().next().unwrap_or("").trim()
    }
}

/// An in-memory file for a child's stdout or stderr: unlike a pipe, nothing blocks if a
/// grandchild keeps it open after the child exits.
fn capture_file(name: &std::ffi::CStr) -> File {
    // SAFETY: plain system call with a valid name.
    let fd = unsafe { libc::memfd_create(name.as_ptr(), libc::MFD_CLOEXEC) };
    assert!(
        fd >= 0,
        "expected memfd_create to work: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: `fd` is a fresh descriptor we own.
    unsafe { File::from_raw_fd(fd) }
}

fn read_back(mut f: File) -> String {
    let mut s = String::new();
    let _ = f.rewind();
    let _ = f.read_to_string(&mut s);
    s
}

/// Runs `cmd` (stdin from /dev/null) to completion within `COMMAND_TIMEOUT`; panics if it
/// cannot start or does not finish.
#[must_use]
pub fn run(mut cmd: Command) -> RunOutput {
    let argv = argv_of(&cmd);
    let out = capture_file(c"stdout");
    let err = capture_file(c"stderr");
    let (o, e) = (clone(&out), clone(&err));
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(o)
        .stderr(e)
        .spawn()
        .unwrap_or_else(|e| panic!("expected to start `{}`: {e}", argv.join(" ")));
    let pid = child.id();
    let code = wait_deadline(&mut child, COMMAND_TIMEOUT).unwrap_or_else(|| {
        let _ = child.kill();
        let _ = child.wait();
        panic!(
            "expected `{}` to finish within {COMMAND_TIMEOUT:?}; it was killed.\n  stdout: {:?}\n  stderr: {:?}",
            argv.join(" "),
            read_back(clone_file(&out)),
            read_back(clone_file(&err))
        )
    });
    RunOutput {
        argv,
        pid,
        code,
        stdout: read_back(out),
        stderr: read_back(err),
    }
}

fn clone(f: &File) -> Stdio {
    Stdio::from(clone_file(f))
}

fn clone_file(f: &File) -> File {
    f.try_clone()
        .unwrap_or_else(|e| panic!("expected to duplicate a capture file: {e}"))
}

/// Waits for `child` up to `limit`. `Some(code)` when it exited (`None` inside for a signal),
/// `None` when the deadline passed.
pub fn wait_deadline(child: &mut Child, limit: Duration) -> Option<Option<i32>> {
    let deadline = Instant::now() + limit;
    loop {
        match child.try_wait() {
            Ok(Some(status)) => return Some(status.code()),
            Ok(None) => {}
            Err(e) => panic!("expected to wait for pid {}: {e}", child.id()),
        }
        if Instant::now() >= deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The command line of `cmd`, for messages.
#[must_use]
pub fn argv_of(cmd: &Command) -> Vec<String> {
    std::iter::once(cmd.get_program())
        .chain(cmd.get_args())
        .map(|a| a.to_string_lossy().into_owned())
        .collect()
}

/// Runs `$CORRAL_PROBE args...` directly: untagged (unless the caller itself is tagged).
#[must_use]
pub fn probe(args: &[&str]) -> RunOutput {
    let mut cmd = Command::new(env::probe_bin());
    cmd.args(args);
    run(cmd)
}

/// A long-running child (a listener), killed when dropped. Its first stdout line is read at
/// start, so the caller knows it is ready.
pub struct Background {
    child: Child,
    argv: Vec<String>,
    first_line: String,
    lines: mpsc::Receiver<String>,
    stderr: File,
}

impl Background {
    /// Starts `cmd` and waits (up to `COMMAND_TIMEOUT`) for its first stdout line; panics with
    /// its output if it exits first or says nothing.
    #[must_use]
    pub fn start(mut cmd: Command) -> Self {
        let argv = argv_of(&cmd);
        let err = capture_file(c"bg-stderr");
        let mut child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(clone(&err))
            .spawn()
            .unwrap_or_else(|e| panic!("expected to start `{}`: {e}", argv.join(" ")));
        let stdout = child
            .stdout
            .take()
            .unwrap_or_else(|| unreachable!("stdout is piped"));
        let (tx, rx) = mpsc::channel();
        std::thread::spawn(move || {
            for line in BufReader::new(stdout).lines() {
                let Ok(line) = line else { break };
                if tx.send(line).is_err() {
                    break;
                }
            }
        });
        let Ok(first_line) = rx.recv_timeout(COMMAND_TIMEOUT) else {
            let _ = child.kill();
            let status = child.wait().ok().and_then(|s| s.code());
            panic!(
                "expected `{}` to print a first line (e.g. \"listening\") within {COMMAND_TIMEOUT:?}; exit code {status:?}, stderr: {:?}",
                argv.join(" "),
                read_back(err)
            );
        };
        Self {
            child,
            argv,
            first_line,
            lines: rx,
            stderr: err,
        }
    }

    /// An untagged `$CORRAL_PROBE args...` in the background.
    #[must_use]
    pub fn probe(args: &[&str]) -> Self {
        let mut cmd = Command::new(env::probe_bin());
        cmd.args(args);
        Self::start(cmd)
    }

    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    #[must_use]
    pub fn first_line(&self) -> &str {
        &self.first_line
    }

    /// The port of a `corral-probe listen tcp` ("listening PORT").
    #[must_use]
    pub fn port(&self) -> u16 {
        self.first_line
            .strip_prefix("listening ")
            .and_then(|p| p.trim().parse().ok())
            .unwrap_or_else(|| {
                panic!(
                    "expected `{}` to print \"listening PORT\", got {:?}",
                    self.argv.join(" "),
                    self.first_line
                )
            })
    }

    /// Waits for the child to exit; its remaining stdout (after the first line) and stderr.
    #[must_use]
    pub fn wait(mut self) -> RunOutput {
        let code = wait_deadline(&mut self.child, COMMAND_TIMEOUT).unwrap_or_else(|| {
            panic!(
                "expected `{}` (pid {}) to exit within {COMMAND_TIMEOUT:?}",
                self.argv.join(" "),
                self.child.id()
            )
        });
        let mut rest = Vec::new();
        while let Ok(line) = self.lines.recv_timeout(Duration::from_secs(2)) {
            rest.push(line);
        }
        RunOutput {
            argv: self.argv.clone(),
            pid: self.child.id(),
            code,
            stdout: rest.join("\n"),
            stderr: read_back(clone_file(&self.stderr)),
        }
    }

    /// True while the child has not exited.
    pub fn running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
        }
        let _ = self.child.wait();
    }
}

/// A confined command started now and collected later (unlike `Background`, it does not wait
/// for a first line: a looping or delayed probe prints only when done).
pub struct Later {
    child: Child,
    argv: Vec<String>,
}

impl Later {
    /// Starts `cmd` (stdin from /dev/null, output captured).
    #[must_use]
    pub fn start(mut cmd: Command) -> Self {
        let argv = argv_of(&cmd);
        let child = cmd
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .unwrap_or_else(|e| panic!("expected to start `{}`: {e}", argv.join(" ")));
        Self { child, argv }
    }

    /// Its pid.
    #[must_use]
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// Waits for it to finish; panics if it cannot be waited for.
    #[must_use]
    pub fn wait(self) -> RunOutput {
        let pid = self.child.id();
        let out = self
            .child
            .wait_with_output()
            .unwrap_or_else(|e| panic!("expected `{}` to finish: {e}", self.argv.join(" ")));
        RunOutput {
            argv: self.argv,
            pid,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}
