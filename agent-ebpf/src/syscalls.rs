//! Which call `sys_exit` sees return, in either x86 system call ABI.
//!
//! A 64-bit process can make 32-bit (ia32) system calls too: `int $0x80` reaches the kernel's
//! compat table, where `orig_ax` holds the ia32 numbers (5 is `open` there, `fstat` in the
//! 64-bit table) and the arguments sit in `bx`, `cx`, `dx`. The kernel marks such a call with
//! `TS_COMPAT` in the task's `thread_info.status` from entry until just before the return to user
//! space, after `sys_exit`. The kill backend decodes every watched call by the ABI it was made in,
//! so the 32-bit door opens, executes and creates sockets like the 64-bit one (x86-64 only;
//! x32 is not enabled in the kernels Corral supports, and its calls carry bit 30 in `orig_ax`,
//! which no watched number matches).

use aya_ebpf::helpers::bpf_probe_read_user;

use crate::{context::btf_load, maps::offsets};

// x86-64 numbers of the calls that open a file or execute one ...
pub const NR_OPEN: u64 = 2;
pub const NR_CREAT: u64 = 85;
pub const NR_OPENAT: u64 = 257;
pub const NR_OPEN_BY_HANDLE_AT: u64 = 304;
pub const NR_OPENAT2: u64 = 437;
pub const NR_EXECVE: u64 = 59;
pub const NR_EXECVEAT: u64 = 322;
// ... and the calls that create sockets.
pub const NR_SOCKET: u64 = 41;
pub const NR_SOCKETPAIR: u64 = 53;
// ... and the call that creates an io_uring instance: 425 in both tables, like every call added
// since 5.1.
pub const NR_IO_URING_SETUP: u64 = 425;

// The same calls in the ia32 table (`arch/x86/entry/syscalls/syscall_32.tbl`).
const IA32_OPEN: u64 = 5;
const IA32_CREAT: u64 = 8;
const IA32_EXECVE: u64 = 11;
const IA32_SOCKETCALL: u64 = 102;
const IA32_OPENAT: u64 = 295;
const IA32_OPEN_BY_HANDLE_AT: u64 = 342;
const IA32_EXECVEAT: u64 = 358;
const IA32_SOCKET: u64 = 359;
const IA32_SOCKETPAIR: u64 = 360;
const IA32_OPENAT2: u64 = 437;
/// `socketcall(2)` multiplexer codes (`SYS_SOCKET`, `SYS_SOCKETPAIR`).
const SOCKETCALL_SOCKET: u64 = 1;
const SOCKETCALL_SOCKETPAIR: u64 = 8;

/// `TS_COMPAT` of x86's `thread_info.status`: a 32-bit system call is under way.
const TS_COMPAT: u32 = 0x0002;

/// Whether `nr` is, in the 64-bit table, a call the kill backend acts on.
#[inline(always)]
fn native_watched(nr: u64) -> bool {
    matches!(
        nr,
        NR_OPEN
            | NR_CREAT
            | NR_OPENAT
            | NR_OPEN_BY_HANDLE_AT
            | NR_OPENAT2
            | NR_EXECVE
            | NR_EXECVEAT
            | NR_SOCKET
            | NR_SOCKETPAIR
            | NR_IO_URING_SETUP
    )
}

/// Whether `nr` is, in the ia32 table, a call the kill backend may act on (`socketcall` only
/// for `SYS_SOCKET` and `SYS_SOCKETPAIR`, which `Call::decode` tells apart).
#[inline(always)]
fn ia32_watched(nr: u64) -> bool {
    matches!(
        nr,
        IA32_OPEN
            | IA32_CREAT
            | IA32_EXECVE
            | IA32_SOCKETCALL
            | IA32_OPENAT
            | IA32_OPEN_BY_HANDLE_AT
            | IA32_EXECVEAT
            | IA32_SOCKET
            | IA32_SOCKETPAIR
            | IA32_OPENAT2
            | NR_IO_URING_SETUP
    )
}

/// Whether `orig_ax` may be a call the kill backend acts on, in either ABI: the one test every
/// system call of every process pays (see `kill::corral_sys_exit`; LLVM lowers it to a few
/// range checks and bit tests, no look-up). Five ia32 numbers are frequent 64-bit calls too
/// (`fstat` 5, `lseek` 8, `munmap` 11, `getuid` 102, `preadv` 295): those pay the tag look-up
/// as well, and for a tagged process the ABI check, before they leave.
#[inline(always)]
pub fn watched(orig_ax: u64) -> bool {
    native_watched(orig_ax) || ia32_watched(orig_ax)
}

