//! Kernel tests of Corral's enforcement: run by `cargo xtask test` inside qemu VMs booting
//! kernels with BPF LSM (Debian 6.1 and 6.12), as root, one test at a time. Each test starts its
//! own daemon; if the daemon cannot load its programs the test FAILS (it never skips).
//!
//! A confined process is always `corral run --task T -- $CORRAL_PROBE <op>`: the probe attempts
//! one operation and prints `ok` or `err <ERRNO> <n>`, so a denial is told apart from any other
//! failure. Listeners and other helpers run untagged.

use std::path::Path;

use agent::loader::{LSM_HOOKS, SOCK_ADDR_HOOKS, TAGGING_HOOKS};
use corral_tests::daemon::{Launch, SharedPins};
use corral_tests::network::{InetEvent, LOOPBACKS, event_pid};
use corral_tests::process::Later;
use corral_tests::reload::replace_file;
use corral_tests::selectors::{TestCgroup, selected_probe};
use corral_tests::{
    Background, Daemon, EVENT_TIMEOUT, EXIT_CONFIG, EXIT_REFUSED, EXIT_UNAVAILABLE, Policy,
    Scratch, Value, deep, doctor, env, events, expect_corral_exit, has, json, process, runtime,
    shipped,
};

fn probe() -> String {
    env::probe()
}

/// Fields of a `denied` event of `task` for `op`.
fn denied(task: &str, op: &str) -> Vec<(&'static str, Value)> {
    vec![
        ("/decision", json!("denied")),
        ("/op", json!(op)),
        ("/task", json!(task)),
    ]
}

/// Fields of a `denied` open of `path` with `access`.
fn denied_open(task: &str, path: &str, access: &str) -> Vec<(&'static str, Value)> {
    let mut f = denied(task, "open");
    f.push(("/target/path", json!(path)));
    f.push(("/target/access", json!(access)));
    f
}

fn with(
    mut fields: Vec<(&'static str, Value)>,
    ptr: &'static str,
    v: Value,
) -> Vec<(&'static str, Value)> {
    fields.push((ptr, v));
    fields
}

fn assert_field(ev: &Value, ptr: &str, want: &Value) {
    assert_eq!(
        ev.pointer(ptr),
        Some(want),
        "expected {ptr} = {want} in event {ev}"
    );
}

// ---------------------------------------------------------------------------------------------
// exec

#[test]
fn exec_of_readable_unlisted_binary_is_denied_with_one_exec_event() {
    let s = Scratch::new("exec-deny");
    let tool = s.copy_exe(&env::probe_bin(), "bin/not-listed");
    // The directory is readable, so the kernel's exec-open passes and bprm_check decides.
    let pol = Policy::probe_only("exec-deny").read(&s.dir_entry("bin"));
    let d = Daemon::with(&[&pol]);

    let out = d.run(
        "exec-deny",
        &[&probe(), "exec", &tool, "open", &probe(), "r"],
    );
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event("the refused exec", &denied("exec-deny", "exec"));
    assert_field(&ev, "/target/path", &json!(tool));
    assert_field(&ev, "/reason", &json!("not_allowed"));
    assert_field(&ev, "/mode", &json!("enforce"));
    assert_field(&ev, "/process/pid", &json!(out.pid));
    assert_field(&ev, "/process/tgid", &json!(out.pid));
    d.expect_no_event(
        "the allowed exec of the probe",
        &with(denied("exec-deny", "open"), "/target/path", json!(probe())),
    );
}

#[test]
fn exec_of_unreadable_unlisted_binary_is_denied_with_one_event() {
    let s = Scratch::new("exec-unreadable");
    let tool = s.copy_exe(&env::probe_bin(), "bin/not-listed");
    let pol = Policy::probe_only("exec-unreadable");
    let d = Daemon::with(&[&pol]);

    let out = d.run(
        "exec-unreadable",
        &[&probe(), "exec", &tool, "open", &probe(), "r"],
    );
    d.expect_errno(&out, "EPERM");
    // The kernel opens the binary (file_open, FMODE_EXEC) before bprm_check: whichever hook
    // refuses it, there is one event naming the binary.
    let ev = d.expect_one_event(
        "the refused exec of an unreadable binary",
        &[
            ("/decision", json!("denied")),
            ("/task", json!("exec-unreadable")),
            ("/target/path", json!(tool)),
        ],
    );
    let op = events::text(&ev, "/op");
    assert!(
        op == "exec" || (op == "open" && events::text(&ev, "/target/access") == "exec"),
        "expected the event to be an exec, or an open with access \"exec\", got {ev}"
    );
    assert_field(&ev, "/process/pid", &json!(out.pid));
}

#[test]
fn exec_of_listed_binary_runs() {
    let s = Scratch::new("exec-allow");
    let tool = s.copy_exe(&env::probe_bin(), "bin/listed-tool");
    let data = s.file("data/file", "data");
    let pol = Policy::probe_only("exec-allow")
        .exec(&tool)
        .read(&s.dir_entry("data"));
    let d = Daemon::with(&[&pol]);
    let allowed_before = d.counter("exec", "allowed");

    // The listed tool runs and does its own (allowed) open: "ok" comes from it.
    let out = d.run("exec-allow", &[&probe(), "exec", &tool, "open", &data, "r"]);
    d.expect_ok(&out);
    d.expect_no_event(
        "an allowed exec and open",
        &[
            ("/decision", json!("denied")),
            ("/task", json!("exec-allow")),
        ],
    );
    let allowed_after = d.counter("exec", "allowed");
    assert!(
        allowed_after >= allowed_before + 2,
        "expected counters.exec.allowed to grow by at least 2 (the probe, then the tool), went from {allowed_before} to {allowed_after}"
    );
}

#[test]
fn allowed_all_reports_the_lsm_allowed_exec_and_open() {
    let s = Scratch::new("allowed-lsm");
    let tool = s.copy_exe(&env::probe_bin(), "bin/listed-tool");
    let data = s.file("data/file", "data");
    let pol = Policy::probe_only("allowed-lsm")
        .exec(&tool)
        .read(&s.dir_entry("data"));
    let d = corral_tests::ops::OpsDaemon::start(&[&pol], "[events]\nallowed = \"all\"\n");
    let out = d.daemon.run(
        "allowed-lsm",
        &[&probe(), "exec", &tool, "open", &data, "r"],
    );
    d.daemon.expect_ok(&out);
    let allowed = |op: &str, path: &str| {
        vec![
            ("/decision", json!("allowed")),
            ("/reason", json!("none")),
            ("/backend", json!("lsm")),
            ("/task", json!("allowed-lsm")),
            ("/op", json!(op)),
            ("/target/path", json!(path)),
        ]
    };
    // bprm_check_security and the exec-open of file_open both judge (and report) the exec.
    let execs = d
        .daemon
        .wait_events(|e| has(e, &allowed("exec", &tool)), EVENT_TIMEOUT);
    assert!(!execs.is_empty(), "expected the allowed exec of {tool}");
    let opens = d.daemon.wait_events(
        |e| {
            has(
                e,
                &with(allowed("open", &data), "/target/access", json!("read")),
            )
        },
        EVENT_TIMEOUT,
    );
    assert_eq!(
        opens.len(),
        1,
        "expected one allowed open of {data}: {opens:?}"
    );
    assert!(
        d.daemon.events().iter().all(|e| e["decision"] == "allowed"),
        "nothing was denied or audited: {}",
        events::tail(&d.daemon.events(), 10)
    );
}

#[test]
fn deny_rule_beats_exec_allow() {
    let s = Scratch::new("exec-deny-rule");
    let ok_tool = s.copy_exe(&env::probe_bin(), "bin/ok-tool");
    let blocked = s.copy_exe(&env::probe_bin(), "bin/blocked");
    let pol = Policy::probe_only("exec-deny-rule")
        .exec(&s.dir_entry("bin"))
        .deny(&blocked);
    let d = Daemon::with(&[&pol]);

    let out = d.run(
        "exec-deny-rule",
        &[&probe(), "exec", &blocked, "open", &probe(), "r"],
    );
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the exec refused by a deny rule",
        &[
            ("/decision", json!("denied")),
            ("/task", json!("exec-deny-rule")),
            ("/target/path", json!(blocked)),
        ],
    );
    assert_field(&ev, "/reason", &json!("deny_rule"));

    let out = d.run(
        "exec-deny-rule",
        &[&probe(), "exec", &ok_tool, "open", &probe(), "r"],
    );
    d.expect_ok(&out);
}

#[test]
fn cmd_not_in_exec_allow_does_not_run() {
    let s = Scratch::new("exec-cmd");
    let marker = s.join("marker");
    // Libraries readable, but no exec entry at all: `corral run` cannot start the probe.
    let mut pol = Policy::new("exec-none").write(&s.dir_entry(""));
    for r in runtime::probe_runtime_reads() {
        pol = pol.read(&r);
    }
    let d = Daemon::with(&[&pol]);

    let out = d.run("exec-none", &[&probe(), "open", &marker, "w"]);
    assert!(
        out.code != Some(0) && !Path::new(&marker).exists(),
        "expected CMD to be refused (non-zero exit, {marker} not created)\n{}",
        out.describe()
    );
    let _ = d.wait_events(
        |e| {
            has(
                e,
                &[
                    ("/decision", json!("denied")),
                    ("/task", json!("exec-none")),
                    ("/target/path", json!(probe())),
                ],
            )
        },
        EVENT_TIMEOUT,
    );
}

// ---------------------------------------------------------------------------------------------
// files

#[test]
fn read_outside_allow_list_is_denied_and_reported() {
    let s = Scratch::new("read-deny");
    let allowed = s.file("allowed/file", "ok");
    let secret = s.file("secret", "s3cret");
    let pol = Policy::probe_only("read-deny").read(&s.dir_entry("allowed"));
    let d = Daemon::with(&[&pol]);

    let out = d.run("read-deny", &[&probe(), "open", &secret, "r"]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused read",
        &denied_open("read-deny", &secret, "read"),
    );
    assert_field(&ev, "/reason", &json!("not_allowed"));
    assert_field(&ev, "/mode", &json!("enforce"));
    assert_field(&ev, "/process/pid", &json!(out.pid));
    assert_field(&ev, "/process/tgid", &json!(out.pid));
    assert_field(&ev, "/process/ppid", &json!(std::process::id()));
    // SAFETY: plain system calls.
    let (uid, gid) = unsafe { (libc::getuid(), libc::getgid()) };
    assert_field(&ev, "/process/uid", &json!(uid));
    assert_field(&ev, "/process/gid", &json!(gid));
    assert_field(&ev, "/process/comm", &json!("corral-probe"));
    let time = events::text(&ev, "/time");
    assert!(
        time.len() >= 20 && time.as_bytes().get(10) == Some(&b'T') && time.ends_with('Z'),
        "expected an RFC 3339 UTC time like 2026-11-26T06:30:00.123456Z, got {time:?} in {ev}"
    );
    if let Some(exe) = ev.pointer("/process/exe").and_then(Value::as_str) {
        assert_eq!(exe, probe(), "expected process.exe to be the probe in {ev}");
    }

    let out = d.run("read-deny", &[&probe(), "open", &allowed, "r"]);
    d.expect_ok(&out);
    d.expect_no_event(
        "the allowed read",
        &with(denied("read-deny", "open"), "/target/path", json!(allowed)),
    );
}

#[test]
fn write_to_read_only_path_is_denied() {
    let s = Scratch::new("write-deny");
    let ro = s.file("ro/file", "original");
    let _ = s.mkdir("rw");
    let pol = Policy::probe_only("write-deny")
        .read(&s.dir_entry("ro"))
        .read(&s.dir_entry("rw"))
        .write(&s.dir_entry("rw"));
    let d = Daemon::with(&[&pol]);

    let out = d.run("write-deny", &[&probe(), "open", &ro, "w"]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused write",
        &denied_open("write-deny", &ro, "write"),
    );

    let out = d.run("write-deny", &[&probe(), "open", &ro, "rw"]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused read-write",
        &denied_open("write-deny", &ro, "read_write"),
    );

    d.expect_ok(&d.run("write-deny", &[&probe(), "open", &ro, "r"]));
    let created = s.join("rw/new");
    d.expect_ok(&d.run("write-deny", &[&probe(), "open", &created, "w"]));
    assert!(
        Path::new(&created).exists(),
        "expected the allowed write to create {created}"
    );
}

#[test]
fn deny_beats_read_and_write() {
    let s = Scratch::new("deny-read");
    let env_file = s.file("ws/.env", "TOKEN=x");
    let key = s.file("ws/secrets/key", "k");
    let main = s.file("ws/main.rs", "fn main() {}");
    let pol = Policy::probe_only("deny-read")
        .read(&s.dir_entry("ws"))
        .write(&s.dir_entry("ws"))
        .deny(&env_file)
        .deny(&s.dir_entry("ws/secrets"));
    let d = Daemon::with(&[&pol]);

    for (path, mode, access) in [
        (&env_file, "r", "read"),
        (&env_file, "w", "write"),
        (&key, "r", "read"),
    ] {
        let out = d.run("deny-read", &[&probe(), "open", path, mode]);
        d.expect_errno(&out, "EPERM");
        let ev = d.expect_one_event(
            "the read/write refused by a deny rule",
            &denied_open("deny-read", path, access),
        );
        assert_field(&ev, "/reason", &json!("deny_rule"));
    }
    d.expect_ok(&d.run("deny-read", &[&probe(), "open", &main, "r"]));
    d.expect_ok(&d.run("deny-read", &[&probe(), "open", &main, "w"]));
}

#[test]
fn symlink_is_judged_by_its_target() {
    let s = Scratch::new("symlink");
    let allowed = s.file("allowed/file", "ok");
    let secret = s.file("outside/secret", "s3cret");
    let out_link = s.symlink(&secret, "allowed/link-out");
    let rel_link = s.symlink("../outside/secret", "allowed/rel-link-out");
    let in_link = s.symlink(&allowed, "outside/link-in");
    let pol = Policy::probe_only("symlink").read(&s.dir_entry("allowed"));
    let d = Daemon::with(&[&pol]);

    for link in [&out_link, &rel_link] {
        let out = d.run("symlink", &[&probe(), "open", link, "r"]);
        d.expect_errno(&out, "EPERM");
    }
    // Both refusals name the resolved target, never the link inside the allowed directory.
    let evs = d.wait_events(
        |e| has(e, &denied_open("symlink", &secret, "read")),
        EVENT_TIMEOUT,
    );
    std::thread::sleep(corral_tests::daemon::SETTLE);
    let evs_now: Vec<Value> = d
        .events()
        .into_iter()
        .filter(|e| has(e, &denied_open("symlink", &secret, "read")))
        .collect();
    assert_eq!(
        evs_now.len(),
        2,
        "expected two refusals naming the target {secret}, got {evs:?}"
    );
    for link in [&out_link, &rel_link] {
        d.expect_no_event(
            "an event naming the symlink",
            &with(denied("symlink", "open"), "/target/path", json!(link)),
        );
    }
    // A link outside the allowed directory that points into it is allowed.
    d.expect_ok(&d.run("symlink", &[&probe(), "open", &in_link, "r"]));
}

#[test]
fn proc_self_fd_reopen_of_denied_file_is_denied() {
    let s = Scratch::new("reopen");
    let allowed = s.file("allowed/file", "ok");
    let secret = s.file("secret", "s3cret");
    let pol = Policy::probe_only("reopen").read(&s.dir_entry("allowed"));
    let d = Daemon::with(&[&pol]);

    let out = d.run("reopen", &[&probe(), "reopen", &secret]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused /proc/self/fd re-open",
        &denied_open("reopen", &secret, "read"),
    );
    d.expect_ok(&d.run("reopen", &[&probe(), "reopen", &allowed]));
}

#[test]
fn relative_and_dotdot_paths_are_judged_by_resolved_path() {
    let s = Scratch::new("relative");
    let allowed = s.file("allowed/file", "ok");
    let sub = s.mkdir("allowed/sub");
    let outside = s.mkdir("outside");
    let secret = s.file("secret", "s3cret");
    let pol = Policy::probe_only("relative").read(&s.dir_entry("allowed"));
    let d = Daemon::with(&[&pol]);

    let out = d.run(
        "relative",
        &[&probe(), "-C", &sub, "open", "../../secret", "r"],
    );
    d.expect_errno(&out, "EPERM");
    let dotted = format!("{}/../secret", s.join("allowed"));
    let out = d.run("relative", &[&probe(), "open", &dotted, "r"]);
    d.expect_errno(&out, "EPERM");
    let _ = d.wait_events(
        |e| has(e, &denied_open("relative", &secret, "read")),
        EVENT_TIMEOUT,
    );
    d.expect_no_event(
        "an event naming the unresolved path",
        &with(denied("relative", "open"), "/target/path", json!(dotted)),
    );

    d.expect_ok(&d.run("relative", &[&probe(), "-C", &sub, "open", "../file", "r"]));
    d.expect_ok(&d.run(
        "relative",
        &[&probe(), "-C", &outside, "open", "../allowed/file", "r"],
    ));
    // `x` must exist for the kernel to walk through it.
    let _ = s.mkdir("allowed/sub/x");
    d.expect_ok(&d.run(
        "relative",
        &[&probe(), "-C", &sub, "open", "./x/../../file", "r"],
    ));
    d.expect_no_event(
        "the allowed relative reads",
        &with(denied("relative", "open"), "/target/path", json!(allowed)),
    );
}

