//! `corral-bench pipeline DIR [--records N]`: the daemon's event capacity without the kernel
//! producer. Replays synthetic ring-buffer records (a mixture of IPv4/IPv6 connects, opens with
//! paths of 10 to 400 bytes and execs, from several processes of several tasks and instances)
//! through the daemon's own per-record path (`agent::daemon::Delivery`: decode, naming, line,
//! hub, the rotating JSON file sink as `[events] file` opens it) on this one thread, in batches
//! of 256 as the pump drains the ring, then counts the lines in the sink's files. Prints one
//! JSON line: records, lines, wall and CPU seconds.
//!
//! The names come from maps here, where the daemon asks the kernel (`EXES`, one `bpf(2)`
//! look-up per process and batch) and its instance table: that look-up is not measured.

// Counts and times here stay far below 2^52.
#![allow(clippy::cast_precision_loss)]

use std::{
    collections::HashMap,
    fs,
    io::{BufRead as _, BufReader},
    path::{Path, PathBuf},
    sync::Mutex,
    time::Instant,
};

use agent::{
    config::EventsSection,
    daemon::{Delivery, Hub, Namer, Sink},
    events::{BootClock, event_bytes},
};
use agent_common::{
    Access, Backend, Decision, Event, Mode, Op, PATH_CLASS_SHORT, PATH_MAX, Proto, Reason,
};

/// Records per batch (the pump's `EVENTS_PER_TURN`).
const BATCH: usize = 256;
/// Distinct records replayed in a cycle.
const DISTINCT: usize = 4096;
const TASKS: u32 = 3;
const PROCESSES: u32 = 12;
/// Rotated sink files kept (64 GiB of lines).
const KEEP: u32 = 1024;

pub fn run(args: &[String]) -> Result<(), String> {
    let (dir, rest) = args.split_first().ok_or("pipeline DIR [--records N]")?;
    let records: usize = match rest {
        [] => 1_000_000,
        [flag, n] if flag == "--records" => n.parse().map_err(|_| format!("--records {n}"))?,
        _ => return Err("pipeline DIR [--records N]".to_owned()),
    };
    let dir = PathBuf::from(dir);
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).map_err(|e| format!("creating {}: {e}", dir.display()))?;
    let file = dir.join("events.json");
    // The sink as `[events] file` opens it (64 MiB files); rotated files are all kept, so
    // that every line can be counted.
    let section = EventsSection {
        stdout: false,
        file: Some(file.clone()),
        keep: KEEP,
        ..EventsSection::default()
    };
    let sinks = Sink::open_all(&section).map_err(|e| format!("{e:#}"))?;
    let hub = Hub::new(section.backlog, section.subscriber_queue);
    let state = Mutex::new(Names::new());
    let replay = replay_records();
    let mut delivery = Delivery::new(BootClock::now(), sinks);
    let cpu0 = thread_cpu_s();
    let started = Instant::now();
    let mut handed = 0;
    while handed < records {
        let n = BATCH.min(records - handed);
        let batch = (handed..handed + n).map(|i| replay[i % replay.len()].as_slice());
        handed += delivery.batch(batch, &state, &hub);
    }
    // The sink's last lines are written when it closes.
    drop(delivery);
    let seconds = started.elapsed().as_secs_f64();
    let cpu_s = thread_cpu_s() - cpu0;
    let (lines, bad) = count_lines(&file)?;
    println!(
        "{}",
        serde_json::json!({
            "kind": "pipeline",
            "records": handed,
            "lines": lines,
            "unparsable_lines": bad,
            "seconds": seconds,
            "cpu_s": cpu_s,
            "events_per_s": handed as f64 / seconds,
            "cpu_us_per_event": cpu_s * 1e6 / handed as f64,
            "sink_bytes": sink_bytes(&file),
        })
    );
    let _ = fs::remove_dir_all(&dir);
    Ok(())
}

/// CPU time of this thread.
fn thread_cpu_s() -> f64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &raw mut ts) };
    ts.tv_sec as f64 + ts.tv_nsec as f64 * 1e-9
}

/// The sink's file and its rotated files, oldest first.
fn sink_files(file: &Path) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = (1..=KEEP)
        .rev()
        .map(|n| PathBuf::from(format!("{}.{n}", file.display())))
        .filter(|p| p.exists())
        .collect();
    files.push(file.to_path_buf());
    files
}

fn sink_bytes(file: &Path) -> u64 {
    sink_files(file)
        .iter()
        .filter_map(|p| fs::metadata(p).ok())
        .map(|m| m.len())
        .sum()
}

/// Lines in the sink's files, and how many of them are not one JSON object each.
fn count_lines(file: &Path) -> Result<(u64, u64), String> {
    let (mut lines, mut bad) = (0, 0);
    for path in sink_files(file) {
        let f = fs::File::open(&path).map_err(|e| format!("{}: {e}", path.display()))?;
        for line in BufReader::new(f).split(b'\n') {
            let line = line.map_err(|e| format!("{}: {e}", path.display()))?;
            lines += 1;
            if !matches!(
                serde_json::from_slice::<serde_json::Value>(&line),
                Ok(serde_json::Value::Object(_))
            ) {
                bad += 1;
            }
        }
    }
    Ok((lines, bad))
}

