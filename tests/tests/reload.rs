//! Policies that change while agents run, natively on this host (cgroup `sock_addr` programs
//! judge connects for real here): atomic reload under load, invalid edits, removal, `ConfigMap`
//! symlink swaps, and the live mode switch.
//!
//! Needs root, `$CORRAL_BIN`, `$CORRAL_PROBE` and `$CORRAL_POLICIES`. Run with `cargo xtask test`.

use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use corral_tests::daemon::{ACCEPT_UNENFORCED, Launch, SharedPins};
use corral_tests::process::Later;
use corral_tests::reload::{ConfigMapDir, replace_file};
use corral_tests::{Daemon, EVENT_TIMEOUT, Policy, RunOutput, Scratch, Value, env, json, process};

/// UDP ports: always allowed, never allowed, and one that only version 1 / version 2 allows.
const ALWAYS: u16 = 41_001;
const NEVER: u16 = 41_002;
const ONLY_V1: u16 = 41_003;
const ONLY_V2: u16 = 41_004;

fn version(task: &str, extra: u16) -> Policy {
    Policy::probe_only(task).connect("127.0.0.1/32", &[&ALWAYS.to_string(), &extra.to_string()])
}

fn policy_value(d: &Daemon, key: &str) -> Value {
    d.status()["policy"][key].clone()
}

fn generation(d: &Daemon) -> u64 {
    policy_value(d, "generation")
        .as_u64()
        .unwrap_or_else(|| panic!("expected status.policy.generation, got {}", d.status()))
}

