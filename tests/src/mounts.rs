//! Mounts a test makes for itself, undone when dropped.

use std::cell::RefCell;
use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// `path` as a C string; panics on a NUL byte.
fn c_path(path: &str) -> CString {
    CString::new(Path::new(path).as_os_str().as_bytes())
        .unwrap_or_else(|_| panic!("expected a path without NUL bytes: {path:?}"))
}

/// `mount(2)`; panics with `what` and the error when it fails.
fn mount(source: &CString, target: &CString, fstype: Option<&CString>, flags: u64, what: &str) {
    // SAFETY: valid C strings (or null for no file system type), no data.
    let rc = unsafe {
        libc::mount(
            source.as_ptr(),
            target.as_ptr(),
            fstype.map_or(std::ptr::null(), |t| t.as_ptr()),
            flags,
            std::ptr::null(),
        )
    };
    assert!(
        rc == 0,
        "expected to {what}: {}",
        std::io::Error::last_os_error()
    );
}

/// Detaches (`MNT_DETACH`) the mount on `target`, ignoring errors (drop paths).
fn detach(target: &CString) {
    // SAFETY: a valid C string.
    let _ = unsafe { libc::umount2(target.as_ptr(), libc::MNT_DETACH) };
}

/// A bind mount of one directory onto another, detached (`MNT_DETACH`) on drop.
pub struct BindMount {
    target: CString,
}

impl BindMount {
    /// Bind-mounts `source` onto `target` (both existing directories). Panics, saying which,
    /// when the mount fails.
    #[must_use]
    pub fn new(source: &str, target: &str) -> Self {
        let (src, dst) = (c_path(source), c_path(target));
        mount(
            &src,
            &dst,
            None,
            libc::MS_BIND,
            &format!("bind-mount {source} on {target}"),
        );
        Self { target: dst }
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        detach(&self.target);
    }
}

/// A tmpfs mounted for one test, detached on drop wherever it was moved.
pub struct TmpfsMount {
    at: RefCell<CString>,
}

impl TmpfsMount {
    /// Mounts a tmpfs on `at` (an existing directory). Panics when the mount fails.
    #[must_use]
    pub fn new(at: &str) -> Self {
        let target = c_path(at);
        let tmpfs = c_path("tmpfs");
        mount(
            &tmpfs,
            &target,
            Some(&tmpfs),
            0,
            &format!("mount a tmpfs on {at}"),
        );
        Self {
            at: RefCell::new(target),
        }
    }

    /// `mount --move` to `to` (an existing directory). Panics when the move fails.
    pub fn move_to(&self, to: &str) {
        let target = c_path(to);
        let from = self.at.borrow().clone();
        mount(
            &from,
            &target,
            None,
            libc::MS_MOVE,
            &format!("move the mount on {from:?} to {to}"),
        );
        *self.at.borrow_mut() = target;
    }
}

impl Drop for TmpfsMount {
    fn drop(&mut self) {
        detach(&self.at.borrow());
    }
}
