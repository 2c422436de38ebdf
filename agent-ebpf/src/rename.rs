//! Renames and removals: a confined process may move or remove a file only where it may write,
//! at the old path and at the new one, so a denied or unlisted file can never reach a path the
//! task may read, and an allowed file cannot be put in place of a denied one.
//!
//! On 6.1 the `path_*` hooks may not call `bpf_d_path`, so the path is rebuilt here: from the
//! dentry up its `d_parent` chain to the root of its mount, then across to the parent mount's
//! mount point, and so on to the root mount. A walk longer than `WALK_STEPS` steps, a name longer
//! than `NAME_MAX`, a path longer than `PATH_MAX` or an unreadable field is a miss
//! (`path_unresolved`): never truncated and allowed.

use agent_common::{
    Access, FileRuleKeyScratch, Op, PATH_MAX, RULE_DENY, RULE_DENY_BENEATH, RULE_WRITE, Reason,
};
use aya_ebpf::{
    EbpfContext,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{bpf_loop, bpf_probe_read_kernel as raw_probe_read_kernel},
    },
    macros::{lsm, map},
    maps::PerCpuArray,
    programs::LsmContext,
};

use crate::{
    context::{Caller, caller},
    escaped::{ESTALE, escapes},
    files::judge_resolved_denying,
    maps::{PATH_SCRATCH, offsets},
    mount_ns::refuse_foreign,
    report::{DENY, Target, finish, lsm_verdict},
};

/// Dentries and mount crossings one walk may take (path depth plus mounts crossed).
const WALK_STEPS: u32 = 512;
/// Longest name of one path component.
const NAME_MAX: u32 = 255;
/// `-ENAMETOOLONG`: the path is too long or too deep to be rebuilt.
const ENAMETOOLONG: i64 = -36;
/// `-EFAULT`: a field could not be read, or the buffer was reused under us.
const EFAULT: i64 = -14;

/// The buffer a walk writes the path into, back to front, ending at `PATH_MAX` (a NUL).
///
/// The walk's state lives here too, not on the stack: 6.12's verifier checks a `bpf_loop`
/// callback until the states it sees repeat, and values it reads back from a map are unknown
/// numbers every time, so they repeat at once (bounds it tracked on the stack would shrink with
/// every step and never repeat).
#[repr(C)]
pub struct WalkScratch {
    /// `bpf_get_current_pid_tgid()` of the program using the buffer (see `FileRuleKeyScratch`).
    owner: u64,
    /// The dentry to name next.
    d: u64,
    /// The `struct mount` `d` is on, and the root dentry of that mount.
    mount: u64,
    mnt_root: u64,
    /// Where the path written so far starts in `buf` (it ends at `PATH_MAX`).
    pos: u64,
    /// `WALK_RUNNING`, `WALK_DONE` or a negative errno.
    state: i64,
    buf: [u8; 2 * PATH_MAX],
}

/// Key: 0. Value: `WalkScratch`, per CPU. Bound: 1. Why: the rebuilt path of a rename or
/// removal, written from its last component backwards, before it is copied into the
/// `PATH_SCRATCH` look-up key.
#[map(name = "RENAME_WALK")]
static RENAME_WALK: PerCpuArray<WalkScratch> = PerCpuArray::with_max_entries(1, 0);

/// Argument `i` of the hook as a plain number (the walk only probe-reads through it).
#[inline(always)]
pub(crate) fn arg_u64(ctx: &LsmContext, i: usize) -> u64 {
    // SAFETY: the context is an array of u64 arguments; a fault yields 0, which the walk's first
    // read turns into `EFAULT`.
    unsafe { bpf_probe_read_kernel(ctx.as_ptr().cast::<u64>().add(i)) }.unwrap_or(0)
}

/// Reads a kernel pointer-sized field; a fault is `EFAULT`.
#[inline(always)]
pub(crate) fn read_u64(base: u64, off: u32) -> Result<u64, i64> {
    // SAFETY: a fault-tolerant probe read.
    unsafe { bpf_probe_read_kernel((base + u64::from(off)) as *const u64) }.map_err(|_| EFAULT)
}

