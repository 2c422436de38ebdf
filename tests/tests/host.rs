//! Tests run natively on the development/CI host (kernel 6.18, root), which refuses BPF LSM
//! programs: what is real here is how `corral` refuses, the policy checker, `corral run` without
//! a daemon, and the probe tool the VM tests rely on.

use std::path::Path;
use std::process::Command;

use corral_tests::daemon::Launch;
use corral_tests::{
    Background, Daemon, EXIT_CONFIG, EXIT_UNAVAILABLE, Policy, RunOutput, Scratch, deep, env,
    expect_corral_exit, process,
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
// corral daemon on a kernel without usable BPF LSM

#[test]
fn daemon_refuses_to_start_without_bpf_lsm() {
    let s = Scratch::new("no-lsm");
    let sock = s.path().join("corral.sock");
    let pol = Policy::probe_only("no-lsm");
    let yaml = pol.yaml();
    let failure = Daemon::try_launch(&Launch {
        policies: &[("no-lsm.yaml", yaml.as_str())],
        socket: Some(&sock),
        // Even with backtraces requested, the refusal is one line.
        env: &[("RUST_BACKTRACE", "1")],
    })
    .err()
    .unwrap_or_else(|| {
        panic!("expected `corral daemon` to refuse to start on this host, which refuses BPF LSM programs")
    });
    let lines: Vec<&str> = failure
        .stderr
        .lines()
        .filter(|l| !l.trim().is_empty())
        .collect();
    let lower = failure.stderr.to_lowercase();
    assert!(
        failure.code == Some(EXIT_UNAVAILABLE)
            && lines.len() == 1
            && lines[0].starts_with("corral: ")
            && lower.contains("lsm")
            && lower.contains("kernel")
            && !lower.contains("panicked")
            && !lower.contains("backtrace"),
        "expected exit {EXIT_UNAVAILABLE} and ONE stderr line \"corral: ...\" naming the missing kernel capability (BPF LSM) and the fix, without panic or backtrace; got code {:?} (timed out: {}), stderr:\n{}",
        failure.code,
        failure.timed_out,
        failure.stderr
    );
    assert!(
        !failure.socket_left && !sock.exists(),
        "expected no socket left behind at {}",
        sock.display()
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
