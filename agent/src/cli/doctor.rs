//! `corral doctor`: what this host can enforce, per operation, and the fix for what it cannot.

use std::fmt::Write as _;

use agent_common::Backend;
use serde_json::json;

use crate::loader::{
    Backends, Finding, GUARDED_OPS, Probe, guard_backend, guard_backend_of, guards_json,
};

/// How complete enforcement is here, as `corral doctor`'s exit code.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Every operation is refused in the kernel before it happens, for every confined process.
    Full = 0,
    /// Every operation is enforced, some by a fallback with stated limits (Landlock).
    Fallback = 1,
    /// Some operation cannot be enforced on this host.
    Incomplete = 2,
}

#[must_use]
pub fn verdict(backends: &Backends) -> Verdict {
    if !backends.unenforced().is_empty() {
        Verdict::Incomplete
    } else if backends.needs_landlock() {
        Verdict::Fallback
    } else {
        Verdict::Full
    }
}

/// Limits of each backend, stated plainly.
#[must_use]
pub const fn limits(backend: Backend) -> &'static str {
    match backend {
        Backend::Lsm => "refused in the kernel before it happens; every confined process",
        Backend::CgroupSockAddr => {
            "IPv4/IPv6 only; refused before the connect/send; every confined process"
        }
        Backend::Landlock => {
            "only processes started with `corral run`; rules fixed at launch (paths created later are refused); refusals are EACCES, reported with the path as the caller gave it; the ELF interpreter is executable, so `ld.so PROGRAM` runs any readable program"
        }
        Backend::Kill => {
            "after the fact: the exec or open succeeds, then the process is killed (SIGKILL) before it returns to user space; a write open has already truncated/created its file; io_uring rings are killed at creation unless spec.privileges grants io_uring, and then their operations are not seen"
        }
    }
}

#[must_use]
pub fn to_json(probe: &Probe) -> serde_json::Value {
    let backends = probe.backends();
    json!({
        "verdict": match verdict(&backends) {
            Verdict::Full => "full",
            Verdict::Fallback => "fallback",
            Verdict::Incomplete => "incomplete",
        },
        "backends": backends.to_json(),
        "guards": guards_json(probe.caps),
        "identity": super::doctor_identity::identity_json(probe.caps),
        "kernel": probe.kernel,
        "active_lsms": probe.active_lsms,
        "btf": probe.btf,
        "cgroup2": probe.cgroup2,
        "landlock_abi": probe.landlock_abi,
        "bpffs": probe.bpffs,
        "findings": findings(probe),
    })
}

/// The table for people.
#[must_use]
pub fn render(probe: &Probe) -> String {
    let backends = probe.backends();
    let mut out = String::new();
    let _ = writeln!(out, "{:<13} {:<18} LIMITS", "OPERATION", "BACKEND");
    for (op, backend) in backends.by_op() {
        let _ = match backend {
            Some(b) => writeln!(out, "{op:<13} {:<18} {}", b.as_str(), limits(b)),
            None => writeln!(out, "{op:<13} {:<18} not enforced on this host", "NONE"),
        };
    }
    let _ = writeln!(out);
    let _ = writeln!(out, "{:<13} {:<18} COVERS", "GUARD", "BACKEND");
    let guard = guard_backend(probe.caps);
    for op in GUARDED_OPS {
        let backend = guard_backend_of(op, probe.caps).map_or("NONE", Backend::as_str);
        let _ = writeln!(
            out,
            "{:<13} {backend:<18} {}",
            op.as_str(),
            crate::loader::guard_covers(op)
        );
    }
    if guard.is_none() {
        let _ = writeln!(
            out,
            "(no BPF LSM: a confined process is not stopped from the guarded operations; sockets only by a kill after their creation, where the kill backend runs)"
        );
    }
    let _ = writeln!(out);
    super::doctor_identity::render_identity(probe.caps, &mut out);
    let _ = writeln!(out);
    let _ = writeln!(out, "kernel        {}", probe.kernel);
    let _ = writeln!(out, "active LSMs   {}", probe.active_lsms.join(","));
    let _ = writeln!(out, "BTF           {}", yes_no(probe.btf));
    let _ = writeln!(
        out,
        "cgroup v2     {}",
        probe
            .cgroup2
            .as_ref()
            .map_or_else(|| "not mounted".to_owned(), |p| p.display().to_string())
    );
    let _ = writeln!(
        out,
        "Landlock ABI  {}",
        probe
            .landlock_abi
            .map_or_else(|| "unavailable".to_owned(), |a| a.to_string())
    );
    let _ = writeln!(
        out,
        "bpffs         {}",
        if probe.bpffs {
            "mounted"
        } else {
            "not mounted"
        }
    );
    let _ = writeln!(out);
    for f in &findings(probe) {
        let mark = if f.available { "ok " } else { "MISSING" };
        let _ = writeln!(out, "{mark:<7} {:<17} {}", f.mechanism, f.detail);
        if let Some(fix) = &f.fix {
            let _ = writeln!(out, "        fix: {fix}");
        }
    }
    let _ = writeln!(
        out,
        "\n{}",
        match verdict(&backends) {
            Verdict::Full => "full enforcement available",
            Verdict::Fallback => "enforcement available with fallbacks (see limits above)",
            Verdict::Incomplete => "INCOMPLETE: some operations cannot be enforced on this host",
        }
    );
    out
}

