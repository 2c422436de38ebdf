//! Corral's Landlock backend, for real, on this host's kernel (native, as root: Landlock confines
//! root too). Each test restricts a `corral-landlock-exec` process with a spec, exactly as
//! `corral run` restricts itself, and lets `corral-probe` attempt one operation from inside.
//!
//! The last tests run the real `corral run` against a stand-in for the daemon's socket that
//! answers with a Landlock spec, as the daemon will where Landlock is the exec/open backend.
//!
//! Needs a kernel with Landlock enabled (ABI 5 or later for every right Corral handles),
//! `$CORRAL_PROBE`, `$CORRAL_BIN` and `$CORRAL_POLICIES`. Run with `cargo test -p corral-tests --test landlock`.

use std::io::{BufRead, BufReader, Write};
use std::os::fd::AsRawFd;
use std::os::unix::net::UnixListener;
use std::path::Path;
use std::process::Command;
use std::thread::JoinHandle;

use corral_tests::{
    EXIT_REFUSED, RunOutput, Scratch, Value, env, expect_corral_exit, json, process,
};

/// The helper that applies a spec to itself, then execs the rest of its command line.
const LANDLOCK_EXEC: &str = env!("CARGO_BIN_EXE_corral-landlock-exec");

/// `EACCES`: what Landlock answers for a refused open or exec.
const EACCES: &str = "err EACCES 13";

/// The probe's canonical path (rules name resolved paths).
fn probe() -> String {
    canonical(&env::probe())
}

fn canonical(path: &str) -> String {
    std::fs::canonicalize(path)
        .unwrap_or_else(|e| panic!("expected to canonicalize {path}: {e}"))
        .to_string_lossy()
        .into_owned()
}

/// A spec: the probe may run (its libraries and loader are under `/usr/`, and it reads
/// `/etc/ld.so.cache`), plus what the test adds.
struct Spec {
    exec: Vec<String>,
    read: Vec<String>,
    write: Vec<String>,
    deny: Vec<String>,
}

impl Spec {
    fn new() -> Self {
        Self {
            exec: vec![probe()],
            read: vec!["/usr/".to_owned(), "/etc/ld.so.cache".to_owned()],
            write: Vec::new(),
            deny: Vec::new(),
        }
    }

    fn exec(mut self, path: &str) -> Self {
        self.exec.push(path.to_owned());
        self
    }

    fn read(mut self, path: &str) -> Self {
        self.read.push(path.to_owned());
        self
    }

    fn write(mut self, path: &str) -> Self {
        self.write.push(path.to_owned());
        self
    }

    fn deny(mut self, path: &str) -> Self {
        self.deny.push(path.to_owned());
        self
    }

    fn value(&self) -> Value {
        json!({
            "task": "landlock-test",
            "exec": self.exec,
            "read": self.read,
            "write": self.write,
            "deny": self.deny,
        })
    }

    fn json(&self) -> String {
        self.value().to_string()
    }

    /// Runs `corral-probe ARGS...` confined by this spec.
    fn probe(&self, args: &[&str]) -> RunOutput {
        let mut cmd = Command::new(LANDLOCK_EXEC);
        cmd.arg(self.json()).arg(probe()).args(args);
        process::run(cmd)
    }
}

/// The `applied {...}` report the helper printed on stderr.
fn applied(out: &RunOutput) -> Value {
    let line = out
        .stderr
        .lines()
        .find_map(|l| l.strip_prefix("applied "))
        .unwrap_or_else(|| {
            panic!(
                "expected the helper to report what it applied\n{}",
                out.describe()
            )
        });
    serde_json::from_str(line)
        .unwrap_or_else(|e| panic!("expected the applied report to be JSON ({e}): {line}"))
}

fn expect(out: &RunOutput, line: &str, what: &str) {
    let code = i32::from(line != "ok");
    assert!(
        out.first_line() == line && out.code == Some(code),
        "expected {what}: the probe should print {line:?} and exit {code}\n{}",
        out.describe()
    );
}

