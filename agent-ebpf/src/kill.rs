//! The after-the-fact backend, attached only where BPF LSM is missing: BTF tracepoints that see an
//! exec or an open of a tagged process just after it succeeded, judge it by the same rules, and on
//! a miss (enforce mode) send `SIGKILL`, which the process receives before it returns to user
//! space. Processes that `corral run` confined with Landlock are left to Landlock; for them the
//! `sys_exit` hook only reports Landlock's refusals (`EACCES`), which Landlock itself does not,
//! and counts (and, with `events.allowed`, reports) the opens and execs Landlock let through.

use agent_common::{Access, Backend, Op, PATH_MAX, PRIV_IO_URING, Reason, TAG_LANDLOCK};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_get_current_task, bpf_probe_read_kernel, bpf_probe_read_user,
        generated::{bpf_get_current_task_btf, bpf_probe_read_user_str, bpf_send_signal},
    },
    macros::btf_tracepoint,
    programs::BtfTracePointContext,
};

use crate::{
    context::{Caller, caller_of, tag_of, tgid_of_current},
    files::{Walked, judge_resolved_file, open_access, open_allowed, remember_exe},
    identity::identity_denied,
    maps::{OFFSETS, PATH_SCRATCH, offsets},
    mount_ns::refuse_foreign,
    pathwalk::dentry_path,
    privileges::granted,
    report::{DENY, PathSource, Target, finish, report_allowed},
    socket_kinds::{SOCK_TYPE_MASK, privilege_without_lsm, socket_target},
    syscalls::{
        Call, NR_CREAT, NR_EXECVE, NR_EXECVEAT, NR_IO_URING_SETUP, NR_OPEN, NR_OPEN_BY_HANDLE_AT,
        NR_OPENAT, NR_OPENAT2, NR_SOCKET, NR_SOCKETPAIR, watched,
    },
};

const SIGKILL: u32 = 9;
/// `-EACCES`: what Landlock returns for a refused open or exec.
const EACCES: i64 = -13;

/// Judges the file a tagged process has just executed (from `sched_process_exec`): exec needs
/// `RULE_EXEC` and no deny. A miss in enforce mode kills the process before the new program runs.
///
/// Landlock-confined processes are judged too: Landlock let the exec through, but it does not
/// judge the files of the kernel's internal mounts (a `memfd_create` file run with `fexecve`, for
/// one), so the same rules are checked on the executed file itself and a miss kills. An exec both
/// allow is Landlock's allowed decision, counted (and reported) once.
#[inline(always)]
pub fn judge_exec(who: &Caller, file: *const u8) {
    let landlocked = who.flags & TAG_LANDLOCK != 0;
    let (verdict, walked) = judge_walked(Op::Exec, who, file, 0, !landlocked, |flags| {
        flags & agent_common::RULE_EXEC != 0
    });
    if verdict == DENY {
        // SAFETY: signals the current task, which is the exec'ing process.
        unsafe { bpf_send_signal(SIGKILL) };
        return;
    }
    // A file outside the caller's mount namespace was refused unwalked (an audited miss): walk
    // it now, as for any other, so that the executable and Landlock's event name its path.
    let walked = walked.unwrap_or_else(|| walk_file(file));
    if landlocked {
        // The path the judge walked is still in the scratch: the event names it.
        report_allowed(
            Op::Exec,
            || *who,
            |target| landlock_target(target, walked, Access::EXEC),
        );
    } else {
        remember_exe();
    }
}

/// Walks `file->f_path` into the path scratch: the scratch and the walk's result in the
/// convention of `files::judge_resolved_file` (bytes with the NUL, or a negative errno); `None`
/// without a scratch.
#[inline(always)]
fn walk_file(file: *const u8) -> Walked {
    let scratch = PATH_SCRATCH.get_ptr_mut(0)?;
    let off = offsets();
    // SAFETY: `scratch` is a per-CPU map value; `file` is only probe-read by the walk.
    let len = unsafe {
        (*scratch).owner = bpf_get_current_pid_tgid();
        dentry_path(file.add(off.file_f_path as usize), scratch)
    };
    // `dentry_path` returns the length without the NUL.
    Some((scratch, if len >= 0 { len + 1 } else { len }))
}

