//! The identities (device and inode) of the files a task's `files.deny` rules cover, for
//! `DENIED_INODES`: the kernel denies a file reached through a hard link by what it is, not only
//! by the path it was opened by.
//!
//! An exact rule covers the file it names; a directory rule every non-directory beneath it.
//! Symlinks are never followed (a rule matches the path the kernel resolved, so a symlink's
//! target is judged by its own path); mount points beneath a rule are walked into, as the path
//! rule covers them too. The walk is bounded: a rule set that meets more entries than
//! `DENIED_INODES_MAX` is refused with the rule named, never cut short. Directories are opened
//! relative to their parent's descriptor, so a tree deeper than `PATH_MAX` is walked to the end
//! (down to `MAX_OPEN_LEVELS` directories).

use std::{
    collections::BTreeSet,
    ffi::{CStr, OsStr},
    fs, io,
    os::fd::OwnedFd,
    os::unix::{ffi::OsStrExt as _, fs::MetadataExt as _},
    path::{Path, PathBuf},
};

use rustix::fs::{self as rfs, AtFlags, Dir, FileType, Mode, OFlags};

use agent_common::{DENIED_INODES_MAX, DeniedInodeKey, kernel_dev};

use super::CompileError;
use crate::policy::TaskPolicy;

/// What the walk of one rule set found.
#[derive(Debug, Default)]
pub struct DeniedIdentities {
    /// One key per file, sorted, without duplicates.
    pub keys: Vec<DeniedInodeKey>,
    /// Entries that could not be read (a directory not listable, a file not `lstat`-able), with
    /// the error: the files beneath them are judged by their paths only. Paths that do not exist
    /// are not listed (there is nothing to link to).
    pub unreadable: Vec<(PathBuf, io::Error)>,
}

/// Walks every `files.deny` rule of `policy` and returns the identities keyed by `rules_id`.
/// Entries met (files and directories) count against `DENIED_INODES_MAX`.
pub fn deny_identities(
    rules_id: u32,
    policy: &TaskPolicy,
) -> Result<DeniedIdentities, CompileError> {
    deny_identities_bounded(rules_id, policy, DENIED_INODES_MAX as usize)
}

/// As `deny_identities`, with the bound on entries met given.
pub fn deny_identities_bounded(
    rules_id: u32,
    policy: &TaskPolicy,
    bound: usize,
) -> Result<DeniedIdentities, CompileError> {
    let mut keys = BTreeSet::new();
    let mut unreadable = Vec::new();
    let mut met = 0usize;
    for rule in &policy.deny {
        let text = rule.as_str();
        let root = if rule.is_prefix() && text.len() > 1 {
            Path::new(&text[..text.len() - 1])
        } else {
            Path::new(text)
        };
        let too_many = || CompileError::TooManyDeniedFiles {
            task: policy.name.to_string(),
            rule: text.to_owned(),
            bound,
        };
        let meta = match fs::symlink_metadata(root) {
            Ok(m) => m,
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => {
                unreadable.push((root.to_owned(), e));
                continue;
            }
        };
        if meta.file_type().is_symlink() {
            continue;
        }
        if !meta.is_dir() {
            // An exact rule on a file (a directory rule only covers what is beneath its path).
            if !rule.is_prefix() {
                met += 1;
                if met > bound {
                    return Err(too_many());
                }
                keys.insert(key_of(rules_id, &meta));
            }
            continue;
        }
        if !rule.is_prefix() {
            // An exact rule on a directory: directories have no hard links.
            continue;
        }
        let mut found = Found {
            rules_id,
            keys: &mut keys,
            unreadable: &mut unreadable,
            met: &mut met,
            bound,
        };
        if found.walk_beneath(root, meta.dev()).is_err() {
            return Err(too_many());
        }
    }
    Ok(DeniedIdentities {
        keys: keys.into_iter().collect(),
        unreadable,
    })
}

/// Too many entries met: the caller names the rule.
struct PastBound;

