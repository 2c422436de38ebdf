//! Tests run natively on the development/CI host (kernel 6.18, root), which refuses BPF LSM
//! programs but runs BTF tracepoints and cgroup `sock_addr` programs: the daemon's fallback
//! backends for real (inet connects and UDP sends refused with `EPERM` by cgroup programs, events
//! naming that backend, `corral run` refusing tasks it cannot fully enforce), `corral doctor`,
//! the policy checker, `corral run` without a daemon, and the probe tool the VM tests rely on.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use agent::loader::{KILL_HOOKS, SOCK_ADDR_HOOKS, TAGGING_HOOKS};
use corral_tests::daemon::SETTLE;
use corral_tests::network::{InetEvent, LOOPBACKS, event_pid, two_listeners};
use corral_tests::reload::replace_file;
use corral_tests::selectors::{TestCgroup, cgroup2_mount, killed, selected_probe};
use corral_tests::{
    Background, Daemon, EVENT_TIMEOUT, EXIT_CONFIG, EXIT_REFUSED, EXIT_UNAVAILABLE, Policy,
    RunOutput, Scratch, Value, deep, doctor, env, events, expect_corral_exit, json, process,
};

fn corral(args: &[&str]) -> RunOutput {
    let mut cmd = Command::new(env::corral_bin());
    cmd.args(args);
    process::run(cmd)
}