/// Judges `file` for the kill backend; the event names `Backend::Kill`. A file outside the
/// caller's mount namespace is a miss before any walk (`mount_ns::refuse_foreign`); any other is
/// walked into the scratch (`walk_file`) and judged by its path. Returns the verdict and the walk
/// (`None` when the file was refused unwalked). `count_allowed` as in
/// `files::judge_resolved_denying`.
#[inline(always)]
fn judge_walked(
    op: Op,
    who: &Caller,
    file: *const u8,
    access: u32,
    count_allowed: bool,
    allowed: impl Fn(u32) -> bool,
) -> (i32, Option<Walked>) {
    let mut target = Target::empty();
    target.access = access;
    target.backend = Backend::Kill as u32;
    if let Some(verdict) = refuse_foreign(
        op,
        who,
        file.wrapping_add(offsets().file_f_path as usize),
        &mut target,
    ) {
        return (verdict, None);
    }
    let walked = walk_file(file);
    let verdict = judge_resolved_file(
        op,
        who,
        walked,
        target,
        count_allowed,
        identity_denied(who.rules, file),
        allowed,
    )
    .verdict;
    (verdict, Some(walked))
}

/// `sys_exit(struct pt_regs *regs, long ret)`: every syscall's return of every process, attached
/// only without BPF LSM. Fast path: the syscall number (`orig_ax`, see `syscall_nr`) is read
/// first, and every call other than the open family (`open`, `creat`, `openat`, `openat2`,
/// `open_by_handle_at`), the exec family (`execve`, `execveat`), `socket`/`socketpair` and
/// `io_uring_setup`, by their numbers in either the 64-bit or the ia32 table
/// (`syscalls::watched`), leaves at once, before any map look-up: nothing below acts on another
/// call. Then untagged processes leave after the tag look-up, and the call is decoded by the
/// ABI it was made in (`syscalls::Call::decode`: a 64-bit process's `int $0x80` open is an
/// open). For a tagged process:
/// - a `socket`/`socketpair` (or an ia32 `socketcall` making one) that succeeded, of a kind no
///   fallback hook judges and the task's `spec.privileges` do not grant
///   (`socket_kinds::privilege_without_lsm`: raw, ping, packet, SCTP, vsock, UDP-Lite, ...): the
///   process is killed (enforce mode) before it can use it, Landlock-confined or not (Landlock
///   does not judge sockets). Fails closed.
/// - an `io_uring_setup` that succeeded, unless `spec.privileges` grants `io_uring`: killed
///   before the process can submit anything to the ring (`judge_io_uring`).
/// - an open-family call that succeeded: the new file is judged like LSM `file_open`; a miss in
///   enforce mode kills the process (`SIGKILL`) before it can use the descriptor. Fails closed (an
///   unreadable file or unresolvable path is a miss).
/// - for a Landlock-confined process, an open- or exec-family call that failed with `EACCES` is
///   reported as Landlock's refusal (path as the caller gave it). Nothing is killed. An open that
///   succeeded is Landlock's allowed decision: counted, and reported as `allowed` (the opened
///   file's path) when `SETTINGS` asks for allowed events.
#[btf_tracepoint(function = "sys_exit")]
pub fn corral_sys_exit(ctx: BtfTracePointContext) -> i32 {
    // Arg 0 is `struct pt_regs *`, arg 1 the return value. The fast path stays here, in the
    // program itself, so the calls it leaves on cost no call into `try_sys_exit` either.
    let regs: *const u8 = ctx.arg(0);
    let orig_ax = syscall_nr(regs);
    if !watched(orig_ax) {
        return 0;
    }
    match try_sys_exit(regs, ctx.arg(1), orig_ax) {
        Ok(v) | Err(v) => v,
    }
}