/// Rebuilds the absolute path of `dentry` (on the mount of `dir`, a `struct path *`) and copies
/// it, NUL included, into this CPU's `PATH_SCRATCH`. Returns the bytes copied (with the NUL) or
/// a negative errno.
#[inline(always)]
fn rebuild(dir: u64, dentry: u64, scratch: *mut FileRuleKeyScratch) -> i64 {
    let Some(walk) = RENAME_WALK.get_ptr_mut(0) else {
        return EFAULT;
    };
    let me = bpf_get_current_pid_tgid();
    // SAFETY: per-CPU map values; every index below is masked into the buffer.
    unsafe {
        (*walk).owner = me;
        (*scratch).owner = me;
    }
    let end = match walk_into(dir, dentry, walk) {
        Ok(pos) => pos,
        Err(e) => return e,
    };
    // `end` is where the path starts; it runs to `PATH_MAX`, where the NUL is.
    let size = (PATH_MAX as u64 + 1).saturating_sub(end) & 0x1fff;
    if size > PATH_MAX as u64 || size < 2 {
        return ENAMETOOLONG;
    }
    // SAFETY: `size` is at most `PATH_MAX`, the size of the destination.
    let copied = unsafe {
        raw_probe_read_kernel(
            (&raw mut (*scratch).path).cast(),
            size as u32,
            (&raw const (*walk).buf)
                .cast::<u8>()
                .add((end & 0xfff) as usize)
                .cast(),
        )
    };
    if copied != 0 || unsafe { (*walk).owner } != me {
        return EFAULT;
    }
    size as i64
}

const WALK_RUNNING: i64 = 1;
const WALK_DONE: i64 = 0;

/// Walks from `dentry` up to the root mount, writing `/name` components backwards into
/// `walk.buf` so that the path ends at `PATH_MAX`. Returns where the path starts.
///
/// One step per `bpf_loop` iteration: the verifier checks the step once instead of every
/// iteration of an unrolled walk (which exceeds its million-instruction budget).
#[inline(always)]
fn walk_into(dir: u64, dentry: u64, walk: *mut WalkScratch) -> Result<u64, i64> {
    let off = offsets();
    let buf = unsafe { (&raw mut (*walk).buf).cast::<u8>() };
    // SAFETY: constant index inside the buffer.
    unsafe { *buf.add(PATH_MAX) = 0 };
    let vfsmount = read_u64(dir, off.path_mnt)?;
    let mnt_root = read_u64(vfsmount, off.vfsmount_mnt_root)?;
    // SAFETY: per-CPU map value; `walk_step` is a BPF subprogram taking (index, ctx).
    let (state, mut pos) = unsafe {
        (*walk).d = dentry;
        (*walk).mount = vfsmount - u64::from(off.mount_mnt);
        (*walk).mnt_root = mnt_root;
        (*walk).pos = PATH_MAX as u64;
        (*walk).state = WALK_RUNNING;
        bpf_loop(
            WALK_STEPS,
            walk_step as *mut core::ffi::c_void,
            core::ptr::null_mut(),
            0,
        );
        ((*walk).state, (*walk).pos)
    };
    // Still running after `WALK_STEPS` steps: too deep.
    match state {
        WALK_DONE => {}
        WALK_RUNNING => return Err(ENAMETOOLONG),
        e => return Err(e),
    }
    if pos > PATH_MAX as u64 {
        return Err(EFAULT);
    }
    if pos >= PATH_MAX as u64 {
        // The root directory itself.
        pos = PATH_MAX as u64 - 1;
        // SAFETY: constant index inside the buffer.
        unsafe { *buf.add(PATH_MAX - 1) = b'/' };
    }
    Ok(pos)
}

/// One step of a walk: names `d` (writing `/name` before the path so far) and moves to its
/// parent, or at the root of a mount crosses to the mount point in the parent mount. Returns 1
/// (stop) when the root mount is reached or on an error, 0 to go on.
#[inline(never)]
extern "C" fn walk_step(_index: u64, _ctx: *mut core::ffi::c_void) -> i64 {
    let Some(w) = RENAME_WALK.get_ptr_mut(0) else {
        return 1;
    };
    // SAFETY: per-CPU map value.
    let state = match unsafe { step(&mut *w) } {
        Ok(state) => state,
        Err(e) => e,
    };
    // SAFETY: as above.
    unsafe { (*w).state = state };
    // A branch between two constants, so every verifier bounds the return value to [0, 1].
    #[allow(
        clippy::bool_to_int_with_if,
        reason = "the branch between two constants is what the verifier bounds"
    )]
    if core::hint::black_box(state) == WALK_RUNNING {
        0
    } else {
        1
    }
}

