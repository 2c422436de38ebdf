//! Operations tests, natively on this host (cgroup `sock_addr` programs refuse the connects of
//! confined processes): the rotated event file loses nothing under a burst, a slow live
//! subscriber neither slows the others nor loses events silently, and the Prometheus endpoint
//! reports a scripted scenario. Run by `cargo xtask test` as root.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::process::{Command, Stdio};
use std::sync::{
    Arc,
    atomic::{AtomicU64, Ordering},
};
use std::time::{Duration, Instant};

use corral_tests::ops::{
    OpsDaemon, burst_policy, count, event_files, expect_count, expect_sample, free_port, lines_of,
    refused_burst,
};
use corral_tests::{EVENT_TIMEOUT, Policy, Value, env};

/// Polls `done` until it holds or `limit` passes; panics with `what` and `detail()`.
fn wait_until(what: &str, limit: Duration, done: impl Fn() -> bool, detail: impl Fn() -> String) {
    let deadline = Instant::now() + limit;
    while !done() {
        assert!(
            Instant::now() < deadline,
            "expected {what} within {limit:?}; {}",
            detail()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn events_path(d: &OpsDaemon) -> std::path::PathBuf {
    d.daemon.dir().join("events.jsonl")
}

fn connect_lines(lines: &[String], task: &str) -> usize {
    lines
        .iter()
        .filter(|l| {
            serde_json::from_str::<Value>(l).is_ok_and(|v| {
                v["op"] == "connect" && v["task"] == task && v["decision"] == "denied"
            })
        })
        .count()
}

#[test]
fn rotation_loses_no_event_under_a_burst() {
    const BURST: u32 = 600;
    const ROTATE: u64 = 8192;
    let task = "ops-rotate";
    let d = OpsDaemon::start(
        &[&burst_policy(task, free_port())],
        &format!("[events]\nrotate_bytes = {ROTATE}\nkeep = 10000\n"),
    );
    let path = events_path(&d);
    refused_burst(&d.daemon, task, BURST, free_port());
    let count = || lines_of(&event_files(&path)).len();
    wait_until(
        &format!("{BURST} event lines across the rotated files"),
        EVENT_TIMEOUT,
        || count() >= BURST as usize,
        || format!("got {}; stderr:\n{}", count(), d.daemon.stderr()),
    );
    std::thread::sleep(Duration::from_secs(1));
    let files = event_files(&path);
    let lines = lines_of(&files);
    assert!(
        files.len() >= 10,
        "expected the burst to rotate the file many times, got {} file(s)",
        files.len()
    );
    for f in &files {
        let size = std::fs::metadata(f).map_or(0, |m| m.len());
        assert!(
            size <= ROTATE,
            "expected {} within {ROTATE} bytes, got {size}",
            f.display()
        );
    }
    for l in &lines {
        assert!(
            serde_json::from_str::<Value>(l).is_ok(),
            "expected every line to be one whole JSON event, got: {l}"
        );
    }
    let others: Vec<&String> = lines
        .iter()
        .filter(|l| !l.contains("\"op\":\"connect\""))
        .collect();
    assert_eq!(
        (lines.len() - others.len(), connect_lines(&lines, task)),
        (BURST as usize, BURST as usize),
        "expected exactly one line per refused connect across {} files (other lines: {others:?})",
        files.len()
    );
    assert_eq!(
        d.daemon.counter("connect", "denied"),
        u64::from(BURST),
        "the kernel counted what went in"
    );
    let dropped = d.daemon.status()["counters"]["events_dropped"].as_u64();
    assert_eq!(dropped, Some(0), "no event may be lost before the daemon");
}

/// Subscribes on the raw socket and reads only the answer line: a client that then stops
/// reading.
fn stalled_subscriber(socket: &Path) -> UnixStream {
    let mut s = UnixStream::connect(socket)
        .unwrap_or_else(|e| panic!("expected to reach {}: {e}", socket.display()));
    // Connects only: a confined Rust program also meets Landlock refusals (glibc reads
    // /proc/self/maps at start), reported as open events, which the counts below leave out.
    s.write_all(b"{\"op\":\"subscribe\",\"follow\":true,\"ops\":[\"connect\"]}\n")
        .unwrap_or_else(|e| panic!("expected to send the subscription: {e}"));
    let mut header = Vec::new();
    let mut byte = [0u8; 1];
    while byte[0] != b'\n' {
        s.read_exact(&mut byte)
            .unwrap_or_else(|e| panic!("expected the subscription's answer: {e}"));
        header.push(byte[0]);
    }
    let text = String::from_utf8_lossy(&header);
    assert!(
        text.starts_with("{\"result\":\"subscribed\""),
        "expected a subscribed answer, got {text}"
    );
    s
}

/// `corral events --follow --json`, read by a thread that counts events and drop notices.
struct FastSubscriber {
    child: std::process::Child,
    events: Arc<AtomicU64>,
    dropped: Arc<AtomicU64>,
    reader: Option<std::thread::JoinHandle<()>>,
}

impl FastSubscriber {
    fn start(socket: &Path) -> Self {
        let mut child = Command::new(env::corral_bin())
            .args([
                "events", "--follow", "--json", "--op", "connect", "--socket",
            ])
            .arg(socket)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("expected to start corral events: {e}"));
        let out = child
            .stdout
            .take()
            .unwrap_or_else(|| panic!("expected corral events' stdout piped"));
        let events = Arc::new(AtomicU64::new(0));
        let dropped = Arc::new(AtomicU64::new(0));
        let (e, dr) = (Arc::clone(&events), Arc::clone(&dropped));
        let reader = std::thread::spawn(move || {
            for line in BufReader::new(out).lines().map_while(Result::ok) {
                if line.starts_with("{\"dropped\"") {
                    dr.fetch_add(1, Ordering::Relaxed);
                } else {
                    e.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
        Self {
            child,
            events,
            dropped,
            reader: Some(reader),
        }
    }

    fn events(&self) -> u64 {
        self.events.load(Ordering::Relaxed)
    }
}

impl Drop for FastSubscriber {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if let Some(r) = self.reader.take() {
            let _ = r.join();
        }
    }
}

/// Reads what a stalled subscriber was kept: (events, events announced as dropped).
fn drain(mut slow: UnixStream) -> (u64, u64) {
    let _ = slow.set_read_timeout(Some(Duration::from_secs(2)));
    let mut received = Vec::new();
    let _ = slow.read_to_end(&mut received);
    let (mut events, mut dropped) = (0, 0);
    for line in String::from_utf8_lossy(&received).lines() {
        let v: Value = serde_json::from_str(line)
            .unwrap_or_else(|e| panic!("expected JSON lines on the slow stream: {e}: {line}"));
        match v.get("dropped").and_then(Value::as_u64) {
            Some(n) => dropped += n,
            None => events += 1,
        }
    }
    (events, dropped)
}

#[test]
fn slow_subscriber_does_not_slow_the_others_and_its_drops_are_counted() {
    const BURST: u32 = 600;
    const BURSTS: u32 = 5;
    let task = "ops-slow";
    let d = OpsDaemon::start(
        &[&burst_policy(task, free_port())],
        "[events]\nsubscriber_queue = 512\n",
    );
    let socket = d.daemon.socket().to_path_buf();
    let slow = stalled_subscriber(&socket);
    let fast = FastSubscriber::start(&socket);
    wait_until(
        "both subscribers registered",
        EVENT_TIMEOUT,
        || count(&d.scrape(), "corral_event_subscribers", &[]) == Some(2),
        || format!("{:?}", count(&d.scrape(), "corral_event_subscribers", &[])),
    );

    for round in 1..=BURSTS {
        refused_burst(&d.daemon, task, BURST, free_port());
        let want = u64::from(round * BURST);
        wait_until(
            &format!("the fast subscriber to see {want} events while the slow one reads nothing"),
            EVENT_TIMEOUT,
            || fast.events() >= want,
            || {
                format!(
                    "it saw {} events and {} drop notices",
                    fast.events(),
                    fast.dropped.load(Ordering::Relaxed)
                )
            },
        );
    }
    let total = u64::from(BURSTS * BURST);
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        (fast.events(), fast.dropped.load(Ordering::Relaxed)),
        (total, 0),
        "expected the fast subscriber to get every event and no drop notice"
    );
    let file_lines = connect_lines(&lines_of(&event_files(&events_path(&d))), task) as u64;
    assert_eq!(
        file_lines, total,
        "expected the file sink to get every event"
    );

    // Now the slow one reads what it was kept: events and drop notices add up to the total.
    let (slow_events, slow_dropped) = drain(slow);
    assert!(
        slow_dropped > 0,
        "expected the stalled subscriber to lose events (queue of 512), got {slow_events} events"
    );
    assert_eq!(
        slow_events + slow_dropped,
        total,
        "expected every event either delivered or announced as dropped"
    );
    assert_eq!(
        expect_count(
            &d.scrape(),
            "corral_events_dropped_total",
            &[("stage", "subscriber")]
        ),
        slow_dropped,
        "expected the metric to count exactly the drops the subscriber was told about"
    );
}

/// Restores `kernel.bpf_stats_enabled` when dropped.
struct BpfStats(String);

impl BpfStats {
    const SYSCTL: &'static str = "/proc/sys/kernel/bpf_stats_enabled";

    fn enable() -> Self {
        let before = std::fs::read_to_string(Self::SYSCTL)
            .unwrap_or_else(|e| panic!("expected {}: {e}", Self::SYSCTL));
        std::fs::write(Self::SYSCTL, "1")
            .unwrap_or_else(|e| panic!("expected to enable BPF run stats: {e}"));
        Self(before.trim().to_owned())
    }
}

impl Drop for BpfStats {
    fn drop(&mut self) {
        let _ = std::fs::write(Self::SYSCTL, &self.0);
    }
}

/// `$CORRAL_PROBE -D 30000 ...` confined by `task`, waited for until the daemon counts it.
fn sleeping_probe(d: &OpsDaemon, task: &str) -> std::process::Child {
    let child = d
        .daemon
        .run_command_with(
            task,
            &[corral_tests::ACCEPT_UNENFORCED],
            &[&env::probe(), "-D", "30000", "open", "/nonexistent", "r"],
        )
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap_or_else(|e| panic!("expected to start the sleeping probe: {e}"));
    wait_until(
        "the sleeping probe confined",
        EVENT_TIMEOUT,
        || {
            d.daemon.status()["tasks"].as_array().is_some_and(|tasks| {
                tasks
                    .iter()
                    .any(|t| t["name"] == task && t["processes"] == 1)
            })
        },
        || format!("status: {}", d.daemon.status()),
    );
    child
}

/// The map gauges for a sleeper (probe-only) task with one process and a burster task with
/// one connect rule, beside the daemon's built-in `corral-selftest` task.
fn expect_map_metrics(m: &prometheus_parse::Scrape) {
    let get = |map: &str| expect_count(m, "corral_map_entries", &[("map", map)]);
    let cap = |map: &str| expect_count(m, "corral_map_capacity", &[("map", map)]);
    assert_eq!(
        (get("TASKS"), cap("TASKS")),
        (3, 1024),
        "TASKS: the sleeper, the burster and corral-selftest"
    );
    assert_eq!(
        (get("TAGS"), cap("TAGS")),
        (1, 131_072),
        "TAGS: the sleeper"
    );
    assert_eq!(get("NET_V4_RULES"), 1, "one connect rule (the burster's)");
    assert_eq!(get("UNIX_RULES"), 0);
    assert!(get("FILE_RULES") >= 4, "both tasks' exec and read rules");
    assert_eq!(cap("FILE_RULES"), 65_536);
}

#[test]
fn map_entries_follow_a_policy_reload() {
    let task = "ops-grow";
    let one = Policy::probe_only(task).connect("10.9.0.0/24", &["443"]);
    let d = OpsDaemon::start(&[&one], "");
    let net_v4 = || {
        expect_count(
            &d.scrape(),
            "corral_map_entries",
            &[("map", "NET_V4_RULES")],
        )
    };
    assert_eq!(net_v4(), 1, "one connect rule loaded at start");
    let three = Policy::probe_only(task)
        .connect("10.9.0.0/24", &["443"])
        .connect("10.9.1.0/24", &["443"])
        .connect("10.9.2.0/24", &["443"]);
    corral_tests::reload::replace_file(&d.daemon.policies(), &three.file_name(), &three.yaml());
    // The new version's three entries, once the replaced one is deleted (`RETIRE_AFTER`).
    wait_until(
        "corral_map_entries{map=\"NET_V4_RULES\"} to count the reloaded policy's 3 rules",
        EVENT_TIMEOUT,
        || net_v4() == 3,
        || format!("it is {}; stderr:\n{}", net_v4(), d.daemon.stderr()),
    );
}

#[test]
fn metrics_report_a_scripted_scenario() {
    const REFUSED: u64 = 7;
    let stats = BpfStats::enable();
    let (sleeper, burster) = ("ops-sleeper", "ops-burster");
    let d = OpsDaemon::start(
        &[
            &Policy::probe_only(sleeper),
            &burst_policy(burster, free_port()),
        ],
        "",
    );
    assert_eq!(d.get("/healthz").0, 200, "alive");
    assert_eq!(
        d.get("/readyz").0,
        200,
        "ready once the daemon serves its socket"
    );
    assert_eq!(d.get("/nothing").0, 404);

    // One confined process that stays a while, and a task whose connects are refused.
    let mut sleeping = sleeping_probe(&d, sleeper);
    refused_burst(&d.daemon, burster, REFUSED as u32, free_port());
    let denied = |task: &'static str| [("task", task), ("op", "connect"), ("decision", "denied")];
    wait_until(
        "the refusals counted from events",
        EVENT_TIMEOUT,
        || count(&d.scrape(), "corral_decisions_total", &denied(burster)) == Some(REFUSED),
        || d.daemon.stderr(),
    );
    let m = d.scrape();
    let get = |metric: &str, labels: &[(&str, &str)]| expect_count(&m, metric, labels);
    assert_eq!(
        get("corral_decisions_total", &denied("")),
        REFUSED,
        "the kernel's own counter over all tasks"
    );
    assert_eq!(
        count(&m, "corral_decisions_total", &denied(sleeper)),
        None,
        "no event, no series for the other task"
    );
    assert_eq!(get("corral_tagged_processes", &[("task", sleeper)]), 1);
    assert_eq!(get("corral_tagged_processes", &[("task", burster)]), 0);
    assert_eq!(
        get("corral_events_dropped_total", &[("stage", "kernel")]),
        0
    );
    assert_eq!(
        get("corral_events_dropped_total", &[("stage", "subscriber")]),
        0
    );
    assert_eq!(get("corral_policy_generation", &[]), 1);
    assert_eq!(get("corral_policy_reloads_total", &[("result", "ok")]), 0);
    assert_eq!(
        get("corral_policy_reloads_total", &[("result", "error")]),
        0
    );
    expect_map_metrics(&m);
    assert_eq!(
        get(
            "corral_build_info",
            &[("version", env!("CARGO_PKG_VERSION"))]
        ),
        1
    );
    let runs = get("corral_hook_runs_total", &[("program", "corral_connect4")]);
    assert!(
        runs >= REFUSED,
        "expected the connect4 program to have run at least {REFUSED} times, got {runs}"
    );
    let time = expect_sample(
        &m,
        "corral_hook_run_time_seconds_total",
        &[("program", "corral_connect4")],
    );
    assert!(time > 0.0, "expected run time for connect4, got {time}");
    assert!(
        count(
            &m,
            "corral_hook_runs_total",
            &[("program", "corral_sched_fork")]
        )
        .is_some_and(|n| n > 0),
        "expected the fork tracepoint counted (every fork runs it)"
    );
    drop(stats);
    assert_eq!(
        count(
            &d.scrape(),
            "corral_hook_runs_total",
            &[("program", "corral_connect4")]
        ),
        None,
        "run stats are reported only while kernel.bpf_stats_enabled is 1"
    );
    assert!(
        matches!(sleeping.try_wait(), Ok(None)),
        "the sleeping probe must still be confined and running"
    );
    let _ = sleeping.kill();
    let _ = sleeping.wait();
}

#[test]
fn bad_config_is_refused_with_its_position_and_exit_64() {
    let dir = corral_tests::Scratch::new("ops-bad-config");
    let path = dir.file("corral.toml", "[events]\nstdout = true\nrotate = 5\n");
    let out = corral_tests::process::run({
        let mut c = Command::new(env::corral_bin());
        c.args(["daemon", "--config", &path]);
        c
    });
    corral_tests::expect_corral_exit(&out, corral_tests::EXIT_CONFIG);
    assert!(
        out.stderr
            .contains(&format!("{path}:3:1: unknown field `rotate`")),
        "expected the unknown key placed at 3:1\n{}",
        out.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// allowed decisions as events (`events.allowed`) and SIGHUP re-reading corral.toml

/// Events of `task` with `"decision":"allowed"` and `op`, from `lines`.
fn allowed_lines(lines: &[String], task: &str, op: &str) -> Vec<Value> {
    lines
        .iter()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .filter(|v| v["task"] == task && v["op"] == op && v["decision"] == "allowed")
        .collect()
}

/// Runs `corral-burst N 127.0.0.1 PORT` confined by `task` against a port its policy allows
/// and nobody listens on: every connect is allowed by the kernel, then refused by the peer.
fn allowed_burst(d: &corral_tests::Daemon, task: &str, count: u32, port: u16) {
    let out = d.run_accepting_unenforced(
        task,
        &[
            &corral_tests::ops::burst(),
            &count.to_string(),
            "127.0.0.1",
            &port.to_string(),
        ],
    );
    assert!(
        out.code == Some(0) && out.first_line() == format!("eperm 0 other {count}"),
        "expected all {count} connects allowed (and refused by the closed port)\n{}",
        out.describe()
    );
}

/// Waits until the number of lines in `files` stops changing for a second.
fn settled_lines(files: impl Fn() -> Vec<String>) -> Vec<String> {
    let mut last = files().len();
    for _ in 0..20 {
        std::thread::sleep(Duration::from_secs(1));
        let now = files().len();
        if now == last {
            break;
        }
        last = now;
    }
    files()
}

/// `corral events --json --decision DECISION`: the backlog events the daemon passes.
fn events_by_decision(d: &corral_tests::Daemon, decision: &str) -> Vec<Value> {
    let out = corral_tests::process::run({
        let mut c = Command::new(env::corral_bin());
        c.args(["events", "--json", "--decision", decision, "--socket"])
            .arg(d.socket());
        c
    });
    assert_eq!(
        out.code,
        Some(0),
        "corral events failed\n{}",
        out.describe()
    );
    corral_tests::events::parse_lines(&out.stdout, "corral events")
}

/// `corral events --decision` filters the backlog by decision: here nothing was denied, and
/// allowed events exist.
fn expect_the_decision_filter_of_corral_events(d: &corral_tests::Daemon) {
    let backlog = |decision: &str| events_by_decision(d, decision);
    let allowed_only = backlog("allowed");
    assert!(
        !allowed_only.is_empty() && allowed_only.iter().all(|e| e["decision"] == "allowed"),
        "expected only (and some) allowed events from --decision allowed, got {allowed_only:?}"
    );
    let denied_only = backlog("denied");
    assert!(
        denied_only.is_empty(),
        "nothing was denied, yet --decision denied gave {denied_only:?}"
    );
}

#[test]
fn allowed_all_reports_allowed_decisions_of_every_native_backend() {
    use corral_tests::selectors::selected_probe;
    let scratch = corral_tests::Scratch::new("allowed-all");
    let data = scratch.file("data/notes.txt", "fine\n");
    let port = free_port();
    let (copy, selected) = selected_probe(&scratch, "allowed-sel");
    let selected = selected
        .read(&data)
        .connect("127.0.0.1/32", &[&port.to_string()]);
    let landlocked = Policy::probe_only("allowed-ll").read(&data);
    let d = OpsDaemon::start(&[&selected, &landlocked], "[events]\nallowed = \"all\"\n");
    let allowed = |task: &str, op: &str, backend: &str, extra: &[(&str, Value)]| {
        let mut fields = vec![
            ("/task", serde_json::json!(task)),
            ("/op", serde_json::json!(op)),
            ("/decision", serde_json::json!("allowed")),
            ("/reason", serde_json::json!("none")),
            ("/enforcement", serde_json::json!("none")),
            ("/backend", serde_json::json!(backend)),
        ];
        fields.extend(extra.iter().cloned());
        let hits = d
            .daemon
            .wait_events(|e| corral_tests::has(e, &fields), EVENT_TIMEOUT);
        assert!(!hits.is_empty(), "expected an allowed event {fields:?}");
    };

    // Kill backend (a process that joined through an executable selector): its exec of an
    // allowed file and its open of an allowed file.
    let out = corral_tests::process::run({
        let mut c = Command::new(&copy);
        c.args(["exec", &copy, "open", &data, "r"]);
        c
    });
    assert!(
        out.code == Some(0) && out.first_line() == "ok",
        "expected the selected probe to exec itself and open {data}\n{}",
        out.describe()
    );
    allowed(
        "allowed-sel",
        "exec",
        "kill",
        &[("/target/path", serde_json::json!(copy))],
    );
    allowed(
        "allowed-sel",
        "open",
        "kill",
        &[
            ("/target/path", serde_json::json!(data)),
            ("/target/access", serde_json::json!("read")),
        ],
    );

    // cgroup sock_addr: an allowed connect (nobody listens: the peer refuses it afterwards).
    let out = corral_tests::process::run({
        let mut c = Command::new(&copy);
        c.args(["connect", "tcp", "127.0.0.1", &port.to_string()]);
        c
    });
    assert!(
        out.first_line() == "err ECONNREFUSED 111",
        "expected the connect allowed by Corral and refused by the closed port\n{}",
        out.describe()
    );
    allowed(
        "allowed-sel",
        "connect",
        "cgroup_sock_addr",
        &[
            ("/target/addr", serde_json::json!("127.0.0.1")),
            ("/target/port", serde_json::json!(port)),
        ],
    );

    // Landlock (`corral run` here): the exec of the agent and its open, seen after Landlock let
    // them through.
    let out = d
        .daemon
        .run_accepting_unenforced("allowed-ll", &[&env::probe(), "open", &data, "r"]);
    assert!(
        out.code == Some(0) && out.first_line() == "ok",
        "expected the Landlock-confined probe to open {data}\n{}",
        out.describe()
    );
    let probe = std::fs::canonicalize(env::probe())
        .map_or_else(|_| env::probe(), |p| p.display().to_string());
    allowed(
        "allowed-ll",
        "exec",
        "landlock",
        &[
            ("/target/path", serde_json::json!(probe)),
            ("/process/tgid", serde_json::json!(out.pid)),
        ],
    );
    allowed(
        "allowed-ll",
        "open",
        "landlock",
        &[
            ("/target/path", serde_json::json!(data)),
            ("/target/access", serde_json::json!("read")),
            ("/process/tgid", serde_json::json!(out.pid)),
        ],
    );

    expect_the_decision_filter_of_corral_events(&d.daemon);
}

#[test]
fn sampled_allowed_events_are_a_fraction_and_the_counters_stay_exact() {
    const OPS: u32 = 2000;
    const EVERY: u32 = 10;
    let task = "allowed-sampled";
    let port = free_port();
    let d = OpsDaemon::start(
        &[&burst_policy(task, port)],
        &format!("[events]\nallowed = \"sampled\"\nallowed_sample = {EVERY}\n"),
    );
    let before = d.daemon.counter("connect", "allowed");
    allowed_burst(&d.daemon, task, OPS, port);
    let path = events_path(&d);
    let lines = settled_lines(|| lines_of(&event_files(&path)));
    let sampled = allowed_lines(&lines, task, "connect").len() as u32;
    // Binomial(2000, 1/10): mean 200, standard deviation about 13.4.
    assert!(
        (120..=280).contains(&sampled),
        "expected about {} of {OPS} allowed connects sampled as events (1 in {EVERY}), got {sampled}",
        OPS / EVERY
    );
    let after = d.daemon.counter("connect", "allowed");
    assert_eq!(
        after - before,
        u64::from(OPS),
        "the kernel counts every allowed connect, sampled or not"
    );
    let scrape = d.scrape();
    assert_eq!(
        expect_count(
            &scrape,
            "corral_decisions_total",
            &[("task", ""), ("op", "connect"), ("decision", "allowed")]
        ),
        after,
        "corral_decisions_total counts allowed decisions from the kernel counters"
    );
    assert_eq!(
        count(
            &scrape,
            "corral_decisions_total",
            &[("task", task), ("op", "connect"), ("decision", "allowed")]
        ),
        None,
        "sampled allowed events must not be counted a second time per task"
    );
}

/// Rewrites the daemon's corral.toml (keeping its metrics section) and sends SIGHUP; waits
/// until the daemon logged `expect` after the signal.
fn edit_and_hangup(d: &OpsDaemon, toml: &str, expect: &str) {
    let seen = d.daemon.stderr().matches(expect).count();
    std::fs::write(&d.config_file, format!("{toml}{}", d.metrics_section()))
        .unwrap_or_else(|e| panic!("expected to rewrite {}: {e}", d.config_file.display()));
    d.daemon
        .signal(libc::SIGHUP)
        .unwrap_or_else(|e| panic!("expected to send SIGHUP to the daemon: {e}"));
    wait_until(
        &format!("the daemon to log {expect:?} after SIGHUP"),
        EVENT_TIMEOUT,
        || d.daemon.stderr().matches(expect).count() > seen,
        || format!("stderr:\n{}", d.daemon.stderr()),
    );
}

#[test]
fn sighup_switches_the_events_file_and_the_allowed_events() {
    let task = "sighup-sinks";
    let port = free_port();
    let dir = corral_tests::Scratch::new("sighup-sinks");
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let d = OpsDaemon::start_own_sinks(
        &[&burst_policy(task, port)],
        &format!(
            "[events]\nstdout = false\nfile = \"{}\"\nallowed = \"none\"\n",
            a.display()
        ),
    );
    allowed_burst(&d.daemon, task, 20, port);
    refused_burst(&d.daemon, task, 1, free_port());
    wait_until(
        "the refused connect in the first file",
        EVENT_TIMEOUT,
        || connect_lines(&lines_of(std::slice::from_ref(&a)), task) == 1,
        || format!("stderr:\n{}", d.daemon.stderr()),
    );
    let before = settled_lines(|| lines_of(std::slice::from_ref(&a)));
    assert!(
        allowed_lines(&before, task, "connect").is_empty(),
        "expected no allowed event with allowed = \"none\", got:\n{}",
        before.join("\n")
    );

    edit_and_hangup(
        &d,
        &format!(
            "[events]\nstdout = false\nfile = \"{}\"\nallowed = \"all\"\n",
            b.display()
        ),
        "SIGHUP: configuration reloaded",
    );
    allowed_burst(&d.daemon, task, 5, port);
    let after = settled_lines(|| lines_of(std::slice::from_ref(&b)));
    assert_eq!(
        allowed_lines(&after, task, "connect").len(),
        5,
        "expected the 5 allowed connects in the new file after SIGHUP, got:\n{}",
        after.join("\n")
    );
    assert_eq!(
        lines_of(std::slice::from_ref(&a)).len(),
        before.len(),
        "the old file gets nothing once the new one is in place"
    );
    assert_eq!(
        expect_count(
            &d.scrape(),
            "corral_config_reloads_total",
            &[("result", "ok")]
        ),
        1,
        "one successful configuration reload"
    );
}

#[test]
fn an_invalid_config_edit_is_reported_and_changes_nothing() {
    let task = "sighup-bad";
    let port = free_port();
    let dir = corral_tests::Scratch::new("sighup-bad");
    let (a, b) = (dir.path().join("a.jsonl"), dir.path().join("b.jsonl"));
    let d = OpsDaemon::start_own_sinks(
        &[&burst_policy(task, port)],
        &format!("[events]\nstdout = false\nfile = \"{}\"\n", a.display()),
    );
    let config = d.config_file.display().to_string();
    let line = format!("{config}:4:1: unknown field `rotate_size`");
    edit_and_hangup(
        &d,
        &format!(
            "[events]\nfile = \"{}\"\nallowed = \"all\"\nrotate_size = 5\n",
            b.display()
        ),
        &line,
    );
    let errors = d
        .daemon
        .stderr()
        .lines()
        .filter(|l| l.contains(&line))
        .count();
    assert_eq!(errors, 1, "expected the invalid file reported as one line");
    assert_eq!(
        expect_count(
            &d.scrape(),
            "corral_config_reloads_total",
            &[("result", "error")]
        ),
        1,
        "the failed reload is counted"
    );
    allowed_burst(&d.daemon, task, 5, port);
    refused_burst(&d.daemon, task, 1, free_port());
    wait_until(
        "the refused connect in the running file",
        EVENT_TIMEOUT,
        || connect_lines(&lines_of(std::slice::from_ref(&a)), task) == 1,
        || format!("stderr:\n{}", d.daemon.stderr()),
    );
    let lines = settled_lines(|| lines_of(std::slice::from_ref(&a)));
    assert!(
        allowed_lines(&lines, task, "connect").is_empty(),
        "the rejected allowed = \"all\" must not apply, got:\n{}",
        lines.join("\n")
    );
    assert!(!b.exists(), "the rejected file sink must not be opened");
}

#[test]
fn sighup_moves_the_metrics_endpoint_and_keeps_counting() {
    let task = "sighup-metrics";
    let d = OpsDaemon::start(&[&burst_policy(task, free_port())], "");
    let old = d.metrics;
    let new = std::net::SocketAddr::from(([127, 0, 0, 1], free_port()));
    let seen = d
        .daemon
        .stderr()
        .matches("SIGHUP: configuration reloaded")
        .count();
    std::fs::write(
        &d.config_file,
        format!("[metrics]\nenabled = true\nlisten = \"{new}\"\n[log]\nlevel = \"debug\"\n"),
    )
    .unwrap_or_else(|e| panic!("expected to rewrite {}: {e}", d.config_file.display()));
    d.daemon
        .signal(libc::SIGHUP)
        .unwrap_or_else(|e| panic!("expected to send SIGHUP: {e}"));
    wait_until(
        "the reload",
        EVENT_TIMEOUT,
        || {
            d.daemon
                .stderr()
                .matches("SIGHUP: configuration reloaded")
                .count()
                > seen
        },
        || format!("stderr:\n{}", d.daemon.stderr()),
    );
    let (code, body) = corral_tests::ops::http_get(new, "/readyz");
    assert_eq!(
        code, 200,
        "expected /readyz on the new address {new}: {body}"
    );
    let scrape = corral_tests::ops::http_get(new, "/metrics").1;
    assert!(
        scrape.contains("corral_config_reloads_total{result=\"ok\"} 1"),
        "expected the reload counted on the new endpoint:\n{scrape}"
    );
    wait_until(
        &format!("the old address {old} released"),
        EVENT_TIMEOUT,
        || std::net::TcpStream::connect_timeout(&old, Duration::from_millis(200)).is_err(),
        String::new,
    );
    // A second SIGHUP rescans the policies, which is logged at debug level only.
    d.daemon
        .signal(libc::SIGHUP)
        .unwrap_or_else(|e| panic!("expected to send SIGHUP: {e}"));
    wait_until(
        "a debug line once log.level = \"debug\" applies",
        EVENT_TIMEOUT,
        || d.daemon.stderr().contains("DEBUG"),
        || format!("stderr:\n{}", d.daemon.stderr()),
    );
}
