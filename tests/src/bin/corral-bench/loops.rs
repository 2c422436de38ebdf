//! The micro loops: each runs its operation in batches for `--ms` of wall time and prints
//! `{"loop","ns_per_op","ops","failed","errno"}`. A failed operation (refused by the
//! configuration under test, or ENOENT for `open_missing`) still counts as one operation.
use std::ffi::CString;
use std::net::TcpListener;
use std::os::fd::AsRawFd as _;
use std::os::unix::ffi::OsStrExt as _;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::options::LoopOptions;
use crate::{confine, tree};

/// One operation: `Ok` or the errno it failed with.
type Op<'a> = Box<dyn FnMut() -> Result<(), i32> + 'a>;

/// What a loop measured.
struct Measured {
    ops: u64,
    failed: u64,
    last_errno: Option<i32>,
    elapsed: Duration,
}

pub fn run(opts: &LoopOptions) -> Result<(), String> {
    confine::pin(opts.cpu)?;
    // The listener is bound while still root; accepting needs no privilege.
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("tcp listener: {e}"))?;
    let port = listener
        .local_addr()
        .map_err(|e| format!("tcp listener address: {e}"))?
        .port();
    if let Some(uid) = opts.user {
        confine::drop_to(uid)?;
    }
    if let Some(policy) = &opts.landlock {
        confine::landlock(policy)?;
    }
    if opts.seccomp {
        confine::seccomp()?;
    }
    // Accepts and closes every connection of `tcp_connect` (a thread: it shares the pinned CPU).
    std::thread::spawn(move || {
        for stream in listener.incoming() {
            drop(stream);
        }
    });

    let dir = &opts.dir;
    let mut loops: Vec<(&str, Op)> = vec![("getpid", Box::new(getpid))];
    for (name, depth) in tree::DEPTHS {
        let path = c_path(&tree::file_at_depth(dir, depth))?;
        loops.push((name, Box::new(move || open_close(&path))));
    }
    let missing = c_path(&tree::missing(dir))?;
    loops.push(("open_missing", Box::new(move || open_close(&missing))));
    let udp = Socket::new(libc::SOCK_DGRAM)?;
    loops.push(("udp_connect", Box::new(move || udp.connect(9))));
    loops.push(("tcp_connect", Box::new(move || tcp_connect(port))));
    let binary = c_path(&tree::tiny_binary(dir))?;
    loops.push(("fork_exec", Box::new(move || fork_exec(&binary))));
    loops.push(("fork_exit", Box::new(fork_exit)));

    let budget = Duration::from_millis(opts.ms);
    for (name, op) in &mut loops {
        if !opts.wants(name) {
            continue;
        }
        let m = measure(op, budget);
        #[allow(clippy::cast_precision_loss)] // nanoseconds and counts far below 2^52
        let ns = m.elapsed.as_nanos() as f64 / m.ops as f64;
        let errno = m.last_errno.map(errno_name);
        println!(
            "{}",
            serde_json::json!({
                "loop": name, "ns_per_op": ns, "ops": m.ops, "failed": m.failed, "errno": errno,
            })
        );
    }
    Ok(())
}

/// Runs `op` in batches sized to about a millisecond until `budget` has passed (after a
/// warm-up batch that is not counted).
fn measure(op: &mut Op, budget: Duration) -> Measured {
    let mut batch: u64 = 1;
    let mut m = Measured {
        ops: 0,
        failed: 0,
        last_errno: None,
        elapsed: Duration::ZERO,
    };
    let _ = op();
    while m.elapsed < budget || m.ops == 0 {
        let started = Instant::now();
        for _ in 0..batch {
            if let Err(errno) = op() {
                m.failed += 1;
                m.last_errno = Some(errno);
            }
        }
        let took = started.elapsed();
        m.elapsed += took;
        m.ops += batch;
        if took < Duration::from_micros(500) && batch < 1 << 20 {
            batch *= 2;
        }
    }
    m
}

fn last_errno() -> i32 {
    std::io::Error::last_os_error().raw_os_error().unwrap_or(0)
}

fn errno_name(errno: i32) -> String {
    match errno {
        libc::EPERM => "EPERM".to_owned(),
        libc::EACCES => "EACCES".to_owned(),
        libc::ENOENT => "ENOENT".to_owned(),
        libc::ECONNREFUSED => "ECONNREFUSED".to_owned(),
        status if status < 0 => format!("child exit {}", -status),
        other => format!("errno {other}"),
    }
}

