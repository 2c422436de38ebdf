//! `corral-probe`: attempts ONE operation and reports its result precisely, so a kernel test can
//! tell an `EPERM` from Corral apart from any other failure.
//!
//! ```text
//! corral-probe [OPTS] open PATH r|w|rw          (w and rw create the file, mode 0644)
//! corral-probe [OPTS] reopen PATH               (O_PATH, then open /proc/self/fd/N to read)
//! corral-probe [OPTS] reopen-until GATE FIRST SECOND
//!                                               (read-opens FIRST, prints "opened", keeps
//!                                               read-opening it every millisecond (failures
//!                                               ignored) until GATE exists, then read-opens
//!                                               SECOND: an open judged while FIRST's allowed
//!                                               decision is fresh in the kernel's cache)
//! corral-probe [OPTS] exec PATH [ARGS...]       (execv; prints only on failure)
//! corral-probe [OPTS] connect tcp|udp|udplite|mptcp ADDR PORT (IPv4 or IPv6 literal)
//! corral-probe [OPTS] connect unix PATH|@NAME [stream|dgram|seqpacket]
//! corral-probe [OPTS] sendto udp ADDR PORT      (one datagram, unconnected UDP socket)
//! corral-probe [OPTS] sendto tfo ADDR PORT      (TCP Fast Open: sendto MSG_FASTOPEN, no connect)
//! corral-probe [OPTS] sendto unix PATH|@NAME    (one datagram, unconnected AF_UNIX socket)
//! corral-probe [OPTS] socket FAMILY TYPE PROTO  (socket(2) with these numbers, then close)
//! corral-probe [OPTS] listen tcp ADDR PORT      (prints "listening PORT", accepts one, exits)
//! corral-probe [OPTS] listen unix PATH|@NAME    (prints "listening", accepts one, exits)
//! corral-probe [OPTS] spawn N -- CMD [ARGS...]  (fork chain N deep, the deepest execs CMD)
//! corral-probe [OPTS] loop MILLIS open ALLOWED DENIED        (for MILLIS: read-open both, again
//! corral-probe [OPTS] loop MILLIS udp ADDR ALLOWED DENIED    and again; the first must always
//!                                                            work, the second always fail with
//!                                                            EPERM/EACCES; fails EPROTO if not;
//!                                                            paced at most 5000 rounds/s)
//! corral-probe [OPTS] mmap PATH r|x             (open to read, mmap a page PROT_READ [|PROT_EXEC])
//! corral-probe [OPTS] mprotect PATH             (mmap a page PROT_READ, then add PROT_EXEC)
//! corral-probe [OPTS] anon-exec                 (an anonymous PROT_READ|WRITE|EXEC page, as JITs do)
//! corral-probe [OPTS] memfd-exec SRC [ARGS...]  (copy SRC into a memfd, execveat it: fexecve)
//! corral-probe [OPTS] execveat PATH [ARGS...]   (open PATH O_PATH, execveat(fd, "", AT_EMPTY_PATH))
//! corral-probe [OPTS] rename OLD NEW | unlink PATH | rmdir PATH
//! corral-probe [OPTS] exchange OLD NEW          (renameat2 RENAME_EXCHANGE: swap the two names)
//! corral-probe [OPTS] mknod PATH char|block|fifo|file   (char is 1:3, block 7:0; mode 0600)
//! corral-probe [OPTS] mkdir PATH | truncate PATH (to 0 bytes, no open) | symlink TARGET PATH
//! corral-probe [OPTS] chmod PATH OCTAL | chown PATH UID GID
//! corral-probe [OPTS] tree-open DIR FILE       (open_tree(DIR, OPEN_TREE_CLONE): a detached
//!                                               mount; then openat(tree, FILE), read)
//! corral-probe [OPTS] tree-exec DIR FILE [ARGS...]
//!                                               (open_tree(DIR, OPEN_TREE_CLONE), then
//!                                               execveat(tree, FILE): no open of FILE first)
//! corral-probe [OPTS] openat2 PATH              (read, RESOLVE_NO_SYMLINKS|RESOLVE_NO_MAGICLINKS)
//! corral-probe [OPTS] handle-open PATH          (name_to_handle_at, then open_by_handle_at to read)
//! corral-probe [OPTS] name-to-handle PATH       (prints PATH's handle as TYPE:HEX)
//! corral-probe [OPTS] handle-open-at MOUNT PATH|TYPE:HEX
//!                                               (the same, the handle decoded on MOUNT's mount)
//! corral-probe [OPTS] handle-unlink MOUNT DIR NAME
//!                                               (DIR opened by handle O_PATH on MOUNT's mount,
//!                                               then unlinkat(DIR, NAME))
//! corral-probe [OPTS] uring-open PATH           (IORING_OP_OPENAT, read)
//! corral-probe [OPTS] uring-connect ADDR PORT   (IORING_OP_CONNECT, TCP)
//! corral-probe [OPTS] ia32-open PATH            (open to read through the 32-bit system call
//!                                               ABI, `int $0x80`, from this 64-bit process)
//! corral-probe [OPTS] ia32-socket FAMILY TYPE PROTO
//!                                               (socket(2) through `int $0x80`, then close)
//! corral-probe [OPTS] ia32-socketcall FAMILY TYPE PROTO
//!                                               (socketcall(SYS_SOCKET) through `int $0x80`)
//! corral-probe [OPTS] vfork CMD [ARGS...]       (vfork, the child execs CMD; exits with its code)
//! corral-probe [OPTS] daemonize CMD [ARGS...]   (fork, setsid, fork: the grandchild execs CMD)
//! corral-probe [OPTS] clone-into-cgroup DIR CMD [ARGS...]
//!                                               (clone3 CLONE_INTO_CGROUP of the cgroup v2 DIR:
//!                                               the child execs CMD; exits with its code)
//! corral-probe [OPTS] enter-cgroup PROCS CMD [ARGS...]
//!                                               (writes "0" to the cgroup.procs file PROCS:
//!                                               moves itself there, then execs CMD)
//! OPTS: [-D MILLIS] [-C DIR], in this order
//! ```
//!
//! `-D MILLIS` sleeps that long before anything else, so a test can act (on the daemon) while a
//! confined probe waits. `-C DIR` changes directory one component at a time, so it can reach
//! directories whose path is longer than `PATH_MAX`.
//!
//! Output: `ok` and exit 0 on success; `err <ERRNONAME> <n>` and exit 1 on failure (a line on
//! stderr says which step failed). Usage errors exit 2.
//!
//! The binary defines the C `main` itself (`no_main`): the Rust runtime start-up reads
//! `/proc/self/maps`, and a confined probe must attempt nothing but the operation it was asked for.
#![no_main]

use std::ffi::{CStr, CString, OsStr, OsString};
use std::io::Write;
use std::net::IpAddr;
use std::os::unix::ffi::OsStrExt;

/// Exit code of a failed operation.
const EXIT_FAILED: i32 = 1;
/// Exit code of a command line the probe does not understand.
const EXIT_USAGE: i32 = 2;

/// A failed step: which call failed and its errno.
struct Failure {
    step: &'static str,
    errno: i32,
}

impl Failure {
    /// The failure of the libc call that just returned an error.
    fn last(step: &'static str) -> Self {
        Self {
            step,
            errno: std::io::Error::last_os_error().raw_os_error().unwrap_or(0),
        }
    }
}

/// Result of a probe operation: `Ok` prints `ok`.
type Outcome = Result<(), Failure>;

/// A command line the probe does not understand.
struct Usage(String);

/// The positional arguments of one command (the words after it), read with usage errors that
/// name the command, the argument's position (from 1, after the command) and what it should be.
struct Args<'a> {
    /// The command as the usage at the top spells it (`open`, `tamper perf`).
    cmd: String,
    rest: &'a [OsString],
}

impl<'a> Args<'a> {
    fn new(cmd: impl Into<String>, rest: &'a [OsString]) -> Self {
        Self {
            cmd: cmd.into(),
            rest,
        }
    }

    /// The usage error of argument `i` (`what` it should be): `problem`.
    fn wrong(&self, i: usize, what: &str, problem: &str) -> Usage {
        Usage(format!(
            "{}: argument {} ({what}) {problem}",
            self.cmd,
            i + 1
        ))
    }

    /// Argument `i` as given.
    fn raw(&self, i: usize, what: &str) -> Result<&'a OsStr, Usage> {
        self.rest
            .get(i)
            .map(OsString::as_os_str)
            .ok_or_else(|| self.wrong(i, what, "is missing"))
    }

    /// Argument `i` as text.
    fn text(&self, i: usize, what: &str) -> Result<&'a str, Usage> {
        self.raw(i, what)?
            .to_str()
            .ok_or_else(|| self.wrong(i, what, "is not UTF-8"))
    }

    /// Argument `i` as a C string (a path, usually).
    fn path(&self, i: usize, what: &str) -> Result<CString, Usage> {
        CString::new(self.raw(i, what)?.as_bytes())
            .map_err(|_| self.wrong(i, what, "contains a NUL byte"))
    }

    /// Argument `i` as a decimal number.
    fn number<T: std::str::FromStr>(&self, i: usize, what: &str) -> Result<T, Usage> {
        let t = self.text(i, what)?;
        t.parse()
            .map_err(|_| self.wrong(i, what, &format!("must be a number, not {t:?}")))
    }

    /// Argument `i` as an octal number.
    fn octal(&self, i: usize, what: &str) -> Result<u32, Usage> {
        let t = self.text(i, what)?;
        u32::from_str_radix(t, 8)
            .map_err(|_| self.wrong(i, what, &format!("must be an octal number, not {t:?}")))
    }

    /// The arguments from `from` on as a command to run (`what` names it); at least one.
    fn command(&self, from: usize, what: &str) -> Result<Vec<CString>, Usage> {
        let words = self.rest.get(from..).unwrap_or_default();
        if words.is_empty() {
            return Err(self.wrong(from, what, "is missing"));
        }
        words
            .iter()
            .enumerate()
            .map(|(k, w)| {
                CString::new(w.as_bytes())
                    .map_err(|_| self.wrong(from + k, what, "contains a NUL byte"))
            })
            .collect()
    }
}

