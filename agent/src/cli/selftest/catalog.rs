//! The probes of `corral doctor --selftest`, one table per bypass class of issue 5.

use agent_common::{Backend, Op};

use crate::loader::Backends;

/// Which backend judges a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgedBy {
    Exec,
    Open,
    Connect,
    ConnectUnix,
    Sendmsg,
    /// An exec of a file of the kernel's internal mounts (a `memfd`), which Landlock does not
    /// judge: BPF LSM, else the kill backend's second judgement of every Landlock-confined exec.
    InternalExec,
    /// Only a BPF LSM guard sees it (see `corral doctor`'s guards table).
    Guard,
}

/// One probe: the operation tried and what must refuse it.
#[derive(Debug, Clone, Copy)]
pub struct ProbeSpec {
    pub class: &'static str,
    pub name: &'static str,
    /// The `__selftest-probe` arguments; `{dir}`, `{port}`, `{pid}`, `{loader}` are filled in.
    pub args: &'static [&'static str],
    /// The event `op` the refusal must be reported with.
    pub op: Op,
    pub judged_by: JudgedBy,
    /// Only BPF LSM claims to close it: a fallback backend's stated limits leave it open.
    pub lsm_only: bool,
}

const fn probe(
    class: &'static str,
    name: &'static str,
    args: &'static [&'static str],
    op: Op,
    judged_by: JudgedBy,
) -> ProbeSpec {
    ProbeSpec {
        class,
        name,
        args,
        op,
        judged_by,
        lsm_only: false,
    }
}

const fn lsm_only(spec: ProbeSpec) -> ProbeSpec {
    ProbeSpec {
        lsm_only: true,
        ..spec
    }
}

pub const PATH_ALIASES: &str = "path aliases";
pub const EXEC_WITHOUT_EXEC: &str = "exec without exec";
pub const NETWORK: &str = "network side doors";
pub const TAMPERING: &str = "tampering";
pub const IDENTITY: &str = "identity";
pub const LONG_PATHS: &str = "long paths";

/// Every probe, class by class.
pub const PROBES: &[ProbeSpec] = &[
    probe(
        PATH_ALIASES,
        "direct",
        &["open", "{dir}/denied/secret"],
        Op::Open,
        JudgedBy::Open,
    ),
    probe(
        PATH_ALIASES,
        "symlink",
        &["open", "{dir}/allowed/symlink"],
        Op::Open,
        JudgedBy::Open,
    ),
    probe(
        PATH_ALIASES,
        "dotdot",
        &["open", "{dir}/allowed/../denied/secret"],
        Op::Open,
        JudgedBy::Open,
    ),
    probe(
        PATH_ALIASES,
        "openat2",
        &["openat2", "{dir}/allowed/symlink"],
        Op::Open,
        JudgedBy::Open,
    ),
    // A hard link to the denied file, made by the task in the allowed directory. (One made
    // beforehand by someone else is not judged by the file's identity: not claimed, not probed.)
    probe(
        PATH_ALIASES,
        "hardlink",
        &["link", "{dir}/denied/secret", "{dir}/allowed/newlink"],
        Op::Link,
        JudgedBy::Guard,
    ),
    probe(
        EXEC_WITHOUT_EXEC,
        "exec-copy",
        &["exec", "{dir}/allowed/payload"],
        Op::Exec,
        JudgedBy::Exec,
    ),
    probe(
        EXEC_WITHOUT_EXEC,
        "execveat",
        &["execveat", "{dir}/allowed/payload"],
        Op::Exec,
        JudgedBy::Exec,
    ),
    // A memfd lies beneath no Landlock rule's hierarchy: the kill backend judges it there.
    probe(
        EXEC_WITHOUT_EXEC,
        "memfd",
        &["memfd-exec", "{dir}/allowed/payload"],
        Op::Exec,
        JudgedBy::InternalExec,
    ),
    // Landlock makes the ELF interpreter executable (see `corral doctor`).
    lsm_only(probe(
        EXEC_WITHOUT_EXEC,
        "ld.so",
        &["ldso", "{loader}", "{dir}/allowed/payload"],
        Op::Exec,
        JudgedBy::Exec,
    )),
    probe(
        EXEC_WITHOUT_EXEC,
        "mmap-exec",
        &["mmap-exec", "{dir}/allowed/payload"],
        Op::Mmap,
        JudgedBy::Guard,
    ),
    probe(
        NETWORK,
        "tcp-connect",
        &["connect", "127.0.0.1", "{port}"],
        Op::Connect,
        JudgedBy::Connect,
    ),
    probe(
        NETWORK,
        "udp-sendto",
        &["sendto", "127.0.0.1", "{port}"],
        Op::Sendmsg,
        JudgedBy::Sendmsg,
    ),
    probe(
        NETWORK,
        "ipv4-mapped",
        &["connect", "::ffff:127.0.0.1", "{port}"],
        Op::Connect,
        JudgedBy::Connect,
    ),
    probe(
        NETWORK,
        "ipv6",
        &["connect", "::1", "{port6}"],
        Op::Connect,
        JudgedBy::Connect,
    ),
    probe(
        NETWORK,
        "unix",
        &["unix", "{dir}/allowed/socket"],
        Op::Connect,
        JudgedBy::ConnectUnix,
    ),
    probe(NETWORK, "raw-socket", &["raw"], Op::Socket, JudgedBy::Guard),
    probe(TAMPERING, "bpf", &["bpf"], Op::Bpf, JudgedBy::Guard),
    probe(
        TAMPERING,
        "ptrace",
        &["ptrace", "{pid}"],
        Op::Ptrace,
        JudgedBy::Guard,
    ),
    probe(
        TAMPERING,
        "signal",
        &["signal", "{pid}"],
        Op::Signal,
        JudgedBy::Guard,
    ),
    probe(
        TAMPERING,
        "mount",
        &["mount", "{dir}/allowed/mnt"],
        Op::Mount,
        JudgedBy::Guard,
    ),
    probe(
        IDENTITY,
        "thread",
        &["thread-open", "{dir}/denied/secret"],
        Op::Open,
        JudgedBy::Open,
    ),
    probe(
        IDENTITY,
        "daemonised",
        &["daemon-open", "{dir}/denied/secret"],
        Op::Open,
        JudgedBy::Open,
    ),
    probe(
        LONG_PATHS,
        "deep-path",
        &["deep-open", "{dir}/denied"],
        Op::Open,
        JudgedBy::Open,
    ),
    probe(
        LONG_PATHS,
        "newline-name",
        &["open", "{dir}/denied/new\nline"],
        Op::Open,
        JudgedBy::Open,
    ),
];