#[inline(always)]
fn step(w: &mut WalkScratch) -> Result<i64, i64> {
    let off = offsets();
    let buf = (&raw mut w.buf).cast::<u8>();
    let d = w.d;
    let parent = read_u64(d, off.dentry_d_parent)?;
    if d != w.mnt_root && d == parent && escapes(w.mount as *const u8) {
        // Its own parent but not the root of its mount: no path (`escaped`).
        return Err(ESTALE);
    }
    if d == w.mnt_root || d == parent {
        let mparent = read_u64(w.mount, off.mount_mnt_parent)?;
        if mparent == w.mount {
            return Ok(WALK_DONE);
        }
        w.d = read_u64(w.mount, off.mount_mnt_mountpoint)?;
        w.mount = mparent;
        w.mnt_root = read_u64(mparent + u64::from(off.mount_mnt), off.vfsmount_mnt_root)?;
        return Ok(WALK_RUNNING);
    }
    let qstr = d + u64::from(off.dentry_d_name);
    // `struct qstr`: u32 hash, u32 len, then the name pointer.
    // SAFETY: fault-tolerant probe read.
    let len =
        u64::from(unsafe { bpf_probe_read_kernel((qstr + 4) as *const u32) }.map_err(|_| EFAULT)?);
    let name = read_u64(qstr, 8)?;
    let pos = w.pos;
    if len == 0 || len > u64::from(NAME_MAX) || pos > PATH_MAX as u64 || len + 1 > pos {
        return Err(ENAMETOOLONG);
    }
    let pos = pos - len;
    // SAFETY: offset below `PATH_MAX` plus at most `NAME_MAX` bytes: inside the buffer.
    let r = unsafe {
        raw_probe_read_kernel(
            buf.add((pos & 0xfff) as usize).cast(),
            (len & 0xff) as u32,
            name as *const core::ffi::c_void,
        )
    };
    if r != 0 {
        return Err(EFAULT);
    }
    let pos = pos - 1;
    // SAFETY: masked index inside the buffer.
    unsafe { *buf.add((pos & 0xfff) as usize) = b'/' };
    w.pos = pos;
    w.d = parent;
    Ok(WALK_RUNNING)
}

/// Judges one path of a rename or removal: writing there must be allowed, and not denied. A
/// rename is also refused where a deny rule lies beneath the path (`RULE_DENY_BENEATH`): moving
/// or exchanging that directory, or one of its ancestors, would carry the denied path to a name
/// no deny rule covers (and, at the new end, would put a directory where a denied path will be).
#[inline(always)]
pub(crate) fn judge_write(op: Op, who: &Caller, dir: u64, dentry: u64) -> i32 {
    let mut target = Target::empty();
    target.access = Access::WRITE;
    let Some(scratch) = PATH_SCRATCH.get_ptr_mut(0) else {
        target.path_error = EFAULT as i32;
        return finish(op, who, Some(Reason::PathUnresolved), &target);
    };
    if let Some(verdict) = refuse_foreign(op, who, dir as *const u8, &mut target) {
        return verdict;
    }
    let len = rebuild(dir, dentry, scratch);
    let deny = if matches!(op, Op::Rename) {
        RULE_DENY | RULE_DENY_BENEATH
    } else {
        RULE_DENY
    };
    judge_resolved_denying(op, who, scratch, len, target, deny, true, |flags| {
        flags & RULE_WRITE != 0
    })
}

/// `path_rename(const struct path *old_dir, struct dentry *old_dentry, const struct path
/// *new_dir, struct dentry *new_dentry, unsigned int flags)`: `rename`, `renameat2` (also
/// `RENAME_EXCHANGE`, which the same two checks cover). Both paths need `files.write`.
#[lsm(hook = "path_rename")]
pub fn corral_path_rename(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let (old_dir, old_dentry, new_dir, new_dentry) = (
        arg_u64(&ctx, 0),
        arg_u64(&ctx, 1),
        arg_u64(&ctx, 2),
        arg_u64(&ctx, 3),
    );
    if judge_write(Op::Rename, &who, old_dir, old_dentry) == DENY {
        return lsm_verdict(DENY);
    }
    lsm_verdict(judge_write(Op::Rename, &who, new_dir, new_dentry))
}

/// The hook shape of `path_unlink`, `path_rmdir`, `path_mkdir` and `path_symlink`: arguments
/// 0 and 1 are the directory (`const struct path *`) and the entry (`struct dentry *`), and `op`
/// needs `files.write` at the entry's path. Allows untagged processes.
#[inline(always)]
pub(crate) fn judge_entry(ctx: &LsmContext, op: Op) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    lsm_verdict(judge_write(op, &who, arg_u64(ctx, 0), arg_u64(ctx, 1)))
}

/// `path_unlink(const struct path *dir, struct dentry *dentry)`: removing a file needs
/// `files.write` on it.
#[lsm(hook = "path_unlink")]
pub fn corral_path_unlink(ctx: LsmContext) -> i32 {
    judge_entry(&ctx, Op::Unlink)
}

/// `path_rmdir(const struct path *dir, struct dentry *dentry)`: removing a directory needs
/// `files.write` on it.
#[lsm(hook = "path_rmdir")]
pub fn corral_path_rmdir(ctx: LsmContext) -> i32 {
    judge_entry(&ctx, Op::Unlink)
}