/// The slow path of `corral_sys_exit`, for a watched call (`orig_ax`) that returned `ret`.
fn try_sys_exit(regs: *const u8, ret: i64, orig_ax: u64) -> Result<i32, i32> {
    // One helper call serves the tag look-up and the ABI check: both read the task.
    // SAFETY: the helper only returns the current task.
    let task = unsafe { bpf_get_current_task_btf() } as *const u8;
    let Some(tag) = tag_of(tgid_of_current(task)) else {
        return Ok(0);
    };
    let Some(call) = Call::decode(orig_ax, regs, task) else {
        return Ok(0);
    };
    let nr = call.nr;
    let (is_open, is_exec) = (is_open_call(nr), is_exec_call(nr));
    // The task's rules (`caller_of`: hash look-ups) are fetched only on the paths that use them:
    // not for a Landlock-confined process's allowed or failed calls, the commonest ones.
    if is_socket_call(nr) {
        if ret >= 0 && judge_socket(&caller_of(tag), &call, regs) == DENY {
            // SAFETY: signals the current task, the creator of the socket.
            unsafe { bpf_send_signal(SIGKILL) };
        }
        return Ok(0);
    }
    if nr == NR_IO_URING_SETUP {
        if ret >= 0 && judge_io_uring(&caller_of(tag)) == DENY {
            // SAFETY: signals the current task, the creator of the ring, before it can map the
            // ring and submit anything.
            unsafe { bpf_send_signal(SIGKILL) };
        }
        return Ok(0);
    }
    if tag.flags & TAG_LANDLOCK != 0 {
        if ret == EACCES {
            report_landlock(&caller_of(tag), &call, regs, is_exec);
        } else if is_open && ret >= 0 {
            if nr == NR_OPEN_BY_HANDLE_AT && landlocked_handle_refused(&caller_of(tag), ret as u64)
            {
                // SAFETY: signals the current task, the caller of the open.
                unsafe { bpf_send_signal(SIGKILL) };
                return Ok(0);
            }
            // Landlock let the open through (its execs are reported at `sched_process_exec`).
            report_allowed(
                Op::Open,
                || caller_of(tag),
                |target| landlock_open_target(target, ret as u64),
            );
        }
        return Ok(0);
    }
    if !is_open || ret < 0 {
        return Ok(0);
    }
    let who = caller_of(tag);
    let off = offsets();
    // The descriptor vanished (another thread closed it): nothing left to judge.
    let file = fd_file(ret as u64).ok_or(0)?;
    // SAFETY: probe reads at BTF offsets.
    let (f_mode, f_flags): (u32, u32) = unsafe {
        (
            bpf_probe_read_kernel(file.add(off.file_f_mode as usize).cast()).map_err(|_| 0)?,
            bpf_probe_read_kernel(file.add(off.file_f_flags as usize).cast()).map_err(|_| 0)?,
        )
    };
    let access = open_access(f_mode, f_flags) & (Access::READ | Access::WRITE);
    let (verdict, _) = judge_walked(Op::Open, &who, file, access, true, open_allowed(access));
    if verdict == DENY {
        // SAFETY: signals the current task, the caller of the open.
        unsafe { bpf_send_signal(SIGKILL) };
    }
    Ok(0)
}

/// Whether `nr` is an open-family call: `open`, `creat`, `openat`, `openat2`, `open_by_handle_at`.
#[inline(always)]
fn is_open_call(nr: u64) -> bool {
    matches!(
        nr,
        NR_OPEN | NR_CREAT | NR_OPENAT | NR_OPENAT2 | NR_OPEN_BY_HANDLE_AT
    )
}

/// Whether `nr` creates sockets: `socket`, `socketpair`.
#[inline(always)]
fn is_socket_call(nr: u64) -> bool {
    nr == NR_SOCKET || nr == NR_SOCKETPAIR
}

/// Judges the socket a tagged process has just created from the call's arguments (`family`,
/// `type`, `protocol`: the same for `socket` and `socketpair`, see `Call::socket_args`), as the
/// LSM `socket_create` guard does with the kill backend's list (`privilege_without_lsm`). Counts
/// and reports what needed a privilege; `DENY` when the process is to be killed, as when the
/// arguments of a socket that exists cannot be read back (fails closed).
#[inline(always)]
fn judge_socket(who: &Caller, call: &Call, regs: *const u8) -> i32 {
    let Some((family, ty, protocol)) = call.socket_args(regs) else {
        let mut target = Target::empty();
        target.backend = Backend::Kill as u32;
        return finish(Op::Socket, who, Some(Reason::BadAddress), &target);
    };
    let ty = ty & SOCK_TYPE_MASK;
    let privilege = privilege_without_lsm(family, ty, protocol);
    if privilege == 0 {
        return 0;
    }
    let mut target = socket_target(family, ty, protocol);
    target.backend = Backend::Kill as u32;
    let miss = if granted(who, privilege) {
        None
    } else {
        Some(Reason::Forbidden)
    };
    finish(Op::Socket, who, miss, &target)
}