/// The backend that judges `spec`'s operation on a host with `backends` and `guard` (BPF LSM
/// guards or none).
#[must_use]
pub const fn backend(
    spec: &ProbeSpec,
    backends: &Backends,
    guard: Option<Backend>,
) -> Option<Backend> {
    match spec.judged_by {
        JudgedBy::Exec => backends.exec,
        JudgedBy::Open => backends.open,
        JudgedBy::Connect => backends.connect,
        JudgedBy::ConnectUnix => backends.connect_unix,
        JudgedBy::Sendmsg => backends.sendmsg,
        JudgedBy::InternalExec => match backends.exec {
            Some(Backend::Lsm) => Some(Backend::Lsm),
            Some(_) => backends.selected_exec_open,
            None => None,
        },
        JudgedBy::Guard => guard,
    }
}

/// Whether `backend` claims to close `spec` (see `corral doctor`'s limits and guards).
#[must_use]
pub fn judged(spec: &ProbeSpec, backend: Option<Backend>) -> bool {
    backend.is_some_and(|b| !spec.lsm_only || b == Backend::Lsm)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::loader::Capabilities;

    fn judged_names(caps: Capabilities) -> Vec<&'static str> {
        let backends = Backends::choose(caps);
        let guard = crate::loader::guard_backend(caps);
        PROBES
            .iter()
            .filter(|p| judged(p, backend(p, &backends, guard)))
            .map(|p| p.name)
            .collect()
    }

    #[test]
    fn probe_names_are_unique_and_every_class_has_probes() {
        let mut names: Vec<&str> = PROBES.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROBES.len(), "expected unique probe names");
        for class in [
            PATH_ALIASES,
            EXEC_WITHOUT_EXEC,
            NETWORK,
            TAMPERING,
            IDENTITY,
            LONG_PATHS,
        ] {
            assert!(
                PROBES.iter().any(|p| p.class == class),
                "expected probes for class {class}"
            );
        }
    }

    #[test]
    fn bpf_lsm_judges_every_probe_and_the_fallbacks_only_what_they_claim() {
        let all = Capabilities {
            lsm: true,
            tp_btf: true,
            sock_addr: true,
            landlock: true,
        };
        assert_eq!(
            judged_names(all).len(),
            PROBES.len(),
            "BPF LSM judges every probe"
        );
        let fallback = judged_names(Capabilities { lsm: false, ..all });
        for name in [
            "hardlink",
            "ld.so",
            "mmap-exec",
            "unix",
            "raw-socket",
            "bpf",
        ] {
            assert!(
                !fallback.contains(&name),
                "expected {name} not judged without BPF LSM, judged: {fallback:?}"
            );
        }
        for name in [
            "symlink",
            "execveat",
            "memfd",
            "udp-sendto",
            "ipv4-mapped",
            "deep-path",
        ] {
            assert!(
                fallback.contains(&name),
                "expected {name} judged by a fallback, judged: {fallback:?}"
            );
        }
    }

    #[test]
    fn a_memfd_exec_under_landlock_is_judged_only_with_the_kill_backend() {
        let landlock_only = Capabilities {
            lsm: false,
            tp_btf: false,
            sock_addr: false,
            landlock: true,
        };
        assert!(
            !judged_names(landlock_only).contains(&"memfd"),
            "expected memfd not judged by Landlock alone (no BTF tracepoints, no kill backend)"
        );
        assert!(
            judged_names(landlock_only).contains(&"execveat"),
            "expected execveat of a copy judged by Landlock alone"
        );
    }
}
