//! Ring-buffer records → structured events (the JSON-lines contract).

mod clock;
mod exe_cache;
mod line;

use std::{collections::HashMap, fs, time::SystemTime};

use agent_common::{
    Access, Backend, Decision, EVENT_HEAD_SIZE, EVENT_SIZE, Event, Mode, Op, Proto, Reason,
    UnknownCode,
};
use serde::Serialize;

pub use clock::BootClock;
pub use exe_cache::ExeCache;
pub use line::{Names, write_line};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event record of {len} bytes, expected {EVENT_HEAD_SIZE} to {EVENT_SIZE}")]
    Size { len: usize },
    #[error("event record: {0}")]
    Code(#[from] UnknownCode),
    #[error("cannot encode event: {0}")]
    Encode(String),
}

/// One decision, as written to the sinks.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct JsonEvent {
    pub time: String,
    pub decision: &'static str,
    pub mode: &'static str,
    pub op: &'static str,
    /// The mechanism that judged it: `lsm`, `cgroup_sock_addr`, `landlock`, `kill`.
    pub backend: &'static str,
    /// What was done about it: `refuse` (the call failed, nothing happened), `kill` (it happened,
    /// and the process was killed before it returned to user space), `none` (audit mode).
    pub enforcement: &'static str,
    pub task: String,
    /// The task instance (`corral run`) the process belongs to; `null` for processes that
    /// joined through a selector. Filled in by the daemon.
    pub instance: Option<String>,
    /// The tasks of the instances that started this one, nearest first (`corral run` from
    /// inside a task: a sub-task). Filled in by the daemon.
    pub parent_tasks: Vec<String>,
    pub reason: &'static str,
    pub target: Target,
    pub process: Process,
}

#[derive(Debug, Clone, Serialize, PartialEq)]
#[serde(untagged)]
pub enum Target {
    /// exec, open, mmap, rename and unlink.
    File {
        path: Option<String>,
        #[serde(skip_serializing_if = "Option::is_none")]
        access: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    /// connect over IPv4 or IPv6.
    Inet {
        addr: String,
        port: u16,
        family: &'static str,
        proto: &'static str,
    },
    /// connect of an `AF_UNIX` socket (`@name` for abstract addresses).
    Unix {
        path: String,
        family: &'static str,
        proto: &'static str,
    },
    /// connect with a family no rule can allow.
    OtherFamily { family: u32, proto: &'static str },
    /// `bpf()`: the command.
    Bpf { cmd: u32 },
    /// A raw or packet socket.
    Socket {
        family: u32,
        r#type: u32,
        protocol: u32,
    },
    /// ptrace (mode bits) or a signal aimed at a process outside the task.
    Process {
        pid: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<u32>,
    },
    /// Kernel code or data load: the kernel's read-file/load-data id.
    KernelLoad { id: u32 },
    /// A mount change or hard link (no detail).
    Mount {},
    /// `perf_event_open`: the kind of access asked (the kernel's `PERF_SECURITY_*`).
    Perf { r#type: u32 },
    /// userfaultfd: the anonymous inode the process tried to create (`"[userfaultfd]"`).
    Anon { anon: &'static str },
}

#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct Process {
    pub pid: u32,
    pub tgid: u32,
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    pub comm: String,
    pub exe: Option<String>,
}

/// Reads a record out of the ring buffer's bytes: the head and the path bytes of its size
/// class (see `agent_common::event`); the rest of `path` is zero.
pub fn parse_record(bytes: &[u8]) -> Result<Event, DecodeError> {
    if !(EVENT_HEAD_SIZE..=EVENT_SIZE).contains(&bytes.len()) {
        return Err(DecodeError::Size { len: bytes.len() });
    }
    // SAFETY: `Event` is plain integers: all-zero is valid, and so is any byte copied over it.
    // The copy stays within both (`bytes.len() <= EVENT_SIZE`).
    let mut ev: Event = unsafe { std::mem::zeroed() };
    unsafe {
        std::ptr::copy_nonoverlapping(bytes.as_ptr(), (&raw mut ev).cast::<u8>(), bytes.len());
    }
    // A path never reaches past the bytes the record carries.
    ev.path_len = ev.path_len.min((bytes.len() - EVENT_HEAD_SIZE) as u32);
    Ok(ev)
}

/// Turns a kernel record into the JSON event. `tasks` maps task ids to names; `exe` resolves a
/// process's executable (the daemon reads `/proc/<tgid>/exe`).
pub fn to_json(
    ev: &Event,
    tasks: &HashMap<u32, String>,
    clock: &BootClock,
    exe: impl FnOnce(u32) -> Option<String>,
) -> Result<JsonEvent, DecodeError> {
    to_json_with_parent(ev, tasks, clock, exe, proc_ppid)
}

/// As `to_json`; `parent` finds the parent of a process whose record has none (the daemon
/// reads `/proc/<tgid>/stat`, through its cache).
pub fn to_json_with_parent(
    ev: &Event,
    tasks: &HashMap<u32, String>,
    clock: &BootClock,
    exe: impl FnOnce(u32) -> Option<String>,
    parent: impl FnOnce(u32) -> Option<u32>,
) -> Result<JsonEvent, DecodeError> {
    let op = Op::try_from(ev.op)?;
    let decision = Decision::try_from(ev.decision)?;
    let mode = Mode::try_from(ev.mode)?;
    let reason = Reason::try_from(ev.reason)?;
    let backend = Backend::try_from(ev.backend)?;
    let task = tasks
        .get(&ev.task_id)
        .cloned()
        .unwrap_or_else(|| format!("unknown-task-{}", ev.task_id));
    Ok(JsonEvent {
        time: clock.rfc3339(ev.time_ns),
        decision: decision.as_str(),
        mode: mode.as_str(),
        op: op.as_str(),
        backend: backend.as_str(),
        enforcement: enforcement(decision, backend),
        task,
        instance: None,
        parent_tasks: Vec::new(),
        reason: reason.as_str(),
        target: target(op, ev)?,
        process: Process {
            pid: ev.pid,
            tgid: ev.tgid,
            // cgroup programs cannot read the parent; the daemon looks it up while it can.
            ppid: if ev.ppid == 0 {
                parent(ev.tgid).unwrap_or(0)
            } else {
                ev.ppid
            },
            uid: ev.uid,
            gid: ev.gid,
            comm: text(&ev.comm[..nul_len(&ev.comm)]),
            exe: exe(ev.tgid),
        },
    })
}

const AF_UNIX: u32 = 1;
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

fn target(op: Op, ev: &Event) -> Result<Target, DecodeError> {
    line::target_view(op, ev).map(line::TargetView::into_target)
}

/// What was done about a decision: `kill`, `refuse` or `none`.
const fn enforcement(decision: Decision, backend: Backend) -> &'static str {
    match (decision, backend) {
        (Decision::Denied, Backend::Kill) => "kill",
        (Decision::Denied, _) => "refuse",
        _ => "none",
    }
}

fn access_name(access: u32) -> &'static str {
    if access & Access::EXEC != 0 {
        return "exec";
    }
    match (access & Access::READ != 0, access & Access::WRITE != 0) {
        (true, true) => "read_write",
        (true, false) => "read",
        (false, true) => "write",
        (false, false) => "none",
    }
}

fn unix_proto(proto: Proto) -> &'static str {
    match proto {
        Proto::Tcp => "stream",
        Proto::Udp => "dgram",
        Proto::Seqpacket => "seqpacket",
        Proto::Other => "other",
    }
}