/// What the daemon would know: task names, the executables `EXES` holds, instance lineages.
struct Names {
    tasks: HashMap<u32, String>,
    exes: HashMap<u32, String>,
}

impl Names {
    fn new() -> Self {
        let tasks = (1..=TASKS)
            .map(|id| (id, format!("bench-task-{id}")))
            .collect();
        let exes = (0..PROCESSES)
            .map(|p| {
                (
                    tgid(p),
                    ["/usr/bin/python3.11", "/usr/bin/curl", "/usr/bin/bash"][p as usize % 3]
                        .to_owned(),
                )
            })
            .collect();
        Self { tasks, exes }
    }
}

impl Namer for Names {
    fn exe_of(&self, tgid: u32) -> Option<String> {
        self.exes.get(&tgid).cloned()
    }

    fn lineage(&mut self, instance: u32) -> (Option<String>, Vec<String>) {
        if instance == 0 {
            return (None, Vec::new());
        }
        (
            Some(format!("0190c3a1-0000-8000-8000-{instance:012x}")),
            (1..instance).map(|i| format!("bench-task-{i}")).collect(),
        )
    }

    fn task_name(&self, id: u32) -> Option<&str> {
        self.tasks.get(&id).map(String::as_str)
    }
}

/// Process `p`'s tgid: the bench's own pid for the first (whose parent `/proc` knows), made-up
/// ones after it.
fn tgid(p: u32) -> u32 {
    if p == 0 {
        std::process::id()
    } else {
        4_000_000 + p
    }
}

/// `DISTINCT` records: 30 % IPv4 connects, 10 % IPv6 connects (cgroup backend: no parent in
/// the record), 45 % opens with paths of 10 to 400 bytes, 15 % execs.
fn replay_records() -> Vec<Vec<u8>> {
    let mut state = 0x2545_f491_4f6c_dd1d_u64;
    let mut next = move || {
        // xorshift64*
        state ^= state >> 12;
        state ^= state << 25;
        state ^= state >> 27;
        state.wrapping_mul(0x2545_f491_4f6c_dd1d) >> 32
    };
    let mut out = Vec::with_capacity(DISTINCT);
    for i in 0..DISTINCT {
        // SAFETY: `Event` is plain integers; all-zero is valid.
        let mut ev: Event = unsafe { std::mem::zeroed() };
        let p = next() as u32 % PROCESSES;
        ev.time_ns = 1_000_000_000 + i as u64 * 1_700;
        ev.task_id = 1 + p % TASKS;
        ev.instance = p % 3;
        ev.tgid = tgid(p);
        ev.pid = ev.tgid + next() as u32 % 4;
        ev.ppid = 1;
        ev.uid = 1000;
        ev.gid = 1000;
        let comm: &[u8] = [b"python3.11".as_slice(), b"curl", b"bash"][p as usize % 3];
        ev.comm[..comm.len()].copy_from_slice(comm);
        let kind = next() % 100;
        let (decision, mode, reason) = if next() % 4 == 0 {
            (Decision::Denied, Mode::Enforce, Reason::NotAllowed)
        } else {
            (Decision::Audited, Mode::Audit, Reason::NotAllowed)
        };
        ev.decision = decision as u32;
        ev.mode = mode as u32;
        ev.reason = reason as u32;
        let path_bytes = if kind < 40 {
            ev.op = Op::Connect as u32;
            ev.backend = Backend::CgroupSockAddr as u32;
            ev.ppid = 0;
            ev.proto = [Proto::Tcp, Proto::Udp][next() as usize % 2] as u32;
            ev.port = [443, 53, 80, 8080][next() as usize % 4];
            if kind < 30 {
                ev.family = 2;
                ev.addr[..4].copy_from_slice(&[10, 0, (next() % 256) as u8, (next() % 256) as u8]);
            } else {
                ev.family = 10;
                ev.addr =
                    std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, next() as u16).octets();
            }
            0
        } else {
            let (op, access, path) = if kind < 85 {
                let len = 10 + next() as usize % 391;
                (
                    Op::Open,
                    [Access::READ, Access::WRITE][next() as usize % 2],
                    path_of(len, i),
                )
            } else {
                (Op::Exec, Access::EXEC, b"/usr/bin/git".to_vec())
            };
            ev.op = op as u32;
            ev.backend = Backend::Lsm as u32;
            ev.access = access;
            ev.path[..path.len()].copy_from_slice(&path);
            ev.path_len = path.len() as u32;
            if path.len() <= PATH_CLASS_SHORT {
                PATH_CLASS_SHORT
            } else {
                PATH_MAX
            }
        };
        out.push(event_bytes(&ev)[..agent_common::record_size(path_bytes)].to_vec());
    }
    out
}

/// A path of `len` bytes under a source tree.
fn path_of(len: usize, i: usize) -> Vec<u8> {
    let mut path = format!("/home/dev/src/project-{i}/").into_bytes();
    let parts = ["src", "lib", "tests", "node_modules", "a.rs", "module_name"];
    let mut k = i;
    while path.len() < len {
        path.extend_from_slice(parts[k % parts.len()].as_bytes());
        path.push(b'/');
        k += 1;
    }
    path.truncate(len);
    path
}
