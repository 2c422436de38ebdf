//! The probes of `corral doctor --selftest`, one table per bypass class of issue 5.

use agent_common::{Backend, Op};

use crate::loader::Backends;

/// Which backend judges a probe.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum JudgedBy {
    Exec,
    Open,
    Connect,
    /// A unix connect, or an unconnected unix datagram (judged like one at `sendmsg`): only the
    /// BPF LSM hooks see unix addresses.
    ConnectUnix,
    Sendmsg,
    /// An exec of a file of the kernel's internal mounts (a `memfd`), which Landlock does not
    /// judge: BPF LSM, else the kill backend's second judgement of every Landlock-confined exec.
    InternalExec,
    /// Only a BPF LSM guard sees it (see `corral doctor`'s guards table).
    Guard,
    /// The creation of a socket no connect or send hook judges: BPF LSM's `socket_create` guard
    /// refuses it; without BPF LSM the kill backend kills its creator (`sys_exit` of `socket`).
    SocketGuard,
    /// A change to a file or a new entry made without an open (`truncate`, `mkdir`, `mknod`,
    /// `symlink`, ...): BPF LSM (`op: setattr`, `op: create`), else Landlock's write rights from
    /// ABI `since_abi` on (`truncate` came with ABI 3); Landlock does not report these refusals.
    FileChange {
        since_abi: u32,
    },
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
pub const OTHER_SOCKETS: &str = "other sockets";
pub const WRITES_WITHOUT_OPEN: &str = "writes without open";
pub const DETACHED_TREES: &str = "detached mounts";
pub const IA32: &str = "32-bit syscalls";

/// Every class, in report order.
pub const CLASSES: [&str; 10] = [
    PATH_ALIASES,
    EXEC_WITHOUT_EXEC,
    NETWORK,
    OTHER_SOCKETS,
    TAMPERING,
    IDENTITY,
    LONG_PATHS,
    WRITES_WITHOUT_OPEN,
    DETACHED_TREES,
    IA32,
];

/// Landlock judges creating entries from its first ABI, truncating from ABI 3.
const CREATE: JudgedBy = JudgedBy::FileChange { since_abi: 1 };
const TRUNCATE: JudgedBy = JudgedBy::FileChange { since_abi: 3 };

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
    // An unconnected datagram to a unix socket: judged like a unix connect, at `sendmsg`.
    probe(
        NETWORK,
        "unix-dgram",
        &["unix-sendto", "{dir}/allowed/dgram"],
        Op::Sendmsg,
        JudgedBy::ConnectUnix,
    ),
    probe(
        NETWORK,
        "raw-socket",
        &["raw"],
        Op::Socket,
        JudgedBy::SocketGuard,
    ),
    // Sockets no connect or send hook judges: refused at creation without `spec.privileges`.
    probe(
        OTHER_SOCKETS,
        "sctp-socket",
        &["socket", "sctp"],
        Op::Socket,
        JudgedBy::SocketGuard,
    ),
    probe(
        OTHER_SOCKETS,
        "vsock-socket",
        &["socket", "vsock"],
        Op::Socket,
        JudgedBy::SocketGuard,
    ),
    probe(
        OTHER_SOCKETS,
        "ping-socket",
        &["socket", "ping"],
        Op::Socket,
        JudgedBy::SocketGuard,
    ),
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
    // After a chroot, BPF LSM would render paths from the new root.
    probe(
        TAMPERING,
        "chroot",
        &["chroot", "{dir}/allowed"],
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
    // A file the task may only read, changed without opening it.
    probe(
        WRITES_WITHOUT_OPEN,
        "truncate",
        &["truncate", "{dir}/readonly/file"],
        Op::Setattr,
        TRUNCATE,
    ),
    // Landlock has no right for attributes: only the BPF LSM guard judges these.
    probe(
        WRITES_WITHOUT_OPEN,
        "chmod",
        &["chmod", "{dir}/readonly/file"],
        Op::Setattr,
        JudgedBy::Guard,
    ),
    probe(
        WRITES_WITHOUT_OPEN,
        "chown",
        &["chown", "{dir}/readonly/file"],
        Op::Setattr,
        JudgedBy::Guard,
    ),
    // New entries in a directory the task may only read.
    probe(
        WRITES_WITHOUT_OPEN,
        "mkdir",
        &["mkdir", "{dir}/readonly/dir"],
        Op::Create,
        CREATE,
    ),
    probe(
        WRITES_WITHOUT_OPEN,
        "new-symlink",
        &["symlink", "../allowed/plain", "{dir}/readonly/link"],
        Op::Create,
        CREATE,
    ),
    probe(
        WRITES_WITHOUT_OPEN,
        "mkfifo",
        &["mknod", "{dir}/readonly/fifo", "fifo"],
        Op::Create,
        CREATE,
    ),
    // A device node, even where the task may write: it would reach the device under an
    // allowed path.
    probe(
        WRITES_WITHOUT_OPEN,
        "device-node",
        &["mknod", "{dir}/allowed/null", "char"],
        Op::Create,
        CREATE,
    ),
    // The denied file through a detached copy of its directory, and of the fixture tree: paths
    // there are rendered from the copy's root (`/secret`, `/denied/secret`).
    probe(
        DETACHED_TREES,
        "tree-clone",
        &["tree-open", "{dir}/denied", "secret"],
        Op::Open,
        JudgedBy::Open,
    ),
    probe(
        DETACHED_TREES,
        "tree-clone-up",
        &["tree-open", "{dir}", "denied/secret"],
        Op::Open,
        JudgedBy::Open,
    ),
    // The same operations through the ia32 table (`int $0x80` from this 64-bit process): other
    // call numbers, the same hooks.
    probe(
        IA32,
        "ia32-open",
        &["ia32-open", "{dir}/denied/secret"],
        Op::Open,
        JudgedBy::Open,
    ),
    probe(
        IA32,
        "ia32-raw-socket",
        &["ia32-raw"],
        Op::Socket,
        JudgedBy::SocketGuard,
    ),
];

