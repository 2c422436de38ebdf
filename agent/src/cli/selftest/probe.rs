//! `corral __selftest-probe OP [ARGS]`: the confined side of `corral doctor --selftest`. Each
//! operation tries one way around a rule and reports by its exit code: `SUCCEEDED` when the
//! kernel let it through, `REFUSED` on `EPERM`/`EACCES`, `FAILED` on any other error (printed).

use std::{
    ffi::{CString, OsString},
    os::unix::ffi::OsStrExt,
};

/// The operation went through: the class is open.
pub const SUCCEEDED: u8 = 0;
/// The kernel refused it (`EPERM` or `EACCES`).
pub const REFUSED: u8 = 10;
/// It failed for another reason: the probe proves nothing.
pub const FAILED: u8 = 11;

/// The payload is a copy of the corral binary: run with this argument, it exits 0.
const PAYLOAD_ARG: &std::ffi::CStr = c"--version";

/// Length of each directory name of the deep tree, and how many there are: more than 4096
/// bytes of path below `denied/`.
pub const DEEP_NAME_LEN: usize = 200;
pub const DEEP_LEVELS: usize = 22;

/// A failed call: its name and errno.
pub(super) struct Failure {
    pub(super) step: &'static str,
    pub(super) errno: i32,
}

impl Failure {
    fn last(step: &'static str) -> Self {
        Self {
            step,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        }
    }
}

pub(super) fn check(ret: libc::c_long, step: &'static str) -> Result<libc::c_long, Failure> {
    if ret < 0 {
        Err(Failure::last(step))
    } else {
        Ok(ret)
    }
}

pub(super) fn cstr(arg: Option<&OsString>) -> Result<CString, String> {
    let arg = arg.ok_or("missing argument")?;
    CString::new(arg.as_bytes()).map_err(|_| format!("argument {} holds a NUL byte", arg.display()))
}

/// Runs one operation; returns the exit code.
#[must_use]
pub fn run(args: &[OsString]) -> u8 {
    let Some(op) = args.first().and_then(|a| a.to_str()) else {
        eprintln!("corral __selftest-probe: missing operation");
        return FAILED;
    };
    let outcome = match operate(op, &args[1..]) {
        Ok(o) => o,
        Err(usage) => {
            eprintln!("corral __selftest-probe {op}: {usage}");
            return FAILED;
        }
    };
    match outcome {
        Ok(_) => SUCCEEDED,
        Err(f) if f.errno == libc::EPERM || f.errno == libc::EACCES => {
            eprintln!("{op}: {} refused (errno {})", f.step, f.errno);
            REFUSED
        }
        Err(f) => {
            eprintln!(
                "{op}: {} failed: {}",
                f.step,
                std::io::Error::from_raw_os_error(f.errno)
            );
            FAILED
        }
    }
}

fn operate(op: &str, rest: &[OsString]) -> Result<Result<libc::c_long, Failure>, String> {
    let arg = |i: usize| cstr(rest.get(i));
    let number = |i: usize| -> Result<i32, String> {
        rest.get(i)
            .and_then(|a| a.to_str())
            .and_then(|a| a.parse().ok())
            .ok_or_else(|| format!("argument {i} must be a number"))
    };
    if let Some(outcome) = super::probe_files::operate(op, rest) {
        return outcome;
    }
    if let Some(outcome) = super::probe_ia32::operate(op, rest) {
        return outcome;
    }
    let path = arg(0);
    // SAFETY (every block below): plain system calls on owned, NUL-terminated buffers.
    Ok(match op {
        "open" => open(&path?, libc::O_RDONLY),
        "openat2" => openat2(&path?),
        "deep-open" => deep_open(&path?),
        "exec" => exec(&[path?, PAYLOAD_ARG.to_owned()]),
        "ldso" => exec(&[path?, arg(1)?, PAYLOAD_ARG.to_owned()]),
        "execveat" => execveat(&path?),
        "memfd-exec" => memfd_exec(&path?),
        "mmap-exec" => mmap_exec(&path?),
        "connect" => inet(libc::SOCK_STREAM, &path?, number(1)?),
        "sendto" => inet(libc::SOCK_DGRAM, &path?, number(1)?),
        "unix" => unix_connect(&path?),
        "unix-sendto" => unix_sendto(&path?),
        "socket" => other_socket(rest.first().and_then(|a| a.to_str()).unwrap_or_default())?,
        "raw" => check(
            unsafe { libc::socket(libc::AF_INET, libc::SOCK_RAW, libc::IPPROTO_ICMP) }.into(),
            "socket(AF_INET, SOCK_RAW)",
        ),
        "link" => check(
            unsafe { libc::link(path?.as_ptr(), arg(1)?.as_ptr()) }.into(),
            "link",
        ),
        "bpf" => bpf_next_map_id(),
        "ptrace" => ptrace(number(0)?),
        "signal" => check(
            unsafe { libc::kill(number(0)?, libc::SIGCONT) }.into(),
            "kill(SIGCONT)",
        ),
        "mount" => check(
            unsafe {
                libc::mount(
                    c"corral-selftest".as_ptr(),
                    path?.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                )
            }
            .into(),
            "mount(tmpfs)",
        ),
        "chroot" => check(unsafe { libc::chroot(path?.as_ptr()) }.into(), "chroot"),
        "thread-open" => {
            let p = path?;
            std::thread::spawn(move || open(&p, libc::O_RDONLY))
                .join()
                .map_err(|_| "the thread panicked".to_owned())?
        }
        "daemon-open" => daemon_open(&path?),
        other => return Err(format!("unknown operation {other:?}")),
    })
}