#[test]
fn every_right_corral_handles_is_enforced_on_this_kernel() {
    let out = Spec::new().probe(&["open", "/usr/bin/env", "r"]);
    expect(&out, "ok", "a read under /usr/ to be allowed");
    let report = applied(&out);
    assert!(
        report["abi"].as_u64().is_some_and(|abi| abi >= 5),
        "expected Landlock ABI 5 or later on this host, got {report}"
    );
    let enforced: Vec<&str> = report["enforced"]
        .as_array()
        .map(|a| a.iter().filter_map(Value::as_str).collect())
        .unwrap_or_default();
    for right in [
        "execute",
        "read_file",
        "write_file",
        "refer",
        "truncate",
        "ioctl_dev",
    ] {
        assert!(
            enforced.contains(&right),
            "expected {right} to be enforced, got {report}"
        );
    }
    assert_eq!(
        report["not_enforced"],
        json!([]),
        "expected nothing left unenforced on ABI >= 5: {report}"
    );
    let interpreters = report["interpreters"].to_string();
    assert!(
        interpreters.contains("ld-linux"),
        "expected the dynamic loader to be granted execute, got {report}"
    );
}

#[test]
fn exec_of_a_program_not_in_exec_is_refused() {
    let s = Scratch::new("ll-exec-no");
    let tool = s.copy_exe(&env::probe_bin(), "bin/tool");
    // Readable, but not executable.
    let out =
        Spec::new()
            .read(&s.dir_entry(""))
            .probe(&["exec", &tool, "open", "/usr/bin/env", "r"]);
    expect(
        &out,
        EACCES,
        "exec of a program outside exec.allow to be refused",
    );
}

#[test]
fn exec_of_a_listed_program_works() {
    let s = Scratch::new("ll-exec-yes");
    let tool = s.copy_exe(&env::probe_bin(), "bin/tool");
    let out = Spec::new()
        .exec(&tool)
        .probe(&["exec", &tool, "open", "/usr/bin/env", "r"]);
    expect(
        &out,
        "ok",
        "the listed program to start and read under /usr/",
    );
}

#[test]
fn exec_of_a_program_beneath_a_listed_directory_works() {
    let s = Scratch::new("ll-exec-dir");
    let tool = s.copy_exe(&env::probe_bin(), "tools/sub/tool");
    let out = Spec::new().exec(&s.dir_entry("tools")).probe(&[
        "exec",
        &tool,
        "open",
        "/usr/bin/env",
        "r",
    ]);
    expect(
        &out,
        "ok",
        "a program beneath an exec.allow directory to start",
    );
}

#[test]
fn reads_are_allowed_inside_read_and_refused_outside() {
    let s = Scratch::new("ll-read");
    let inside = s.file("inside/notes.txt", "notes");
    let outside = s.file("outside/secret.txt", "secret");
    let spec = Spec::new().read(&s.dir_entry("inside"));
    expect(
        &spec.probe(&["open", &inside, "r"]),
        "ok",
        "a read inside files.read",
    );
    expect(
        &spec.probe(&["open", &outside, "r"]),
        EACCES,
        "a read outside files.read to be refused",
    );
    expect(
        &spec.probe(&["open", "/etc/passwd", "r"]),
        EACCES,
        "a read of /etc/passwd (not listed) to be refused",
    );
}

#[test]
fn writes_are_allowed_inside_write_and_refused_on_read_only_paths() {
    let s = Scratch::new("ll-write");
    let read_only = s.file("ro/data.txt", "data");
    let rw = s.mkdir("rw");
    let spec = Spec::new()
        .read(&s.dir_entry("ro"))
        .write(&s.dir_entry("rw"));
    expect(
        &spec.probe(&["open", &read_only, "w"]),
        EACCES,
        "a write to a read-only path to be refused",
    );
    expect(
        &spec.probe(&["open", &read_only, "rw"]),
        EACCES,
        "a read-write open of a read-only path to be refused",
    );
    let created = format!("{rw}/new.txt");
    expect(
        &spec.probe(&["open", &created, "w"]),
        "ok",
        "creating a file inside files.write",
    );
    assert!(
        Path::new(&created).exists(),
        "expected {created} to have been created"
    );
    expect(
        &spec.probe(&["open", &s.join("ro/new.txt"), "w"]),
        EACCES,
        "creating a file in a read-only directory to be refused",
    );
}

