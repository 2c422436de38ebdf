//! An event's JSON line written straight from the kernel record into the caller's buffer: the
//! same bytes as `serde_json::to_string(&to_json(..))`, without the owned `JsonEvent` (whose
//! time, task, comm, path, address and executable were one allocation each, per event). The
//! fields borrow from the record and from the names the daemon looked up; only rare targets
//! (an unresolved path's error, a unix socket address) still own their text.

use std::{
    borrow::Cow,
    net::{Ipv4Addr, Ipv6Addr},
    time::SystemTime,
};

use agent_common::{Backend, Decision, Event, Mode, Op, Proto, Reason};
use serde::{Serialize, Serializer};

use super::{
    AF_INET, AF_INET6, AF_UNIX, BootClock, DecodeError, Target, access_name, errno_name, nul_len,
    unix_name, unix_proto,
};

/// What the daemon knows about a record's process and task beyond the record's bytes.
#[derive(Debug, Clone, Copy, Default)]
pub struct Names<'a> {
    /// The task's name; `None` writes `unknown-task-<id>`.
    pub task: Option<&'a str>,
    /// The task instance (`null` for processes that joined through a selector).
    pub instance: Option<&'a str>,
    /// The tasks of the instances that started this one, nearest first.
    pub parent_tasks: &'a [String],
    /// The process's executable.
    pub exe: Option<&'a str>,
    /// The parent, for records whose program could not read it (`ppid` 0).
    pub parent: Option<u32>,
}

/// Appends the JSON line of `ev` (without `\n`) to `out`. On an error nothing usable was
/// written: the caller truncates `out` back.
pub fn write_line(
    ev: &Event,
    names: &Names<'_>,
    clock: &BootClock,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let op = Op::try_from(ev.op)?;
    let decision = Decision::try_from(ev.decision)?;
    let mode = Mode::try_from(ev.mode)?;
    let reason = Reason::try_from(ev.reason)?;
    let backend = Backend::try_from(ev.backend)?;
    let line = Line {
        time: Rfc3339(clock.wall_time(ev.time_ns)),
        decision: decision.as_str(),
        mode: mode.as_str(),
        op: op.as_str(),
        backend: backend.as_str(),
        enforcement: super::enforcement(decision, backend),
        task: names
            .task
            .map_or(TaskName::Unknown(ev.task_id), TaskName::Known),
        instance: names.instance,
        parent_tasks: names.parent_tasks,
        reason: reason.as_str(),
        target: target_view(op, ev)?,
        process: ProcessView {
            pid: ev.pid,
            tgid: ev.tgid,
            ppid: if ev.ppid == 0 {
                names.parent.unwrap_or(0)
            } else {
                ev.ppid
            },
            uid: ev.uid,
            gid: ev.gid,
            comm: String::from_utf8_lossy(&ev.comm[..nul_len(&ev.comm)]),
            exe: names.exe,
        },
    };
    serde_json::to_writer(out, &line).map_err(|e| DecodeError::Encode(e.to_string()))
}

/// `JsonEvent`, borrowed; same fields, same order.
#[derive(Serialize)]
struct Line<'a> {
    time: Rfc3339,
    decision: &'static str,
    mode: &'static str,
    op: &'static str,
    backend: &'static str,
    enforcement: &'static str,
    task: TaskName<'a>,
    instance: Option<&'a str>,
    parent_tasks: &'a [String],
    reason: &'static str,
    target: TargetView<'a>,
    process: ProcessView<'a>,
}

/// `Process`, borrowed.
#[derive(Serialize)]
struct ProcessView<'a> {
    pid: u32,
    tgid: u32,
    ppid: u32,
    uid: u32,
    gid: u32,
    comm: Cow<'a, str>,
    exe: Option<&'a str>,
}

/// `Target`, borrowed (see there for what each variant is).
#[derive(Debug, Serialize, PartialEq)]
#[serde(untagged)]
pub(super) enum TargetView<'a> {
    File {
        path: Option<Cow<'a, str>>,
        #[serde(skip_serializing_if = "Option::is_none")]
        access: Option<&'static str>,
        #[serde(skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
    Inet {
        addr: IpText,
        port: u16,
        family: &'static str,
        proto: &'static str,
    },
    Unix {
        path: String,
        family: &'static str,
        proto: &'static str,
    },
    OtherFamily {
        family: u32,
        proto: &'static str,
    },
    Bpf {
        cmd: u32,
    },
    Socket {
        family: u32,
        r#type: u32,
        protocol: u32,
    },
    Process {
        pid: u32,
        #[serde(skip_serializing_if = "Option::is_none")]
        mode: Option<u32>,
        #[serde(skip_serializing_if = "Option::is_none")]
        signal: Option<u32>,
    },
    KernelLoad {
        id: u32,
    },
    Mount {},
    Perf {
        r#type: u32,
    },
    Anon {
        anon: &'static str,
    },
}

