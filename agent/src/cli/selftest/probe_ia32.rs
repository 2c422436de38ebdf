//! The probes' 32-bit system calls: a 64-bit process entering the kernel's ia32 table with
//! `int $0x80` (other call numbers, arguments in `ebx`, `ecx`, `edx`), which a hook keyed on the
//! 64-bit numbers would not recognise.

use std::ffi::{CStr, OsString};

use super::probe::{Failure, cstr};

const NR_OPEN: u32 = 5;
const NR_CLOSE: u32 = 6;
const NR_SOCKETCALL: u32 = 102;
/// `socketcall`'s `SYS_SOCKET`.
const SYS_SOCKET: u32 = 1;

/// Runs `op` if it is one of this file's; `None` when it is not.
pub(super) fn operate(
    op: &str,
    rest: &[OsString],
) -> Option<Result<Result<libc::c_long, Failure>, String>> {
    match op {
        "ia32-open" => Some(cstr(rest.first()).map(|path| open(&path))),
        "ia32-raw" => Some(Ok(raw_socket())),
        _ => None,
    }
}

/// `open(path, O_RDONLY)` through the ia32 table.
fn open(path: &CStr) -> Result<libc::c_long, Failure> {
    let addr = low_copy(path.to_bytes_with_nul())?;
    let fd = checked(
        call(NR_OPEN, addr, libc::O_RDONLY.unsigned_abs(), 0),
        "open through int 0x80",
    )?;
    call(NR_CLOSE, fd, 0, 0);
    Ok(0)
}

/// `socketcall(SYS_SOCKET, {AF_INET, SOCK_RAW, IPPROTO_ICMP})` through the ia32 table.
fn raw_socket() -> Result<libc::c_long, Failure> {
    let words: Vec<u8> = [libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP]
        .iter()
        .flat_map(|n| n.to_ne_bytes())
        .collect();
    let args = low_copy(&words)?;
    let fd = checked(
        call(NR_SOCKETCALL, SYS_SOCKET, args, 0),
        "socketcall(SYS_SOCKET, AF_INET, SOCK_RAW) through int 0x80",
    )?;
    call(NR_CLOSE, fd, 0, 0);
    Ok(0)
}

fn checked(ret: i32, step: &'static str) -> Result<u32, Failure> {
    u32::try_from(ret).map_err(|_| Failure { step, errno: -ret })
}

/// A fresh page below 4 GiB (the ia32 calls take 32-bit pointers) holding `bytes` and a NUL;
/// its address.
fn low_copy(bytes: &[u8]) -> Result<u32, Failure> {
    let len = 4096.max(bytes.len() + 1);
    // SAFETY: a fresh anonymous mapping, left for the probe's exit to release.
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
        return Err(Failure {
            step: "mmap(MAP_32BIT)",
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        });
    }
    // SAFETY: the zero-filled mapping is longer than `bytes`.
    unsafe { std::ptr::copy_nonoverlapping(bytes.as_ptr(), page.cast(), bytes.len()) };
    u32::try_from(page as usize).map_err(|_| Failure {
        step: "mmap(MAP_32BIT) above 4 GiB",
        errno: libc::EFAULT,
    })
}

/// One ia32 system call; the kernel's return value (a negative errno on failure).
#[cfg(target_arch = "x86_64")]
fn call(nr: u32, a: u32, b: u32, c: u32) -> i32 {
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
fn call(_nr: u32, _a: u32, _b: u32, _c: u32) -> i32 {
    -libc::ENOSYS
}