/// The probe's findings, and what the daemon's DNS proxy needs beyond the programs.
fn findings(probe: &Probe) -> Vec<Finding> {
    let mut all = probe.findings.clone();
    all.push(sock_diag_finding(crate::daemon::check_client_lookup()));
    all
}

/// Whether the DNS proxy can tell which task sent a query (`NETLINK_SOCK_DIAG` look-ups of
/// UDP and TCP sockets): without it, tasks with wildcard hosts get no DNS answers.
fn sock_diag_finding(lookup: Result<(), String>) -> Finding {
    match lookup {
        Ok(()) => Finding {
            mechanism: "sock_diag",
            available: true,
            detail: "the DNS proxy finds its clients' UDP and TCP sockets (wildcard hosts)"
                .to_owned(),
            fix: None,
        },
        Err(problem) => Finding {
            mechanism: "sock_diag",
            available: false,
            detail: format!(
                "{problem}: the DNS proxy cannot tell which task asked, so tasks with wildcard \
                 hosts get no DNS answers and their wildcard rules allow nothing"
            ),
            fix: Some(
                "load inet_diag, udp_diag and tcp_diag (`modprobe -a inet_diag udp_diag \
                 tcp_diag`; name them in /etc/modules-load.d/ to load them at boot)"
                    .to_owned(),
            ),
        },
    }
}

const fn yes_no(b: bool) -> &'static str {
    if b { "present" } else { "missing" }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::Capabilities;

    #[test]
    fn a_failed_socket_lookup_is_a_missing_sock_diag_with_the_modules_to_load() {
        let f = sock_diag_finding(Err(
            "UDP sockets are not found (is udp_diag available?)".into()
        ));
        assert!(!f.available, "a failed look-up must be reported missing");
        assert!(
            f.detail.contains("udp_diag") && f.detail.contains("wildcard"),
            "the detail must say what failed and what it costs: {}",
            f.detail
        );
        assert!(
            f.fix
                .as_deref()
                .is_some_and(|fix| fix.contains("modprobe -a inet_diag udp_diag")),
            "the fix must name the modules: {:?}",
            f.fix
        );
        assert!(sock_diag_finding(Ok(())).available);
    }

    #[test]
    fn verdicts() {
        let all = Capabilities {
            lsm: true,
            tp_btf: true,
            sock_addr: true,
            landlock: true,
        };
        assert_eq!(verdict(&Backends::choose(all)), Verdict::Full);
        // Without BPF LSM, unix-socket connects have no backend: never "full" or "fallback".
        assert_eq!(
            verdict(&Backends::choose(Capabilities { lsm: false, ..all })),
            Verdict::Incomplete
        );
        let landlock_only_files = Backends {
            connect_unix: Some(Backend::Lsm),
            ..Backends::choose(Capabilities { lsm: false, ..all })
        };
        assert_eq!(verdict(&landlock_only_files), Verdict::Fallback);
        assert_eq!(
            verdict(&Backends::choose(Capabilities {
                lsm: false,
                landlock: false,
                ..all
            })),
            Verdict::Incomplete
        );
    }
}
