//! Exec and open: judged by the kernel's resolved path of the file really reached.

use agent_common::{
    Access, COUNTER_OPEN_CACHE_HITS, Decision, EXE_PATH_MAX, FileRuleData, FileRuleKeyScratch, Op,
    PATH_MAX, RULE_DENY, RULE_EXEC, RULE_PATH_MAX, RULE_READ, RULE_WRITE, Reason, counter_index,
};
use aya_ebpf::{
    bindings::path,
    helpers::{
        bpf_get_current_pid_tgid,
        generated::{bpf_d_path, bpf_probe_read_kernel as raw_probe_read_kernel},
    },
    macros::lsm,
    maps::lpm_trie::Key,
    programs::LsmContext,
};

use crate::{
    context::{Caller, caller},
    decision_cache::cacheable,
    escaped::{ESTALE, rendered_unnamed},
    identity::identity_denied,
    maps::{EXE_SCRATCH, EXES, FILE_RULES, PATH_SCRATCH, count, offsets},
    mount_ns::refuse_foreign,
    report::{DENY, PathSource, Target, finish, finish_counting, lsm_verdict},
};

const FMODE_READ: u32 = 0x1;
const FMODE_WRITE: u32 = 0x2;
/// `FMODE_EXEC` in `f_mode`; the kernel's exec-opens (`do_open_execat`) carry `__FMODE_EXEC`
/// (same value) in `f_flags`, which `open(2)` callers cannot set, and not always in `f_mode`.
const FMODE_EXEC: u32 = 0x20;

/// `bprm_check_security(struct linux_binprm *bprm)`: exec of a binary, and of each interpreter
/// in turn (`#!` scripts run it once for the script and once for its interpreter).
///
/// Allows untagged processes. For a tagged process, allows only a resolved path with `RULE_EXEC`
/// and no `RULE_DENY`; anything else, including a path the kernel cannot resolve, is a miss.
/// Fails closed for tagged processes.
#[lsm(hook = "bprm_check_security")]
pub fn corral_bprm_check(ctx: LsmContext) -> i32 {
    lsm_verdict(match try_bprm_check(&ctx) {
        Ok(v) | Err(v) => v,
    })
}

fn try_bprm_check(ctx: &LsmContext) -> Result<i32, i32> {
    let Some(who) = caller() else {
        return Ok(0);
    };
    let off = offsets();
    // SAFETY: arg 0 of this hook is `struct linux_binprm *`; `file` is read at its BTF offset.
    let file: *const u8 = unsafe {
        let bprm: *const u8 = ctx.arg(0);
        core::ptr::read_volatile(bprm.add(off.binprm_file as usize).cast::<*const u8>())
    };
    if file.is_null() {
        return Err(finish(
            Op::Exec,
            &who,
            Some(Reason::PathUnresolved),
            &Target::empty(),
        ));
    }
    let verdict = judge_file(Op::Exec, &who, file, 0, |flags| flags & RULE_EXEC != 0).verdict;
    if verdict == 0 {
        remember_exe();
    }
    Ok(verdict)
}

/// Records the path just resolved (still in this CPU's scratch) as the caller's executable.
/// Informational: a lost race only costs the event its `exe`.
#[inline(always)]
pub fn remember_exe() {
    let (Some(scratch), Some(exe)) = (PATH_SCRATCH.get_ptr(0), EXE_SCRATCH.get_ptr_mut(0)) else {
        return;
    };
    let tgid = (bpf_get_current_pid_tgid() >> 32) as u32;
    // SAFETY: both are per-CPU map values of the sizes used; the copy has a constant size.
    unsafe {
        if (*scratch).owner != bpf_get_current_pid_tgid() {
            return;
        }
        (*exe).len = (*scratch).prefix_len;
        (*exe).reserved = 0;
        if raw_probe_read_kernel(
            (&raw mut (*exe).path).cast(),
            EXE_PATH_MAX as u32,
            (&raw const (*scratch).path).cast(),
        ) != 0
        {
            return;
        }
        let _ = EXES.insert(&tgid, &*exe, 0);
    }
}

