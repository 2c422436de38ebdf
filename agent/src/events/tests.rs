use agent_common::{Event, Mode, Op, Reason};

use super::*;

fn blank() -> Event {
    // SAFETY: `Event` is plain integers; all-zero is valid.
    let mut ev: Event = unsafe { std::mem::zeroed() };
    ev.backend = Backend::Lsm as u32;
    ev
}

fn set_path(ev: &mut Event, path: &[u8]) {
    ev.path[..path.len()].copy_from_slice(path);
    ev.path_len = path.len() as u32;
}

fn tasks() -> HashMap<u32, String> {
    HashMap::from([(7, "repo-coder".to_owned())])
}

fn decode(ev: &Event) -> serde_json::Value {
    decode_record(&Record::of_event(ev, agent_common::PATH_MAX))
}

fn decode_record(rec: &Record<'_>) -> serde_json::Value {
    let clock = BootClock::fixed(1_795_000_000_000_000_000);
    to_json(rec, &tasks(), &clock, |_| Some("/usr/bin/cat".to_owned()))
        .unwrap_or_else(|e| panic!("expected the event to decode: {e}"))
}

#[test]
fn open_denied_event_matches_the_contract() {
    let mut ev = blank();
    ev.time_ns = 123_456_789;
    ev.op = Op::Open as u32;
    ev.decision = Decision::Denied as u32;
    ev.mode = Mode::Enforce as u32;
    ev.task_id = 7;
    ev.reason = Reason::NotAllowed as u32;
    ev.pid = 4242;
    ev.tgid = 4242;
    ev.ppid = 4200;
    ev.uid = 1000;
    ev.gid = 1000;
    ev.access = Access::READ;
    ev.comm[..3].copy_from_slice(b"cat");
    set_path(&mut ev, b"/etc/shadow");
    let v = decode(&ev);
    assert_eq!(
        v,
        serde_json::json!({
            "time": "2026-11-18T11:06:40.123456Z",
            "decision": "denied", "mode": "enforce", "op": "open", "backend": "lsm", "enforcement": "refuse", "instance": null, "parent_tasks": [],
            "task": "repo-coder",
            "reason": "not_allowed",
            "target": {"path": "/etc/shadow", "access": "read"},
            "process": {"pid": 4242, "tgid": 4242, "ppid": 4200, "uid": 1000, "gid": 1000,
                        "comm": "cat", "exe": "/usr/bin/cat"}
        })
    );
}

#[test]
fn exec_target_has_only_the_path() {
    let mut ev = blank();
    ev.op = Op::Exec as u32;
    ev.decision = Decision::Audited as u32;
    ev.mode = Mode::Audit as u32;
    ev.reason = Reason::NotAllowed as u32;
    set_path(&mut ev, b"/usr/bin/curl");
    let v = decode(&ev);
    assert_eq!(v["target"], serde_json::json!({"path": "/usr/bin/curl"}));
    assert_eq!(v["decision"], "audited");
    assert_eq!(v["mode"], "audit");
    assert_eq!(
        v["task"], "unknown-task-0",
        "an unknown task id must still be named"
    );
}

#[test]
fn unresolved_path_reports_the_error_not_a_path() {
    let mut ev = blank();
    ev.op = Op::Open as u32;
    ev.decision = Decision::Denied as u32;
    ev.reason = Reason::PathUnresolved as u32;
    ev.path_error = -libc::ENAMETOOLONG;
    ev.access = Access::READ | Access::WRITE;
    let v = decode(&ev);
    assert_eq!(
        v["target"],
        serde_json::json!({"path": null, "access": "read_write", "error": "ENAMETOOLONG"})
    );
}