fn open(path: &CString, flags: libc::c_int) -> Result<libc::c_long, Failure> {
    let fd = check(
        unsafe { libc::open(path.as_ptr(), flags | libc::O_CLOEXEC) }.into(),
        "open",
    )?;
    // Reading proves the open was not merely let through to be killed later.
    let mut byte = [0u8; 1];
    #[expect(clippy::cast_possible_truncation, reason = "a file descriptor")]
    let read = unsafe { libc::read(fd as libc::c_int, byte.as_mut_ptr().cast(), 1) };
    check(read as libc::c_long, "read")
}

/// `openat2` with no `RESOLVE_*` restriction: the same open by another system call.
fn openat2(path: &CString) -> Result<libc::c_long, Failure> {
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    let how = OpenHow {
        flags: libc::O_RDONLY as u64 | libc::O_CLOEXEC as u64,
        mode: 0,
        resolve: 0,
    };
    check(
        unsafe {
            libc::syscall(
                libc::SYS_openat2,
                libc::AT_FDCWD,
                path.as_ptr(),
                &raw const how,
                std::mem::size_of::<OpenHow>(),
            )
        },
        "openat2",
    )
}

/// `chdir` into DIR, then down the deep tree one level at a time, then opens `secret` there:
/// its full path is longer than `PATH_MAX`.
fn deep_open(dir: &CString) -> Result<libc::c_long, Failure> {
    check(unsafe { libc::chdir(dir.as_ptr()) }.into(), "chdir")?;
    let name = CString::new("d".repeat(DEEP_NAME_LEN)).unwrap_or_default();
    for _ in 0..DEEP_LEVELS {
        check(unsafe { libc::chdir(name.as_ptr()) }.into(), "chdir (deep)")?;
    }
    open(&CString::from(c"secret"), libc::O_RDONLY)
}

fn exec(argv: &[CString]) -> Result<libc::c_long, Failure> {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    unsafe { libc::execv(ptrs[0], ptrs.as_ptr()) };
    Err(Failure::last("execve"))
}

fn fd_exec(fd: libc::c_int) -> Failure {
    let argv = [c"payload".as_ptr(), PAYLOAD_ARG.as_ptr(), std::ptr::null()];
    let envp = [std::ptr::null::<libc::c_char>()];
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            c"".as_ptr(),
            argv.as_ptr(),
            envp.as_ptr(),
            libc::AT_EMPTY_PATH,
        );
    }
    Failure::last("execveat(AT_EMPTY_PATH)")
}

/// `execveat(fd, "", AT_EMPTY_PATH)` of an `O_PATH` descriptor of PATH.
fn execveat(path: &CString) -> Result<libc::c_long, Failure> {
    let fd = check(
        unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) }.into(),
        "open(O_PATH)",
    )?;
    #[expect(clippy::cast_possible_truncation, reason = "a file descriptor")]
    Err(fd_exec(fd as libc::c_int))
}