fn expect_probe(out: &RunOutput, line: &str, code: i32) {
    assert!(
        out.first_line() == line && out.code == Some(code),
        "expected the probe to print {line:?} and exit {code}\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// the daemon on a kernel that refuses BPF LSM: fallback backends, for real

/// Operations cgroup `sock_addr` programs enforce where BPF LSM is refused.
const SOCK_ADDR_OPS: [&str; 2] = ["connect", "sendmsg"];
/// A UDP port policies allow, and one they do not (a datagram is sent whether anyone listens
/// or not, so nothing listens on either).
const UDP_ALLOWED: u16 = 40_100;
const UDP_OTHER: u16 = 40_101;

fn probe() -> String {
    env::probe()
}

/// The backends of a status or doctor document, checked against what this host can do: inet
/// connects and UDP sends by cgroup `sock_addr` programs, unix connects by nothing (only BPF LSM
/// sees their addresses), exec and open by Landlock or nothing (BPF LSM is refused here).
fn expect_fallback_backends(doc: &Value, source: &str) -> BTreeMap<String, Option<String>> {
    let backends = doctor::backends(doc, source);
    for op in SOCK_ADDR_OPS {
        assert_eq!(
            backends[op].as_deref(),
            Some(doctor::CGROUP_SOCK_ADDR),
            "expected {source} to name {} for {op} on this host (BPF LSM refused, cgroup sock_addr programs attach), got {}",
            doctor::CGROUP_SOCK_ADDR,
            doc["backends"]
        );
    }
    assert_eq!(
        backends["connect_unix"], None,
        "expected {source} to report connect_unix unenforced (null) without BPF LSM, got {}",
        doc["backends"]
    );
    assert_eq!(
        backends["selected_exec_open"].as_deref(),
        Some(doctor::KILL),
        "expected {source} to name the kill observer for exec/open of selector-joined processes (no BPF LSM, no Landlock for them), got {}",
        doc["backends"]
    );
    for op in ["exec", "open"] {
        assert!(
            matches!(backends[op].as_deref(), None | Some(doctor::LANDLOCK)),
            "expected {source} to name {} or null for {op} (BPF LSM is refused here), got {}",
            doctor::LANDLOCK,
            doc["backends"]
        );
    }
    backends
}

/// The operations a backends map leaves unenforced.
fn unenforced(backends: &BTreeMap<String, Option<String>>) -> Vec<String> {
    backends
        .iter()
        .filter(|(_, b)| b.is_none())
        .map(|(op, _)| op.clone())
        .collect()
}

/// `processes` of task `name` in `corral status`.
fn processes(d: &Daemon, name: &str) -> u64 {
    let st = d.status();
    st["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == name))
        .and_then(|t| t["processes"].as_u64())
        .unwrap_or_else(|| panic!("expected task {name} with a process count in status, got {st}"))
}

/// Waits for the one `denied` event `want` describes and checks it came from process `pid`.
fn expect_denied_event(d: &Daemon, what: &str, want: &InetEvent, pid: u32) -> Value {
    let ev = d.expect_one_event(what, &want.denied());
    assert!(
        event_pid(&ev) == u64::from(pid)
            && ev.pointer("/process/tgid") == Some(&json!(pid))
            && events::text(&ev, "/process/comm") == "corral-probe",
        "expected {what} to be reported for the probe, pid {pid}, got {ev}"
    );
    ev
}

#[test]
fn daemon_starts_with_fallback_backends_where_bpf_lsm_is_refused() {
    let pol = Policy::probe_only("fb-start");
    let d = Daemon::with(&[&pol]);
    let st = d.status();
    let from_status = expect_fallback_backends(&st, "`corral status --json`");
    let (_, doc) = doctor::json();
    let from_doctor = doctor::backends(&doc, "`corral doctor --json`");
    assert_eq!(
        from_status, from_doctor,
        "expected the daemon and `corral doctor` to agree on every operation's backend\n  status: {}\n  doctor: {}",
        st["backends"], doc["backends"]
    );

    let hooks = doctor::attached_hooks(&st);
    for program in [
        "corral_sched_fork",
        "corral_sched_exit",
        "corral_connect4",
        "corral_connect6",
        "corral_sendmsg4",
        "corral_sendmsg6",
    ] {
        assert!(
            hooks.iter().any(|(p, _)| p == program),
            "expected {program} attached in status, got {}",
            st["hooks"]
        );
    }
    let lsm: Vec<&(String, String)> = hooks.iter().filter(|(_, kind)| kind == "lsm").collect();
    assert!(
        lsm.is_empty(),
        "expected status to list only hooks really attached, so no LSM hook on a kernel that refuses them; got {lsm:?}"
    );

    // At start the daemon says, for the task, what it cannot enforce here.
    let missing = unenforced(&from_status);
    let stderr = d.stderr();
    assert!(
        stderr
            .lines()
            .any(|l| l.contains("fb-start") && missing.iter().all(|op| l.contains(op.as_str()))),
        "expected a daemon log line naming task fb-start and every unenforced operation {missing:?}, stderr:\n{stderr}"
    );
}

#[test]
fn run_refuses_a_task_this_host_cannot_fully_enforce() {
    let s = Scratch::new("fb-refuse");
    let marker = s.join("marker");
    let pol = Policy::probe_only("fb-refuse").write(&s.dir_entry(""));
    let d = Daemon::with(&[&pol]);
    let missing = unenforced(&expect_fallback_backends(&d.status(), "status"));

    let out = d.run("fb-refuse", &[&probe(), "open", &marker, "w"]);
    expect_corral_exit(&out, EXIT_REFUSED);
    for op in &missing {
        assert!(
            out.stderr.contains(op.as_str()),
            "expected the refusal to name the unenforced operation {op} (of {missing:?})\n{}",
            out.describe()
        );
    }
    assert!(
        out.stderr.contains("--accept-unenforced") && out.stderr.contains("mode: audit"),
        "expected the refusal to name both ways to run anyway (`--accept-unenforced`, `mode: audit`)\n{}",
        out.describe()
    );
    assert!(
        !Path::new(&marker).exists(),
        "expected CMD not to run when `corral run` is refused, but {marker} exists"
    );
    assert_eq!(
        processes(&d, "fb-refuse"),
        0,
        "expected no process confined by the refused run"
    );

    d.expect_ok(&d.run_accepting_unenforced("fb-refuse", &[&probe(), "open", &marker, "w"]));
    assert!(
        Path::new(&marker).exists(),
        "expected CMD to run with --accept-unenforced and create {marker}"
    );
}

#[test]
fn audit_task_runs_without_accepting_and_its_udp_send_is_audited() {
    let pol = Policy::probe_only("fb-audit").audit();
    let d = Daemon::with(&[&pol]);
    let out = d.run(
        "fb-audit",
        &[
            &probe(),
            "sendto",
            "udp",
            "127.0.0.1",
            &UDP_OTHER.to_string(),
        ],
    );
    d.expect_ok(&out);
    let want = InetEvent {
        task: "fb-audit",
        op: "sendmsg",
        backend: doctor::CGROUP_SOCK_ADDR,
        addr: "127.0.0.1",
        port: UDP_OTHER,
        family: "ipv4",
        proto: "udp",
    };
    let mut fields = want.target();
    fields.extend([("/decision", json!("audited")), ("/mode", json!("audit"))]);
    let ev = d.expect_one_event("the audited UDP send", &fields);
    assert_eq!(
        event_pid(&ev),
        u64::from(out.pid),
        "expected the audited send to be the probe's (pid {}), got {ev}",
        out.pid
    );
}

/// The daemon names an event's executable from the kernel's record, looked up once per batch of
/// events and process name: an event after an exec must name the new executable, not the one
/// looked up for the same process just before.
#[test]
fn an_event_after_an_exec_names_the_new_executable() {
    let pol = Policy::probe_only("fb-exec-exe").audit();
    let d = Daemon::with(&[&pol]);
    let port = UDP_OTHER.to_string();
    // bash connects a UDP socket (an audited connect), then execs the probe, which sends.
    let script = format!(
        "exec 3<>/dev/udp/127.0.0.1/{port}; exec {} sendto udp 127.0.0.1 {port}",
        probe()
    );
    let out = d.run("fb-exec-exe", &["/bin/bash", "-c", &script]);
    d.expect_ok(&out);
    let task = ("/task", json!("fb-exec-exe"));
    let connect = d.expect_one_event(
        "bash's UDP connect",
        &[task.clone(), ("/op", json!("connect"))],
    );
    let send = d.expect_one_event("the probe's UDP send", &[task, ("/op", json!("sendmsg"))]);
    assert_eq!(
        event_pid(&connect),
        event_pid(&send),
        "expected one process (bash, then the probe it exec'd): {connect}\n{send}"
    );
    assert_eq!(
        send.pointer("/process/comm"),
        Some(&json!("corral-probe")),
        "expected the send from the exec'd probe: {send}"
    );
    assert_eq!(
        send.pointer("/process/exe"),
        Some(&json!(probe())),
        "expected the event after the exec to name the new executable: {send}"
    );
}

fn tcp_connect_only_to_listed_port(task: &str, addr: &str, cidr: &str, family: &str) {
    let (allowed, mut other) = two_listeners(addr);
    let (pa, po) = (allowed.port().to_string(), other.port().to_string());
    let pol = Policy::probe_only(task).connect(cidr, &[&pa]);
    let d = Daemon::with(&[&pol]);

    let out = d.run_accepting_unenforced(task, &[&probe(), "connect", "tcp", addr, &po]);
    d.expect_errno(&out, "EPERM");
    let want = InetEvent {
        task,
        op: "connect",
        backend: doctor::CGROUP_SOCK_ADDR,
        addr,
        port: other.port(),
        family,
        proto: "tcp",
    };
    let _ = expect_denied_event(&d, "the refused TCP connect", &want, out.pid);
    assert!(
        other.running(),
        "expected the unlisted listener on port {po} never to see the refused connect"
    );

    d.expect_ok(&d.run_accepting_unenforced(task, &[&probe(), "connect", "tcp", addr, &pa]));
    let port = allowed.port();
    let listener = allowed.wait();
    assert_eq!(
        listener.code,
        Some(0),
        "expected the listed listener to accept the connection\n{}",
        listener.describe()
    );
    d.expect_no_event("the allowed connect", &[("/target/port", json!(port))]);
}

#[test]
fn clone3_into_an_untagged_cgroup_keeps_the_tag_for_the_connect_hooks() {
    let cg = TestCgroup::new("fb-clone3");
    let (allowed, other) = two_listeners("127.0.0.1");
    let (pa, po) = (allowed.port().to_string(), other.port().to_string());
    // The probe opens the cgroup directory for clone3 (Landlock lets it read it).
    let pol = Policy::probe_only("fb-clone3")
        .read(&format!("{}/", cg.dir()))
        .connect("127.0.0.1/32", &[&pa]);
    let d = Daemon::with(&[&pol]);
    let out = d.run_accepting_unenforced(
        "fb-clone3",
        &[
            &probe(),
            "clone-into-cgroup",
            &cg.dir(),
            &probe(),
            "connect",
            "tcp",
            "127.0.0.1",
            &po,
        ],
    );
    d.expect_errno(&out, "EPERM");
    let want = InetEvent {
        task: "fb-clone3",
        op: "connect",
        backend: doctor::CGROUP_SOCK_ADDR,
        addr: "127.0.0.1",
        port: other.port(),
        family: "ipv4",
        proto: "tcp",
    };
    let ev = d.expect_one_event("the refused connect of the cloned child", &want.denied());
    assert_ne!(
        event_pid(&ev),
        u64::from(out.pid),
        "expected the refusal from the child cloned into {}, not the probe itself: {ev}",
        cg.name
    );
    drop(allowed);
}

/// An untagged process that creates its child directly in a selected cgroup
/// (`clone3(CLONE_INTO_CGROUP)`, how newer systemd starts units): the child never passes
/// `cgroup_attach_task`, so `sched_process_fork` must see that parent and child are in different
/// cgroups and select the child before its first instruction.
#[test]
fn a_child_cloned_into_a_selected_cgroup_by_an_untagged_parent_joins_the_task() {
    let cg = TestCgroup::new("sel-clone3");
    let (allowed, other) = two_listeners("127.0.0.1");
    let pol = Policy::probe_only("sel-clone3")
        .connect("127.0.0.1/32", &[&allowed.port().to_string()])
        .select_cgroup(&cg.name);
    let d = Daemon::with(&[&pol]);
    let out = process::probe(&[
        "clone-into-cgroup",
        &cg.dir(),
        &probe(),
        "connect",
        "tcp",
        "127.0.0.1",
        &other.port().to_string(),
    ]);
    assert_eq!(
        out.first_line(),
        "err EPERM 1",
        "expected the child cloned into {} to be confined by its selector\n{}",
        cg.name,
        out.describe()
    );
    let want = InetEvent {
        task: "sel-clone3",
        op: "connect",
        backend: doctor::CGROUP_SOCK_ADDR,
        addr: "127.0.0.1",
        port: other.port(),
        family: "ipv4",
        proto: "tcp",
    };
    let ev = d.expect_one_event("the refused connect of the selected child", &want.denied());
    assert_ne!(
        event_pid(&ev),
        u64::from(out.pid),
        "expected the refusal from the child, not its untagged parent: {ev}"
    );
    // The parent stays untagged: its own connect to the same port goes through.
    let parent = process::probe(&["connect", "tcp", "127.0.0.1", &other.port().to_string()]);
    assert_eq!(
        parent.first_line(),
        "ok",
        "expected an untagged process's connect to pass\n{}",
        parent.describe()
    );
    drop(allowed);
}

#[test]
fn fallback_refuses_tcp_connect_v4_to_unlisted_port() {
    tcp_connect_only_to_listed_port("fb-tcp-v4", "127.0.0.1", "127.0.0.1/32", "ipv4");
}

#[test]
fn fallback_refuses_tcp_connect_v6_to_unlisted_port() {
    tcp_connect_only_to_listed_port("fb-tcp-v6", "::1", "::1/128", "ipv6");
}

#[test]
fn fallback_refuses_udp_sendto_and_connect_to_unlisted_port() {
    let (ua, uo) = (UDP_ALLOWED.to_string(), UDP_OTHER.to_string());
    let mut pol = Policy::probe_only("fb-udp");
    for (_, cidr, _) in LOOPBACKS {
        pol = pol.connect(cidr, &[&ua]);
    }
    let d = Daemon::with(&[&pol]);
    let denied_before = d.counter("sendmsg", "denied");
    let allowed_before = d.counter("sendmsg", "allowed");

    for (addr, _, family) in LOOPBACKS {
        for (verb, op) in [("sendto", "sendmsg"), ("connect", "connect")] {
            let out = d.run_accepting_unenforced("fb-udp", &[&probe(), verb, "udp", addr, &uo]);
            d.expect_errno(&out, "EPERM");
            let want = InetEvent {
                task: "fb-udp",
                op,
                backend: doctor::CGROUP_SOCK_ADDR,
                addr,
                port: UDP_OTHER,
                family,
                proto: "udp",
            };
            let _ = expect_denied_event(&d, &format!("the refused UDP {verb}"), &want, out.pid);
            d.expect_ok(&d.run_accepting_unenforced("fb-udp", &[&probe(), verb, "udp", addr, &ua]));
        }
    }
    d.expect_no_event(
        "the allowed UDP sends and connects",
        &[("/target/port", json!(UDP_ALLOWED))],
    );
    assert_eq!(
        d.counter("sendmsg", "denied"),
        denied_before + 2,
        "expected counters.sendmsg.denied to grow by exactly the two refused sends"
    );
    assert!(
        d.counter("sendmsg", "allowed") >= allowed_before + 2,
        "expected counters.sendmsg.allowed to grow by the two allowed sends at least"
    );
}

#[test]
fn fallback_refuses_tcp_fast_open_to_unlisted_port() {
    for (addr, cidr, family) in LOOPBACKS {
        let task = format!("fb-tfo-{family}");
        let (allowed, mut other) = two_listeners(addr);
        let (pa, po) = (allowed.port().to_string(), other.port().to_string());
        let pol = Policy::probe_only(&task).connect(cidr, &[&pa]);
        let d = Daemon::with(&[&pol]);

        let out = d.run_accepting_unenforced(&task, &[&probe(), "sendto", "tfo", addr, &po]);
        d.expect_errno(&out, "EPERM");
        let want = InetEvent {
            task: &task,
            op: "connect",
            backend: doctor::CGROUP_SOCK_ADDR,
            addr,
            port: other.port(),
            family,
            proto: "tcp",
        };
        let _ = expect_denied_event(&d, "the refused TCP Fast Open send", &want, out.pid);
        assert!(
            other.running(),
            "expected the unlisted listener on port {po} never to see the refused Fast Open"
        );

        d.expect_ok(&d.run_accepting_unenforced(&task, &[&probe(), "sendto", "tfo", addr, &pa]));
        let l = allowed.wait();
        assert_eq!(
            l.code,
            Some(0),
            "expected the listed listener to accept the Fast Open connection\n{}",
            l.describe()
        );
        // Untagged, the same send reaches the unlisted listener: the EPERM above was Corral's.
        d.expect_ok(&process::probe(&["sendto", "tfo", addr, &po]));
        let l = other.wait();
        assert_eq!(
            l.code,
            Some(0),
            "expected the unlisted listener to accept the untagged Fast Open connection\n{}",
            l.describe()
        );
    }
}

#[test]
fn fallback_leaves_untagged_processes_alone() {
    // Allows no network at all, to anyone it confines.
    let pol = Policy::probe_only("fb-untagged");
    let d = Daemon::with(&[&pol]);
    let counters_before = d.status()["counters"].clone();
    let uo = UDP_OTHER.to_string();

    for (addr, _, _) in LOOPBACKS {
        for (verb, kind) in [("connect", "tcp"), ("sendto", "tfo")] {
            let l = Background::probe(&["listen", "tcp", addr, "0"]);
            d.expect_ok(&process::probe(&[verb, kind, addr, &l.port().to_string()]));
            let done = l.wait();
            assert_eq!(
                done.code,
                Some(0),
                "expected the listener to accept the untagged {verb} {kind}\n{}",
                done.describe()
            );
        }
        for verb in ["sendto", "connect"] {
            d.expect_ok(&process::probe(&[verb, "udp", addr, &uo]));
        }
    }
    std::thread::sleep(SETTLE);
    let evs = d.events();
    assert!(
        evs.is_empty(),
        "expected no events from untagged processes, got:\n{}",
        events::tail(&evs, 10)
    );
    assert_eq!(
        counters_before,
        d.status()["counters"],
        "expected the decision counters not to move for untagged processes"
    );
}

#[test]
fn fallback_confines_the_children_of_a_tagged_process() {
    let (allowed, mut other) = two_listeners("127.0.0.1");
    let (pa, po) = (allowed.port().to_string(), other.port().to_string());
    let uo = UDP_OTHER.to_string();
    let pol = Policy::probe_only("fb-children").connect("127.0.0.1/32", &[&pa]);
    let d = Daemon::with(&[&pol]);
    let probe = probe();
    let chain = |op: &[&str]| -> RunOutput {
        let mut argv = vec![probe.as_str(), "spawn", "3", "--", probe.as_str()];
        argv.extend_from_slice(op);
        d.run_accepting_unenforced("fb-children", &argv)
    };

    for (op, verb, proto, port, port_text) in [
        ("connect", "connect", "tcp", other.port(), po.as_str()),
        ("sendmsg", "sendto", "udp", UDP_OTHER, uo.as_str()),
    ] {
        let out = chain(&[verb, proto, "127.0.0.1", port_text]);
        d.expect_errno(&out, "EPERM");
        let want = InetEvent {
            task: "fb-children",
            op,
            backend: doctor::CGROUP_SOCK_ADDR,
            addr: "127.0.0.1",
            port,
            family: "ipv4",
            proto,
        };
        let ev = d.expect_one_event(
            &format!("the great-grandchild's refused {verb}"),
            &want.denied(),
        );
        let pid = event_pid(&ev);
        assert!(
            pid != 0 && pid != u64::from(out.pid),
            "expected the refusal to come from a descendant of pid {} (the chain's third generation), got {ev}",
            out.pid
        );
    }
    assert!(
        other.running(),
        "expected the unlisted listener never to see the descendant's connect"
    );
    d.expect_ok(&chain(&["connect", "tcp", "127.0.0.1", &pa]));
    let l = allowed.wait();
    assert_eq!(
        l.code,
        Some(0),
        "expected the listed listener to accept the descendant's connection\n{}",
        l.describe()
    );
}

#[test]
fn fallback_events_name_the_parent_of_a_process_that_already_exited() {
    let pol = Policy::probe_only("fb-ppid");
    let d = Daemon::with(&[&pol]);
    let uo = UDP_OTHER.to_string();
    // The probe is confined at once, waits 3 s, then makes its refused send.
    let mut cmd = d.run_command_with(
        "fb-ppid",
        &[corral_tests::ACCEPT_UNENFORCED],
        &[&probe(), "-D", "3000", "sendto", "udp", "127.0.0.1", &uo],
    );
    let mut child = cmd
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::null())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("expected to start `corral run`: {e}"));
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while processes(&d, "fb-ppid") == 0 {
        assert!(
            Instant::now() < deadline,
            "expected the probe to be confined within {EVENT_TIMEOUT:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // The daemon reads the event only after the probe has exited and been reaped.
    let code = {
        let _frozen = d.frozen();
        process::wait_deadline(&mut child, process::COMMAND_TIMEOUT)
    };
    assert_eq!(
        code,
        Some(Some(1)),
        "expected the confined probe's send to fail (exit 1)"
    );
    let want = InetEvent {
        task: "fb-ppid",
        op: "sendmsg",
        backend: doctor::CGROUP_SOCK_ADDR,
        addr: "127.0.0.1",
        port: UDP_OTHER,
        family: "ipv4",
        proto: "udp",
    };
    let ev = d.expect_one_event("the refused send", &want.denied());
    assert_eq!(
        ev.pointer("/process/ppid"),
        Some(&json!(std::process::id())),
        "expected the event's process.ppid to be the probe's parent (this test, pid {}) even though the probe exited before the daemon read the event; got {ev}",
        std::process::id()
    );
}

#[test]
fn doctor_reports_incomplete_enforcement_and_the_fix_for_bpf_lsm() {
    let (out, doc) = doctor::json();
    assert_eq!(
        out.code,
        Some(doctor::EXIT_INCOMPLETE),
        "expected `corral doctor --json` to exit {} (incomplete: connect_unix has no backend here)\n{}",
        doctor::EXIT_INCOMPLETE,
        out.describe()
    );
    assert_eq!(
        doc["verdict"], "incomplete",
        "expected verdict \"incomplete\", got {doc}"
    );
    let backends = expect_fallback_backends(&doc, "`corral doctor --json`");
    let lsm = doctor::finding(&doc, "bpf_lsm");
    assert!(
        lsm["available"] == false
            && lsm["fix"].as_str().is_some_and(|f| f.trim().len() > 10)
            && lsm["detail"].as_str().is_some_and(|d| !d.trim().is_empty()),
        "expected bpf_lsm unavailable with a detail and a fix, got {lsm}"
    );
    for mechanism in ["tp_btf", "cgroup_sock_addr"] {
        let f = doctor::finding(&doc, mechanism);
        assert!(
            f["available"] == true,
            "expected {mechanism} available on this host, got {f}"
        );
    }

    // What it says about the host is what the host says.
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .unwrap_or_else(|e| panic!("expected to read the kernel release: {e}"));
    let lsms = std::fs::read_to_string("/sys/kernel/security/lsm")
        .unwrap_or_else(|e| panic!("expected to read /sys/kernel/security/lsm: {e}"));
    let lsms: Vec<&str> = lsms.trim().split(',').collect();
    let facts = [
        ("kernel", json!(kernel.trim())),
        ("active_lsms", json!(lsms)),
        ("btf", json!(Path::new("/sys/kernel/btf/vmlinux").exists())),
        ("cgroup2", json!(cgroup2_mount())),
    ];
    for (key, want) in facts {
        assert_eq!(
            doc[key], want,
            "expected doctor's {key} to be {want}, got {doc}"
        );
    }

    let text = doctor::run(&[]);
    assert_eq!(
        text.code,
        Some(doctor::EXIT_INCOMPLETE),
        "expected `corral doctor` to exit {}\n{}",
        doctor::EXIT_INCOMPLETE,
        text.describe()
    );
    let rows = doctor::table_rows(&text.stdout);
    for op in doctor::OPERATIONS {
        let want = backends[op].as_deref().unwrap_or("NONE");
        assert_eq!(
            rows.get(op).map(String::as_str),
            Some(want),
            "expected a table row \"{op} {want} ...\"\n{}",
            text.describe()
        );
    }
    let lines: Vec<&str> = text.stdout.lines().collect();
    let fix_follows = lines.windows(2).any(|w| {
        w[0].starts_with("MISSING")
            && w[0].contains("bpf_lsm")
            && w[1]
                .trim_start()
                .strip_prefix("fix:")
                .is_some_and(|f| f.trim().len() > 10)
    });
    assert!(
        fix_follows,
        "expected a \"MISSING bpf_lsm ...\" line followed by a \"fix: ...\" line\n{}",
        text.describe()
    );
    // The guards (renames, tampering, userfaultfd, ...) need BPF LSM: none is enforced here
    // but `socket` and `io_uring`, whose creator the kill backend kills.
    let (_, doc) = doctor::json();
    doctor::expect_guards(&doc, &text.stdout, |g| {
        matches!(g, "socket" | "io_uring").then_some("kill")
    });
}

#[test]
fn doctor_reports_the_landlock_abi_the_kernel_offers() {
    let abi = doctor::kernel_landlock_abi();
    let (_, doc) = doctor::json();
    let finding = doctor::finding(&doc, "landlock");
    assert!(
        doc["landlock_abi"] == json!(abi) && finding["available"] == json!(abi.is_some()),
        "expected `corral doctor --json` to report the Landlock ABI the kernel gives landlock_create_ruleset(VERSION), {abi:?}, and the landlock finding available = {}; got landlock_abi {} and finding {finding}",
        abi.is_some(),
        doc["landlock_abi"]
    );
}

// ---------------------------------------------------------------------------------------------
// corral policy check

fn shipped_policy_files() -> Vec<String> {
    let dir = env::policies_dir();
    let mut files: Vec<String> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("expected to list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .map(|p| p.display().to_string())
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "expected the repository to ship at least one policy (*.yaml) in {}",
        dir.display()
    );
    files
}

#[test]
fn policy_check_accepts_every_shipped_policy() {
    let files = shipped_policy_files();
    for f in &files {
        let out = corral(&["policy", "check", f]);
        assert!(
            out.code == Some(0) && out.stderr.trim().is_empty(),
            "expected shipped policy {f} to pass `corral policy check` silently\n{}",
            out.describe()
        );
    }
    let mut args = vec!["policy", "check"];
    args.extend(files.iter().map(String::as_str));
    let out = corral(&args);
    assert_eq!(
        out.code,
        Some(0),
        "expected all shipped policies to pass together\n{}",
        out.describe()
    );
}

/// Malformed policies with the line and column their error must be reported at (1-based).
/// `None` for the column: only the line is pinned.
const MALFORMED: [(&str, &str, u32, Option<u32>); 4] = [
    (
        "unknown-field.yaml",
        "apiVersion: corral.dev/v1
kind: TaskPolicy
metadata:
  name: unknown-field
spec:
  files:
    read: [/tmp/]
    raed: [/etc/]
",
        8,
        Some(5),
    ),
    (
        "bad-mode.yaml",
        "apiVersion: corral.dev/v1
kind: TaskPolicy
metadata:
  name: bad-mode
spec:
  mode: enforcing
",
        6,
        None,
    ),
    (
        "bad-cidr.yaml",
        "apiVersion: corral.dev/v1
kind: TaskPolicy
metadata:
  name: bad-cidr
spec:
  network:
    connect:
      - cidr: 127.0.0.1/33
        ports: [80]
",
        8,
        None,
    ),
    (
        "not-yaml.yaml",
        "apiVersion: corral.dev/v1
kind: TaskPolicy
metadata:
  name: not-yaml
spec:
  mode: enforce
\tfiles: {}
",
        7,
        Some(1),
    ),
];

/// Parses `FILE:LINE:COLUMN: message` lines of `stderr` for `file`.
fn positions(stderr: &str, file: &str) -> Vec<(u32, u32)> {
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(file)?.strip_prefix(':'))
        .filter_map(|rest| {
            let mut parts = rest.splitn(3, ':');
            let line = parts.next()?.parse().ok()?;
            let col = parts.next()?.parse().ok()?;
            let msg = parts.next()?;
            (msg.starts_with(' ') && msg.trim().len() > 3).then_some((line, col))
        })
        .collect()
}

#[test]
fn policy_check_reports_file_line_column_for_malformed_policies() {
    let s = Scratch::new("check-bad");
    for (name, yaml, line, col) in MALFORMED {
        let f = s.file(name, yaml);
        let out = corral(&["policy", "check", &f]);
        let found = positions(&out.stderr, &f);
        assert!(
            out.code == Some(EXIT_CONFIG)
                && found
                    .iter()
                    .any(|(l, c)| *l == line && col.is_none_or(|col| *c == col)),
            "expected exit {EXIT_CONFIG} and \"{f}:{line}:{}: <message>\" on stderr\n{}",
            col.map_or_else(|| "<column>".to_owned(), |c| c.to_string()),
            out.describe()
        );
    }
}

#[test]
fn policy_check_reports_every_bad_file_and_only_those() {
    let s = Scratch::new("check-mixed");
    let good = s.file("good.yaml", &Policy::new("good").read("/tmp/").yaml());
    let bad1 = s.file(MALFORMED[0].0, MALFORMED[0].1);
    let bad2 = s.file(MALFORMED[1].0, MALFORMED[1].1);
    let out = corral(&["policy", "check", &bad1, &good, &bad2]);
    assert!(
        out.code == Some(EXIT_CONFIG)
            && !positions(&out.stderr, &bad1).is_empty()
            && !positions(&out.stderr, &bad2).is_empty()
            && !out.stderr.contains(&good),
        "expected exit {EXIT_CONFIG} with errors for {bad1} and {bad2}, none for {good}\n{}",
        out.describe()
    );
    let out = corral(&["policy", "check", &good]);
    assert_eq!(
        out.code,
        Some(0),
        "expected {good} alone to pass\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// corral run without a daemon

#[test]
fn run_without_daemon_exits_69_without_running_cmd() {
    let s = Scratch::new("no-daemon");
    let marker = s.join("marker");
    let stale = s.join("stale.sock");
    drop(
        std::os::unix::net::UnixListener::bind(&stale)
            .unwrap_or_else(|e| panic!("expected to bind {stale}: {e}")),
    );
    for sock in [s.join("missing/corral.sock"), stale.clone()] {
        let out = corral(&[
            "run",
            "--task",
            "any",
            "--socket",
            &sock,
            "--",
            &env::probe(),
            "open",
            &marker,
            "w",
        ]);
        expect_corral_exit(&out, EXIT_UNAVAILABLE);
        assert!(
            !Path::new(&marker).exists(),
            "expected CMD not to run without a daemon (socket {sock}), but {marker} exists"
        );
    }
}

// ---------------------------------------------------------------------------------------------
// the probe itself (the VM tests read its output as the truth)

#[test]
fn probe_reports_errno_names_and_numbers() {
    let s = Scratch::new("probe-errno");
    let file = s.file("file", "x");
    expect_probe(&process::probe(&["open", &file, "r"]), "ok", 0);
    expect_probe(
        &process::probe(&["open", &s.join("missing"), "r"]),
        "err ENOENT 2",
        1,
    );
    expect_probe(
        &process::probe(&["open", &s.join("missing/x"), "w"]),
        "err ENOENT 2",
        1,
    );
    expect_probe(
        &process::probe(&["open", &format!("{file}/x"), "r"]),
        "err ENOTDIR 20",
        1,
    );
    expect_probe(
        &process::probe(&["exec", &s.join("missing")]),
        "err ENOENT 2",
        1,
    );
    expect_probe(&process::probe(&["exec", &file]), "err EACCES 13", 1);
    expect_probe(&process::probe(&["reopen", &file]), "ok", 0);
    let created = s.join("created");
    expect_probe(&process::probe(&["open", &created, "w"]), "ok", 0);
    assert!(
        Path::new(&created).exists(),
        "expected `open PATH w` to create {created}"
    );
    let usage = process::probe(&["open", &file, "x"]);
    assert_eq!(
        usage.code,
        Some(2),
        "expected a usage error to exit 2\n{}",
        usage.describe()
    );
}

#[test]
fn probe_connects_and_listens() {
    let s = Scratch::new("probe-net");
    for addr in ["127.0.0.1", "::1"] {
        let l = Background::probe(&["listen", "tcp", addr, "0"]);
        expect_probe(
            &process::probe(&["connect", "tcp", addr, &l.port().to_string()]),
            "ok",
            0,
        );
        let done = l.wait();
        assert_eq!(
            done.code,
            Some(0),
            "expected the listener to exit 0 after one connection\n{}",
            done.describe()
        );
        expect_probe(&process::probe(&["connect", "udp", addr, "9"]), "ok", 0);
    }
    // A port nobody listens on (the listener above is gone).
    let l = Background::probe(&["listen", "tcp", "127.0.0.1", "0"]);
    let port = l.port().to_string();
    expect_probe(
        &process::probe(&["connect", "tcp", "127.0.0.1", &port]),
        "ok",
        0,
    );
    drop(l.wait());
    expect_probe(
        &process::probe(&["connect", "tcp", "127.0.0.1", &port]),
        "err ECONNREFUSED 111",
        1,
    );
    let path = s.join("x.sock");
    let abstract_name = format!("@corral-probe-test-{}", std::process::id());
    for addr in [path.as_str(), abstract_name.as_str()] {
        let l = Background::probe(&["listen", "unix", addr]);
        expect_probe(&process::probe(&["connect", "unix", addr]), "ok", 0);
        drop(l.wait());
    }
    expect_probe(
        &process::probe(&["connect", "unix", &s.join("none.sock")]),
        "err ENOENT 2",
        1,
    );
    expect_probe(
        &process::probe(&["connect", "unix", "@corral-probe-nobody"]),
        "err ECONNREFUSED 111",
        1,
    );
}

#[test]
fn probe_spawn_propagates_the_deepest_exit_code() {
    let s = Scratch::new("probe-spawn");
    let file = s.file("file", "x");
    let probe = env::probe();
    expect_probe(
        &process::probe(&["spawn", "3", "--", &probe, "open", &file, "r"]),
        "ok",
        0,
    );
    expect_probe(
        &process::probe(&["spawn", "3", "--", &probe, "open", &s.join("missing"), "r"]),
        "err ENOENT 2",
        1,
    );
    expect_probe(
        &process::probe(&["spawn", "2", "--", &s.join("missing")]),
        "err ENOENT 2",
        1,
    );
}

#[test]
fn probe_changes_into_directories_deeper_than_path_max() {
    let s = Scratch::new("probe-deep");
    let top = s.mkdir("deep");
    let names = deep::components_for(&top, 6000);
    let (file, dirs) = names
        .split_last()
        .unwrap_or_else(|| unreachable!("one component at least"));
    deep::mkdirs(&top, dirs);
    deep::write_file(&top, dirs, file, "deep");
    let dir = deep::join(&top, dirs);
    expect_probe(&process::probe(&["-C", &dir, "open", file, "r"]), "ok", 0);
    expect_probe(
        &process::probe(&["open", &deep::join(&top, &names), "r"]),
        "err ENAMETOOLONG 36",
        1,
    );
    expect_probe(
        &process::probe(&["-C", &dir, "open", "missing", "r"]),
        "err ENOENT 2",
        1,
    );
}

// ---------------------------------------------------------------------------------------------
// selectors and the kill observer (no BPF LSM here: processes that join a task without
// `corral run` have no Landlock, so their execs and opens are judged just after they happen and
// a miss is killed before the process returns to user space)

/// Without BPF LSM, the kill backend kills the creator of a socket no fallback hook judges, as
/// soon as `socket(2)` returns: a UDP-Lite socket (its connects never run the cgroup connect
/// programs, so nothing would judge where it goes) and a raw one, Landlock-confined or not,
/// unless the task's `spec.privileges` grants them. Netlink (glibc's resolver opens one) and the
/// sockets the hooks judge (TCP, UDP, unix) are created as usual.
#[test]
fn fallback_kills_the_creator_of_a_socket_no_hook_judges() {
    let plain = Policy::probe_only("fb-sockets");
    let granted = Policy::probe_only("fb-sockets-granted")
        .privilege("other_sockets")
        .privilege("raw_sockets");
    let d = Daemon::with(&[&plain, &granted]);
    let socket = |task: &str, numbers: [i32; 3]| {
        let words = numbers.map(|n| n.to_string());
        d.run_accepting_unenforced(task, &[&probe(), "socket", &words[0], &words[1], &words[2]])
    };
    let udplite = [libc::AF_INET, libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE];
    let raw = [libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP];
    for (what, numbers) in [("UDP-Lite", udplite), ("raw", raw)] {
        let out = socket("fb-sockets", numbers);
        assert!(
            killed(&out) && out.stdout.is_empty(),
            "expected the creator of a {what} socket killed before it could print anything\n{}",
            out.describe()
        );
        let ev = d.expect_one_event(
            &format!("the killed {what} socket"),
            &[
                ("/op", json!("socket")),
                ("/task", json!("fb-sockets")),
                ("/backend", json!("kill")),
                ("/enforcement", json!("kill")),
                ("/decision", json!("denied")),
                ("/reason", json!("forbidden")),
                ("/process/pid", json!(out.pid)),
            ],
        );
        assert_eq!(
            (ev.pointer("/target/family"), ev.pointer("/target/protocol")),
            (Some(&json!(numbers[0])), Some(&json!(numbers[2]))),
            "expected the event to name the {what} socket, got {ev}"
        );
        expect_probe(&socket("fb-sockets-granted", numbers), "ok", 0);
    }
    for (what, numbers) in [
        ("netlink", [libc::AF_NETLINK, libc::SOCK_RAW, 0]),
        ("TCP", [libc::AF_INET, libc::SOCK_STREAM, 0]),
        ("UDP", [libc::AF_INET6, libc::SOCK_DGRAM, 0]),
        ("unix", [libc::AF_UNIX, libc::SOCK_STREAM, 0]),
    ] {
        let out = socket("fb-sockets", numbers);
        assert_eq!(
            (out.code, out.first_line()),
            (Some(0), "ok"),
            "expected a {what} socket created as usual\n{}",
            out.describe()
        );
    }
}

/// A 64-bit process can make 32-bit system calls (`int $0x80`), whose numbers differ (5 is
/// `open` there, `fstat` in the 64-bit table): the kill backend decodes each call by the ABI it
/// was made in. A selected process's 32-bit open of a file outside its task is killed like the
/// 64-bit one, and a raw socket made through the 32-bit `socket` or the `socketcall`
/// multiplexer kills its creator; what the task may do still works that way.
#[test]
fn the_kill_backend_judges_32_bit_system_calls_like_64_bit_ones() {
    let scratch = Scratch::new("sel-ia32");
    let allowed = scratch.file("data/allowed.txt", "fine\n");
    let secret = scratch.file("data/secret.txt", "secret\n");
    let (copy, pol) = selected_probe(&scratch, "sel-ia32");
    let sockets = Policy::probe_only("fb-ia32-sockets");
    let d = Daemon::with(&[&pol.read(&allowed), &sockets]);
    let selected = |args: &[&str]| {
        process::run({
            let mut c = Command::new(&copy);
            c.args(args);
            c
        })
    };
    expect_probe(&selected(&["ia32-open", &allowed]), "ok", 0);
    let denied = selected(&["ia32-open", &secret]);
    assert!(
        killed(&denied) && denied.stdout.is_empty(),
        "expected the selected agent killed by its 32-bit open of {secret} (not in its task), before it could print anything\n{}",
        denied.describe()
    );
    let _ = d.expect_one_event(
        "the killed 32-bit open",
        &[
            ("/op", json!("open")),
            ("/task", json!("sel-ia32")),
            ("/backend", json!("kill")),
            ("/decision", json!("denied")),
            ("/target/path", json!(secret)),
            ("/process/tgid", json!(denied.pid)),
        ],
    );

    let raw = [libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP].map(|n| n.to_string());
    for how in ["ia32-socket", "ia32-socketcall"] {
        let out = d.run_accepting_unenforced(
            "fb-ia32-sockets",
            &[&probe(), how, &raw[0], &raw[1], &raw[2]],
        );
        assert!(
            killed(&out) && out.stdout.is_empty(),
            "expected the creator of a raw socket made by {how} killed before it could print anything\n{}",
            out.describe()
        );
        let _ = d.expect_one_event(
            &format!("the raw socket made by {how}"),
            &[
                ("/op", json!("socket")),
                ("/task", json!("fb-ia32-sockets")),
                ("/backend", json!("kill")),
                ("/reason", json!("forbidden")),
                ("/target/family", json!(libc::AF_INET)),
                ("/target/protocol", json!(libc::IPPROTO_ICMP)),
                ("/process/pid", json!(out.pid)),
            ],
        );
        let tcp = [libc::AF_INET, libc::SOCK_STREAM, 0].map(|n| n.to_string());
        let out = d.run_accepting_unenforced(
            "fb-ia32-sockets",
            &[&probe(), how, &tcp[0], &tcp[1], &tcp[2]],
        );
        expect_probe(&out, "ok", 0);
    }
}

/// Without BPF LSM nothing sees the operations an `io_uring` ring runs (an `IORING_OP_OPENAT`
/// or `IORING_OP_SOCKET` makes no system call of its own): the kill backend kills a tagged
/// process as its `io_uring_setup` returns, before it can submit anything, Landlock-confined
/// or joined by a selector, unless `spec.privileges` grants `io_uring`. With it, Landlock
/// still judges the ring's opens.
#[test]
fn the_kill_backend_kills_the_creator_of_an_io_uring_unless_granted() {
    let scratch = Scratch::new("fb-uring");
    let allowed = scratch.file("data/allowed.txt", "fine\n");
    let secret = scratch.file("data/secret.txt", "secret\n");
    let (copy, selected) = selected_probe(&scratch, "sel-uring");
    let plain = Policy::probe_only("fb-uring").read(&allowed);
    let granted = Policy::probe_only("fb-uring-granted")
        .read(&allowed)
        .privilege("io_uring");
    let d = Daemon::with(&[&plain, &granted, &selected.read(&allowed)]);

    let out = d.run_accepting_unenforced("fb-uring", &[&probe(), "uring-open", &allowed]);
    assert!(
        killed(&out) && out.stdout.is_empty(),
        "expected the creator of an io_uring killed before it could submit the open\n{}",
        out.describe()
    );
    let ev = d.expect_one_event(
        "the killed io_uring creator",
        &[
            ("/op", json!("io_uring")),
            ("/task", json!("fb-uring")),
            ("/backend", json!("kill")),
            ("/enforcement", json!("kill")),
            ("/decision", json!("denied")),
            ("/reason", json!("forbidden")),
            ("/process/pid", json!(out.pid)),
        ],
    );
    assert_eq!(
        ev.pointer("/target/anon"),
        Some(&json!("[io_uring]")),
        "expected the event to name the ring, got {ev}"
    );

    let selected_run = process::run({
        let mut c = Command::new(&copy);
        c.args(["uring-open", &allowed]);
        c
    });
    assert!(
        killed(&selected_run),
        "expected the selected agent killed creating an io_uring\n{}",
        selected_run.describe()
    );
    let _ = d.expect_one_event(
        "the selected agent's io_uring",
        &[
            ("/op", json!("io_uring")),
            ("/task", json!("sel-uring")),
            ("/process/pid", json!(selected_run.pid)),
        ],
    );

    // Granted: the ring works, and Landlock judges the opens it runs.
    expect_probe(
        &d.run_accepting_unenforced("fb-uring-granted", &[&probe(), "uring-open", &allowed]),
        "ok",
        0,
    );
    let refused =
        d.run_accepting_unenforced("fb-uring-granted", &[&probe(), "uring-open", &secret]);
    assert!(
        refused.code == Some(1) && refused.first_line().starts_with("err EACCES"),
        "expected Landlock to refuse the ring's open of {secret} (EACCES)\n{}",
        refused.describe()
    );
    // Untagged, rings are nobody's business.
    expect_probe(&process::probe(&["uring-open", &secret]), "ok", 0);
}

#[test]
fn exec_selector_joins_the_task_and_a_denied_open_is_killed() {
    let scratch = Scratch::new("sel-exec");
    let allowed = scratch.file("data/allowed.txt", "fine\n");
    let secret = scratch.file("data/secret.txt", "secret\n");
    let (copy, pol) = selected_probe(&scratch, "sel-exec");
    let d = Daemon::with(&[&pol.read(&allowed)]);
    let status = d.status();
    assert_eq!(
        status["backends"]["selected_exec_open"],
        json!("kill"),
        "expected the kill observer to enforce exec/open of selected processes here, got {}",
        status["backends"]
    );

    let ok = process::run({
        let mut c = Command::new(&copy);
        c.args(["open", &allowed, "r"]);
        c
    });
    expect_probe(&ok, "ok", 0);

    let denied = process::run({
        let mut c = Command::new(&copy);
        c.args(["open", &secret, "r"]);
        c
    });
    assert!(
        killed(&denied) && denied.stdout.is_empty(),
        "expected the selected agent to be killed opening {secret} (not in its task), before it could print anything\n{}",
        denied.describe()
    );
    let ev = d.expect_one_event(
        "the killed open",
        &[
            ("/op", json!("open")),
            ("/task", json!("sel-exec")),
            ("/backend", json!("kill")),
            ("/enforcement", json!("kill")),
            ("/decision", json!("denied")),
            ("/target/path", json!(secret)),
            ("/target/access", json!("read")),
        ],
    );
    assert_eq!(
        ev.pointer("/process/tgid"),
        Some(&json!(denied.pid)),
        "expected the event to name the killed process, got {ev}"
    );

    // The same file, the same operation, from the original (unselected) binary: untouched.
    expect_probe(&process::probe(&["open", &secret, "r"]), "ok", 0);
    assert_eq!(
        processes(&d, "sel-exec"),
        0,
        "expected no process left in the task once the selected ones exited"
    );
}

#[test]
fn exec_selector_kills_a_denied_exec_before_the_new_program_runs() {
    let scratch = Scratch::new("sel-exec2");
    let (copy, pol) = selected_probe(&scratch, "sel-exec2");
    let d = Daemon::with(&[&pol]);
    // /usr/bin/true is not in the task's exec list.
    let out = process::run({
        let mut c = Command::new(&copy);
        c.args(["exec", "/usr/bin/true"]);
        c
    });
    assert!(
        killed(&out),
        "expected the exec of /usr/bin/true (not allowed) to be killed\n{}",
        out.describe()
    );
    let _ = d.expect_one_event(
        "the killed exec",
        &[
            ("/op", json!("exec")),
            ("/task", json!("sel-exec2")),
            ("/backend", json!("kill")),
            ("/target/path", json!("/usr/bin/true")),
        ],
    );
}

#[test]
fn cgroup_selector_confines_processes_already_there_and_those_that_arrive() {
    let cg = TestCgroup::new("sel");
    let scratch = Scratch::new("sel-cgroup");
    let fifo = scratch.join("go");
    let made = Command::new("mkfifo").arg(&fifo).status();
    assert!(
        made.is_ok_and(|s| s.success()),
        "expected mkfifo {fifo} to work"
    );
    let (allowed, other) = two_listeners("127.0.0.1");
    // Joins the cgroup before the daemon exists, then waits; once released it becomes the probe
    // (same process) and connects to a port its task does not allow.
    let script = format!(
        "echo $$ > {procs} && read go < {fifo} && exec {probe} connect tcp 127.0.0.1 {port}",
        procs = cg.procs(),
        probe = probe(),
        port = other.port()
    );
    let early = std::process::Command::new("/bin/sh")
        .args(["-c", &script])
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("expected to start the early process: {e}"));
    // It must be in the cgroup before the daemon starts.
    let deadline = Instant::now() + Duration::from_secs(10);
    while !std::fs::read_to_string(cg.procs()).is_ok_and(|p| p.contains(&early.id().to_string())) {
        assert!(
            Instant::now() < deadline,
            "expected the early process to enter {}",
            cg.name
        );
        std::thread::sleep(Duration::from_millis(50));
    }

    let pol = Policy::probe_only("sel-cgroup")
        .read(&fifo)
        .connect("127.0.0.1/32", &[&allowed.port().to_string()])
        .select_cgroup(&cg.name);
    let d = Daemon::with(&[&pol]);
    assert_eq!(
        processes(&d, "sel-cgroup"),
        1,
        "expected the process already in {} to be confined when the daemon started",
        cg.name
    );
    std::fs::write(&fifo, "go\n")
        .unwrap_or_else(|e| panic!("expected to release the early process: {e}"));
    let out = early
        .wait_with_output()
        .unwrap_or_else(|e| panic!("expected the early process to finish: {e}"));
    let line = String::from_utf8_lossy(&out.stdout);
    assert_eq!(
        line.lines().next(),
        Some("err EPERM 1"),
        "expected the adopted process's connect to an unlisted port to be refused, got {line:?}"
    );

    // A process that moves itself into the cgroup later joins as well.
    let late = process::run({
        let mut c = Command::new("/bin/sh");
        c.args([
            "-c",
            &format!(
                "echo $$ > {} && exec {} connect tcp 127.0.0.1 {}",
                cg.procs(),
                probe(),
                other.port()
            ),
        ]);
        c
    });
    assert_eq!(
        late.first_line(),
        "err EPERM 1",
        "expected a process entering {} to be confined\n{}",
        cg.name,
        late.describe()
    );
    let _ = d.expect_one_event(
        "the late arrival's refused connect",
        &[
            ("/task", json!("sel-cgroup")),
            ("/op", json!("connect")),
            ("/process/tgid", json!(late.pid)),
        ],
    );
    // The listed port stays reachable from the cgroup.
    let ok = process::run({
        let mut c = Command::new("/bin/sh");
        c.args([
            "-c",
            &format!(
                "echo $$ > {} && exec {} connect tcp 127.0.0.1 {}",
                cg.procs(),
                probe(),
                allowed.port()
            ),
        ]);
        c
    });
    expect_probe(&ok, "ok", 0);
}

#[test]
fn memfd_fexecve_under_landlock_is_killed_by_the_same_rules() {
    // Landlock does not judge files of the kernel's internal mounts, so it lets a program
    // written into a memfd run; the kill backend judges the executed file by the task's rules.
    // Its path walk names such a pseudo file as BPF LSM does, `/memfd:NAME (deleted)`; the
    // kernel names the process after the memfd (`comm`).
    let pol = Policy::probe_only("ll-memfd");
    let d = Daemon::with(&[&pol]);
    let out = d.run_accepting_unenforced(
        "ll-memfd",
        &[&probe(), "memfd-exec", &probe(), "open", &probe(), "r"],
    );
    assert!(
        killed(&out),
        "expected the confined memfd exec to be killed before the payload runs\n{}",
        out.describe()
    );
    let evs = d.wait_events(
        |e| {
            events::has(
                e,
                &[
                    ("/op", json!("exec")),
                    ("/task", json!("ll-memfd")),
                    ("/decision", json!("denied")),
                    ("/backend", json!("kill")),
                    ("/target/path", json!("/memfd:corral-payload (deleted)")),
                ],
            ) && events::text(e, "/process/comm").starts_with("memfd:corral")
        },
        EVENT_TIMEOUT,
    );
    assert_eq!(
        evs.len(),
        1,
        "expected one killed exec of \"/memfd:corral-payload (deleted)\", got:\n{}",
        events::tail(&evs, 5)
    );
    // The same probe outside the task runs its payload: the refusal came from the task's rules.
    let free = process::probe(&["memfd-exec", &probe(), "open", &probe(), "r"]);
    assert_eq!(
        free.code,
        Some(0),
        "expected the untagged memfd exec to run\n{}",
        free.describe()
    );
}

#[test]
fn landlock_refusals_of_corral_run_are_reported_as_events() {
    let scratch = Scratch::new("ll-events");
    let secret = scratch.file("secret.txt", "secret\n");
    let pol = Policy::probe_only("ll-events");
    let d = Daemon::with(&[&pol]);
    let out = d.run_accepting_unenforced("ll-events", &[&probe(), "open", &secret, "r"]);
    expect_probe(&out, "err EACCES 13", 1);
    let _ = d.expect_one_event(
        "Landlock's refusal",
        &[
            ("/op", json!("open")),
            ("/task", json!("ll-events")),
            ("/backend", json!("landlock")),
            ("/enforcement", json!("refuse")),
            ("/target/path", json!(secret)),
            ("/target/access", json!("read")),
            ("/process/tgid", json!(out.pid)),
        ],
    );
}

// ---------------------------------------------------------------------------------------------
// `corral doctor --selftest`: the bypass probes for real, under the built-in task

/// Probes the fallback backends of this host claim to close: Landlock (paths and execs of
/// `corral run` processes, truncates and new entries, files on a detached mount tree) and cgroup
/// `sock_addr` (inet connects and UDP sends).
const SELFTEST_CLOSED_HERE: [&str; 23] = [
    "direct",
    "symlink",
    "dotdot",
    "openat2",
    "exec-copy",
    "execveat",
    "memfd",
    "tcp-connect",
    "udp-sendto",
    "ipv4-mapped",
    "ipv6",
    "thread",
    "daemonised",
    "deep-path",
    "newline-name",
    "truncate",
    "mkdir",
    "new-symlink",
    "mkfifo",
    "device-node",
    "tree-clone",
    "tree-clone-up",
    "ia32-open",
];

/// Probes only BPF LSM closes: reported `not_judged` here.
const SELFTEST_LSM_ONLY: [&str; 12] = [
    "hardlink",
    "ld.so",
    "mmap-exec",
    "unix",
    "unix-dgram",
    "bpf",
    "ptrace",
    "signal",
    "mount",
    "chroot",
    "chmod",
    "chown",
];

/// Sockets no fallback hook judges: killed at creation by the kill backend, where this kernel
/// offers them.
const SELFTEST_SOCKETS: [&str; 5] = [
    "raw-socket",
    "sctp-socket",
    "vsock-socket",
    "ping-socket",
    "ia32-raw-socket",
];

/// The table for people: one aligned line per probe, the verdict last.
fn selftest_table_is_aligned(d: &Daemon) {
    let text = corral_tests::selftest::run(d, &[]);
    assert!(
        text.code == Some(0)
            && text.stdout.lines().any(
                |l| l.starts_with("network side doors  tcp-connect   cgroup_sock_addr  closed")
            )
            && text.stdout.lines().any(|l| l.starts_with(
                "tampering           bpf           NONE              not judged on this backend"
            ))
            && text.stdout.lines().any(|l| l
                .starts_with("writes without open truncate      landlock          closed")
                && l.ends_with("(no event: this backend does not report it)"))
            && text
                .stdout
                .contains("every probe this host claims to close is closed"),
        "expected the aligned table with tcp-connect closed, bpf not judged and truncate \
         closed by Landlock without an event\n{}",
        text.describe()
    );
}

#[test]
fn doctor_selftest_reports_the_fallback_classes_closed_and_a_weakened_probe_open() {
    let d = Daemon::with(&[]);
    let (out, results) = corral_tests::selftest::json(&d, &[]);
    assert_eq!(
        out.code,
        Some(0),
        "expected exit 0: every probe this host claims to close is closed\n{}",
        out.describe()
    );
    let wrong = corral_tests::selftest::not(&results, "closed", &SELFTEST_CLOSED_HERE);
    assert!(
        wrong.is_empty(),
        "expected closed: {wrong:?}\n{}",
        out.describe()
    );
    let wrong = corral_tests::selftest::not(&results, "not_judged", &SELFTEST_LSM_ONLY);
    assert!(
        wrong.is_empty(),
        "expected not judged without BPF LSM: {wrong:?}\n{}",
        out.describe()
    );
    // Sockets no fallback hook judges: their creator is killed by the kill backend. A raw
    // socket (root has CAP_NET_RAW) is created here; SCTP, vsock and ping sockets may not be
    // offered by this kernel (or `ping_group_range`), and then the kernel refused them itself.
    let wrong = corral_tests::selftest::not(&results, "closed", &["raw-socket", "ia32-raw-socket"]);
    assert!(
        wrong.is_empty(),
        "expected the raw socket's creator killed, through the 64-bit and the 32-bit calls: {wrong:?}\n{}",
        out.describe()
    );
    for p in SELFTEST_SOCKETS {
        let r = results.get(p).map(|(b, r)| (b.clone(), r.as_str()));
        assert!(
            matches!(&r, Some((b, "closed" | "unavailable")) if *b == json!("kill")),
            "expected {p} closed or unavailable, by the kill backend; got {r:?}\n{}",
            out.describe()
        );
    }
    assert_eq!(
        results.len(),
        SELFTEST_LSM_ONLY.len() + SELFTEST_CLOSED_HERE.len() + SELFTEST_SOCKETS.len(),
        "expected exactly the known probes\n{}",
        out.describe()
    );
    // Each refusal was matched with its event: the daemon's log holds them, by task.
    let events = d.events();
    for (op, backend) in [
        ("open", "landlock"),
        ("exec", "landlock"),
        ("exec", "kill"),
        ("connect", "cgroup_sock_addr"),
        ("sendmsg", "cgroup_sock_addr"),
        ("socket", "kill"),
    ] {
        assert!(
            events
                .iter()
                .any(|e| e["task"] == corral_tests::selftest::TASK
                    && e["op"] == op
                    && e["backend"] == backend
                    && e["decision"] == "denied"),
            "expected a denied {op} event of the selftest task by {backend}\n{}",
            events::tail(&events, 10)
        );
    }

    selftest_table_is_aligned(&d);

    // A weakened run (these probes open an allowed file instead) must be reported OPEN, exit 1.
    let (weak, results) = corral_tests::selftest::json(
        &d,
        &[
            "--selftest-weaken",
            "symlink",
            "--selftest-weaken",
            "tcp-connect",
            "--selftest-weaken",
            "mkdir",
            "--selftest-weaken",
            "tree-clone",
        ],
    );
    assert_eq!(
        weak.code,
        Some(1),
        "expected exit 1 when a probe goes through\n{}",
        weak.describe()
    );
    let wrong = corral_tests::selftest::not(
        &results,
        "open",
        &["symlink", "tcp-connect", "mkdir", "tree-clone"],
    );
    assert!(
        wrong.is_empty(),
        "expected OPEN: {wrong:?}\n{}",
        weak.describe()
    );
    let wrong = corral_tests::selftest::not(
        &results,
        "closed",
        &["direct", "udp-sendto", "new-symlink", "tree-clone-up"],
    );
    assert!(
        wrong.is_empty(),
        "expected the others still closed: {wrong:?}\n{}",
        weak.describe()
    );
}

#[test]
fn a_policy_file_may_not_define_the_reserved_selftest_task() {
    let yaml = Policy::new(corral_tests::selftest::TASK).yaml();
    let Err(failure) = Daemon::try_start(&[("mine.yaml", &yaml)]) else {
        panic!("expected the daemon to refuse a policy named corral-selftest");
    };
    assert!(
        failure.code == Some(EXIT_CONFIG)
            && failure
                .stderr
                .contains("is reserved for `corral doctor --selftest`"),
        "expected exit {EXIT_CONFIG} naming the reserved task, got {:?}: {}",
        failure.code,
        failure.stderr
    );
}

// identity (device + inode) of denied files, judged by the kill observer

#[test]
fn kill_observer_judges_hard_links_to_denied_files_by_identity() {
    let scratch = Scratch::new("ident-kill");
    let blocked = scratch.copy_exe(Path::new(&env::probe()), "denied/blocked");
    let secret = scratch.file("data/secret.txt", "secret\n");
    let plain = scratch.file("data/plain.txt", "fine\n");
    let (copy, pol) = selected_probe(&scratch, "ident-kill");
    let pol = pol
        .read(&scratch.dir_entry("data"))
        .exec(&scratch.dir_entry("bin"))
        .read(&scratch.dir_entry("bin"))
        .deny(&secret)
        .deny(&scratch.dir_entry("denied"));
    // Made by this untagged process before the daemon loads the policy: judged by path only,
    // these would be allowed (data/ is readable, bin/ executable).
    let secret_link = scratch.hard_link(&secret, "data/secret-link.txt");
    let blocked_link = scratch.hard_link(&blocked, "bin/blocked-link");
    let plain_link = scratch.hard_link(&plain, "data/plain-link.txt");
    let d = Daemon::with(&[&pol]);

    let run = |args: &[&str]| {
        process::run({
            let mut c = Command::new(&copy);
            c.args(args);
            c
        })
    };
    let out = run(&["open", &secret_link, "r"]);
    assert!(
        killed(&out) && out.stdout.is_empty(),
        "expected the open of a hard link to a denied file to be killed\n{}",
        out.describe()
    );
    let _ = d.expect_one_event(
        "the killed open of the hard link",
        &[
            ("/op", json!("open")),
            ("/task", json!("ident-kill")),
            ("/backend", json!("kill")),
            ("/decision", json!("denied")),
            ("/reason", json!("denied_identity")),
            ("/target/path", json!(secret_link)),
        ],
    );
    let out = run(&["exec", &blocked_link]);
    assert!(
        killed(&out),
        "expected the exec of a hard link to a denied binary to be killed\n{}",
        out.describe()
    );
    let _ = d.expect_one_event(
        "the killed exec of the hard link",
        &[
            ("/op", json!("exec")),
            ("/task", json!("ident-kill")),
            ("/backend", json!("kill")),
            ("/reason", json!("denied_identity")),
            ("/target/path", json!(blocked_link)),
        ],
    );
    // A second link to an allowed file is not a reason to deny.
    expect_probe(&run(&["open", &plain_link, "r"]), "ok", 0);
}

/// Runs the selected probe `copy` with `args` until `done` says its outcome is the awaited one,
/// or `EVENT_TIMEOUT` passes; returns the last outcome.
fn run_until(copy: &str, args: &[&str], done: impl Fn(&RunOutput) -> bool) -> RunOutput {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let out = process::run({
            let mut c = Command::new(copy);
            c.args(args);
            c
        });
        if done(&out) || Instant::now() > deadline {
            return out;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

#[test]
fn identity_of_files_created_beneath_a_deny_rule_joins_at_the_next_reload() {
    let scratch = Scratch::new("ident-rewalk");
    let _ = scratch.file("secrets/old.txt", "old\n");
    let (copy, base) = selected_probe(&scratch, "ident-rewalk");
    let base = base.read(&scratch.dir_entry("data"));
    let _ = scratch.mkdir("data");
    let pol = base.clone().deny(&scratch.dir_entry("secrets"));
    let d = Daemon::with(&[&pol]);
    // Created after the daemon walked the deny rule, then linked into the readable directory.
    let fresh = scratch.file("secrets/new.txt", "new\n");
    let link = scratch.hard_link(&fresh, "data/new-link.txt");

    d.signal(libc::SIGHUP)
        .unwrap_or_else(|e| panic!("expected to signal the daemon: {e}"));
    let out = run_until(&copy, &["open", &link, "r"], killed);
    assert!(
        killed(&out),
        "expected the open of a link to a file created beneath the deny rule to be killed once the daemon re-walked it (SIGHUP)\n{}",
        out.describe()
    );
    let _ = d.expect_one_event(
        "the killed open of the link, after the re-walk",
        &[
            ("/op", json!("open")),
            ("/task", json!("ident-rewalk")),
            ("/reason", json!("denied_identity")),
            ("/target/path", json!(link)),
        ],
    );

    // A new rule set without the deny rule carries no identity of the old one.
    replace_file(&d.policies(), &pol.file_name(), &base.yaml());
    let out = run_until(&copy, &["open", &link, "r"], |o| !killed(o));
    expect_probe(&out, "ok", 0);
}

// files on a detached mount tree, judged by the kill observer

#[test]
fn kill_observer_refuses_files_on_a_detached_mount_tree() {
    let scratch = Scratch::new("detached-kill");
    let readme = scratch.file("open/readme", "hello\n");
    let tool = scratch.copy_exe(Path::new(&env::probe()), "tools/probe");
    let (copy, pol) = selected_probe(&scratch, "detached-kill");
    let pol = pol
        .read(&scratch.dir_entry("open"))
        .exec(&scratch.dir_entry("tools"))
        .read(&scratch.dir_entry("tools"));
    let d = Daemon::with(&[&pol]);
    let run = |args: &[&str]| {
        process::run({
            let mut c = Command::new(&copy);
            c.args(args);
            c
        })
    };
    let refused = |op: &str| {
        [
            ("/op", json!(op)),
            ("/task", json!("detached-kill")),
            ("/backend", json!("kill")),
            ("/decision", json!("denied")),
            ("/reason", json!("path_unresolved")),
            ("/target/path", Value::Null),
            ("/target/error", json!("EXDEV")),
        ]
    };
    let open_dir = scratch.join("open");
    let tools = scratch.join("tools");

    // An allowed file, opened through a detached clone of its directory: its path there
    // (`/readme`) says nothing of the file, so the open is killed, whatever the rules.
    let out = run(&["tree-open", &open_dir, "readme"]);
    assert!(
        killed(&out) && out.stdout.is_empty(),
        "expected the open of a file on a detached mount tree to be killed\n{}",
        out.describe()
    );
    let _ = d.expect_one_event("the killed open on a detached tree", &refused("open"));
    // So is the exec of an allowed binary there (`execveat` on the tree, no open before it).
    let out = run(&["tree-exec", &tools, "probe", "open", &readme, "r"]);
    assert!(
        killed(&out) && out.stdout.is_empty(),
        "expected the exec of a binary on a detached mount tree to be killed\n{}",
        out.describe()
    );
    let _ = d.expect_one_event("the killed exec on a detached tree", &refused("exec"));

    // The same files through the caller's own mounts are judged by their paths.
    expect_probe(&run(&["open", &readme, "r"]), "ok", 0);
    expect_probe(&run(&["exec", &tool, "open", &readme, "r"]), "ok", 0);
    // Untagged, both work: the refusals are Corral's.
    expect_probe(
        &process::probe(&["tree-exec", &tools, "probe", "open", &readme, "r"]),
        "ok",
        0,
    );
    expect_probe(
        &process::probe(&["tree-open", &open_dir, "readme"]),
        "ok",
        0,
    );
}

/// The kill backend's dentry walk stops, like the kernel's `d_path`, where a dentry is its own
/// parent without being its mount's root: a file no path from the caller's root reaches. Two
/// ways there by `open_by_handle_at`, both on this host's disk file system: a disconnected
/// dentry (the handle decoded after the file's dentry left the cache: `d_obtain_alias` gives an
/// anonymous root dentry) and a file outside a bind mount's subtree (the handle decoded on the
/// bind mount). Both opens are killed (`path_unresolved`, `ESTALE`), although the policy reads
/// `/`; the same handles untagged, and the same files by path, work as their rules say.
#[test]
fn kill_observer_refuses_files_opened_by_handle_outside_every_path() {
    let scratch = Scratch::new("escaped-kill");
    let key = scratch.file("vault/key", "s3cret\n");
    let readme = scratch.file("public/readme", "hello\n");
    let view = scratch.mkdir("view");
    let _bind = corral_tests::mounts::BindMount::new(&scratch.join("public"), &view);
    let (copy, pol) = selected_probe(&scratch, "escaped-kill");
    let pol = pol.read("/").deny(&scratch.dir_entry("vault"));
    let d = Daemon::with(&[&pol]);
    let run = |args: &[&str]| {
        process::run({
            let mut c = Command::new(&copy);
            c.args(args);
            c
        })
    };
    let refused = |pid: u32| {
        [
            ("/process/pid", json!(pid)),
            ("/op", json!("open")),
            ("/task", json!("escaped-kill")),
            ("/backend", json!("kill")),
            ("/decision", json!("denied")),
            ("/reason", json!("path_unresolved")),
            ("/target/path", Value::Null),
            ("/target/error", json!("ESTALE")),
        ]
    };

    // Outside the bind mount's subtree.
    expect_probe(&process::probe(&["handle-open-at", &view, &key]), "ok", 0);
    let out = run(&["handle-open-at", &view, &key]);
    assert!(
        killed(&out) && out.stdout.is_empty(),
        "expected the open by handle outside the bind mount to be killed\n{}",
        out.describe()
    );
    let _ = d.expect_one_event("the killed open outside the bind mount", &refused(out.pid));

    // Disconnected: the handle is taken, then the dentry cache dropped (nothing holds the key's
    // dentry), so decoding the handle on the scratch's own mount finds no dentry to connect.
    let handle = process::probe(&["name-to-handle", &key]);
    assert!(
        handle.code == Some(0) && handle.first_line().contains(':'),
        "expected a handle TYPE:HEX for {key}\n{}",
        handle.describe()
    );
    let handle = handle.first_line().to_owned();
    std::fs::write("/proc/sys/vm/drop_caches", "2")
        .unwrap_or_else(|e| panic!("expected to drop the dentry cache: {e}"));
    let out = run(&[
        "handle-open-at",
        scratch.path().to_str().unwrap_or("/"),
        &handle,
    ]);
    assert!(
        killed(&out) && out.stdout.is_empty(),
        "expected the open by handle of a disconnected dentry to be killed\n{}",
        out.describe()
    );
    let _ = d.expect_one_event(
        "the killed open of a disconnected dentry",
        &refused(out.pid),
    );

    // What the rules allow still works; the vault by path stays denied by its rule.
    expect_probe(
        &run(&["handle-open-at", &view, &format!("{view}/readme")]),
        "ok",
        0,
    );
    expect_probe(&run(&["handle-open", &readme]), "ok", 0);
    expect_probe(&run(&["open", "/", "r"]), "ok", 0);
    let out = run(&["open", &key, "r"]);
    assert!(
        killed(&out),
        "expected the open of the denied key by path to be killed\n{}",
        out.describe()
    );
}

/// Landlock walks from a file outside a bind mount's subtree, opened by handle decoded on that
/// bind mount, up to the bind mount's root, and allows what that directory allows (seen on this
/// host's 6.18): the vault's key, refused by path, opens. The kill backend judges every open by
/// handle of a Landlock-confined process again by the task's rules, where no path reaches the
/// file: killed (`path_unresolved`, `ESTALE`). Opens by handle inside the subtree still work.
#[test]
fn landlock_opens_by_handle_outside_a_bind_mount_are_killed() {
    let scratch = Scratch::new("ll-escaped");
    let key = scratch.file("vault/key", "s3cret\n");
    let _ = scratch.file("public/readme", "hello\n");
    let view = scratch.mkdir("view");
    let _bind = corral_tests::mounts::BindMount::new(&scratch.join("public"), &view);
    let pol = Policy::probe_only("ll-escaped")
        .read("/")
        .deny(&scratch.dir_entry("vault"));
    let d = Daemon::with(&[&pol]);

    let out = d.run_accepting_unenforced("ll-escaped", &[&probe(), "open", &key, "r"]);
    expect_probe(&out, "err EACCES 13", 1);
    let out = d.run_accepting_unenforced(
        "ll-escaped",
        &[&probe(), "handle-open-at", &view, &format!("{view}/readme")],
    );
    expect_probe(&out, "ok", 0);
    let out = d.run_accepting_unenforced("ll-escaped", &[&probe(), "handle-open-at", &view, &key]);
    assert!(
        killed(&out) && out.stdout.is_empty(),
        "expected the open by handle outside the bind mount to be killed\n{}",
        out.describe()
    );
    let _ = d.expect_one_event(
        "the killed open by handle outside the bind mount",
        &[
            ("/process/pid", json!(out.pid)),
            ("/op", json!("open")),
            ("/task", json!("ll-escaped")),
            ("/backend", json!("kill")),
            ("/decision", json!("denied")),
            ("/reason", json!("path_unresolved")),
            ("/target/error", json!("ESTALE")),
        ],
    );
}

/// Every program the daemon loads where BPF LSM is refused (tagging, the kill backend, cgroup
/// `sock_addr`) costs the verifier a fifth of its limit at most.
#[test]
fn every_program_verifies_far_below_the_verifier_limit() {
    let d = Daemon::with(&[&Policy::probe_only("verifier-budget")]);
    assert_eq!(
        d.status()["open_decision_cache"]["state"],
        json!("not_used"),
        "expected no open-decision cache without BPF LSM"
    );
    let programs: Vec<&str> = TAGGING_HOOKS
        .iter()
        .chain(&KILL_HOOKS)
        .chain(&SOCK_ADDR_HOOKS)
        .map(|h| h.program)
        .collect();
    assert_eq!(
        programs.len(),
        11,
        "expected the daemon's plan to hold 11 programs"
    );
    corral_tests::verifier::assert_within_budget(&programs);
}