#[test]
fn path_of_4000_bytes_under_allowed_dir_is_allowed() {
    let s = Scratch::new("long-ok");
    let top = s.mkdir("deep");
    let pol = Policy::probe_only("long-ok").read(&format!("{top}/"));
    let d = Daemon::with(&[&pol]);

    // 4095 bytes is the longest path that fits bpf_d_path's 4096-byte buffer with its NUL.
    for len in [4000, 4095] {
        let names = deep::components_for(&top, len);
        let (file, dirs) = names
            .split_last()
            .unwrap_or_else(|| unreachable!("one component at least"));
        deep::mkdirs(&top, dirs);
        deep::write_file(&top, dirs, file, "deep");
        let path = deep::join(&top, &names);
        assert_eq!(path.len(), len, "expected a {len}-byte path");
        d.expect_ok(&d.run("long-ok", &[&probe(), "open", &path, "r"]));
        let dir = deep::join(&top, dirs);
        d.expect_ok(&d.run("long-ok", &[&probe(), "-C", &dir, "open", file, "r"]));
    }
    d.expect_no_event(
        "reads of long paths under the allowed dir",
        &denied("long-ok", "open"),
    );
}

#[test]
fn path_longer_than_4096_is_denied_never_allowed() {
    let s = Scratch::new("long-deny");
    let top = s.mkdir("deep");
    // The whole tree is readable: only the length can make these opens fail.
    let pol = Policy::probe_only("long-deny").read(&format!("{top}/"));
    let d = Daemon::with(&[&pol]);

    for len in [4096, 4300, 9000] {
        let names = deep::components_for(&top, len);
        let (file, dirs) = names
            .split_last()
            .unwrap_or_else(|| unreachable!("one component at least"));
        deep::mkdirs(&top, dirs);
        deep::write_file(&top, dirs, file, "deep");
        let dir = deep::join(&top, dirs);
        // Untagged, the file opens: the filesystem is fine with it.
        let untagged = process::probe(&["-C", &dir, "open", file, "r"]);
        d.expect_ok(&untagged);

        let out = d.run("long-deny", &[&probe(), "-C", &dir, "open", file, "r"]);
        d.expect_errno(&out, "EPERM");
        let ev = d.expect_one_event(
            &format!("the refused open of a {len}-byte path"),
            &[
                ("/decision", json!("denied")),
                ("/op", json!("open")),
                ("/task", json!("long-deny")),
                ("/process/pid", json!(out.pid)),
            ],
        );
        assert_field(&ev, "/reason", &json!("path_unresolved"));
        assert_field(&ev, "/target/path", &Value::Null);
        assert_field(&ev, "/target/error", &json!("ENAMETOOLONG"));
    }
}

// ---------------------------------------------------------------------------------------------
// network

/// Two untagged listeners on `addr`: one the policy allows, one it does not.
fn two_listeners(addr: &str) -> (Background, Background) {
    (
        Background::probe(&["listen", "tcp", addr, "0"]),
        Background::probe(&["listen", "tcp", addr, "0"]),
    )
}

fn denied_connect(
    task: &str,
    addr: &str,
    port: u16,
    family: &str,
    proto: &str,
) -> Vec<(&'static str, Value)> {
    let mut f = denied(task, "connect");
    f.push(("/target/addr", json!(addr)));
    f.push(("/target/port", json!(port)));
    f.push(("/target/family", json!(family)));
    f.push(("/target/proto", json!(proto)));
    f
}

fn tcp_only_to_listed_port(task: &str, addr: &str, cidr: &str, family: &str) {
    let (allowed, mut other) = two_listeners(addr);
    let (pa, po) = (allowed.port().to_string(), other.port().to_string());
    let pol = Policy::probe_only(task).connect(cidr, &[&pa]);
    let d = Daemon::with(&[&pol]);

    let out = d.run(task, &[&probe(), "connect", "tcp", addr, &po]);
    d.expect_errno(&out, "EPERM");
    // One event only: the cgroup connect program judges TCP connects; the LSM hook leaves them
    // to it.
    let ev = d.expect_one_event(
        "the refused connect",
        &denied_connect(task, addr, other.port(), family, "tcp"),
    );
    assert_field(&ev, "/backend", &json!(doctor::CGROUP_SOCK_ADDR));
    assert!(
        other.running(),
        "expected the unlisted listener on port {po} never to see the refused connect"
    );

    d.expect_ok(&d.run(task, &[&probe(), "connect", "tcp", addr, &pa]));
    let listener = allowed.wait();
    assert_eq!(
        listener.code,
        Some(0),
        "expected the listed listener to accept the connection\n{}",
        listener.describe()
    );
}

#[test]
fn tcp_connect_v4_only_to_listed_port() {
    tcp_only_to_listed_port("tcp-v4", "127.0.0.1", "127.0.0.1/32", "ipv4");
}

#[test]
fn tcp_connect_v6_only_to_listed_port() {
    tcp_only_to_listed_port("tcp-v6", "::1", "::1/128", "ipv6");
}

#[test]
fn v4_mapped_v6_is_judged_as_v4() {
    let (allowed, mut other) = two_listeners("127.0.0.1");
    let (pa, po) = (allowed.port().to_string(), other.port().to_string());
    let pol = Policy::probe_only("mapped").connect("127.0.0.1/32", &[&pa]);
    let d = Daemon::with(&[&pol]);

    let out = d.run(
        "mapped",
        &[&probe(), "connect", "tcp", "::ffff:127.0.0.1", &po],
    );
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused v4-mapped connect",
        &denied_connect("mapped", "127.0.0.1", other.port(), "ipv4", "tcp"),
    );
    assert!(
        other.running(),
        "expected the unlisted listener never to be reached"
    );

    d.expect_ok(&d.run(
        "mapped",
        &[&probe(), "connect", "tcp", "::ffff:127.0.0.1", &pa],
    ));
    // No IPv6 rule: plain ::1 is refused whatever the port.
    let out = d.run("mapped", &[&probe(), "connect", "tcp", "::1", &pa]);
    d.expect_errno(&out, "EPERM");
}

#[test]
fn udp_connect_is_judged_by_cidr_and_port_range() {
    let pol = Policy::probe_only("udp")
        .connect("127.0.0.1/32", &["40000-40010"])
        .connect_any_port("127.0.0.2/32");
    let d = Daemon::with(&[&pol]);

    for (addr, port) in [
        ("127.0.0.1", "40000"),
        ("127.0.0.1", "40010"),
        ("127.0.0.2", "9"),
    ] {
        d.expect_ok(&d.run("udp", &[&probe(), "connect", "udp", addr, port]));
    }
    for (addr, port, family) in [
        ("127.0.0.1", 39_999_u16, "ipv4"),
        ("127.0.0.1", 40_011, "ipv4"),
        ("127.0.0.3", 40_005, "ipv4"),
        ("::1", 40_005, "ipv6"),
    ] {
        let out = d.run(
            "udp",
            &[&probe(), "connect", "udp", addr, &port.to_string()],
        );
        d.expect_errno(&out, "EPERM");
        let _ = d.expect_one_event(
            "the refused UDP connect",
            &denied_connect("udp", addr, port, family, "udp"),
        );
    }
}

/// Each inet connect is judged once, by the hook that sees it: TCP and UDP connects by the
/// cgroup programs (the destination as it leaves), UDP-Lite (no `pre_connect`: the cgroup
/// programs never see its connects) and MPTCP (seen there only as its TCP subflow) by the LSM
/// hook. A UDP-Lite connect left to the cgroup programs would go anywhere; one reported by both
/// hooks would be counted twice. In audit mode each is reported exactly once too.
#[test]
fn inet_connects_are_judged_once_by_the_hook_that_sees_them() {
    // Connects to 127.0.0.1 are allowed whatever the port (a fresh listener per stream connect:
    // each accepts one connection), to 127.0.0.3 refused.
    let kinds = [
        ("tcp", "tcp", doctor::CGROUP_SOCK_ADDR),
        ("udp", "udp", doctor::CGROUP_SOCK_ADDR),
        ("udplite", "udp", doctor::LSM),
        ("mptcp", "tcp", doctor::LSM),
    ];
    for audit in [false, true] {
        let task = if audit {
            "inet-once-audit"
        } else {
            "inet-once"
        };
        let mut pol = Policy::probe_only(task).connect_any_port("127.0.0.1/32");
        if audit {
            pol = pol.audit();
        }
        let d = Daemon::with(&[&pol]);
        for (i, (kind, proto, backend)) in (0u16..).zip(kinds) {
            let listener =
                (proto == "tcp").then(|| Background::probe(&["listen", "tcp", "127.0.0.1", "0"]));
            let port = listener.as_ref().map_or(40_000, Background::port);
            d.expect_ok(&d.run(
                task,
                &[&probe(), "connect", kind, "127.0.0.1", &port.to_string()],
            ));
            // One port per kind (an event names the port, not the protocol); nothing listens on
            // 127.0.0.3, so only Corral can say EPERM.
            let refused = 40_001 + i + if audit { 10 } else { 0 };
            let out = d.run(
                task,
                &[&probe(), "connect", kind, "127.0.0.3", &refused.to_string()],
            );
            if audit {
                // Refused by the kernel itself (no listener), or a datagram connect that works.
                assert!(
                    !out.first_line().starts_with("err EPERM"),
                    "expected the audited {kind} connect not to be refused by Corral\n{}",
                    out.describe()
                );
            } else {
                d.expect_errno(&out, "EPERM");
            }
            let want = InetEvent {
                task,
                op: "connect",
                backend,
                addr: "127.0.0.3",
                port: refused,
                family: "ipv4",
                proto,
            };
            let what = format!("the {kind} connect to an unlisted address (audit: {audit})");
            let ev = d.expect_one_event(&what, &want.any_backend());
            let mut fields = want.target();
            fields.push(("/decision", json!(if audit { "audited" } else { "denied" })));
            assert!(
                has(&ev, &fields),
                "expected {what} reported once by {backend} with {fields:?}, got {ev}"
            );
        }
    }
}

fn denied_unix(task: &str, path: &str) -> Vec<(&'static str, Value)> {
    let mut f = denied(task, "connect");
    f.push(("/target/path", json!(path)));
    f.push(("/target/family", json!("unix")));
    f.push(("/target/proto", json!("stream")));
    f
}

#[test]
fn unconnected_unix_datagrams_are_judged_like_unix_connects() {
    let s = Scratch::new("unix-dgram");
    let listed = s.join("listed.sock");
    let other = s.join("other.sock");
    let bind = |path: &str| {
        let sock = std::os::unix::net::UnixDatagram::bind(path)
            .unwrap_or_else(|e| panic!("expected to bind a datagram socket at {path}: {e}"));
        sock.set_nonblocking(true)
            .unwrap_or_else(|e| panic!("expected {path} to become non-blocking: {e}"));
        sock
    };
    let (listed_rx, other_rx) = (bind(&listed), bind(&other));
    let pol = Policy::probe_only("unix-dgram").unix(&listed);
    let d = Daemon::with(&[&pol]);

    let out = d.run("unix-dgram", &[&probe(), "sendto", "unix", &other]);
    d.expect_errno(&out, "EPERM");
    let want = vec![
        ("/decision", json!("denied")),
        ("/op", json!("sendmsg")),
        ("/task", json!("unix-dgram")),
        ("/target/path", json!(other)),
        ("/target/family", json!("unix")),
        ("/target/proto", json!("dgram")),
    ];
    let ev = d.expect_one_event("the refused unconnected unix datagram", &want);
    assert_field(&ev, "/reason", &json!("not_allowed"));
    let mut buf = [0u8; 64];
    assert!(
        other_rx.recv(&mut buf).is_err(),
        "expected no datagram to reach the unlisted socket"
    );

    d.expect_ok(&d.run("unix-dgram", &[&probe(), "sendto", "unix", &listed]));
    let got = listed_rx
        .recv(&mut buf)
        .unwrap_or_else(|e| panic!("expected the datagram at the listed socket: {e}"));
    assert_eq!(&buf[..got], b"corral-probe", "expected the probe's payload");
    // An untagged process reaches the unlisted socket.
    d.expect_ok(&process::probe(&["sendto", "unix", &other]));
    assert!(
        other_rx.recv(&mut buf).is_ok(),
        "expected the untagged datagram at the unlisted socket"
    );
}

#[test]
fn unix_pathname_socket_only_if_listed() {
    let s = Scratch::new("unix-path");
    let listed = s.join("tools.sock");
    let other = s.join("other.sock");
    let listed_l = Background::probe(&["listen", "unix", &listed]);
    let mut other_l = Background::probe(&["listen", "unix", &other]);
    let pol = Policy::probe_only("unix-path").unix(&listed);
    let d = Daemon::with(&[&pol]);

    let out = d.run("unix-path", &[&probe(), "connect", "unix", &other]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused unix connect",
        &denied_unix("unix-path", &other),
    );
    assert_field(&ev, "/reason", &json!("not_allowed"));
    assert!(
        other_l.running(),
        "expected the unlisted socket never to be reached"
    );

    // A relative path is refused even when it names the listed socket.
    let out = d.run(
        "unix-path",
        &[
            &probe(),
            "-C",
            &s.path().display().to_string(),
            "connect",
            "unix",
            "tools.sock",
        ],
    );
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused relative unix connect",
        &denied_unix("unix-path", "tools.sock"),
    );
    assert_field(&ev, "/reason", &json!("relative_unix_path"));

    d.expect_ok(&d.run("unix-path", &[&probe(), "connect", "unix", &listed]));
    let l = listed_l.wait();
    assert_eq!(
        l.code,
        Some(0),
        "expected the listed socket to accept\n{}",
        l.describe()
    );
}

