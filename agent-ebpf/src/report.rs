//! Turning a judgement into a return value, a counter and (for misses, and allowed decisions
//! when `SETTINGS` asks for them) an `Event`.

use agent_common::{
    Backend, COMM_LEN, COUNTER_EVENTS_DROPPED, Decision, EVENT_HEAD_SIZE, Event, Mode, Op,
    PATH_CLASS_SHORT, PATH_CLASS_UNIX, PATH_MAX, Reason, UNIX_PATH_MAX, counter_index,
};
use aya_ebpf::helpers::{
    bpf_get_current_pid_tgid, bpf_get_current_task, bpf_get_current_uid_gid, bpf_ktime_get_boot_ns,
    bpf_probe_read_kernel,
    generated::{
        bpf_get_current_comm as raw_get_current_comm,
        bpf_probe_read_kernel as raw_probe_read_kernel,
    },
};

use crate::{
    context::Caller,
    maps::{EVENTS, allowed_event_wanted, count, offsets},
};

/// `-EPERM`, what a denied operation returns to the caller.
pub const DENY: i32 = -1;

/// The value an LSM hook returns, in a shape every verifier can bound to `[-4095, 0]`.
///
/// The 6.12 verifier checks LSM return values but treats `neg` as unknown, and LLVM likes to
/// turn "`-1` or `0`" into `-(x & 1)`. Comparing an opaque value and returning one of two
/// constants compiles to a branch between two immediate moves, which it follows exactly.
#[inline(always)]
pub fn lsm_verdict(v: i32) -> i32 {
    if core::hint::black_box(v) == DENY {
        DENY
    } else {
        0
    }
}

/// Where the event's `path` bytes come from.
#[derive(Clone, Copy)]
pub enum PathSource {
    None,
    /// A resolved path in kernel memory (the per-CPU scratch, `PATH_MAX` bytes): copy
    /// `PATH_CLASS_SHORT` bytes when `path_len` fits, else `PATH_MAX`.
    Resolved(*const u8),
    /// A `sun_path` in the kernel's copy of the socket address: copy `UNIX_PATH_MAX` bytes.
    UnixAddress(*const u8),
}

/// What the operation was aimed at, for the event.
#[derive(Clone, Copy)]
pub struct Target {
    pub access: u32,
    pub family: u32,
    pub proto: u32,
    pub port: u32,
    pub addr: [u8; 16],
    pub path: PathSource,
    pub path_len: u32,
    pub path_error: i32,
    /// A `Backend` code.
    pub backend: u32,
    /// ptrace, signal: the target process.
    #[allow(
        clippy::struct_field_names,
        reason = "the event's field of the same name; `pid` would read as the caller's"
    )]
    pub target_pid: u32,
}

impl Target {
    pub const fn empty() -> Self {
        Self {
            access: 0,
            family: 0,
            proto: 0,
            port: 0,
            addr: [0; 16],
            path: PathSource::None,
            path_len: 0,
            path_error: 0,
            backend: Backend::Lsm as u32,
            target_pid: 0,
        }
    }
}

/// Ends a hook: counts the decision and, on a miss, reports it and returns `-EPERM` in enforce
/// mode or 0 in audit mode. An allowed decision is reported too when `SETTINGS` asks for it
/// (`allowed_event_wanted`).
#[inline(always)]
pub fn finish(op: Op, caller: &Caller, miss: Option<Reason>, target: &Target) -> i32 {
    finish_counting(op, caller, miss, target, true)
}

