//! The active LSM list (mounting securityfs if needed): BPF LSM programs only run if `bpf` is in it.

use std::{ffi::CString, fs, io};

const LSM_LIST: &str = "/sys/kernel/security/lsm";
const SECURITYFS: &str = "/sys/kernel/security";

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "cannot read the active LSM list {LSM_LIST}: {source} (is securityfs mounted? try `mount -t securityfs securityfs {SECURITYFS}`)"
    )]
    LsmList { source: io::Error },
}

/// The active LSMs, mounting securityfs first if it is not mounted.
pub fn active_lsms() -> Result<Vec<String>, PreflightError> {
    let text = match fs::read_to_string(LSM_LIST) {
        Ok(text) => text,
        Err(first) if first.kind() == io::ErrorKind::NotFound => {
            mount_securityfs();
            fs::read_to_string(LSM_LIST).map_err(|source| PreflightError::LsmList { source })?
        }
        Err(source) => return Err(PreflightError::LsmList { source }),
    };
    Ok(text
        .trim()
        .split(',')
        .filter(|s| !s.is_empty())
        .map(str::to_owned)
        .collect())
}

fn mount_securityfs() {
    let (Ok(src), Ok(target)) = (CString::new("securityfs"), CString::new(SECURITYFS)) else {
        return;
    };
    // SAFETY: valid NUL-terminated strings; failure is reported by the read that follows.
    unsafe {
        libc::mount(
            src.as_ptr(),
            target.as_ptr(),
            src.as_ptr(),
            0,
            std::ptr::null(),
        );
    }
}
