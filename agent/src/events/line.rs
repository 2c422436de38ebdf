//! An event's JSON line written straight from the kernel record into the caller's buffer. This
//! is the one place that lists the fields of an event (the JSON-lines contract, in order):
//!
//! - `time`: RFC 3339, microseconds, UTC.
//! - `decision`, `mode`, `op`: the kernel's codes by name.
//! - `backend`: the mechanism that judged it: `lsm`, `cgroup_sock_addr`, `landlock`, `kill`.
//! - `enforcement`: what was done about it: `refuse` (the call failed, nothing happened), `kill`
//!   (it happened, and the process was killed before it returned to user space), `none` (audit
//!   mode, allowed).
//! - `task`: the task's name (`unknown-task-<id>` for an id the daemon does not know).
//! - `instance`: the task instance (`corral run`) the process belongs to; `null` for processes
//!   that joined through a selector.
//! - `parent_tasks`: the tasks of the instances that started this one, nearest first (`corral
//!   run` from inside a task: a sub-task).
//! - `reason`: why the operation missed the allow-list (`none` when allowed).
//! - `target`: depends on `op` (see `write_target`).
//! - `process`: `pid`, `tgid`, `ppid`, `uid`, `gid`, `comm`, `exe` (`null` when unknown).
//!
//! Fixed names and numbers are copied as they are; only text that can hold arbitrary bytes
//! (paths, comm, task names, executables, instances) is escaped, and kernel bytes that are not
//! UTF-8 are replaced (U+FFFD) as `String::from_utf8_lossy` does, so a line is valid JSON and
//! never holds a raw newline.

use std::{io::Write as _, net::Ipv6Addr};

use agent_common::{Backend, Decision, Mode, Op, Proto, Reason};

