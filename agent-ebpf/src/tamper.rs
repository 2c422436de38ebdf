//! What a confined process may never do, whatever its policy says: tamper with BPF (and so with
//! its own confinement), load kernel code, trace or signal processes outside its task, open
//! sockets whose traffic no Corral hook judges (raw, packet, SCTP, vsock, ...), change mounts,
//! or create hard links. Each hook allows untagged processes and, for tagged ones, refuses
//! (enforce) or reports (audit). All fail closed for tagged processes.

use agent_common::{Op, Reason};
use aya_ebpf::{
    helpers::{
        bpf_probe_read_kernel,
        generated::{bpf_get_current_task_btf, bpf_task_pt_regs},
    },
    macros::lsm,
    programs::LsmContext,
};

use crate::{
    context::{Caller, caller, tag_of},
    maps::offsets,
    privileges::granted,
    report::{Target, finish, lsm_verdict},
    socket_kinds::{SOCK_TYPE_MASK, privilege_with_lsm, socket_target},
};

/// x86-64 syscall number of `setns`.
const NR_SETNS: u64 = 308;
/// `setns` in the ia32 table (`int $0x80`); no 64-bit call has this number.
const IA32_SETNS: u64 = 346;

#[inline(always)]
fn forbid(op: Op, who: &Caller, target: &Target) -> i32 {
    lsm_verdict(finish(op, who, Some(Reason::Forbidden), target))
}

/// `bpf(int cmd, union bpf_attr *attr, unsigned int size, ...)`: every `bpf()` call. A confined
/// process could otherwise open Corral's own maps by id and delete its tag. Refused for tagged
/// processes.
#[lsm(hook = "bpf")]
pub fn corral_bpf(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let mut target = Target::empty();
    // Arg 0 of this hook is `int cmd`.
    target.access = ctx.arg::<i32>(0) as u32;
    forbid(Op::Bpf, &who, &target)
}

/// `socket_create(int family, int type, int protocol, int kern)`: every socket a process asks
/// for, from `socket(2)`, `socketpair(2)` or `io_uring`, before the family's module is looked up.
///
/// Allows untagged processes and kernel-internal sockets. A tagged process may create, without
/// any privilege, only the sockets whose traffic Corral's hooks judge (see `socket_kinds::privilege_with_lsm`):
/// `AF_UNIX`, and `AF_INET`/`AF_INET6` TCP, MPTCP, UDP and UDP-Lite. Everything else is refused
/// (`reason: forbidden`) unless the task's `spec.privileges` grants the privilege it needs:
/// a socket Corral cannot judge would let the task send data where no `connect` rule reaches
/// (an SCTP association set up by `sendmsg`, an ICMP echo, vsock to the hypervisor). Fails
/// closed for tagged processes.
#[lsm(hook = "socket_create")]
pub fn corral_socket_create(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    // The hook's four int arguments.
    let (family, ty, protocol, kern): (i32, i32, i32, i32) =
        (ctx.arg(0), ctx.arg(1), ctx.arg(2), ctx.arg(3));
    if kern != 0 {
        return 0;
    }
    let ty = ty & SOCK_TYPE_MASK;
    let privilege = privilege_with_lsm(family, ty, protocol);
    if privilege == 0 {
        return 0;
    }
    let target = socket_target(family, ty, protocol);
    if granted(&who, privilege) {
        return lsm_verdict(finish(Op::Socket, &who, None, &target));
    }
    forbid(Op::Socket, &who, &target)
}

/// tgid of a `struct task_struct *`, 0 if unreadable.
#[inline(always)]
fn task_tgid(task: *const u8) -> u32 {
    let off = offsets().task_tgid as usize;
    // SAFETY: fault-tolerant probe read at the BTF offset of `tgid`.
    unsafe { bpf_probe_read_kernel(task.add(off).cast::<u32>()) }.unwrap_or(0)
}

/// Whether `tgid` is confined by the same task as the caller.
#[inline(always)]
fn same_task(who: &Caller, tgid: u32) -> bool {
    tag_of(tgid).is_some_and(|tag| tag.task_id == who.task_id)
}

/// Whether the caller is in the `setns` syscall (its saved `orig_ax`, in either ABI: 308 is
/// `pselect6` in the ia32 table, which checks no ptrace access); false when unreadable.
#[inline(always)]
fn in_setns() -> bool {
    let off = offsets().regs_orig_ax as usize;
    // SAFETY: `bpf_task_pt_regs` of the current task gives its saved user registers; the
    // syscall number is probe-read at the BTF offset of `orig_ax`.
    unsafe {
        let regs = bpf_task_pt_regs(bpf_get_current_task_btf()) as *const u8;
        matches!(
            bpf_probe_read_kernel(regs.add(off).cast::<u64>()),
            Ok(NR_SETNS | IA32_SETNS)
        )
    }
}

