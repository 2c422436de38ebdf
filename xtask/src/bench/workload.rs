//! Event throughput (an audit-mode flood to the JSON sink, then to a slow subscriber) and the
//! macro workload (`tar x` of a few thousand files + `find`, without daemon, untagged, tagged).
use std::fs;
use std::io::{Read as _, Seek as _};
use std::path::Path;
use std::process::Command;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant, SystemTime};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::Plan;
use super::configs::{Config, TASK_MACRO};
use super::daemon::{Daemon, Events, ROTATED_KEPT};
use super::recorder::Recorder;
use super::runner::{Tools, cell_on, run_ok};

/// How long delivery may lag behind the flood before the rest counts as not delivered.
const SETTLE_LIMIT: Duration = Duration::from_secs(20);
/// Delivery is over when no event arrived for this long.
const QUIET: Duration = Duration::from_millis(700);

/// Counts newline-terminated events as they arrive, with the instant of the last one.
struct Arrivals {
    lines: Arc<AtomicU64>,
    started: Instant,
    last_ns: Arc<AtomicU64>,
}

impl Arrivals {
    fn new() -> Self {
        Self {
            lines: Arc::new(AtomicU64::new(0)),
            started: Instant::now(),
            last_ns: Arc::new(AtomicU64::new(0)),
        }
    }

    #[allow(clippy::naive_bytecount)] // a few KiB at a time; no crate for this
    fn count(&self, chunk: &[u8]) {
        let n = chunk.iter().filter(|&&b| b == b'\n').count() as u64;
        if n > 0 {
            self.lines.fetch_add(n, Ordering::Relaxed);
            self.last_ns
                .store(self.started.elapsed().as_nanos() as u64, Ordering::Relaxed);
        }
    }

    fn clone_handle(&self) -> Self {
        Self {
            lines: Arc::clone(&self.lines),
            started: self.started,
            last_ns: Arc::clone(&self.last_ns),
        }
    }