#[test]
fn connect_targets_for_each_family() {
    let mut ev = blank();
    ev.op = Op::Connect as u32;
    ev.decision = Decision::Denied as u32;
    ev.reason = Reason::NotAllowed as u32;
    ev.family = 2;
    ev.proto = Proto::Tcp as u32;
    ev.port = 443;
    ev.addr[..4].copy_from_slice(&[10, 0, 0, 1]);
    assert_eq!(
        decode(&ev)["target"],
        serde_json::json!({"addr": "10.0.0.1", "port": 443, "family": "ipv4", "proto": "tcp"})
    );

    ev.family = 10;
    ev.proto = Proto::Udp as u32;
    ev.addr = std::net::Ipv6Addr::LOCALHOST.octets();
    assert_eq!(
        decode(&ev)["target"],
        serde_json::json!({"addr": "::1", "port": 443, "family": "ipv6", "proto": "udp"})
    );

    ev.op = Op::Sendmsg as u32;
    ev.backend = Backend::CgroupSockAddr as u32;
    let v = decode(&ev);
    assert_eq!(v["op"], "sendmsg");
    assert_eq!(v["backend"], "cgroup_sock_addr");
    assert_eq!(v["target"]["family"], "ipv6");

    ev.op = Op::Connect as u32;
    ev.family = 1;
    ev.proto = Proto::Tcp as u32;
    set_path(&mut ev, b"\0agent-bus");
    assert_eq!(
        decode(&ev)["target"],
        serde_json::json!({"path": "@agent-bus", "family": "unix", "proto": "stream"})
    );
    set_path(&mut ev, b"/var/run/docker.sock");
    assert_eq!(decode(&ev)["target"]["path"], "/var/run/docker.sock");
}

#[test]
fn invalid_utf8_paths_stay_valid_json() {
    let mut ev = blank();
    ev.op = Op::Open as u32;
    ev.decision = Decision::Denied as u32;
    ev.reason = Reason::NotAllowed as u32;
    set_path(&mut ev, b"/tmp/a\xffb\nc");
    let v = decode(&ev);
    let line = serde_json::to_string(&v).unwrap_or_default();
    assert!(
        !line.contains('\n'),
        "a newline in a path must be escaped in the JSON line: {line}"
    );
    assert_eq!(v["target"]["path"], "/tmp/a\u{fffd}b\nc");
}

#[test]
fn unknown_codes_are_rejected() {
    let mut ev = blank();
    ev.op = 99;
    let err = to_json(
        &Record::of_event(&ev, 0),
        &tasks(),
        &BootClock::fixed(0),
        |_| None,
    )
    .expect_err("an unknown op code must not decode");
    assert_eq!(err.to_string(), "event record: unknown op code 99");
}

#[test]
fn record_size_is_checked() {
    let Err(err) = parse_record(&[0u8; 16]) else {
        panic!("a short record must be refused");
    };
    assert!(matches!(err, DecodeError::Size { len: 16 }), "{err}");
    let Err(err) = parse_record(&vec![0u8; EVENT_SIZE + 8]) else {
        panic!("a record longer than an Event must be refused");
    };
    assert!(matches!(err, DecodeError::Size { .. }), "{err}");
}

/// The bytes the kernel writes for `ev` in a record with `path_bytes` path bytes.
fn record_of(ev: &Event, path_bytes: usize) -> Vec<u8> {
    event_bytes(ev)[..agent_common::record_size(path_bytes)].to_vec()
}

#[test]
fn sized_records_decode_like_whole_events() {
    let mut ev = blank();
    ev.op = Op::Open as u32;
    ev.decision = Decision::Audited as u32;
    ev.mode = Mode::Audit as u32;
    ev.task_id = 7;
    ev.pid = 42;
    ev.tgid = 42;
    ev.ppid = 1;
    ev.access = Access::READ;
    ev.reason = Reason::NotAllowed as u32;
    ev.comm[..3].copy_from_slice(b"cat");
    set_path(&mut ev, b"/etc/shadow");
    let whole = decode(&ev);
    for class in [agent_common::PATH_CLASS_SHORT, agent_common::PATH_MAX] {
        let bytes = record_of(&ev, class);
        let parsed = parse_record(&bytes)
            .unwrap_or_else(|e| panic!("expected a {class}-byte path record to parse: {e}"));
        assert_eq!(
            decode_record(&parsed),
            whole,
            "expected the same JSON from a record with {class} path bytes"
        );
    }
    // A head-only record (connect) carries no path; a path_len claiming more is cut to none.
    let bytes = record_of(&ev, 0);
    let head_only = parse_record(&bytes)
        .unwrap_or_else(|e| panic!("expected a head-only record to parse: {e}"));
    assert!(
        head_only.path().is_empty(),
        "expected no path bytes in a head-only record"
    );
    assert_eq!(
        head_only.path_len(),
        11,
        "expected the head's path_len as sent"
    );
    assert_eq!(head_only.pid(), 42, "expected the head fields kept");
    assert_eq!(&head_only.comm()[..3], b"cat", "expected comm kept");
}