/// `file_open(struct file *file)`: every open that reaches a file, with its access mode (read,
/// write, or exec-open: the kernel opening a binary or ELF interpreter to execute it; a refused
/// exec-open is reported and counted as an `exec`).
///
/// Allows untagged processes. For a tagged process: write needs `RULE_WRITE`; read needs
/// `RULE_READ`; an exec-open needs `RULE_EXEC` or `RULE_READ` (the ELF interpreter is exec-opened
/// but is only read); `RULE_DENY` beats all. An unresolvable path is a miss. Fails closed for
/// tagged processes.
///
/// An allowed open of a file with one link on a local file system is remembered in
/// `OPEN_DECISIONS` (see `decision_cache`): the same process's task re-opening it is allowed
/// without resolving the path again while no rename or mount change happened (and for at most
/// `DECISION_TTL_NS`); the decision is counted as usual.
#[lsm(hook = "file_open")]
pub fn corral_file_open(ctx: LsmContext) -> i32 {
    lsm_verdict(try_file_open(&ctx))
}

fn try_file_open(ctx: &LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let off = offsets();
    // SAFETY: arg 0 of this hook is `struct file *`; `f_mode` is read at its BTF offset.
    let (file, f_mode, f_flags): (*const u8, u32, u32) = unsafe {
        let file: *const u8 = ctx.arg(0);
        (
            file,
            core::ptr::read_volatile(file.add(off.file_f_mode as usize).cast::<u32>()),
            core::ptr::read_volatile(file.add(off.file_f_flags as usize).cast::<u32>()),
        )
    };
    let access = open_access(f_mode, f_flags);
    // An exec-open is the first step of an exec: report it as one.
    let op = if access & Access::EXEC != 0 {
        Op::Exec
    } else {
        Op::Open
    };
    let cacheable = cacheable(&who, file, access);
    if let Some(c) = &cacheable {
        if c.hit() {
            count(counter_index(op as u32, Decision::Allowed as u32));
            count(COUNTER_OPEN_CACHE_HITS);
            return 0;
        }
    }
    let judged = judge_file(op, &who, file, access, open_allowed(access));
    if judged.allowed {
        if let Some(c) = &cacheable {
            c.remember();
        }
    }
    judged.verdict
}

/// `Access` bits of an open file, from its `f_mode` and `f_flags`.
#[inline(always)]
pub fn open_access(f_mode: u32, f_flags: u32) -> u32 {
    let mut access = 0;
    if f_mode & FMODE_READ != 0 {
        access |= Access::READ;
    }
    if f_mode & FMODE_WRITE != 0 {
        access |= Access::WRITE;
    }
    if (f_mode | f_flags) & FMODE_EXEC != 0 {
        access |= Access::EXEC;
    }
    access
}

/// The open rule: write needs `RULE_WRITE`; read needs `RULE_READ`; an exec-open needs
/// `RULE_EXEC` or `RULE_READ`; an open asking neither needs some rule.
#[inline(always)]
pub fn open_allowed(access: u32) -> impl Fn(u32) -> bool {
    move |flags| {
        let write_ok = access & Access::WRITE == 0 || flags & RULE_WRITE != 0;
        let read_ok = if access & Access::EXEC != 0 {
            flags & (RULE_EXEC | RULE_READ) != 0
        } else if access & Access::READ != 0 {
            flags & RULE_READ != 0
        } else {
            // No read or write asked (O_ACCMODE 3, ioctl-only opens): some rule must cover it.
            flags & (RULE_READ | RULE_WRITE | RULE_EXEC) != 0
        };
        write_ok && read_ok
    }
}

/// A finished file judgement.
#[derive(Clone, Copy)]
pub struct Judged {
    /// What the hook returns.
    pub verdict: i32,
    /// The rules allowed the operation (an audited miss returns 0 too, but is not allowed).
    pub allowed: bool,
}

impl Judged {
    /// A miss the hook already finished, with its verdict.
    #[inline(always)]
    const fn missed(verdict: i32) -> Self {
        Self {
            verdict,
            allowed: false,
        }
    }
}