/// Where one rule set's walk puts what it meets.
struct Found<'a> {
    rules_id: u32,
    keys: &'a mut BTreeSet<DeniedInodeKey>,
    unreadable: &'a mut Vec<(PathBuf, io::Error)>,
    /// Entries met so far, against `bound`.
    met: &'a mut usize,
    bound: usize,
}

/// One directory being listed, and the path it was reached by (for the log only).
struct Level {
    dir: Dir,
    path: PathBuf,
    dev: u64,
}

/// Directories open at once at most (one per level of the walk): a deeper tree is reported
/// unreadable below that depth rather than running out of file descriptors.
const MAX_OPEN_LEVELS: usize = 256;

impl Found<'_> {
    /// Every non-directory beneath the directory `root` (on device `dev`), depth first. Each
    /// directory is opened relative to its parent's descriptor (`openat`, `O_NOFOLLOW`) and its
    /// entries examined relative to its own (`fstatat`, no symlink followed): no full path is
    /// handed to the kernel, so files deeper than `PATH_MAX` are reached (a walk by path stops
    /// there with `ENAMETOOLONG`). A root on a file system that refuses `link(2)` is not walked,
    /// as a mount point beneath it would not be: both are tested on the opened directory.
    fn walk_beneath(&mut self, root: &Path, dev: u64) -> Result<(), PastBound> {
        let opened = match rfs::open(root, dir_flags(), Mode::empty()) {
            Ok(fd) if !fd_links_possible(&fd) => return Ok(()),
            Ok(fd) => Dir::new(fd),
            Err(e) => Err(e),
        };
        let mut stack = match opened {
            Ok(dir) => vec![Level {
                dir,
                path: root.to_owned(),
                dev,
            }],
            Err(e) => {
                self.unreadable.push((root.to_owned(), e.into()));
                return Ok(());
            }
        };
        loop {
            let depth = stack.len();
            let Some(level) = stack.last_mut() else {
                break;
            };
            let entry = match level.dir.read() {
                None => {
                    stack.pop();
                    continue;
                }
                Some(Ok(entry)) => entry,
                Some(Err(e)) => {
                    self.unreadable.push((level.path.clone(), e.into()));
                    stack.pop();
                    continue;
                }
            };
            let name = entry.file_name();
            if name == c"." || name == c".." {
                continue;
            }
            *self.met += 1;
            if *self.met > self.bound {
                return Err(PastBound);
            }
            let path = level.path.join(OsStr::from_bytes(name.to_bytes()));
            let Some(below) = self.examine(level, name, path, depth) else {
                continue;
            };
            stack.push(below);
        }
        Ok(())
    }

    /// Records the entry `name` of `level` if it is a file; returns it opened if it is a
    /// directory the walk enters.
    fn examine(
        &mut self,
        level: &Level,
        name: &CStr,
        path: PathBuf,
        depth: usize,
    ) -> Option<Level> {
        let parent = match level.dir.fd() {
            Ok(fd) => fd,
            Err(e) => {
                self.unreadable.push((path, e.into()));
                return None;
            }
        };
        let st = match rfs::statat(parent, name, AtFlags::SYMLINK_NOFOLLOW) {
            Ok(st) => st,
            // Removed since it was listed.
            Err(rustix::io::Errno::NOENT) => return None,
            Err(e) => {
                self.unreadable.push((path, e.into()));
                return None;
            }
        };
        match FileType::from_raw_mode(st.st_mode) {
            FileType::Symlink => None,
            FileType::Directory => {
                if depth >= MAX_OPEN_LEVELS {
                    self.unreadable.push((
                        path,
                        io::Error::other(format!("deeper than {MAX_OPEN_LEVELS} directories")),
                    ));
                    return None;
                }
                let dir = match rfs::openat(parent, name, dir_flags(), Mode::empty()) {
                    Ok(fd) => fd,
                    Err(e) => {
                        self.unreadable.push((path, e.into()));
                        return None;
                    }
                };
                // A mount point: entered only if its file system can hold hard links.
                if st.st_dev != level.dev && !fd_links_possible(&dir) {
                    return None;
                }
                match Dir::new(dir) {
                    Ok(dir) => Some(Level {
                        dir,
                        path,
                        dev: st.st_dev,
                    }),
                    Err(e) => {
                        self.unreadable.push((path, e.into()));
                        None
                    }
                }
            }
            _ => {
                self.keys.insert(DeniedInodeKey {
                    rules_id: self.rules_id,
                    dev: kernel_dev(st.st_dev),
                    ino: st.st_ino,
                });
                None
            }
        }
    }
}

