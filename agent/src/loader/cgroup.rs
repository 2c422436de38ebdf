//! Where the cgroup v2 hierarchy is mounted (the root the `sock_addr` programs attach to).

use std::{
    ffi::CString,
    fs, io,
    path::{Path, PathBuf},
};

/// Private mount point used when no cgroup v2 hierarchy is mounted anywhere.
const PRIVATE_MOUNT: &str = "/run/corral/cgroup2";

#[derive(Debug, thiserror::Error)]
pub enum CgroupError {
    #[error("cannot read {path}: {source}")]
    Mountinfo {
        path: &'static str,
        source: io::Error,
    },
    #[error(
        "no cgroup v2 hierarchy is mounted and mounting one at {PRIVATE_MOUNT} failed: {source}"
    )]
    Mount { source: io::Error },
    #[error("cannot open the cgroup v2 root {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
}

/// The mount point of the cgroup v2 hierarchy, from `/proc/self/mountinfo`.
pub fn find_cgroup2() -> Result<Option<PathBuf>, CgroupError> {
    const MOUNTINFO: &str = "/proc/self/mountinfo";
    let text = fs::read_to_string(MOUNTINFO).map_err(|source| CgroupError::Mountinfo {
        path: MOUNTINFO,
        source,
    })?;
    Ok(parse_mountinfo(&text))
}

fn parse_mountinfo(text: &str) -> Option<PathBuf> {
    text.lines().find_map(|line| {
        // "... mount-point ... - fstype source options"
        let (left, right) = line.split_once(" - ")?;
        let fstype = right.split_whitespace().next()?;
        let mount_point = left.split_whitespace().nth(4)?;
        (fstype == "cgroup2").then(|| PathBuf::from(mount_point))
    })
}

/// The cgroup v2 root, mounting the hierarchy privately if the host has not mounted it (the
/// hierarchy is the same wherever it is mounted; nothing else on the host changes).
pub fn cgroup2_root() -> Result<PathBuf, CgroupError> {
    if let Some(found) = find_cgroup2()? {
        return Ok(found);
    }
    fs::create_dir_all(PRIVATE_MOUNT).map_err(|source| CgroupError::Mount { source })?;
    let (Ok(fstype), Ok(target)) = (CString::new("cgroup2"), CString::new(PRIVATE_MOUNT)) else {
        return Err(CgroupError::Mount {
            source: io::Error::other("invalid mount arguments"),
        });
    };
    // SAFETY: valid NUL-terminated strings.
    let rc = unsafe {
        libc::mount(
            fstype.as_ptr(),
            target.as_ptr(),
            fstype.as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc != 0 {
        return Err(CgroupError::Mount {
            source: io::Error::last_os_error(),
        });
    }
    Ok(PathBuf::from(PRIVATE_MOUNT))
}

/// Opens a cgroup directory for attaching programs.
pub fn open(path: &Path) -> Result<fs::File, CgroupError> {
    fs::File::open(path).map_err(|source| CgroupError::Open {
        path: path.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn finds_the_cgroup2_mount_in_a_hybrid_layout() {
        let text = "\
25 30 0:23 / /sys rw,nosuid shared:7 - sysfs sysfs rw
33 25 0:28 / /sys/fs/cgroup ro,nosuid shared:9 - tmpfs tmpfs ro,mode=755
34 33 0:29 / /sys/fs/cgroup/unified rw,nosuid shared:10 - cgroup2 cgroup2 rw,nsdelegate
35 33 0:30 / /sys/fs/cgroup/systemd rw,nosuid shared:11 - cgroup cgroup rw,name=systemd
";
        assert_eq!(
            parse_mountinfo(text),
            Some(PathBuf::from("/sys/fs/cgroup/unified"))
        );
    }

    #[test]
    fn no_cgroup2_mount_is_none() {
        let text = "35 33 0:30 / /sys/fs/cgroup/systemd rw - cgroup cgroup rw,name=systemd\n";
        assert_eq!(parse_mountinfo(text), None);
    }
}