#[unsafe(no_mangle)]
extern "C" fn main(count: libc::c_int, vector: *const *const libc::c_char) -> libc::c_int {
    let args: Vec<OsString> = (1..usize::try_from(count).unwrap_or(0))
        // SAFETY: the C runtime passes `count` valid NUL-terminated strings in `vector`.
        .map(|i| unsafe { OsStr::from_bytes(CStr::from_ptr(*vector.add(i)).to_bytes()).to_owned() })
        .collect();
    match dispatch(&args) {
        Ok(Ok(())) => {
            say("ok");
            0
        }
        Ok(Err(f)) => {
            let _ = writeln!(
                std::io::stderr(),
                "corral-probe: {}: {} ({})",
                f.step,
                errno_name(f.errno),
                std::io::Error::from_raw_os_error(f.errno)
            );
            say(&format!("err {} {}", errno_name(f.errno), f.errno));
            EXIT_FAILED
        }
        Err(Usage(msg)) => {
            let _ = writeln!(std::io::stderr(), "corral-probe: usage: {msg}");
            EXIT_USAGE
        }
    }
}

/// Prints one line on stdout and flushes it (the probe may exec or be killed right after).
fn say(line: &str) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{line}");
    let _ = out.flush();
}

fn dispatch(args: &[OsString]) -> Result<Outcome, Usage> {
    let args = match leading_options(args)? {
        Ok(rest) => rest,
        Err(f) => return Ok(Err(f)),
    };
    let (cmd, rest) = args
        .split_first()
        .ok_or_else(|| Usage("open|reopen|exec|connect|sendto|listen|spawn ...".into()))?;
    let args = Args::new(cmd.to_string_lossy(), rest);
    match cmd.as_bytes() {
        b"open" => Ok(open(&args.path(0, "a path")?, args.text(1, "r|w|rw")?)?),
        b"loop" => loop_op(&args),
        b"reopen" => Ok(reopen(&args.path(0, "a path")?)),
        b"reopen-until" => Ok(reopen_until(
            &args.path(0, "the gate path")?,
            &args.path(1, "the first path")?,
            &args.path(2, "the second path")?,
        )),
        b"exec" => Ok(Err(exec(&args.command(0, "a path")?))),
        b"connect" => match args.text(0, "tcp|udp|udplite|mptcp|unix")? {
            kind @ ("tcp" | "udp" | "udplite" | "mptcp") => {
                let (addr, port) =
                    inet_target(args.text(1, "an address")?, args.text(2, "a port")?)?;
                let (ty, protocol) = match kind {
                    "tcp" => (libc::SOCK_STREAM, 0),
                    "udp" => (libc::SOCK_DGRAM, 0),
                    "udplite" => (libc::SOCK_DGRAM, libc::IPPROTO_UDPLITE),
                    _ => (libc::SOCK_STREAM, libc::IPPROTO_MPTCP),
                };
                Ok(connect_inet(ty, protocol, addr, port))
            }
            "unix" => {
                let what = "stream|dgram|seqpacket";
                let ty = match args
                    .rest
                    .get(2)
                    .map_or(Ok("stream"), |_| args.text(2, what))?
                {
                    "stream" => libc::SOCK_STREAM,
                    "dgram" => libc::SOCK_DGRAM,
                    "seqpacket" => libc::SOCK_SEQPACKET,
                    other => return Err(Usage(format!("unknown unix socket type {other:?}"))),
                };
                let addr = unix_address(args.raw(1, "a path or @name")?)?;
                Ok(connect_unix(ty, &addr))
            }
            other => Err(Usage(format!("unknown connect kind {other:?}"))),
        },
        b"sendto" => sendto(&args),
        b"socket" => socket_op(&args),
        b"listen" => match args.text(0, "tcp|unix")? {
            "tcp" => {
                let (addr, port) =
                    inet_target(args.text(1, "an address")?, args.text(2, "a port")?)?;
                Ok(listen_inet(addr, port))
            }
            "unix" => {
                let addr = unix_address(args.raw(1, "a path or @name")?)?;
                Ok(listen_unix(&addr))
            }
            other => Err(Usage(format!("unknown listen kind {other:?}"))),
        },
        b"spawn" => {
            let depth: u32 = args.number(0, "a depth")?;
            if args.text(1, "--")? != "--" {
                return Err(Usage("spawn N -- CMD [ARGS...]".into()));
            }
            spawn(depth, &args.command(2, "a command")?)
        }
        b"tamper" => tamper(rest),
        // The bypass classes' operations; anything else is an unknown command there.
        other => bypass(other, &args),
    }
}

/// The operations of the bypass classes: executable mappings, exec through a descriptor,
/// renames and removals (see the usage at the top).
fn bypass(cmd: &[u8], args: &Args<'_>) -> Result<Outcome, Usage> {
    match cmd {
        b"mmap" => Ok(map_file(&args.path(0, "a path")?, args.text(1, "r|x")?)?),
        b"mprotect" => Ok(mprotect_file(&args.path(0, "a path")?)),
        b"anon-exec" => Ok(anon_exec()),
        b"memfd-exec" | b"execveat" => {
            let command = args.command(0, "a path")?;
            Ok(Err(if cmd == b"memfd-exec" {
                memfd_exec(&command)
            } else {
                execveat_path(&command)
            }))
        }
        b"rename" => {
            let (old, new) = (args.path(0, "the old path")?, args.path(1, "the new path")?);
            // SAFETY: valid C strings.
            Ok(check(
                unsafe { libc::rename(old.as_ptr(), new.as_ptr()) },
                "rename",
            )
            .map(drop))
        }
        b"exchange" => {
            let (old, new) = (args.path(0, "the old path")?, args.path(1, "the new path")?);
            // SAFETY: valid C strings.
            Ok(check(
                unsafe {
                    libc::renameat2(
                        libc::AT_FDCWD,
                        old.as_ptr(),
                        libc::AT_FDCWD,
                        new.as_ptr(),
                        libc::RENAME_EXCHANGE,
                    )
                },
                "renameat2",
            )
            .map(drop))
        }
        b"unlink" => {
            let p = args.path(0, "a path")?;
            // SAFETY: valid C string.
            Ok(check(unsafe { libc::unlink(p.as_ptr()) }, "unlink").map(drop))
        }
        b"rmdir" => {
            let p = args.path(0, "a path")?;
            // SAFETY: valid C string.
            Ok(check(unsafe { libc::rmdir(p.as_ptr()) }, "rmdir").map(drop))
        }
        b"mknod" | b"mkdir" | b"symlink" | b"truncate" | b"chmod" | b"chown" => changes(cmd, args),
        b"tree-open" => {
            let file = args.path(1, "a file in it")?;
            Ok(tree_open(&args.path(0, "a directory")?, &file))
        }
        b"tree-exec" => {
            let command = args.command(1, "a file in it")?;
            Ok(Err(tree_exec(&args.path(0, "a directory")?, &command)))
        }
        _ => side_doors(cmd, args),
    }
}

/// `open_tree(DIR, OPEN_TREE_CLONE)`: a detached copy of the mount tree at `dir`, then a read
/// open of `file` relative to it.
fn tree_open(dir: &CStr, file: &CStr) -> Outcome {
    let tree = clone_tree(dir)?;
    // SAFETY: `tree` is ours; `file` is a valid C string.
    let fd = check(
        unsafe { libc::openat(tree, file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) },
        "openat",
    );
    // SAFETY: both are ours.
    unsafe {
        libc::close(tree);
        if let Ok(fd) = fd {
            libc::close(fd);
        }
    }
    fd.map(drop)
}

/// `open_tree(DIR, OPEN_TREE_CLONE)`: a descriptor of a detached copy of the mount tree at `dir`.
fn clone_tree(dir: &CStr) -> Result<libc::c_int, Failure> {
    // SAFETY: plain system call with a valid C string.
    let tree = unsafe {
        libc::syscall(
            libc::SYS_open_tree,
            libc::AT_FDCWD,
            dir.as_ptr(),
            libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
        )
    };
    check(i32::try_from(tree).unwrap_or(-1), "open_tree")
}

/// `tree-exec DIR FILE [ARGS]`: the exec of `argv[0]` on a detached copy of the mount tree at
/// `dir`, with no open of it before (`execveat(tree, FILE)`); returns only on failure.
fn tree_exec(dir: &CStr, argv: &[CString]) -> Failure {
    match clone_tree(dir) {
        Ok(tree) => execveat_at(tree, &argv[0], argv, 0),
        Err(f) => f,
    }
}