/// The backend that judges `spec`'s operation on a host with `backends`, `guard` (BPF LSM
/// guards or none) and Landlock at `landlock_abi`.
#[must_use]
pub const fn backend(
    spec: &ProbeSpec,
    backends: &Backends,
    guard: Option<Backend>,
    landlock_abi: Option<u32>,
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
        JudgedBy::SocketGuard => match (guard, backends.selected_exec_open) {
            (Some(g), _) => Some(g),
            // The kill backend runs wherever tagging does without BPF LSM.
            (None, Some(Backend::Kill)) => Some(Backend::Kill),
            (None, _) => None,
        },
        JudgedBy::FileChange { since_abi } => match (backends.open, landlock_abi) {
            (Some(Backend::Lsm), _) => Some(Backend::Lsm),
            (Some(Backend::Landlock), Some(abi)) if abi >= since_abi => Some(Backend::Landlock),
            _ => None,
        },
    }
}

/// Whether `backend` reports its refusal of `spec` as an event: Landlock's refusals are seen
/// only for the open and exec families (at `sys_exit`).
#[must_use]
pub const fn reported(spec: &ProbeSpec, backend: Backend) -> bool {
    !matches!(backend, Backend::Landlock) || matches!(spec.op, Op::Open | Op::Exec)
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

    /// The Landlock ABI of the kernels this is tested on (6.12 has 6, this host's 6.18 has 7).
    const ABI: Option<u32> = Some(6);

    fn judged_names(caps: Capabilities, abi: Option<u32>) -> Vec<&'static str> {
        let backends = Backends::choose(caps);
        let guard = crate::loader::guard_backend(caps);
        PROBES
            .iter()
            .filter(|p| judged(p, backend(p, &backends, guard, abi)))
            .map(|p| p.name)
            .collect()
    }

    #[test]
    fn probe_names_are_unique_and_every_class_has_probes() {
        let mut names: Vec<&str> = PROBES.iter().map(|p| p.name).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), PROBES.len(), "expected unique probe names");
        for class in CLASSES {
            assert!(
                PROBES.iter().any(|p| p.class == class),
                "expected probes for class {class}"
            );
        }
        let mut order: Vec<&str> = PROBES.iter().map(|p| p.class).collect();
        order.dedup();
        assert_eq!(
            order, CLASSES,
            "expected each class's probes together, in the order of CLASSES"
        );
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
            judged_names(all, ABI).len(),
            PROBES.len(),
            "BPF LSM judges every probe"
        );
        assert_eq!(
            judged_names(all, None).len(),
            PROBES.len(),
            "BPF LSM judges every probe, whatever Landlock offers"
        );
        let fallback = judged_names(Capabilities { lsm: false, ..all }, ABI);
        for name in [
            "hardlink",
            "ld.so",
            "mmap-exec",
            "unix",
            "unix-dgram",
            "bpf",
            "chmod",
            "chown",
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
            "raw-socket",
            "sctp-socket",
            "vsock-socket",
            "ping-socket",
            "udp-sendto",
            "ipv4-mapped",
            "deep-path",
            "truncate",
            "mkdir",
            "new-symlink",
            "mkfifo",
            "device-node",
            "tree-clone",
            "tree-clone-up",
            "ia32-open",
            "ia32-raw-socket",
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
            !judged_names(landlock_only, ABI).contains(&"memfd"),
            "expected memfd not judged by Landlock alone (no BTF tracepoints, no kill backend)"
        );
        assert!(
            judged_names(landlock_only, ABI).contains(&"execveat"),
            "expected execveat of a copy judged by Landlock alone"
        );
    }

    #[test]
    fn landlock_judges_truncate_from_abi_3_and_new_entries_from_abi_1() {
        let landlock_only = Capabilities {
            lsm: false,
            tp_btf: false,
            sock_addr: false,
            landlock: true,
        };
        let v2 = judged_names(landlock_only, Some(2));
        assert!(
            !v2.contains(&"truncate") && v2.contains(&"mkdir") && v2.contains(&"device-node"),
            "expected Landlock ABI 2 (Linux 6.1) to judge new entries but not truncate: {v2:?}"
        );
        assert!(
            judged_names(landlock_only, Some(3)).contains(&"truncate"),
            "expected Landlock ABI 3 to judge truncate"
        );
        let none = judged_names(
            Capabilities {
                landlock: false,
                ..landlock_only
            },
            None,
        );
        assert!(
            none.is_empty(),
            "expected nothing judged without any backend: {none:?}"
        );
    }

    #[test]
    fn landlock_reports_only_its_open_and_exec_refusals() {
        let by_name = |name: &str| {
            PROBES
                .iter()
                .find(|p| p.name == name)
                .unwrap_or_else(|| panic!("expected a probe named {name}"))
        };
        assert!(reported(by_name("tree-clone"), Backend::Landlock));
        assert!(reported(by_name("execveat"), Backend::Landlock));
        assert!(
            !reported(by_name("mkdir"), Backend::Landlock)
                && !reported(by_name("truncate"), Backend::Landlock),
            "expected Landlock's refusals of new entries and truncate unreported"
        );
        assert!(
            reported(by_name("mkdir"), Backend::Lsm) && reported(by_name("chmod"), Backend::Lsm),
            "expected BPF LSM to report every refusal"
        );
    }
}