#[test]
fn unix_abstract_socket_only_if_listed() {
    let listed = format!("@corral-test-{}-listed", std::process::id());
    let other = format!("@corral-test-{}-other", std::process::id());
    let listed_l = Background::probe(&["listen", "unix", &listed]);
    let mut other_l = Background::probe(&["listen", "unix", &other]);
    let pol = Policy::probe_only("unix-abstract").unix(&listed);
    let d = Daemon::with(&[&pol]);

    let out = d.run("unix-abstract", &[&probe(), "connect", "unix", &other]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused abstract connect",
        &denied_unix("unix-abstract", &other),
    );
    assert!(
        other_l.running(),
        "expected the unlisted abstract socket never to be reached"
    );

    d.expect_ok(&d.run("unix-abstract", &[&probe(), "connect", "unix", &listed]));
    let l = listed_l.wait();
    assert_eq!(
        l.code,
        Some(0),
        "expected the listed socket to accept\n{}",
        l.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// what BPF LSM does not see: unconnected UDP sends and TCP Fast Open (cgroup sock_addr programs)

/// A UDP port the policies allow, and one they do not (nobody listens on either: a datagram is
/// sent anyway).
const UDP_ALLOWED: u16 = 40_100;
const UDP_OTHER: u16 = 40_101;

#[test]
fn unconnected_udp_sendto_is_judged_by_cgroup_sock_addr() {
    let (ua, uo) = (UDP_ALLOWED.to_string(), UDP_OTHER.to_string());
    let mut pol = Policy::probe_only("udp-send");
    for (_, cidr, _) in LOOPBACKS {
        pol = pol.connect(cidr, &[&ua]);
    }
    let d = Daemon::with(&[&pol]);

    for (addr, _, family) in LOOPBACKS {
        let out = d.run("udp-send", &[&probe(), "sendto", "udp", addr, &uo]);
        d.expect_errno(&out, "EPERM");
        let want = InetEvent {
            task: "udp-send",
            op: "sendmsg",
            backend: doctor::CGROUP_SOCK_ADDR,
            addr,
            port: UDP_OTHER,
            family,
            proto: "udp",
        };
        // Exactly one event of any backend for this send: the one of the sendmsg program.
        let ev = d.expect_one_event("the refused UDP send", &want.any_backend());
        assert!(
            has(&ev, &want.denied()) && event_pid(&ev) == u64::from(out.pid),
            "expected a denied sendmsg event by {} from the probe (pid {}) with fields {:?}, got {ev}",
            doctor::CGROUP_SOCK_ADDR,
            out.pid,
            want.denied()
        );
        d.expect_ok(&d.run("udp-send", &[&probe(), "sendto", "udp", addr, &ua]));
    }
    d.expect_no_event(
        "the allowed UDP sends",
        &[("/target/port", json!(UDP_ALLOWED))],
    );
}

#[test]
fn tcp_fast_open_is_judged_by_cgroup_sock_addr() {
    let (allowed, mut other) = (
        Background::probe(&["listen", "tcp", "127.0.0.1", "0"]),
        Background::probe(&["listen", "tcp", "127.0.0.1", "0"]),
    );
    let (pa, po) = (allowed.port().to_string(), other.port().to_string());
    let pol = Policy::probe_only("tfo").connect("127.0.0.1/32", &[&pa]);
    let d = Daemon::with(&[&pol]);

    let out = d.run("tfo", &[&probe(), "sendto", "tfo", "127.0.0.1", &po]);
    d.expect_errno(&out, "EPERM");
    let want = InetEvent {
        task: "tfo",
        op: "connect",
        backend: doctor::CGROUP_SOCK_ADDR,
        addr: "127.0.0.1",
        port: other.port(),
        family: "ipv4",
        proto: "tcp",
    };
    // sendto(MSG_FASTOPEN) never passes the LSM connect hook: the cgroup program alone judges.
    let ev = d.expect_one_event("the refused Fast Open", &want.any_backend());
    assert!(
        has(&ev, &want.denied()) && event_pid(&ev) == u64::from(out.pid),
        "expected a denied connect event by {} from the probe (pid {}) with fields {:?}, got {ev}",
        doctor::CGROUP_SOCK_ADDR,
        out.pid,
        want.denied()
    );
    assert!(
        other.running(),
        "expected the unlisted listener never to see the refused Fast Open"
    );

    d.expect_ok(&d.run("tfo", &[&probe(), "sendto", "tfo", "127.0.0.1", &pa]));
    let l = allowed.wait();
    assert_eq!(
        l.code,
        Some(0),
        "expected the listed listener to accept the Fast Open connection\n{}",
        l.describe()
    );
    // Untagged, the same send reaches the unlisted listener: the EPERM above was Corral's.
    d.expect_ok(&process::probe(&["sendto", "tfo", "127.0.0.1", &po]));
    let l = other.wait();
    assert_eq!(
        l.code,
        Some(0),
        "expected the unlisted listener to accept the untagged Fast Open connection\n{}",
        l.describe()
    );
}

#[test]
fn tcp_fast_open_in_audit_mode_goes_through_and_is_reported_once() {
    let listener = Background::probe(&["listen", "tcp", "127.0.0.1", "0"]);
    let port = listener.port();
    let pol = Policy::probe_only("tfo-audit").audit();
    let d = Daemon::with(&[&pol]);

    d.expect_ok(&d.run(
        "tfo-audit",
        &[&probe(), "sendto", "tfo", "127.0.0.1", &port.to_string()],
    ));
    let want = InetEvent {
        task: "tfo-audit",
        op: "connect",
        backend: doctor::CGROUP_SOCK_ADDR,
        addr: "127.0.0.1",
        port,
        family: "ipv4",
        proto: "tcp",
    };
    let ev = d.expect_one_event("the audited Fast Open", &want.any_backend());
    let mut fields = want.target();
    fields.extend([("/decision", json!("audited")), ("/mode", json!("audit"))]);
    assert!(
        has(&ev, &fields),
        "expected the Fast Open (unseen by the LSM hook) to be reported audited by {}, fields {fields:?}; got {ev}",
        doctor::CGROUP_SOCK_ADDR
    );
    let l = listener.wait();
    assert_eq!(
        l.code,
        Some(0),
        "expected the audited Fast Open to reach the listener\n{}",
        l.describe()
    );
}

/// The backends BPF LSM gives: everything by LSM hooks, TCP and UDP connects and UDP sends by
/// the cgroup programs.
fn expect_full_backends(doc: &Value, source: &str) {
    let backends = doctor::backends(doc, source);
    for op in doctor::OPERATIONS {
        let want = if op == "sendmsg" || op == "connect" {
            doctor::CGROUP_SOCK_ADDR
        } else {
            doctor::LSM
        };
        assert_eq!(
            backends[op].as_deref(),
            Some(want),
            "expected {source} to name {want} for {op} on a kernel with BPF LSM, got {}",
            doc["backends"]
        );
    }
}

#[test]
fn doctor_reports_full_enforcement_and_status_agrees() {
    let (out, doc) = doctor::json();
    assert_eq!(
        out.code,
        Some(doctor::EXIT_FULL),
        "expected `corral doctor --json` to exit {} (full) with BPF LSM\n{}",
        doctor::EXIT_FULL,
        out.describe()
    );
    assert_eq!(
        doc["verdict"], "full",
        "expected verdict \"full\", got {doc}"
    );
    expect_full_backends(&doc, "`corral doctor --json`");
    for mechanism in ["bpf_lsm", "tp_btf", "cgroup_sock_addr"] {
        let f = doctor::finding(&doc, mechanism);
        assert!(
            f["available"] == true && f.get("fix").is_none_or(Value::is_null),
            "expected {mechanism} available (and no fix) in the VM, got {f}"
        );
    }

    let text = doctor::run(&[]);
    assert_eq!(
        text.code,
        Some(doctor::EXIT_FULL),
        "expected `corral doctor` to exit {}\n{}",
        doctor::EXIT_FULL,
        text.describe()
    );
    let rows = doctor::table_rows(&text.stdout);
    for op in doctor::OPERATIONS {
        let want = doc["backends"][op].as_str().unwrap_or("NONE");
        assert_eq!(
            rows.get(op).map(String::as_str),
            Some(want),
            "expected a table row \"{op} {want} ...\"\n{}",
            text.describe()
        );
    }
    assert!(
        !text.stdout.contains("MISSING bpf_lsm"),
        "expected no missing bpf_lsm in the VM\n{}",
        text.describe()
    );
    doctor::expect_guards(&doc, &text.stdout, |_| Some(doctor::LSM));

    let pol = Policy::probe_only("backends");
    let d = Daemon::with(&[&pol]);
    let st = d.status();
    expect_full_backends(&st, "`corral status --json`");
    assert_eq!(
        st["backends"], doc["backends"],
        "expected the daemon and `corral doctor` to agree on every operation's backend"
    );
}

// ---------------------------------------------------------------------------------------------
// who is confined

#[test]
fn untagged_processes_are_untouched() {
    let s = Scratch::new("untagged");
    let secret = s.file("secret", "s3cret");
    let tool = s.copy_exe(&env::probe_bin(), "bin/tool");
    let sock = s.join("x.sock");
    let tcp = Background::probe(&["listen", "tcp", "127.0.0.1", "0"]);
    let unix = Background::probe(&["listen", "unix", &sock]);
    let pol = Policy::probe_only("untagged");
    let d = Daemon::with(&[&pol]);
    let counters_before = d.status()["counters"].clone();

    let port = tcp.port().to_string();
    let marker = s.join("written");
    for args in [
        vec!["open", secret.as_str(), "r"],
        vec!["open", marker.as_str(), "w"],
        vec!["exec", tool.as_str(), "open", secret.as_str(), "r"],
        vec!["connect", "tcp", "127.0.0.1", port.as_str()],
        vec!["connect", "unix", sock.as_str()],
        vec!["connect", "udp", "127.0.0.1", "9"],
        vec!["sendto", "udp", "127.0.0.1", "9"],
        vec!["sendto", "udp", "::1", "9"],
    ] {
        d.expect_ok(&process::probe(&args));
    }
    drop((tcp.wait(), unix.wait()));
    let tfo = Background::probe(&["listen", "tcp", "127.0.0.1", "0"]);
    d.expect_ok(&process::probe(&[
        "sendto",
        "tfo",
        "127.0.0.1",
        &tfo.port().to_string(),
    ]));
    drop(tfo.wait());
    std::thread::sleep(corral_tests::daemon::SETTLE);
    let evs = d.events();
    assert!(
        evs.is_empty(),
        "expected no events from untagged processes, got:\n{}",
        events::tail(&evs, 10)
    );
    let counters_after = d.status()["counters"].clone();
    assert_eq!(
        counters_before, counters_after,
        "expected the decision counters not to move for untagged processes"
    );
}

#[test]
fn grandchildren_inherit_the_tag() {
    let s = Scratch::new("inherit");
    let allowed = s.file("allowed/file", "ok");
    let secret = s.file("secret", "s3cret");
    let pol = Policy::probe_only("inherit").read(&s.dir_entry("allowed"));
    let d = Daemon::with(&[&pol]);

    let out = d.run(
        "inherit",
        &[&probe(), "spawn", "3", "--", &probe(), "open", &secret, "r"],
    );
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the great-grandchild's refused read",
        &denied_open("inherit", &secret, "read"),
    );
    let child_pid = ev
        .pointer("/process/pid")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    let parent_pid = ev
        .pointer("/process/ppid")
        .and_then(Value::as_u64)
        .unwrap_or(0);
    assert!(
        child_pid != u64::from(out.pid)
            && parent_pid != u64::from(out.pid)
            && child_pid != 0
            && parent_pid != 0,
        "expected the refusal to come from the third generation (not pid {} or its child), got {ev}",
        out.pid
    );
    d.expect_ok(&d.run(
        "inherit",
        &[
            &probe(),
            "spawn",
            "3",
            "--",
            &probe(),
            "open",
            &allowed,
            "r",
        ],
    ));
}

#[test]
fn audit_mode_allows_and_reports_audited() {
    let s = Scratch::new("audit");
    let secret = s.file("secret", "s3cret");
    let tool = s.copy_exe(&env::probe_bin(), "bin/tool");
    let listener = Background::probe(&["listen", "tcp", "127.0.0.1", "0"]);
    let port = listener.port();
    let pol = Policy::probe_only("audited")
        .audit()
        .read(&s.dir_entry("bin"));
    let d = Daemon::with(&[&pol]);

    let audited = |op: &str| -> Vec<(&'static str, Value)> {
        vec![
            ("/decision", json!("audited")),
            ("/mode", json!("audit")),
            ("/op", json!(op)),
            ("/task", json!("audited")),
        ]
    };
    d.expect_ok(&d.run("audited", &[&probe(), "open", &secret, "r"]));
    let _ = d.expect_one_event(
        "the audited read",
        &with(audited("open"), "/target/path", json!(secret)),
    );

    d.expect_ok(&d.run("audited", &[&probe(), "exec", &tool, "open", &probe(), "r"]));
    let _ = d.expect_one_event(
        "the audited exec",
        &with(audited("exec"), "/target/path", json!(tool)),
    );

    d.expect_ok(&d.run(
        "audited",
        &[&probe(), "connect", "tcp", "127.0.0.1", &port.to_string()],
    ));
    let _ = d.expect_one_event(
        "the audited connect",
        &with(audited("connect"), "/target/port", json!(port)),
    );
    d.expect_no_event(
        "any denial in audit mode",
        &[("/decision", json!("denied"))],
    );
}

// ---------------------------------------------------------------------------------------------
// corral run

/// A task that may run `corral run` again and reach the daemon's socket.
fn outer_policy(name: &str, socket: &str, reach_socket: bool) -> Policy {
    let corral = env::corral();
    let mut p = Policy::probe_only(name).exec(&corral).read(&corral);
    for r in runtime::load_reads(&corral) {
        p = p.read(&r);
    }
    if reach_socket {
        p = p.unix(socket);
    }
    p
}

fn broad_policy(name: &str) -> Policy {
    Policy::probe_only(name).exec("/").read("/").write("/")
}

#[test]
fn tagged_process_cannot_retag_itself() {
    let s = Scratch::new("retag");
    let sock = s.join("corral.sock");
    let marker = s.join("marker");
    let outer = outer_policy("retag-outer", &sock, true);
    let broad = broad_policy("retag-broad");
    let d = Daemon::with_socket(&[&outer, &broad], Some(Path::new(&sock)));
    let corral = env::corral();

    for target in ["retag-broad", "retag-outer"] {
        let connects_before = d.counter("connect", "allowed");
        let out = d.run(
            "retag-outer",
            &[
                &corral,
                "run",
                "--task",
                target,
                "--socket",
                &sock,
                "--",
                &probe(),
                "open",
                &marker,
                "w",
            ],
        );
        expect_corral_exit(&out, EXIT_REFUSED);
        assert!(
            !Path::new(&marker).exists(),
            "expected CMD not to run when re-tagging to {target} is refused, but {marker} exists"
        );
        // The kernel let the inner corral run start and reach the socket: the refusal is the
        // daemon's.
        let connects_after = d.counter("connect", "allowed");
        assert!(
            connects_after > connects_before,
            "expected the kernel to allow the inner connect to the daemon (counters.connect.allowed {connects_before} -> {connects_after})"
        );
    }
    for op in ["exec", "connect"] {
        d.expect_no_event(
            "a kernel refusal of the inner corral run",
            &denied("retag-outer", op),
        );
    }
}

#[test]
fn retag_without_socket_rule_is_stopped_by_the_kernel() {
    let s = Scratch::new("retag-kernel");
    let sock = s.join("corral.sock");
    let marker = s.join("marker");
    let outer = outer_policy("retag-nosock", &sock, false);
    let broad = broad_policy("retag-broad");
    let d = Daemon::with_socket(&[&outer, &broad], Some(Path::new(&sock)));
    let corral = env::corral();

    let out = d.run(
        "retag-nosock",
        &[
            &corral,
            "run",
            "--task",
            "retag-broad",
            "--socket",
            &sock,
            "--",
            &probe(),
            "open",
            &marker,
            "w",
        ],
    );
    expect_corral_exit(&out, EXIT_UNAVAILABLE);
    assert!(
        !Path::new(&marker).exists(),
        "expected CMD not to run, but {marker} exists"
    );
    let _ = d.expect_one_event(
        "the refused connect to the daemon socket",
        &denied_unix("retag-nosock", &sock),
    );
}

#[test]
fn run_with_unknown_task_is_refused_without_running_cmd() {
    let s = Scratch::new("unknown-task");
    let marker = s.join("marker");
    let pol = Policy::probe_only("known");
    let d = Daemon::with(&[&pol]);

    let out = d.run("no-such-task", &[&probe(), "open", &marker, "w"]);
    expect_corral_exit(&out, EXIT_REFUSED);
    assert!(
        !Path::new(&marker).exists(),
        "expected CMD not to run, but {marker} exists"
    );
    let tasks = d.status()["tasks"].clone();
    assert!(
        tasks
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["name"] != "no-such-task")),
        "expected no task no-such-task in status, got {tasks}"
    );
}

#[test]
fn run_without_daemon_exits_69_without_running_cmd() {
    let s = Scratch::new("no-daemon");
    let marker = s.join("marker");
    for sock in [s.join("missing/corral.sock"), stale_socket(&s)] {
        let mut cmd = std::process::Command::new(env::corral_bin());
        cmd.args([
            "run",
            "--task",
            "any",
            "--socket",
            &sock,
            "--",
            &probe(),
            "open",
            &marker,
            "w",
        ]);
        let out = process::run(cmd);
        expect_corral_exit(&out, EXIT_UNAVAILABLE);
        assert!(
            !Path::new(&marker).exists(),
            "expected CMD not to run, but {marker} exists"
        );
    }
}

/// A socket file nobody listens on (its listener is gone).
fn stale_socket(s: &Scratch) -> String {
    let path = s.join("stale.sock");
    let l = std::os::unix::net::UnixListener::bind(&path)
        .unwrap_or_else(|e| panic!("expected to bind {path}: {e}"));
    drop(l);
    path
}

// ---------------------------------------------------------------------------------------------
// daemon

/// The `tasks[]` entry of `name` in a status document.
fn task_status(st: &Value, name: &str) -> Value {
    st["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == name).cloned())
        .unwrap_or_else(|| panic!("expected task {name} in status, got {}", st["tasks"]))
}

#[test]
fn status_reports_hooks_tasks_and_counters() {
    let s = Scratch::new("status");
    let secret = s.file("secret", "s3cret");
    let enforce = Policy::probe_only("status-enforce");
    let audit = Policy::probe_only("status-audit").audit();
    let d = Daemon::with(&[&enforce, &audit]);

    let st = d.status();
    // Debian's stock kernels have CONFIG_KALLSYMS_ALL and kptr_restrict 0.
    assert_eq!(
        st["open_decision_cache"],
        json!({"state": "on"}),
        "expected the open-decision cache on with BPF LSM on Debian's kernel"
    );
    let hooks = st["hooks"].as_array().cloned().unwrap_or_default();
    for program in [
        "corral_bprm_check",
        "corral_file_open",
        "corral_socket_connect",
        "corral_sched_fork",
        "corral_sched_exit",
        "corral_connect4",
        "corral_connect6",
        "corral_sendmsg4",
        "corral_sendmsg6",
    ] {
        assert!(
            hooks
                .iter()
                .any(|h| h["program"] == program && h["attached"] == true),
            "expected hook {program} attached in status, got {}",
            st["hooks"]
        );
    }
    assert_eq!(
        task_status(&st, "status-enforce")["mode"],
        "enforce",
        "expected the default mode to be enforce"
    );
    assert_eq!(
        task_status(&st, "status-audit")["mode"],
        "audit",
        "expected status-audit in audit mode"
    );
    for c in ["events_dropped", "tag_insert_failed"] {
        assert_eq!(
            st["counters"][c], 0,
            "expected counters.{c} = 0, got {}",
            st["counters"]
        );
    }

    let denied_before = d.counter("open", "denied");
    let allowed_before = d.counter("open", "allowed");
    d.expect_errno(
        &d.run("status-enforce", &[&probe(), "open", &secret, "r"]),
        "EPERM",
    );
    d.expect_ok(&d.run("status-enforce", &[&probe(), "open", &probe(), "r"]));
    assert_eq!(
        d.counter("open", "denied"),
        denied_before + 1,
        "expected counters.open.denied to grow by exactly one"
    );
    assert!(
        d.counter("open", "allowed") > allowed_before,
        "expected counters.open.allowed to grow"
    );
}

#[test]
fn status_counts_tagged_processes_until_they_exit() {
    let pol = Policy::probe_only("status-procs");
    let d = Daemon::with(&[&pol]);
    let processes = || task_status(&d.status(), "status-procs")["processes"].clone();
    assert_eq!(processes(), 0, "expected no tagged process yet");

    let listener = d.run_background(
        "status-procs",
        &[&probe(), "listen", "tcp", "127.0.0.1", "0"],
    );
    assert_eq!(
        processes(),
        1,
        "expected one tagged process while the listener runs"
    );
    d.expect_ok(&process::probe(&[
        "connect",
        "tcp",
        "127.0.0.1",
        &listener.port().to_string(),
    ]));
    let l = listener.wait();
    assert_eq!(
        l.code,
        Some(0),
        "expected the tagged listener to exit after one connection\n{}",
        l.describe()
    );
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    loop {
        let n = processes();
        if n == 0 {
            break;
        }
        assert!(
            std::time::Instant::now() < deadline,
            "expected the tag to leave with the process (processes back to 0), still {n}"
        );
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
}

const MALFORMED: &str = "apiVersion: corral.dev/v1
kind: TaskPolicy
metadata:
  name: malformed
spec:
  files:
    read: [/tmp/]
    raed: [/etc/]
";

#[test]
fn daemon_refuses_malformed_policy_and_starts_with_valid_one() {
    let valid = Policy::probe_only("valid");
    let valid_yaml = valid.yaml();
    for set in [
        vec![("malformed.yaml", MALFORMED)],
        vec![
            ("valid.yaml", valid_yaml.as_str()),
            ("malformed.yaml", MALFORMED),
        ],
    ] {
        let s = Scratch::new("malformed");
        let sock = s.path().join("corral.sock");
        let failure = Daemon::try_launch(&Launch {
            policies: &set,
            socket: Some(&sock),
            ..Launch::default()
        })
        .err()
        .unwrap_or_else(|| {
            panic!(
                "expected the daemon to refuse a malformed policy (set {:?})",
                set.iter().map(|p| p.0).collect::<Vec<_>>()
            )
        });
        let lines: Vec<&str> = failure
            .stderr
            .lines()
            .filter(|l| !l.trim().is_empty())
            .collect();
        assert!(
            failure.code == Some(EXIT_CONFIG)
                && lines.len() == 1
                && lines[0].starts_with("corral: ")
                && lines[0].contains("malformed.yaml:8:"),
            "expected exit {EXIT_CONFIG} and one line \"corral: ...malformed.yaml:8:...\" (the unknown field raed), got code {:?}, timed out {}, stderr:\n{}",
            failure.code,
            failure.timed_out,
            failure.stderr
        );
        assert!(
            !sock.exists(),
            "expected no socket left behind at {}",
            sock.display()
        );
    }
    let d = Daemon::with(&[&valid]);
    d.expect_ok(&d.run("valid", &[&probe(), "open", &probe(), "r"]));
}

const UNCREATABLE: [&str; 3] = ["/proc/", "/sys/", "/dev/"];

#[test]
fn shipped_policies_load_and_enforce() {
    let policies = shipped::load_all();
    let files: Vec<(String, String)> = policies
        .iter()
        .map(|p| {
            let name = p
                .file
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
                .unwrap_or_default();
            let yaml = std::fs::read_to_string(&p.file)
                .unwrap_or_else(|e| panic!("expected to read {}: {e}", p.file.display()));
            (name, yaml)
        })
        .collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, y)| (n.as_str(), y.as_str()))
        .collect();
    let d = Daemon::start(&refs);
    let st = d.status();
    for p in &policies {
        assert_eq!(
            task_status(&st, &p.name)["mode"],
            p.mode.as_str(),
            "expected shipped task {} ({}) in mode {}",
            p.name,
            p.file.display(),
            p.mode
        );
    }
    for p in &policies {
        exercise_shipped(&d, p);
    }
}