/// Creating and changing files without opening them (see the usage at the top).
fn changes(cmd: &[u8], args: &Args<'_>) -> Result<Outcome, Usage> {
    // symlink TARGET PATH: the first argument is what the link points to.
    let first = args.path(
        0,
        if cmd == b"symlink" {
            "a target"
        } else {
            "a path"
        },
    )?;
    // SAFETY (every call below): valid C strings and plain numbers.
    let status = match cmd {
        b"mknod" => {
            let (mode, dev) = match args.text(1, "char|block|fifo|file")? {
                // /dev/null's numbers, and the first loop device's.
                "char" => (libc::S_IFCHR, libc::makedev(1, 3)),
                "block" => (libc::S_IFBLK, libc::makedev(7, 0)),
                "fifo" => (libc::S_IFIFO, 0),
                "file" => (libc::S_IFREG, 0),
                _ => return Err(Usage("mknod PATH char|block|fifo|file".into())),
            };
            unsafe { libc::mknod(first.as_ptr(), mode | 0o600, dev) }
        }
        b"mkdir" => unsafe { libc::mkdir(first.as_ptr(), 0o755) },
        b"symlink" => {
            let link = args.path(1, "a path")?;
            unsafe { libc::symlink(first.as_ptr(), link.as_ptr()) }
        }
        b"truncate" => unsafe { libc::truncate(first.as_ptr(), 0) },
        b"chmod" => unsafe { libc::chmod(first.as_ptr(), args.octal(1, "a mode")?) },
        _ => unsafe {
            libc::chown(
                first.as_ptr(),
                args.number(1, "a uid")?,
                args.number(2, "a gid")?,
            )
        },
    };
    let step = match cmd {
        b"mknod" => "mknod",
        b"mkdir" => "mkdir",
        b"symlink" => "symlink",
        b"truncate" => "truncate",
        b"chmod" => "chmod",
        _ => "chown",
    };
    Ok(check(status, step).map(drop))
}

/// Side doors to the same judged operations: `openat2`, file handles, `io_uring`, and process
/// creation that must keep the tag (see the usage at the top).
fn side_doors(cmd: &[u8], args: &Args<'_>) -> Result<Outcome, Usage> {
    match cmd {
        b"openat2" => Ok(openat2_read(&args.path(0, "a path")?)),
        b"handle-open" => Ok(handle_open(&args.path(0, "a path")?)),
        b"name-to-handle" => Ok(print_handle(&args.path(0, "a path")?)),
        b"handle-open-at" => Ok(handle_open_at(
            &args.path(0, "a mount directory")?,
            &args.path(1, "a path")?,
        )),
        b"handle-unlink" => Ok(handle_unlink(
            &args.path(0, "a mount directory")?,
            &args.path(1, "a directory")?,
            &args.path(2, "a name")?,
        )),
        b"uring-open" => Ok(uring::open(&args.path(0, "a path")?)),
        b"ia32-open" => Ok(ia32::open(&args.path(0, "a path")?)),
        b"ia32-socket" | b"ia32-socketcall" => {
            let numbers = [
                args.number::<u32>(0, "a family")?,
                args.number::<u32>(1, "a type")?,
                args.number::<u32>(2, "a protocol")?,
            ];
            Ok(ia32::socket(numbers, cmd == b"ia32-socketcall"))
        }
        b"uring-connect" => {
            let (addr, port) = inet_target(args.text(0, "an address")?, args.text(1, "a port")?)?;
            Ok(uring::connect(&inet_address(addr, port)))
        }
        b"vfork" => Ok(vfork_exec(&args.command(0, "a command")?)),
        b"daemonize" => Ok(daemonize(&args.command(0, "a command")?)),
        b"clone-into-cgroup" => {
            let dir = args.path(0, "a cgroup directory")?;
            Ok(clone_into_cgroup(&dir, &args.command(1, "a command")?))
        }
        b"enter-cgroup" => {
            let procs = args.path(0, "a cgroup.procs file")?;
            Ok(enter_cgroup(&procs, &args.command(1, "a command")?))
        }
        _ => Err(Usage(format!("unknown command {:?}", args.cmd))),
    }
}

/// `openat2(AT_FDCWD, PATH, {O_RDONLY, RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS})`.
fn openat2_read(path: &CStr) -> Outcome {
    /// `struct open_how`.
    #[repr(C)]
    struct OpenHow {
        flags: u64,
        mode: u64,
        resolve: u64,
    }
    const RESOLVE_NO_MAGICLINKS: u64 = 0x02;
    const RESOLVE_NO_SYMLINKS: u64 = 0x04;
    let how = OpenHow {
        flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u64,
        mode: 0,
        resolve: RESOLVE_NO_SYMLINKS | RESOLVE_NO_MAGICLINKS,
    };
    // SAFETY: valid C string and `open_how` of the size passed.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_openat2,
            libc::AT_FDCWD,
            path.as_ptr(),
            &raw const how,
            size_of::<OpenHow>(),
        )
    };
    if fd < 0 {
        return Err(Failure::last("openat2"));
    }
    // SAFETY: our descriptor.
    unsafe { libc::close(fd as libc::c_int) };
    Ok(())
}

/// `name_to_handle_at` on PATH, then `open_by_handle_at` of the handle.
fn handle_open(path: &CStr) -> Outcome {
    handle_fd(path, None, libc::O_RDONLY).map(drop)
}

/// `name_to_handle_at` on PATH, then `open_by_handle_at` of the handle decoded on the mount of
/// MOUNT: a bind mount of another directory puts the file outside that mount's subtree.
fn handle_open_at(mount: &CStr, path: &CStr) -> Outcome {
    handle_fd(path, Some(mount), libc::O_RDONLY).map(drop)
}

/// The directory DIR opened by handle (`O_PATH`, decoded on the mount of MOUNT), then
/// `unlinkat` of NAME in it.
fn handle_unlink(mount: &CStr, dir: &CStr, name: &CStr) -> Outcome {
    let fd = handle_fd(dir, Some(mount), libc::O_PATH | libc::O_DIRECTORY)?;
    // SAFETY: our descriptor and a valid C string.
    check(unsafe { libc::unlinkat(fd, name.as_ptr(), 0) }, "unlinkat").map(drop)
}

/// `struct file_handle` with room for the handle bytes.
#[repr(C)]
struct Handle {
    bytes: u32,
    kind: i32,
    data: [u8; 128],
}

/// `name_to_handle_at` on PATH.
fn name_to_handle(path: &CStr) -> Result<Handle, Failure> {
    let mut handle = Handle {
        bytes: 128,
        kind: 0,
        data: [0; 128],
    };
    let mut mount_id: libc::c_int = 0;
    // SAFETY: valid pointers of the sizes the kernel expects.
    let r = unsafe {
        libc::syscall(
            libc::SYS_name_to_handle_at,
            libc::AT_FDCWD,
            path.as_ptr(),
            &raw mut handle,
            &raw mut mount_id,
            0,
        )
    };
    if r < 0 {
        return Err(Failure::last("name_to_handle_at"));
    }
    Ok(handle)
}

/// `name-to-handle PATH`: prints PATH's handle as `TYPE:HEX`, which `handle-open-at` takes in
/// place of a path (so the file's dentry can leave the cache between the two).
fn print_handle(path: &CStr) -> Outcome {
    let handle = name_to_handle(path)?;
    let len = (handle.bytes as usize).min(handle.data.len());
    let mut line = format!("{}:", handle.kind);
    for b in &handle.data[..len] {
        line.push(char::from(b"0123456789abcdef"[usize::from(b >> 4)]));
        line.push(char::from(b"0123456789abcdef"[usize::from(b & 0xf)]));
    }
    println!("{line}");
    std::process::exit(0);
}

/// A handle printed by `print_handle` (`TYPE:HEX`), or `None` when `text` is not one.
fn parse_handle(text: &[u8]) -> Option<Handle> {
    let text = std::str::from_utf8(text).ok()?;
    let (kind, hex) = text.split_once(':')?;
    let mut handle = Handle {
        bytes: u32::try_from(hex.len() / 2).ok()?,
        kind: kind.parse().ok()?,
        data: [0; 128],
    };
    if hex.len() % 2 != 0 || hex.len() / 2 > handle.data.len() {
        return None;
    }
    for (i, slot) in handle.data.iter_mut().take(hex.len() / 2).enumerate() {
        *slot = u8::from_str_radix(hex.get(2 * i..2 * i + 2)?, 16).ok()?;
    }
    Some(handle)
}

/// `open_by_handle_at` of PATH's handle (or of the handle PATH spells, `TYPE:HEX`, when it does
/// not start with `/`) with `flags`, decoded on the mount of `mount` (by default the file's own
/// directory). Returns the new descriptor.
fn handle_fd(
    path: &CStr,
    mount: Option<&CStr>,
    flags: libc::c_int,
) -> Result<libc::c_int, Failure> {
    let bytes = path.to_bytes();
    let mut handle = match (bytes.first(), parse_handle(bytes)) {
        (Some(b'/'), _) | (_, None) => name_to_handle(path)?,
        (_, Some(handle)) => handle,
    };
    let dir = match (mount, bytes.iter().rposition(|&b| b == b'/')) {
        (Some(mount), _) => mount.to_owned(),
        (None, Some(0)) => c"/".to_owned(),
        (None, Some(i)) => CString::new(&bytes[..i]).unwrap_or_else(|_| c"/".to_owned()),
        (None, None) => c".".to_owned(),
    };
    // The handle is decoded on the mount of the working directory (`AT_FDCWD`), reached without
    // an open the hooks judge.
    // SAFETY: valid C string.
    check(unsafe { libc::chdir(dir.as_ptr()) }, "chdir")?;
    // SAFETY: the handle filled in above.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_open_by_handle_at,
            libc::AT_FDCWD,
            &raw mut handle,
            flags | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(Failure::last("open_by_handle_at"));
    }
    libc::c_int::try_from(fd).map_err(|_| Failure {
        step: "open_by_handle_at",
        errno: libc::EOVERFLOW,
    })
}

