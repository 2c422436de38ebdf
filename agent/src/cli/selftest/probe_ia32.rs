//! The probes' 32-bit system calls: a 64-bit process entering the kernel's ia32 table with
//! `int $0x80` (other call numbers, arguments in `ebx`, `ecx`, `edx`), which a hook keyed on the
//! 64-bit numbers would not recognise.

use std::ffi::{CStr, OsString};

use super::ia32_abi::{NR_OPEN, NR_SOCKETCALL, SYS_SOCKET, call, close};
use super::probe::{Failure, cstr};

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
    close(fd);
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
    close(fd);
    Ok(0)
}

fn checked(ret: i32, step: &'static str) -> Result<u32, Failure> {
    u32::try_from(ret).map_err(|_| Failure { step, errno: -ret })
}

/// `ia32_abi::low_copy`, failing as a probe step.
fn low_copy(bytes: &[u8]) -> Result<u32, Failure> {
    super::ia32_abi::low_copy(bytes).map_err(|e| Failure {
        step: "mmap(MAP_32BIT) below 4 GiB",
        errno: e.raw_os_error().unwrap_or(libc::EFAULT),
    })
}
