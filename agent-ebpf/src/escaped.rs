//! Files reached by no path from the caller's root: a dentry walk that meets a dentry which is
//! its own parent (`IS_ROOT`) without being the root of the mount it is on. The kernel's
//! `__prepend_path` (`fs/d_path.c`, 6.1 and 6.12) stops there ("Escaped?", its result 3) and
//! `prepend_path` then throws away every name it had prepended, so `d_path` and `bpf_d_path` name
//! such a file `/`: a tagged process allowed to read `/` would be allowed any file reached so.
//!
//! Two ways to reach one, both through `open_by_handle_at` (`CAP_DAC_READ_SEARCH`), which decodes
//! a handle on the mount of the descriptor it is given and accepts any dentry of that file
//! system (`vfs_dentry_acceptable`):
//! - a disconnected dentry (`DCACHE_DISCONNECTED`): a non-directory whose dentry was not cached
//!   (on an exportable disk file system after the dcache dropped it) is decoded by
//!   `d_obtain_alias` into an anonymous `IS_ROOT` dentry, never reconnected to its parent
//!   (`exportfs_decode_fh`, `fs/exportfs/expfs.c`, reconnects directories only: a directory is
//!   reconnected before `open_by_handle_at` returns, or the call fails with `ESTALE`). An
//!   ancestor that is disconnected while the walk runs (a directory being reconnected) makes
//!   `d_path` render `/` just the same, and is caught the same way: the checks look at where the
//!   walk stops, not at which dentry is disconnected. `DCACHE_DISCONNECTED` itself is not used:
//!   it only says a dentry *may* be disconnected (it stays set on reconnected directories until
//!   `reconnect_path` clears it), so it is neither needed nor exact.
//! - a connected dentry outside the subtree of a bind mount: the handle of `/home/u/.ssh/id_rsa`
//!   decoded on a bind mount of `/home/u/pub`: the walk never meets that mount's root and ends
//!   at the file system's root dentry.
//!
//! For a tagged process such a file is a miss (`path_unresolved`) with `path_error` `-ESTALE`
//! (the errno the kernel gives a handle it cannot connect), whichever resolver named it:
//! `rendered_unnamed` for `bpf_d_path`, `escapes` for the dentry walks of the kill backend and the
//! 6.1 `path_*` hooks. Files of kernel-internal mounts (pipes, sockets, `memfd`) are the roots of
//! their own pseudo file systems and keep their pseudo names.

use aya_ebpf::helpers::bpf_probe_read_kernel;

use crate::{context::caller_root, maps::offsets, mount_ns::internal_mount};

/// `-ESTALE`: the `path_error` of a file reached by no path from the caller's root.
pub const ESTALE: i64 = -116;

/// For a dentry walk stopped at a dentry that is its own parent but not the root of `mount` (a
/// `struct mount *`): true when that is an escape (see the module), false on a kernel-internal
/// mount, whose files are such roots by design.
#[inline(always)]
pub fn escapes(mount: *const u8) -> bool {
    !internal_mount(mount)
}

/// True when `bpf_d_path` of `struct path *path` wrote `/` (`len` 2, with the NUL, at `rendered`)
/// for a file that is not the caller's root directory (`current->fs->root`) nor on a
/// kernel-internal mount: the walk escaped (see the module), or reached the namespace's root
/// outside the caller's `chroot`. Either way `/` is not the file's path. Only a `/` result is
/// looked at: any other rendering met no escape (the kernel would have thrown its names away).
#[inline(always)]
pub fn rendered_unnamed(path: *const u8, rendered: *const u8, len: i64) -> bool {
    if len != 2 {
        return false;
    }
    let off = offsets();
    // SAFETY: fault-tolerant probe reads: the rendered byte, `path->{mnt,dentry}`, and
    // `current->fs->root.{mnt,dentry}` at their BTF offsets. An unreadable field is a doubt: true.
    unsafe {
        if !matches!(bpf_probe_read_kernel(rendered), Ok(b'/')) {
            return false;
        }
        let (Ok(mnt), Ok(dentry)) = (
            bpf_probe_read_kernel(path.wrapping_add(off.path_mnt as usize).cast::<u64>()),
            bpf_probe_read_kernel(path.wrapping_add(off.path_dentry as usize).cast::<u64>()),
        ) else {
            return true;
        };
        let Some((root_mnt, root_dentry)) = caller_root() else {
            return true;
        };
        if mnt == root_mnt && dentry == root_dentry {
            return false;
        }
        escapes((mnt as *const u8).wrapping_sub(off.mount_mnt as usize))
    }
}
