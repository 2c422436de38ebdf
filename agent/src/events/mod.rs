//! Ring-buffer records → JSON lines. The JSON-lines contract (every field of an event, in
//! order) is written down once, in `line.rs`, the writer that produces it.

mod clock;
mod exe_cache;
mod json_text;
mod line;
mod record;

use std::{collections::HashMap, fs, time::SystemTime};

use agent_common::{Access, Backend, Decision, EVENT_HEAD_SIZE, EVENT_SIZE, Proto, UnknownCode};

pub use clock::BootClock;
pub use exe_cache::ExeCache;
pub use line::{Names, write_line};
pub use record::{Record, event_bytes};

#[derive(Debug, thiserror::Error)]
pub enum DecodeError {
    #[error("event record of {len} bytes, expected {EVENT_HEAD_SIZE} to {EVENT_SIZE}")]
    Size { len: usize },
    #[error("event record: {0}")]
    Code(#[from] UnknownCode),
    #[error("cannot encode event: {0}")]
    Encode(String),
}

/// Checks a ring buffer record's size and reads it in place (see `Record`).
pub fn parse_record(bytes: &[u8]) -> Result<Record<'_>, DecodeError> {
    Record::parse(bytes)
}

/// The JSON event of a kernel record, as a value (`write_line`'s line, parsed). `tasks` maps
/// task ids to names; `exe` resolves a process's executable (the daemon reads
/// `/proc/<tgid>/exe`).
pub fn to_json(
    rec: &Record<'_>,
    tasks: &HashMap<u32, String>,
    clock: &BootClock,
    exe: impl FnOnce(u32) -> Option<String>,
) -> Result<serde_json::Value, DecodeError> {
    let exe = exe(rec.tgid());
    let parent = if rec.ppid() == 0 {
        proc_ppid(rec.tgid())
    } else {
        None
    };
    let names = Names {
        task: tasks.get(&rec.task_id()).map(String::as_str),
        exe: exe.as_deref(),
        parent,
        ..Names::default()
    };
    let mut line = Vec::new();
    write_line(rec, &names, clock, &mut line)?;
    serde_json::from_slice(&line).map_err(|e| DecodeError::Encode(e.to_string()))
}

const AF_UNIX: u32 = 1;
const AF_INET: u32 = 2;
const AF_INET6: u32 = 10;

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

fn nul_len(bytes: &[u8]) -> usize {
    bytes.iter().position(|&b| b == 0).unwrap_or(bytes.len())
}

fn errno_name(errno: i32) -> String {
    match errno {
        libc::ENAMETOOLONG => "ENAMETOOLONG".to_owned(),
        libc::ENOENT => "ENOENT".to_owned(),
        libc::EINVAL => "EINVAL".to_owned(),
        libc::EFAULT => "EFAULT".to_owned(),
        // A file outside the caller's mount namespace (a detached mount tree).
        libc::EXDEV => "EXDEV".to_owned(),
        // A file reached by no path from the caller's root (a disconnected dentry, or a file
        // outside a bind mount's subtree, opened by handle): `d_path` could only name it `/`.
        libc::ESTALE => "ESTALE".to_owned(),
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
