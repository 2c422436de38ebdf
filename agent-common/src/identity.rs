//! Identity rules: the files a task's `files.deny` covers, by device and inode, so a hard link
//! made elsewhere (by a process Corral does not confine) cannot reach a denied file through a
//! path the task may open.

/// Key of `DENIED_INODES`: one file a `files.deny` rule of a rule set covers, by identity.
///
/// The daemon walks each deny rule when it loads a rule set (an exact rule: that file; a
/// directory rule: every non-directory beneath it, symlinks not followed) and writes one key per
/// file under the rule set's `rules_id`, before the task is switched to it; the keys are deleted
/// with the rest of a retired rule set. Files created beneath a deny rule after the walk are not
/// in the map until the next walk (a policy reload): their paths are still denied, but a hard
/// link to such a file is judged by the link's path only.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct DeniedInodeKey {
    /// `TaskConfig::rules_id` of the rule set whose deny rule covers the file.
    pub rules_id: u32,
    /// `super_block::s_dev` of the file's file system, in the kernel's own `dev_t` encoding
    /// (`major << 20 | minor`, not the `stat` `st_dev` encoding; see `kernel_dev`).
    pub dev: u32,
    /// `inode::i_ino`.
    pub ino: u64,
}

/// Value of `DENIED_INODES`: the file is denied (open, exec and executable mapping) whatever
/// path reaches it. Any value other than 0 denies; the daemon writes 1.
pub const IDENTITY_DENIED: u32 = 1;

/// Bound of `DENIED_INODES`: identities of all rule sets together (a reload keeps the old and the
/// new rule set of a task at once). A policy set whose walk needs more is refused at load, with
/// the deny rule named; nothing is silently left out.
///
/// Fail closed or open: the look-up only runs once the path of a file with more than one link
/// was allowed; a missing key allows (the path decision stands). A tagged process whose caller
/// state already denies everything never reaches it.
pub const DENIED_INODES_MAX: u32 = 131_072;

/// The kernel's `dev_t` encoding of a device number `stat` reported (`st_dev`, glibc's
/// `makedev` layout: the `new_encode_dev` of the kernel's value): `major << 20 | minor`, as
/// `super_block::s_dev` holds it. Majors above 12 bits and minors above 20 bits cannot be in the
/// kernel's `dev_t` and are cut like the kernel's `MKDEV` would.
#[must_use]
pub const fn kernel_dev(st_dev: u64) -> u32 {
    // glibc `gnu_dev_major` / `gnu_dev_minor`.
    let major = ((st_dev >> 8) & 0xfff) | ((st_dev >> 32) & !0xfff);
    let minor = (st_dev & 0xff) | ((st_dev >> 12) & !0xff);
    (((major & 0xfff) << 20) | (minor & 0xf_ffff)) as u32
}

const _: () = assert!(core::mem::size_of::<DeniedInodeKey>() == 16);
// 8:1 (sda1): stat 0x801. 259:300 (an NVMe partition, minor above 255): stat 0x11_032c.
const _: () = assert!(kernel_dev(0x801) == (8 << 20 | 1));
const _: () = assert!(kernel_dev(0x0011_032c) == (0x103 << 20 | 0x12c));

#[cfg(feature = "user")]
// SAFETY: `#[repr(C)]`, `Copy`, integers only, no implicit padding (size asserted above).
unsafe impl aya::Pod for DeniedInodeKey {}
