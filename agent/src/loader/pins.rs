//! What outlives the daemon: its maps and program links, pinned under bpffs. A daemon that is
//! stopped, killed or crashes leaves enforcement running with the last policy; the next one
//! adopts the maps (tags, rules, queued events, counters) and swaps the links without a gap:
//! its programs are attached before the old ones are detached. `corral unload` removes it all.

use std::{
    fs, io,
    mem::size_of,
    path::{Path, PathBuf},
};

use agent_common::{
    CGROUP_SELECTORS_MAX, CONNECT_SEEN_MAX, COUNTER_SLOTS, CgroupPathData, ConnectSeen,
    EVENTS_RING_BYTES, EXEC_SELECTORS_MAX, EXES_MAX, ExePath, FILE_RULES_MAX, FileRuleData,
    INSTANCES_MAX, InodeKey, InstanceInfo, NET_RULES_MAX, NetV4Data, NetV6Data, PRIVILEGES_MAX,
    PortSet, TAGS_MAX, TASKS_MAX, TaskConfig, TaskTag, UNIX_RULES_MAX, UnixRuleKey, names,
};
use agent_common::{
    DENIED_INODES_MAX, DNS_LEARN_MAX, DNS_ORIGINS_MAX, DNS_PROXY_MAX, DeniedInodeKey, DnsOrigin,
    DnsProxy,
};
use agent_common::{SETTINGS_MAX, Settings};
use aya::{
    maps::MapInfo,
    programs::links::{FdLink, PinnedLink},
};

/// Default pin directory.
pub const DEFAULT_PIN_DIR: &str = "/sys/fs/bpf/corral";
/// `BPF_FS_MAGIC`: the file system type of bpffs.
const BPF_FS_MAGIC: i64 = 0xcafe_4a11;

#[derive(Debug, thiserror::Error)]
pub enum PinError {
    #[error(
        "{} is not on a BPF file system (mount it: `mount -t bpf bpf /sys/fs/bpf`, or pass --pin-dir on bpffs)",
        dir.display()
    )]
    NotBpffs { dir: PathBuf },
    #[error("pin directory {}: {source}", dir.display())]
    Dir { dir: PathBuf, source: io::Error },
    #[error(
        "pinned map {} was made by an incompatible Corral ({what}: pinned {pinned}, this build {expected}); run `corral unload` to remove the old state (confined processes are released), then start again",
        path.display()
    )]
    Incompatible {
        path: PathBuf,
        what: &'static str,
        pinned: u32,
        expected: u32,
    },
    #[error("pinned map {}: {source}", path.display())]
    Map {
        path: PathBuf,
        source: aya::maps::MapError,
    },
    #[error("pinned link {}: {reason}", path.display())]
    Link { path: PathBuf, reason: String },
}

/// A map that is pinned, with the shape this build expects: `(name, key size, value size, max
/// entries)`. Per-CPU scratch maps are not pinned: each generation of programs keeps its own.
const PINNED_MAPS: [(&str, usize, usize, u32); 19] = [
    (names::TAGS, 4, size_of::<TaskTag>(), TAGS_MAX),
    (names::TASKS, 4, size_of::<TaskConfig>(), TASKS_MAX),
    (
        names::INSTANCES,
        4,
        size_of::<InstanceInfo>(),
        INSTANCES_MAX,
    ),
    (
        names::FILE_RULES,
        4 + size_of::<FileRuleData>(),
        4,
        FILE_RULES_MAX,
    ),
    (
        names::NET_V4_RULES,
        4 + size_of::<NetV4Data>(),
        size_of::<PortSet>(),
        NET_RULES_MAX,
    ),
    (
        names::NET_V6_RULES,
        4 + size_of::<NetV6Data>(),
        size_of::<PortSet>(),
        NET_RULES_MAX,
    ),
    (
        names::UNIX_RULES,
        size_of::<UnixRuleKey>(),
        4,
        UNIX_RULES_MAX,
    ),
    (names::PRIVILEGES, 4, 4, PRIVILEGES_MAX),
    (names::EVENTS, 0, 0, EVENTS_RING_BYTES),
    (names::COUNTERS, 4, 8, COUNTER_SLOTS),
    (
        names::CONNECT_SEEN,
        4,
        size_of::<ConnectSeen>(),
        CONNECT_SEEN_MAX,
    ),
    (names::EXES, 4, size_of::<ExePath>(), EXES_MAX),
    (
        names::EXEC_SELECTORS,
        size_of::<InodeKey>(),
        4,
        EXEC_SELECTORS_MAX,
    ),
    (
        names::CGROUP_SELECTORS,
        4 + size_of::<CgroupPathData>(),
        4,
        CGROUP_SELECTORS_MAX,
    ),
    (names::SETTINGS, 4, size_of::<Settings>(), SETTINGS_MAX),
    (
        names::DENIED_INODES,
        size_of::<DeniedInodeKey>(),
        4,
        DENIED_INODES_MAX,
    ),
    (names::DNS_PROXY, 4, size_of::<DnsProxy>(), DNS_PROXY_MAX),
    (names::DNS_LEARN, 4, 4, DNS_LEARN_MAX),
    (
        names::DNS_ORIGINS,
        8,
        size_of::<DnsOrigin>(),
        DNS_ORIGINS_MAX,
    ),
];

/// The layout of a pin directory.
#[derive(Debug, Clone)]
pub struct PinDir {
    dir: PathBuf,
}

