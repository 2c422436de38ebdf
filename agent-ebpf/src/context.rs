//! Who is calling: the tag look-up that starts every hook, and the task's mode.

use agent_common::{Mode, Reason, TAG_NO_EXPIRY, TaskTag};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_ktime_get_boot_ns, generated::bpf_get_current_task_btf,
};

use crate::{
    maps::{INSTANCES, TAGS, TASKS, offsets},
    tagged::maybe_tagged,
};

/// The confinement of the calling process: its task and the task's mode.
#[derive(Clone, Copy)]
pub struct Caller {
    pub task_id: u32,
    /// `TAG_*` bits of the process's tag.
    pub flags: u32,
    /// The id the task's current rules are keyed by (`TaskConfig::rules_id`).
    pub rules: u32,
    /// The task instance (`TaskTag::instance`).
    pub instance: u32,
    /// A `Mode` code.
    pub mode: u32,
    /// Set when the hook must deny whatever the rules say (unknown task, offsets missing).
    pub forced_miss: Option<Reason>,
}

/// The first step of every hook: `None` for an untagged process, which the hook then allows.
#[inline(always)]
pub fn caller() -> Option<Caller> {
    current_tag().map(caller_of)
}

/// The calling process's tag, `None` if it is untagged: the look-up `caller` starts with, for a
/// hook that can leave some tagged calls before it needs the task (`caller_of`).
#[inline(always)]
pub fn current_tag() -> Option<TaskTag> {
    tag_of((bpf_get_current_pid_tgid() >> 32) as u32)
}

/// The tgid of `task`, a BTF pointer to the current task (`bpf_get_current_task_btf()`): read
/// from the task by a direct load, so a hook that needs the task anyway makes one helper call for
/// both. Without offsets (`OFFSETS.valid` 0, a load-time constant: the verifier prunes the branch
/// not taken) the helper `bpf_get_current_pid_tgid` answers, as in `current_tag`.
#[inline(always)]
pub fn tgid_of_current(task: *const u8) -> u32 {
    let off = offsets();
    if off.valid == 0 {
        return (bpf_get_current_pid_tgid() >> 32) as u32;
    }
    // SAFETY: a BTF pointer to the current task and the offset of its `tgid` (see `btf_load`).
    let tgid: i32 = unsafe { btf_load(task, off.task_tgid) };
    tgid as u32
}

/// The tag of process `tgid`, `None` if it is untagged: its byte in `TAGGED` first, so an
/// untagged process costs no hash look-up (`tagged::maybe_tagged`), then `TAGS`.
#[inline(always)]
pub fn tag_of(tgid: u32) -> Option<TaskTag> {
    if !maybe_tagged(tgid) {
        return None;
    }
    // SAFETY: the value is copied out at once; a concurrent delete cannot free it under us.
    unsafe { TAGS.get(&tgid) }.copied()
}

/// The confinement of a process tagged `tag`: its task's mode and rules, and what forces a miss.
#[inline(always)]
pub fn caller_of(tag: TaskTag) -> Caller {
    let (mode, rules, forced_miss) = match unsafe { TASKS.get(&tag.task_id) } {
        Some(cfg) => (cfg.mode, cfg.rules_id, None),
        None => (Mode::Enforce as u32, 0, Some(Reason::UnknownTask)),
    };
    let forced_miss = if offsets().valid == 0 {
        Some(Reason::NotReady)
    } else if tag.flags & TAG_NO_EXPIRY == 0 && expired(tag.instance) {
        Some(Reason::InstanceExpired)
    } else {
        forced_miss
    };
    Caller {
        task_id: tag.task_id,
        flags: tag.flags,
        rules,
        instance: tag.instance,
        mode,
        forced_miss,
    }
}

/// Whether `instance` has an expiry that has passed.
#[inline(always)]
fn expired(instance: u32) -> bool {
    if instance == 0 {
        return false;
    }
    // SAFETY: copied out at once.
    match unsafe { INSTANCES.get(&instance) } {
        // SAFETY: reads the boot clock.
        Some(info) => info.expires_ns != 0 && unsafe { bpf_ktime_get_boot_ns() } > info.expires_ns,
        None => false,
    }
}

/// The calling task's root (`current->fs->root`): its mount and dentry, as kernel addresses
/// (`bpf_d_path` names paths from it). `None` for a task without `fs` (exiting). Read by direct
/// BTF loads from `bpf_get_current_task_btf()` (see `btf_load`): LSM and `tp_btf` programs only.
#[inline(always)]
pub fn caller_root() -> Option<(u64, u64)> {
    let off = offsets();
    // SAFETY: a BTF pointer to the current task; loads checked against BTF (see `btf_load`).
    unsafe {
        let task = bpf_get_current_task_btf() as *const u8;
        let fs: *const u8 = btf_load(task, off.task_fs);
        if fs.is_null() {
            return None;
        }
        let root = fs.wrapping_add(off.fs_struct_root as usize);
        Some((
            btf_load(root, off.path_mnt),
            btf_load(root, off.path_dentry),
        ))
    }
}

/// Reads the `T` at byte `offset` of the kernel object `base` points at, by a plain load.
///
/// # Safety
/// `base` must be a BTF pointer the verifier knows the type of (a hook's typed argument,
/// `bpf_get_current_task_btf()`, or a pointer loaded this way from one) and `offset` the
/// `OFFSETS` field for a member of that type of `T`'s size: the verifier then checks the load
/// against the kernel's BTF, and the JIT emits it inline with an exception entry, so a faulting
/// load (a NULL pointer) yields 0 instead of oopsing. Anything else fails to load, not to run.
#[inline(always)]
pub unsafe fn btf_load<T: Copy>(base: *const u8, offset: u32) -> T {
    // SAFETY: as documented above; volatile so the load keeps its size and offset.
    unsafe { core::ptr::read_volatile(base.wrapping_add(offset as usize).cast::<T>()) }
}