/// `ptrace_access_check(struct task_struct *child, unsigned int mode)`: ptrace attach, and
/// everything that checks ptrace access (`process_vm_readv/writev`, `/proc/<pid>/mem`,
/// `pidfd_getfd`, `setns` with a pidfd, ...). A tagged process may reach only processes of its
/// own task. The check made by `setns` (which has no hook of its own) is reported as `Op::Setns`.
#[lsm(hook = "ptrace_access_check")]
pub fn corral_ptrace(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    // Arg 0 is `struct task_struct *`, arg 1 `unsigned int mode`.
    let (child, mode): (*const u8, u32) = (ctx.arg(0), ctx.arg(1));
    let tgid = task_tgid(child);
    if tgid != 0 && same_task(&who, tgid) {
        return 0;
    }
    let mut target = Target::empty();
    target.target_pid = tgid;
    target.access = mode;
    let op = if in_setns() { Op::Setns } else { Op::Ptrace };
    forbid(op, &who, &target)
}

/// `task_kill(struct task_struct *p, struct kernel_siginfo *info, int sig, const struct cred *)`:
/// signals sent by a tagged process (kill, tgkill, sigqueue, `pidfd_send_signal`) reach only
/// processes of its own task: the daemon, other agents and host services are out of reach.
/// Signal 0 (an existence check) is let through.
#[lsm(hook = "task_kill")]
pub fn corral_task_kill(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    // Arg 0 is `struct task_struct *`, arg 2 `int sig`.
    let (task, sig): (*const u8, i32) = (ctx.arg(0), ctx.arg(2));
    if sig == 0 {
        return 0;
    }
    let tgid = task_tgid(task);
    if tgid != 0 && same_task(&who, tgid) {
        return 0;
    }
    let mut target = Target::empty();
    target.target_pid = tgid;
    target.access = sig as u32;
    forbid(Op::Signal, &who, &target)
}

/// `kernel_read_file(struct file *, enum kernel_read_file_id id, bool contents)`: the kernel
/// reading a file on a tagged process's behalf to load it (`finit_module`, `kexec_file_load`,
/// firmware, IMA policy). Refused for tagged processes.
#[lsm(hook = "kernel_read_file")]
pub fn corral_kernel_read_file(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let mut target = Target::empty();
    // Arg 1 is the `enum kernel_read_file_id`.
    target.access = ctx.arg::<u32>(1);
    forbid(Op::KernelLoad, &who, &target)
}

/// `kernel_load_data(enum kernel_load_data_id id, bool contents)`: `init_module`, `kexec_load`
/// and other loads of kernel data from memory. Refused for tagged processes.
#[lsm(hook = "kernel_load_data")]
pub fn corral_kernel_load_data(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let mut target = Target::empty();
    // Arg 0 is the `enum kernel_load_data_id`.
    target.access = ctx.arg::<u32>(0);
    forbid(Op::KernelLoad, &who, &target)
}

/// `sb_mount(...)`: `mount(2)`, including bind mounts that would put a denied directory under an
/// allowed path. Refused for tagged processes.
#[lsm(hook = "sb_mount")]
pub fn corral_sb_mount(_ctx: LsmContext) -> i32 {
    match caller() {
        Some(who) => forbid(Op::Mount, &who, &Target::empty()),
        None => 0,
    }
}

/// `sb_umount(struct vfsmount *, int flags)`: unmounting (bpffs, the policy directory, ...).
/// Refused for tagged processes.
#[lsm(hook = "sb_umount")]
pub fn corral_sb_umount(_ctx: LsmContext) -> i32 {
    match caller() {
        Some(who) => forbid(Op::Mount, &who, &Target::empty()),
        None => 0,
    }
}

/// `move_mount(from_path, to_path)`: the new mount API's way to attach a mount. Refused for
/// tagged processes.
#[lsm(hook = "move_mount")]
pub fn corral_move_mount(_ctx: LsmContext) -> i32 {
    match caller() {
        Some(who) => forbid(Op::Mount, &who, &Target::empty()),
        None => 0,
    }
}

/// `sb_pivotroot(old_path, new_path)`: changing the root mount. Refused for tagged processes.
#[lsm(hook = "sb_pivotroot")]
pub fn corral_sb_pivotroot(_ctx: LsmContext) -> i32 {
    match caller() {
        Some(who) => forbid(Op::Mount, &who, &Target::empty()),
        None => 0,
    }
}

/// `path_chroot(const struct path *)`: `chroot(2)`. Refused for tagged processes: `bpf_d_path`
/// renders paths from the caller's root, so after a `chroot` into a directory the files beneath
/// it would be judged by shorter paths (`/home/u/.ssh/key` seen as `/.ssh/key`, `/srv/x/data/f`
/// as `/data/f`), which the task's rules were never written for.
#[lsm(hook = "path_chroot")]
pub fn corral_path_chroot(_ctx: LsmContext) -> i32 {
    match caller() {
        Some(who) => forbid(Op::Mount, &who, &Target::empty()),
        None => 0,
    }
}

/// `inode_link(struct dentry *old, struct inode *dir, struct dentry *new)`: hard links. A link
/// to a denied or unlisted file placed in an allowed directory would be judged by its new path;
/// confined processes may not create them (`link`, `linkat`, also with `AT_EMPTY_PATH`).
#[lsm(hook = "inode_link")]
pub fn corral_inode_link(_ctx: LsmContext) -> i32 {
    match caller() {
        Some(who) => forbid(Op::Link, &who, &Target::empty()),
        None => 0,
    }
}
