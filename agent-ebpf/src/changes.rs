//! Creating and changing files without opening them: a confined process may create an entry,
//! truncate a file or change its mode or owner only where it may write (`files.write`, and no
//! `files.deny`), judged at the path the kernel reaches, like a write open. Without these hooks
//! `truncate(2)` would empty a file the task may only read, `chmod`/`chown` would change any file
//! it can name, and `mknod` would put a block device, and with it every file on the disk,
//! beneath a directory the task may write.
//!
//! The `path_*` hooks may not call `bpf_d_path` (6.1), so the path is rebuilt from the dentries
//! and mounts (`rename::judge_write`). All fail closed for tagged processes.

use agent_common::{Access, Op, Reason};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    context::caller,
    maps::offsets,
    rename::{arg_u64, judge_entry, judge_write, read_u64},
    report::{Target, finish, lsm_verdict},
};

/// `S_IFMT` and the device types of `umode_t`.
const S_IFMT: u64 = 0o170_000;
const S_IFCHR: u64 = 0o020_000;
const S_IFBLK: u64 = 0o060_000;

/// `path_mknod(const struct path *dir, struct dentry *dentry, umode_t mode, unsigned int dev)`:
/// `mknod`, and the creating step of `open(O_CREAT)` (`may_o_create`) for a name that does not
/// exist yet. A regular file, FIFO or socket file needs `files.write` at the new path. A block or
/// character device is refused whatever the rules (`reason: forbidden`): its path says nothing
/// of what opening it reaches.
#[lsm(hook = "path_mknod")]
pub fn corral_path_mknod(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let mode = arg_u64(&ctx, 2) & S_IFMT;
    if mode == S_IFCHR || mode == S_IFBLK {
        let mut target = Target::empty();
        target.access = Access::WRITE;
        return lsm_verdict(finish(Op::Create, &who, Some(Reason::Forbidden), &target));
    }
    lsm_verdict(judge_write(
        Op::Create,
        &who,
        arg_u64(&ctx, 0),
        arg_u64(&ctx, 1),
    ))
}

/// `path_mkdir(const struct path *dir, struct dentry *dentry, umode_t mode)`: a new directory
/// needs `files.write` at its path.
#[lsm(hook = "path_mkdir")]
pub fn corral_path_mkdir(ctx: LsmContext) -> i32 {
    judge_entry(&ctx, Op::Create)
}

/// `path_symlink(const struct path *dir, struct dentry *dentry, const char *old_name)`: a new
/// symlink needs `files.write` at its path (what it points to is judged when it is followed).
#[lsm(hook = "path_symlink")]
pub fn corral_path_symlink(ctx: LsmContext) -> i32 {
    judge_entry(&ctx, Op::Create)
}

/// Judges a change of the file at `struct path *path` as a write there.
#[inline(always)]
fn judge_change(ctx: &LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let path = arg_u64(ctx, 0);
    let Ok(dentry) = read_u64(path, offsets().path_dentry) else {
        let mut target = Target::empty();
        target.access = Access::WRITE;
        return lsm_verdict(finish(
            Op::Setattr,
            &who,
            Some(Reason::PathUnresolved),
            &target,
        ));
    };
    lsm_verdict(judge_write(Op::Setattr, &who, path, dentry))
}

/// `path_truncate(const struct path *path)`: `truncate(2)` (and `ftruncate` of a descriptor
/// opened for writing, already judged at its open) needs `files.write` at the file's path.
#[lsm(hook = "path_truncate")]
pub fn corral_path_truncate(ctx: LsmContext) -> i32 {
    judge_change(&ctx)
}

/// `path_chmod(const struct path *path, umode_t mode)`: `chmod`, `fchmod`, `fchmodat` need
/// `files.write` at the file's path.
#[lsm(hook = "path_chmod")]
pub fn corral_path_chmod(ctx: LsmContext) -> i32 {
    judge_change(&ctx)
}

/// `path_chown(const struct path *path, kuid_t uid, kgid_t gid)`: `chown` and its variants need
/// `files.write` at the file's path.
#[lsm(hook = "path_chown")]
pub fn corral_path_chown(ctx: LsmContext) -> i32 {
    judge_change(&ctx)
}