/// One allowed read (and write, if the policy allows writing somewhere) and one refused read
/// under shipped policy `p`, with a copy of the probe staged where `p` lets it run.
fn exercise_shipped(d: &Daemon, p: &shipped::ShippedPolicy) {
    let mut placed = shipped::Placed::default();
    let staged = shipped::stage_probe(p, &mut placed);
    let env: Vec<(&str, &str)> = staged
        .env
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    let tag = format!("corral-test-{}", std::process::id());
    let run = |args: &[&str]| {
        let mut argv = vec![staged.exe.as_str()];
        argv.extend_from_slice(args);
        d.run_env(&p.name, &argv, &env)
    };
    let creatable = |e: &&String| !UNCREATABLE.iter().any(|x| e.starts_with(x));

    let readable = p
        .read
        .iter()
        .filter(creatable)
        .map(|e| {
            if e.ends_with('/') {
                format!("{e}{tag}-read")
            } else {
                e.clone()
            }
        })
        .find(|f| p.can_read(f))
        .unwrap_or_else(|| {
            panic!(
                "expected shipped policy {} to allow reading some file",
                p.name
            )
        });
    placed.file(&readable, "shipped-policy test\n");
    d.expect_ok(&run(&["open", &readable, "r"]));
    d.expect_no_event(
        &format!("the allowed read of {readable} under {}", p.name),
        &[("/task", json!(p.name)), ("/target/path", json!(readable))],
    );
    if let Some(writable) = p
        .write
        .iter()
        .filter(creatable)
        .filter(|e| e.ends_with('/'))
        .map(|e| format!("{e}{tag}-write"))
        .find(|f| p.can_write(f))
    {
        placed.file(&writable, "");
        d.expect_ok(&run(&["open", &writable, "w"]));
    }

    // A file no rule lets it read (or one a deny rule covers).
    let outside = [
        "/corral-denied/secret",
        "/root/corral-denied",
        "/var/corral-denied/secret",
        "/opt/corral-denied/secret",
        "/srv/corral-denied/secret",
    ]
    .iter()
    .map(|s| (*s).to_owned())
    .chain(p.deny.iter().filter(creatable).map(|e| {
        if e.ends_with('/') {
            format!("{e}{tag}-denied")
        } else {
            e.clone()
        }
    }))
    .find(|f| !p.can_read(f))
    .unwrap_or_else(|| {
        panic!(
            "expected shipped policy {} to refuse reading something",
            p.name
        )
    });
    placed.file(&outside, "secret\n");
    let out = run(&["open", &outside, "r"]);
    let decision = if p.mode == "audit" {
        d.expect_ok(&out);
        "audited"
    } else {
        d.expect_errno(&out, "EPERM");
        "denied"
    };
    let _ = d.expect_one_event(
        &format!("the refused read of {outside} under {}", p.name),
        &[
            ("/decision", json!(decision)),
            ("/op", json!("open")),
            ("/task", json!(p.name)),
            ("/target/path", json!(outside)),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// tampering: what a confined process may never do, whatever its policy says

/// Fields of a `denied` event of `op` with reason `forbidden`.
fn forbidden(task: &str, op: &str) -> Vec<(&'static str, Value)> {
    with(denied(task, op), "/reason", json!("forbidden"))
}

#[test]
fn bpf_syscall_is_forbidden_to_tagged_processes() {
    let pol = Policy::probe_only("no-bpf");
    let d = Daemon::with(&[&pol]);
    d.expect_ok(&process::probe(&["tamper", "bpf"]));
    let out = d.run("no-bpf", &[&probe(), "tamper", "bpf"]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event("the refused bpf()", &forbidden("no-bpf", "bpf"));
    assert_field(&ev, "/target/cmd", &json!(12));
}

#[test]
fn raw_and_packet_sockets_are_forbidden_to_tagged_processes() {
    let pol = Policy::probe_only("no-raw");
    let d = Daemon::with(&[&pol]);
    for kind in ["raw", "packet"] {
        d.expect_ok(&process::probe(&["tamper", kind]));
        let out = d.run("no-raw", &[&probe(), "tamper", kind]);
        d.expect_errno(&out, "EPERM");
    }
    let evs = d.wait_events(|e| has(e, &forbidden("no-raw", "socket")), EVENT_TIMEOUT);
    assert_eq!(
        evs.len(),
        2,
        "expected one forbidden socket event for raw and one for packet, got:\n{}",
        events::tail(&evs, 5)
    );
    // The same raw socket through the 32-bit system call ABI (`int $0x80`): `socket` and the
    // `socketcall` multiplexer reach the same hook.
    let raw = [libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP].map(|n| n.to_string());
    for how in ["ia32-socket", "ia32-socketcall"] {
        d.expect_ok(&process::probe(&[how, &raw[0], &raw[1], &raw[2]]));
        let out = d.run("no-raw", &[&probe(), how, &raw[0], &raw[1], &raw[2]]);
        d.expect_errno(&out, "EPERM");
        let _ = d.expect_one_event(
            &format!("the refused raw socket made by {how}"),
            &with(
                forbidden("no-raw", "socket"),
                "/process/pid",
                json!(out.pid),
            ),
        );
    }
}

/// `socket FAMILY TYPE PROTO` numbers of sockets no Corral hook judges the traffic of, with a
/// name for messages: each must be refused to a tagged process unless `other_sockets` (or, for
/// ping, `raw_sockets`) is granted.
const UNJUDGED_SOCKETS: [(&str, [i32; 3]); 6] = [
    (
        "SCTP stream",
        [libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_SCTP],
    ),
    (
        "SCTP seqpacket over IPv6",
        [libc::AF_INET6, libc::SOCK_SEQPACKET, libc::IPPROTO_SCTP],
    ),
    ("DCCP", [libc::AF_INET, 6, 33]),
    ("vsock", [libc::AF_VSOCK, libc::SOCK_STREAM, 0]),
    ("RDS", [libc::AF_RDS, libc::SOCK_SEQPACKET, 0]),
    ("TIPC", [libc::AF_TIPC, libc::SOCK_RDM, 0]),
];

#[test]
fn sockets_no_hook_judges_are_refused_unless_granted() {
    let pol = Policy::probe_only("judged-sockets");
    let granted = Policy::probe_only("other-sockets").privilege("other_sockets");
    let d = Daemon::with(&[&pol, &granted]);
    let socket = |task: &str, [family, ty, proto]: [i32; 3]| {
        let words = [
            probe(),
            "socket".to_owned(),
            family.to_string(),
            ty.to_string(),
            proto.to_string(),
        ];
        d.run(task, &words.each_ref().map(String::as_str))
    };
    for (what, numbers) in UNJUDGED_SOCKETS {
        let out = socket("judged-sockets", numbers);
        d.expect_errno(&out, "EPERM");
        let ev = d.expect_one_event(
            &format!("the refused {what} socket"),
            &with(
                forbidden("judged-sockets", "socket"),
                "/process/pid",
                json!(out.pid),
            ),
        );
        assert_field(&ev, "/target/family", &json!(numbers[0]));
        assert_field(&ev, "/target/protocol", &json!(numbers[2]));
        // Granted: the kernel itself answers (created, or no such protocol here), never Corral.
        let out = socket("other-sockets", numbers);
        assert!(
            not_refused(&out),
            "expected the {what} socket of a task granted other_sockets to be created or to \
             fail with the kernel's own errno, not EPERM\n{}",
            out.describe()
        );
    }
    // Ping sockets need raw_sockets, not other_sockets.
    let ping = [libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_ICMP];
    for task in ["judged-sockets", "other-sockets"] {
        let out = socket(task, ping);
        d.expect_errno(&out, "EPERM");
    }
    // What the hooks judge is created freely: unix, TCP, MPTCP, UDP, UDP-Lite, IPv4 and IPv6.
    for numbers in [
        [libc::AF_UNIX, libc::SOCK_DGRAM, 0],
        [libc::AF_INET, libc::SOCK_STREAM, 0],
        [libc::AF_INET6, libc::SOCK_STREAM, libc::IPPROTO_TCP],
        [libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDP],
        [libc::AF_INET6, libc::SOCK_DGRAM, 0],
        [libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE],
    ] {
        let out = socket("judged-sockets", numbers);
        d.expect_ok(&out);
    }
    let out = socket(
        "judged-sockets",
        [libc::AF_INET, libc::SOCK_STREAM, libc::IPPROTO_MPTCP],
    );
    assert!(
        not_refused(&out),
        "expected an MPTCP socket (its subflows' connects are judged) not to be refused\n{}",
        out.describe()
    );
    // Untagged processes are never judged.
    let out = process::probe(&[
        "socket",
        &libc::AF_VSOCK.to_string(),
        &libc::SOCK_STREAM.to_string(),
        "0",
    ]);
    assert!(
        not_refused(&out),
        "expected an untagged vsock socket not to be refused by Corral\n{}",
        out.describe()
    );
}

/// Whether a probe ran and either succeeded or failed with an errno other than `EPERM`.
fn not_refused(out: &corral_tests::process::RunOutput) -> bool {
    out.code == Some(0)
        || (out.code == Some(1)
            && out.first_line().starts_with("err ")
            && !out.first_line().starts_with("err EPERM "))
}

#[test]
fn signals_and_ptrace_reach_only_the_own_task() {
    let pol = Policy::probe_only("no-signal");
    let d = Daemon::with(&[&pol]);
    let victim = Background::probe(&["listen", "tcp", "127.0.0.1", "0"]);
    let pid = victim.pid().to_string();

    let out = d.run("no-signal", &[&probe(), "tamper", "kill", &pid, "15"]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event("the refused signal", &forbidden("no-signal", "signal"));
    assert_field(&ev, "/target/pid", &json!(victim.pid()));
    assert_field(&ev, "/target/signal", &json!(15));
    // Signal 0 only asks whether the process exists.
    d.expect_ok(&d.run("no-signal", &[&probe(), "tamper", "kill", &pid, "0"]));

    let out = d.run("no-signal", &[&probe(), "tamper", "ptrace", &pid]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event("the refused ptrace", &forbidden("no-signal", "ptrace"));
    assert_field(&ev, "/target/pid", &json!(victim.pid()));

    // The daemon is out of reach too.
    let daemon_pid = d.pid().to_string();
    let out = d.run("no-signal", &[&probe(), "tamper", "kill", &daemon_pid, "9"]);
    d.expect_errno(&out, "EPERM");
    assert!(
        d.status()["tasks"].is_array(),
        "expected the daemon to survive a confined SIGKILL"
    );
    // An untagged process may still signal it (so the victim is really signal-able).
    d.expect_ok(&process::probe(&["tamper", "kill", &pid, "0"]));
    drop(victim);
}

#[test]
fn hard_links_mounts_and_module_loads_are_forbidden() {
    let s = Scratch::new("no-link");
    let secret = s.file("secret", "s3cret");
    let _ = s.mkdir("out");
    let mnt = s.mkdir("mnt");
    let pol = Policy::probe_only("no-link")
        .read(&s.dir_entry(""))
        .write(&s.dir_entry("out"))
        .write(&s.dir_entry("mnt"));
    let d = Daemon::with(&[&pol]);

    let link = s.join("out/alias");
    let out = d.run("no-link", &[&probe(), "tamper", "link", &secret, &link]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event("the refused hard link", &forbidden("no-link", "link"));
    assert!(
        !Path::new(&link).exists(),
        "expected no hard link at {link}"
    );

    let out = d.run("no-link", &[&probe(), "tamper", "mount", &mnt]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event("the refused mount", &forbidden("no-link", "mount"));

    let out = d.run("no-link", &[&probe(), "tamper", "init_module"]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused module load",
        &forbidden("no-link", "kernel_load"),
    );

    // Untagged, the same calls are not refused by Corral.
    let untagged_link = s.join("out/untagged-alias");
    d.expect_ok(&process::probe(&[
        "tamper",
        "link",
        &secret,
        &untagged_link,
    ]));
    d.expect_ok(&process::probe(&["tamper", "init_module"]));
}

// ---------------------------------------------------------------------------------------------
// selectors: processes that join a task without `corral run`, refused by the LSM hooks

#[test]
fn exec_selector_joins_the_task_and_the_lsm_refuses_what_it_does_not_allow() {
    let scratch = Scratch::new("vm-sel-exec");
    let allowed = scratch.file("data/allowed.txt", "fine\n");
    let secret = scratch.file("data/secret.txt", "secret\n");
    let (copy, pol) = selected_probe(&scratch, "vm-sel-exec");
    let d = Daemon::with(&[&pol.read(&allowed)]);
    let run_copy = |args: &[&str]| {
        let mut c = std::process::Command::new(&copy);
        c.args(args);
        process::run(c)
    };
    let ok = run_copy(&["open", &allowed, "r"]);
    d.expect_ok(&ok);
    let refused = run_copy(&["open", &secret, "r"]);
    d.expect_errno(&refused, "EPERM");
    let ev = d.expect_one_event(
        "the selected agent's refused open",
        &with(
            denied_open("vm-sel-exec", &secret, "read"),
            "/backend",
            json!("lsm"),
        ),
    );
    assert_field(&ev, "/enforcement", &json!("refuse"));
    assert_field(&ev, "/process/tgid", &json!(refused.pid));
    // The original probe is not selected: untouched.
    d.expect_ok(&process::probe(&["open", &secret, "r"]));
}

#[test]
fn cgroup_selector_confines_a_process_that_enters_the_cgroup() {
    let cg = TestCgroup::new("vm-sel");
    let scratch = Scratch::new("vm-sel-cgroup");
    let secret = scratch.file("secret.txt", "secret\n");
    let pol = Policy::probe_only("vm-sel-cgroup").select_cgroup(&cg.name);
    let d = Daemon::with(&[&pol]);
    let out = process::run({
        let mut c = std::process::Command::new("/bin/sh");
        c.args([
            "-c",
            &format!(
                "echo $$ > {} && exec {} open {secret} r",
                cg.procs(),
                probe()
            ),
        ]);
        c
    });
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused open of a process that entered the selected cgroup",
        &with(
            denied_open("vm-sel-cgroup", &secret, "read"),
            "/process/tgid",
            json!(out.pid),
        ),
    );
}

// ---------------------------------------------------------------------------------------------
// policies that change while agents run (BPF LSM)

#[test]
fn reload_under_load_never_gives_a_wrong_open_decision() {
    let scratch = Scratch::new("vm-reload");
    let always = scratch.file("always.txt", "a\n");
    let never = scratch.file("never.txt", "n\n");
    let only_v1 = scratch.file("v1.txt", "1\n");
    let only_v2 = scratch.file("v2.txt", "2\n");
    let version = |extra: &str| {
        Policy::probe_only("vm-churn")
            .read(&always)
            .read(extra)
            .yaml()
    };
    let (v1, v2) = (version(&only_v1), version(&only_v2));
    let d = Daemon::start(&[("vm-churn.yaml", &v1)]);
    let before = d.status()["policy"]["generation"].as_u64().unwrap_or(0);
    let looper = Later::start(d.run_command(
        "vm-churn",
        &[&probe(), "loop", "25000", "open", &always, &never],
    ));
    // Each version is written, then the test waits until the kernel has it.
    let mut seen = before;
    for i in 0..30 {
        replace_file(
            &d.policies(),
            "vm-churn.yaml",
            if i % 2 == 0 { &v2 } else { &v1 },
        );
        let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
        loop {
            let g = d.status()["policy"]["generation"].as_u64().unwrap_or(0);
            if g > seen {
                seen = g;
                break;
            }
            assert!(
                std::time::Instant::now() < deadline,
                "expected flip {i} to reach the kernel (generation past {seen})"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    }
    let out = looper.wait();
    assert!(
        out.code == Some(0) && out.first_line() == "ok",
        "expected zero wrong decisions while the policy was switched 30 times\n{}",
        out.describe()
    );
    let after = d.status()["policy"]["generation"].as_u64().unwrap_or(0);
    assert!(
        after >= before + 30,
        "expected the rewrites to reach the kernel many times (generation {before} -> {after})"
    );
    std::thread::sleep(std::time::Duration::from_millis(500));
    d.expect_ok(&d.run("vm-churn", &[&probe(), "open", &only_v1, "r"]));
    d.expect_errno(
        &d.run("vm-churn", &[&probe(), "open", &only_v2, "r"]),
        "EPERM",
    );
}

#[test]
fn a_killed_daemon_leaves_the_lsm_enforcing_and_a_restarted_one_adopts_it() {
    let pins = SharedPins::new("vm-restart");
    let scratch = Scratch::new("vm-restart");
    let always = scratch.file("always.txt", "a\n");
    let never = scratch.file("never.txt", "n\n");
    let yaml = Policy::probe_only("vm-restart").read(&always).yaml();
    let files = [("vm-restart.yaml", yaml.as_str())];
    let launch = Launch {
        policies: &files,
        pin_dir: Some(&pins.dir),
        ..Launch::default()
    };
    let mut first = Daemon::launch(&launch);
    let stop = scratch.join("stop");
    let mut cmd = first.run_command(
        "vm-restart",
        &[&probe(), "loop", "300000", "open", &always, &never],
    );
    cmd.env("CORRAL_PROBE_STOP", &stop);
    let looper = Later::start(cmd);
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    while first.status()["confined_processes"].as_u64() < Some(1) {
        assert!(
            std::time::Instant::now() < deadline,
            "expected the loop to be confined"
        );
        std::thread::sleep(std::time::Duration::from_millis(100));
    }
    first.kill();
    std::thread::sleep(std::time::Duration::from_secs(2));
    let second = Daemon::launch(&launch);
    assert!(
        second.status()["confined_processes"].as_u64() >= Some(1),
        "expected the restarted daemon to adopt the confined loop, got {}",
        second.status()
    );
    // A few more seconds judged by the new daemon's programs, then stop the loop.
    std::thread::sleep(std::time::Duration::from_secs(3));
    std::fs::write(&stop, "").unwrap_or_else(|e| panic!("expected to create {stop}: {e}"));
    let out = looper.wait();
    assert!(
        out.code == Some(0) && out.first_line() == "ok",
        "expected zero wrong decisions across a kill -9 and a restart of the daemon\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// exec without exec: executable mappings, memfd, execveat, the dynamic loader run directly

/// Fields of a `denied` executable mapping of `path`.
fn denied_mmap(task: &str, path: &str) -> Vec<(&'static str, Value)> {
    let mut f = denied(task, "mmap");
    f.push(("/target/path", json!(path)));
    f.push(("/target/access", json!("exec")));
    f
}

#[test]
fn executable_mapping_needs_exec_allow_or_read_only_file() {
    let s = Scratch::new("mmap-exec");
    let writable = s.file("ws/lib.so", "not really a library");
    let read_only = s.file("ro/lib.so", "not really a library either");
    let listed = s.file("ws/listed.so", "listed in exec.allow");
    let pol = Policy::probe_only("mmap-exec")
        .read(&s.dir_entry("ws"))
        .write(&s.dir_entry("ws"))
        .read(&s.dir_entry("ro"))
        .exec(&listed);
    let d = Daemon::with(&[&pol]);

    // A file the task may write is code it could have written itself.
    let out = d.run("mmap-exec", &[&probe(), "mmap", &writable, "x"]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused executable mapping",
        &denied_mmap("mmap-exec", &writable),
    );
    assert_field(&ev, "/reason", &json!("not_allowed"));
    assert_field(&ev, "/process/pid", &json!(out.pid));
    // Mapping it to read, a read-only library, an exec-listed file and anonymous executable
    // memory (JITs) are all allowed.
    d.expect_ok(&d.run("mmap-exec", &[&probe(), "mmap", &writable, "r"]));
    d.expect_ok(&d.run("mmap-exec", &[&probe(), "mmap", &read_only, "x"]));
    d.expect_ok(&d.run("mmap-exec", &[&probe(), "mmap", &listed, "x"]));
    d.expect_ok(&d.run("mmap-exec", &[&probe(), "anon-exec"]));

    // mprotect cannot make a file mapping executable after the fact, even a read-only one.
    let out = d.run("mmap-exec", &[&probe(), "mprotect", &read_only]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused mprotect(PROT_EXEC)",
        &with(denied("mmap-exec", "mmap"), "/process/pid", json!(out.pid)),
    );
    assert_field(&ev, "/target/path", &Value::Null);
    assert_field(&ev, "/target/access", &json!("exec"));

    // Untagged, the same mappings are Corral's business no longer.
    d.expect_ok(&process::probe(&["mmap", &writable, "x"]));
    d.expect_ok(&process::probe(&["mprotect", &read_only]));
}

#[test]
fn memfd_fexecve_is_refused() {
    let pol = Policy::probe_only("memfd-exec");
    let d = Daemon::with(&[&pol]);
    let out = d.run(
        "memfd-exec",
        &[&probe(), "memfd-exec", &probe(), "open", &probe(), "r"],
    );
    d.expect_errno(&out, "EPERM");
    let evs = d.wait_events(
        |e| {
            has(e, &denied("memfd-exec", "exec"))
                && events::text(e, "/target/path").starts_with("/memfd:corral-payload")
        },
        EVENT_TIMEOUT,
    );
    assert!(
        !evs.is_empty(),
        "expected a denied exec naming /memfd:corral-payload, got:\n{}",
        events::tail(&d.events(), 5)
    );
    d.expect_ok(&process::probe(&[
        "memfd-exec",
        &probe(),
        "open",
        &probe(),
        "r",
    ]));
}

#[test]
fn execveat_of_copied_binary_is_refused() {
    let s = Scratch::new("execveat");
    let copy = s.copy_exe(&env::probe_bin(), "bin/copy");
    let pol = Policy::probe_only("execveat").read(&s.dir_entry("bin"));
    let d = Daemon::with(&[&pol]);

    let out = d.run(
        "execveat",
        &[&probe(), "execveat", &copy, "open", &probe(), "r"],
    );
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused execveat(AT_EMPTY_PATH)",
        &with(denied("execveat", "exec"), "/target/path", json!(copy)),
    );
    // The listed binary through the same route runs.
    d.expect_ok(&d.run(
        "execveat",
        &[&probe(), "execveat", &probe(), "open", &probe(), "r"],
    ));
}

#[test]
fn dynamic_loader_runs_only_code_the_task_cannot_write() {
    let s = Scratch::new("ldso");
    let loader = corral_tests::runtime::loaded_files(&probe())
        .into_iter()
        .find(|f| f.contains("ld-linux"))
        .unwrap_or_else(|| panic!("expected the probe to name an ld-linux loader"));
    let writable = s.copy_exe(&env::probe_bin(), "ws/payload");
    let read_only = s.copy_exe(&env::probe_bin(), "ro/payload");
    let pol = Policy::probe_only("ldso")
        .exec(&loader)
        .read(&s.dir_entry("ws"))
        .write(&s.dir_entry("ws"))
        .read(&s.dir_entry("ro"));
    let d = Daemon::with(&[&pol]);

    let out = d.run(
        "ldso",
        &[&probe(), "exec", &loader, &writable, "open", &probe(), "r"],
    );
    assert!(
        out.code != Some(0) && !out.stdout.contains("ok"),
        "expected `{loader} {writable}` to fail to map the payload\n{}",
        out.describe()
    );
    let _ = d.expect_one_event(
        "the loader's refused mapping of a writable payload",
        &denied_mmap("ldso", &writable),
    );
    d.expect_no_event(
        "a refusal of the loader itself",
        &with(denied("ldso", "exec"), "/target/path", json!(loader)),
    );
    // Code the task can read but not write runs through the loader.
    d.expect_ok(&d.run(
        "ldso",
        &[&probe(), "exec", &loader, &read_only, "open", &probe(), "r"],
    ));
}

// ---------------------------------------------------------------------------------------------
// rename and removal: only where the task may write, at both ends

/// Fields of a `denied` rename or unlink naming `path`, by the process `out` started.
fn denied_write(
    task: &str,
    op: &str,
    path: &str,
    out: &process::RunOutput,
) -> Vec<(&'static str, Value)> {
    let mut f = denied(task, op);
    f.push(("/target/path", json!(path)));
    f.push(("/target/access", json!("write")));
    f.push(("/process/pid", json!(out.pid)));
    f
}

#[test]
fn rename_needs_write_at_both_ends() {
    let s = Scratch::new("rename");
    let env_file = s.file("ws/.env", "TOKEN=x");
    let movable = s.file("ws/notes", "notes");
    let evil = s.file("ws/evil", "evil");
    let secret = s.file("outside/secret", "s3cret");
    let ro_file = s.file("ro/file", "read only");
    let pol = Policy::probe_only("rename")
        .read(&s.dir_entry("ws"))
        .write(&s.dir_entry("ws"))
        .deny(&env_file)
        .read(&s.dir_entry("ro"));
    let d = Daemon::with(&[&pol]);

    // A denied file cannot be moved to an allowed name.
    let renamed = s.join("ws/env.txt");
    let out = d.run("rename", &[&probe(), "rename", &env_file, &renamed]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused move of a denied file",
        &denied_write("rename", "rename", &env_file, &out),
    );
    assert_field(&ev, "/reason", &json!("deny_rule"));
    assert!(
        Path::new(&env_file).exists() && !Path::new(&renamed).exists(),
        "expected {env_file} to stay where it was"
    );
    // An unlisted file cannot be moved into the workspace.
    let pulled_in = s.join("ws/secret");
    let out = d.run("rename", &[&probe(), "rename", &secret, &pulled_in]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused move of an unlisted file",
        &denied_write("rename", "rename", &secret, &out),
    );
    // The other direction: an allowed file cannot replace a denied one, nor leave for a
    // read-only place.
    let out = d.run("rename", &[&probe(), "rename", &evil, &env_file]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused overwrite of a denied file",
        &denied_write("rename", "rename", &env_file, &out),
    );
    let pushed_out = s.join("ro/evil");
    let out = d.run("rename", &[&probe(), "rename", &evil, &pushed_out]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused move into a read-only directory",
        &denied_write("rename", "rename", &pushed_out, &out),
    );
    // Inside the writable tree a rename is allowed.
    let moved = s.join("ws/notes-moved");
    d.expect_ok(&d.run("rename", &[&probe(), "rename", &movable, &moved]));
    assert!(
        Path::new(&moved).exists(),
        "expected the allowed rename to create {moved}"
    );

    // Removals need write too.
    let out = d.run("rename", &[&probe(), "unlink", &ro_file]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused unlink",
        &denied_write("rename", "unlink", &ro_file, &out),
    );
    let ro_dir = s.mkdir("ro/dir");
    let out = d.run("rename", &[&probe(), "rmdir", &ro_dir]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused rmdir",
        &denied_write("rename", "unlink", &ro_dir, &out),
    );
    d.expect_ok(&d.run("rename", &[&probe(), "unlink", &moved]));
    let ws_dir = s.mkdir("ws/dir");
    d.expect_ok(&d.run("rename", &[&probe(), "rmdir", &ws_dir]));

    // Untagged processes rename freely.
    d.expect_ok(&process::probe(&["rename", &env_file, &renamed]));
}

#[test]
fn renaming_a_directory_that_holds_a_denied_path_is_refused() {
    let s = Scratch::new("rename-dir");
    let key = s.file("ws/secret/key", "s3cret");
    let deep_key = s.file("ws/a/b/key", "s3cret");
    let free = s.file("ws/free/notes", "notes");
    let swap = s.mkdir("ws/swap");
    let pol = Policy::probe_only("rename-dir")
        .read(&s.dir_entry("ws"))
        .write(&s.dir_entry("ws"))
        .deny(&s.dir_entry("ws/secret"))
        .deny(&deep_key)
        .deny(&format!("{}/secret/", s.join("ws/later")));
    let d = Daemon::with(&[&pol]);
    let refused = |what: &str, op_args: &[&str], path: &str| {
        let mut argv = vec![probe()];
        argv.extend(op_args.iter().map(|a| (*a).to_owned()));
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = d.run("rename-dir", &argv);
        d.expect_errno(&out, "EPERM");
        let ev = d.expect_one_event(what, &denied_write("rename-dir", "rename", path, &out));
        assert_field(&ev, "/reason", &json!("deny_rule"));
    };

    // The denied directory itself, moved to a name no deny rule covers.
    let secret = s.join("ws/secret");
    let other = s.join("ws/other");
    refused(
        "the refused move of a denied directory",
        &["rename", &secret, &other],
        &secret,
    );
    // An ancestor of a denied file.
    let a = s.join("ws/a");
    let z = s.join("ws/z");
    refused(
        "the refused move of a directory above a denied file",
        &["rename", &a, &z],
        &a,
    );
    // RENAME_EXCHANGE, either way round: the denied tree would take the allowed name.
    refused(
        "the refused exchange naming the denied directory second",
        &["exchange", &swap, &secret],
        &secret,
    );
    refused(
        "the refused exchange naming the denied directory first",
        &["exchange", &secret, &swap],
        &secret,
    );
    // A directory cannot take a name a deny rule lies beneath (here not created yet).
    let later = s.join("ws/later");
    refused(
        "the refused move onto a name a deny rule lies beneath",
        &["rename", &swap, &later],
        &later,
    );
    assert!(
        Path::new(&key).exists() && Path::new(&deep_key).exists() && !Path::new(&other).exists(),
        "expected the denied paths to stay where they were"
    );
    let out = d.run("rename-dir", &[&probe(), "open", &key, "r"]);
    d.expect_errno(&out, "EPERM");

    // A directory with nothing denied beneath it moves freely.
    let moved = s.join("ws/free-moved");
    d.expect_ok(&d.run(
        "rename-dir",
        &[&probe(), "rename", &s.join("ws/free"), &moved],
    ));
    assert!(
        Path::new(&format!("{moved}/notes")).exists() && !Path::new(&free).exists(),
        "expected the allowed directory rename to move {free}"
    );
    // Untagged processes are untouched.
    d.expect_ok(&process::probe(&["rename", &secret, &other]));
}

#[test]
fn changing_files_without_opening_them_needs_files_write() {
    use std::os::unix::fs::{MetadataExt as _, PermissionsExt as _};
    let s = Scratch::new("changes");
    let ro_file = s.file("ro/file", "read only");
    let env_file = s.file("ws/.env", "TOKEN=x");
    let notes = s.file("ws/notes", "notes");
    let pol = Policy::probe_only("changes")
        .read(&s.dir_entry("ro"))
        .read(&s.dir_entry("ws"))
        .write(&s.dir_entry("ws"))
        .deny(&env_file);
    let d = Daemon::with(&[&pol]);
    let mode_of = |p: &str| {
        std::fs::metadata(p)
            .unwrap_or_else(|e| panic!("expected {p} to exist: {e}"))
            .permissions()
            .mode()
            & 0o7777
    };
    let (ro_mode, env_mode) = (mode_of(&ro_file), mode_of(&env_file));

    // Changing a file it may only read, or a denied one, without opening it: refused, unchanged.
    for (file, reason) in [(&ro_file, "not_allowed"), (&env_file, "deny_rule")] {
        for change in [
            vec!["truncate", file.as_str()],
            vec!["chmod", file.as_str(), "4777"],
            vec!["chown", file.as_str(), "65534", "65534"],
        ] {
            let mut argv = vec![probe()];
            argv.extend(change.iter().map(|w| (*w).to_owned()));
            let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
            let out = d.run("changes", &argv);
            d.expect_errno(&out, "EPERM");
            let ev = d.expect_one_event(
                &format!("the refused {} of {file}", change[0]),
                &denied_write("changes", "setattr", file, &out),
            );
            assert_field(&ev, "/reason", &json!(reason));
        }
    }
    assert_eq!(
        std::fs::read_to_string(&ro_file).ok().as_deref(),
        Some("read only"),
        "expected {ro_file} to keep its content"
    );
    assert_eq!(
        std::fs::read_to_string(&env_file).ok().as_deref(),
        Some("TOKEN=x"),
        "expected {env_file} to keep its content"
    );
    assert_eq!(
        (mode_of(&ro_file), mode_of(&env_file)),
        (ro_mode, env_mode),
        "expected both modes unchanged"
    );
    let owner = std::fs::metadata(&ro_file).map(|m| m.uid()).ok();
    assert_eq!(owner, Some(0), "expected {ro_file} to stay root's");
    // Where it may write, it may.
    d.expect_ok(&d.run("changes", &[&probe(), "truncate", &notes]));
    d.expect_ok(&d.run("changes", &[&probe(), "chmod", &notes, "600"]));
    assert_eq!(
        (
            std::fs::metadata(&notes).map(|m| m.len()).ok(),
            mode_of(&notes)
        ),
        (Some(0), 0o600),
        "expected ws/notes truncated and chmod-ed"
    );
    // Untagged processes are never judged.
    d.expect_ok(&process::probe(&["chmod", &ro_file, "640"]));
    assert_eq!(
        mode_of(&ro_file),
        0o640,
        "expected the untagged chmod to apply"
    );
}

#[test]
fn creating_entries_needs_files_write_and_device_nodes_are_refused() {
    use std::os::unix::fs::FileTypeExt as _;
    let s = Scratch::new("create");
    let _ = s.file("ro/file", "read only");
    let notes = s.file("ws/notes", "notes");
    let pol = Policy::probe_only("create")
        .read(&s.dir_entry("ro"))
        .read(&s.dir_entry("ws"))
        .write(&s.dir_entry("ws"));
    let d = Daemon::with(&[&pol]);
    // Creating entries where it may only read: refused, and nothing is left behind (the create
    // step of open(O_CREAT) is judged before the file exists).
    for create in [
        vec!["mkdir".to_owned(), s.join("ro/dir")],
        vec!["symlink".to_owned(), notes.clone(), s.join("ro/link")],
        vec!["mknod".to_owned(), s.join("ro/fifo"), "fifo".to_owned()],
        vec!["open".to_owned(), s.join("ro/new"), "w".to_owned()],
    ] {
        let created = create[if create[0] == "symlink" { 2 } else { 1 }].clone();
        let mut argv = vec![probe()];
        argv.extend(create.iter().cloned());
        let argv: Vec<&str> = argv.iter().map(String::as_str).collect();
        let out = d.run("create", &argv);
        d.expect_errno(&out, "EPERM");
        let _ = d.expect_one_event(
            &format!("the refused {} in a read-only directory", create[0]),
            &denied_write("create", "create", &created, &out),
        );
        assert!(
            std::fs::symlink_metadata(&created).is_err(),
            "expected {created} not to be created"
        );
    }

    // A device node is refused even where the task may write: its path says nothing of what
    // opening it reaches.
    for kind in ["char", "block"] {
        let node = s.join(&format!("ws/{kind}"));
        let out = d.run("create", &[&probe(), "mknod", &node, kind]);
        d.expect_errno(&out, "EPERM");
        let _ = d.expect_one_event(
            &format!("the refused {kind} device node"),
            &with(
                forbidden("create", "create"),
                "/process/pid",
                json!(out.pid),
            ),
        );
        assert!(
            std::fs::symlink_metadata(&node).is_err(),
            "expected no device node at {node}"
        );
    }

    // Where it may write, all of it works.
    let (dir, link, fifo, new) = (
        s.join("ws/dir"),
        s.join("ws/link"),
        s.join("ws/fifo"),
        s.join("ws/new"),
    );
    d.expect_ok(&d.run("create", &[&probe(), "mkdir", &dir]));
    d.expect_ok(&d.run("create", &[&probe(), "symlink", &notes, &link]));
    d.expect_ok(&d.run("create", &[&probe(), "mknod", &fifo, "fifo"]));
    d.expect_ok(&d.run("create", &[&probe(), "open", &new, "w"]));
    assert!(
        Path::new(&dir).is_dir()
            && std::fs::symlink_metadata(&link).is_ok_and(|m| m.file_type().is_symlink())
            && std::fs::symlink_metadata(&fifo).is_ok_and(|m| m.file_type().is_fifo())
            && Path::new(&new).is_file(),
        "expected the directory, symlink, FIFO and file created in ws/"
    );
}

#[test]
fn rename_with_a_path_longer_than_4096_is_refused() {
    let s = Scratch::new("rename-long");
    let top = s.mkdir("ws");
    let pol = Policy::probe_only("rename-long")
        .read(&format!("{top}/"))
        .write(&format!("{top}/"));
    let d = Daemon::with(&[&pol]);

    for len in [4300, 9000] {
        let names = deep::components_for(&top, len);
        let (file, dirs) = names
            .split_last()
            .unwrap_or_else(|| unreachable!("one component at least"));
        deep::mkdirs(&top, dirs);
        deep::write_file(&top, dirs, file, "deep");
        let dir = deep::join(&top, dirs);
        let out = d.run(
            "rename-long",
            &[&probe(), "-C", &dir, "rename", file, "moved"],
        );
        d.expect_errno(&out, "EPERM");
        let ev = d.expect_one_event(
            &format!("the refused rename of a {len}-byte path"),
            &[
                ("/decision", json!("denied")),
                ("/op", json!("rename")),
                ("/task", json!("rename-long")),
                ("/process/pid", json!(out.pid)),
            ],
        );
        assert_field(&ev, "/reason", &json!("path_unresolved"));
        assert_field(&ev, "/target/error", &json!("ENAMETOOLONG"));
        // Untagged, the same rename works: only the length made it fail.
        d.expect_ok(&process::probe(&["-C", &dir, "rename", file, "moved"]));
    }
}

// ---------------------------------------------------------------------------------------------
// side doors to the same judged operations

#[test]
fn openat2_file_handles_and_io_uring_open_are_judged() {
    let s = Scratch::new("side-open");
    let allowed = s.file("allowed/file", "ok");
    let secret = s.file("secret", "s3cret");
    let pol = Policy::probe_only("side-open").read(&s.dir_entry("allowed"));
    let d = Daemon::with(&[&pol]);

    // `ia32-open`: the 32-bit system call ABI (`int $0x80`, other call numbers) reaches the
    // same hook.
    for op in ["openat2", "handle-open", "uring-open", "ia32-open"] {
        let out = d.run("side-open", &[&probe(), op, &secret]);
        d.expect_errno(&out, "EPERM");
        let _ = d.expect_one_event(
            &format!("the refused {op} of {secret}"),
            &with(
                denied_open("side-open", &secret, "read"),
                "/process/tgid",
                json!(out.pid),
            ),
        );
        d.expect_ok(&d.run("side-open", &[&probe(), op, &allowed]));
        // Untagged, the same call reaches the file: the probe's route really works.
        d.expect_ok(&process::probe(&[op, &secret]));
    }
}

#[test]
fn io_uring_connect_is_judged() {
    let pol = Policy::probe_only("uring-net").connect("127.0.0.1/32", &["1"]);
    let d = Daemon::with(&[&pol]);
    let listener = Background::probe(&["listen", "tcp", "127.0.0.1", "0"]);
    let port = listener.port();
    let out = d.run(
        "uring-net",
        &[&probe(), "uring-connect", "127.0.0.1", &port.to_string()],
    );
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused IORING_OP_CONNECT",
        &with(
            denied_connect("uring-net", "127.0.0.1", port, "ipv4", "tcp"),
            "/backend",
            json!(doctor::CGROUP_SOCK_ADDR),
        ),
    );
    // Untagged, the same ring connects.
    d.expect_ok(&process::probe(&[
        "uring-connect",
        "127.0.0.1",
        &port.to_string(),
    ]));
    drop(listener);
}

#[test]
fn netlink_and_namespaced_mounts_and_perf_on_others_are_forbidden() {
    let s = Scratch::new("no-netlink");
    let mnt = s.mkdir("mnt");
    let pol = Policy::probe_only("no-netlink");
    let d = Daemon::with(&[&pol]);

    d.expect_ok(&process::probe(&["tamper", "netlink"]));
    let out = d.run("no-netlink", &[&probe(), "tamper", "netlink"]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused netlink socket",
        &forbidden("no-netlink", "socket"),
    );
    assert_field(&ev, "/target/family", &json!(libc::AF_NETLINK));

    // A new mount namespace is allowed, but mounting in it is still refused.
    let out = d.run("no-netlink", &[&probe(), "tamper", "unshare-mount", &mnt]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused mount in a new namespace",
        &forbidden("no-netlink", "mount"),
    );

    // perf_event_open on another process: a root caller skips perf's ptrace check, so the
    // LSM refuses perf_event_open itself.
    let victim = Background::probe(&["listen", "tcp", "127.0.0.1", "0"]);
    let pid = victim.pid().to_string();
    d.expect_ok(&process::probe(&["tamper", "perf", &pid]));
    let out = d.run("no-netlink", &[&probe(), "tamper", "perf", &pid]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused perf_event_open on another process",
        &with(
            forbidden("no-netlink", "perf"),
            "/process/pid",
            json!(out.pid),
        ),
    );
    drop(victim);
}

/// After a `chroot`, `bpf_d_path` renders a path from the new root: `JAIL/data/secret` would be
/// judged as `/data/secret`, which the task may read. So a tagged process may not `chroot`.
#[test]
fn chroot_is_forbidden_because_paths_would_render_from_the_new_root() {
    let s = Scratch::new("no-chroot");
    let jail = s.mkdir("jail");
    let secret = s.file("jail/data/secret", "not for the task");
    let pol = Policy::probe_only("no-chroot").read("/data/");
    let d = Daemon::with(&[&pol]);

    // Untagged (root), the same chroot and open work: the refusal below is the LSM's.
    d.expect_ok(&process::probe(&[
        "tamper",
        "chroot-open",
        &jail,
        "/data/secret",
    ]));
    // By its own path the secret is not readable by the task.
    let out = d.run("no-chroot", &[&probe(), "open", &secret, "r"]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused read of the secret",
        &denied_open("no-chroot", &secret, "read"),
    );

    let out = d.run(
        "no-chroot",
        &[&probe(), "tamper", "chroot-open", &jail, "/data/secret"],
    );
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event("the refused chroot", &forbidden("no-chroot", "mount"));
}

/// `PTRACE_MODE_READ | PTRACE_MODE_REALCREDS`: the access `setns` with a pidfd checks.
const PTRACE_MODE_READ_REALCREDS: u32 = 0x11;
/// `PTRACE_MODE_READ | PTRACE_MODE_FSCREDS`: the access opening `/proc/PID/ns/*` checks.
const PTRACE_MODE_READ_FSCREDS: u32 = 0x09;

/// Whether the running kernel is at least `major.minor` (`/proc/sys/kernel/osrelease`).
fn kernel_at_least(major: u32, minor: u32) -> bool {
    let release = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_else(|e| panic!("expected to read /proc/sys/kernel/osrelease: {e}"));
    let mut parts = release
        .trim()
        .split(['.', '-'])
        .map(|p| p.parse::<u32>().ok());
    match (parts.next().flatten(), parts.next().flatten()) {
        (Some(ma), Some(mi)) => (ma, mi) >= (major, minor),
        _ => panic!("expected a kernel release MAJOR.MINOR..., got {release:?}"),
    }
}

#[test]
fn setns_into_another_process_namespaces_is_refused() {
    let pol = Policy::probe_only("no-setns");
    let d = Daemon::with(&[&pol]);
    let victim = Background::probe(&["listen", "tcp", "127.0.0.1", "0"]);
    let pid = victim.pid().to_string();
    let ns_file = format!("/proc/{pid}/ns/net");
    // Untagged, both ways work (into the same namespace, so nothing changes).
    d.expect_ok(&process::probe(&["tamper", "setns-pidfd", &pid]));
    d.expect_ok(&process::probe(&["tamper", "setns-file", &ns_file]));

    // With a pidfd, setns first checks ptrace access to the target: the ptrace hook refuses it,
    // and names the op setns. Where a pidfd is a pidfs file (6.9 and later), pidfd_open is
    // already an open of a path no rule can name ("anon_inode:[pidfd]"), refused before setns is
    // reached.
    let out = d.run("no-setns", &[&probe(), "tamper", "setns-pidfd", &pid]);
    d.expect_errno(&out, "EPERM");
    let by_setns = with(
        with(
            forbidden("no-setns", "setns"),
            "/process/pid",
            json!(out.pid),
        ),
        "/target/pid",
        json!(victim.pid()),
    );
    let by_open = with(
        with(denied("no-setns", "open"), "/process/pid", json!(out.pid)),
        "/target/path",
        json!("anon_inode:[pidfd]"),
    );
    let evs = d.wait_events(|e| has(e, &by_setns) || has(e, &by_open), EVENT_TIMEOUT);
    assert_eq!(
        evs.len(),
        1,
        "expected one refusal of the setns through a pidfd, got:\n{}",
        events::tail(&evs, 5)
    );
    if has(&evs[0], &by_setns) {
        assert_field(&evs[0], "/target/mode", &json!(PTRACE_MODE_READ_REALCREDS));
    } else {
        assert!(
            kernel_at_least(6, 9),
            "expected the setns refusal (op setns) where a pidfd is not a pidfs file (before \
             6.9), got {}",
            evs[0]
        );
    }

    // Opening another process's /proc/PID/ns/* checks ptrace access too (the kernel turns the
    // refusal into EACCES).
    let out = d.run("no-setns", &[&probe(), "tamper", "setns-file", &ns_file]);
    d.expect_errno(&out, "EACCES");
    let ev = d.expect_one_event(
        "the refused open of another process's namespace file",
        &with(
            forbidden("no-setns", "ptrace"),
            "/process/pid",
            json!(out.pid),
        ),
    );
    assert_field(&ev, "/target/pid", &json!(victim.pid()));
    assert_field(&ev, "/target/mode", &json!(PTRACE_MODE_READ_FSCREDS));

    // Its own namespace files open an nsfs file, whose path ("net:[...]") no rule can name.
    let out = d.run(
        "no-setns",
        &[&probe(), "tamper", "setns-file", "/proc/self/ns/net"],
    );
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused open of its own namespace file",
        &with(denied("no-setns", "open"), "/process/pid", json!(out.pid)),
    );
    let path = ev.pointer("/target/path").and_then(Value::as_str);
    assert!(
        path.is_some_and(|p| p.starts_with("net:[")),
        "expected the nsfs name net:[...] as the target, got {ev}"
    );
    drop(victim);
}

#[test]
fn userfaultfd_is_forbidden_to_tagged_processes() {
    let dev = "/dev/userfaultfd";
    // The device must open for the ioctl to be what is judged.
    let pol = Policy::probe_only("no-uffd").read(dev).write(dev);
    let d = Daemon::with(&[&pol]);
    let mut kinds = vec!["userfaultfd"];
    if Path::new(dev).exists() {
        kinds.push("userfaultfd-dev");
    }
    for kind in kinds {
        d.expect_ok(&process::probe(&["tamper", kind]));
        let out = d.run("no-uffd", &[&probe(), "tamper", kind]);
        d.expect_errno(&out, "EPERM");
        let ev = d.expect_one_event(
            &format!("the refused {kind}"),
            &with(
                forbidden("no-uffd", "userfaultfd"),
                "/process/pid",
                json!(out.pid),
            ),
        );
        assert_field(&ev, "/target/anon", &json!("[userfaultfd]"));
    }
}

#[test]
fn privileges_re_allow_only_what_the_policy_names() {
    let pol = Policy::probe_only("privileged")
        .privilege("netlink")
        .privilege("userfaultfd");
    let d = Daemon::with(&[&pol]);
    // Granted: the guards let them through, and nothing is reported.
    d.expect_ok(&d.run("privileged", &[&probe(), "tamper", "netlink"]));
    d.expect_ok(&d.run("privileged", &[&probe(), "tamper", "userfaultfd"]));
    // Not granted: still refused.
    let out = d.run("privileged", &[&probe(), "tamper", "raw"]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused raw socket of a task granted only netlink and userfaultfd",
        &with(
            forbidden("privileged", "socket"),
            "/process/pid",
            json!(out.pid),
        ),
    );
    assert_field(&ev, "/target/family", &json!(libc::AF_INET));
    let out = d.run("privileged", &[&probe(), "tamper", "bpf"]);
    d.expect_errno(&out, "EPERM");
    d.expect_no_event(
        "the granted netlink socket and userfaultfd",
        &forbidden("privileged", "userfaultfd"),
    );
    let evs = d.events();
    assert!(
        !evs.iter()
            .any(|e| has(e, &forbidden("privileged", "socket"))
                && e.pointer("/target/family") == Some(&json!(libc::AF_NETLINK))),
        "expected no refusal of the granted netlink socket:\n{}",
        events::tail(&evs, 8)
    );
}

// ---------------------------------------------------------------------------------------------
// identity: the tag follows every way of creating a process, and only those

#[test]
fn vfork_and_daemonized_grandchildren_keep_the_tag() {
    let s = Scratch::new("keep-tag");
    let secret = s.file("secret", "s3cret");
    let pol = Policy::probe_only("keep-tag");
    let d = Daemon::with(&[&pol]);

    let out = d.run(
        "keep-tag",
        &[&probe(), "vfork", &probe(), "open", &secret, "r"],
    );
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the vforked child's refused open",
        &denied_open("keep-tag", &secret, "read"),
    );
    assert_ne!(
        event_pid(&ev),
        u64::from(out.pid),
        "expected the refusal to come from the vforked child, not the parent: {ev}"
    );

    let vforked = event_pid(&ev);
    let out = d.run(
        "keep-tag",
        &[&probe(), "daemonize", &probe(), "open", &secret, "r"],
    );
    d.expect_ok(&out);
    // The daemonized grandchild (new session, its parent gone) is refused too.
    let evs = d.wait_events(
        |e| has(e, &denied_open("keep-tag", &secret, "read")) && event_pid(e) != vforked,
        EVENT_TIMEOUT,
    );
    assert_ne!(
        event_pid(&evs[0]),
        u64::from(out.pid),
        "expected the refusal from the grandchild, not the probe itself: {:?}",
        evs[0]
    );
}

#[test]
fn clone3_into_an_untagged_cgroup_keeps_the_tag() {
    let cg = TestCgroup::new("vm-clone3");
    let s = Scratch::new("clone3-cgroup");
    let secret = s.file("secret", "s3cret");
    // The probe opens the cgroup directory for clone3.
    let pol = Policy::probe_only("clone3-cgroup").read(&format!("{}/", cg.dir()));
    let d = Daemon::with(&[&pol]);
    let argv = |p: &str| {
        vec![
            p.to_owned(),
            "clone-into-cgroup".to_owned(),
            cg.dir(),
            probe(),
            "open".to_owned(),
            secret.clone(),
            "r".to_owned(),
        ]
    };
    // Untagged, the child starts in the cgroup and reads the file.
    let untagged = argv("x");
    let untagged: Vec<&str> = untagged[1..].iter().map(String::as_str).collect();
    d.expect_ok(&process::probe(&untagged));

    let tagged = argv(&probe());
    let tagged: Vec<&str> = tagged.iter().map(String::as_str).collect();
    let out = d.run("clone3-cgroup", &tagged);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused open of a child cloned into an untagged cgroup",
        &denied_open("clone3-cgroup", &secret, "read"),
    );
    assert_ne!(
        event_pid(&ev),
        u64::from(out.pid),
        "expected the refusal from the cloned child, not the probe itself: {ev}"
    );
}

#[test]
fn a_reused_pid_does_not_inherit_a_dead_tag() {
    let s = Scratch::new("pid-reuse");
    let secret = s.file("secret", "s3cret");
    let pol = Policy::probe_only("pid-reuse");
    let d = Daemon::with(&[&pol]);

    let out = d.run("pid-reuse", &[&probe(), "open", &secret, "r"]);
    d.expect_errno(&out, "EPERM");
    let dead = out.pid;
    // Make the kernel hand the dead process's pid to the next untagged process.
    for _ in 0..20 {
        std::fs::write("/proc/sys/kernel/ns_last_pid", (dead - 1).to_string())
            .unwrap_or_else(|e| panic!("expected to set ns_last_pid as root: {e}"));
        let reused = process::probe(&["open", &secret, "r"]);
        if reused.pid == dead {
            d.expect_ok(&reused);
            return;
        }
    }
    panic!("expected to get pid {dead} again within 20 tries");
}

// ---------------------------------------------------------------------------------------------
// edge names: events stay valid JSON

#[test]
fn names_with_newlines_and_invalid_utf8_give_valid_events() {
    use std::os::unix::ffi::OsStrExt;
    let s = Scratch::new("edge-names");
    let newline = s.file("dir/line\nbreak \"quoted\"", "x");
    let raw = s
        .path()
        .join(std::ffi::OsStr::from_bytes(b"dir/bad-\xff\xfe-name"));
    std::fs::write(&raw, "x").unwrap_or_else(|e| panic!("expected to create {raw:?}: {e}"));
    // The probe's arguments are text: reach the invalid name through a symlink, which the
    // kernel resolves to the raw bytes.
    let link = s.join("link");
    std::os::unix::fs::symlink(&raw, &link)
        .unwrap_or_else(|e| panic!("expected to link {link} to {raw:?}: {e}"));
    let pol = Policy::probe_only("edge-names");
    let d = Daemon::with(&[&pol]);

    let out = d.run("edge-names", &[&probe(), "open", &newline, "r"]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused open of a name with a newline and quotes",
        &denied_open("edge-names", &newline, "read"),
    );
    let out = d.run("edge-names", &[&probe(), "open", &link, "r"]);
    d.expect_errno(&out, "EPERM");
    let replaced = raw.to_string_lossy().into_owned();
    assert!(
        replaced.contains('\u{fffd}'),
        "expected the lossy name to hold U+FFFD"
    );
    let _ = d.expect_one_event(
        "the refused open of an invalid UTF-8 name, with U+FFFD in place of the bad bytes",
        &denied_open("edge-names", &replaced, "read"),
    );
}

// ---------------------------------------------------------------------------------------------
// egress by DNS name, judged by the BPF LSM hook

#[test]
fn dns_host_rule_allows_the_resolved_address_and_refuses_others() {
    use corral_tests::dns::{
        DnsServer, HOST, TASK, daemon, expect_connect_allowed, expect_connect_refused, policy,
        wait_dns_event,
    };
    let server = DnsServer::start();
    server.set(HOST, &["127.0.0.2", "::1"], 300);
    let scratch = Scratch::new("dns-vm");
    let d = daemon(&server, &scratch, &[&policy()]);
    let _ = wait_dns_event(&d, "dns_resolved", "added", "127.0.0.2");
    let _ = wait_dns_event(&d, "dns_resolved", "added", "::1");
    expect_connect_allowed(&d, "127.0.0.2", "A record of the host rule");
    expect_connect_allowed(&d, "::1", "AAAA record of the host rule");
    expect_connect_refused(&d, "127.0.0.3", "not an address of the name");
    let ev = d.expect_one_event(
        "the refused connect to 127.0.0.3",
        &denied_connect(TASK, "127.0.0.3", 9, "ipv4", "tcp"),
    );
    assert_field(&ev, "/backend", &json!(doctor::CGROUP_SOCK_ADDR));
}

#[test]
fn dns_wildcard_learns_from_the_task_dns_under_the_lsm() {
    use corral_tests::dns::{daemon, expect_connect_allowed, expect_connect_refused};
    use corral_tests::dns_learning;
    let server = dns_learning::server();
    server.set("a.example.test", &["127.0.0.2"], 300);
    server.set("other.test", &["127.0.0.4"], 300);
    let scratch = Scratch::new("dns-wildcard-vm");
    let d = daemon(&server, &scratch, &[&dns_learning::policy()]);
    expect_connect_refused(&d, "127.0.0.2", "no answer seen yet");
    dns_learning::expect_answer(&d, "connected", "a.example.test", "127.0.0.2");
    expect_connect_allowed(&d, "127.0.0.2", "answered for a.example.test");
    dns_learning::expect_answer(&d, "sendto", "other.test", "127.0.0.4");
    expect_connect_refused(
        &d,
        "127.0.0.4",
        "answered for a name the wildcard does not match",
    );
    let out = dns_learning::query(&d, "sendto", "127.0.0.154:53", "a.example.test");
    eprintln!("expecting EPERM: DNS to a server the policy does not allow");
    d.expect_errno(&out, "EPERM");
}

/// The VM's init loads the `sock_diag` modules the DNS proxy needs (xtask packs them), so
/// `corral doctor` finds the look-up working; with `udp_diag` unloaded it reports `sock_diag`
/// missing, names the module and says how to load it.
#[test]
fn doctor_reports_the_sock_diag_modules_the_dns_proxy_needs() {
    let (_, doc) = doctor::json();
    let loaded = doctor::finding(&doc, "sock_diag");
    assert_eq!(
        loaded["available"],
        json!(true),
        "expected the VM image's modules to make the look-up work, got {loaded}"
    );
    let modprobe_disabled = std::fs::write("/proc/sys/kernel/modprobe", "\n").is_ok();
    let unload = std::process::Command::new("rmmod")
        .arg("udp_diag")
        .status()
        .unwrap_or_else(|e| panic!("expected to run rmmod udp_diag: {e}"));
    let (_, doc) = doctor::json();
    let missing = doctor::finding(&doc, "sock_diag").clone();
    let module = format!(
        "/lib/modules/{}/udp_diag.ko",
        std::fs::read_to_string("/proc/sys/kernel/osrelease")
            .unwrap_or_default()
            .trim()
    );
    let reload = std::process::Command::new("insmod").arg(&module).status();
    if modprobe_disabled {
        let _ = std::fs::write("/proc/sys/kernel/modprobe", "/sbin/modprobe\n");
    }
    assert!(unload.success(), "expected rmmod udp_diag to work");
    assert!(
        reload.is_ok_and(|s| s.success()),
        "expected insmod {module} to load udp_diag again"
    );
    assert_eq!(
        missing["available"],
        json!(false),
        "expected sock_diag reported missing without udp_diag, got {missing}"
    );
    let detail = missing["detail"].as_str().unwrap_or_default();
    let fix = missing["fix"].as_str().unwrap_or_default();
    assert!(
        detail.contains("udp_diag") && detail.contains("wildcard") && fix.contains("udp_diag"),
        "expected the finding to name udp_diag, what it costs and the fix, got {missing}"
    );
}

/// The refusals the selftest's newer classes leave in the daemon's log, with the fields each
/// must have, under the fixture directory `dir`.
fn selftest_refusals(dir: &str) -> Vec<(&'static str, Vec<(&'static str, Value)>)> {
    vec![
        (
            "the SCTP socket",
            vec![
                ("/op", json!("socket")),
                ("/reason", json!("forbidden")),
                ("/target/family", json!(libc::AF_INET)),
                ("/target/protocol", json!(libc::IPPROTO_SCTP)),
            ],
        ),
        (
            "the vsock socket",
            vec![
                ("/op", json!("socket")),
                ("/target/family", json!(libc::AF_VSOCK)),
            ],
        ),
        (
            "the ping socket",
            vec![
                ("/op", json!("socket")),
                ("/target/family", json!(libc::AF_INET)),
                ("/target/protocol", json!(libc::IPPROTO_ICMP)),
            ],
        ),
        (
            "the unconnected unix datagram",
            vec![
                ("/op", json!("sendmsg")),
                ("/target/family", json!("unix")),
                ("/target/proto", json!("dgram")),
                ("/target/path", json!(format!("{dir}/allowed/dgram"))),
            ],
        ),
        (
            "the truncate, chmod and chown of the read-only file",
            vec![
                ("/op", json!("setattr")),
                ("/target/path", json!(format!("{dir}/readonly/file"))),
            ],
        ),
        (
            "the mkdir in the read-only directory",
            vec![
                ("/op", json!("create")),
                ("/target/path", json!(format!("{dir}/readonly/dir"))),
            ],
        ),
        (
            "the symlink in the read-only directory",
            vec![
                ("/op", json!("create")),
                ("/target/path", json!(format!("{dir}/readonly/link"))),
            ],
        ),
        (
            "the FIFO in the read-only directory",
            vec![
                ("/op", json!("create")),
                ("/target/path", json!(format!("{dir}/readonly/fifo"))),
            ],
        ),
        (
            "the device node",
            vec![("/op", json!("create")), ("/reason", json!("forbidden"))],
        ),
        (
            "the opens on detached mount trees",
            vec![
                ("/op", json!("open")),
                ("/reason", json!("path_unresolved")),
                ("/target/error", json!("EXDEV")),
            ],
        ),
    ]
}

/// `corral doctor --selftest` under BPF LSM: every probe of every bypass class is refused and
/// reported (exit 0), none is left unjudged; a weakened probe is reported OPEN (exit 1).
#[test]
fn doctor_selftest_closes_every_class_under_bpf_lsm() {
    let d = Daemon::with(&[]);
    let (out, results) = corral_tests::selftest::json(&d, &[]);
    let not_closed: Vec<String> = results
        .iter()
        .filter(|(_, (_, r))| r != "closed")
        .map(|(p, (b, r))| format!("{p}: {r} (backend {b})"))
        .collect();
    assert!(
        out.code == Some(0) && not_closed.is_empty(),
        "expected every probe closed and exit 0, not closed: {not_closed:?}\n{}",
        out.describe()
    );
    for p in [
        "hardlink",
        "memfd",
        "ld.so",
        "mmap-exec",
        "raw-socket",
        "bpf",
        "ptrace",
        "mount",
        "chroot",
        // The classes the kernel programs gained last: sockets no hook judges, unconnected
        // unix datagrams, writes without an open, detached mount trees.
        "sctp-socket",
        "vsock-socket",
        "ping-socket",
        "unix-dgram",
        "truncate",
        "chmod",
        "chown",
        "mkdir",
        "new-symlink",
        "mkfifo",
        "device-node",
        "tree-clone",
        "tree-clone-up",
        // The 32-bit system call ABI: other call numbers, the same hooks.
        "ia32-open",
        "ia32-raw-socket",
    ] {
        assert!(
            results
                .get(p)
                .is_some_and(|(b, r)| *b == json!("lsm") && r == "closed"),
            "expected probe {p} closed by the lsm backend\n{}",
            out.describe()
        );
    }
    // Each refusal of the new classes is in the daemon's log with its op and what it names.
    let log = d.events();
    for (what, fields) in selftest_refusals("/run/corral-selftest") {
        let mut fields = fields;
        fields.extend([
            ("/task", json!(corral_tests::selftest::TASK)),
            ("/decision", json!("denied")),
            ("/backend", json!("lsm")),
        ]);
        assert!(
            log.iter().any(|e| events::has(e, &fields)),
            "expected a refusal of {what} matching {fields:?}\n{}",
            events::tail(&log, 20)
        );
    }
    let setattrs = log
        .iter()
        .filter(|e| {
            e["task"] == corral_tests::selftest::TASK
                && e["op"] == "setattr"
                && e["decision"] == "denied"
        })
        .count();
    assert!(
        setattrs >= 3,
        "expected the truncate, chmod and chown refused, got {setattrs} setattr events"
    );

    let (weak, results) = corral_tests::selftest::json(
        &d,
        &[
            "--selftest-weaken",
            "hardlink",
            "--selftest-weaken",
            "device-node",
            "--selftest-weaken",
            "tree-clone",
        ],
    );
    let wrong =
        corral_tests::selftest::not(&results, "open", &["hardlink", "device-node", "tree-clone"]);
    assert!(
        weak.code == Some(1) && wrong.is_empty(),
        "expected the weakened probes OPEN and exit 1, not open: {wrong:?}\n{}",
        weak.describe()
    );
    let wrong = corral_tests::selftest::not(&results, "closed", &["mkdir", "tree-clone-up"]);
    assert!(
        wrong.is_empty(),
        "expected the others still closed: {wrong:?}\n{}",
        weak.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// identity: hard links made by unconfined processes to denied files

/// Fields of a `denied_identity` refusal of `op` on `path`.
fn denied_identity(task: &str, op: &str, path: &str) -> Vec<(&'static str, Value)> {
    let mut f = denied(task, op);
    f.push(("/target/path", json!(path)));
    f.push(("/reason", json!("denied_identity")));
    f
}

#[test]
fn files_on_a_detached_mount_tree_are_refused() {
    let s = Scratch::new("detached");
    let _ = s.file("vault/key", "s3cret");
    let _ = s.file("open/readme", "hello");
    let vault = s.join("vault");
    // A broad policy: read everything but the vault.
    let pol = Policy::probe_only("detached")
        .read("/")
        .deny(&s.dir_entry("vault"));
    let d = Daemon::with(&[&pol]);
    // The denied file, reached through a detached clone of its directory, would be judged as
    // `/key`, which the policy reads: refused instead, whatever the path looks like.
    let out = d.run("detached", &[&probe(), "tree-open", &vault, "key"]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused open on a detached mount",
        &with(denied("detached", "open"), "/process/pid", json!(out.pid)),
    );
    assert_field(&ev, "/reason", &json!("path_unresolved"));
    // So is an allowed one: on a detached tree no path means what it says.
    let out = d.run(
        "detached",
        &[&probe(), "tree-open", &s.join("open"), "readme"],
    );
    d.expect_errno(&out, "EPERM");
    // The same files through the caller's own mounts are judged by their paths.
    d.expect_ok(&d.run("detached", &[&probe(), "open", &s.join("open/readme"), "r"]));
    let out = d.run("detached", &[&probe(), "open", &s.join("vault/key"), "r"]);
    d.expect_errno(&out, "EPERM");
    // Untagged, the detached open works: the refusal is Corral's.
    d.expect_ok(&process::probe(&["tree-open", &vault, "key"]));
}

#[test]
fn hard_link_to_denied_file_in_allowed_dir_is_denied_by_identity() {
    let s = Scratch::new("ident-open");
    let env_file = s.file("ws/.env", "TOKEN=x");
    let key = s.file("ws/secrets/deep/key", "k");
    let main = s.file("ws/main.rs", "fn main() {}");
    // Made by this untagged process before the policy loads...
    let env_link = s.hard_link(&env_file, "ws/env-link");
    let main_link = s.hard_link(&main, "ws/main-link.rs");
    let pol = Policy::probe_only("ident-open")
        .read(&s.dir_entry("ws"))
        .write(&s.dir_entry("ws"))
        .deny(&env_file)
        .deny(&s.dir_entry("ws/secrets"));
    let d = Daemon::with(&[&pol]);
    // ...and after: a file beneath a denied directory, linked elsewhere.
    let key_link = s.hard_link(&key, "ws/key-link");

    for (link, mode, access) in [
        (&env_link, "r", "read"),
        (&env_link, "w", "write"),
        (&key_link, "r", "read"),
    ] {
        let out = d.run("ident-open", &[&probe(), "open", link, mode]);
        d.expect_errno(&out, "EPERM");
        let ev = d.expect_one_event(
            "the open of a hard link to a denied file",
            &with(
                denied_identity("ident-open", "open", link),
                "/target/access",
                json!(access),
            ),
        );
        assert_field(&ev, "/backend", &json!("lsm"));
    }
    // The denied paths themselves keep their own reason.
    d.expect_errno(
        &d.run("ident-open", &[&probe(), "open", &env_file, "r"]),
        "EPERM",
    );
    let _ = d.expect_one_event(
        "the open of the denied path",
        &with(
            denied_open("ident-open", &env_file, "read"),
            "/reason",
            json!("deny_rule"),
        ),
    );
    // A second link is not a reason to deny: a link to an allowed file opens.
    d.expect_ok(&d.run("ident-open", &[&probe(), "open", &main_link, "r"]));
    d.expect_ok(&d.run("ident-open", &[&probe(), "open", &main, "r"]));
}

#[test]
fn exec_of_hard_link_to_denied_binary_is_denied_by_identity() {
    let s = Scratch::new("ident-exec");
    let ok_tool = s.copy_exe(&env::probe_bin(), "bin/ok-tool");
    let blocked = s.copy_exe(&env::probe_bin(), "blocked/tool");
    let ok_link = s.hard_link(&ok_tool, "bin/ok-link");
    let pol = Policy::probe_only("ident-exec")
        .exec(&s.dir_entry("bin"))
        .deny(&s.dir_entry("blocked"));
    let d = Daemon::with(&[&pol]);
    let link = s.hard_link(&blocked, "bin/blocked-link");

    let out = d.run(
        "ident-exec",
        &[&probe(), "exec", &link, "open", &probe(), "r"],
    );
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the exec of a hard link to a denied binary",
        &denied_identity("ident-exec", "exec", &link),
    );
    d.expect_ok(&d.run(
        "ident-exec",
        &[&probe(), "exec", &ok_link, "open", &probe(), "r"],
    ));
}

// ---------------------------------------------------------------------------------------------
// issue 5 bypass classes: `#!` interpreters, setuid binaries, moving between cgroups

/// Writes the executable `#!` script `<scratch>/<rel>` whose interpreter line is
/// `#!INTERP open`: run as `SCRIPT r`, the interpreter (a probe copy) gets
/// `INTERP open SCRIPT r` and read-opens the script.
fn shebang_script(s: &Scratch, rel: &str, interp: &str) -> String {
    use std::os::unix::fs::PermissionsExt;
    let p = s.file(rel, &format!("#!{interp} open\n"));
    std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("expected to make {p} executable: {e}"));
    p
}

/// Panics unless `ev` is a refused exec: `op` "exec", or an "open" with access "exec" (the
/// kernel's exec-open of the file, which may be judged before `bprm_check`).
fn assert_exec_refusal(ev: &Value) {
    let op = events::text(ev, "/op");
    assert!(
        op == "exec" || (op == "open" && events::text(ev, "/target/access") == "exec"),
        "expected the event to be an exec, or an open with access \"exec\", got {ev}"
    );
}

/// Panics unless `out` (a run of `task`) failed with `EPERM` and the daemon reported exactly
/// one refused exec of `refused` (see [`assert_exec_refusal`]) for `out`'s pid.
fn expect_exec_refused(
    d: &Daemon,
    what: &str,
    task: &str,
    out: &process::RunOutput,
    refused: &str,
) {
    d.expect_errno(out, "EPERM");
    let ev = d.expect_one_event(
        what,
        &[
            ("/decision", json!("denied")),
            ("/task", json!(task)),
            ("/target/path", json!(refused)),
        ],
    );
    assert_exec_refusal(&ev);
    assert_field(&ev, "/process/pid", &json!(out.pid));
}

/// Panics unless the exec of `listed` (a script or payload that `exec.allow` lists) was refused
/// for its unlisted interpreter `interp`: `EPERM`, one refused exec naming `interp` with
/// `out`'s pid, and no refusal naming `listed`.
fn expect_interpreter_refused(
    d: &Daemon,
    task: &str,
    out: &process::RunOutput,
    interp: &str,
    listed: &str,
) {
    expect_exec_refused(
        d,
        "the refused exec of an unlisted interpreter",
        task,
        out,
        interp,
    );
    d.expect_no_event(
        "a refusal of the listed file itself",
        &with(denied(task, "exec"), "/target/path", json!(listed)),
    );
}

#[test]
fn shebang_scripts_need_both_script_and_interpreter_in_exec_allow() {
    let s = Scratch::new("shebang");
    let listed_interp = s.copy_exe(&env::probe_bin(), "interp/listed");
    let unlisted_interp = s.copy_exe(&env::probe_bin(), "interp/unlisted");
    let good = shebang_script(&s, "bin/good", &listed_interp);
    let bad_interp = shebang_script(&s, "bin/bad-interp", &unlisted_interp);
    let unlisted_script = shebang_script(&s, "other/script", &listed_interp);
    // Everything is readable, so the kernel's exec-opens pass and bprm_check decides.
    let pol = Policy::probe_only("shebang")
        .exec(&s.dir_entry("bin"))
        .read(&s.dir_entry("bin"))
        .exec(&listed_interp)
        .read(&s.dir_entry("interp"))
        .read(&s.dir_entry("other"));
    let d = Daemon::with(&[&pol]);

    // Both listed: the interpreter runs and reads the script.
    d.expect_ok(&d.run("shebang", &[&probe(), "exec", &good, "r"]));

    // (a) A listed script whose interpreter is not listed.
    let out = d.run("shebang", &[&probe(), "exec", &bad_interp, "r"]);
    expect_interpreter_refused(&d, "shebang", &out, &unlisted_interp, &bad_interp);

    // (b) An unlisted script whose interpreter is listed.
    let out = d.run("shebang", &[&probe(), "exec", &unlisted_script, "r"]);
    expect_exec_refused(
        &d,
        "the refused exec of an unlisted script",
        "shebang",
        &out,
        &unlisted_script,
    );

    // Untagged, both scripts run.
    d.expect_ok(&process::probe(&["exec", &bad_interp, "r"]));
    d.expect_ok(&process::probe(&["exec", &unlisted_script, "r"]));
}

#[test]
fn a_setuid_binary_keeps_the_tag() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("setuid");
    let suid = s.copy_exe(&env::probe_bin(), "bin/suid-probe");
    std::os::unix::fs::chown(&suid, Some(1000), Some(1000))
        .unwrap_or_else(|e| panic!("expected to chown {suid} to 1000: {e}"));
    std::fs::set_permissions(&suid, std::fs::Permissions::from_mode(0o4755))
        .unwrap_or_else(|e| panic!("expected to make {suid} setuid: {e}"));
    let secret = s.file("secret", "s3cret");
    std::fs::set_permissions(&secret, std::fs::Permissions::from_mode(0o644))
        .unwrap_or_else(|e| panic!("expected to chmod {secret}: {e}"));
    let root_only = s.file("root-only", "r00t");
    std::fs::set_permissions(&root_only, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("expected to chmod {root_only}: {e}"));
    let pol = Policy::probe_only("setuid")
        .exec(&s.dir_entry("bin"))
        .read(&s.dir_entry("bin"));
    let d = Daemon::with(&[&pol]);

    // Untagged, the copy really runs as uid 1000: a root-only file is refused by the file's
    // mode, the world-readable secret opens.
    let run_suid = |args: &[&str]| {
        let mut cmd = std::process::Command::new(&suid);
        cmd.args(args);
        process::run(cmd)
    };
    d.expect_errno(&run_suid(&["open", &root_only, "r"]), "EACCES");
    d.expect_ok(&run_suid(&["open", &secret, "r"]));

    // Tagged, the setuid'd process is still the task's: its open is Corral's refusal.
    let out = d.run("setuid", &[&probe(), "exec", &suid, "open", &secret, "r"]);
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the setuid process's refused open",
        &denied_open("setuid", &secret, "read"),
    );
    assert_field(&ev, "/process/pid", &json!(out.pid));
}

#[test]
fn moving_into_an_untagged_cgroup_through_cgroup_procs_keeps_the_tag() {
    let cg = TestCgroup::new("vm-procs");
    let s = Scratch::new("cgroup-procs");
    let secret = s.file("secret", "s3cret");
    let pol = Policy::probe_only("cgroup-procs").write(&cg.procs());
    let d = Daemon::with(&[&pol]);

    // Untagged, the probe moves itself and reads the file.
    d.expect_ok(&process::probe(&[
        "enter-cgroup",
        &cg.procs(),
        &probe(),
        "open",
        &secret,
        "r",
    ]));

    // Tagged: the move succeeds (the probe execs only after writing cgroup.procs), and the
    // moved process's open is refused as the task's.
    let out = d.run(
        "cgroup-procs",
        &[
            &probe(),
            "enter-cgroup",
            &cg.procs(),
            &probe(),
            "open",
            &secret,
            "r",
        ],
    );
    d.expect_errno(&out, "EPERM");
    let ev = d.expect_one_event(
        "the refused open of a process that moved to an untagged cgroup",
        &denied_open("cgroup-procs", &secret, "read"),
    );
    assert_field(&ev, "/process/pid", &json!(out.pid));
    assert!(
        out.stderr.contains("corral-probe: open:"),
        "expected the failing step to be the open after the move, not the move itself\n{}",
        out.describe()
    );
}

/// A `binfmt_misc` handler registered for one test, unregistered on drop.
struct BinfmtHandler {
    entry: String,
}

impl BinfmtHandler {
    /// Mounts `binfmt_misc` on `/proc/sys/fs/binfmt_misc` if needed (the VM loads the module)
    /// and registers `name`: files starting with `magic` run through `interp`.
    fn register(name: &str, magic: &str, interp: &str) -> Self {
        let dir = "/proc/sys/fs/binfmt_misc";
        if !Path::new(dir).join("register").exists() {
            // SAFETY: valid C strings; a plain mount of the binfmt_misc file system.
            let rc = unsafe {
                libc::mount(
                    c"binfmt_misc".as_ptr(),
                    c"/proc/sys/fs/binfmt_misc".as_ptr(),
                    c"binfmt_misc".as_ptr(),
                    0,
                    std::ptr::null(),
                )
            };
            assert!(
                rc == 0,
                "expected to mount binfmt_misc on {dir}: {}",
                std::io::Error::last_os_error()
            );
        }
        let entry = format!("{dir}/{name}");
        if Path::new(&entry).exists() {
            let _ = std::fs::write(&entry, "-1");
        }
        std::fs::write(
            format!("{dir}/register"),
            format!(":{name}:M::{magic}::{interp}:"),
        )
        .unwrap_or_else(|e| panic!("expected to register binfmt_misc handler {name}: {e}"));
        Self { entry }
    }
}

impl Drop for BinfmtHandler {
    fn drop(&mut self) {
        let _ = std::fs::write(&self.entry, "-1");
    }
}

#[test]
fn binfmt_misc_interpreter_needs_exec_allow() {
    use std::os::unix::fs::PermissionsExt;
    let s = Scratch::new("binfmt");
    let interp = s.copy_exe(&env::probe_bin(), "interp/unlisted");
    let payload = s.file("bin/payload", "CORRALBF payload\n");
    std::fs::set_permissions(&payload, std::fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("expected to make {payload} executable: {e}"));
    let _handler = BinfmtHandler::register("corral-test", "CORRALBF", &interp);
    let pol = Policy::probe_only("binfmt")
        .exec(&s.dir_entry("bin"))
        .read(&s.dir_entry("bin"))
        .read(&s.dir_entry("interp"));
    let d = Daemon::with(&[&pol]);

    // Untagged, the handler runs the interpreter: the probe, given `PAYLOAD`, as its command,
    // says it does not know that command (exit 2).
    let out = process::probe(&["exec", &payload]);
    assert!(
        out.code == Some(2) && out.stderr.contains("corral-probe: usage"),
        "expected the binfmt_misc interpreter (a probe) to run and refuse its arguments\n{}",
        out.describe()
    );

    let out = d.run("binfmt", &[&probe(), "exec", &payload]);
    expect_interpreter_refused(&d, "binfmt", &out, &interp, &payload);
}

/// Opens allowed by a remembered decision so far (`corral status`).
fn open_cache_hits(d: &Daemon) -> u64 {
    d.status()
        .pointer("/counters/open_cache_hits")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}

/// Runs `corral-probe reopen-until` tagged as `task`: it keeps `first` (allowed) opened, so its
/// decision stays remembered; the test checks that the kernel did remember it (hits counted),
/// then `change`s what the path depends on, opens the gate, and returns the probe's open of
/// `second`, judged right after a remembered decision.
fn open_after_a_remembered_one(
    d: &Daemon,
    s: &Scratch,
    task: &str,
    (first, second): (&str, &str),
    change: impl FnOnce(),
) -> corral_tests::process::RunOutput {
    let gate = s.join(&format!("gate-{}", std::process::id()));
    let _ = std::fs::remove_file(&gate);
    let before = open_cache_hits(d);
    let bg = d.run_background(task, &[&probe(), "reopen-until", &gate, first, second]);
    assert_eq!(
        bg.first_line(),
        "opened",
        "expected the tagged probe to open {first}"
    );
    let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
    while open_cache_hits(d) < before + 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "expected re-opens of {first} to be allowed by a remembered decision (open_cache_hits above {before})"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    }
    change();
    std::fs::write(&gate, "").unwrap_or_else(|e| panic!("expected to create the gate {gate}: {e}"));
    let out = bg.wait();
    let _ = std::fs::remove_file(&gate);
    out
}

#[test]
fn remembered_open_decisions_allow_reopens_and_are_counted_as_allowed_opens() {
    let s = Scratch::new("cache-hit");
    let file = s.file("ok/f", "allowed");
    let pol = Policy::probe_only("cache-hit").read(&s.join("ok/"));
    let d = Daemon::with(&[&pol]);
    let allowed_before = d.counter("open", "allowed");
    let out = open_after_a_remembered_one(&d, &s, "cache-hit", (&file, &file), || {});
    d.expect_ok(&out);
    assert!(
        d.counter("open", "allowed") >= allowed_before + 3,
        "expected opens allowed by a remembered decision to be counted as allowed opens"
    );
}

#[test]
fn a_rename_ends_remembered_open_decisions_of_the_file_and_of_everything_beneath() {
    let s = Scratch::new("cache-rename");
    let file = s.file("ok/dir/f", "allowed where it was");
    let single = s.file("ok/g", "allowed where it was");
    let _ = s.mkdir("no");
    let pol = Policy::probe_only("cache-rename").read(&s.join("ok/"));
    let d = Daemon::with(&[&pol]);

    // A directory above the file moves: the file's own dentry does not change, its path does.
    let moved = s.join("no/dir/f");
    let out = open_after_a_remembered_one(&d, &s, "cache-rename", (&file, &moved), || {
        std::fs::rename(s.join("ok/dir"), s.join("no/dir"))
            .unwrap_or_else(|e| panic!("expected to move ok/dir to no/dir: {e}"));
    });
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused open of the moved file",
        &denied_open("cache-rename", &moved, "read"),
    );

    // The file itself moves.
    let renamed = s.join("no/g");
    let out = open_after_a_remembered_one(&d, &s, "cache-rename", (&single, &renamed), || {
        std::fs::rename(&single, &renamed)
            .unwrap_or_else(|e| panic!("expected to rename {single} to {renamed}: {e}"));
    });
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused open of the renamed file",
        &denied_open("cache-rename", &renamed, "read"),
    );
}

