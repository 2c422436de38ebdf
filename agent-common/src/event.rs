//! The record each hook writes to the `EVENTS` ring buffer for a judged operation.

use crate::maps::PATH_MAX;

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

/// Size of one ring-buffer record.
pub const EVENT_SIZE: usize = core::mem::size_of::<Event>();

const _: () = assert!(EVENT_SIZE == 8 + 20 * 4 + COMM_LEN + 16 + PATH_MAX);
const _: () = assert!(EVENT_SIZE.is_multiple_of(8));
