//! The record each hook writes to the `EVENTS` ring buffer for a judged operation.
//!
//! A record is a prefix of `Event`: the fixed head (`EVENT_HEAD_SIZE` bytes, every field before
//! `path`) and then only as many `path` bytes as the smallest size class that holds the path
//! (`record_size`): none without a path, `PATH_CLASS_UNIX` for a `sun_path`,
//! `PATH_CLASS_SHORT` for most resolved paths, `PATH_MAX` for the rest. Small records let the
//! ring buffer hold about 30 times more events than whole `Event`s would, and the kernel copies
//! no path bytes it does not need. Userspace reads a record in place (`agent::events::Record`).

use crate::maps::{PATH_MAX, UNIX_PATH_MAX};

/// `TASK_COMM_LEN`.
pub const COMM_LEN: usize = 16;

/// One decision, as the kernel saw it. Fields that do not apply to `op` are zero.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct Event {
    /// `bpf_ktime_get_boot_ns` at the decision.
    pub time_ns: u64,
    /// An `Op` code.
    pub op: u32,
    /// A `Decision` code.
    pub decision: u32,
    /// The task's `Mode` code at the decision.
    pub mode: u32,
    /// Task id (the daemon maps it back to the task name).
    pub task_id: u32,
    /// Thread id of the caller.
    pub pid: u32,
    /// Process id (thread group) of the caller.
    pub tgid: u32,
    /// Process id of the caller's parent.
    pub ppid: u32,
    pub uid: u32,
    pub gid: u32,
    /// Open: `Access` bits asked for. bpf: the command. socket: the type. ptrace: the mode.
    /// signal: the signal. `kernel_load`: the kernel's read-file or load-data id.
    pub access: u32,
    /// Connect, socket: the address family (`AF_INET`, `AF_INET6`, `AF_UNIX`, ...).
    pub family: u32,
    /// Connect: a `Proto` code. socket: the protocol number.
    pub proto: u32,
    /// Connect: destination port, host byte order.
    pub port: u32,
    /// Bytes of `path` that hold the target (exec/open path, unix socket address).
    pub path_len: u32,
    /// Negative errno when the kernel could not resolve the path (then `path` is empty), else 0.
    pub path_error: i32,
    /// A `Reason` code: why the operation missed the allow-list.
    pub reason: u32,
    /// A `Backend` code: the mechanism that judged it.
    pub backend: u32,
    /// ptrace, signal: the target process (tgid).
    pub target_pid: u32,
    /// The task instance of the caller (`TaskTag::instance`; 0 for processes that joined
    /// through a selector).
    pub instance: u32,
    /// Reserved, zero.
    pub reserved: u32,
    /// `current->comm`, NUL padded.
    pub comm: [u8; COMM_LEN],
    /// Connect: destination address, network byte order (IPv4 in the first 4 bytes; an
    /// IPv4-mapped IPv6 destination is reported as IPv4).
    pub addr: [u8; 16],
    /// The resolved path (exec, open) or `sun_path` (unix connect).
    pub path: [u8; PATH_MAX],
}

/// Size of a whole `Event` (the largest record).
pub const EVENT_SIZE: usize = core::mem::size_of::<Event>();

/// Bytes of every record before its path: the fields of `Event` up to `path`.
pub const EVENT_HEAD_SIZE: usize = core::mem::offset_of!(Event, path);

/// Path bytes of a record for a unix socket address (`UNIX_PATH_MAX` rounded up to 8).
pub const PATH_CLASS_UNIX: usize = UNIX_PATH_MAX.next_multiple_of(8);

/// Path bytes of a record for a resolved path of at most this many bytes.
pub const PATH_CLASS_SHORT: usize = 256;

/// Size of a record whose path class is `path_bytes` (0, `PATH_CLASS_UNIX`,
/// `PATH_CLASS_SHORT` or `PATH_MAX`).
#[must_use]
pub const fn record_size(path_bytes: usize) -> usize {
    EVENT_HEAD_SIZE + path_bytes
}

const _: () = assert!(EVENT_SIZE == 8 + 20 * 4 + COMM_LEN + 16 + PATH_MAX);
const _: () = assert!(EVENT_SIZE.is_multiple_of(8));
const _: () = assert!(EVENT_HEAD_SIZE == 8 + 20 * 4 + COMM_LEN + 16);
const _: () = assert!(EVENT_HEAD_SIZE.is_multiple_of(8));
const _: () = assert!(EVENT_HEAD_SIZE + PATH_MAX == EVENT_SIZE);
// Every record size is a multiple of 8 (the ring buffer's alignment), none exceeds `Event`.
const _: () = assert!(PATH_CLASS_UNIX.is_multiple_of(8) && PATH_CLASS_UNIX >= UNIX_PATH_MAX);
const _: () = assert!(PATH_CLASS_SHORT.is_multiple_of(8) && PATH_CLASS_SHORT > PATH_CLASS_UNIX);
const _: () = assert!(PATH_CLASS_SHORT < PATH_MAX);