/// Waits until the daemon's policy generation passes `past`.
fn wait_generation(d: &Daemon, past: u64) -> u64 {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let g = generation(d);
        if g > past {
            return g;
        }
        assert!(
            Instant::now() < deadline,
            "expected a reload (generation past {past}) within {EVENT_TIMEOUT:?}; status: {}\nstderr:\n{}",
            d.status(),
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// `corral run --accept-unenforced --task TASK -- argv...`, started now, collected later.
fn later(d: &Daemon, task: &str, argv: &[&str]) -> Later {
    Later::start(d.run_command_with(task, &[ACCEPT_UNENFORCED], argv))
}

/// `corral run --accept-unenforced --task TASK -- $CORRAL_PROBE udp connect 127.0.0.1 PORT`.
fn udp(d: &Daemon, task: &str, port: u16) -> RunOutput {
    d.run_accepting_unenforced(
        task,
        &[
            &env::probe(),
            "connect",
            "udp",
            "127.0.0.1",
            &port.to_string(),
        ],
    )
}

/// Policy switches under the looping process (each one waited for until the kernel has it).
const FLIPS: u64 = 60;

#[test]
fn reload_under_load_never_gives_a_wrong_decision() {
    let v1 = version("churn", ONLY_V1).yaml();
    let v2 = version("churn", ONLY_V2).yaml();
    let d = Daemon::start(&[("churn.yaml", &v1)]);
    let before = generation(&d);
    // A confined process judges an always-allowed and a never-allowed connect, again and again,
    // while the policy flips between two versions that both allow the first and refuse the
    // second.
    let looper = later(
        &d,
        "churn",
        &[
            &env::probe(),
            "loop",
            "12000",
            "udp",
            "127.0.0.1",
            &ALWAYS.to_string(),
            &NEVER.to_string(),
        ],
    );
    // Each version is written, then the test waits until the kernel has it: every flip is a
    // real switch of the rule set under the looping process.
    let mut seen = before;
    for i in 0..FLIPS {
        replace_file(
            &d.policies(),
            "churn.yaml",
            if i % 2 == 0 { &v2 } else { &v1 },
        );
        seen = wait_generation(&d, seen);
    }
    let out = looper.wait();
    assert!(
        out.code == Some(0) && out.first_line() == "ok",
        "expected zero wrong decisions while the policy was switched {FLIPS} times\n{}",
        out.describe()
    );
    let after = generation(&d);
    assert!(
        after >= before + FLIPS,
        "expected every switch to reach the kernel (generation {before} -> {after})"
    );
    // The last version written (v1) is what the kernel enforces now.
    d.expect_ok(&udp(&d, "churn", ONLY_V1));
    d.expect_errno(&udp(&d, "churn", ONLY_V2), "EPERM");
}

#[test]
fn an_invalid_edit_keeps_the_last_good_policy_and_is_reported() {
    let good = version("edit", ONLY_V1).yaml();
    let d = Daemon::start(&[("edit.yaml", &good)]);
    let g = generation(&d);
    let broken = good.replace("apiVersion", "apiVersoin");
    replace_file(&d.policies(), "edit.yaml", &broken);
    let ev = d.wait_events(|e| e["kind"] == "policy_rejected", EVENT_TIMEOUT);
    let error = ev[0]["error"].as_str().unwrap_or_default().to_owned();
    let file = d.policies().join("edit.yaml").display().to_string();
    assert!(
        error.starts_with(&format!("{file}:1:1: ")) && error.contains("apiVersoin"),
        "expected the rejection to name {file}:1:1 and the bad field, got {error:?}"
    );
    assert_eq!(
        generation(&d),
        g,
        "an invalid edit must not change what the kernel enforces"
    );
    assert!(
        policy_value(&d, "reloads")["rejected"].as_u64() >= Some(1),
        "expected the rejected reload to be counted, got {}",
        d.status()["policy"]
    );
    d.expect_ok(&udp(&d, "edit", ONLY_V1));
    d.expect_errno(&udp(&d, "edit", NEVER), "EPERM");

    // Fixing the file applies it.
    replace_file(&d.policies(), "edit.yaml", &version("edit", ONLY_V2).yaml());
    let _ = wait_generation(&d, g);
    d.expect_ok(&udp(&d, "edit", ONLY_V2));
    d.expect_errno(&udp(&d, "edit", ONLY_V1), "EPERM");
}

#[test]
fn removing_a_policy_denies_its_running_processes_everything() {
    let d = Daemon::start(&[("gone.yaml", &version("gone", ONLY_V1).yaml())]);
    let g = generation(&d);
    // Confined now, acting later: after its policy is gone.
    let late = later(
        &d,
        "gone",
        &[
            &env::probe(),
            "-D",
            "2500",
            "connect",
            "udp",
            "127.0.0.1",
            &ALWAYS.to_string(),
        ],
    );
    std::fs::remove_file(d.policies().join("gone.yaml"))
        .unwrap_or_else(|e| panic!("expected to remove the policy: {e}"));
    let _ = wait_generation(&d, g);
    let out = late.wait();
    assert_eq!(
        out.first_line(),
        "err EPERM 1",
        "expected a process of a removed task to be refused even what its policy allowed (fail closed)\n{}",
        out.describe()
    );
    let _ = d.wait_events(
        |e| e["reason"] == "unknown_task" && e["process"]["tgid"] == json!(out.pid),
        EVENT_TIMEOUT,
    );
    let status = d.status();
    assert!(
        status["tasks"]
            .as_array()
            .is_some_and(|t| t.iter().all(|t| t["name"] == corral_tests::selftest::TASK)),
        "expected no task left but the built-in selftest task, got {}",
        status["tasks"]
    );
}

#[test]
fn a_configmap_symlink_swap_reloads() {
    let scratch = Scratch::new("configmap");
    let dir = Path::new(scratch.path()).join("policies");
    std::fs::create_dir(&dir)
        .unwrap_or_else(|e| panic!("expected to create {}: {e}", dir.display()));
    let v1 = version("cm", ONLY_V1).yaml();
    let v2 = version("cm", ONLY_V2).yaml();
    let mut cm = ConfigMapDir::new(&dir, &[("cm.yaml", &v1)]);
    let d = Daemon::launch(&Launch {
        policy_dir: Some(&dir),
        ..Launch::default()
    });
    d.expect_ok(&udp(&d, "cm", ONLY_V1));
    let g = generation(&d);
    cm.publish(&[("cm.yaml", &v2)]);
    let _ = wait_generation(&d, g);
    d.expect_ok(&udp(&d, "cm", ONLY_V2));
    d.expect_errno(&udp(&d, "cm", ONLY_V1), "EPERM");
}

#[test]
fn the_mode_switch_reaches_running_processes() {
    let d = Daemon::start(&[("sw.yaml", &version("sw", ONLY_V1).yaml())]);
    let corral = |args: &[&str]| {
        let mut cmd = std::process::Command::new(env::corral_bin());
        cmd.args(["policy", "mode"])
            .args(args)
            .args(["--socket", &d.socket_str()]);
        process::run(cmd)
    };
    // Running before the switch, acting after it.
    let waiting = later(
        &d,
        "sw",
        &[
            &env::probe(),
            "-D",
            "1500",
            "connect",
            "udp",
            "127.0.0.1",
            &NEVER.to_string(),
        ],
    );
    let out = corral(&["sw", "audit"]);
    assert!(
        out.code == Some(0) && out.stdout.contains("task sw is now in audit mode"),
        "expected `corral policy mode sw audit` to succeed\n{}",
        out.describe()
    );
    let audited = waiting.wait();
    d.expect_ok(&audited);
    let _ = d.wait_events(
        |e| e["decision"] == "audited" && e["process"]["tgid"] == json!(audited.pid),
        EVENT_TIMEOUT,
    );
    let out = corral(&["sw", "enforce"]);
    assert_eq!(
        out.code,
        Some(0),
        "expected the switch back to work\n{}",
        out.describe()
    );
    d.expect_errno(&udp(&d, "sw", NEVER), "EPERM");
    let unknown = corral(&["nope", "audit"]);
    assert_eq!(
        unknown.code,
        Some(77),
        "expected an unknown task to be refused with 77\n{}",
        unknown.describe()
    );
    assert!(
        unknown.stderr.starts_with("corral: ") && unknown.stderr.contains("nope"),
        "expected one line naming the task\n{}",
        unknown.describe()
    );
}

#[test]
fn only_root_outside_any_task_may_switch_modes() {
    let d = Daemon::start(&[("sw.yaml", &version("sw", ONLY_V1).yaml())]);
    // Only root may switch modes.
    let mut as_nobody = std::process::Command::new(env::corral_bin());
    as_nobody
        .args(["policy", "mode", "sw", "audit", "--socket", &d.socket_str()])
        .uid(65_534);
    let nobody = process::run(as_nobody);
    assert!(
        nobody.code == Some(77) && nobody.stderr.contains("only root"),
        "expected a non-root caller to be refused with 77\n{}",
        nobody.describe()
    );
    // A confined process (even root) may not switch its own task to audit.
    let corral_bin = env::corral_bin().display().to_string();
    let pol = version("sw-self", ONLY_V1)
        .exec(&corral_bin)
        .read(&corral_bin)
        .read("/usr/lib/")
        .read("/etc/");
    replace_file(&d.policies(), "sw-self.yaml", &pol.yaml());
    let deadline = Instant::now() + EVENT_TIMEOUT;
    while !d.status()["tasks"]
        .as_array()
        .is_some_and(|t| t.iter().any(|t| t["name"] == "sw-self"))
    {
        assert!(
            Instant::now() < deadline,
            "expected task sw-self to be loaded"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let confined = d.run_accepting_unenforced(
        "sw-self",
        &[
            &corral_bin,
            "policy",
            "mode",
            "sw-self",
            "audit",
            "--socket",
            &d.socket_str(),
        ],
    );
    assert!(
        confined.code == Some(77)
            && confined
                .stderr
                .contains("a confined process may not change"),
        "expected a confined process to be refused the mode switch with 77\n{}",
        confined.describe()
    );
}

#[test]
fn a_killed_daemon_leaves_enforcement_running_and_a_restarted_one_adopts_it() {
    let pins = SharedPins::new("restart");
    let yaml = version("restart", ONLY_V1).yaml();
    let files = [("restart.yaml", yaml.as_str())];
    let launch = Launch {
        policies: &files,
        pin_dir: Some(&pins.dir),
        ..Launch::default()
    };
    let mut first = Daemon::launch(&launch);
    // Judges an allowed and a refused connect again and again, across the kill and the restart.
    let looper = later(
        &first,
        "restart",
        &[
            &env::probe(),
            "loop",
            "20000",
            "udp",
            "127.0.0.1",
            &ALWAYS.to_string(),
            &NEVER.to_string(),
        ],
    );
    // Confined now, acting at 2.5 s: while no daemon runs.
    let orphan = later(
        &first,
        "restart",
        &[
            &env::probe(),
            "-D",
            "2500",
            "connect",
            "udp",
            "127.0.0.1",
            &NEVER.to_string(),
        ],
    );
    wait_processes(&first, "restart", 2);
    first.kill();
    std::thread::sleep(Duration::from_millis(1500));
    let second = Daemon::launch(&launch);
    let status = second.status();
    let task = status["tasks"]
        .as_array()
        .and_then(|t| t.iter().find(|t| t["name"] == "restart").cloned())
        .unwrap_or_else(|| panic!("expected task restart after the restart, got {status}"));
    assert!(
        task["processes"].as_u64() >= Some(1),
        "expected the new daemon to adopt the confined loop process, got {task}; counters {}; loop pid {} alive: {}; stderr:\n{}",
        status["counters"],
        looper.pid(),
        std::path::Path::new(&format!("/proc/{}", looper.pid())).exists(),
        second.stderr()
    );
    let out = looper.wait();
    assert!(
        out.code == Some(0) && out.first_line() == "ok",
        "expected zero wrong decisions across a kill -9 and a restart of the daemon\n{}",
        out.describe()
    );
    let orphan = orphan.wait();
    assert_eq!(
        orphan.first_line(),
        "err EPERM 1",
        "expected a refusal while no daemon ran\n{}",
        orphan.describe()
    );
    // Refusals made while no daemon runs are queued in the kernel and reach the next daemon
    // (the loop above floods the queue; this one is alone).
    let mut second = second;
    let queued = later(
        &second,
        "restart",
        &[
            &env::probe(),
            "-D",
            "1000",
            "connect",
            "udp",
            "127.0.0.1",
            &NEVER.to_string(),
        ],
    );
    wait_processes(&second, "restart", 1);
    second.kill();
    let queued = queued.wait();
    second.expect_errno(&queued, "EPERM");
    let third = Daemon::launch(&launch);
    let _ = third.wait_events(
        |e| e["process"]["tgid"] == json!(queued.pid) && e["decision"] == "denied",
        EVENT_TIMEOUT,
    );
    expect_unload_refused_while_alive(&third, &pins);
}

/// Waits until `task` has `n` confined processes.
fn wait_processes(d: &Daemon, task: &str, n: u64) {
    let deadline = Instant::now() + EVENT_TIMEOUT;
    loop {
        let st = d.status();
        let count = st["tasks"]
            .as_array()
            .and_then(|t| t.iter().find(|t| t["name"] == task))
            .and_then(|t| t["processes"].as_u64())
            .unwrap_or(0);
        if count >= n {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "expected {n} processes in task {task}, got {count}: {st}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}

fn expect_unload_refused_while_alive(d: &Daemon, pins: &SharedPins) {
    let mut cmd = std::process::Command::new(env::corral_bin());
    cmd.args(["unload", "--pin-dir"])
        .arg(&pins.dir)
        .args(["--socket", &d.socket_str()]);
    let out = process::run(cmd);
    assert!(
        out.code == Some(69) && out.stderr.contains("is running"),
        "expected `corral unload` to refuse while the daemon runs\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// sub-tasks (narrowing only) and task instances

/// An orchestrator that may run `corral run` (and the probe), and hand `summary` to children.
fn orchestrator() -> Policy {
    let corral = env::corral_bin().display().to_string();
    version("orchestrator", ONLY_V1)
        .exec(&corral)
        .read(&corral)
        .read("/usr/lib/")
        .read("/etc/")
        .subtask("summary")
}

/// Narrower than the orchestrator: only the always-allowed port.
fn summary() -> Policy {
    Policy::probe_only("summary").connect("127.0.0.1/32", &[&ALWAYS.to_string()])
}

/// `corral run --task PARENT -- corral run --task CHILD -- probe connect udp 127.0.0.1 PORT`.
fn nested(d: &Daemon, parent: &str, child: &str, port: u16) -> RunOutput {
    let corral = env::corral_bin().display().to_string();
    d.run_accepting_unenforced(
        parent,
        &[
            &corral,
            "run",
            "--task",
            child,
            "--socket",
            &d.socket_str(),
            ACCEPT_UNENFORCED,
            "--",
            &env::probe(),
            "connect",
            "udp",
            "127.0.0.1",
            &port.to_string(),
        ],
    )
}

#[test]
fn a_subtask_is_narrower_and_events_name_the_chain() {
    let d = Daemon::with(&[&orchestrator(), &summary()]);
    // The orchestrator itself may reach ONLY_V1; its summary child may not.
    d.expect_ok(&udp(&d, "orchestrator", ONLY_V1));
    d.expect_ok(&nested(&d, "orchestrator", "summary", ALWAYS));
    let refused = nested(&d, "orchestrator", "summary", ONLY_V1);
    d.expect_errno(&refused, "EPERM");
    let ev = d.wait_events(
        |e| {
            e["process"]["tgid"] == json!(refused.pid)
                && e["decision"] == "denied"
                && e["op"] == "connect"
        },
        EVENT_TIMEOUT,
    );
    let ev = &ev[0];
    assert!(
        ev["task"] == "summary"
            && ev["parent_tasks"] == json!(["orchestrator"])
            && ev["instance"].as_str().is_some_and(|u| u.len() == 36),
        "expected the event to name task summary, parent_tasks [orchestrator] and an instance UUID, got {ev}"
    );
}

#[test]
fn a_transition_not_listed_in_subtasks_is_refused() {
    let other = Policy::probe_only("other").connect("127.0.0.1/32", &[&ALWAYS.to_string()]);
    let d = Daemon::with(&[&orchestrator(), &summary(), &other]);
    let out = nested(&d, "orchestrator", "other", ALWAYS);
    assert!(
        out.code == Some(77) && out.stderr.contains("may not hand `other`"),
        "expected the inner corral run to be refused with 77 (other is not a sub-task of orchestrator)\n{}",
        out.describe()
    );
}

#[test]
fn a_subtask_wider_than_its_parent_is_refused_at_load() {
    let wide = Policy::probe_only("summary").connect("127.0.0.1/32", &[&NEVER.to_string()]);
    let files = [
        ("orchestrator.yaml", orchestrator().yaml()),
        ("summary.yaml", wide.yaml()),
    ];
    let refs: Vec<(&str, &str)> = files.iter().map(|(n, y)| (*n, y.as_str())).collect();
    let Err(failure) = Daemon::try_start(&refs) else {
        panic!("expected the daemon to refuse a sub-task wider than its parent");
    };
    assert!(
        failure.code == Some(64)
            && failure
                .stderr
                .contains("sub-task \"summary\" of task \"orchestrator\"")
            && failure.stderr.contains("is wider than its parent"),
        "expected exit 64 naming the sub-task and why, got {failure:?}"
    );
}

#[test]
fn an_instance_expires_after_its_ttl() {
    let d = Daemon::start(&[("ttl.yaml", &version("ttl", ONLY_V1).yaml())]);
    let late = Later::start(d.run_command_with(
        "ttl",
        &[ACCEPT_UNENFORCED, "--ttl", "2s"],
        &[
            &env::probe(),
            "-D",
            "3500",
            "connect",
            "udp",
            "127.0.0.1",
            &ALWAYS.to_string(),
        ],
    ));
    let out = late.wait();
    assert_eq!(
        out.first_line(),
        "err EPERM 1",
        "expected an allowed connect to be refused once the instance's 2 s TTL passed\n{}",
        out.describe()
    );
    let _ = d.wait_events(
        |e| e["process"]["tgid"] == json!(out.pid) && e["reason"] == "instance_expired",
        EVENT_TIMEOUT,
    );
    let _ = d.wait_events(
        |e| e["kind"] == "instance_expired" && e["task"] == "ttl",
        EVENT_TIMEOUT,
    );
    // A fresh instance of the same task is not expired.
    d.expect_ok(&udp(&d, "ttl", ALWAYS));
}

#[test]
fn sigterm_drains_what_the_kernel_queued_before_it_exits() {
    let mut d = Daemon::start(&[("drain.yaml", &version("drain", ONLY_V1).yaml())]);
    // Confined now, refused in 1.5 s: while the daemon is stopped and reads nothing.
    let waiting: Vec<Later> = (0..5)
        .map(|_| {
            later(
                &d,
                "drain",
                &[
                    &env::probe(),
                    "-D",
                    "1500",
                    "connect",
                    "udp",
                    "127.0.0.1",
                    &NEVER.to_string(),
                ],
            )
        })
        .collect();
    wait_processes(&d, "drain", 5);
    let refused: Vec<RunOutput> = {
        let _frozen = d.frozen();
        let outs: Vec<RunOutput> = waiting.into_iter().map(Later::wait).collect();
        for out in &outs {
            d.expect_errno(out, "EPERM");
        }
        // SIGTERM arrives while it is stopped: when it resumes (dropping `_frozen`), the stop
        // and the queued events are both pending.
        // SAFETY: signalling the daemon, our child, by pid.
        unsafe { libc::kill(libc::pid_t::try_from(d.pid()).unwrap_or(0), libc::SIGTERM) };
        outs
    };
    let code = d.terminate();
    assert_eq!(
        code,
        Some(0),
        "expected a clean exit on SIGTERM\n{}",
        d.stderr()
    );
    let events = d.events();
    for out in &refused {
        assert!(
            events
                .iter()
                .any(|e| e["process"]["tgid"] == json!(out.pid) && e["decision"] == "denied"),
            "expected the refusal of pid {} (queued while the daemon was stopped) in the sink after SIGTERM; got {} events",
            out.pid,
            events.len()
        );
    }
}

#[test]
fn the_allowed_events_setting_is_pinned_and_outlives_a_killed_daemon() {
    let task = "allowed-pin";
    let pins = SharedPins::new("allowed-pin");
    let config = Scratch::new("allowed-pin");
    let all = config.file("all.toml", "[events]\nallowed = \"all\"\n");
    let none = config.file("none.toml", "[events]\nallowed = \"none\"\n");
    let yaml = version(task, ONLY_V1).yaml();
    let files = [("allowed-pin.yaml", yaml.as_str())];
    let launch = |config: &str| {
        Daemon::launch(&Launch {
            policies: &files,
            pin_dir: Some(&pins.dir),
            env: &[("CORRAL_CONFIG", config)],
            ..Launch::default()
        })
    };
    let allowed_connect = |pid: u32| {
        move |e: &Value| {
            e["process"]["tgid"] == json!(pid) && e["op"] == "connect" && e["decision"] == "allowed"
        }
    };
    let mut first = launch(&all);
    // Confined now, connecting (allowed) in 1 s: while no daemon runs.
    let orphan = later(
        &first,
        task,
        &[
            &env::probe(),
            "-D",
            "1000",
            "connect",
            "udp",
            "127.0.0.1",
            &ALWAYS.to_string(),
        ],
    );
    wait_processes(&first, task, 1);
    first.kill();
    let orphan = orphan.wait();
    assert!(
        orphan.code == Some(0) && orphan.first_line() == "ok",
        "expected the allowed connect to go through while no daemon ran\n{}",
        orphan.describe()
    );
    // The kernel kept the killed daemon's `allowed = "all"`: the connect was queued as an
    // allowed event, which the next daemon delivers.
    let second = launch(&none);
    let _ = second.wait_events(allowed_connect(orphan.pid), EVENT_TIMEOUT);
    // The new daemon's own setting applies from its start.
    let out = udp(&second, task, ALWAYS);
    assert!(
        out.code == Some(0) && out.first_line() == "ok",
        "expected the allowed connect to go through\n{}",
        out.describe()
    );
    std::thread::sleep(Duration::from_secs(1));
    assert!(
        !second.events().iter().any(allowed_connect(out.pid)),
        "expected no allowed event once the restarted daemon set allowed = \"none\""
    );
}