#[test]
fn mmap_rename_and_unlink_targets_name_the_path_and_access() {
    let mut ev = blank();
    ev.decision = Decision::Denied as u32;
    ev.task_id = 7;
    ev.reason = Reason::NotAllowed as u32;
    ev.op = Op::Mmap as u32;
    ev.access = Access::EXEC;
    set_path(&mut ev, b"/workspace/payload");
    assert_eq!(
        decode(&ev)["target"],
        serde_json::json!({"path": "/workspace/payload", "access": "exec"})
    );
    // An mprotect refusal carries no path: null, not "".
    ev.path_len = 0;
    assert_eq!(
        decode(&ev)["target"],
        serde_json::json!({"path": null, "access": "exec"})
    );
    for (op, name) in [(Op::Rename, "rename"), (Op::Unlink, "unlink")] {
        ev.op = op as u32;
        ev.access = Access::WRITE;
        set_path(&mut ev, b"/workspace/.env");
        let v = decode(&ev);
        assert_eq!(v["op"], name, "expected op {name} in {v}");
        assert_eq!(
            v["target"],
            serde_json::json!({"path": "/workspace/.env", "access": "write"}),
            "expected the written path in {v}"
        );
    }
}

#[test]
fn allowed_event_has_reason_none_and_no_enforcement() {
    let mut ev = blank();
    ev.op = Op::Open as u32;
    ev.decision = Decision::Allowed as u32;
    ev.mode = Mode::Enforce as u32;
    ev.task_id = 7;
    ev.reason = Reason::None as u32;
    ev.backend = Backend::Kill as u32;
    ev.access = Access::READ;
    set_path(&mut ev, b"/srv/repo/main.rs");
    let v = decode(&ev);
    assert_eq!(v["decision"], "allowed");
    assert_eq!(v["reason"], "none");
    assert_eq!(v["backend"], "kill");
    assert_eq!(
        v["enforcement"], "none",
        "nothing was done about an allowed operation"
    );
    assert_eq!(
        v["target"],
        serde_json::json!({"path": "/srv/repo/main.rs", "access": "read"})
    );
    assert_eq!(
        Decision::try_from(3).map(Decision::as_str),
        Ok("allowed"),
        "the allowed code round-trips"
    );
    assert_eq!(
        agent_common::AllowedEvents::try_from(2).map(agent_common::AllowedEvents::as_str),
        Ok("all")
    );
    assert!(
        agent_common::AllowedEvents::try_from(3).is_err(),
        "an unknown allowed-events code is refused"
    );
}

#[test]
fn userfaultfd_event_names_the_anonymous_inode() {
    let mut ev = blank();
    ev.op = Op::Userfaultfd as u32;
    ev.decision = Decision::Denied as u32;
    ev.mode = Mode::Enforce as u32;
    ev.reason = Reason::Forbidden as u32;
    ev.task_id = 7;
    let v = decode(&ev);
    assert_eq!(v["op"], "userfaultfd", "expected op userfaultfd in {v}");
    assert_eq!(v["reason"], "forbidden", "expected reason forbidden in {v}");
    assert_eq!(
        v["target"],
        serde_json::json!({"anon": "[userfaultfd]"}),
        "expected the anonymous inode as the target in {v}"
    );
}