#[test]
fn a_moved_mount_ends_remembered_open_decisions_beneath_it() {
    let s = Scratch::new("cache-mount");
    let mount = corral_tests::mounts::TmpfsMount::new(&s.mkdir("ok/m"));
    let _ = s.mkdir("no/m");
    let file = s.file("ok/m/f", "allowed where it was");
    let pol = Policy::probe_only("cache-mount").read(&s.join("ok/"));
    let d = Daemon::with(&[&pol]);

    let moved = s.join("no/m/f");
    let out = open_after_a_remembered_one(&d, &s, "cache-mount", (&file, &moved), || {
        mount.move_to(&s.join("no/m"));
    });
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused open of the file on the moved mount",
        &denied_open("cache-mount", &moved, "read"),
    );
}

#[test]
fn a_policy_reload_ends_remembered_open_decisions() {
    let s = Scratch::new("cache-reload");
    let file = s.file("ok/f", "allowed until the reload");
    let pol = Policy::probe_only("cache-reload").read(&s.join("ok/"));
    let narrower = Policy::probe_only("cache-reload").read(&s.join("other/"));
    let d = Daemon::with(&[&pol]);
    let generation = d.status()["policy"]["generation"].as_u64().unwrap_or(0);

    let out = open_after_a_remembered_one(&d, &s, "cache-reload", (&file, &file), || {
        replace_file(&d.policies(), &pol.file_name(), &narrower.yaml());
        let deadline = std::time::Instant::now() + EVENT_TIMEOUT;
        while d.status()["policy"]["generation"].as_u64().unwrap_or(0) <= generation {
            assert!(
                std::time::Instant::now() < deadline,
                "expected the narrower policy to reach the kernel (generation past {generation})"
            );
            std::thread::sleep(std::time::Duration::from_millis(20));
        }
    });
    d.expect_errno(&out, "EPERM");
    // The probe's re-opens after the reload were refused too (each with its event).
    let _ = d.wait_events(
        |ev| has(ev, &denied_open("cache-reload", &file, "read")),
        EVENT_TIMEOUT,
    );
}