/// As `finish`; `count_allowed` false leaves allowed decisions uncounted (a second judge of an
/// operation another hook already counted).
#[inline(always)]
pub fn finish_counting(
    op: Op,
    caller: &Caller,
    miss: Option<Reason>,
    target: &Target,
    count_allowed: bool,
) -> i32 {
    let miss = match caller.forced_miss {
        Some(reason) => Some(reason),
        None => miss,
    };
    let (decision, reason) = match miss {
        None => {
            // A second judge (`count_allowed` false) neither counts nor reports it again.
            if !count_allowed {
                return 0;
            }
            count(counter_index(op as u32, Decision::Allowed as u32));
            if !allowed_event_wanted() {
                return 0;
            }
            (Decision::Allowed, Reason::None)
        }
        Some(reason) => {
            let decision = if caller.mode == Mode::Audit as u32 {
                Decision::Audited
            } else {
                Decision::Denied
            };
            count(counter_index(op as u32, decision as u32));
            (decision, reason)
        }
    };
    emit(op, decision, caller, reason, target);
    match decision {
        Decision::Denied => DENY,
        _ => 0,
    }
}

/// Reports an allowed decision that another mechanism made (Landlock let it through): counts it
/// and, when `SETTINGS` asks for it, sends it as an event. `caller` and `target` (filled in by
/// `fill`) are only made when an event is sent: the task's rules cost look-ups, a path a walk.
#[inline(always)]
pub fn report_allowed(
    op: Op,
    caller: impl FnOnce() -> Caller,
    fill: impl FnOnce(&mut Target) -> bool,
) {
    count(counter_index(op as u32, Decision::Allowed as u32));
    if !allowed_event_wanted() {
        return;
    }
    let mut target = Target::empty();
    if fill(&mut target) {
        emit(op, Decision::Allowed, &caller(), Reason::None, &target);
    }
}

/// One ring-buffer record with `N` path bytes: a prefix of `Event` (see `agent_common::event`).
/// Only its size and alignment matter; it is written through a `*mut Event`.
#[repr(C)]
struct Record<const N: usize> {
    head: [u64; EVENT_HEAD_SIZE / 8],
    path: [u8; N],
}

/// Reports a decision in the smallest record that holds its path: `corral_emit` with typed
/// arguments.
#[inline(always)]
fn emit(op: Op, decision: Decision, caller: &Caller, reason: Reason, target: &Target) {
    corral_emit(op as u32, decision as u32, caller, reason as u32, target);
}

/// Writes one event. A **global** BPF function (`no_mangle`, `extern "C"`, never inlined): the
/// verifier checks it once per program, with unknown arguments, instead of once for every path
/// through a hook that reaches it (inlined, the writer made `socket_connect` cost 58 % of the
/// verifier's 1M-instruction limit on 6.1). Its pointer arguments arrive "maybe null" to the
/// verifier, so they are checked; what it reads through `target.path` is a scalar to it, which
/// only the probe-read helper takes. Each branch reserves a constant size and copies a constant
/// number of bytes, which every verifier bounds. Returns 0 (a global function returns a scalar).
#[unsafe(no_mangle)]
#[inline(never)]
#[allow(
    improper_ctypes_definitions,
    reason = "called only from BPF code built in this crate; the kernel reads the pointee sizes \
              from BTF, not a C header"
)]
pub extern "C" fn corral_emit(
    op: u32,
    decision: u32,
    caller: *const Caller,
    reason: u32,
    target: *const Target,
) -> u32 {
    if caller.is_null() || target.is_null() {
        return 0;
    }
    // SAFETY: non-null pointers to a live `Caller` and `Target` on the calling hook's stack.
    let (caller, target) = unsafe { (&*caller, &*target) };
    let head = Head {
        op,
        decision,
        reason,
    };
    match target.path {
        PathSource::None => emit_sized::<0, 0>(&head, caller, target, None),
        PathSource::UnixAddress(src) => {
            emit_sized::<PATH_CLASS_UNIX, UNIX_PATH_MAX>(&head, caller, target, Some(src));
        }
        PathSource::Resolved(src) if target.path_len as usize <= PATH_CLASS_SHORT => {
            emit_sized::<PATH_CLASS_SHORT, PATH_CLASS_SHORT>(&head, caller, target, Some(src));
        }
        PathSource::Resolved(src) => {
            emit_sized::<PATH_MAX, PATH_MAX>(&head, caller, target, Some(src));
        }
    }
    0
}

