//! The scratch directory `corral doctor --selftest` probes: a denied file, aliases of it in the
//! allowed directory, a copied binary, a tree deeper than `PATH_MAX`, a directory the task may
//! only read, and listeners the task may not reach.

use std::{
    ffi::CString,
    fs, io,
    net::{TcpListener, UdpSocket},
    os::unix::{
        fs::PermissionsExt,
        net::{UnixDatagram, UnixListener},
    },
    path::{Path, PathBuf},
};

use super::probe::{DEEP_LEVELS, DEEP_NAME_LEN};

#[derive(Debug, thiserror::Error)]
#[error("cannot prepare the selftest fixture {}: {source}", path.display())]
pub struct FixtureError {
    pub path: PathBuf,
    pub source: io::Error,
}

/// The prepared fixtures; the listeners live as long as this value.
pub struct Fixtures {
    pub dir: PathBuf,
    pub port: u16,
    pub port6: Option<u16>,
    _tcp: TcpListener,
    _tcp6: Option<TcpListener>,
    _udp: UdpSocket,
    _unix: UnixListener,
    _unix_dgram: UnixDatagram,
}

fn at(path: &Path) -> impl Fn(io::Error) -> FixtureError + '_ {
    move |source| FixtureError {
        path: path.to_owned(),
        source,
    }
}

/// Recreates `dir` from scratch: `denied/secret`, `denied/new\nline`, the deep tree under
/// `denied/`, `readonly/file`, and in `allowed/`: `plain`, `symlink` (to `denied/secret`),
/// `payload` (a copy of `payload_src`, executable), `mnt/`, the unix stream socket `socket` and
/// the unix datagram socket `dgram`.
pub fn prepare(dir: &Path, payload_src: &Path) -> Result<Fixtures, FixtureError> {
    if dir.exists() {
        fs::remove_dir_all(dir).map_err(at(dir))?;
    }
    let denied = dir.join("denied");
    let allowed = dir.join("allowed");
    let readonly = dir.join("readonly");
    for d in [dir, &denied, &allowed, &allowed.join("mnt"), &readonly] {
        fs::create_dir_all(d).map_err(at(d))?;
        fs::set_permissions(d, fs::Permissions::from_mode(0o755)).map_err(at(d))?;
    }
    let secret = denied.join("secret");
    for (path, text) in [
        (&secret, "corral selftest: this file is denied\n"),
        (&denied.join("new\nline"), "denied\n"),
        (
            &allowed.join("plain"),
            "corral selftest: this file is allowed\n",
        ),
        (
            &readonly.join("file"),
            "corral selftest: this file may be read, not changed\n",
        ),
    ] {
        fs::write(path, text).map_err(at(path))?;
    }
    let symlink = allowed.join("symlink");
    std::os::unix::fs::symlink("../denied/secret", &symlink).map_err(at(&symlink))?;
    let payload = allowed.join("payload");
    fs::copy(payload_src, &payload).map_err(at(&payload))?;
    fs::set_permissions(&payload, fs::Permissions::from_mode(0o755)).map_err(at(&payload))?;
    deep_tree(&denied)?;
    let loopback = std::net::Ipv4Addr::LOCALHOST;
    let tcp = TcpListener::bind((loopback, 0)).map_err(at(dir))?;
    let port = tcp.local_addr().map_err(at(dir))?.port();
    let tcp6 = TcpListener::bind((std::net::Ipv6Addr::LOCALHOST, 0)).ok();
    let port6 = tcp6
        .as_ref()
        .and_then(|l| l.local_addr().ok())
        .map(|a| a.port());
    let udp = UdpSocket::bind((loopback, port)).map_err(at(dir))?;
    let socket = allowed.join("socket");
    let unix = UnixListener::bind(&socket).map_err(at(&socket))?;
    let dgram = allowed.join("dgram");
    let unix_dgram = UnixDatagram::bind(&dgram).map_err(at(&dgram))?;
    Ok(Fixtures {
        dir: dir.to_owned(),
        port,
        port6,
        _tcp: tcp,
        _tcp6: tcp6,
        _udp: udp,
        _unix: unix,
        _unix_dgram: unix_dgram,
    })
}

/// `DEEP_LEVELS` directories of `DEEP_NAME_LEN` bytes under `denied`, with `secret` at the
/// bottom: made with `mkdirat`/`openat`, since no single path may reach it.
fn deep_tree(denied: &Path) -> Result<(), FixtureError> {
    let fail = |what: &str| FixtureError {
        path: denied.join(format!("{what} (deep tree)")),
        source: io::Error::last_os_error(),
    };
    let top = CString::new(denied.as_os_str().as_encoded_bytes()).map_err(|_| FixtureError {
        path: denied.to_owned(),
        source: io::ErrorKind::InvalidInput.into(),
    })?;
    let name = CString::new("d".repeat(DEEP_NAME_LEN)).unwrap_or_default();
    // SAFETY: plain system calls on NUL-terminated buffers; every descriptor is closed.
    unsafe {
        let mut fd = libc::open(top.as_ptr(), libc::O_DIRECTORY | libc::O_CLOEXEC);
        if fd < 0 {
            return Err(fail("open"));
        }
        for _ in 0..DEEP_LEVELS {
            if libc::mkdirat(fd, name.as_ptr(), 0o755) < 0 {
                libc::close(fd);
                return Err(fail("mkdirat"));
            }
            let next = libc::openat(fd, name.as_ptr(), libc::O_DIRECTORY | libc::O_CLOEXEC);
            libc::close(fd);
            if next < 0 {
                return Err(fail("openat"));
            }
            fd = next;
        }
        let file = libc::openat(
            fd,
            c"secret".as_ptr(),
            libc::O_CREAT | libc::O_WRONLY | libc::O_CLOEXEC,
            0o644,
        );
        libc::close(fd);
        if file < 0 {
            return Err(fail("secret"));
        }
        libc::write(file, b"deep\n".as_ptr().cast(), 5);
        libc::close(file);
    }
    Ok(())
}
