//! What the kernel must offer before anything is loaded, checked up front so the daemon can say
//! exactly what is missing and how to fix it.

use std::{ffi::CString, fs, io, path::Path};

const LSM_LIST: &str = "/sys/kernel/security/lsm";
const SECURITYFS: &str = "/sys/kernel/security";

#[derive(Debug, thiserror::Error)]
pub enum PreflightError {
    #[error(
        "BPF LSM is not active (active LSMs: {active}); add `lsm={active},bpf` to the kernel command line (e.g. GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)"
    )]
    BpfLsmInactive { active: String },
    #[error(
        "cannot read the active LSM list {LSM_LIST}: {source} (is securityfs mounted? try `mount -t securityfs securityfs {SECURITYFS}`)"
    )]
    LsmList { source: io::Error },
    #[error(
        "kernel BTF {path} is missing: Corral needs a kernel built with CONFIG_DEBUG_INFO_BTF=y"
    )]
    NoBtf { path: String },
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

/// Checks BTF and the BPF LSM before load.
pub fn check(btf_path: &Path) -> Result<(), PreflightError> {
    if !btf_path.exists() {
        return Err(PreflightError::NoBtf {
            path: btf_path.display().to_string(),
        });
    }
    let lsms = active_lsms()?;
    if !lsms.iter().any(|l| l == "bpf") {
        return Err(PreflightError::BpfLsmInactive {
            active: lsms.join(","),
        });
    }
    Ok(())
}
