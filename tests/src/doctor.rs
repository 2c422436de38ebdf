//! `corral doctor`, and the per-operation backends it and `corral status` report.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::env;
use crate::process::{self, RunOutput};

/// The operations `corral doctor` and `corral status` name a backend for, in display order.
pub const OPERATIONS: [&str; 6] = [
    "exec",
    "open",
    "connect",
    "connect_unix",
    "sendmsg",
    "selected_exec_open",
];

/// `corral doctor` exit code: every operation refused in the kernel by the strongest backend.
pub const EXIT_FULL: i32 = 0;
/// `corral doctor` exit code: some operation cannot be enforced on this host.
pub const EXIT_INCOMPLETE: i32 = 2;

/// Backend names as the JSON documents spell them.
pub const LSM: &str = "lsm";
pub const CGROUP_SOCK_ADDR: &str = "cgroup_sock_addr";
pub const LANDLOCK: &str = "landlock";
pub const KILL: &str = "kill";

/// `corral doctor ARGS...`, to completion.
#[must_use]
pub fn run(args: &[&str]) -> RunOutput {
    let mut cmd = Command::new(env::corral_bin());
    cmd.arg("doctor").args(args);
    process::run(cmd)
}

/// `corral doctor --json`, and its stdout parsed; panics if stdout is not one JSON object.
#[must_use]
pub fn json() -> (RunOutput, Value) {
    let out = run(&["--json"]);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "expected `corral doctor --json` to print one JSON document: {e}\n{}",
            out.describe()
        )
    });
    assert!(
        doc.is_object(),
        "expected `corral doctor --json` to print a JSON object\n{}",
        out.describe()
    );
    (out, doc)
}

/// `backends` of a doctor or status document as operation → backend (`None` = unenforced).
/// Panics unless it names exactly `OPERATIONS`, each with a string or `null`.
#[must_use]
pub fn backends(doc: &Value, source: &str) -> BTreeMap<String, Option<String>> {
    let map = doc["backends"]
        .as_object()
        .unwrap_or_else(|| panic!("expected {source} to have a \"backends\" object, got {doc}"));
    let mut names: Vec<&str> = map.keys().map(String::as_str).collect();
    let mut want = OPERATIONS.to_vec();
    names.sort_unstable();
    want.sort_unstable();
    assert_eq!(
        names, want,
        "expected {source} backends to name exactly these operations, got {}",
        doc["backends"]
    );
    map.iter()
        .map(|(op, b)| {
            let backend = match b {
                Value::Null => None,
                Value::String(s) => Some(s.clone()),
                other => {
                    panic!("expected {source} backends.{op} to be a string or null, got {other}")
                }
            };
            (op.clone(), backend)
        })
        .collect()
}

/// The `findings[]` entry of `mechanism` in a doctor document; panics if absent.
#[must_use]
pub fn finding<'a>(doc: &'a Value, mechanism: &str) -> &'a Value {
    doc["findings"]
        .as_array()
        .and_then(|f| f.iter().find(|f| f["mechanism"] == mechanism))
        .unwrap_or_else(|| {
            panic!(
                "expected a finding for {mechanism} in `corral doctor --json`, got {}",
                doc["findings"]
            )
        })
}

/// The guarded operations `corral doctor` lists apart (BPF LSM judges them; the kill backend
/// `socket` and `io_uring`).
pub const GUARDS: [&str; 13] = [
    "rename",
    "unlink",
    "mmap",
    "link",
    "mount",
    "bpf",
    "kernel_load",
    "ptrace",
    "signal",
    "socket",
    "perf",
    "userfaultfd",
    "io_uring",
];

/// Checks that doctor's JSON `guards` and its text table both name `want(guard)` (a backend,
/// or `None` for unenforced) for every guard.
pub fn expect_guards(doc: &Value, stdout: &str, want: impl Fn(&str) -> Option<&'static str>) {
    let guards = doc["guards"]
        .as_object()
        .unwrap_or_else(|| panic!("expected a guards object in doctor's JSON, got {doc}"));
    for guard in GUARDS {
        let want = want(guard);
        let word = want.unwrap_or("NONE");
        assert_eq!(
            guards.get(guard).and_then(Value::as_str),
            want,
            "expected guard {guard} to be {want:?} in doctor's JSON, got {}",
            doc["guards"]
        );
        assert!(
            stdout.lines().any(|l| {
                let mut w = l.split_whitespace();
                w.next() == Some(guard) && w.next() == Some(word)
            }),
            "expected a guard row \"{guard} {word} ...\" in doctor's text\n{stdout}"
        );
    }
}

/// The rows of doctor's table: `OPERATION BACKEND ...` lines, as (operation, backend word).
#[must_use]
pub fn table_rows(stdout: &str) -> BTreeMap<String, String> {
    stdout
        .lines()
        .filter_map(|l| {
            let mut words = l.split_whitespace();
            let op = words.next()?;
            let backend = words.next()?;
            OPERATIONS
                .contains(&op)
                .then(|| (op.to_owned(), backend.to_owned()))
        })
        .collect()
}

/// The `hooks[]` of a status document as `(program, kind)` pairs of attached hooks.
#[must_use]
pub fn attached_hooks(status: &Value) -> Vec<(String, String)> {
    status["hooks"]
        .as_array()
        .unwrap_or_else(|| panic!("expected status to have a \"hooks\" array, got {status}"))
        .iter()
        .filter(|h| h["attached"] == true)
        .map(|h| {
            (
                h["program"].as_str().unwrap_or("").to_owned(),
                h["kind"].as_str().unwrap_or("").to_owned(),
            )
        })
        .collect()
}

/// The kernel's Landlock ABI version (`landlock_create_ruleset(NULL, 0, VERSION)`), `None`
/// when Landlock is not available.
#[must_use]
pub fn kernel_landlock_abi() -> Option<u32> {
    const LANDLOCK_CREATE_RULESET_VERSION: libc::c_uint = 1;
    // SAFETY: with a NULL attribute pointer and size 0 this only queries the version.
    let abi = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0_usize,
            LANDLOCK_CREATE_RULESET_VERSION,
        )
    };
    u32::try_from(abi).ok().filter(|v| *v > 0)
}

#[cfg(test)]
mod tests {
    use super::{backends, table_rows};
    use serde_json::json;

    #[test]
    fn table_rows_are_operation_lines_only() {
        let text = "OPERATION     BACKEND            LIMITS\nexec          NONE               not enforced\nconnect       cgroup_sock_addr   IPv4/IPv6 only\n\nkernel        6.18\n";
        let rows = table_rows(text);
        assert_eq!(rows.len(), 2, "expected two operation rows, got {rows:?}");
        assert_eq!(rows["exec"], "NONE");
        assert_eq!(rows["connect"], "cgroup_sock_addr");
    }

    #[test]
    #[should_panic(expected = "exactly these operations")]
    fn backends_must_name_every_operation() {
        let _ = backends(&json!({"backends": {"exec": "lsm"}}), "test");
    }
}
