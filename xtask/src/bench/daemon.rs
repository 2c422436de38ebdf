//! The daemon under test, used as a black box (`corral daemon`, `corral status --json`), with
//! its CPU time and peak RSS read from /proc.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};

/// How long the daemon may take to create its socket (TCG VMs load eBPF slowly).
const READY_TIMEOUT: Duration = Duration::from_secs(120);

pub struct Daemon {
    child: Child,
    pub socket: PathBuf,
    corral: PathBuf,
    /// The daemon's own pin directory: what it pins outlives it, so it is unloaded on stop.
    pin_dir: PathBuf,
}

/// Where the daemon writes its events.
pub enum Events<'a> {
    File(&'a Path),
    /// `--events -`, stdout piped to the caller (see [`Daemon::take_stdout`]).
    Pipe,
}

/// Rotated event files a bench daemon keeps: at 64 MiB each (the default `events.rotate_bytes`)
/// 2 GiB, far above what the longest flood writes (about 1 M events of ~470 bytes); the daemon's
/// default (5) would delete the first lines of a two-producer flood before they are counted.
pub const ROTATED_KEPT: u32 = 32;

impl Daemon {
    /// Starts `corral daemon` on `policies` and waits until its socket exists.
    pub fn start(corral: &Path, policies: &Path, work: &Path, events: &Events) -> Result<Self> {
        let socket = work.join("corral.sock");
        let _ = fs::remove_file(&socket);
        let log = work.join("daemon.log");
        let log_file = fs::OpenOptions::new()
            .create(true)
            .append(true)
            .open(&log)
            .with_context(|| format!("opening {}", log.display()))?;
        let pin_dir = PathBuf::from(format!(
            "/sys/fs/bpf/corral-bench-{}-{}",
            std::process::id(),
            started_daemons()
        ));
        let mut cmd = Command::new(corral);
        cmd.arg("daemon")
            .arg("--policies")
            .arg(policies)
            .arg("--socket")
            .arg(&socket)
            .arg("--pin-dir")
            .arg(&pin_dir)
            .stdin(Stdio::null())
            .stderr(log_file);
        match events {
            Events::File(path) => {
                // Enough rotated files that a whole flood stays readable (`ROTATED_KEPT`).
                let config = work.join("daemon.toml");
                fs::write(&config, format!("[events]\nkeep = {ROTATED_KEPT}\n"))
                    .with_context(|| format!("writing {}", config.display()))?;
                cmd.arg("--config")
                    .arg(&config)
                    .arg("--events")
                    .arg(path)
                    .stdout(Stdio::null());
            }
            Events::Pipe => {
                cmd.args(["--events", "-"]).stdout(Stdio::piped());
            }
        }
        let mut child = cmd
            .spawn()
            .with_context(|| format!("starting {} daemon", corral.display()))?;
        let started = Instant::now();
        while !socket.exists() {
            if let Some(status) = child.try_wait().context("waiting for the daemon")? {
                bail!(
                    "corral daemon exited {status} before it was ready; log: {}",
                    log.display()
                );
            }
            if started.elapsed() > READY_TIMEOUT {
                let _ = child.kill();
                bail!(
                    "corral daemon not ready after {READY_TIMEOUT:?}; log: {}",
                    log.display()
                );
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        Ok(Self {
            child,
            socket,
            corral: corral.to_path_buf(),
            pin_dir,
        })
    }

    pub fn take_stdout(&mut self) -> Option<std::process::ChildStdout> {
        self.child.stdout.take()
    }

    /// `corral run --task TASK --socket S --accept-unenforced --` (the native host has no
    /// unix-connect backend; the tasks here never connect to unix sockets).
    pub fn run_prefix(&self, task: &str) -> Command {
        let mut cmd = Command::new(&self.corral);
        cmd.args(["run", "--task", task, "--socket"])
            .arg(&self.socket)
            .args(["--accept-unenforced", "--"]);
        cmd
    }

    /// `corral status --json`.
    pub fn status(&self) -> Result<serde_json::Value> {
        let out = Command::new(&self.corral)
            .args(["status", "--json", "--socket"])
            .arg(&self.socket)
            .output()
            .context("running corral status")?;
        if !out.status.success() {
            bail!(
                "corral status failed: {}",
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        serde_json::from_slice(&out.stdout).context("corral status --json is not JSON")
    }

    /// CPU seconds (user + system) the daemon has used so far.
    pub fn cpu_seconds(&self) -> Result<f64> {
        let path = format!("/proc/{}/stat", self.child.id());
        let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        // Fields after the parenthesised comm: state is field 3, utime 14, stime 15.
        let after = stat.rsplit_once(')').map_or("", |(_, rest)| rest);
        let fields: Vec<&str> = after.split_whitespace().collect();
        let tick = |i: usize| -> Result<f64> {
            fields
                .get(i)
                .and_then(|f| f.parse::<f64>().ok())
                .with_context(|| format!("{path}: no field {}", i + 3))
        };
        // SAFETY: sysconf has no preconditions.
        let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) } as f64;
        Ok((tick(11)? + tick(12)?) / hz)
    }

    /// Peak resident set size (`VmHWM`) in KiB.
    pub fn peak_rss_kib(&self) -> Result<u64> {
        let path = format!("/proc/{}/status", self.child.id());
        let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
        status
            .lines()
            .find_map(|l| l.strip_prefix("VmHWM:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .with_context(|| format!("{path}: no VmHWM line"))
    }

    /// SIGTERM, then wait (SIGKILL after 10 s).
    pub fn stop(mut self) -> Result<()> {
        // SAFETY: signalling our own child.
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let started = Instant::now();
        while self
            .child
            .try_wait()
            .context("waiting for the daemon")?
            .is_none()
        {
            if started.elapsed() > Duration::from_secs(10) {
                let _ = self.child.kill();
                let _ = self.child.wait();
                break;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        self.unload()
    }

    /// `corral unload`: detaches what the (stopped) daemon left pinned.
    fn unload(&self) -> Result<()> {
        let out = Command::new(&self.corral)
            .args(["unload", "--pin-dir"])
            .arg(&self.pin_dir)
            .arg("--socket")
            .arg(&self.socket)
            .output()
            .context("running corral unload")?;
        if !out.status.success() {
            bail!(
                "corral unload {} failed: {}",
                self.pin_dir.display(),
                String::from_utf8_lossy(&out.stderr).trim()
            );
        }
        Ok(())
    }
}

impl Drop for Daemon {
    /// A bench that failed half-way still leaves nothing attached.
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
        if self.pin_dir.exists() {
            let _ = self.unload();
        }
    }
}

/// A counter that makes each daemon's pin directory unique within this run.
fn started_daemons() -> u32 {
    static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
    N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
}
