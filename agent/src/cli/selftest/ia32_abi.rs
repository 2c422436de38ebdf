//! The ia32 system call door of a 64-bit process: `int $0x80` into the kernel's 32-bit table
//! (other call numbers, arguments in `ebx`, `ecx`, `edx`, 32-bit pointers). The selftest's probes
//! and the integration tests' probe (`corral-probe ia32-*`) both go through it.

use std::io;

/// `open` in the ia32 table (`fstat` in the 64-bit one).
pub const NR_OPEN: u32 = 5;
/// `close` in the ia32 table.
pub const NR_CLOSE: u32 = 6;
/// `socketcall`, the ia32 multiplexer of the socket calls.
pub const NR_SOCKETCALL: u32 = 102;
/// `socket` in the ia32 table.
pub const NR_SOCKET: u32 = 359;
/// `socketcall`'s `SYS_SOCKET`.
pub const SYS_SOCKET: u32 = 1;

/// One ia32 system call; the kernel's return value (a negative errno on failure).
#[cfg(target_arch = "x86_64")]
#[must_use]
pub fn call(nr: u32, a: u32, b: u32, c: u32) -> i32 {
    let ret: u32;
    // SAFETY: `int $0x80` with the ia32 convention, on memory this process owns. LLVM reserves
    // `rbx`, so the first argument is swapped in and out of it; the kernel clears r8-r11 here.
    unsafe {
        core::arch::asm!(
            "xchg {a:r}, rbx",
            "int 0x80",
            "xchg {a:r}, rbx",
            a = inout(reg) u64::from(a) => _,
            inlateout("eax") nr => ret,
            in("ecx") b,
            in("edx") c,
            out("r8") _, out("r9") _, out("r10") _, out("r11") _,
        );
    }
    ret.cast_signed()
}

/// No ia32 table outside x86-64: the call fails as the kernel would fail an unknown one.
#[cfg(not(target_arch = "x86_64"))]
#[must_use]
pub fn call(_nr: u32, _a: u32, _b: u32, _c: u32) -> i32 {
    -libc::ENOSYS
}

/// Closes `fd` through the ia32 table (a probe's descriptor; a failure changes nothing).
pub fn close(fd: u32) {
    let _ = call(NR_CLOSE, fd, 0, 0);
}

/// A fresh page below 4 GiB (the ia32 calls take 32-bit pointers) holding `bytes` and a NUL;
/// its address. The page is left for the process's exit to release.
///
/// # Errors
/// The `mmap(MAP_32BIT)` failed, or returned a page above 4 GiB (`EFAULT`).
pub fn low_copy(bytes: &[u8]) -> io::Result<u32> {
    let len = 4096.max(bytes.len() + 1);
    // SAFETY: a fresh anonymous mapping, never unmapped.
    let page = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            len,
            libc::PROT_READ | libc::PROT_WRITE,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS | libc::MAP_32BIT,
            -1,
            0,
        )
    };
    if page == libc::MAP_FAILED {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: the zero-filled mapping is longer than `bytes`.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), page.cast(), bytes.len()) };
    u32::try_from(page as usize).map_err(|_| io::Error::from_raw_os_error(libc::EFAULT))
}