/// `vfork`; the child execs `argv`. Exits with the child's code (128 + signal if killed).
fn vfork_exec(argv: &[CString]) -> Outcome {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let _ = std::io::stdout().flush();
    // SAFETY: the child only calls execv and _exit, as vfork requires.
    #[expect(
        deprecated,
        reason = "vfork itself is the operation under test; the child only execs or exits"
    )]
    let child = unsafe { libc::vfork() };
    if child == 0 {
        // SAFETY: as above.
        unsafe {
            libc::execv(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    if child < 0 {
        return Err(Failure::last("vfork"));
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child, &raw mut status, 0) };
    std::process::exit(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    });
}

/// `clone3(CLONE_INTO_CGROUP)`: the child starts in the cgroup v2 directory `dir` (never passing
/// through `cgroup_attach_task`) and execs `argv`; exits with the child's code.
fn clone_into_cgroup(dir: &CStr, argv: &[CString]) -> Outcome {
    const CLONE_INTO_CGROUP: u64 = 0x2_0000_0000;
    // SAFETY: a valid C string.
    let cgroup = check(
        unsafe { libc::open(dir.as_ptr(), libc::O_RDONLY | libc::O_DIRECTORY) },
        "open cgroup",
    )?;
    // `struct clone_args` (CLONE_ARGS_SIZE_VER2): flags, pidfd, child_tid, parent_tid,
    // exit_signal, stack, stack_size, tls, set_tid, set_tid_size, cgroup.
    let mut clone_args = [0u64; 11];
    clone_args[0] = CLONE_INTO_CGROUP;
    clone_args[4] = libc::SIGCHLD as u64;
    clone_args[10] = cgroup as u64;
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let _ = std::io::stdout().flush();
    // SAFETY: `args` is a valid VER2 `clone_args`; the child only execs or exits.
    let child = unsafe {
        libc::syscall(
            libc::SYS_clone3,
            clone_args.as_ptr(),
            size_of_val(&clone_args),
        )
    };
    if child == 0 {
        // SAFETY: as above.
        unsafe {
            libc::execv(ptrs[0], ptrs.as_ptr());
            libc::_exit(127);
        }
    }
    if child < 0 {
        return Err(Failure::last("clone3"));
    }
    let mut status = 0;
    // SAFETY: waiting for our own child.
    unsafe { libc::waitpid(child as libc::pid_t, &raw mut status, 0) };
    std::process::exit(if libc::WIFEXITED(status) {
        libc::WEXITSTATUS(status)
    } else {
        128 + libc::WTERMSIG(status)
    });
}

/// Writes `0` to the `cgroup.procs` file `procs` (the writer moves itself into that cgroup
/// through `cgroup_attach_task`), then execs `argv`; returns only on failure.
fn enter_cgroup(procs: &CStr, argv: &[CString]) -> Outcome {
    // SAFETY: a valid C string.
    let fd = check(
        unsafe { libc::open(procs.as_ptr(), libc::O_WRONLY | libc::O_CLOEXEC) },
        "open cgroup.procs",
    )?;
    // SAFETY: writing 1 byte from a static buffer to our own descriptor.
    let written = unsafe { libc::write(fd, c"0".as_ptr().cast(), 1) };
    let moved = if written == 1 {
        Ok(())
    } else {
        Err(Failure::last("write cgroup.procs"))
    };
    // SAFETY: `fd` was opened above.
    unsafe { libc::close(fd) };
    moved?;
    Err(exec(argv))
}

/// Double fork with `setsid` in between: the grandchild, a daemon in a new session whose
/// parent has exited, execs `argv`. Prints `ok` once the grandchild is started.
fn daemonize(argv: &[CString]) -> Outcome {
    let _ = std::io::stdout().flush();
    // SAFETY: single-threaded; the child forks again or exits.
    match unsafe { libc::fork() } {
        -1 => Err(Failure::last("fork")),
        0 => {
            // SAFETY: plain system calls in the child.
            unsafe {
                libc::setsid();
                match libc::fork() {
                    0 => {
                        // Let the intermediate child exit first: then init adopts us.
                        std::thread::sleep(std::time::Duration::from_millis(300));
                        let f = exec(argv);
                        say(&format!("err {} {}", errno_name(f.errno), f.errno));
                        libc::_exit(EXIT_FAILED);
                    }
                    _ => libc::_exit(0),
                }
            }
        }
        child => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            unsafe { libc::waitpid(child, &raw mut status, 0) };
            Ok(())
        }
    }
}

/// `io_uring` by raw system calls: one submission, one completion.
/// The 32-bit system call ABI, entered from this 64-bit process with `int $0x80`: the kernel
/// runs its ia32 table (other numbers, arguments in `ebx`, `ecx`, `edx`), which a hook keyed on
/// the 64-bit numbers would not recognise. Pointers must fit in 32 bits, so the arguments are
/// copied into a page mapped below 4 GiB.
mod ia32 {
    use super::{Failure, Outcome};
    use std::ffi::CStr;

    use agent::cli::selftest::ia32_abi::{
        NR_OPEN, NR_SOCKET, NR_SOCKETCALL, SYS_SOCKET, call, close,
    };

    /// `ia32_abi::low_copy`, failing as a probe step.
    fn low_copy(bytes: &[u8]) -> Result<u32, Failure> {
        agent::cli::selftest::ia32_abi::low_copy(bytes).map_err(|e| Failure {
            step: "mmap(MAP_32BIT) below 4 GiB",
            errno: e.raw_os_error().unwrap_or(libc::EFAULT),
        })
    }

    fn checked(ret: i32, step: &'static str) -> Result<u32, Failure> {
        if ret < 0 {
            Err(Failure { step, errno: -ret })
        } else {
            Ok(ret as u32)
        }
    }

    pub fn open(path: &CStr) -> Outcome {
        let addr = low_copy(path.to_bytes_with_nul())?;
        let fd = checked(call(NR_OPEN, addr, libc::O_RDONLY as u32, 0), "ia32 open")?;
        close(fd);
        Ok(())
    }

    /// `socket(family, type, protocol)`, directly or through `socketcall(SYS_SOCKET, args)`.
    pub fn socket(numbers: [u32; 3], multiplexed: bool) -> Outcome {
        let fd = if multiplexed {
            let words: Vec<u8> = numbers.iter().flat_map(|n| n.to_ne_bytes()).collect();
            let args = low_copy(&words)?;
            checked(call(NR_SOCKETCALL, SYS_SOCKET, args, 0), "ia32 socketcall")?
        } else {
            checked(
                call(NR_SOCKET, numbers[0], numbers[1], numbers[2]),
                "ia32 socket",
            )?
        };
        close(fd);
        Ok(())
    }
}

mod uring {
    use super::{Failure, Outcome, SockAddr, check};
    use std::ffi::CStr;

    const IORING_OP_CONNECT: u8 = 16;
    const IORING_OP_OPENAT: u8 = 18;
    const IORING_OFF_SQ_RING: i64 = 0;
    const IORING_OFF_CQ_RING: i64 = 0x800_0000;
    const IORING_OFF_SQES: i64 = 0x1000_0000;
    const IORING_ENTER_GETEVENTS: u32 = 1;

    #[repr(C)]
    #[derive(Default)]
    struct SqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        flags: u32,
        dropped: u32,
        array: u32,
        resv1: u32,
        user_addr: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    struct CqOffsets {
        head: u32,
        tail: u32,
        ring_mask: u32,
        ring_entries: u32,
        overflow: u32,
        cqes: u32,
        flags: u32,
        resv1: u32,
        user_addr: u64,
    }

    #[repr(C)]
    #[derive(Default)]
    struct Params {
        sq_entries: u32,
        cq_entries: u32,
        flags: u32,
        sq_thread_cpu: u32,
        sq_thread_idle: u32,
        features: u32,
        wq_fd: u32,
        resv: [u32; 3],
        sq_off: SqOffsets,
        cq_off: CqOffsets,
    }

    /// One 64-byte submission queue entry.
    #[repr(C)]
    #[derive(Default)]
    struct Sqe {
        opcode: u8,
        flags: u8,
        ioprio: u16,
        fd: i32,
        off: u64,
        addr: u64,
        len: u32,
        op_flags: u32,
        user_data: u64,
        pad: [u64; 3],
    }