/// Resolves `file->f_path` with `bpf_d_path`, looks the path up in `FILE_RULES` for the caller's
/// task, and finishes the hook. A file outside the caller's mount namespace
/// (`mount_ns::refuse_foreign`) or reached by no path from the caller's root
/// (`escaped::rendered_unnamed`: `-ESTALE`) is a `path_unresolved` miss. `allowed` gets the matched flags (0 when no rule matched) and is
/// only asked when no deny rule matched.
#[inline(always)]
pub fn judge_file(
    op: Op,
    who: &Caller,
    file: *const u8,
    access: u32,
    allowed: impl Fn(u32) -> bool,
) -> Judged {
    let mut target = Target::empty();
    target.access = access;
    let off = offsets();
    if let Some(verdict) = refuse_foreign(
        op,
        who,
        file.wrapping_add(off.file_f_path as usize),
        &mut target,
    ) {
        return Judged::missed(verdict);
    }
    // Judged before the path resolves: the look-up does not touch the path scratch.
    let by_identity = identity_denied(who.rules, file);
    let resolved = PATH_SCRATCH
        .get_ptr_mut(0)
        .map(|scratch| resolve_into(scratch, file, off.file_f_path as usize));
    judge_resolved_file(op, who, resolved, target, true, by_identity, allowed)
}

/// Renders `file`'s path into `scratch` with `bpf_d_path`; returns the scratch and the length
/// (bytes with the NUL) or a negative errno, `-ESTALE` for a file `bpf_d_path` could only name
/// `/` (an escaped walk: `escaped`). A function of its own, always inlined: as the body of a
/// closure LLVM outlined it into a BPF subprogram whose frame counts against the hook's
/// 512-byte stack.
#[inline(always)]
fn resolve_into(
    scratch: *mut FileRuleKeyScratch,
    file: *const u8,
    f_path_off: usize,
) -> (*mut FileRuleKeyScratch, i64) {
    // SAFETY: `file` is the hook's trusted `struct file *`; `f_path` is at its BTF offset, so
    // the verifier sees a `struct path *`. `scratch` is a per-CPU map value of `PATH_MAX` path
    // bytes.
    let len = unsafe {
        (*scratch).owner = bpf_get_current_pid_tgid();
        let path_ptr = file.add(f_path_off) as *mut path;
        bpf_d_path(path_ptr, (&raw mut (*scratch).path).cast(), PATH_MAX as u32)
    };
    let rendered = unsafe { (&raw const (*scratch).path).cast::<u8>() };
    if rendered_unnamed(file.wrapping_add(f_path_off), rendered, len) {
        (scratch, ESTALE)
    } else {
        (scratch, len)
    }
}

/// A file's path resolved into the path scratch: the scratch and what the resolver returned
/// (bytes with the NUL, or a negative errno); `None` when there was no scratch.
pub type Walked = Option<(*mut FileRuleKeyScratch, i64)>;

/// Finishes the judgement of an open or exec of a file whose path is `resolved`, by the rules
/// and the deny rules (`RULE_DENY`): see `judge_resolved_identity`. No scratch is a miss
/// (`PathUnresolved`). Returns the verdict and whether the rules allowed the operation.
#[inline(always)]
pub fn judge_resolved_file(
    op: Op,
    who: &Caller,
    resolved: Walked,
    target: Target,
    count_allowed: bool,
    by_identity: bool,
    allowed: impl Fn(u32) -> bool,
) -> Judged {
    let Some((scratch, len)) = resolved else {
        return Judged::missed(finish(op, who, Some(Reason::PathUnresolved), &target));
    };
    judge_resolved_identity(
        op,
        who,
        scratch,
        len,
        target,
        RULE_DENY,
        count_allowed,
        by_identity,
        allowed,
    )
}