    /// Polls `more` (which feeds `count`) until nothing arrived for [`QUIET`].
    fn settle(&self, mut more: impl FnMut() -> Result<()>) -> Result<()> {
        let limit = Instant::now() + SETTLE_LIMIT;
        loop {
            more()?;
            let last = Duration::from_nanos(self.last_ns.load(Ordering::Relaxed));
            let now = self.started.elapsed();
            if now.saturating_sub(last) > QUIET || Instant::now() > limit {
                return Ok(());
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

/// How far the file sink was read. The daemon rotates it (`events.rotate_bytes`, 64 MiB by
/// default: a fast daemon writes that several times in one flood), so the file is followed by
/// inode.
#[derive(Default)]
struct FileOffset {
    inode: Option<u64>,
    offset: usize,
}

impl FileOffset {
    /// Counts the lines added to `path` since the last call, and the rest of the file it was
    /// rotated into (`path.1`) if it was rotated since.
    fn read_new(&mut self, path: &Path, arrivals: &Arrivals) {
        use std::os::unix::fs::MetadataExt as _;
        let Ok(inode) = fs::metadata(path).map(|m| m.ino()) else {
            return;
        };
        if self.inode.is_none() {
            // The first call comes after the flood: every rotated file (oldest first) holds
            // lines of this flood (it starts without any).
            for n in (2..=ROTATED_KEPT).rev() {
                arrivals.count(&fs::read(rotated_to(path, n)).unwrap_or_default());
            }
        }
        if self.inode != Some(inode) {
            // Rotated since the last call (or before the first): the rest is in `path.1`.
            let old = fs::read(rotated_to(path, 1)).unwrap_or_default();
            arrivals.count(old.get(self.offset..).unwrap_or_default());
            self.offset = 0;
        }
        self.inode = Some(inode);
        let data = fs::read(path).unwrap_or_default();
        arrivals.count(data.get(self.offset..).unwrap_or_default());
        self.offset = data.len();
    }
}

/// When the daemon last wrote `path` or the file it rotated into (`path.1`).
fn last_write(path: &Path) -> Option<SystemTime> {
    [path.to_path_buf(), rotated_to(path, 1)]
        .iter()
        .filter_map(|p| fs::metadata(p).and_then(|m| m.modified()).ok())
        .max()
}

/// `path.n`, where the daemon's `n`th rotation of `path` went.
fn rotated_to(path: &Path, n: u32) -> std::path::PathBuf {
    let mut rotated = path.as_os_str().to_owned();
    rotated.push(format!(".{n}"));
    rotated.into()
}

/// The newline-terminated lines of `path` past byte `offset` (none if it cannot be read).
#[allow(clippy::naive_bytecount)] // one macro round's events; no crate for this
fn lines_after(path: &Path, offset: u64) -> usize {
    let mut rest = Vec::new();
    let read = fs::File::open(path).and_then(|mut f| {
        f.seek(std::io::SeekFrom::Start(offset))?;
        f.read_to_end(&mut rest)
    });
    if read.is_err() {
        return 0;
    }
    rest.iter().filter(|&&b| b == b'\n').count()
}

fn counter(status: &Value, path: &[&str]) -> u64 {
    path.iter()
        .fold(status, |v, k| &v[*k])
        .as_u64()
        .unwrap_or(0)
}

/// The flood's loop: opens where the LSM judges them (events), else UDP connects (the cgroup
/// backend reports them; Landlock refusals are not events).
fn flood_loop(status: &Value) -> (&'static str, &'static str) {
    if status["backends"]["open"] == "lsm" {
        ("open_close_depth1", "open")
    } else {
        ("udp_connect", "connect")
    }
}

/// The floods: one producer to the file sink, one per CPU to the file sink (when there is more
/// than one CPU: the daemon then competes with the producers for the CPUs), one producer to a
/// slow pipe subscriber.
fn floods() -> Vec<(&'static str, usize)> {
    let cpus = std::thread::available_parallelism().map_or(1, std::num::NonZero::get);
    let mut floods = vec![("file", 1)];
    if cpus > 1 {
        floods.push(("file", cpus));
    }
    floods.push(("slow_pipe", 1));
    floods
}

/// Runs `producers` loops processes of `loop_name` at once, each pinned to its own CPU, tagged
/// with the audit task; returns the operations they made.
fn flood(
    tools: &Tools,
    plan: &Plan,
    daemon: &Daemon,
    loop_name: &str,
    producers: usize,
) -> Result<u64> {
    let results: Vec<Result<Vec<Value>>> = std::thread::scope(|scope| {
        let handles: Vec<_> = (0..producers)
            .map(|cpu| {
                scope.spawn(move || {
                    cell_on(
                        tools,
                        plan,
                        Config::C4,
                        Some(daemon),
                        Some(loop_name),
                        Some(cpu),
                    )
                })
            })
            .collect();
        handles
            .into_iter()
            .map(|h| {
                h.join()
                    .unwrap_or_else(|_| Err(anyhow::anyhow!("a flood producer panicked")))
            })
            .collect()
    });
    let mut ops = 0;
    for result in results {
        ops += result?
            .first()
            .and_then(|r| r["ops"].as_u64())
            .context("the flood printed no result")?;
    }
    Ok(ops)
}

pub fn throughput(tools: &Tools, plan: &Plan, rec: &mut Recorder) -> Result<()> {
    for (subscriber, producers) in floods() {
        rec.progress(&format!(
            "event flood, {producers} producer(s), {subscriber} subscriber"
        ));
        let events = tools.work.join("flood.json");
        let _ = fs::remove_file(&events);
        for n in 1..=ROTATED_KEPT {
            let _ = fs::remove_file(rotated_to(&events, n));
        }
        let mut daemon = if subscriber == "file" {
            Daemon::start(
                &tools.corral,
                &tools.policies(),
                &tools.work,
                &Events::File(&events),
            )?
        } else {
            Daemon::start(&tools.corral, &tools.policies(), &tools.work, &Events::Pipe)?
        };
        let arrivals = Arrivals::new();
        if let Some(mut pipe) = daemon.take_stdout() {
            // A subscriber that reads 4 KiB per millisecond (about 10k events/s).
            let seen = arrivals.clone_handle();
            std::thread::spawn(move || {
                let mut buf = [0u8; 4096];
                while let Ok(n) = pipe.read(&mut buf) {
                    if n == 0 {
                        break;
                    }
                    seen.count(&buf[..n]);
                    std::thread::sleep(Duration::from_millis(1));
                }
            });
        }
        let status0 = daemon.status()?;
        let (loop_name, op) = flood_loop(&status0);
        let cpu0 = daemon.cpu_seconds()?;
        let flood_plan = Plan {
            ms: plan.flood_ms,
            ..*plan
        };
        let started = arrivals.started.elapsed();
        let started_wall = SystemTime::now();
        let ops = flood(tools, &flood_plan, &daemon, loop_name, producers)?;
        let mut seen = FileOffset::default();
        arrivals.settle(|| {
            if subscriber == "file" {
                seen.read_new(&events, &arrivals);
            }
            Ok(())
        })?;
        let status1 = daemon.status()?;
        let delivered = arrivals.lines.load(Ordering::Relaxed);
        // Delivery ends with the last line the daemon wrote: the sink file's modification time,
        // not when this process got round to reading it (counting a few hundred MB of lines
        // took this process longer than the daemon took to write them). A pipe subscriber's
        // lines are timed as they arrive.
        let span = if subscriber == "file" {
            last_write(&events)
                .and_then(|t| t.duration_since(started_wall).ok())
                .context("the events file has no modification time after the flood")?
        } else {
            Duration::from_nanos(arrivals.last_ns.load(Ordering::Relaxed)).saturating_sub(started)
        };
        let audited = counter(&status1, &["counters", op, "audited"])
            - counter(&status0, &["counters", op, "audited"]);
        let dropped = counter(&status1, &["counters", "events_dropped"])
            - counter(&status0, &["counters", "events_dropped"]);
        rec.push(json!({
            "kind": "throughput", "subscriber": subscriber, "producers": producers, "op": op,
            "loop": loop_name,
            "ops": ops, "audited": audited, "delivered": delivered, "dropped": dropped,
            "unaccounted": audited as i64 - delivered as i64 - dropped as i64,
            "seconds": span.as_secs_f64(),
            "events_per_s": delivered as f64 / span.as_secs_f64().max(1e-9),
            "daemon_cpu_s": daemon.cpu_seconds()? - cpu0,
            "daemon_peak_rss_kib": daemon.peak_rss_kib()?,
        }));
        daemon.stop()?;
    }
    Ok(())
}

/// The macro workload's directory as a tmpfs mount, unmounted when dropped: the workload then
/// measures what the hooks add to file-heavy work, not the disk's writeback (on this host's ext4
/// the same C0 extraction took 0.18 to 4.0 s from one round to the next).
pub struct MacroMount(std::path::PathBuf);

impl MacroMount {
    pub fn mount(dir: &Path) -> Result<Self> {
        use std::os::unix::ffi::OsStrExt as _;
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let target = std::ffi::CString::new(dir.as_os_str().as_bytes())
            .with_context(|| format!("{} holds a NUL byte", dir.display()))?;
        // SAFETY: NUL-terminated strings that outlive the call.
        let rc = unsafe {
            libc::mount(
                c"corral-bench-macro".as_ptr(),
                target.as_ptr(),
                c"tmpfs".as_ptr(),
                libc::MS_NOSUID | libc::MS_NODEV,
                c"size=256m,mode=0755".as_ptr().cast(),
            )
        };
        if rc != 0 {
            return Err(std::io::Error::last_os_error())
                .with_context(|| format!("mounting a tmpfs on {}", dir.display()));
        }
        Ok(Self(dir.to_path_buf()))
    }
}

impl Drop for MacroMount {
    fn drop(&mut self) {
        use std::os::unix::ffi::OsStrExt as _;
        if let Ok(target) = std::ffi::CString::new(self.0.as_os_str().as_bytes()) {
            // SAFETY: a NUL-terminated path that outlives the call.
            if unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) } != 0 {
                eprintln!(
                    "bench: unmounting {}: {}",
                    self.0.display(),
                    std::io::Error::last_os_error()
                );
            }
        }
    }
}

/// The macro workload's archive in `tools.macro_dir()` (once per environment): `macro_files`
/// small files in its `src` (100 per directory), archived as `src.tar`.
pub fn prepare_macro(tools: &Tools, plan: &Plan) -> Result<()> {
    let dir = &tools.macro_dir();
    let src = dir.join("src");
    for i in 0..plan.macro_files {
        let sub = src.join(format!("d{:03}", i / 100));
        if i % 100 == 0 {
            fs::create_dir_all(&sub).with_context(|| format!("creating {}", sub.display()))?;
        }
        let file = sub.join(format!("f{i:05}.txt"));
        fs::write(&file, format!("{i}\n").repeat(64))
            .with_context(|| format!("writing {}", file.display()))?;
    }
    run_ok(
        Command::new("tar")
            .arg("-cf")
            .arg(dir.join("src.tar"))
            .arg("-C")
            .arg(dir)
            .arg("src"),
    )?;
    fs::remove_dir_all(&src).with_context(|| format!("removing {}", src.display()))
}

/// The workload: extract the archive, then list and count what was extracted.
fn workload(dir: &Path, prefix: Option<Command>) -> Command {
    let script = "rm -rf out && mkdir out && tar -xf src.tar -C out && find out -type f | wc -l";
    let mut cmd = match prefix {
        Some(mut prefix) => {
            prefix.arg("/bin/sh");
            prefix
        }
        None => Command::new("/bin/sh"),
    };
    cmd.args(["-c", script]).current_dir(dir);
    cmd
}

fn timed(mut cmd: Command, files: usize) -> Result<f64> {
    let started = Instant::now();
    let out = run_ok(&mut cmd)?;
    let seconds = started.elapsed().as_secs_f64();
    if out.trim() != files.to_string() {
        bail!(
            "the macro workload extracted {} files, expected {files}",
            out.trim()
        );
    }
    Ok(seconds)
}

/// One macro round's C0 (no daemon): run by the micro round before it starts its daemon.
pub fn macro_without_daemon(
    tools: &Tools,
    plan: &Plan,
    round: usize,
    rec: &mut Recorder,
) -> Result<()> {
    rec.progress(&format!("macro round {}/{}", round + 1, plan.macro_rounds));
    let c0 = timed(workload(&tools.macro_dir(), None), plan.macro_files)?;
    rec.push(json!({"kind": "macro", "round": round, "config": "C0",
                    "seconds": c0, "files": plan.macro_files}));
    Ok(())
}

/// One macro round's C2 (untagged) and C3 (tagged `bench-macro`) under the micro round's
/// daemon, which writes its events to `events`; with the daemon's CPU time over both and its
/// peak RSS so far. Run before that round's tagged micro cells, so the events counted are the
/// macro workload's own.
pub fn macro_with_daemon(
    tools: &Tools,
    plan: &Plan,
    round: usize,
    daemon: &Daemon,
    events: &Path,
    rec: &mut Recorder,
) -> Result<()> {
    let dir = tools.macro_dir();
    // Where the round's events file ends now: only what is appended after is counted.
    let events0 = fs::metadata(events).map_or(0, |m| m.len());
    let cpu0 = daemon.cpu_seconds()?;
    let c2 = timed(workload(&dir, None), plan.macro_files)?;
    let c3 = timed(
        workload(&dir, Some(daemon.run_prefix(TASK_MACRO))),
        plan.macro_files,
    )?;
    let refused = lines_after(events, events0);
    for (config, seconds) in [("C2", c2), ("C3", c3)] {
        rec.push(json!({"kind": "macro", "round": round, "config": config,
                        "seconds": seconds, "files": plan.macro_files}));
    }
    rec.push(
        json!({"kind": "macro_daemon", "round": round, "events": refused,
                    "daemon_cpu_s": daemon.cpu_seconds()? - cpu0,
                    "daemon_peak_rss_kib": daemon.peak_rss_kib()?}),
    );
    Ok(())
}