/// How the walk opens a directory: for listing, never through a symlink.
fn dir_flags() -> OFlags {
    OFlags::RDONLY | OFlags::DIRECTORY | OFlags::NOFOLLOW | OFlags::CLOEXEC
}

/// Whether the file system holding the open directory `dir` can hold hard links. When `fstatfs`
/// fails the answer is yes: the walk is then what decides.
fn fd_links_possible(dir: &OwnedFd) -> bool {
    match rfs::fstatfs(dir) {
        Ok(st) => !LINKLESS_FS_MAGICS.contains(&st.f_type),
        Err(_) => true,
    }
}

/// `statfs` magic numbers of the file systems whose directories refuse `link(2)` (no `link`
/// inode operation): proc, sysfs, cgroup v1 and v2, devpts, securityfs, debugfs, tracefs,
/// configfs, pstore, efivarfs. Nothing in them can be reached by a second name, so the walk does
/// not enter them (`/proc` alone holds hundreds of thousands of entries).
const LINKLESS_FS_MAGICS: [i64; 11] = [
    0x9fa0,
    0x6265_6572,
    0x0027_e0eb,
    0x6367_7270,
    0x1cd1,
    0x7363_6673,
    0x6462_6720,
    0x7472_6163,
    0x6265_6570,
    0x6165_676c,
    0xde5e_81e4,
];

/// The kernel's identity of the file `meta` describes, under `rules_id`.
fn key_of(rules_id: u32, meta: &fs::Metadata) -> DeniedInodeKey {
    DeniedInodeKey {
        rules_id,
        dev: kernel_dev(meta.dev()),
        ino: meta.ino(),
    }
}