/// The codes `corral_emit` was called with.
struct Head {
    op: u32,
    decision: u32,
    reason: u32,
}

/// Writes a record of `N` path bytes, copying `COPY` (≤ `N`) bytes of the path from `src`.
#[inline(always)]
fn emit_sized<const N: usize, const COPY: usize>(
    head: &Head,
    caller: &Caller,
    target: &Target,
    src: Option<*const u8>,
) {
    const {
        assert!(COPY <= N);
        assert!(core::mem::size_of::<Record<N>>() == agent_common::record_size(N));
    };
    let Some(mut entry) = EVENTS.reserve::<Record<N>>(0) else {
        count(COUNTER_EVENTS_DROPPED);
        return;
    };
    // Only the head fields are written through `ev`; the path goes to `dst`, inside the record.
    let ev = entry.as_mut_ptr().cast::<Event>();
    let pid_tgid = bpf_get_current_pid_tgid();
    let uid_gid = bpf_get_current_uid_gid();
    // SAFETY: `ev` points at a reserved, exclusively owned record of `EVENT_HEAD_SIZE + N`
    // bytes; the head fields lie in its first `EVENT_HEAD_SIZE` bytes.
    unsafe {
        (*ev).time_ns = bpf_ktime_get_boot_ns();
        (*ev).op = head.op;
        (*ev).decision = head.decision;
        (*ev).mode = caller.mode;
        (*ev).task_id = caller.task_id;
        (*ev).pid = pid_tgid as u32;
        (*ev).tgid = (pid_tgid >> 32) as u32;
        (*ev).ppid = parent_tgid();
        (*ev).uid = uid_gid as u32;
        (*ev).gid = (uid_gid >> 32) as u32;
        (*ev).access = target.access;
        (*ev).family = target.family;
        (*ev).proto = target.proto;
        (*ev).port = target.port;
        (*ev).path_len = target.path_len;
        (*ev).path_error = target.path_error;
        (*ev).reason = head.reason;
        (*ev).backend = target.backend;
        (*ev).target_pid = target.target_pid;
        (*ev).instance = caller.instance;
        (*ev).reserved = 0;
        // Written in place: a 16-byte stack copy would add to the hook's 512-byte stack.
        let comm = (&raw mut (*ev).comm).cast::<core::ffi::c_void>();
        // On failure the helper zeroes the buffer itself.
        raw_get_current_comm(comm, COMM_LEN as u32);
        // Two 8-byte loads: a 16-byte array copy compiles to a `memmove` call, one more frame.
        let addr = target.addr.as_ptr().cast::<u64>();
        let out = (&raw mut (*ev).addr).cast::<u64>();
        out.write_unaligned(addr.read_unaligned());
        out.add(1).write_unaligned(addr.add(1).read_unaligned());
        match src {
            Some(src) if COPY > 0 => {
                let dst = entry
                    .as_mut_ptr()
                    .cast::<u8>()
                    .add(EVENT_HEAD_SIZE)
                    .cast::<core::ffi::c_void>();
                if raw_probe_read_kernel(dst, COPY as u32, src.cast()) != 0 {
                    (*ev).path_len = 0;
                }
            }
            _ => (*ev).path_len = 0,
        }
    }
    entry.submit(0);
}

/// tgid of the caller's parent (`current->real_parent->tgid`), 0 if unreadable.
#[inline(always)]
fn parent_tgid() -> u32 {
    let off = offsets();
    // SAFETY: returns the current task pointer; only probe-read below.
    let task = unsafe { bpf_get_current_task() } as *const u8;
    // SAFETY: probe reads of kernel memory; a fault yields an error, not a crash.
    unsafe {
        let Ok(parent) =
            bpf_probe_read_kernel(task.add(off.task_real_parent as usize).cast::<*const u8>())
        else {
            return 0;
        };
        bpf_probe_read_kernel(parent.add(off.task_tgid as usize).cast::<u32>()).unwrap_or(0)
    }
}
