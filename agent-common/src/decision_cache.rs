//! The open-decision cache: allowed `file_open` decisions of confined processes, remembered by
//! what made them true, so that re-opening a file does not resolve and look up its path again.
//!
//! A path judgement depends on the rules (`TaskConfig::rules_id`: the `FILE_RULES` entries of a
//! rules id never change while the id is in use: a changed policy gets a new id, and DNS
//! re-resolution changes only network rules), on the access asked, and on the path the kernel
//! renders for the file: `bpf_d_path` of (dentry, mount) from the caller's root. That rendering
//! changes only when
//! - a dentry on the way moves (rename, exchange, a directory alias spliced): the kernel does it
//!   under `rename_lock`, whose sequence count then changes;
//! - the mount tree changes (mount, unmount, move, propagation, a namespace copied or torn down,
//!   a mount freed): under `mount_lock`, whose sequence count then changes;
//! - the caller's root changes (chroot, `pivot_root`, setns): the root is part of the key.
//!
//! `bpf_d_path` itself relies on exactly these two sequence counts to know that the path it built
//! is consistent. An entry therefore records both counts as they were before its path was
//! resolved, and a look-up only hits while both are unchanged, the entry is younger than
//! `DECISION_TTL_NS` (a 32-bit count could otherwise wrap under a flood of renames), and the
//! file's identity (inode, its number and generation) is the same. Only files with one link
//! (`i_nlink == 1`) on file systems whose link count the kernel itself keeps (ext2/3/4, xfs,
//! tmpfs: `DECISION_CACHE_MAGICS`) are remembered: such a file has exactly one name, so the same
//! (dentry, inode) cannot stand for a different path. Hard-linked files, FUSE, network and
//! stacked file systems are always judged in full.

/// Bound of `OPEN_DECISIONS` (an LRU hash: the least recently used decision leaves first).
pub const OPEN_DECISIONS_MAX: u32 = 8192;

/// How long a remembered decision may be used, in nanoseconds of boot time.
pub const DECISION_TTL_NS: u64 = 1_000_000_000;

/// `super_block::s_magic` of the file systems whose decisions may be remembered: ext2/3/4
/// (`EXT4_SUPER_MAGIC`), xfs (`XFS_SUPER_MAGIC`), tmpfs and devtmpfs (`TMPFS_MAGIC`).
pub const DECISION_CACHE_MAGICS: [u64; 3] = [0xef53, 0x5846_5342, 0x0102_1994];

/// Key of `OPEN_DECISIONS`: everything an allowed open decision depends on. Pointers are kernel
/// addresses, compared only (never dereferenced from the map).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenDecisionKey {
    /// `TaskConfig::rules_id` of the caller's task.
    pub rules_id: u32,
    /// `Access` bits of the open.
    pub access: u32,
    /// `file->f_path.dentry`.
    pub dentry: u64,
    /// `file->f_path.mnt`.
    pub mnt: u64,
    /// `file->f_inode`.
    pub inode: u64,
    /// `inode->i_ino`.
    pub ino: u64,
    /// `current->fs->root.dentry`.
    pub root_dentry: u64,
    /// `current->fs->root.mnt`.
    pub root_mnt: u64,
    /// `inode->i_generation`.
    pub generation: u32,
    /// Explicit padding, always 0.
    pub reserved: u32,
}

/// Value of `OPEN_DECISIONS`: when the decision was made. The decision itself is "allowed"
/// (misses are never remembered: their events need the path).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct OpenDecisionStamp {
    /// `rename_lock`'s sequence count, read before the path was resolved (even).
    pub rename_seq: u32,
    /// `mount_lock`'s sequence count, read before the path was resolved (even).
    pub mount_seq: u32,
    /// Boot time after which the decision may no longer be used.
    pub expires_ns: u64,
}

/// Where the kernel's `rename_lock` and `mount_lock` (`seqlock_t`, whose first word is the
/// sequence count) are, from `/proc/kallsyms`; written by the daemon into the object's read-only
/// `DECISION_CACHE` global before load. Either address 0: the cache is off (every open is
/// judged in full).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DecisionCacheConfig {
    /// Address of `rename_lock`.
    pub rename_lock: u64,
    /// Address of `mount_lock`.
    pub mount_lock: u64,
}

const _: () = assert!(core::mem::size_of::<OpenDecisionKey>() == 64);
const _: () = assert!(core::mem::size_of::<OpenDecisionStamp>() == 16);
const _: () = assert!(core::mem::size_of::<DecisionCacheConfig>() == 16);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]`, `Copy`, integers only, no implicit padding (sizes asserted above).
    unsafe impl aya::Pod for super::OpenDecisionKey {}
    unsafe impl aya::Pod for super::OpenDecisionStamp {}
    unsafe impl aya::Pod for super::DecisionCacheConfig {}
}