#[test]
fn device_nodes_are_refused_even_inside_write() {
    let s = Scratch::new("ll-mknod");
    let rw = s.mkdir("rw");
    let spec = Spec::new()
        .read(&s.dir_entry("rw"))
        .write(&s.dir_entry("rw"));
    for kind in ["char", "block"] {
        let node = format!("{rw}/{kind}");
        expect(
            &spec.probe(&["mknod", &node, kind]),
            EACCES,
            &format!("a {kind} device node inside files.write to be refused"),
        );
        assert!(
            std::fs::symlink_metadata(&node).is_err(),
            "expected no device node at {node}"
        );
    }
    let fifo = format!("{rw}/fifo");
    expect(
        &spec.probe(&["mknod", &fifo, "fifo"]),
        "ok",
        "a FIFO inside files.write",
    );
    // Unconfined, the same device node can be made: the refusal is Landlock's.
    let out = process::probe(&["mknod", &format!("{rw}/free"), "char"]);
    expect(&out, "ok", "an unconfined device node");
}

#[test]
fn a_denied_path_inside_an_allowed_directory_is_refused_while_its_siblings_stay_readable() {
    let s = Scratch::new("ll-deny");
    let env_file = s.file("ws/.env", "TOKEN=1");
    let key = s.file("ws/secrets/key", "k");
    let readme = s.file("ws/README", "hello");
    let main = s.file("ws/src/main.rs", "fn main() {}");
    let nested = s.file("ws/config/nested/app.toml", "x");
    let nested_denied = s.file("ws/config/nested/token", "t");
    let spec = Spec::new()
        .read(&s.dir_entry("ws"))
        .write(&s.dir_entry("ws"))
        .deny(&env_file)
        .deny(&s.dir_entry("ws/secrets"))
        .deny(&nested_denied);
    for denied in [&env_file, &key, &nested_denied] {
        expect(
            &spec.probe(&["open", denied, "r"]),
            EACCES,
            &format!("a read of the denied {denied} to be refused"),
        );
        expect(
            &spec.probe(&["open", denied, "w"]),
            EACCES,
            &format!("a write of the denied {denied} to be refused"),
        );
    }
    for sibling in [&readme, &main, &nested] {
        expect(
            &spec.probe(&["open", sibling, "r"]),
            "ok",
            &format!("a read of {sibling}, beside the denied paths"),
        );
        expect(
            &spec.probe(&["open", sibling, "w"]),
            "ok",
            &format!("a write of {sibling}, beside the denied paths"),
        );
    }
    expect(
        &spec.probe(&["open", &s.join("ws/src/new.rs"), "w"]),
        "ok",
        "creating a file in a subdirectory that holds no denied path",
    );
}

#[test]
fn a_symlink_out_of_an_allowed_directory_is_refused() {
    let s = Scratch::new("ll-symlink");
    let secret = s.file("outside/secret.txt", "secret");
    let inner = s.file("allowed/inner.txt", "inner");
    let escape = s.symlink(&secret, "allowed/escape");
    let alias = s.symlink(&inner, "allowed/alias");
    let spec = Spec::new().read(&s.dir_entry("allowed"));
    expect(
        &spec.probe(&["open", &escape, "r"]),
        EACCES,
        "a read through a symlink leading out of the allowed directory to be refused",
    );
    expect(
        &spec.probe(&["open", &alias, "r"]),
        "ok",
        "a read through a symlink that stays inside the allowed directory",
    );
}

#[test]
fn a_spec_that_cannot_be_applied_stops_before_the_command_runs() {
    let s = Scratch::new("ll-too-many");
    let big = s.mkdir("big");
    for i in 0..4100 {
        std::fs::write(format!("{big}/f{i}"), "")
            .unwrap_or_else(|e| panic!("expected to create {big}/f{i}: {e}"));
    }
    let marker = s.join("ran");
    let out = Spec::new()
        .read(&s.dir_entry("big"))
        .write(&s.dir_entry(""))
        .deny(&s.join("big/f0"))
        .probe(&["open", &marker, "w"]);
    assert!(
        out.code == Some(EXIT_REFUSED)
            && out.stderr.contains("Landlock rules")
            && out.stderr.contains(&big)
            && out.stdout.is_empty(),
        "expected the helper to refuse (exit {EXIT_REFUSED}) naming {big}, without running the probe\n{}",
        out.describe()
    );
    assert!(
        !Path::new(&marker).exists(),
        "expected the command not to have run, but {marker} exists"
    );
}