/// `open_by_handle_at` decodes a handle on the mount of the descriptor it is given and accepts any
/// dentry of that file system: the handle of a file outside a bind mount's subtree, decoded on
/// that bind mount, is a file no path from the caller's root reaches. `bpf_d_path` names it `/`
/// (the kernel's walk escapes the mount and throws its names away), which a broad read rule
/// allows: refused instead (`path_unresolved`, `ESTALE`), for the open (`file_open`) and for the
/// removal through a directory opened the same way (`path_unlink`'s own walk). The disconnected
/// dentries of a disk file system end the same walk the same way.
#[test]
fn files_opened_by_handle_outside_every_path_are_refused() {
    let s = Scratch::new("escaped");
    let key = s.file("vault/key", "s3cret");
    let _ = s.file("vault/old", "x");
    let readme = s.file("public/readme", "hello");
    let view = s.mkdir("view");
    let _bind = corral_tests::mounts::BindMount::new(&s.join("public"), &view);
    let pol = Policy::probe_only("escaped")
        .read("/")
        .write(&s.dir_entry("view"))
        .deny(&s.dir_entry("vault"));
    let d = Daemon::with(&[&pol]);
    let unresolved = |op: &str, pid: u32| {
        with(
            with(
                with(denied("escaped", op), "/process/pid", json!(pid)),
                "/reason",
                json!("path_unresolved"),
            ),
            "/target/error",
            json!("ESTALE"),
        )
    };

    // Untagged, both routes reach the vault: the probe's routes really work.
    d.expect_ok(&process::probe(&["handle-open-at", &view, &key]));
    let out = d.run("escaped", &[&probe(), "handle-open-at", &view, &key]);
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused open by handle outside the bind mount",
        &unresolved("open", out.pid),
    );
    let out = d.run(
        "escaped",
        &[&probe(), "handle-unlink", &view, &s.join("vault"), "old"],
    );
    d.expect_errno(&out, "EPERM");
    let _ = d.expect_one_event(
        "the refused unlink in a directory opened by handle outside the bind mount",
        &unresolved("unlink", out.pid),
    );
    assert!(
        Path::new(&s.join("vault/old")).exists(),
        "expected vault/old to survive the refused unlink"
    );

    // What the rules allow still works: a handle inside the bind mount's subtree, the real `/`,
    // and the vault's files by path stay denied by their rule.
    d.expect_ok(&d.run(
        "escaped",
        &[&probe(), "handle-open-at", &view, &format!("{view}/readme")],
    ));
    d.expect_ok(&d.run("escaped", &[&probe(), "handle-open", &readme]));
    d.expect_ok(&d.run("escaped", &[&probe(), "open", "/", "r"]));
    let out = d.run("escaped", &[&probe(), "open", &key, "r"]);
    d.expect_errno(&out, "EPERM");
    d.expect_ok(&process::probe(&[
        "handle-unlink",
        &view,
        &s.join("vault"),
        "old",
    ]));
}

/// Every program the daemon loads with BPF LSM (tagging, LSM hooks, cgroup `sock_addr`) costs
/// the verifier a fifth of its limit at most, so no harmless change tips one over it.
#[test]
fn every_program_verifies_far_below_the_verifier_limit() {
    let _d = Daemon::with(&[&Policy::probe_only("verifier-budget")]);
    let programs: Vec<&str> = TAGGING_HOOKS
        .iter()
        .chain(&LSM_HOOKS)
        .chain(&SOCK_ADDR_HOOKS)
        .map(|h| h.program)
        .collect();
    assert_eq!(
        programs.len(),
        39,
        "expected the daemon's plan to hold 39 programs"
    );
    corral_tests::verifier::assert_within_budget(&programs);
}