    fn map(fd: i32, len: usize, off: i64, step: &'static str) -> Result<*mut u8, Failure> {
        // SAFETY: a fresh shared mapping of the ring.
        let p = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED | libc::MAP_POPULATE,
                fd,
                off,
            )
        };
        if p == libc::MAP_FAILED {
            Err(Failure::last(step))
        } else {
            Ok(p.cast())
        }
    }

    /// Submits `sqe` on a fresh ring and returns the completion's result (negative errno).
    #[expect(
        clippy::cast_ptr_alignment,
        reason = "the kernel places every ring field at an offset aligned for its type"
    )]
    fn submit(sqe: &Sqe) -> Result<i32, Failure> {
        let mut p = Params::default();
        // SAFETY: `p` is a valid `io_uring_params`.
        let fd = unsafe { libc::syscall(libc::SYS_io_uring_setup, 1u32, &raw mut p) };
        if fd < 0 {
            return Err(Failure::last("io_uring_setup"));
        }
        let fd = fd as i32;
        let sq_len = p.sq_off.array as usize + p.sq_entries as usize * 4;
        let cq_len = p.cq_off.cqes as usize + p.cq_entries as usize * 16;
        let sq = map(fd, sq_len, IORING_OFF_SQ_RING, "mmap sq ring")?;
        let cq = map(fd, cq_len, IORING_OFF_CQ_RING, "mmap cq ring")?;
        let sqes = map(fd, 64, IORING_OFF_SQES, "mmap sqes")?;
        // SAFETY: offsets the kernel gave for the rings just mapped; one entry in each.
        unsafe {
            std::ptr::copy_nonoverlapping((&raw const *sqe).cast::<u8>(), sqes, 64);
            let tail = sq.add(p.sq_off.tail as usize).cast::<u32>();
            let mask = *sq.add(p.sq_off.ring_mask as usize).cast::<u32>();
            let t = std::ptr::read_volatile(tail);
            *sq.add(p.sq_off.array as usize)
                .cast::<u32>()
                .add((t & mask) as usize) = 0;
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            std::ptr::write_volatile(tail, t.wrapping_add(1));
            std::sync::atomic::fence(std::sync::atomic::Ordering::SeqCst);
            let r = libc::syscall(
                libc::SYS_io_uring_enter,
                fd,
                1u32,
                1u32,
                IORING_ENTER_GETEVENTS,
                std::ptr::null::<u8>(),
                0usize,
            );
            if r < 0 {
                return Err(Failure::last("io_uring_enter"));
            }
            let head = std::ptr::read_volatile(cq.add(p.cq_off.head as usize).cast::<u32>());
            let cmask = *cq.add(p.cq_off.ring_mask as usize).cast::<u32>();
            let cqe = cq.add(p.cq_off.cqes as usize + (head & cmask) as usize * 16);
            Ok(std::ptr::read_volatile(cqe.add(8).cast::<i32>()))
        }
    }

    fn outcome(res: Result<i32, Failure>, step: &'static str) -> Outcome {
        match res? {
            r if r < 0 => Err(Failure { step, errno: -r }),
            _ => Ok(()),
        }
    }

    /// `IORING_OP_OPENAT` of PATH for reading.
    pub fn open(path: &CStr) -> Outcome {
        let sqe = Sqe {
            opcode: IORING_OP_OPENAT,
            fd: libc::AT_FDCWD,
            addr: path.as_ptr() as u64,
            op_flags: (libc::O_RDONLY | libc::O_CLOEXEC) as u32,
            ..Sqe::default()
        };
        outcome(submit(&sqe), "IORING_OP_OPENAT")
    }

    /// `IORING_OP_CONNECT` of a fresh TCP socket to `sa`.
    pub fn connect(sa: &SockAddr) -> Outcome {
        // SAFETY: plain system call.
        let sock = check(
            unsafe { libc::socket(sa.family, libc::SOCK_STREAM | libc::SOCK_CLOEXEC, 0) },
            "socket",
        )?;
        let sqe = Sqe {
            opcode: IORING_OP_CONNECT,
            fd: sock,
            addr: sa.ptr() as u64,
            off: u64::from(sa.len),
            ..Sqe::default()
        };
        outcome(submit(&sqe), "IORING_OP_CONNECT")
    }
}

/// Bytes mapped by `mmap` and `mprotect`: one page.
const PAGE: usize = 4096;

/// Maps one page of `fd` with `prot` (private); returns the address.
fn map_page(fd: libc::c_int, prot: libc::c_int) -> Result<*mut libc::c_void, Failure> {
    // SAFETY: a fresh mapping chosen by the kernel; nothing else refers to it.
    let addr = unsafe { libc::mmap(std::ptr::null_mut(), PAGE, prot, libc::MAP_PRIVATE, fd, 0) };
    if addr == libc::MAP_FAILED {
        Err(Failure::last("mmap"))
    } else {
        Ok(addr)
    }
}

fn open_read(path: &CStr) -> Result<libc::c_int, Failure> {
    // SAFETY: valid C string.
    check(
        unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) },
        "open",
    )
}

/// `mmap PATH r|x`.
fn map_file(path: &CStr, mode: &str) -> Result<Outcome, Usage> {
    let prot = match mode {
        "r" => libc::PROT_READ,
        "x" => libc::PROT_READ | libc::PROT_EXEC,
        other => return Err(Usage(format!("mmap mode must be r or x, not {other:?}"))),
    };
    Ok(open_read(path).and_then(|fd| map_page(fd, prot).map(drop)))
}

/// `mprotect PATH`: a readable mapping of the file made executable afterwards.
fn mprotect_file(path: &CStr) -> Outcome {
    let fd = open_read(path)?;
    let addr = map_page(fd, libc::PROT_READ)?;
    // SAFETY: `addr` is the page just mapped.
    check(
        unsafe { libc::mprotect(addr, PAGE, libc::PROT_READ | libc::PROT_EXEC) },
        "mprotect",
    )
    .map(drop)
}

/// `anon-exec`: anonymous executable memory (allowed: JITs need it).
fn anon_exec() -> Outcome {
    // SAFETY: a fresh anonymous mapping.
    let addr = unsafe {
        libc::mmap(
            std::ptr::null_mut(),
            PAGE,
            libc::PROT_READ | libc::PROT_WRITE | libc::PROT_EXEC,
            libc::MAP_PRIVATE | libc::MAP_ANONYMOUS,
            -1,
            0,
        )
    };
    if addr == libc::MAP_FAILED {
        Err(Failure::last("mmap anonymous"))
    } else {
        Ok(())
    }
}

/// `execveat(fd, "", argv, environ, AT_EMPTY_PATH)`; returns only on failure.
fn execveat_fd(fd: libc::c_int, argv: &[CString]) -> Failure {
    execveat_at(fd, c"", argv, libc::AT_EMPTY_PATH)
}

/// `execveat(fd, path, argv, {}, flags)`; returns only on failure.
fn execveat_at(fd: libc::c_int, path: &CStr, argv: &[CString], flags: libc::c_int) -> Failure {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    let envp: [*const libc::c_char; 1] = [std::ptr::null()];
    // SAFETY: NULL-terminated arrays of valid C strings that outlive the call.
    unsafe {
        libc::syscall(
            libc::SYS_execveat,
            fd,
            path.as_ptr(),
            ptrs.as_ptr(),
            envp.as_ptr(),
            flags,
        )
    };
    Failure::last("execveat")
}

/// `execveat PATH [ARGS]`: exec through an `O_PATH` descriptor; returns only on failure.
fn execveat_path(argv: &[CString]) -> Failure {
    // SAFETY: valid C string.
    let fd = unsafe { libc::open(argv[0].as_ptr(), libc::O_PATH | libc::O_CLOEXEC) };
    if fd < 0 {
        return Failure::last("open O_PATH");
    }
    execveat_fd(fd, argv)
}

/// `memfd-exec SRC [ARGS]`: SRC's bytes in a memfd, executed from there (`fexecve`); returns
/// only on failure.
fn memfd_exec(argv: &[CString]) -> Failure {
    let bytes = match std::fs::read(OsStr::from_bytes(argv[0].as_bytes())) {
        Ok(b) => b,
        Err(e) => {
            return Failure {
                step: "read SRC",
                errno: e.raw_os_error().unwrap_or(libc::EIO),
            };
        }
    };
    // SAFETY: valid C string.
    let fd = unsafe { libc::memfd_create(c"corral-payload".as_ptr(), libc::MFD_CLOEXEC) };
    if fd < 0 {
        return Failure::last("memfd_create");
    }
    let mut done = 0;
    while done < bytes.len() {
        // SAFETY: the slice is valid for its length.
        let n = unsafe { libc::write(fd, bytes[done..].as_ptr().cast(), bytes.len() - done) };
        if n <= 0 {
            return Failure::last("write memfd");
        }
        done += n.unsigned_abs();
    }
    execveat_fd(fd, argv)
}