#[test]
fn the_shipped_reviewer_policy_confines_real_tools() {
    let file = env::policies_dir().join("reviewer.yaml");
    let policy = agent::policy::load_policy_file(&file)
        .unwrap_or_else(|e| panic!("expected {} to load: {e}", file.display()));
    let spec = serde_json::to_string(&agent::landlock::spec_for(&policy))
        .unwrap_or_else(|e| panic!("expected the reviewer spec to serialize: {e}"));
    let confined = |argv: &[&str]| {
        let mut cmd = Command::new(LANDLOCK_EXEC);
        cmd.arg(&spec).args(argv);
        process::run(cmd)
    };
    let out = confined(&["/usr/bin/cat", "/etc/passwd"]);
    assert!(
        out.code == Some(0) && out.stdout.contains("root:"),
        "expected reviewer's cat to read /etc/passwd\n{}",
        out.describe()
    );
    let report = applied(&out);
    let skipped = report["skipped"].to_string();
    assert!(
        skipped.contains("/workspace/") || Path::new("/workspace").exists(),
        "expected the missing /workspace/ to be reported as skipped: {report}"
    );
    let out = confined(&["/usr/bin/cat", "/etc/hostname"]);
    assert!(
        out.code == Some(1) && out.stderr.contains("Permission denied"),
        "expected reviewer's cat to be refused /etc/hostname (not in files.read)\n{}",
        out.describe()
    );
    let out = confined(&["/usr/bin/dash", "-c", "true"]);
    assert!(
        out.code == Some(126) && out.stderr.contains("exec-error 13"),
        "expected reviewer to be refused running /usr/bin/dash (not in exec.allow)\n{}",
        out.describe()
    );
}

#[test]
fn processes_that_were_not_restricted_are_unaffected() {
    let s = Scratch::new("ll-untagged");
    let outside = s.file("outside/secret.txt", "secret");
    // A confined run first: its restriction must not reach its parent (this test process).
    expect(
        &Spec::new().probe(&["open", &outside, "r"]),
        EACCES,
        "the confined probe to be refused",
    );
    let out = process::probe(&["open", &outside, "r"]);
    expect(&out, "ok", "an unconfined probe to read anything");
    let out = process::probe(&["open", &s.join("outside/new.txt"), "w"]);
    expect(&out, "ok", "an unconfined probe to write anything");
    assert!(
        std::fs::read_to_string(&outside).is_ok_and(|t| t == "secret"),
        "expected this test process itself to stay unconfined"
    );
}

// ---------------------------------------------------------------------------------------------
// corral run, with the Landlock spec in the daemon's answer

/// A stand-in for the daemon on `socket`: accepts one connection, reads the request line and
/// answers `tagged` for the caller's pid (from the socket's peer credentials, as the daemon
/// does) with `landlock` as the spec. Returns the request line.
fn serve_one_tag(socket: &Path, landlock: Value) -> JoinHandle<String> {
    // The previous call's socket file, if any: each call serves a fresh listener.
    let _ = std::fs::remove_file(socket);
    let listener = UnixListener::bind(socket)
        .unwrap_or_else(|e| panic!("expected to listen on {}: {e}", socket.display()));
    std::thread::spawn(move || {
        let (stream, _) = listener
            .accept()
            .unwrap_or_else(|e| panic!("expected corral run to connect: {e}"));
        let mut request = String::new();
        BufReader::new(&stream)
            .read_line(&mut request)
            .unwrap_or_else(|e| panic!("expected corral run's request: {e}"));
        let answer = json!({
            "result": "tagged",
            "task": "landlock-test",
            "task_id": 1,
            "pid": peer_pid(&stream),
            "landlock": landlock,
        });
        (&stream)
            .write_all(format!("{answer}\n").as_bytes())
            .unwrap_or_else(|e| panic!("expected to answer corral run: {e}"));
        request
    })
}