impl PinDir {
    #[must_use]
    pub fn new(dir: &Path) -> Self {
        Self {
            dir: dir.to_owned(),
        }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.dir
    }

    fn maps(&self) -> PathBuf {
        self.dir.join("maps")
    }

    fn links(&self) -> PathBuf {
        self.dir.join("links")
    }

    /// Where map `name` is pinned.
    #[must_use]
    pub fn map(&self, name: &str) -> PathBuf {
        self.maps().join(name)
    }

    /// Where the link of program `program` is pinned.
    #[must_use]
    pub fn link(&self, program: &str) -> PathBuf {
        self.links().join(program)
    }

    /// The names of the maps that are pinned (and reused by the next daemon).
    pub fn pinned_maps() -> impl Iterator<Item = &'static str> {
        PINNED_MAPS.iter().map(|(name, ..)| *name)
    }

    /// Creates the directories (on bpffs) and checks that maps pinned by an earlier daemon have
    /// the shape this build expects. Returns whether earlier state was found.
    pub fn prepare(&self) -> Result<bool, PinError> {
        let parent = self.dir.parent().unwrap_or(&self.dir);
        if !(is_bpffs(parent) || parent == Path::new(BPFFS) && mount_bpffs()) {
            return Err(PinError::NotBpffs {
                dir: parent.to_owned(),
            });
        }
        for d in [self.maps(), self.links()] {
            fs::create_dir_all(&d).map_err(|source| PinError::Dir { dir: d, source })?;
        }
        let mut found = false;
        for (name, key, value, max) in PINNED_MAPS {
            let path = self.map(name);
            if !path.exists() {
                continue;
            }
            found = true;
            let info = MapInfo::from_pin(&path).map_err(|source| PinError::Map {
                path: path.clone(),
                source,
            })?;
            for (what, pinned, expected) in [
                ("key size", info.key_size(), key),
                ("value size", info.value_size(), value),
                ("max entries", info.max_entries(), max as usize),
            ] {
                let expected = u32::try_from(expected).unwrap_or(u32::MAX);
                if pinned != expected {
                    return Err(PinError::Incompatible {
                        path,
                        what,
                        pinned,
                        expected,
                    });
                }
            }
        }
        Ok(found)
    }

    /// The links an earlier daemon pinned, unpinned but still attached: dropping them detaches.
    pub fn take_old_links(&self) -> Vec<(String, FdLink)> {
        let Ok(entries) = fs::read_dir(self.links()) else {
            return Vec::new();
        };
        let mut old = Vec::new();
        for entry in entries.flatten() {
            let path = entry.path();
            let name = entry.file_name().to_string_lossy().into_owned();
            match PinnedLink::from_pin(&path).map(PinnedLink::unpin) {
                Ok(Ok(link)) => old.push((name, link)),
                Ok(Err(e)) => {
                    tracing::warn!(link = %path.display(), "cannot unpin an old link: {e}");
                }
                Err(e) => {
                    tracing::warn!(link = %path.display(), "cannot open an old pinned link: {e}");
                }
            }
        }
        old
    }

    /// Pins `link` as the link of `program`.
    pub fn pin_link(&self, program: &str, link: FdLink) -> Result<PinnedLink, PinError> {
        let path = self.link(program);
        let _ = fs::remove_file(&path);
        link.pin(&path).map_err(|e| PinError::Link {
            path,
            reason: e.to_string(),
        })
    }

    /// Detaches every pinned program and removes every pinned map: enforcement stops and every
    /// confined process is released. Returns what was removed.
    pub fn unload(&self) -> Result<Vec<PathBuf>, PinError> {
        let mut removed = Vec::new();
        for (name, link) in self.take_old_links() {
            drop(link);
            removed.push(self.link(&name));
        }
        if let Ok(entries) = fs::read_dir(self.maps()) {
            for entry in entries.flatten() {
                let path = entry.path();
                fs::remove_file(&path).map_err(|source| PinError::Dir {
                    dir: path.clone(),
                    source,
                })?;
                removed.push(path);
            }
        }
        for d in [self.links(), self.maps(), self.dir.clone()] {
            match fs::remove_dir(&d) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::NotFound => {}
                Err(source) => return Err(PinError::Dir { dir: d, source }),
            }
        }
        Ok(removed)
    }
}

/// Where bpffs belongs; the daemon mounts it there if nothing did (as systemd usually does).
const BPFFS: &str = "/sys/fs/bpf";

/// Mounts bpffs on `BPFFS`; true on success.
fn mount_bpffs() -> bool {
    // SAFETY: constant, NUL-terminated strings; no data argument.
    let rc = unsafe {
        libc::mount(
            c"bpf".as_ptr(),
            c"/sys/fs/bpf".as_ptr(),
            c"bpf".as_ptr(),
            0,
            std::ptr::null(),
        )
    };
    if rc == 0 {
        tracing::info!("mounted bpffs on {BPFFS}");
    }
    rc == 0 && is_bpffs(Path::new(BPFFS))
}

/// Whether `path` is on bpffs.
fn is_bpffs(path: &Path) -> bool {
    let Ok(c) = std::ffi::CString::new(path.as_os_str().as_encoded_bytes()) else {
        return false;
    };
    // SAFETY: `statfs` fills the zeroed struct; the path is a valid C string.
    unsafe {
        let mut st: libc::statfs = std::mem::zeroed();
        libc::statfs(c.as_ptr(), &raw mut st) == 0 && st.f_type as i64 == BPF_FS_MAGIC
    }
}
