use agent_common::{Access, Backend, Decision, Event, Mode, Op, PATH_MAX, Proto, Reason};

use super::*;
use crate::events::Record;

/// Every op code the contract knows.
fn ops() -> Vec<Op> {
    (0..=agent_common::OP_CODE_MAX)
        .filter_map(|code| Op::try_from(code).ok())
        .collect()
}

fn blank() -> Event {
    // SAFETY: `Event` is plain integers; all-zero is valid.
    unsafe { std::mem::zeroed() }
}

fn set_path(ev: &mut Event, path: &[u8]) {
    ev.path = [0; PATH_MAX];
    ev.path[..path.len()].copy_from_slice(path);
    ev.path_len = path.len() as u32;
}

/// The reference the writer is checked against, written independently of it: the owned
/// serde structs the daemon used to serialise (derive order = field order), filled from the
/// `Event` the way the old decoder did.
mod reference {
    use std::net::{Ipv4Addr, Ipv6Addr};

    use agent_common::{Access, Backend, Decision, Event, Mode, Op, Proto, Reason};
    use serde::Serialize;

    use crate::events::{BootClock, Names};

    #[derive(Serialize)]
    struct JsonEvent {
        time: String,
        decision: &'static str,
        mode: &'static str,
        op: &'static str,
        backend: &'static str,
        enforcement: &'static str,
        task: String,
        instance: Option<String>,
        parent_tasks: Vec<String>,
        reason: &'static str,
        target: Target,
        process: Process,
    }

