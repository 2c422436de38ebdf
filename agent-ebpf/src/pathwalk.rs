//! Paths rebuilt by walking kernel structures, for the hooks that cannot call `bpf_d_path` (it is
//! only allowed in LSM and a few fentry programs): the kill observer (a file's path from its
//! dentries and mounts) and the cgroup selectors (a cgroup's path from its kernfs nodes).
//!
//! Both walks are bounded; a path that does not fit or does not end within the bound is an error,
//! never a truncated path.

use core::ffi::c_void;

use agent_common::{CGROUP_PATH_MAX, FileRuleKeyScratch, PATH_MAX};
use aya_ebpf::{
    helpers::{
        bpf_probe_read_kernel,
        generated::{
            bpf_loop, bpf_probe_read_kernel as raw_probe_read_kernel, bpf_probe_read_kernel_str,
        },
    },
    macros::map,
    maps::PerCpuArray,
};

use crate::{
    escaped::{ESTALE, escapes},
    maps::offsets,
};

/// Where a path ends in `Walk::buf` (its NUL goes here): paths are built backwards from it, so a
/// path with its NUL is at most `PATH_MAX` bytes.
const END: usize = PATH_MAX - 1;
/// Longest name of one path component (`NAME_MAX`).
const NAME_MAX: u32 = 255;
/// Components (and mount crossings) a dentry walk may take: more is an error.
const DENTRY_STEPS: u32 = 512;
/// Levels of cgroup nesting a kernfs walk follows.
const CGROUP_DEPTH: usize = 32;
/// Walk status: the file is the root of its own file system, not below any mount's root (a
/// pseudo file of a kernel-internal mount: a `memfd_create` file).
const PSEUDO: i64 = 2;
/// What `d_path` appends to a pseudo file's name (`simple_dname`), with the NUL.
const DELETED: &[u8; 11] = b" (deleted)\0";
/// `-ENAMETOOLONG`.
const ENAMETOOLONG: i64 = -36;
/// `-ELOOP`: the walk did not reach a root within its bound.
const ELOOP: i64 = -40;
/// `-EFAULT`: a kernel structure could not be read.
const EFAULT: i64 = -14;

/// Per-CPU state of one walk.
#[repr(C)]
pub struct Walk {
    /// The path is built at `buf[pos..=END]` (NUL at `END`); the slack after `PATH_MAX` keeps
    /// every masked write inside the value.
    pub buf: [u8; PATH_MAX + 512],
    /// Index of the path's first byte.
    pub pos: u64,
    /// The dentry the walk is at.
    pub dentry: u64,
    /// The `struct mount` the walk is in.
    pub mount: u64,
    /// 0 while walking, 1 when a root was reached, a negative errno on failure.
    pub status: i64,
    /// Kernfs nodes from a cgroup up to (not including) the root.
    pub nodes: [u64; CGROUP_DEPTH],
}

/// What `bpf_loop` hands each step: it must point at the stack, so it holds the map value pointer.
#[repr(C)]
struct StepCtx {
    walk: *mut Walk,
    /// Copied back from the walk when `bpf_loop` returns; keeps the context a real stack object.
    steps: u64,
}

/// Key: 0. Value: `Walk`, per CPU. Bound: 1. Why: a 4 KiB path is far beyond the BPF stack.
#[map(name = "WALK_SCRATCH")]
static WALK_SCRATCH: PerCpuArray<Walk> = PerCpuArray::with_max_entries(1, 0);