/// The keys of `new` not in `old`, then those of `old` not in `new` (both sorted): what a
/// re-walk writes before and deletes after.
#[must_use]
pub fn identity_diff(
    old: &[DeniedInodeKey],
    new: &[DeniedInodeKey],
) -> (Vec<DeniedInodeKey>, Vec<DeniedInodeKey>) {
    let old_set: BTreeSet<_> = old.iter().collect();
    let new_set: BTreeSet<_> = new.iter().collect();
    (
        new.iter()
            .filter(|k| !old_set.contains(k))
            .copied()
            .collect(),
        old.iter()
            .filter(|k| !new_set.contains(k))
            .copied()
            .collect(),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compile::tests::policy;

    struct TempTree(PathBuf);

    impl TempTree {
        fn new(tag: &str) -> Self {
            let dir =
                std::env::temp_dir().join(format!("corral-ident-{tag}-{}", std::process::id()));
            let _ = fs::remove_dir_all(&dir);
            fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("expected {}: {e}", dir.display()));
            Self(dir)
        }
        fn file(&self, rel: &str) -> PathBuf {
            let p = self.0.join(rel);
            if let Some(parent) = p.parent() {
                fs::create_dir_all(parent).unwrap_or_else(|e| panic!("expected a dir: {e}"));
            }
            fs::write(&p, b"x").unwrap_or_else(|e| panic!("expected {}: {e}", p.display()));
            p
        }
    }

    impl Drop for TempTree {
        fn drop(&mut self) {
            let _ = fs::remove_dir_all(&self.0);
        }
    }

    fn key(rules_id: u32, path: &Path) -> DeniedInodeKey {
        let meta =
            fs::metadata(path).unwrap_or_else(|e| panic!("expected {}: {e}", path.display()));
        key_of(rules_id, &meta)
    }

    fn deny_policy(rules: &[String]) -> TaskPolicy {
        let mut list = String::new();
        for r in rules {
            list.push_str("      - ");
            list.push_str(r);
            list.push('\n');
        }
        policy(&format!("  files:\n    deny:\n{list}"))
    }

    #[test]
    fn exact_and_directory_rules_cover_their_files_and_not_symlink_targets() {
        let tree = TempTree::new("walk");
        let secret = tree.file("secret");
        let inside = tree.file("denied/a/b");
        let outside = tree.file("elsewhere/target");
        std::os::unix::fs::symlink(&outside, tree.0.join("denied/link"))
            .unwrap_or_else(|e| panic!("expected a symlink: {e}"));
        std::os::unix::fs::symlink(tree.0.join("elsewhere"), tree.0.join("denied/dirlink"))
            .unwrap_or_else(|e| panic!("expected a symlink: {e}"));
        let found = deny_identities(
            9,
            &deny_policy(&[
                secret.display().to_string(),
                format!("{}/", tree.0.join("denied").display()),
                format!("{}/missing", tree.0.display()),
            ]),
        )
        .unwrap_or_else(|e| panic!("expected the walk to succeed: {e}"));
        let mut want = vec![key(9, &secret), key(9, &inside)];
        want.sort();
        assert_eq!(
            found.keys, want,
            "expected the exact file and the file beneath the directory, not the symlinks' targets"
        );
        assert!(
            found.unreadable.is_empty(),
            "expected nothing unreadable: {:?}",
            found.unreadable
        );
    }

    #[test]
    fn files_deeper_than_path_max_are_found() {
        let tree = TempTree::new("deep");
        let top = tree.0.join("denied");
        fs::create_dir_all(&top).unwrap_or_else(|e| panic!("expected {}: {e}", top.display()));
        // 24 levels of 250-byte names: about 6 000 bytes of path, past PATH_MAX (4096), made
        // relative to each parent (a full path that long is refused by the kernel).
        let name = "d".repeat(250);
        let mut dir = rfs::open(&top, dir_flags(), Mode::empty())
            .unwrap_or_else(|e| panic!("expected to open {}: {e}", top.display()));
        for _ in 0..24 {
            rfs::mkdirat(&dir, name.as_str(), Mode::RWXU)
                .unwrap_or_else(|e| panic!("expected mkdirat: {e}"));
            dir = rfs::openat(&dir, name.as_str(), dir_flags(), Mode::empty())
                .unwrap_or_else(|e| panic!("expected openat: {e}"));
        }
        let file = rfs::openat(
            &dir,
            "secret",
            OFlags::CREATE | OFlags::WRONLY | OFlags::CLOEXEC,
            Mode::RUSR | Mode::WUSR,
        )
        .unwrap_or_else(|e| panic!("expected the deep file: {e}"));
        let st = rfs::fstat(&file).unwrap_or_else(|e| panic!("expected fstat: {e}"));
        let found = deny_identities(3, &deny_policy(&[format!("{}/", top.display())]))
            .unwrap_or_else(|e| panic!("expected the walk to succeed: {e}"));
        assert_eq!(
            found.keys,
            vec![DeniedInodeKey {
                rules_id: 3,
                dev: kernel_dev(st.st_dev),
                ino: st.st_ino,
            }],
            "expected the file 6 000 bytes deep beneath the rule"
        );
        assert!(
            found.unreadable.is_empty(),
            "expected nothing unreadable (no ENAMETOOLONG): {:?}",
            found.unreadable
        );
    }

    #[test]
    fn a_walk_past_the_bound_is_refused_naming_the_rule() {
        let tree = TempTree::new("bound");
        for i in 0..5 {
            tree.file(&format!("d/f{i}"));
        }
        let rule = format!("{}/", tree.0.join("d").display());
        let p = deny_policy(std::slice::from_ref(&rule));
        let err = deny_identities_bounded(1, &p, 4).expect_err("expected 5 files to exceed 4");
        assert!(
            err.to_string().contains(&rule),
            "expected the error to name the rule {rule}: {err}"
        );
        let ok = deny_identities_bounded(1, &p, 5)
            .unwrap_or_else(|e| panic!("expected 5 files to fit a bound of 5: {e}"));
        assert_eq!(ok.keys.len(), 5, "expected every file, none cut");
    }

    #[test]
    fn trees_of_file_systems_without_hard_links_are_not_walked() {
        // /proc holds far more than 16 entries; walking it would exceed the bound.
        let p = deny_policy(&["/proc/".to_owned(), "/sys/".to_owned()]);
        let found = deny_identities_bounded(1, &p, 16)
            .unwrap_or_else(|e| panic!("expected /proc/ and /sys/ not walked: {e}"));
        assert!(
            found.keys.is_empty(),
            "expected no identities from proc and sysfs, got {}",
            found.keys.len()
        );
        let opened = |dir: &Path| {
            rfs::open(dir, dir_flags(), Mode::empty())
                .unwrap_or_else(|e| panic!("expected to open {}: {e}", dir.display()))
        };
        assert!(
            fd_links_possible(&opened(&std::env::temp_dir())),
            "expected the temp dir to allow links"
        );
        assert!(
            !fd_links_possible(&opened(Path::new("/proc"))),
            "expected proc to refuse links"
        );
    }

    #[test]
    fn hard_links_share_one_identity() {
        let tree = TempTree::new("links");
        let secret = tree.file("d/secret");
        let link = tree.0.join("link");
        fs::hard_link(&secret, &link).unwrap_or_else(|e| panic!("expected a hard link: {e}"));
        assert_eq!(
            key(3, &secret),
            key(3, &link),
            "a hard link is the same file"
        );
    }

    #[test]
    fn the_diff_writes_new_keys_and_deletes_departed_ones() {
        let k = |ino| DeniedInodeKey {
            rules_id: 1,
            dev: 8 << 20,
            ino,
        };
        let (write, delete) = identity_diff(&[k(1), k(2)], &[k(2), k(3)]);
        assert_eq!((write, delete), (vec![k(3)], vec![k(1)]));
    }

    #[test]
    fn st_dev_converts_to_the_kernel_encoding_mountinfo_shows() {
        // /proc/self/mountinfo prints MAJOR:MINOR of `sb->s_dev`; stat's st_dev of a mount
        // point must convert to the same value (`/` is a block device here: a non-zero major).
        let info = fs::read_to_string("/proc/self/mountinfo")
            .unwrap_or_else(|e| panic!("expected mountinfo: {e}"));
        for mount in ["/", "/proc"] {
            let meta = fs::metadata(mount).unwrap_or_else(|e| panic!("expected {mount}: {e}"));
            // The last line for a mount point is the one on top.
            let line = info
                .lines()
                .rfind(|l| l.split(' ').nth(4) == Some(mount))
                .unwrap_or_else(|| panic!("expected {mount} in mountinfo:\n{info}"));
            let majmin = line.split(' ').nth(2).unwrap_or_default();
            let (major, minor) = majmin
                .split_once(':')
                .and_then(|(a, b)| Some((a.parse::<u32>().ok()?, b.parse::<u32>().ok()?)))
                .unwrap_or_else(|| panic!("expected major:minor in {line}"));
            assert_eq!(
                kernel_dev(meta.dev()),
                (major << 20) | minor,
                "expected {mount}'s st_dev {:#x} to become {majmin} in the kernel's encoding",
                meta.dev()
            );
        }
        let glibc = libc::makedev(0x103, 0x12c);
        assert_eq!(
            kernel_dev(glibc),
            (0x103 << 20) | 0x12c,
            "expected a minor above 255 to keep its high bits"
        );
    }
}