fn peer_pid(stream: &std::os::unix::net::UnixStream) -> u32 {
    let mut cred = libc::ucred {
        pid: 0,
        uid: 0,
        gid: 0,
    };
    let mut len = std::mem::size_of::<libc::ucred>() as libc::socklen_t;
    // SAFETY: `cred` and `len` are valid for the kernel to fill in.
    let rc = unsafe {
        libc::getsockopt(
            stream.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_PEERCRED,
            (&raw mut cred).cast(),
            &raw mut len,
        )
    };
    assert_eq!(
        rc,
        0,
        "expected SO_PEERCRED to work: {}",
        std::io::Error::last_os_error()
    );
    cred.pid as u32
}

/// `corral run --socket SOCKET --task landlock-test -- PROBE ARGS...`, answered with `spec`.
fn corral_run(s: &Scratch, spec: Value, args: &[&str]) -> RunOutput {
    let socket = s.path().join("corral.sock");
    let daemon = serve_one_tag(&socket, spec);
    let mut cmd = Command::new(env::corral_bin());
    cmd.arg("run")
        .arg("--socket")
        .arg(&socket)
        .args(["--task", "landlock-test", "--"])
        .arg(probe())
        .args(args);
    let out = process::run(cmd);
    let request = daemon
        .join()
        .unwrap_or_else(|_| panic!("expected the stand-in daemon to answer\n{}", out.describe()));
    assert!(
        request.contains("landlock-test"),
        "expected corral run to ask for task landlock-test, sent {request:?}"
    );
    out
}

#[test]
fn corral_run_applies_the_landlock_spec_of_the_daemons_answer_before_exec() {
    let s = Scratch::new("ll-run");
    let inside = s.file("ws/notes.txt", "notes");
    let outside = s.file("outside/secret.txt", "secret");
    let tool = s.copy_exe(&env::probe_bin(), "bin/tool");
    let spec = Spec::new()
        .read(&s.dir_entry("ws"))
        .read(&s.dir_entry("bin"));
    expect(
        &corral_run(&s, spec.value(), &["open", &inside, "r"]),
        "ok",
        "corral run's command to read inside files.read",
    );
    expect(
        &corral_run(&s, spec.value(), &["open", &outside, "r"]),
        EACCES,
        "corral run's command to be refused a read outside files.read",
    );
    expect(
        &corral_run(&s, spec.value(), &["exec", &tool, "open", &inside, "r"]),
        EACCES,
        "corral run's command to be refused the exec of a program not in exec.allow",
    );
}

#[test]
fn corral_run_without_a_landlock_spec_in_the_answer_applies_none() {
    let s = Scratch::new("ll-run-none");
    let outside = s.file("outside/secret.txt", "secret");
    expect(
        &corral_run(&s, Value::Null, &["open", &outside, "r"]),
        "ok",
        "corral run's command to be unrestricted by Landlock when the answer has no spec",
    );
}

#[test]
fn corral_run_exits_77_without_running_the_command_when_landlock_cannot_be_applied() {
    let s = Scratch::new("ll-run-fail");
    let looped = s.join("loop");
    std::os::unix::fs::symlink(&looped, &looped)
        .unwrap_or_else(|e| panic!("expected to create the symlink loop {looped}: {e}"));
    let marker = s.join("ran");
    let spec = Spec::new()
        .read(&format!("{looped}/"))
        .write(&s.dir_entry(""));
    let out = corral_run(&s, spec.value(), &["open", &marker, "w"]);
    expect_corral_exit(&out, EXIT_REFUSED);
    assert!(
        out.stderr.contains("Landlock") && out.stderr.contains(&looped),
        "expected the refusal to say Landlock and name {looped}\n{}",
        out.describe()
    );
    assert!(
        !Path::new(&marker).exists(),
        "expected the command not to have run, but {marker} exists"
    );
}
