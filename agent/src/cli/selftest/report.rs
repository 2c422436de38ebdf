//! The selftest report: one aligned line per probe, grouped by class, or JSON.

use std::fmt::Write as _;

use serde_json::json;

use super::Outcome;

/// The table for people.
#[must_use]
pub fn render(outcomes: &[Outcome]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "{:<19} {:<13} {:<17} {:<26} DETAIL",
        "CLASS", "PROBE", "BACKEND", "RESULT"
    );
    for o in outcomes {
        let backend = o.backend.map_or("NONE", agent_common::Backend::as_str);
        let _ = writeln!(
            out,
            "{:<19} {:<13} {:<17} {:<26} {}",
            o.spec.class,
            o.spec.name,
            backend,
            o.status.as_str(),
            o.detail
        )
        .map(|()| ());
    }
    let failing = outcomes.iter().filter(|o| o.status.fails()).count();
    let _ = writeln!(
        out,
        "\n{}",
        if failing == 0 {
            "every probe this host claims to close is closed".to_owned()
        } else {
            format!("{failing} probe(s) this host claims to close are NOT closed")
        }
    );
    out
}

/// The report for machines.
#[must_use]
pub fn to_json(outcomes: &[Outcome]) -> serde_json::Value {
    json!({
        "ok": !outcomes.iter().any(|o| o.status.fails()),
        "probes": outcomes.iter().map(|o| json!({
            "class": o.spec.class,
            "probe": o.spec.name,
            "op": o.spec.op.as_str(),
            "backend": o.backend.map(agent_common::Backend::as_str),
            "result": match o.status {
                super::Status::Closed => "closed",
                super::Status::Open => "open",
                super::Status::NoEvent => "no_event",
                super::Status::NotJudged => "not_judged",
                super::Status::Unavailable => "unavailable",
                super::Status::Error => "error",
            },
            "detail": o.detail,
        })).collect::<Vec<_>>(),
    })
}