/// `tamper netlink` (a `NETLINK_ROUTE` socket), `tamper unshare-mount DIR` (a new mount
/// namespace, then a tmpfs on DIR), `tamper perf PID` (a software counter on another process),
/// `tamper setns-pidfd PID` (`pidfd_open`, then `setns` into its network namespace),
/// `tamper setns-file PATH` (open a `/proc/PID/ns/net` file, then `setns` with it),
/// `tamper userfaultfd` (the syscall), `tamper userfaultfd-dev` (`/dev/userfaultfd`, then
/// `USERFAULTFD_IOC_NEW`), `tamper chroot-open DIR FILE` (`chroot` into DIR, then open FILE
/// there for reading).
fn more_tamper(kind: &str, args: &Args<'_>) -> Result<Outcome, Usage> {
    // SAFETY: each call passes valid pointers/lengths for its syscall; results are checked.
    let result: libc::c_long = unsafe {
        match kind {
            "netlink" => libc::c_long::from(libc::socket(
                libc::AF_NETLINK,
                libc::SOCK_DGRAM,
                libc::NETLINK_ROUTE,
            )),
            "unshare-mount" => {
                let dir = args.path(0, "a directory")?;
                if libc::unshare(libc::CLONE_NEWNS) < 0 {
                    return Ok(Err(Failure::last("unshare")));
                }
                libc::c_long::from(libc::mount(
                    c"tmpfs".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ))
            }
            "perf" => {
                // PERF_TYPE_SOFTWARE / PERF_COUNT_SW_CPU_CLOCK on another process.
                let mut attr = [0u8; 128];
                attr[0..4].copy_from_slice(&1u32.to_ne_bytes());
                attr[4..8].copy_from_slice(&128u32.to_ne_bytes());
                libc::syscall(
                    libc::SYS_perf_event_open,
                    attr.as_ptr(),
                    args.number::<libc::c_long>(0, "a pid")?,
                    -1,
                    -1,
                    0,
                )
            }
            "setns-pidfd" => {
                let fd = libc::syscall(
                    libc::SYS_pidfd_open,
                    args.number::<libc::c_long>(0, "a pid")?,
                    0,
                );
                if fd < 0 {
                    return Ok(Err(Failure::last("pidfd_open")));
                }
                libc::c_long::from(libc::setns(fd as libc::c_int, libc::CLONE_NEWNET))
            }
            "setns-file" => {
                let fd = libc::open(
                    args.path(0, "a namespace file")?.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                );
                if fd < 0 {
                    return Ok(Err(Failure::last("open ns file")));
                }
                libc::c_long::from(libc::setns(fd, libc::CLONE_NEWNET))
            }
            "userfaultfd" => libc::syscall(libc::SYS_userfaultfd, libc::O_CLOEXEC),
            "userfaultfd-dev" => {
                const USERFAULTFD_IOC_NEW: libc::c_ulong = 0xaa00;
                let fd = libc::open(c"/dev/userfaultfd".as_ptr(), libc::O_RDWR | libc::O_CLOEXEC);
                if fd < 0 {
                    return Ok(Err(Failure::last("open /dev/userfaultfd")));
                }
                libc::c_long::from(libc::ioctl(fd, USERFAULTFD_IOC_NEW, libc::O_CLOEXEC))
            }
            "chroot-open" => {
                if libc::chroot(args.path(0, "a directory")?.as_ptr()) < 0 {
                    return Ok(Err(Failure::last("chroot")));
                }
                if libc::chdir(c"/".as_ptr()) < 0 {
                    return Ok(Err(Failure::last("chdir")));
                }
                let fd = libc::open(
                    args.path(1, "a file")?.as_ptr(),
                    libc::O_RDONLY | libc::O_CLOEXEC,
                );
                if fd >= 0 {
                    libc::close(fd);
                }
                libc::c_long::from(fd)
            }
            other => return Err(Usage(format!("unknown tamper kind {other:?}"))),
        }
    };
    Ok(if result < 0 {
        Err(Failure::last("tamper"))
    } else {
        Ok(())
    })
}

/// `tamper KIND [ARGS]`: one of the operations a confined process may never do.
/// `bpf` (`BPF_MAP_GET_NEXT_ID`), `raw` (an ICMP raw socket), `packet` (an `AF_PACKET` socket),
/// `ptrace PID` (seize, then detach), `kill PID SIG`, `link SRC DST` (a hard link),
/// `init_module` (a 64-byte non-module: an untagged root caller gets `ENOEXEC`, never `EPERM`),
/// `mount DIR` (a tmpfs on DIR).
fn tamper(rest: &[OsString]) -> Result<Outcome, Usage> {
    let kind = Args::new("tamper", rest).text(
        0,
        "bpf|raw|packet|ptrace|kill|link|init_module|mount|netlink|unshare-mount|perf|setns-pidfd\
         |setns-file|userfaultfd|userfaultfd-dev",
    )?;
    // The arguments after the kind.
    let args = Args::new(format!("tamper {kind}"), rest.get(1..).unwrap_or_default());
    // SAFETY: each call passes valid pointers/lengths for its syscall; results are checked.
    let result: libc::c_long = unsafe {
        match kind {
            "bpf" => {
                const BPF_MAP_GET_NEXT_ID: libc::c_long = 12;
                let attr = [0u8; 128];
                let r = libc::syscall(libc::SYS_bpf, BPF_MAP_GET_NEXT_ID, attr.as_ptr(), 128);
                // No map at all is ENOENT: the call itself was allowed.
                if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOENT) {
                    0
                } else {
                    r
                }
            }
            "raw" => libc::c_long::from(libc::socket(
                libc::AF_INET,
                libc::SOCK_RAW,
                libc::IPPROTO_ICMP,
            )),
            "packet" => libc::c_long::from(libc::socket(libc::AF_PACKET, libc::SOCK_RAW, 0)),
            "ptrace" => {
                let pid: libc::c_long = args.number(0, "a pid")?;
                let r = libc::ptrace(libc::PTRACE_SEIZE, pid as libc::pid_t, 0, 0);
                if r == 0 {
                    libc::ptrace(libc::PTRACE_DETACH, pid as libc::pid_t, 0, 0);
                }
                r
            }
            "kill" => libc::c_long::from(libc::kill(
                args.number::<libc::c_long>(0, "a pid")? as libc::pid_t,
                args.number::<libc::c_long>(1, "a signal")? as libc::c_int,
            )),
            "link" => libc::c_long::from(libc::link(
                args.path(0, "the existing path")?.as_ptr(),
                args.path(1, "the new path")?.as_ptr(),
            )),
            "init_module" => {
                let image = [0u8; 64];
                let params = c"";
                let r = libc::syscall(
                    libc::SYS_init_module,
                    image.as_ptr(),
                    64usize,
                    params.as_ptr(),
                );
                // The kernel only reaches its parsing (ENOEXEC) once the load was allowed.
                if r < 0 && std::io::Error::last_os_error().raw_os_error() == Some(libc::ENOEXEC) {
                    0
                } else {
                    r
                }
            }
            "mount" => {
                let dir = args.path(0, "a directory")?;
                libc::c_long::from(libc::mount(
                    c"tmpfs".as_ptr(),
                    dir.as_ptr(),
                    c"tmpfs".as_ptr(),
                    0,
                    std::ptr::null(),
                ))
            }
            "netlink" | "unshare-mount" | "perf" | "setns-pidfd" | "setns-file" | "userfaultfd"
            | "userfaultfd-dev" | "chroot-open" => return more_tamper(kind, &args),
            other => return Err(Usage(format!("unknown tamper kind {other:?}"))),
        }
    };
    Ok(if result < 0 {
        Err(Failure::last("tamper"))
    } else {
        Ok(())
    })
}

/// Carries out `-D MILLIS` and `-C DIR` (in this order, each optional) and returns the
/// arguments after them; `Err` inside when changing directory failed.
fn leading_options(args: &[OsString]) -> Result<Result<&[OsString], Failure>, Usage> {
    let mut args = args;
    if args.first().map(OsString::as_os_str) == Some(OsStr::new("-D")) {
        let millis: u64 = args
            .get(1)
            .and_then(|m| m.to_str())
            .and_then(|m| m.parse().ok())
            .ok_or_else(|| Usage("-D needs a number of milliseconds".into()))?;
        std::thread::sleep(std::time::Duration::from_millis(millis));
        args = &args[2..];
    }
    if args.first().map(OsString::as_os_str) == Some(OsStr::new("-C")) {
        let dir = args
            .get(1)
            .ok_or_else(|| Usage("-C needs a directory".into()))?;
        if let Err(f) = change_dir(dir.as_bytes()) {
            return Ok(Err(f));
        }
        args = &args[2..];
    }
    Ok(Ok(args))
}

/// `chdir` one component at a time (an absolute path starts from `/`).
fn change_dir(dir: &[u8]) -> Outcome {
    if dir.first() == Some(&b'/') {
        check(unsafe { libc::chdir(c"/".as_ptr()) }, "chdir /")?;
    }
    for part in dir.split(|&b| b == b'/').filter(|p| !p.is_empty()) {
        let Ok(part) = CString::new(part) else {
            return Err(Failure {
                step: "chdir",
                errno: libc::EINVAL,
            });
        };
        // SAFETY: `part` is a valid C string.
        check(unsafe { libc::chdir(part.as_ptr()) }, "chdir")?;
    }
    Ok(())
}

/// Turns a -1 return into the failure of `step`.
fn check(ret: libc::c_int, step: &'static str) -> Result<libc::c_int, Failure> {
    if ret < 0 {
        Err(Failure::last(step))
    } else {
        Ok(ret)
    }
}