/// PATH's bytes copied into a memfd, then executed from there.
fn memfd_exec(path: &CString) -> Result<libc::c_long, Failure> {
    let bytes =
        std::fs::read(std::ffi::OsStr::from_bytes(path.as_bytes())).map_err(|e| Failure {
            step: "read the payload",
            errno: e.raw_os_error().unwrap_or(0),
        })?;
    let fd = check(
        unsafe { libc::memfd_create(c"payload".as_ptr(), 0) }.into(),
        "memfd_create",
    )?;
    #[expect(clippy::cast_possible_truncation, reason = "a file descriptor")]
    let fd = fd as libc::c_int;
    let written = unsafe { libc::write(fd, bytes.as_ptr().cast(), bytes.len()) };
    check(written as libc::c_long, "write the memfd")?;
    Err(fd_exec(fd))
}

/// A page of PATH mapped executable.
fn mmap_exec(path: &CString) -> Result<libc::c_long, Failure> {
    let fd = check(
        unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }.into(),
        "open",
    )?;
    #[expect(clippy::cast_possible_truncation, reason = "a file descriptor")]
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            4096,
            libc::PROT_READ | libc::PROT_EXEC,
            libc::MAP_PRIVATE,
            fd as libc::c_int,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        return Err(Failure::last("mmap(PROT_EXEC)"));
    }
    Ok(0)
}

/// A TCP connect or a UDP `sendto` (never connected) to ADDR:PORT.
fn inet(ty: libc::c_int, addr: &CString, port: i32) -> Result<libc::c_long, Failure> {
    let bad = |()| Failure {
        step: "parse the address",
        errno: libc::EINVAL,
    };
    let ip: std::net::IpAddr = addr
        .to_str()
        .map_err(|_| bad(()))?
        .parse()
        .map_err(|_| bad(()))?;
    let port = u16::try_from(port).map_err(|_| bad(()))?;
    let sock = socket2_addr(ip, port);
    let family = if ip.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let fd = check(
        unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, 0) }.into(),
        "socket",
    )?;
    #[expect(clippy::cast_possible_truncation, reason = "a file descriptor")]
    let fd = fd as libc::c_int;
    #[expect(clippy::cast_possible_truncation, reason = "a sockaddr is small")]
    let len = sock.len() as libc::socklen_t;
    if ty == libc::SOCK_DGRAM {
        let sent = unsafe {
            libc::sendto(
                fd,
                b"corral-selftest".as_ptr().cast(),
                15,
                0,
                sock.as_ptr().cast(),
                len,
            )
        };
        check(sent as libc::c_long, "sendto")
    } else {
        check(
            unsafe { libc::connect(fd, sock.as_ptr().cast(), len) }.into(),
            "connect",
        )
    }
}

/// The raw bytes of a `sockaddr_in`/`sockaddr_in6`.
fn socket2_addr(ip: std::net::IpAddr, port: u16) -> Vec<u8> {
    match ip {
        std::net::IpAddr::V4(v4) => {
            let sa = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.octets()),
                },
                sin_zero: [0; 8],
            };
            as_bytes(&sa)
        }
        std::net::IpAddr::V6(v6) => {
            let sa = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            as_bytes(&sa)
        }
    }
}

fn as_bytes<T>(value: &T) -> Vec<u8> {
    // SAFETY: a plain C struct, read as the bytes it is made of.
    unsafe { std::slice::from_raw_parts(std::ptr::from_ref(value).cast::<u8>(), size_of::<T>()) }
        .to_vec()
}

/// The `sockaddr_un` of PATH (cut at 107 bytes) and its length.
fn unix_addr(path: &CString) -> (libc::sockaddr_un, libc::socklen_t) {
    let mut sa = libc::sockaddr_un {
        sun_family: libc::AF_UNIX as libc::sa_family_t,
        sun_path: [0; 108],
    };
    for (dst, src) in sa.sun_path.iter_mut().zip(path.as_bytes()) {
        *dst = *src as libc::c_char;
    }
    #[expect(clippy::cast_possible_truncation, reason = "a sockaddr is small")]
    let len = size_of::<libc::sockaddr_un>() as libc::socklen_t;
    (sa, len)
}

fn unix_connect(path: &CString) -> Result<libc::c_long, Failure> {
    let (sa, len) = unix_addr(path);
    let fd = check(
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) }.into(),
        "socket(AF_UNIX)",
    )?;
    #[expect(clippy::cast_possible_truncation, reason = "a file descriptor")]
    let fd = fd as libc::c_int;
    check(
        unsafe { libc::connect(fd, (&raw const sa).cast(), len) }.into(),
        "connect(AF_UNIX)",
    )
}