impl TargetView<'_> {
    /// The owned `Target` of `JsonEvent`.
    pub(super) fn into_target(self) -> Target {
        match self {
            Self::File {
                path,
                access,
                error,
            } => Target::File {
                path: path.map(Cow::into_owned),
                access,
                error,
            },
            Self::Inet {
                addr,
                port,
                family,
                proto,
            } => Target::Inet {
                addr: addr.to_string(),
                port,
                family,
                proto,
            },
            Self::Unix {
                path,
                family,
                proto,
            } => Target::Unix {
                path,
                family,
                proto,
            },
            Self::OtherFamily { family, proto } => Target::OtherFamily { family, proto },
            Self::Bpf { cmd } => Target::Bpf { cmd },
            Self::Socket {
                family,
                r#type,
                protocol,
            } => Target::Socket {
                family,
                r#type,
                protocol,
            },
            Self::Process { pid, mode, signal } => Target::Process { pid, mode, signal },
            Self::KernelLoad { id } => Target::KernelLoad { id },
            Self::Mount {} => Target::Mount {},
            Self::Perf { r#type } => Target::Perf { r#type },
            Self::Anon { anon } => Target::Anon { anon },
        }
    }
}

/// The target of `op` in `ev`, borrowing the path bytes when they are valid UTF-8.
pub(super) fn target_view(op: Op, ev: &Event) -> Result<TargetView<'_>, DecodeError> {
    let path_len = (ev.path_len as usize).min(ev.path.len());
    let path = &ev.path[..path_len];
    match op {
        Op::Exec | Op::Open | Op::Mmap | Op::Rename | Op::Unlink => {
            let error = (ev.path_error != 0).then(|| errno_name(-ev.path_error));
            // An mprotect refusal names no path (the kernel cannot resolve it there).
            let known = error.is_none() && !(op == Op::Mmap && path_len == 0);
            Ok(TargetView::File {
                path: known.then(|| String::from_utf8_lossy(path)),
                access: (op != Op::Exec).then(|| access_name(ev.access)),
                error,
            })
        }
        Op::Bpf => Ok(TargetView::Bpf { cmd: ev.access }),
        Op::Socket => Ok(TargetView::Socket {
            family: ev.family,
            r#type: ev.access,
            protocol: ev.proto,
        }),
        Op::Ptrace | Op::Setns => Ok(TargetView::Process {
            pid: ev.target_pid,
            mode: Some(ev.access),
            signal: None,
        }),
        Op::Signal => Ok(TargetView::Process {
            pid: ev.target_pid,
            mode: None,
            signal: Some(ev.access),
        }),
        Op::KernelLoad => Ok(TargetView::KernelLoad { id: ev.access }),
        Op::Mount | Op::Link => Ok(TargetView::Mount {}),
        Op::Perf => Ok(TargetView::Perf { r#type: ev.access }),
        Op::Userfaultfd => Ok(TargetView::Anon {
            anon: "[userfaultfd]",
        }),
        Op::Connect | Op::Sendmsg => {
            let proto = Proto::try_from(ev.proto)?;
            Ok(match ev.family {
                AF_INET => TargetView::Inet {
                    addr: IpText::V4(Ipv4Addr::new(
                        ev.addr[0], ev.addr[1], ev.addr[2], ev.addr[3],
                    )),
                    port: ev.port as u16,
                    family: "ipv4",
                    proto: proto.as_str(),
                },
                AF_INET6 => TargetView::Inet {
                    addr: IpText::V6(Ipv6Addr::from(ev.addr)),
                    port: ev.port as u16,
                    family: "ipv6",
                    proto: proto.as_str(),
                },
                AF_UNIX => TargetView::Unix {
                    path: unix_name(path),
                    family: "unix",
                    proto: unix_proto(proto),
                },
                family => TargetView::OtherFamily {
                    family,
                    proto: proto.as_str(),
                },
            })
        }
    }
}

/// An address, written as its `Display` text (no intermediate `String`).
#[derive(Debug, PartialEq)]
pub(super) enum IpText {
    V4(Ipv4Addr),
    V6(Ipv6Addr),
}

impl std::fmt::Display for IpText {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::V4(a) => a.fmt(f),
            Self::V6(a) => a.fmt(f),
        }
    }
}

impl Serialize for IpText {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

/// A wall-clock time, written as `BootClock::rfc3339` writes it.
struct Rfc3339(SystemTime);

impl Serialize for Rfc3339 {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(&humantime::format_rfc3339_micros(self.0))
    }
}

/// A task's name, or `unknown-task-<id>` for an id the daemon does not know.
enum TaskName<'a> {
    Known(&'a str),
    Unknown(u32),
}

impl Serialize for TaskName<'_> {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        match self {
            Self::Known(name) => s.serialize_str(name),
            Self::Unknown(id) => s.collect_str(&format_args!("unknown-task-{id}")),
        }
    }
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