    #[derive(Serialize)]
    #[serde(untagged)]
    enum Target {
        File {
            path: Option<String>,
            #[serde(skip_serializing_if = "Option::is_none")]
            access: Option<&'static str>,
            #[serde(skip_serializing_if = "Option::is_none")]
            error: Option<String>,
        },
        Inet {
            addr: String,
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

    #[derive(Serialize)]
    struct Process {
        pid: u32,
        tgid: u32,
        ppid: u32,
        uid: u32,
        gid: u32,
        comm: String,
        exe: Option<String>,
    }

    fn text(bytes: &[u8]) -> String {
        String::from_utf8_lossy(bytes).into_owned()
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

    fn target(op: Op, ev: &Event, path_len: usize) -> Result<Target, String> {
        let path = &ev.path[..path_len];
        Ok(match op {
            Op::Exec | Op::Open | Op::Mmap | Op::Rename | Op::Unlink | Op::Create | Op::Setattr => {
                let error = (ev.path_error != 0).then(|| match -ev.path_error {
                    libc::ENAMETOOLONG => "ENAMETOOLONG".to_owned(),
                    libc::ENOENT => "ENOENT".to_owned(),
                    libc::EINVAL => "EINVAL".to_owned(),
                    libc::EFAULT => "EFAULT".to_owned(),
                    libc::EXDEV => "EXDEV".to_owned(),
                    libc::ESTALE => "ESTALE".to_owned(),
                    other => format!("errno {other}"),
                });
                let known = error.is_none() && !(op == Op::Mmap && path_len == 0);
                Target::File {
                    path: known.then(|| text(path)),
                    access: (op != Op::Exec).then(|| access_name(ev.access)),
                    error,
                }
            }
            Op::Bpf => Target::Bpf { cmd: ev.access },
            Op::Socket => Target::Socket {
                family: ev.family,
                r#type: ev.access,
                protocol: ev.proto,
            },
            Op::Ptrace | Op::Setns => Target::Process {
                pid: ev.target_pid,
                mode: Some(ev.access),
                signal: None,
            },
            Op::Signal => Target::Process {
                pid: ev.target_pid,
                mode: None,
                signal: Some(ev.access),
            },
            Op::KernelLoad => Target::KernelLoad { id: ev.access },
            Op::Mount | Op::Link => Target::Mount {},
            Op::Perf => Target::Perf { r#type: ev.access },
            Op::Userfaultfd => Target::Anon {
                anon: "[userfaultfd]",
            },
            Op::IoUring => Target::Anon { anon: "[io_uring]" },
            Op::Connect | Op::Sendmsg => {
                let proto = Proto::try_from(ev.proto).map_err(|e| format!("event record: {e}"))?;
                let a = ev.addr;
                match ev.family {
                    2 => Target::Inet {
                        addr: Ipv4Addr::new(a[0], a[1], a[2], a[3]).to_string(),
                        port: ev.port as u16,
                        family: "ipv4",
                        proto: proto.as_str(),
                    },
                    10 => Target::Inet {
                        addr: Ipv6Addr::from(a).to_string(),
                        port: ev.port as u16,
                        family: "ipv6",
                        proto: proto.as_str(),
                    },
                    1 => Target::Unix {
                        path: match path.split_first() {
                            Some((0, name)) => format!("@{}", text(name)),
                            _ => text(path),
                        },
                        family: "unix",
                        proto: match proto {
                            Proto::Tcp => "stream",
                            Proto::Udp => "dgram",
                            Proto::Seqpacket => "seqpacket",
                            Proto::Other => "other",
                        },
                    },
                    family => Target::OtherFamily {
                        family,
                        proto: proto.as_str(),
                    },
                }
            }
        })
    }

    /// The line of `ev` whose record carries `carried` path bytes.
    pub fn line(
        ev: &Event,
        carried: usize,
        names: &Names<'_>,
        clock: &BootClock,
    ) -> Result<String, String> {
        let code = |e: agent_common::UnknownCode| format!("event record: {e}");
        let op = Op::try_from(ev.op).map_err(code)?;
        let decision = Decision::try_from(ev.decision).map_err(code)?;
        let mode = Mode::try_from(ev.mode).map_err(code)?;
        let reason = Reason::try_from(ev.reason).map_err(code)?;
        let backend = Backend::try_from(ev.backend).map_err(code)?;
        let path_len = (ev.path_len as usize).min(carried);
        let json = JsonEvent {
            time: clock.rfc3339(ev.time_ns),
            decision: decision.as_str(),
            mode: mode.as_str(),
            op: op.as_str(),
            backend: backend.as_str(),
            enforcement: match (decision, backend) {
                (Decision::Denied, Backend::Kill) => "kill",
                (Decision::Denied, _) => "refuse",
                _ => "none",
            },
            task: names
                .task
                .map_or_else(|| format!("unknown-task-{}", ev.task_id), str::to_owned),
            instance: names.instance.map(str::to_owned),
            parent_tasks: names.parent_tasks.to_vec(),
            reason: reason.as_str(),
            target: target(op, ev, path_len)?,
            process: Process {
                pid: ev.pid,
                tgid: ev.tgid,
                ppid: if ev.ppid == 0 {
                    names.parent.unwrap_or(0)
                } else {
                    ev.ppid
                },
                uid: ev.uid,
                gid: ev.gid,
                comm: text(&ev.comm[..ev.comm.iter().position(|&b| b == 0).unwrap_or(16)]),
                exe: names.exe.map(str::to_owned),
            },
        };
        serde_json::to_string(&json).map_err(|e| e.to_string())
    }
}

fn written(ev: &Event, names: &Names<'_>, clock: &BootClock) -> Result<String, String> {
    written_carrying(ev, PATH_MAX, names, clock)
}

/// The line of `ev`'s record with `carried` path bytes.
fn written_carrying(
    ev: &Event,
    carried: usize,
    names: &Names<'_>,
    clock: &BootClock,
) -> Result<String, String> {
    let mut out = b"previous line\n".to_vec();
    write_line(&Record::of_event(ev, carried), names, clock, &mut out)
        .map_err(|e| e.to_string())?;
    let line = out
        .strip_prefix(b"previous line\n".as_slice())
        .unwrap_or_else(|| panic!("expected write_line to append, not overwrite"));
    String::from_utf8(line.to_vec()).map_err(|e| format!("not UTF-8: {e}"))
}

/// Records covering every op, decision, mode and backend, odd bytes in every text field.
fn records() -> Vec<Event> {
    let paths: [&[u8]; 7] = [
        b"/etc/shadow",
        b"/tmp/a\xffb\nc",
        b"/tmp/quote\"back\\slash\ttab\x01ctl\x7f",
        b"\0abstract\xfe",
        b"/tmp/\xe2\x82",
        b"",
        &[b'x'; PATH_MAX],
    ];
    let comms: [&[u8]; 4] = [b"cat", b"a\"b\\c\nd", b"\xff\xfe", b"exactly16bytes!!"];
    let mut out = Vec::new();
    let ops = ops();
    assert!(ops.len() >= 16, "expected every op, got {ops:?}");
    for (i, op) in ops.iter().enumerate() {
        for (j, path) in paths.iter().enumerate() {
            let mut ev = blank();
            ev.time_ns = 1_000_000_007 * (i as u64 + 1) + j as u64;
            ev.op = *op as u32;
            ev.decision = [Decision::Denied, Decision::Audited, Decision::Allowed][j % 3] as u32;
            ev.mode = [Mode::Enforce, Mode::Audit][i % 2] as u32;
            ev.reason = [Reason::NotAllowed, Reason::None, Reason::Forbidden][(i + j) % 3] as u32;
            ev.backend = [
                Backend::Lsm,
                Backend::CgroupSockAddr,
                Backend::Landlock,
                Backend::Kill,
            ][(i + j) % 4] as u32;
            ev.task_id = 7;
            ev.pid = 4000 + i as u32;
            ev.tgid = 4000;
            ev.ppid = if j % 2 == 0 { 0 } else { 3999 };
            ev.uid = 1000;
            ev.gid = 100;
            ev.access = [
                Access::READ,
                Access::WRITE,
                Access::READ | Access::WRITE,
                Access::EXEC,
                0,
            ][(i + j) % 5];
            ev.family = [2, 10, 1, 17][j % 4];
            ev.proto = [Proto::Tcp, Proto::Udp, Proto::Seqpacket, Proto::Other][(i + j) % 4] as u32;
            ev.port = 443 + j as u32;
            ev.addr = [10, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 1, 2, 3, j as u8];
            ev.target_pid = 1;
            ev.instance = (j % 2) as u32;
            ev.path_error = if j == 5 { -libc::ENAMETOOLONG } else { 0 };
            let comm = comms[(i + j) % comms.len()];
            ev.comm[..comm.len()].copy_from_slice(comm);
            set_path(&mut ev, path);
            out.push(ev);
        }
    }
    out
}

#[test]
fn lines_are_byte_identical_to_the_owned_events_serialised() {
    let clock = BootClock::fixed(1_795_000_000_123_456_789);
    let parents = vec!["outer".to_owned(), "odd \"name\"\n".to_owned()];
    let all_names = [
        Names::default(),
        Names {
            task: Some("repo-coder"),
            instance: Some("0190c3a1-0000-8000-8000-000000000007"),
            parent_tasks: &parents,
            exe: Some("/usr/bin/c\u{fffd}t\n"),
            parent: Some(41),
        },
        Names {
            task: Some("t\u{e9}\\sk"),
            instance: None,
            parent_tasks: &[],
            exe: None,
            parent: None,
        },
    ];
    let mut checked = 0;
    for ev in records() {
        for names in &all_names {
            // Whole records, and records whose size class cuts the path short.
            for carried in [PATH_MAX, agent_common::PATH_CLASS_UNIX, 0] {
                let expected = reference::line(&ev, carried, names, &clock);
                let got = written_carrying(&ev, carried, names, &clock);
                assert_eq!(
                    got, expected,
                    "expected the same line as the owned event (op {}, path_len {}, {carried} path bytes carried)",
                    ev.op, ev.path_len
                );
                checked += 1;
            }
        }
    }
    assert_eq!(
        checked,
        ops().len() * 7 * 3 * 3,
        "expected every record checked"
    );
}

#[test]
fn a_line_never_contains_a_raw_newline_and_stays_valid_json() {
    let clock = BootClock::fixed(0);
    let names = Names {
        exe: Some("/bin/a\nb"),
        ..Names::default()
    };
    for ev in records() {
        let Ok(line) = written(&ev, &names, &clock) else {
            continue;
        };
        assert!(!line.contains('\n'), "expected no raw newline in {line}");
        let v: serde_json::Value = serde_json::from_str(&line)
            .unwrap_or_else(|e| panic!("expected valid JSON, got {e}: {line}"));
        assert_eq!(v["process"]["exe"], "/bin/a\nb", "expected the exe kept");
    }
}

#[test]
fn an_unknown_code_is_refused_like_to_json() {
    let mut ev = blank();
    ev.op = 99;
    let err = written(&ev, &Names::default(), &BootClock::fixed(0))
        .expect_err("an unknown op code must not be written");
    assert_eq!(err, "event record: unknown op code 99");
    ev.op = Op::Connect as u32;
    ev.proto = 77;
    let err = written(&ev, &Names::default(), &BootClock::fixed(0))
        .expect_err("an unknown proto code must not be written");
    assert_eq!(
        Err(err),
        reference::line(&ev, PATH_MAX, &Names::default(), &BootClock::fixed(0)),
        "expected the same error as to_json"
    );
}

#[test]
fn golden_lines_of_an_open_a_connect_and_a_unix_connect() {
    let clock = BootClock::fixed(1_795_000_000_123_456_789);
    let mut ev = blank();
    ev.time_ns = 1_000;
    ev.op = Op::Open as u32;
    ev.decision = Decision::Denied as u32;
    ev.mode = Mode::Enforce as u32;
    ev.reason = Reason::NotAllowed as u32;
    ev.backend = Backend::Lsm as u32;
    ev.task_id = 3;
    ev.pid = 12;
    ev.tgid = 11;
    ev.ppid = 0;
    ev.uid = 1000;
    ev.gid = 100;
    ev.access = Access::READ | Access::WRITE;
    ev.comm[..5].copy_from_slice(b"c\"\xffa\n");
    set_path(&mut ev, b"/tmp/q\"\\\x01\xe2\x82");
    let parents = vec!["outer".to_owned(), "x\ty".to_owned()];
    let names = Names {
        task: Some("repo-coder"),
        instance: Some("0190c3a1-0000-8000-8000-000000000007"),
        parent_tasks: &parents,
        exe: Some("/usr/bin/\u{e9}\u{7f}"),
        parent: Some(41),
    };
    assert_eq!(
        written(&ev, &names, &clock).as_deref(),
        Ok(concat!(
            r#"{"time":"2026-11-18T11:06:40.123457Z","decision":"denied","mode":"enforce","#,
            r#""op":"open","backend":"lsm","enforcement":"refuse","task":"repo-coder","#,
            r#""instance":"0190c3a1-0000-8000-8000-000000000007","parent_tasks":["outer","x\ty"],"#,
            r#""reason":"not_allowed","target":{"path":"/tmp/q\"\\\u0001�","access":"read_write"},"#,
            r#""process":{"pid":12,"tgid":11,"ppid":41,"uid":1000,"gid":100,"comm":"c\"�a\n","#,
            "\"exe\":\"/usr/bin/\u{e9}\u{7f}\"}}"
        )),
        "expected the exact open line"
    );
    ev.op = Op::Connect as u32;
    ev.decision = Decision::Audited as u32;
    ev.mode = Mode::Audit as u32;
    ev.backend = Backend::CgroupSockAddr as u32;
    ev.family = 10;
    ev.proto = Proto::Udp as u32;
    ev.port = 65_536 + 53;
    ev.addr = std::net::Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 1).octets();
    ev.ppid = 7;
    ev.comm = [0; 16];
    ev.comm[..4].copy_from_slice(b"curl");
    assert_eq!(
        written_carrying(&ev, 0, &Names::default(), &clock).as_deref(),
        Ok(concat!(
            r#"{"time":"2026-11-18T11:06:40.123457Z","decision":"audited","mode":"audit","#,
            r#""op":"connect","backend":"cgroup_sock_addr","enforcement":"none","task":"unknown-task-3","#,
            r#""instance":null,"parent_tasks":[],"reason":"not_allowed","#,
            r#""target":{"addr":"2001:db8::1","port":53,"family":"ipv6","proto":"udp"},"#,
            r#""process":{"pid":12,"tgid":11,"ppid":7,"uid":1000,"gid":100,"comm":"curl","exe":null}}"#
        )),
        "expected the exact connect line"
    );
    ev.family = 1;
    ev.proto = Proto::Seqpacket as u32;
    set_path(&mut ev, b"\0bus\n");
    let line = written_carrying(
        &ev,
        agent_common::PATH_CLASS_UNIX,
        &Names::default(),
        &clock,
    )
    .unwrap_or_else(|e| panic!("expected a unix connect line: {e}"));
    assert!(
        line.contains(r#""target":{"path":"@bus\n","family":"unix","proto":"seqpacket"},"#),
        "expected the abstract unix address: {line}"
    );
}