/// One datagram sent with `sendto` to the unix socket at PATH from an unbound, never connected
/// socket.
fn unix_sendto(path: &CString) -> Result<libc::c_long, Failure> {
    let (sa, len) = unix_addr(path);
    let fd = check(
        unsafe { libc::socket(libc::AF_UNIX, libc::SOCK_DGRAM | libc::SOCK_CLOEXEC, 0) }.into(),
        "socket(AF_UNIX, SOCK_DGRAM)",
    )?;
    #[expect(clippy::cast_possible_truncation, reason = "a file descriptor")]
    let fd = fd as libc::c_int;
    let sent = unsafe {
        libc::sendto(
            fd,
            b"corral-selftest".as_ptr().cast(),
            15,
            0,
            (&raw const sa).cast(),
            len,
        )
    };
    check(sent as libc::c_long, "sendto(AF_UNIX)")
}

/// A socket of a kind no connect or send hook judges: `sctp` (`AF_INET`, `SOCK_STREAM`,
/// `IPPROTO_SCTP`), `vsock` (`AF_VSOCK`), `ping` (`AF_INET`, `SOCK_DGRAM`, `IPPROTO_ICMP`).
fn other_socket(kind: &str) -> Result<Result<libc::c_long, Failure>, String> {
    let (family, ty, proto, step) = match kind {
        "sctp" => (
            libc::AF_INET,
            libc::SOCK_STREAM,
            libc::IPPROTO_SCTP,
            "socket(AF_INET, SOCK_STREAM, IPPROTO_SCTP)",
        ),
        "vsock" => (
            libc::AF_VSOCK,
            libc::SOCK_STREAM,
            0,
            "socket(AF_VSOCK, SOCK_STREAM)",
        ),
        "ping" => (
            libc::AF_INET,
            libc::SOCK_DGRAM,
            libc::IPPROTO_ICMP,
            "socket(AF_INET, SOCK_DGRAM, IPPROTO_ICMP)",
        ),
        other => return Err(format!("socket sctp|vsock|ping, not {other:?}")),
    };
    Ok(check(
        unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, proto) }.into(),
        step,
    ))
}

/// `bpf(BPF_MAP_GET_NEXT_ID)`: the least a process can ask of `bpf()`.
fn bpf_next_map_id() -> Result<libc::c_long, Failure> {
    const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;
    let attr = [0u32; 4];
    let r = check(
        unsafe {
            libc::syscall(
                libc::SYS_bpf,
                BPF_MAP_GET_NEXT_ID,
                attr.as_ptr(),
                size_of_val(&attr),
            )
        },
        "bpf(BPF_MAP_GET_NEXT_ID)",
    );
    // ENOENT: no map at all, but the call itself was let through.
    match r {
        Err(f) if f.errno == libc::ENOENT => Ok(0),
        other => other,
    }
}

fn ptrace(pid: i32) -> Result<libc::c_long, Failure> {
    let null = std::ptr::null_mut::<libc::c_void>();
    let r = check(
        unsafe { libc::ptrace(libc::PTRACE_SEIZE, pid, null, null) },
        "ptrace(PTRACE_SEIZE)",
    )?;
    unsafe { libc::ptrace(libc::PTRACE_DETACH, pid, null, null) };
    Ok(r)
}

/// Double fork with `setsid` in between; the grandchild (a daemon whose parent has exited) opens
/// PATH and sends its errno (0: opened) back through a pipe.
fn daemon_open(path: &CString) -> Result<libc::c_long, Failure> {
    let mut fds = [0; 2];
    check(unsafe { libc::pipe(fds.as_mut_ptr()) }.into(), "pipe")?;
    match unsafe { libc::fork() } {
        -1 => return Err(Failure::last("fork")),
        0 => unsafe {
            libc::setsid();
            if libc::fork() == 0 {
                let errno = match open(path, libc::O_RDONLY) {
                    Ok(_) => 0,
                    Err(f) => f.errno,
                };
                libc::write(fds[1], (&raw const errno).cast(), size_of::<i32>());
            }
            libc::_exit(0);
        },
        _ => {}
    }
    unsafe { libc::close(fds[1]) };
    let mut errno: i32 = 0;
    let n = unsafe { libc::read(fds[0], (&raw mut errno).cast(), size_of::<i32>()) };
    if n != size_of::<i32>() as isize {
        return Err(Failure {
            step: "the grandchild's answer (it was killed?)",
            errno: libc::EPERM,
        });
    }
    if errno == 0 {
        Ok(0)
    } else {
        Err(Failure {
            step: "open in the daemonised grandchild",
            errno,
        })
    }
}
