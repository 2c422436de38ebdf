//! Selector entries: what the kernel matches to let a process join a task.

use std::{io, os::unix::fs::MetadataExt, path::Path};

use agent_common::{CGROUP_PATH_MAX, CgroupPathData, InodeKey};

use crate::policy::CgroupPath;

/// A `CGROUP_SELECTORS` entry: LPM key (`prefix_len` in bits over the path bytes) and task id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupEntry {
    pub prefix_len: u32,
    pub data: CgroupPathData,
    pub task_id: u32,
}

/// The two entries of a cgroup selector: the cgroup itself (its path and NUL) and every cgroup
/// below it (its path and `/`), so `/a/b` selects `/a/b` and `/a/b/c` but not `/a/bc`.
#[must_use]
pub fn cgroup_entries(task_id: u32, cgroup: &CgroupPath) -> [CgroupEntry; 2] {
    let entry = |terminator: u8| {
        let bytes = cgroup.as_str().as_bytes();
        let mut data = CgroupPathData {
            path: [0; CGROUP_PATH_MAX],
        };
        // Policy validation keeps selectors at most `CGROUP_PATH_MAX - 2` bytes long.
        let n = bytes.len().min(CGROUP_PATH_MAX - 1);
        data.path[..n].copy_from_slice(&bytes[..n]);
        data.path[n] = terminator;
        CgroupEntry {
            prefix_len: u32::try_from((n + 1) * 8).unwrap_or(u32::MAX),
            data,
            task_id,
        }
    };
    [entry(0), entry(b'/')]
}

/// The kernel's identity of the file at `path` (symlinks followed): its inode number and its
/// device in the kernel's own `dev_t` encoding (`major << 20 | minor`), as `sched_process_exec`
/// reads them from the executed file.
pub fn executable_key(path: &Path) -> io::Result<InodeKey> {
    let meta = std::fs::metadata(path)?;
    if !meta.is_file() {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            "not a regular file",
        ));
    }
    let dev = meta.dev();
    let (major, minor) = (libc::major(dev), libc::minor(dev));
    Ok(InodeKey {
        ino: meta.ino(),
        dev: (major << 20) | (minor & 0xf_ffff),
        reserved: 0,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cgroup(text: &str) -> CgroupPath {
        let yaml = format!("{text:?}");
        serde_yaml_ng::from_str(&yaml).unwrap_or_else(|e| panic!("expected {text} to parse: {e}"))
    }

    #[test]
    fn a_cgroup_selector_covers_itself_and_below_only() {
        let [exact, below] = cgroup_entries(7, &cgroup("/system.slice/a.service"));
        assert_eq!(&exact.data.path[..24], b"/system.slice/a.service\0");
        assert_eq!(exact.prefix_len, 24 * 8, "exact entry ends at the NUL");
        assert_eq!(&below.data.path[..24], b"/system.slice/a.service/");
        assert_eq!(below.prefix_len, 24 * 8, "below entry ends at the '/'");
        assert_eq!((exact.task_id, below.task_id), (7, 7));
    }

    #[test]
    fn executable_identity_follows_symlinks_and_uses_the_kernel_dev_encoding() {
        let dir = std::env::temp_dir().join(format!("corral-sel-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let file = dir.join("agent");
        std::fs::write(&file, b"#!/bin/sh\n").expect("write file");
        let link = dir.join("link");
        let _ = std::fs::remove_file(&link);
        std::os::unix::fs::symlink(&file, &link).expect("symlink");
        let a = executable_key(&file).expect("key of the file");
        let b = executable_key(&link).expect("key through the symlink");
        assert_eq!(a, b, "a symlink names the same file");
        let meta = std::fs::metadata(&file).expect("metadata");
        assert_eq!(a.ino, meta.ino());
        assert_eq!(
            a.dev >> 20,
            libc::major(meta.dev()),
            "major in the top 12 bits"
        );
        assert!(
            executable_key(&dir).is_err(),
            "a directory is not an executable"
        );
        std::fs::remove_dir_all(&dir).expect("cleanup");
    }
}
