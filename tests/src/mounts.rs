//! Mounts a test makes for itself, undone when dropped.

use std::ffi::CString;
use std::os::unix::ffi::OsStrExt;
use std::path::Path;

/// A bind mount of one directory onto another, detached (`MNT_DETACH`) on drop.
pub struct BindMount {
    target: CString,
}

impl BindMount {
    /// Bind-mounts `source` onto `target` (both existing directories). Panics, saying which,
    /// when the mount fails.
    #[must_use]
    pub fn new(source: &str, target: &str) -> Self {
        let c = |p: &str| {
            CString::new(Path::new(p).as_os_str().as_bytes())
                .unwrap_or_else(|_| panic!("expected a path without NUL bytes: {p:?}"))
        };
        let (src, dst) = (c(source), c(target));
        // SAFETY: valid C strings; a plain bind mount.
        let rc = unsafe {
            libc::mount(
                src.as_ptr(),
                dst.as_ptr(),
                std::ptr::null(),
                libc::MS_BIND,
                std::ptr::null(),
            )
        };
        assert!(
            rc == 0,
            "expected to bind-mount {source} on {target}: {}",
            std::io::Error::last_os_error()
        );
        Self { target: dst }
    }
}

impl Drop for BindMount {
    fn drop(&mut self) {
        // SAFETY: a valid C string.
        let _ = unsafe { libc::umount2(self.target.as_ptr(), libc::MNT_DETACH) };
    }
}