use super::json_text::{lossy, lossy_inner, number, opt_string, string};
use super::{
    AF_INET, AF_INET6, AF_UNIX, BootClock, DecodeError, Record, access_name, errno_name, nul_len,
    unix_proto,
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

/// Appends the JSON line of `rec` (without `\n`) to `out`. On an error nothing usable was
/// written: the caller truncates `out` back.
pub fn write_line(
    rec: &Record<'_>,
    names: &Names<'_>,
    clock: &BootClock,
    out: &mut Vec<u8>,
) -> Result<(), DecodeError> {
    let op = Op::try_from(rec.op())?;
    let decision = Decision::try_from(rec.decision())?;
    let mode = Mode::try_from(rec.mode())?;
    let reason = Reason::try_from(rec.reason())?;
    let backend = Backend::try_from(rec.backend())?;
    // Checked before anything is written.
    let proto = match op {
        Op::Connect | Op::Sendmsg => Some(Proto::try_from(rec.proto())?),
        _ => None,
    };
    out.extend_from_slice(b"{\"time\":\"");
    clock.write_rfc3339(rec.time_ns(), out);
    out.extend_from_slice(b"\",\"decision\":\"");
    out.extend_from_slice(decision.as_str().as_bytes());
    out.extend_from_slice(b"\",\"mode\":\"");
    out.extend_from_slice(mode.as_str().as_bytes());
    out.extend_from_slice(b"\",\"op\":\"");
    out.extend_from_slice(op.as_str().as_bytes());
    out.extend_from_slice(b"\",\"backend\":\"");
    out.extend_from_slice(backend.as_str().as_bytes());
    out.extend_from_slice(b"\",\"enforcement\":\"");
    out.extend_from_slice(super::enforcement(decision, backend).as_bytes());
    out.extend_from_slice(b"\",\"task\":");
    if let Some(task) = names.task {
        string(out, task);
    } else {
        out.extend_from_slice(b"\"unknown-task-");
        number(out, rec.task_id());
        out.push(b'"');
    }
    out.extend_from_slice(b",\"instance\":");
    opt_string(out, names.instance);
    out.extend_from_slice(b",\"parent_tasks\":[");
    for (i, parent) in names.parent_tasks.iter().enumerate() {
        if i > 0 {
            out.push(b',');
        }
        string(out, parent);
    }
    out.extend_from_slice(b"],\"reason\":\"");
    out.extend_from_slice(reason.as_str().as_bytes());
    out.extend_from_slice(b"\",\"target\":");
    write_target(op, proto, rec, out);
    out.extend_from_slice(b",\"process\":{\"pid\":");
    number(out, rec.pid());
    out.extend_from_slice(b",\"tgid\":");
    number(out, rec.tgid());
    out.extend_from_slice(b",\"ppid\":");
    // cgroup programs cannot read the parent; the daemon looks it up while it can.
    let ppid = match rec.ppid() {
        0 => names.parent.unwrap_or(0),
        ppid => ppid,
    };
    number(out, ppid);
    out.extend_from_slice(b",\"uid\":");
    number(out, rec.uid());
    out.extend_from_slice(b",\"gid\":");
    number(out, rec.gid());
    out.extend_from_slice(b",\"comm\":");
    let comm = rec.comm();
    lossy(out, &comm[..nul_len(&comm)]);
    out.extend_from_slice(b",\"exe\":");
    opt_string(out, names.exe);
    out.extend_from_slice(b"}}");
    Ok(())
}

/// The target of `op` (`proto`: connect and sendmsg's, already checked):
///
/// - exec, open, mmap, rename, unlink, create, setattr: `{"path", "access", "error"}`: `path`
///   is `null` when the kernel could not resolve it (`error` then names the errno) or an
///   mprotect names none; `access` (`read`, `write`, `read_write`, `exec`, `none`) is absent for
///   exec, `error` when there is none.
/// - connect, sendmsg: `{"addr", "port", "family": "ipv4"|"ipv6", "proto"}`; `AF_UNIX`:
///   `{"path" ("@name" for abstract addresses), "family": "unix", "proto": "stream"|"dgram"|
///   "seqpacket"|"other"}`; any other family: `{"family": <number>, "proto"}`.
/// - bpf: `{"cmd"}`; socket: `{"family", "type", "protocol"}` (numbers); ptrace, and setns
///   (refused by the same ptrace check): `{"pid", "mode"}`; signal: `{"pid", "signal"}`;
///   `kernel_load`: `{"id"}`; mount, link: `{}`; perf: `{"type"}` (`PERF_SECURITY_*`);
///   userfaultfd: `{"anon": "[userfaultfd]"}`.
fn write_target(op: Op, proto: Option<Proto>, rec: &Record<'_>, out: &mut Vec<u8>) {
    let path = rec.path();
    match (op, proto) {
        (
            Op::Exec | Op::Open | Op::Mmap | Op::Rename | Op::Unlink | Op::Create | Op::Setattr,
            _,
        ) => {
            let error = rec.path_error();
            out.extend_from_slice(b"{\"path\":");
            // An mprotect refusal names no path (the kernel cannot resolve it there).
            if error != 0 || (op == Op::Mmap && path.is_empty()) {
                out.extend_from_slice(b"null");
            } else {
                lossy(out, path);
            }
            if op != Op::Exec {
                out.extend_from_slice(b",\"access\":\"");
                out.extend_from_slice(access_name(rec.access()).as_bytes());
                out.push(b'"');
            }
            if error != 0 {
                out.extend_from_slice(b",\"error\":\"");
                out.extend_from_slice(errno_name(error.wrapping_neg()).as_bytes());
                out.push(b'"');
            }
            out.push(b'}');
        }
        (Op::Connect | Op::Sendmsg, Some(proto)) => match rec.family() {
            family @ (AF_INET | AF_INET6) => {
                let addr = rec.addr();
                out.extend_from_slice(b"{\"addr\":\"");
                // Into a `Vec`, writing cannot fail.
                if family == AF_INET {
                    // `Ipv4Addr`'s text, without the formatter.
                    for (i, &octet) in addr[..4].iter().enumerate() {
                        if i > 0 {
                            out.push(b'.');
                        }
                        number(out, octet);
                    }
                } else {
                    let _ = write!(out, "{}", Ipv6Addr::from(addr));
                }
                out.extend_from_slice(b"\",\"port\":");
                number(out, rec.port() as u16);
                out.extend_from_slice(if family == AF_INET {
                    b",\"family\":\"ipv4\",\"proto\":\"".as_slice()
                } else {
                    b",\"family\":\"ipv6\",\"proto\":\"".as_slice()
                });
                out.extend_from_slice(proto.as_str().as_bytes());
                out.extend_from_slice(b"\"}");
            }
            AF_UNIX => {
                out.extend_from_slice(b"{\"path\":\"");
                // `@name` for abstract addresses (leading NUL).
                match path.split_first() {
                    Some((0, name)) => {
                        out.push(b'@');
                        lossy_inner(out, name);
                    }
                    _ => lossy_inner(out, path),
                }
                out.extend_from_slice(b"\",\"family\":\"unix\",\"proto\":\"");
                out.extend_from_slice(unix_proto(proto).as_bytes());
                out.extend_from_slice(b"\"}");
            }
            family => {
                out.extend_from_slice(b"{\"family\":");
                number(out, family);
                out.extend_from_slice(b",\"proto\":\"");
                out.extend_from_slice(proto.as_str().as_bytes());
                out.extend_from_slice(b"\"}");
            }
        },
        (Op::Bpf, _) => number_object(out, b"{\"cmd\":", rec.access()),
        (Op::Socket, _) => {
            out.extend_from_slice(b"{\"family\":");
            number(out, rec.family());
            out.extend_from_slice(b",\"type\":");
            number(out, rec.access());
            out.extend_from_slice(b",\"protocol\":");
            number(out, rec.proto());
            out.push(b'}');
        }
        (Op::Ptrace | Op::Setns | Op::Signal, _) => {
            out.extend_from_slice(b"{\"pid\":");
            number(out, rec.target_pid());
            out.extend_from_slice(if op == Op::Signal {
                b",\"signal\":".as_slice()
            } else {
                b",\"mode\":".as_slice()
            });
            number(out, rec.access());
            out.push(b'}');
        }
        (Op::KernelLoad, _) => number_object(out, b"{\"id\":", rec.access()),
        // connect and sendmsg always come with their `proto`.
        (Op::Mount | Op::Link, _) | (Op::Connect | Op::Sendmsg, None) => {
            out.extend_from_slice(b"{}");
        }
        (Op::Perf, _) => number_object(out, b"{\"type\":", rec.access()),
        (Op::Userfaultfd, _) => out.extend_from_slice(b"{\"anon\":\"[userfaultfd]\"}"),
        (Op::IoUring, _) => out.extend_from_slice(b"{\"anon\":\"[io_uring]\"}"),
    }
}

/// `{"key":n}`, `key` given with its opening.
fn number_object(out: &mut Vec<u8>, open: &[u8], n: u32) {
    out.extend_from_slice(open);
    number(out, n);
    out.push(b'}');
}

#[cfg(test)]
#[path = "line_tests.rs"]
mod tests;
