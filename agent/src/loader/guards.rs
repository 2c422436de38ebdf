//! The guards: operations only BPF LSM hooks judge, whatever the policy's allow-lists (renames
//! and removals, executable file mappings, and what a confined process may never do). The
//! fallback backends see almost none of them, so `corral doctor` lists them apart; two have a
//! fallback of their own in the kill backend (`socket`, and `io_uring`, which exists for the
//! fallbacks alone).

use agent_common::{Backend, Op};

use super::Capabilities;

/// The guarded operations, as event `op` names, in display order.
pub const GUARDED_OPS: [Op; 15] = [
    Op::Rename,
    Op::Unlink,
    Op::Create,
    Op::Setattr,
    Op::Mmap,
    Op::Link,
    Op::Mount,
    Op::Bpf,
    Op::KernelLoad,
    Op::Ptrace,
    Op::Signal,
    Op::Socket,
    Op::Perf,
    Op::Userfaultfd,
    Op::IoUring,
];

/// What a guard covers, for `corral doctor`.
#[must_use]
pub const fn covers(op: Op) -> &'static str {
    match op {
        Op::Rename => "rename/renameat2 at both paths; directories holding a files.deny path",
        Op::Unlink => "unlink, rmdir",
        Op::Create => "mknod, mkdir, symlink, open(O_CREAT) of a new name; device nodes",
        Op::Setattr => "truncate, chmod, chown",
        Op::Mmap => "mmap/mprotect PROT_EXEC of files",
        Op::Link => "hard links",
        Op::Mount => "mount, umount, move_mount, pivot_root, chroot",
        Op::Bpf => "bpf()",
        Op::KernelLoad => "module, kexec and firmware loads",
        Op::Ptrace | Op::Setns => {
            "ptrace, process_vm_*, /proc/<pid>/mem, setns and /proc/<pid>/ns outside the task"
        }
        Op::Signal => "signals outside the task",
        Op::Socket => {
            "sockets other than unix, TCP and UDP: raw, ping, packet, netlink, SCTP, vsock, ... \
             (unless spec.privileges)"
        }
        Op::Perf => "perf_event_open (unless spec.privileges)",
        Op::Userfaultfd => "userfaultfd, /dev/userfaultfd (unless spec.privileges)",
        Op::IoUring => {
            "io_uring rings where their operations go unjudged: without BPF LSM only \
             (unless spec.privileges)"
        }
        Op::Exec | Op::Open | Op::Connect | Op::Sendmsg => "",
    }
}

/// The backend of the guards on a host with `caps`: BPF LSM (with tagging), or nothing. The
/// `socket` guard alone has a fallback (`guard_backend_of`).
#[must_use]
pub fn guard_backend(caps: Capabilities) -> Option<Backend> {
    (caps.lsm && caps.tp_btf).then_some(Backend::Lsm)
}

/// The backend of guard `op` on a host with `caps`: BPF LSM (for `io_uring`: its hooks judge
/// every operation a ring runs, so rings need no guard of their own); without it, for `socket`
/// and `io_uring` only, the kill backend (which sees every `socket(2)` and `io_uring_setup(2)`
/// return and kills the creator of a socket no fallback hook judges, or of a ring); else
/// nothing.
#[must_use]
pub fn guard_backend_of(op: Op, caps: Capabilities) -> Option<Backend> {
    match guard_backend(caps) {
        Some(b) => Some(b),
        None if matches!(op, Op::Socket | Op::IoUring) && caps.tp_btf => Some(Backend::Kill),
        None => None,
    }
}

/// `{"rename":"lsm",...}`, `null` where nothing on this host judges the guard.
#[must_use]
pub fn guards_json(caps: Capabilities) -> serde_json::Value {
    GUARDED_OPS
        .iter()
        .map(|op| {
            (
                op.as_str().to_owned(),
                guard_backend_of(*op, caps).map_or(serde_json::Value::Null, |b| b.as_str().into()),
            )
        })
        .collect::<serde_json::Map<_, _>>()
        .into()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guards_need_bpf_lsm_and_tagging() {
        let lsm = Capabilities {
            lsm: true,
            tp_btf: true,
            sock_addr: true,
            landlock: true,
        };
        assert_eq!(guard_backend(lsm), Some(Backend::Lsm));
        assert_eq!(guards_json(lsm)["userfaultfd"], "lsm");
        let fallback = Capabilities { lsm: false, ..lsm };
        assert_eq!(
            guard_backend(fallback),
            None,
            "Landlock, kill and sock_addr see none of the other guards"
        );
        let json = guards_json(fallback);
        assert_eq!(json["rename"], serde_json::Value::Null);
        assert_eq!(
            json["socket"], "kill",
            "the kill backend sees every socket(2) return"
        );
        assert_eq!(
            json["io_uring"], "kill",
            "the kill backend sees every io_uring_setup(2) return"
        );
        assert_eq!(
            guards_json(Capabilities {
                tp_btf: false,
                ..fallback
            })["socket"],
            serde_json::Value::Null,
            "no kill backend without BTF tracepoints"
        );
        assert_eq!(
            json.as_object().map(serde_json::Map::len),
            Some(GUARDED_OPS.len())
        );
        assert!(
            GUARDED_OPS.iter().all(|op| !covers(*op).is_empty()),
            "every guard says what it covers"
        );
    }
}