/// One step of a dentry walk (a `bpf_loop` callback, verified once whatever the path's depth):
/// prepends the current dentry's name, or crosses to the mount point when the dentry is the root
/// of its mount. Returns 1 to stop.
#[inline(never)]
extern "C" fn dentry_step(_index: u64, ctx: *mut c_void) -> i64 {
    // SAFETY: `ctx` is the `StepCtx` on `dentry_path`'s stack.
    let step = ctx.cast::<StepCtx>();
    // SAFETY: as above.
    let w = unsafe {
        (*step).steps += 1;
        (*step).walk
    };
    let off = offsets();
    // SAFETY: `ctx` is the `Walk` map value `dentry_path` passed; kernel memory is probe-read.
    unsafe {
        let d = (*w).dentry as *const u8;
        let m = (*w).mount as *const u8;
        let Ok(mnt_root) = bpf_probe_read_kernel(
            m.add((off.mount_mnt + off.vfsmount_mnt_root) as usize)
                .cast::<*const u8>(),
        ) else {
            (*w).status = EFAULT;
            return 1;
        };
        if d == mnt_root {
            let Ok(parent) =
                bpf_probe_read_kernel(m.add(off.mount_mnt_parent as usize).cast::<*const u8>())
            else {
                (*w).status = EFAULT;
                return 1;
            };
            if parent == m {
                (*w).status = 1;
                return 1;
            }
            let Ok(point) =
                bpf_probe_read_kernel(m.add(off.mount_mnt_mountpoint as usize).cast::<*const u8>())
            else {
                (*w).status = EFAULT;
                return 1;
            };
            (*w).dentry = point as u64;
            (*w).mount = parent as u64;
            return 0;
        }
        let (Ok(parent), Ok(len), Ok(name)) = (
            bpf_probe_read_kernel(d.add(off.dentry_d_parent as usize).cast::<*const u8>()),
            bpf_probe_read_kernel(d.add(off.dentry_name_len as usize).cast::<u32>()),
            bpf_probe_read_kernel(d.add(off.dentry_name_ptr as usize).cast::<*const u8>()),
        ) else {
            (*w).status = EFAULT;
            return 1;
        };
        if parent == d {
            // The root of a file system that is not the root of this mount. On a kernel-internal
            // mount, a pseudo file: stop here, and when the file itself is one, `dentry_path`
            // names it (`PSEUDO`). Anywhere else the walk escaped (a disconnected dentry, or a
            // file outside a bind mount's subtree): no path (`escaped`).
            if escapes(m) {
                (*w).status = ESTALE;
                return 1;
            }
            (*w).status = if (*w).pos == END as u64 { PSEUDO } else { 1 };
            return 1;
        }
        let pos = (*w).pos;
        if len > NAME_MAX || u64::from(len) + 1 > pos {
            (*w).status = ENAMETOOLONG;
            return 1;
        }
        let pos = (pos - u64::from(len) - 1) as usize & (PATH_MAX - 1);
        let buf = (&raw mut (*w).buf).cast::<u8>();
        *buf.add(pos) = b'/';
        if raw_probe_read_kernel(
            buf.add((pos + 1) & (PATH_MAX - 1)).cast(),
            len & NAME_MAX,
            name.cast(),
        ) != 0
        {
            (*w).status = EFAULT;
            return 1;
        }
        (*w).pos = pos as u64;
        (*w).dentry = parent as u64;
    }
    0
}

/// Rebuilds the path of `struct path *p` (a `file->f_path`) into `key.path` (NUL terminated) and
/// returns its length without the NUL, or a negative errno. The path is relative to the root of
/// the caller's mount namespace (a `chroot` is not honoured, unlike `bpf_d_path`). A pseudo file
/// that is the root of its own file system (a `memfd_create` file) is `/NAME (deleted)`, as
/// `bpf_d_path` names it.
#[inline(always)]
pub fn dentry_path(p: *const u8, key: *mut FileRuleKeyScratch) -> i64 {
    let Some(w) = WALK_SCRATCH.get_ptr_mut(0) else {
        return EFAULT;
    };
    let off = offsets();
    // SAFETY: probe reads of kernel memory; `w` and `key` are per-CPU map values.
    unsafe {
        let (Ok(mnt), Ok(dentry)) = (
            bpf_probe_read_kernel(p.add(off.path_mnt as usize).cast::<*const u8>()),
            bpf_probe_read_kernel(p.add(off.path_dentry as usize).cast::<*const u8>()),
        ) else {
            return EFAULT;
        };
        (*w).pos = END as u64;
        (*w).buf[END] = 0;
        (*w).dentry = dentry as u64;
        (*w).mount = (mnt as u64).wrapping_sub(u64::from(off.mount_mnt));
        (*w).status = 0;
        let mut step_ctx = StepCtx { walk: w, steps: 0 };
        bpf_loop(
            DENTRY_STEPS,
            dentry_step as *mut c_void,
            (&raw mut step_ctx).cast(),
            0,
        );
        let status = (*w).status;
        if status < 0 {
            return status;
        }
        if status == 0 {
            return ELOOP;
        }
        if status == PSEUDO {
            return pseudo_path((*w).dentry as *const u8, key);
        }
        let mut pos = (*w).pos as usize;
        if pos == END {
            // The root itself.
            pos -= 1;
            (*w).buf[pos & (PATH_MAX - 1)] = b'/';
        }
        let pos = pos & (PATH_MAX - 1);
        let len = END - pos;
        let size = len + 1;
        if size > PATH_MAX {
            return ENAMETOOLONG;
        }
        if raw_probe_read_kernel(
            (&raw mut (*key).path).cast(),
            size as u32,
            (&raw const (*w).buf).cast::<u8>().add(pos).cast(),
        ) != 0
        {
            return EFAULT;
        }
        len as i64
    }
}