/// Finishes a file judgement once the path is in `scratch.path`: `len` is what the resolver
/// returned (bytes with the NUL, or a negative errno). Looks the path up in `FILE_RULES` for the
/// caller's task; `allowed` gets the matched flags (0 when no rule matched) and is only asked when
/// no deny rule matched. Returns `DENY` or 0.
///
/// The rule flags that make a `deny_rule` miss are given by `deny` (a
/// rename also refuses `RULE_DENY_BENEATH`: a directory holding a denied path).
/// `count_allowed` false: a second judge of an operation another mechanism already allowed and
/// counted (see `report::finish_counting`); only a miss is counted and reported.
#[inline(always)]
#[allow(
    clippy::too_many_arguments,
    reason = "one judgement's inputs; a struct would only be built to be taken apart here"
)]
pub fn judge_resolved_denying(
    op: Op,
    who: &Caller,
    scratch: *mut FileRuleKeyScratch,
    len: i64,
    target: Target,
    deny: u32,
    count_allowed: bool,
    allowed: impl Fn(u32) -> bool,
) -> i32 {
    judge_resolved_identity(
        op,
        who,
        scratch,
        len,
        target,
        deny,
        count_allowed,
        false,
        allowed,
    )
    .verdict
}

/// As `judge_resolved_denying`; `by_identity` true (see `identity::identity_denied`) turns a path
/// the rules allow into a `denied_identity` miss: the file reached is a denied one by device and
/// inode (a hard link). Path misses keep their own reason. Returns the verdict and whether the
/// rules allowed the operation.
#[inline(always)]
#[allow(
    clippy::too_many_arguments,
    reason = "one judgement's inputs; a struct would only be built to be taken apart here"
)]
pub fn judge_resolved_identity(
    op: Op,
    who: &Caller,
    scratch: *mut FileRuleKeyScratch,
    len: i64,
    mut target: Target,
    deny: u32,
    count_allowed: bool,
    by_identity: bool,
    allowed: impl Fn(u32) -> bool,
) -> Judged {
    let me = bpf_get_current_pid_tgid();
    if len <= 0 {
        // Too long (-ENAMETOOLONG) or unreachable: deny, never truncate-and-allow.
        target.path_error = if len < 0 { len as i32 } else { -22 };
        return Judged::missed(finish(op, who, Some(Reason::PathUnresolved), &target));
    }
    // `len` counts the NUL; the key holds at most RULE_PATH_MAX bytes (see `RULE_PATH_MAX`).
    let key_bytes = if len as usize > RULE_PATH_MAX {
        RULE_PATH_MAX as u32
    } else {
        len as u32
    };
    // SAFETY: the scratch starts with an LPM key header laid out as `Key<FileRuleData>`.
    let flags = unsafe {
        (*scratch).prefix_len = 32 + 8 * key_bytes;
        (*scratch).task_id = who.rules;
        let key = &*(scratch as *const Key<FileRuleData>);
        FILE_RULES.get(key).copied().unwrap_or(0)
    };
    target.path = PathSource::Resolved(unsafe { (&raw const (*scratch).path).cast() });
    target.path_len = (len - 1) as u32;
    // SAFETY: per-CPU map value.
    let clobbered = unsafe { (*scratch).owner } != me;
    // The path length rides in `prefix_len` from here on, for `remember_exe`.
    unsafe { (*scratch).prefix_len = target.path_len };
    let miss = if clobbered {
        // Another program on this CPU reused the buffer while this one was preempted: the
        // look-up may have used its path. Fail closed.
        Some(Reason::PathUnresolved)
    } else if flags & deny != 0 {
        Some(Reason::DenyRule)
    } else if allowed(flags) {
        if by_identity {
            Some(Reason::DeniedIdentity)
        } else {
            None
        }
    } else {
        Some(Reason::NotAllowed)
    };
    let ret = finish_counting(op, who, miss, &target, count_allowed);
    Judged {
        verdict: if ret == DENY { DENY } else { 0 },
        allowed: miss.is_none() && who.forced_miss.is_none(),
    }
}

/// Trivial program `corral doctor` loads and attaches to learn whether the kernel runs BPF LSM
/// programs. Allows everything.
#[lsm(hook = "file_open")]
pub fn corral_probe_lsm(_ctx: LsmContext) -> i32 {
    0
}