fn c_path(path: &Path) -> Result<CString, String> {
    CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("{}: contains a NUL byte", path.display()))
}

#[allow(clippy::unnecessary_wraps)] // same signature as every other operation
fn getpid() -> Result<(), i32> {
    // SAFETY: getpid has no preconditions (the raw syscall: glibc does not cache it anyway).
    unsafe { libc::syscall(libc::SYS_getpid) };
    Ok(())
}

fn open_close(path: &CString) -> Result<(), i32> {
    // SAFETY: `path` is a valid C string.
    let fd = unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) };
    if fd < 0 {
        return Err(last_errno());
    }
    // SAFETY: `fd` was just opened by us.
    unsafe { libc::close(fd) };
    Ok(())
}

/// An IPv4 socket owned by a loop.
struct Socket(std::os::fd::OwnedFd);

impl Socket {
    fn new(kind: libc::c_int) -> Result<Self, String> {
        Self::try_new(kind).map_err(|errno| format!("socket: {}", errno_name(errno)))
    }

    fn try_new(kind: libc::c_int) -> Result<Self, i32> {
        // SAFETY: plain socket(2).
        let fd = unsafe { libc::socket(libc::AF_INET, kind | libc::SOCK_CLOEXEC, 0) };
        if fd < 0 {
            return Err(last_errno());
        }
        // SAFETY: `fd` is a new descriptor nobody else owns.
        Ok(Self(unsafe { std::os::fd::FromRawFd::from_raw_fd(fd) }))
    }

    /// connect(2) to 127.0.0.1:`port`.
    fn connect(&self, port: u16) -> Result<(), i32> {
        let addr = libc::sockaddr_in {
            sin_family: libc::AF_INET as libc::sa_family_t,
            sin_port: port.to_be(),
            sin_addr: libc::in_addr {
                s_addr: u32::from_ne_bytes([127, 0, 0, 1]),
            },
            sin_zero: [0; 8],
        };
        // SAFETY: `addr` is a valid sockaddr_in of the size given.
        let rc = unsafe {
            libc::connect(
                self.0.as_raw_fd(),
                (&raw const addr).cast(),
                size_of::<libc::sockaddr_in>() as libc::socklen_t,
            )
        };
        if rc < 0 { Err(last_errno()) } else { Ok(()) }
    }

    /// Close with a reset, so that no `TIME_WAIT` sockets pile up over thousands of connects.
    fn reset_on_close(&self) {
        let linger = libc::linger {
            l_onoff: 1,
            l_linger: 0,
        };
        // SAFETY: valid option value of the size given.
        unsafe {
            libc::setsockopt(
                self.0.as_raw_fd(),
                libc::SOL_SOCKET,
                libc::SO_LINGER,
                (&raw const linger).cast(),
                size_of::<libc::linger>() as libc::socklen_t,
            )
        };
    }
}

fn tcp_connect(port: u16) -> Result<(), i32> {
    let socket = Socket::try_new(libc::SOCK_STREAM)?;
    socket.reset_on_close();
    socket.connect(port)
}

/// Waits for `pid`; `Err` if the child did not exit 0 (a refused exec exits 127).
fn reap(pid: libc::pid_t) -> Result<(), i32> {
    let mut status = 0;
    // SAFETY: `pid` is our child.
    unsafe { libc::waitpid(pid, &raw mut status, 0) };
    if libc::WIFEXITED(status) && libc::WEXITSTATUS(status) == 0 {
        Ok(())
    } else {
        // Negative: a child's exit status, not an errno.
        Err(-libc::WEXITSTATUS(status))
    }
}

fn fork_exec(binary: &CString) -> Result<(), i32> {
    let argv = [binary.as_ptr(), std::ptr::null()];
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: the child only calls async-signal-safe execve and _exit.
    match unsafe { libc::fork() } {
        -1 => Err(last_errno()),
        0 => unsafe {
            libc::execve(binary.as_ptr(), argv.as_ptr(), envp.as_ptr());
            libc::_exit(127)
        },
        pid => reap(pid),
    }
}

fn fork_exit() -> Result<(), i32> {
    // SAFETY: the child only calls _exit.
    match unsafe { libc::fork() } {
        -1 => Err(last_errno()),
        0 => unsafe { libc::_exit(0) },
        pid => reap(pid),
    }
}
