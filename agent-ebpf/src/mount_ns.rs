//! Whether a file lies outside the caller's mount namespace: on a detached mount tree
//! (`open_tree(OPEN_TREE_CLONE)`, `fsmount`), on a lazily unmounted one, or in another
//! namespace. Paths there are rendered relative to that tree's own root (`bpf_d_path` and the
//! dentry walks stop there): `/etc` cloned with `open_tree` and opened as `shadow` would be judged
//! as `/shadow`, a path no rule names the way the caller sees the file. For a tagged process such
//! a file is a miss (`path_unresolved`).

use agent_common::{Op, Reason};
use aya_ebpf::helpers::{bpf_get_current_task, bpf_probe_read_kernel};

use crate::{
    context::Caller,
    maps::offsets,
    report::{Target, finish},
};

/// `MNT_NS_INTERNAL` (`ERR_PTR(-EINVAL)`): the namespace of the kernel's internal mounts (pipes,
/// sockets, `memfd`, anonymous inodes). Their files have no path in any namespace; they are
/// judged by their pseudo path, as before.
const MNT_NS_INTERNAL: u64 = (-22_i64).cast_unsigned();

/// `-EXDEV`: the event's `path_error` for a file outside the caller's mount namespace.
const EXDEV: i32 = -18;

/// True when `vfsmount` (a `struct vfsmount *`) is not a mount of the calling task's mount
/// namespace nor a kernel-internal mount. An unreadable field counts as outside: for a tagged
/// process a doubt is a miss.
#[inline(always)]
fn outside_caller_ns(vfsmount: *const u8) -> bool {
    let off = offsets();
    // SAFETY: fault-tolerant probe reads at BTF offsets; `struct mount` embeds the `vfsmount`
    // at `mount_mnt`.
    unsafe {
        let mount = vfsmount.wrapping_sub(off.mount_mnt as usize);
        let Ok(ns) =
            bpf_probe_read_kernel(mount.wrapping_add(off.mount_mnt_ns as usize).cast::<u64>())
        else {
            return true;
        };
        if ns == MNT_NS_INTERNAL {
            return false;
        }
        let task = bpf_get_current_task() as *const u8;
        let Ok(nsproxy) = bpf_probe_read_kernel(
            task.wrapping_add(off.task_nsproxy as usize)
                .cast::<*const u8>(),
        ) else {
            return true;
        };
        let Ok(mine) = bpf_probe_read_kernel(
            nsproxy
                .wrapping_add(off.nsproxy_mnt_ns as usize)
                .cast::<u64>(),
        ) else {
            return true;
        };
        ns != mine
    }
}

/// `outside_caller_ns` of the mount of `struct path *path`.
#[inline(always)]
fn path_outside_caller_ns(path: *const u8) -> bool {
    let off = offsets();
    // SAFETY: fault-tolerant probe read of `path->mnt`.
    match unsafe {
        bpf_probe_read_kernel(path.wrapping_add(off.path_mnt as usize).cast::<*const u8>())
    } {
        Ok(mnt) => outside_caller_ns(mnt),
        Err(_) => true,
    }
}

/// The refusal of a file outside the caller's mount namespace, shared by every hook that judges
/// a file by its path: when the mount of `struct path *path` is foreign (`path_outside_caller_ns`),
/// finishes the hook as a `path_unresolved` miss with `path_error` `EXDEV` in `target` and
/// returns its verdict; `None` when the file is in the caller's namespace (judge it by its path).
#[inline(always)]
pub fn refuse_foreign(op: Op, who: &Caller, path: *const u8, target: &mut Target) -> Option<i32> {
    if !path_outside_caller_ns(path) {
        return None;
    }
    target.path_error = EXDEV;
    Some(finish(op, who, Some(Reason::PathUnresolved), target))
}

/// True when `mount` (a `struct mount *`) is a kernel-internal mount (`MNT_NS_INTERNAL`: pipes,
/// sockets, `memfd`, anonymous inodes), whose files have no path and are named by their pseudo
/// name. An unreadable namespace counts as not internal: for a tagged process a doubt is a miss.
#[inline(always)]
pub fn internal_mount(mount: *const u8) -> bool {
    // SAFETY: a fault-tolerant probe read at its BTF offset.
    unsafe {
        bpf_probe_read_kernel(
            mount
                .wrapping_add(offsets().mount_mnt_ns as usize)
                .cast::<u64>(),
        )
    }
    .is_ok_and(|ns| ns == MNT_NS_INTERNAL)
}
