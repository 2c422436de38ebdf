//! `corral doctor`'s identity rows: which backend denies a hard link to a `files.deny` file made
//! by an unconfined process (the file judged by device and inode as well as by path), per way a
//! process is confined. Landlock judges paths only, so under it opens are not judged this way.

use std::fmt::Write as _;

use agent_common::Backend;
use serde_json::json;

use crate::loader::Capabilities;

/// `(what, backend)` rows: `None` where nothing judges by identity on a host with `caps`.
#[must_use]
pub fn identity_rows(caps: Capabilities) -> [(&'static str, Option<Backend>); 3] {
    let lsm = (caps.lsm && caps.tp_btf).then_some(Backend::Lsm);
    // Without BPF LSM the kill observer (BTF tracepoints) judges execs of every tagged process
    // and opens of the processes Landlock does not confine (selector-joined).
    let kill = caps.tp_btf.then_some(Backend::Kill);
    [
        ("run_open", lsm),
        ("run_exec", lsm.or(kill)),
        ("selected", lsm.or(kill)),
    ]
}

/// `{"run_open":"lsm",...}`, `null` where nothing judges by identity.
#[must_use]
pub fn identity_json(caps: Capabilities) -> serde_json::Value {
    identity_rows(caps)
        .iter()
        .map(|(what, b)| {
            (
                (*what).to_owned(),
                b.map_or(serde_json::Value::Null, |b| json!(b.as_str())),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

/// The rows for people, appended to `out`.
pub fn render_identity(caps: Capabilities, out: &mut String) {
    let _ = writeln!(out, "{:<13} {:<18} COVERS", "IDENTITY", "BACKEND");
    for (what, backend) in identity_rows(caps) {
        let covers = match what {
            "run_open" => "opens of `corral run` processes",
            "run_exec" => "execs of `corral run` processes",
            _ => "execs and opens of selector-joined processes",
        };
        let backend = backend.map_or("NONE", Backend::as_str);
        let _ = writeln!(out, "{what:<13} {backend:<18} {covers}");
    }
    let _ = writeln!(
        out,
        "(hard links made by unconfined processes to files.deny files, judged by device and inode; Landlock judges paths only; files created beneath a deny rule count from the next reload)"
    );
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn landlock_hosts_do_not_judge_opens_by_identity() {
        let fallback = Capabilities {
            lsm: false,
            tp_btf: true,
            sock_addr: true,
            landlock: true,
        };
        let json = identity_json(fallback);
        assert_eq!(
            json,
            json!({"run_open": null, "run_exec": "kill", "selected": "kill"}),
            "expected Landlock opens unjudged by identity, execs judged by the kill backend"
        );
        let full = Capabilities {
            lsm: true,
            ..fallback
        };
        assert_eq!(
            identity_json(full),
            json!({"run_open": "lsm", "run_exec": "lsm", "selected": "lsm"}),
            "expected BPF LSM to judge every open and exec by identity"
        );
        let mut out = String::new();
        render_identity(fallback, &mut out);
        assert!(
            out.contains("run_open      NONE"),
            "expected the table to say NONE for Landlock opens:\n{out}"
        );
    }
}
