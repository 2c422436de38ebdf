//! Tags follow processes: a child inherits its parent's task at fork, and the tag leaves with the
//! process's last thread.

use agent_common::COUNTER_TAG_INSERT_FAILED;
use aya_ebpf::{
    helpers::{bpf_get_current_pid_tgid, bpf_probe_read_kernel},
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};

use crate::{
    context::{btf_load, tag_of},
    maps::{EXES, TAGS, count, offsets},
    selector::select_new_child,
    tagged,
};

/// `sched_process_fork(struct task_struct *parent, struct task_struct *child)`: runs in the
/// parent before the child is first scheduled, so a child of a tagged process is tagged before
/// its first instruction. Threads share their process's tgid and need no entry.
///
/// Cannot refuse a fork. If `TAGS` is full the child would run untagged: that is counted in
/// `COUNTER_TAG_INSERT_FAILED` (reported by `corral status`); `TAGS_MAX` is sized far above the
/// confined process counts we expect.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn corral_sched_fork(ctx: BtfTracePointContext) -> i32 {
    try_sched_fork(&ctx)
}

fn try_sched_fork(ctx: &BtfTracePointContext) -> i32 {
    let off = offsets();
    // SAFETY: arg 0 is the parent `struct task_struct *`, a BTF pointer (`btf_load`).
    let parent_tgid: i32 = unsafe { btf_load(ctx.arg(0), off.task_tgid) };
    let parent_tgid = parent_tgid as u32;
    // An untagged parent leaves on its byte in `TAGGED`, without the hash look-up.
    let Some(tag) = tag_of(parent_tgid) else {
        select_into_cgroup(ctx);
        return 0;
    };
    // SAFETY: arg 1 is the child `struct task_struct *`, a BTF pointer: direct loads at its BTF
    // offsets (`btf_load`).
    let (pid, tgid): (i32, i32) = unsafe {
        let child: *const u8 = ctx.arg(1);
        (
            btf_load(child, off.task_pid),
            btf_load(child, off.task_tgid),
        )
    };
    // A thread shares its process's entry; 0 would be a faulted load (never a user process).
    if pid != tgid || tgid == 0 {
        return 0;
    }
    // The byte first: the entry is never there without it.
    tagged::mark(tgid as u32);
    if TAGS.insert(&(tgid as u32), &tag, 0).is_err() {
        count(COUNTER_TAG_INSERT_FAILED);
    }
    // The child runs its parent's executable until it execs: copy it for events.
    if let Some(exe) = EXES.get_ptr(&parent_tgid) {
        // SAFETY: a map value pointer, passed straight back to a map update.
        let _ = EXES.insert(&(tgid as u32), unsafe { &*exe }, 0);
    }
    0
}

/// An untagged parent's child created directly in another cgroup (`clone3(CLONE_INTO_CGROUP)`,
/// how newer systemd starts units) never passes `cgroup_attach_task`: check its cgroup here, before
/// it first runs. Costs an untagged fork four inline loads when parent and child share a cgroup.
#[inline(always)]
fn select_into_cgroup(ctx: &BtfTracePointContext) {
    let off = offsets();
    // Args 0 and 1 are the parent and child `struct task_struct *`.
    let (parent, child): (*const u8, *const u8) = (ctx.arg(0), ctx.arg(1));
    // The common case, both in one cgroup, by direct BTF loads (`btf_load`: checked against the
    // kernel's BTF, inlined, a fault reads 0): `task->cgroups->dfl_cgrp` of each.
    // SAFETY: BTF pointers and the offsets of their fields, as `btf_load` requires.
    let same = unsafe {
        let from: *const u8 = btf_load(btf_load(parent, off.task_cgroups), off.css_set_dfl_cgrp);
        let to: *const u8 = btf_load(btf_load(child, off.task_cgroups), off.css_set_dfl_cgrp);
        from == to
    };
    if same {
        return;
    }
    // Rare (a child created in another cgroup): read again as plain numbers, which the cgroup
    // path walk below takes.
    let dfl_cgroup = |task: *const u8| -> Option<*const u8> {
        // SAFETY: probe reads at BTF offsets.
        unsafe {
            let cset: *const u8 =
                bpf_probe_read_kernel(task.add(off.task_cgroups as usize).cast()).ok()?;
            bpf_probe_read_kernel(cset.add(off.css_set_dfl_cgrp as usize).cast()).ok()
        }
    };
    let (Some(from), Some(to)) = (dfl_cgroup(parent), dfl_cgroup(child)) else {
        return;
    };
    if from == to {
        return;
    }
    // SAFETY: probe reads at BTF offsets.
    let ids = unsafe {
        (
            bpf_probe_read_kernel(child.add(off.task_pid as usize).cast::<i32>()),
            bpf_probe_read_kernel(child.add(off.task_tgid as usize).cast::<i32>()),
        )
    };
    if let (Ok(pid), Ok(tgid)) = ids {
        if pid == tgid {
            select_new_child(tgid as u32, to);
        }
    }
}

/// `sched_process_exit(struct task_struct *p, ...)`: runs for every exiting thread after it has
/// left its thread group's live count. The tag is removed only when no thread is left, so a
/// process whose leader thread exits first stays tagged, and a reused pid never inherits a dead
/// process's tag.
#[btf_tracepoint(function = "sched_process_exit")]
pub fn corral_sched_exit(ctx: BtfTracePointContext) -> i32 {
    match try_sched_exit(&ctx) {
        Ok(v) | Err(v) => v,
    }
}

fn try_sched_exit(ctx: &BtfTracePointContext) -> Result<i32, i32> {
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    if !tagged::maybe_tagged(tgid) {
        return Ok(0);
    }
    let off = offsets();
    // SAFETY: arg 0 is the exiting `struct task_struct *`; probe reads at BTF offsets.
    let live: i32 = unsafe {
        let task: *const u8 = ctx.arg(0);
        let signal: *const u8 =
            bpf_probe_read_kernel(task.add(off.task_signal as usize).cast()).map_err(|_| 0)?;
        bpf_probe_read_kernel(signal.add(off.signal_live as usize).cast()).map_err(|_| 0)?
    };
    if live == 0 {
        // The entry first, then the byte (also a stale byte of a process never tagged): its pid
        // is not free for a new process before this one is reaped.
        let _ = TAGS.remove(&tgid);
        tagged::unmark(tgid);
    }
    Ok(0)
}

/// Trivial program `corral doctor` loads and attaches to learn whether BTF tracepoints (process
/// tagging) work.
#[btf_tracepoint(function = "sched_process_fork")]
pub fn corral_probe_tp_btf(_ctx: BtfTracePointContext) -> i32 {
    0
}