fn open(path: &CStr, mode: &str) -> Result<Outcome, Usage> {
    let flags = match mode {
        "r" => libc::O_RDONLY,
        "w" => libc::O_WRONLY | libc::O_CREAT,
        "rw" => libc::O_RDWR | libc::O_CREAT,
        other => {
            return Err(Usage(format!(
                "open mode must be r, w or rw, not {other:?}"
            )));
        }
    };
    // SAFETY: valid C string; the mode argument is read only with O_CREAT.
    let fd = unsafe {
        libc::open(
            path.as_ptr(),
            flags | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    Ok(check(fd, "open").map(|fd| {
        // SAFETY: `fd` was just opened by us.
        unsafe { libc::close(fd) };
    }))
}

/// A boxed operation of `loop`.
type Op = Box<dyn Fn() -> Outcome>;

/// `loop MILLIS open ALLOWED DENIED` and `loop MILLIS udp ADDR ALLOWED DENIED`.
fn loop_op(args: &Args<'_>) -> Result<Outcome, Usage> {
    let millis: u64 = args.number(0, "a duration in milliseconds")?;
    let (allowed, denied): (Op, Op) = match args.text(1, "open|udp")? {
        "open" => {
            let (a, d) = (
                args.path(2, "the allowed path")?,
                args.path(3, "the denied path")?,
            );
            (
                Box::new(move || read_open(&a)),
                Box::new(move || read_open(&d)),
            )
        }
        "udp" => {
            let addr = args.text(2, "an address")?;
            let (a, pa) = inet_target(addr, args.text(3, "the allowed port")?)?;
            let (d, pd) = inet_target(addr, args.text(4, "the denied port")?)?;
            (
                Box::new(move || connect_inet(libc::SOCK_DGRAM, 0, a, pa)),
                Box::new(move || connect_inet(libc::SOCK_DGRAM, 0, d, pd)),
            )
        }
        other => return Err(Usage(format!("unknown loop kind {other:?}"))),
    };
    Ok(decision_loop(millis, &*allowed, &*denied))
}

/// `reopen-until`: see the usage. The loop keeps FIRST's remembered decision fresh (it is
/// re-made when it expires), so SECOND is judged right after a remembered decision whatever the
/// test's own pace; GATE is tested with `access`, which no hook judges. Gives up after 60 s.
fn reopen_until(gate: &CStr, first: &CStr, second: &CStr) -> Outcome {
    read_open(first)?;
    let _ = writeln!(std::io::stdout(), "opened");
    let _ = std::io::stdout().flush();
    let end = std::time::Instant::now() + std::time::Duration::from_secs(60);
    // SAFETY: valid C string.
    while unsafe { libc::access(gate.as_ptr(), libc::F_OK) } != 0 {
        if std::time::Instant::now() > end {
            return Err(Failure {
                step: "reopen-until (the gate never appeared)",
                errno: libc::ETIMEDOUT,
            });
        }
        let _ = read_open(first);
        std::thread::sleep(std::time::Duration::from_millis(1));
    }
    read_open(second)
}

fn read_open(path: &CStr) -> Outcome {
    // SAFETY: valid C string.
    let fd = check(
        unsafe { libc::open(path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) },
        "open",
    )?;
    // SAFETY: `fd` was just opened by us.
    unsafe { libc::close(fd) };
    Ok(())
}

/// Repeats an operation that must always be allowed and one that must always be refused for
/// `millis`; reports the counts on stderr and fails with `EPROTO` if any decision was wrong.
fn decision_loop(
    millis: u64,
    allowed: &dyn Fn() -> Outcome,
    denied: &dyn Fn() -> Outcome,
) -> Outcome {
    let end = std::time::Instant::now() + std::time::Duration::from_millis(millis);
    // `$CORRAL_PROBE_STOP`: a path whose appearance ends the loop early (checked with
    // `access`, which opens nothing, so no hook judges it).
    let stop = std::env::var_os("CORRAL_PROBE_STOP").and_then(|p| CString::new(p.as_bytes()).ok());
    let stopped = || {
        stop.as_ref()
            // SAFETY: valid C string.
            .is_some_and(|p| unsafe { libc::access(p.as_ptr(), libc::F_OK) } == 0)
    };
    let (mut rounds, mut wrong_refused, mut wrong_allowed) = (0u64, 0u64, 0u64);
    while std::time::Instant::now() < end && !stopped() {
        rounds += 1;
        // Paced: a few thousand rounds a second find any window, without starving the machine
        // (a daemon starting meanwhile must get the CPU).
        std::thread::sleep(std::time::Duration::from_micros(200));
        if allowed().is_err() {
            wrong_refused += 1;
        }
        let refused = denied().is_err_and(|f| f.errno == libc::EPERM || f.errno == libc::EACCES);
        if !refused {
            wrong_allowed += 1;
        }
    }
    let _ = writeln!(
        std::io::stderr(),
        "corral-probe: loop: {rounds} rounds, {wrong_refused} allowed operations refused, {wrong_allowed} refused operations allowed"
    );
    if wrong_refused + wrong_allowed == 0 {
        Ok(())
    } else {
        Err(Failure {
            step: "loop (wrong decisions, see the counts above)",
            errno: libc::EPROTO,
        })
    }
}

fn reopen(path: &CStr) -> Outcome {
    // SAFETY: valid C string.
    let fd = check(
        unsafe { libc::open(path.as_ptr(), libc::O_PATH | libc::O_CLOEXEC) },
        "open O_PATH",
    )?;
    let Ok(proc_path) = CString::new(format!("/proc/self/fd/{fd}")) else {
        unreachable!("a formatted number has no NUL byte")
    };
    // SAFETY: valid C string.
    let fd2 = check(
        unsafe { libc::open(proc_path.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) },
        "open /proc/self/fd/N",
    )?;
    // SAFETY: both were just opened by us.
    unsafe {
        libc::close(fd2);
        libc::close(fd);
    }
    Ok(())
}

/// `execv(argv[0], argv)`; returns only on failure.
fn exec(argv: &[CString]) -> Failure {
    let mut ptrs: Vec<*const libc::c_char> = argv.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: NULL-terminated array of valid C strings that outlive the call.
    unsafe { libc::execv(ptrs[0], ptrs.as_ptr()) };
    Failure::last("execv")
}

fn inet_target(addr: &str, port: &str) -> Result<(IpAddr, u16), Usage> {
    let addr = addr
        .parse()
        .map_err(|_| Usage(format!("{addr:?} is not an IPv4 or IPv6 literal")))?;
    let port = port
        .parse()
        .map_err(|_| Usage(format!("{port:?} is not a port number")))?;
    Ok((addr, port))
}

/// A socket address as raw bytes ready for `bind`/`connect`, with its family.
struct SockAddr {
    storage: libc::sockaddr_storage,
    len: libc::socklen_t,
    family: libc::c_int,
}

impl SockAddr {
    fn zeroed(family: libc::c_int) -> Self {
        Self {
            // SAFETY: all-zero bytes are a valid `sockaddr_storage`.
            storage: unsafe { std::mem::zeroed() },
            len: 0,
            family,
        }
    }

    fn ptr(&self) -> *const libc::sockaddr {
        (&raw const self.storage).cast()
    }
}

fn inet_address(addr: IpAddr, port: u16) -> SockAddr {
    match addr {
        IpAddr::V4(v4) => {
            let mut sa = SockAddr::zeroed(libc::AF_INET);
            let sin = libc::sockaddr_in {
                sin_family: libc::AF_INET as libc::sa_family_t,
                sin_port: port.to_be(),
                sin_addr: libc::in_addr {
                    s_addr: u32::from_ne_bytes(v4.octets()),
                },
                sin_zero: [0; 8],
            };
            // SAFETY: `sockaddr_storage` is larger than and aligned for `sockaddr_in`.
            unsafe { std::ptr::write((&raw mut sa.storage).cast(), sin) };
            sa.len = size_of::<libc::sockaddr_in>() as libc::socklen_t;
            sa
        }
        IpAddr::V6(v6) => {
            let mut sa = SockAddr::zeroed(libc::AF_INET6);
            let sin6 = libc::sockaddr_in6 {
                sin6_family: libc::AF_INET6 as libc::sa_family_t,
                sin6_port: port.to_be(),
                sin6_flowinfo: 0,
                sin6_addr: libc::in6_addr {
                    s6_addr: v6.octets(),
                },
                sin6_scope_id: 0,
            };
            // SAFETY: `sockaddr_storage` is larger than and aligned for `sockaddr_in6`.
            unsafe { std::ptr::write((&raw mut sa.storage).cast(), sin6) };
            sa.len = size_of::<libc::sockaddr_in6>() as libc::socklen_t;
            sa
        }
    }
}

/// `PATH` is a pathname socket (absolute or relative), `@NAME` an abstract one.
fn unix_address(arg: &OsStr) -> Result<SockAddr, Usage> {
    let bytes = arg.as_bytes();
    // Pathname sockets pass their terminating NUL, abstract ones a leading NUL and their name.
    let sun_path: Vec<u8> = match bytes.strip_prefix(b"@") {
        Some(name) => std::iter::once(0).chain(name.iter().copied()).collect(),
        None => bytes.iter().copied().chain(std::iter::once(0)).collect(),
    };
    let mut sa = SockAddr::zeroed(libc::AF_UNIX);
    // SAFETY: all-zero bytes are a valid `sockaddr_un`.
    let mut sun: libc::sockaddr_un = unsafe { std::mem::zeroed() };
    if sun_path.len() > sun.sun_path.len() {
        return Err(Usage(format!("unix address {} is too long", arg.display())));
    }
    sun.sun_family = libc::AF_UNIX as libc::sa_family_t;
    for (dst, src) in sun.sun_path.iter_mut().zip(&sun_path) {
        *dst = *src as libc::c_char;
    }
    let base = std::mem::offset_of!(libc::sockaddr_un, sun_path);
    sa.len = (base + sun_path.len()) as libc::socklen_t;
    // SAFETY: `sockaddr_storage` is larger than and aligned for `sockaddr_un`.
    unsafe { std::ptr::write((&raw mut sa.storage).cast(), sun) };
    Ok(sa)
}

fn new_socket(family: libc::c_int, ty: libc::c_int) -> Result<libc::c_int, Failure> {
    new_socket_of(family, ty, 0)
}

fn new_socket_of(
    family: libc::c_int,
    ty: libc::c_int,
    protocol: libc::c_int,
) -> Result<libc::c_int, Failure> {
    // SAFETY: plain system call.
    check(
        unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, protocol) },
        "socket",
    )
}

/// A connect of a `ty` socket of `protocol` (0: the type's default) to `addr`:`port`.
fn connect_inet(ty: libc::c_int, protocol: libc::c_int, addr: IpAddr, port: u16) -> Outcome {
    connect_to(ty, protocol, &inet_address(addr, port))
}

