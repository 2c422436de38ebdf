//! `corral doctor --selftest` against a test daemon, and its report read back.

use std::collections::BTreeMap;
use std::process::Command;

use serde_json::Value;

use crate::daemon::Daemon;
use crate::env;
use crate::process::{self, RunOutput};

/// The task name the daemon reserves for the selftest.
pub const TASK: &str = "corral-selftest";

/// `corral doctor --selftest --socket <d> EXTRA...`, to completion.
#[must_use]
pub fn run(d: &Daemon, extra: &[&str]) -> RunOutput {
    let mut cmd = Command::new(env::corral_bin());
    cmd.args(["doctor", "--selftest", "--socket", &d.socket_str()])
        .args(extra);
    process::run(cmd)
}

/// `run` with `--json`: the output and `probe` → (`backend`, `result`); panics unless stdout is
/// a report naming each probe once.
#[must_use]
pub fn json(d: &Daemon, extra: &[&str]) -> (RunOutput, BTreeMap<String, (Value, String)>) {
    let mut args = vec!["--json"];
    args.extend_from_slice(extra);
    let out = run(d, &args);
    let doc: Value = serde_json::from_str(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "expected `corral doctor --selftest --json` to print one JSON document: {e}\n{}",
            out.describe()
        )
    });
    let mut results = BTreeMap::new();
    for p in doc["probes"].as_array().into_iter().flatten() {
        let name = p["probe"].as_str().unwrap_or_default().to_owned();
        let result = p["result"].as_str().unwrap_or_default().to_owned();
        let previous = results.insert(name.clone(), (p["backend"].clone(), result));
        assert!(
            previous.is_none(),
            "expected probe {name} once in the report\n{}",
            out.describe()
        );
    }
    assert!(
        !results.is_empty(),
        "expected probes in the selftest report\n{}",
        out.describe()
    );
    (out, results)
}

/// The probes whose result is not `want`, with the result each has.
#[must_use]
pub fn not(
    results: &BTreeMap<String, (Value, String)>,
    want: &str,
    probes: &[&str],
) -> Vec<String> {
    probes
        .iter()
        .filter_map(|p| match results.get(*p) {
            Some((_, r)) if r == want => None,
            Some((b, r)) => Some(format!("{p}: {r} (backend {b})")),
            None => Some(format!("{p}: missing")),
        })
        .collect()
}
