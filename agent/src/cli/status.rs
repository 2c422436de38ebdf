//! `corral status`.

use std::{fmt::Write as _, path::Path};

use super::client::{self, ClientError};
use crate::daemon::protocol::{Request, Response};

/// Fetches the daemon's status JSON.
pub fn fetch(socket: &Path) -> Result<serde_json::Value, ClientError> {
    match client::call(socket, &Request::Status)? {
        Response::Status { status } => Ok(status),
        other => Err(ClientError::Protocol {
            path: socket.to_owned(),
            message: format!("unexpected answer: {other:?}"),
        }),
    }
}

/// A readable rendering for people.
#[must_use]
pub fn render(status: &serde_json::Value) -> String {
    let mut out = String::from("HOOKS\n");
    for h in status["hooks"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<8} {:<22} {:<24} {}",
            h["kind"].as_str().unwrap_or("?"),
            h["hook"].as_str().unwrap_or("?"),
            h["program"].as_str().unwrap_or("?"),
            if h["attached"].as_bool() == Some(true) {
                "attached"
            } else {
                "NOT attached"
            }
        );
    }
    out.push_str("BACKENDS\n");
    if let Some(b) = status["backends"].as_object() {
        for (op, backend) in b {
            let _ = writeln!(
                out,
                "  {op:<13} {}",
                backend.as_str().unwrap_or("NOT ENFORCED")
            );
        }
    }
    let cache = &status["open_decision_cache"];
    let _ = writeln!(
        out,
        "OPEN-DECISION CACHE\n  {}{}",
        cache["state"].as_str().unwrap_or("?"),
        cache["reason"]
            .as_str()
            .map(|r| format!(" ({r})"))
            .unwrap_or_default()
    );
    out.push_str("TASKS\n");
    for t in status["tasks"].as_array().into_iter().flatten() {
        let _ = writeln!(
            out,
            "  {:<24} mode={:<8} processes={}",
            t["name"].as_str().unwrap_or("?"),
            t["mode"].as_str().unwrap_or("?"),
            t["processes"]
        );
    }
    out.push_str("COUNTERS\n");
    let c = &status["counters"];
    for op in [
        "exec",
        "open",
        "connect",
        "sendmsg",
        "bpf",
        "socket",
        "ptrace",
        "signal",
        "kernel_load",
        "mount",
        "link",
        "mmap",
        "rename",
        "unlink",
        "perf",
    ] {
        let _ = writeln!(
            out,
            "  {op:<8} allowed={} denied={} audited={}",
            c[op]["allowed"], c[op]["denied"], c[op]["audited"]
        );
    }
    let _ = writeln!(
        out,
        "  events_dropped={} tag_insert_failed={} open_cache_hits={}",
        c["events_dropped"], c["tag_insert_failed"], c["open_cache_hits"]
    );
    out
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::render;

    #[test]
    fn says_whether_the_open_decision_cache_is_on_and_why_not() {
        let on = render(&json!({"open_decision_cache": {"state": "on"}}));
        assert!(
            on.contains("OPEN-DECISION CACHE\n  on\n"),
            "expected the cache shown as on, got:\n{on}"
        );
        let off = render(&json!({"open_decision_cache": {
            "state": "off",
            "reason": "/proc/kallsyms shows `rename_lock` at address 0",
        }}));
        assert!(
            off.contains("  off (/proc/kallsyms shows `rename_lock` at address 0)\n"),
            "expected the cache shown as off with its reason, got:\n{off}"
        );
    }
}