fn connect_unix(ty: libc::c_int, addr: &SockAddr) -> Outcome {
    connect_to(ty, 0, addr)
}

fn connect_to(ty: libc::c_int, protocol: libc::c_int, sa: &SockAddr) -> Outcome {
    let fd = new_socket_of(sa.family, ty, protocol)?;
    // SAFETY: `sa` holds a valid address of `sa.len` bytes.
    let ret = check(unsafe { libc::connect(fd, sa.ptr(), sa.len) }, "connect");
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    ret.map(|_| ())
}

/// `sendto udp|tfo ADDR PORT`, `sendto unix PATH|@NAME`.
fn sendto(args: &Args<'_>) -> Result<Outcome, Usage> {
    let kind = args.text(0, "udp|tfo|unix")?;
    if kind == "unix" {
        let addr = unix_address(args.raw(1, "a path or @name")?)?;
        return Ok(send_to(libc::SOCK_DGRAM, 0, &addr));
    }
    let (addr, port) = inet_target(args.text(1, "an address")?, args.text(2, "a port")?)?;
    let sa = inet_address(addr, port);
    match kind {
        "udp" => Ok(send_to(libc::SOCK_DGRAM, 0, &sa)),
        "tfo" => Ok(send_to(libc::SOCK_STREAM, libc::MSG_FASTOPEN, &sa)),
        other => Err(Usage(format!("unknown sendto kind {other:?}"))),
    }
}

/// `socket FAMILY TYPE PROTO`: creates (and closes) a socket of exactly these numbers.
fn socket_op(args: &Args<'_>) -> Result<Outcome, Usage> {
    let (family, ty, proto) = (
        args.number::<libc::c_int>(0, "a family")?,
        args.number::<libc::c_int>(1, "a type")?,
        args.number::<libc::c_int>(2, "a protocol")?,
    );
    // SAFETY: plain system call.
    let created = check(
        unsafe { libc::socket(family, ty | libc::SOCK_CLOEXEC, proto) },
        "socket",
    );
    Ok(created.map(|fd| {
        // SAFETY: `fd` is ours.
        unsafe { libc::close(fd) };
    }))
}

/// What `sendto` sends.
const PAYLOAD: &[u8] = b"corral-probe";

/// One `sendto` of `PAYLOAD` with a destination on a fresh socket of type `ty`, never connected:
/// a UDP datagram, or with `MSG_FASTOPEN` a TCP Fast Open connect that carries the data.
/// Anything short of the whole payload sent is a failure.
fn send_to(ty: libc::c_int, flags: libc::c_int, sa: &SockAddr) -> Outcome {
    let fd = new_socket(sa.family, ty)?;
    // SAFETY: `PAYLOAD` is valid for its length; `sa` holds a valid address of `sa.len` bytes.
    let sent = unsafe {
        libc::sendto(
            fd,
            PAYLOAD.as_ptr().cast(),
            PAYLOAD.len(),
            flags | libc::MSG_NOSIGNAL,
            sa.ptr(),
            sa.len,
        )
    };
    let result = if sent < 0 {
        Err(Failure::last("sendto"))
    } else if usize::try_from(sent) == Ok(PAYLOAD.len()) {
        Ok(())
    } else {
        Err(Failure {
            step: "sendto (short)",
            errno: libc::EIO,
        })
    };
    // SAFETY: `fd` is ours.
    unsafe { libc::close(fd) };
    result
}

fn listen_inet(addr: IpAddr, port: u16) -> Outcome {
    let sa = inet_address(addr, port);
    let fd = new_socket(sa.family, libc::SOCK_STREAM)?;
    let one: libc::c_int = 1;
    // SAFETY: valid option pointer and length.
    unsafe {
        libc::setsockopt(
            fd,
            libc::SOL_SOCKET,
            libc::SO_REUSEADDR,
            (&raw const one).cast(),
            size_of::<libc::c_int>() as libc::socklen_t,
        );
    }
    // SAFETY: `sa` holds a valid address of `sa.len` bytes.
    check(unsafe { libc::bind(fd, sa.ptr(), sa.len) }, "bind")?;
    // SAFETY: plain system call.
    check(unsafe { libc::listen(fd, 8) }, "listen")?;
    let mut bound = SockAddr::zeroed(sa.family);
    bound.len = size_of::<libc::sockaddr_storage>() as libc::socklen_t;
    // SAFETY: `bound.storage` has room for `bound.len` bytes.
    check(
        unsafe { libc::getsockname(fd, (&raw mut bound.storage).cast(), &raw mut bound.len) },
        "getsockname",
    )?;
    // Both `sockaddr_in` and `sockaddr_in6` keep the port, big-endian, at offset 2.
    // SAFETY: the storage holds an inet address.
    let port =
        u16::from_be(unsafe { (*(&raw const bound.storage).cast::<libc::sockaddr_in>()).sin_port });
    say(&format!("listening {port}"));
    accept_one(fd)
}

fn listen_unix(sa: &SockAddr) -> Outcome {
    let fd = new_socket(libc::AF_UNIX, libc::SOCK_STREAM)?;
    // SAFETY: `sa` holds a valid address of `sa.len` bytes.
    check(unsafe { libc::bind(fd, sa.ptr(), sa.len) }, "bind")?;
    // SAFETY: plain system call.
    check(unsafe { libc::listen(fd, 8) }, "listen")?;
    say("listening");
    accept_one(fd)
}

fn accept_one(fd: libc::c_int) -> Outcome {
    // SAFETY: plain system call; the peer address is not wanted.
    let conn = check(
        unsafe { libc::accept(fd, std::ptr::null_mut(), std::ptr::null_mut()) },
        "accept",
    )?;
    // SAFETY: both are ours.
    unsafe {
        libc::close(conn);
        libc::close(fd);
    }
    Ok(())
}

/// Forks `depth` generations; the deepest execs `argv`. Every generation exits with its child's
/// code (128 + signal for a killed child), so the chain's exit code is the command's.
fn spawn(depth: u32, argv: &[CString]) -> ! {
    if depth == 0 {
        let f = exec(argv);
        say(&format!("err {} {}", errno_name(f.errno), f.errno));
        std::process::exit(EXIT_FAILED);
    }
    let _ = std::io::stdout().flush();
    // SAFETY: single-threaded process; the child only forks again or execs.
    match unsafe { libc::fork() } {
        -1 => {
            let f = Failure::last("fork");
            say(&format!("err {} {}", errno_name(f.errno), f.errno));
            std::process::exit(EXIT_FAILED);
        }
        0 => spawn(depth - 1, argv),
        child => {
            let mut status = 0;
            // SAFETY: waiting for our own child.
            while unsafe { libc::waitpid(child, &raw mut status, 0) } < 0 {
                if std::io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                    std::process::exit(EXIT_FAILED);
                }
            }
            let code = if libc::WIFEXITED(status) {
                libc::WEXITSTATUS(status)
            } else {
                128 + libc::WTERMSIG(status)
            };
            std::process::exit(code);
        }
    }
}

/// The symbolic name of an errno, `E<n>` for one this table does not know.
fn errno_name(errno: i32) -> String {
    let name = match errno {
        libc::EPERM => "EPERM",
        libc::ENOENT => "ENOENT",
        libc::ESRCH => "ESRCH",
        libc::EINTR => "EINTR",
        libc::EIO => "EIO",
        libc::E2BIG => "E2BIG",
        libc::ENOEXEC => "ENOEXEC",
        libc::EBADF => "EBADF",
        libc::ECHILD => "ECHILD",
        libc::EAGAIN => "EAGAIN",
        libc::ENOMEM => "ENOMEM",
        libc::EACCES => "EACCES",
        libc::EFAULT => "EFAULT",
        libc::EBUSY => "EBUSY",
        libc::EEXIST => "EEXIST",
        libc::EXDEV => "EXDEV",
        libc::ENOTDIR => "ENOTDIR",
        libc::EISDIR => "EISDIR",
        libc::EINVAL => "EINVAL",
        libc::ENFILE => "ENFILE",
        libc::EMFILE => "EMFILE",
        libc::ETXTBSY => "ETXTBSY",
        libc::ENOSPC => "ENOSPC",
        libc::EROFS => "EROFS",
        libc::EPIPE => "EPIPE",
        libc::ENAMETOOLONG => "ENAMETOOLONG",
        libc::ENOSYS => "ENOSYS",
        libc::ELOOP => "ELOOP",
        libc::ENOTSOCK => "ENOTSOCK",
        libc::EPROTOTYPE => "EPROTOTYPE",
        libc::EPROTONOSUPPORT => "EPROTONOSUPPORT",
        libc::EOPNOTSUPP => "EOPNOTSUPP",
        libc::EAFNOSUPPORT => "EAFNOSUPPORT",
        libc::EADDRINUSE => "EADDRINUSE",
        libc::EADDRNOTAVAIL => "EADDRNOTAVAIL",
        libc::ENETDOWN => "ENETDOWN",
        libc::ENETUNREACH => "ENETUNREACH",
        libc::ECONNABORTED => "ECONNABORTED",
        libc::ECONNRESET => "ECONNRESET",
        libc::EISCONN => "EISCONN",
        libc::ENOTCONN => "ENOTCONN",
        libc::ETIMEDOUT => "ETIMEDOUT",
        libc::ECONNREFUSED => "ECONNREFUSED",
        libc::EHOSTUNREACH => "EHOSTUNREACH",
        libc::EINPROGRESS => "EINPROGRESS",
        _ => return format!("E{errno}"),
    };
    name.to_owned()
}