/// `@name` for abstract addresses (leading NUL), the path otherwise.
fn unix_name(addr: &[u8]) -> String {
    match addr.split_first() {
        Some((0, name)) => format!("@{}", text(name)),
        _ => text(addr),
    }
}

fn nul_len(bytes: &[u8]) -> usize {
    bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())
}

/// Kernel bytes as text. Invalid UTF-8 is replaced (U+FFFD) so the JSON line stays valid.
fn text(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

fn errno_name(errno: i32) -> String {
    match errno {
        libc::ENAMETOOLONG => "ENAMETOOLONG".to_owned(),
        libc::ENOENT => "ENOENT".to_owned(),
        libc::EINVAL => "EINVAL".to_owned(),
        libc::EFAULT => "EFAULT".to_owned(),
        other => format!("errno {other}"),
    }
}

/// Parent pid of a live process, from `/proc/<tgid>/stat` (after the `)` that ends `comm`).
#[must_use]
pub fn proc_ppid(tgid: u32) -> Option<u32> {
    let stat = fs::read_to_string(format!("/proc/{tgid}/stat")).ok()?;
    let rest = &stat[stat.rfind(')')? + 1..];
    rest.split_whitespace().nth(1)?.parse().ok()
}

/// `/proc/<tgid>/exe` of a live process.
#[must_use]
pub fn proc_exe(tgid: u32) -> Option<String> {
    fs::read_link(format!("/proc/{tgid}/exe"))
        .ok()
        .map(|p| p.to_string_lossy().into_owned())
}

/// Wall-clock time now, for events the daemon itself emits.
#[must_use]
pub fn now_rfc3339() -> String {
    humantime::format_rfc3339_micros(SystemTime::now()).to_string()
}

#[cfg(test)]
mod tests;
