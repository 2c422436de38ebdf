//! Selectors: processes join a task without `corral run`, by executing a selected file or by
//! entering (or being created in) a selected cgroup. A process that is already tagged never
//! changes task this way.

use agent_common::{CGROUP_PATH_MAX, CgroupPathData, InodeKey, TAG_SELECTED, TaskTag};
use aya_ebpf::{
    bindings::BPF_NOEXIST,
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel, generated::bpf_probe_read_kernel_str,
    },
    macros::btf_tracepoint,
    maps::lpm_trie::Key,
    programs::BtfTracePointContext,
};

use crate::{
    context::{btf_load, caller, tag_of},
    kill,
    maps::{CGROUP_SELECTORS, EXEC_SELECTORS, TAGS, offsets},
    pathwalk::cgroup_path,
    tagged,
};

/// `sched_process_exec(struct task_struct *p, pid_t old_pid, struct linux_binprm *bprm)`: runs
/// after the point of no return of an exec, before the new program's first instruction.
///
/// Untagged process: if the executed file (by device and inode) is a selected executable, the
/// process joins that task before it runs. Tagged process: handed to the kill observer where it is
/// active (no BPF LSM). Never refuses anything itself.
#[btf_tracepoint(function = "sched_process_exec")]
pub fn corral_sched_exec(ctx: BtfTracePointContext) -> i32 {
    match try_sched_exec(&ctx) {
        Ok(v) | Err(v) => v,
    }
}

fn try_sched_exec(ctx: &BtfTracePointContext) -> Result<i32, i32> {
    let off = offsets();
    // Arg 2 is `struct linux_binprm *`, a BTF pointer.
    let bprm: *const u8 = ctx.arg(2);
    if let Some(who) = caller() {
        if off.kill_observer != 0 {
            // SAFETY: a probe read at a BTF offset: the judge takes the file as a plain number.
            let file: *const u8 =
                unsafe { bpf_probe_read_kernel(bprm.add(off.binprm_file as usize).cast()) }
                    .map_err(|_| 0)?;
            kill::judge_exec(&who, file);
        }
        return Ok(0);
    }
    // Every untagged exec on the host: `bprm->file->f_inode` and its super block by direct BTF
    // loads (`btf_load`: checked against the kernel's BTF, inlined; a fault reads 0, and no
    // selector has inode 0).
    // SAFETY: BTF pointers and the offsets of their fields, as `btf_load` requires.
    let key = unsafe {
        let file: *const u8 = btf_load(bprm, off.binprm_file);
        let inode: *const u8 = btf_load(file, off.file_f_inode);
        let sb: *const u8 = btf_load(inode, off.inode_i_sb);
        InodeKey {
            ino: btf_load(inode, off.inode_i_ino),
            dev: btf_load(sb, off.sb_s_dev),
            reserved: 0,
        }
    };
    // SAFETY: copied out at once.
    if let Some(task_id) = unsafe { EXEC_SELECTORS.get(&key) }.copied() {
        join((bpf_get_current_pid_tgid() >> 32) as u32, task_id);
    }
    Ok(0)
}

/// `cgroup_attach_task(struct cgroup *dst_cgrp, const char *path, struct task_struct *task, bool
/// threadgroup)`: a task moved into a cgroup (systemd starting a unit, a container runtime
/// starting a pod). If it is untagged and the destination is at or below a selected cgroup v2
/// path, its process joins the task. Never refuses anything.
#[btf_tracepoint(function = "cgroup_attach_task")]
pub fn corral_cgroup_attach(ctx: BtfTracePointContext) -> i32 {
    match try_cgroup_attach(&ctx) {
        Ok(v) | Err(v) => v,
    }
}

fn try_cgroup_attach(ctx: &BtfTracePointContext) -> Result<i32, i32> {
    let off = offsets();
    // Args 0..2 are the tracepoint's `cgroup *`, `char *` and `task_struct *`.
    let (cgrp, path, task): (*const u8, *const u8, *const u8) =
        (ctx.arg(0), ctx.arg(1), ctx.arg(2));
    // SAFETY: probe reads at BTF offsets.
    let (tgid, hierarchy) = unsafe {
        let root: *const u8 =
            bpf_probe_read_kernel(cgrp.add(off.cgroup_root as usize).cast()).map_err(|_| 0)?;
        (
            bpf_probe_read_kernel(task.add(off.task_tgid as usize).cast::<u32>()).map_err(|_| 0)?,
            bpf_probe_read_kernel(
                root.add(off.cgroup_root_hierarchy_id as usize)
                    .cast::<i32>(),
            )
            .map_err(|_| 0)?,
        )
    };
    // Only the cgroup v2 hierarchy (id 0); v1 controllers have paths of their own.
    if hierarchy != 0 || tag_of(tgid).is_some() {
        return Ok(0);
    }
    let mut key = Key::new(
        0,
        CgroupPathData {
            path: [0; CGROUP_PATH_MAX],
        },
    );
    // SAFETY: `path` is the kernel's NUL-terminated path string; the copy is bounded by the key.
    let n = unsafe {
        bpf_probe_read_kernel_str(
            (&raw mut key.data.path).cast(),
            CGROUP_PATH_MAX as u32,
            path.cast(),
        )
    };
    if n <= 0 {
        return Ok(0);
    }
    select_by_cgroup(tgid, &mut key);
    Ok(0)
}

/// Called at fork for an untagged parent whose child starts in another cgroup
/// (`clone3(CLONE_INTO_CGROUP)`): the child joins a task if that cgroup is selected.
#[inline(always)]
pub fn select_new_child(child_tgid: u32, child_cgroup: *const u8) {
    let mut key = Key::new(
        0,
        CgroupPathData {
            path: [0; CGROUP_PATH_MAX],
        },
    );
    if cgroup_path(child_cgroup, &raw mut key.data.path) {
        select_by_cgroup(child_tgid, &mut key);
    }
}

/// Looks the cgroup path in `key` up in `CGROUP_SELECTORS` and tags `tgid` on a match.
#[inline(always)]
fn select_by_cgroup(tgid: u32, key: &mut Key<CgroupPathData>) {
    key.prefix_len = (CGROUP_PATH_MAX * 8) as u32;
    if let Some(task_id) = CGROUP_SELECTORS.get(&*key).copied() {
        join(tgid, task_id);
    }
}

/// Tags `tgid` with `task_id` unless it is tagged already (a tag never changes this way).
#[inline(always)]
fn join(tgid: u32, task_id: u32) {
    let tag = TaskTag {
        task_id,
        flags: TAG_SELECTED,
        instance: 0,
        reserved: 0,
    };
    // The byte first: the entry is never there without it.
    tagged::mark(tgid);
    let _ = TAGS.insert(&tgid, &tag, u64::from(BPF_NOEXIST));
}