/// Judges the `io_uring` instance a tagged process has just created: nothing of the kill
/// backend's sees the operations a ring runs (an `IORING_OP_OPENAT` or `IORING_OP_SOCKET` makes
/// no system call of its own), so a ring is a miss unless the task's `spec.privileges` grants
/// `io_uring`, Landlock-confined or not (Landlock judges a ring's opens, but not its sockets).
/// The ring exists but is still empty: killed now, the process never submits to it. Counts and
/// reports the decision; `DENY` when the process is to be killed.
#[inline(always)]
fn judge_io_uring(who: &Caller) -> i32 {
    let mut target = Target::empty();
    target.backend = Backend::Kill as u32;
    let miss = (!granted(who, PRIV_IO_URING)).then_some(Reason::Forbidden);
    finish(Op::IoUring, who, miss, &target)
}

/// Whether `nr` is an exec-family call: `execve`, `execveat`.
#[inline(always)]
fn is_exec_call(nr: u64) -> bool {
    nr == NR_EXECVE || nr == NR_EXECVEAT
}

/// The syscall number `sys_exit` was called for: `regs->orig_ax`, read by a direct load rather
/// than a `bpf_probe_read_kernel` call. `regs` is a BTF pointer (`struct pt_regs *`, the typed
/// argument of a `tp_btf` program) and the offset a constant (`OFFSETS` is frozen `.rodata`), so
/// the verifier checks the 8-byte load against `struct pt_regs` in the kernel's BTF and the JIT
/// emits it inline, fault-tolerant like a probe read (a faulting load yields 0). The one field is
/// read straight from `OFFSETS`, without even `offsets()`'s pointer spill: this runs on every
/// syscall of every process.
#[inline(always)]
fn syscall_nr(regs: *const u8) -> u64 {
    // SAFETY: a valid static; the volatile read only stops constant folding.
    let off = unsafe { core::ptr::read_volatile(&raw const OFFSETS.regs_orig_ax) } as usize;
    // SAFETY: verified against BTF as described above; the kernel fixes up a faulting load.
    unsafe { core::ptr::read_volatile(regs.wrapping_add(off).cast::<u64>()) }
}

/// Judges again the file a Landlock-confined process opened by handle (`open_by_handle_at`,
/// descriptor `fd`), by the task's rules, as every exec Landlock lets through is: Landlock walks
/// from a file outside a bind mount's subtree, decoded on that bind mount, up to the bind mount's
/// root (seen on 6.18), and allows what that directory allows, while no path from the caller's
/// root reaches the file (`escaped`). True when the judge missed (the caller is to be killed);
/// an open both allow is Landlock's decision, counted once (by `report_allowed`).
#[inline(always)]
fn landlocked_handle_refused(who: &Caller, fd: u64) -> bool {
    let Some((file, access)) = fd_open(fd) else {
        return false;
    };
    judge_walked(Op::Open, who, file, access, false, open_allowed(access)).0 == DENY
}

/// Fills in the event of an open Landlock allowed: the file at descriptor `fd`, its access mode
/// and path. False when the descriptor is already gone (nothing is reported then).
#[inline(always)]
fn landlock_open_target(target: &mut Target, fd: u64) -> bool {
    let Some((file, access)) = fd_open(fd) else {
        return false;
    };
    landlock_target(target, walk_file(file), access)
}

/// The file at descriptor `fd` of the caller and the read/write `Access` it was opened with;
/// `None` when the descriptor is already gone.
#[inline(always)]
fn fd_open(fd: u64) -> Option<(*const u8, u32)> {
    let file = fd_file(fd)?;
    let off = offsets();
    // SAFETY: probe reads at BTF offsets.
    let (f_mode, f_flags): (u32, u32) = unsafe {
        (
            bpf_probe_read_kernel(file.add(off.file_f_mode as usize).cast()).unwrap_or(0),
            bpf_probe_read_kernel(file.add(off.file_f_flags as usize).cast()).unwrap_or(0),
        )
    };
    Some((
        file,
        open_access(f_mode, f_flags) & (Access::READ | Access::WRITE),
    ))
}

