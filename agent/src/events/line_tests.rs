use std::collections::HashMap;

use agent_common::{Access, Backend, Decision, Event, Mode, Op, PATH_MAX, Proto, Reason};

use super::*;
use crate::events::to_json_with_parent;

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

/// The line the owned path writes (`to_json`, then serde), with the daemon's additions.
fn reference(ev: &Event, names: &Names<'_>, clock: &BootClock) -> Result<String, String> {
    let tasks: HashMap<u32, String> = names
        .task
        .map(|t| HashMap::from([(ev.task_id, t.to_owned())]))
        .unwrap_or_default();
    let mut json = to_json_with_parent(
        ev,
        &tasks,
        clock,
        |_| names.exe.map(str::to_owned),
        |_| names.parent,
    )
    .map_err(|e| e.to_string())?;
    json.instance = names.instance.map(str::to_owned);
    json.parent_tasks = names.parent_tasks.to_vec();
    serde_json::to_string(&json).map_err(|e| e.to_string())
}

fn written(ev: &Event, names: &Names<'_>, clock: &BootClock) -> Result<String, String> {
    let mut out = b"previous line\n".to_vec();
    write_line(ev, names, clock, &mut out).map_err(|e| e.to_string())?;
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
            let expected = reference(&ev, names, &clock);
            let got = written(&ev, names, &clock);
            assert_eq!(
                got, expected,
                "expected the same line as the owned event (op {}, path_len {})",
                ev.op, ev.path_len
            );
            checked += 1;
        }
    }
    assert_eq!(
        checked,
        ops().len() * 7 * 3,
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
        reference(&ev, &Names::default(), &BootClock::fixed(0)),
        "expected the same error as to_json"
    );
}