/// A watched call that returned: its x86-64 number whatever the ABI it was made in, and where
/// its arguments are.
#[derive(Clone, Copy)]
pub struct Call {
    /// The x86-64 number of the call (`NR_*`); an ia32 `socketcall` of `SYS_SOCKET` or
    /// `SYS_SOCKETPAIR` is `NR_SOCKET` / `NR_SOCKETPAIR`.
    pub nr: u64,
    /// Made through the ia32 table: arguments in `bx`, `cx`, `dx`, 32 bits wide.
    compat: bool,
    /// For an ia32 `socketcall`: the user address of its argument array (`u32`s).
    socketcall_args: Option<u64>,
}

impl Call {
    /// Decodes the call the current task (`task`, from `bpf_get_current_task_btf()`) returns
    /// from (`orig_ax`, with `regs` its saved registers); `None` for a call the kill backend does
    /// not act on.
    #[inline(always)]
    pub fn decode(orig_ax: u64, regs: *const u8, task: *const u8) -> Option<Self> {
        if !in_ia32_syscall(task) {
            return native_watched(orig_ax).then_some(Self {
                nr: orig_ax,
                compat: false,
                socketcall_args: None,
            });
        }
        let mut call = Self {
            nr: 0,
            compat: true,
            socketcall_args: None,
        };
        call.nr = match orig_ax {
            IA32_OPEN => NR_OPEN,
            IA32_CREAT => NR_CREAT,
            IA32_EXECVE => NR_EXECVE,
            IA32_OPENAT => NR_OPENAT,
            IA32_OPEN_BY_HANDLE_AT => NR_OPEN_BY_HANDLE_AT,
            IA32_EXECVEAT => NR_EXECVEAT,
            IA32_SOCKET => NR_SOCKET,
            IA32_SOCKETPAIR => NR_SOCKETPAIR,
            IA32_OPENAT2 => NR_OPENAT2,
            NR_IO_URING_SETUP => NR_IO_URING_SETUP,
            IA32_SOCKETCALL => {
                call.socketcall_args = Some(call.arg(regs, 1));
                match call.arg(regs, 0) {
                    SOCKETCALL_SOCKET => NR_SOCKET,
                    SOCKETCALL_SOCKETPAIR => NR_SOCKETPAIR,
                    _ => return None,
                }
            }
            _ => return None,
        };
        Some(call)
    }

    /// Argument `index` (0, 1 or 2) of the call as the kernel read it: 32 bits wide for an ia32
    /// call (the kernel ignores the upper half of a register a 64-bit process left set).
    #[inline(always)]
    pub fn arg(&self, regs: *const u8, index: u32) -> u64 {
        let off = offsets();
        let field = match (self.compat, index) {
            (false, 0) => off.regs_di,
            (false, 1) => off.regs_si,
            (true, 0) => off.regs_bx,
            (true, 1) => off.regs_cx,
            _ => off.regs_dx,
        };
        // SAFETY: `regs` is the tracepoint's BTF `struct pt_regs *` and `field` one of its
        // members (see `btf_load`).
        let value: u64 = unsafe { btf_load(regs, field) };
        if self.compat {
            value & 0xffff_ffff
        } else {
            value
        }
    }

    /// The `(family, type, protocol)` a `socket` or `socketpair` was asked for: its first three
    /// arguments, or for an ia32 `socketcall` the first three words of its argument array
    /// (`None` if that array cannot be read: the kernel could not either, so no socket exists).
    #[inline(always)]
    pub fn socket_args(&self, regs: *const u8) -> Option<(i32, i32, i32)> {
        if let Some(array) = self.socketcall_args {
            // SAFETY: a probe read of the caller's memory.
            let words: [u32; 3] = unsafe { bpf_probe_read_user(array as *const [u32; 3]) }.ok()?;
            return Some((words[0] as i32, words[1] as i32, words[2] as i32));
        }
        Some((
            self.arg(regs, 0) as i32,
            self.arg(regs, 1) as i32,
            self.arg(regs, 2) as i32,
        ))
    }
}

/// Whether the current system call of `task` (the current task, a BTF pointer) came through the
/// ia32 table (`in_ia32_syscall()`).
#[inline(always)]
fn in_ia32_syscall(task: *const u8) -> bool {
    // SAFETY: a BTF pointer to the current task; `task_ti_status` is the offset of the `u32`
    // `thread_info.status` inside it (see `btf_load`).
    let status: u32 = unsafe { btf_load(task, offsets().task_ti_status) };
    status & TS_COMPAT != 0
}