/// Names a pseudo file (`dentry`, the root of its own file system) as `d_path` does:
/// `/NAME (deleted)` (`/` when it has no name), into `key.path`; returns its length without the
/// NUL, or a negative errno.
#[inline(always)]
fn pseudo_path(dentry: *const u8, key: *mut FileRuleKeyScratch) -> i64 {
    let off = offsets();
    // SAFETY: probe reads of kernel memory; `key` is a per-CPU map value of `PATH_MAX` path
    // bytes, and every write is below 1 + 256 + `DELETED.len()` bytes.
    unsafe {
        let Ok(name) =
            bpf_probe_read_kernel(dentry.add(off.dentry_name_ptr as usize).cast::<*const u8>())
        else {
            return EFAULT;
        };
        let path = (&raw mut (*key).path).cast::<u8>();
        *path = b'/';
        // `n` counts the NUL: the name is at `path[1..n]`.
        let n = bpf_probe_read_kernel_str(path.add(1).cast(), NAME_MAX + 1, name.cast());
        if n <= 1 {
            *path.add(1) = 0;
            return 1;
        }
        let at = n as usize & 0x1ff;
        for (i, b) in DELETED.iter().enumerate() {
            *path.add(at + i) = *b;
        }
        (at + DELETED.len() - 1) as i64
    }
}

/// Writes the cgroup v2 path of `struct cgroup *cgrp` (`/a/b`, `/` for the root) into `out`,
/// NUL terminated, cut at `CGROUP_PATH_MAX` bytes: a cut path has no NUL in the key, so it can
/// only match a selector's "everything below" entry, which is then right, never an exact entry.
/// Returns false when the cgroup cannot be read.
#[inline(always)]
pub fn cgroup_path(cgrp: *const u8, out: *mut [u8; CGROUP_PATH_MAX]) -> bool {
    let Some(w) = WALK_SCRATCH.get_ptr_mut(0) else {
        return false;
    };
    let off = offsets();
    // SAFETY: probe reads of kernel memory; `w` and `out` are map values.
    unsafe {
        let Ok(mut kn) =
            bpf_probe_read_kernel(cgrp.add(off.cgroup_kn as usize).cast::<*const u8>())
        else {
            return false;
        };
        let mut depth = 0usize;
        for i in 0..CGROUP_DEPTH {
            let Ok(parent) =
                bpf_probe_read_kernel(kn.add(off.kernfs_node_parent as usize).cast::<*const u8>())
            else {
                return false;
            };
            if parent.is_null() {
                break;
            }
            (*w).nodes[i] = kn as u64;
            depth = i + 1;
            kn = parent;
        }
        let buf = (&raw mut (*w).buf).cast::<u8>();
        *buf = b'/';
        *buf.add(1) = 0;
        let mut pos = 0usize;
        for i in 0..CGROUP_DEPTH {
            if i >= depth || pos >= CGROUP_PATH_MAX {
                break;
            }
            let node = (*w).nodes[(depth - 1 - i) & (CGROUP_DEPTH - 1)] as *const u8;
            let Ok(name) =
                bpf_probe_read_kernel(node.add(off.kernfs_node_name as usize).cast::<*const u8>())
            else {
                return false;
            };
            let at = pos & (CGROUP_PATH_MAX - 1);
            *buf.add(at) = b'/';
            let n = bpf_probe_read_kernel_str(buf.add(at + 1).cast(), NAME_MAX, name.cast());
            if n <= 0 {
                return false;
            }
            // `n` counts the NUL, which the next component's `/` overwrites.
            pos = at + n as usize;
        }
        raw_probe_read_kernel(out.cast(), CGROUP_PATH_MAX as u32, buf.cast()) == 0
    }
}