/// Fills in the event of an exec or open Landlock allowed: `Backend::Landlock`, `access`, and
/// the path `walk_file` put in the scratch (or the walk's error). Always true.
#[inline(always)]
fn landlock_target(target: &mut Target, walked: Walked, access: u32) -> bool {
    target.backend = Backend::Landlock as u32;
    target.access = access;
    match walked {
        Some((scratch, len)) if len > 0 => {
            // SAFETY: per-CPU map value; the event copies the path out of it.
            target.path = PathSource::Resolved(unsafe { (&raw const (*scratch).path).cast() });
            target.path_len = (len - 1) as u32;
        }
        Some((_, len)) => target.path_error = len as i32,
        None => target.path_error = -14,
    }
    true
}

/// `current->files->fdt->fd[fd]`, or `None` if out of range or unreadable.
#[inline(always)]
fn fd_file(fd: u64) -> Option<*const u8> {
    let off = offsets();
    // SAFETY: probe reads of the current task's file table at BTF offsets.
    unsafe {
        let task = bpf_get_current_task() as *const u8;
        let files: *const u8 =
            bpf_probe_read_kernel(task.add(off.task_files as usize).cast()).ok()?;
        let fdt: *const u8 =
            bpf_probe_read_kernel(files.add(off.files_fdt as usize).cast()).ok()?;
        let max: u32 = bpf_probe_read_kernel(fdt.add(off.fdtable_max_fds as usize).cast()).ok()?;
        if fd >= u64::from(max) {
            return None;
        }
        let fds: *const *const u8 =
            bpf_probe_read_kernel(fdt.add(off.fdtable_fd as usize).cast()).ok()?;
        let file = bpf_probe_read_kernel(fds.add(fd as usize)).ok()?;
        (!file.is_null()).then_some(file)
    }
}

/// Reports a Landlock refusal: the path argument as the caller passed it (it may be relative).
#[inline(always)]
fn report_landlock(who: &Caller, call: &Call, regs: *const u8, is_exec: bool) {
    let nr = call.nr;
    // Which argument holds the path, and which the open flags (openat2: a user pointer to
    // `struct open_how`, whose first field is the flags; creat and the execs: no flags).
    let (path_arg, flags_arg) = match nr {
        NR_OPENAT | NR_OPENAT2 => (1, 2),
        NR_EXECVEAT => (1, 0),
        NR_OPEN => (0, 1),
        NR_OPEN_BY_HANDLE_AT => return,
        // creat, execve: the path first.
        _ => (0, 0),
    };
    let mut target = Target::empty();
    target.backend = Backend::Landlock as u32;
    target.access = if is_exec {
        Access::EXEC
    } else if nr == NR_CREAT {
        Access::WRITE
    } else {
        let raw = call.arg(regs, flags_arg);
        let flags: u64 = if nr == NR_OPENAT2 {
            // SAFETY: a probe read of the caller's memory.
            unsafe { bpf_probe_read_user(raw as *const u64) }.unwrap_or(0)
        } else {
            raw
        };
        match flags & 3 {
            0 => Access::READ,
            1 => Access::WRITE,
            _ => Access::READ | Access::WRITE,
        }
    };
    let op = if is_exec { Op::Exec } else { Op::Open };
    let Some(scratch) = PATH_SCRATCH.get_ptr_mut(0) else {
        return;
    };
    let user_path = call.arg(regs, path_arg) as *const u8;
    // SAFETY: a probe read of the user string the call's path argument points at.
    unsafe {
        let n = bpf_probe_read_user_str(
            (&raw mut (*scratch).path).cast(),
            PATH_MAX as u32,
            user_path.cast(),
        );
        if n > 0 {
            target.path = PathSource::Resolved((&raw const (*scratch).path).cast());
            target.path_len = (n - 1) as u32;
        } else {
            target.path_error = n as i32;
        }
    }
    finish(op, who, Some(Reason::NotAllowed), &target);
}
