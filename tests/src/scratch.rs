//! Fresh per-test directories under `/tmp`, removed when dropped.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU32, Ordering};

static NEXT: AtomicU32 = AtomicU32::new(0);

/// A directory of its own for one test (or one daemon); removed with everything in it on drop.
pub struct Scratch {
    path: PathBuf,
}

impl Scratch {
    /// Creates `/tmp/corral-tests-<pid>-<n>-<label>` (mode 0755, so tagged processes of any uid
    /// could reach it), with its canonical path (in case `/tmp` is a symlink).
    #[must_use]
    pub fn new(label: &str) -> Self {
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = PathBuf::from(format!(
            "/tmp/corral-tests-{}-{n}-{label}",
            std::process::id()
        ));
        if path.exists() {
            std::fs::remove_dir_all(&path).unwrap_or_else(|e| {
                panic!(
                    "expected to clear the stale scratch dir {}: {e}",
                    path.display()
                )
            });
        }
        std::fs::create_dir_all(&path)
            .unwrap_or_else(|e| panic!("expected to create scratch dir {}: {e}", path.display()));
        let path = std::fs::canonicalize(&path)
            .unwrap_or_else(|e| panic!("expected to canonicalize {}: {e}", path.display()));
        Self { path }
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// `<scratch>/<rel>` as a string (scratch paths are ASCII).
    #[must_use]
    pub fn join(&self, rel: &str) -> String {
        format!("{}/{rel}", self.path.display())
    }

    /// `<scratch>/<rel>/`: a directory entry for a policy (everything beneath it); `""` gives
    /// the scratch directory itself.
    #[must_use]
    pub fn dir_entry(&self, rel: &str) -> String {
        if rel.is_empty() {
            format!("{}/", self.path.display())
        } else {
            format!("{}/{rel}/", self.path.display())
        }
    }

    /// Creates `<scratch>/<rel>` and its parents; returns its path.
    #[must_use]
    pub fn mkdir(&self, rel: &str) -> String {
        let p = self.join(rel);
        std::fs::create_dir_all(&p).unwrap_or_else(|e| panic!("expected to create dir {p}: {e}"));
        p
    }

    /// Writes `<scratch>/<rel>` (creating parent dirs); returns its path.
    #[must_use]
    pub fn file(&self, rel: &str, contents: &str) -> String {
        let p = self.join(rel);
        if let Some(parent) = Path::new(&p).parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("expected to create dir {}: {e}", parent.display()));
        }
        std::fs::write(&p, contents).unwrap_or_else(|e| panic!("expected to write {p}: {e}"));
        p
    }

    /// Copies `src` to `<scratch>/<rel>` keeping it executable; returns its path.
    #[must_use]
    pub fn copy_exe(&self, src: &Path, rel: &str) -> String {
        let p = self.join(rel);
        if let Some(parent) = Path::new(&p).parent() {
            std::fs::create_dir_all(parent)
                .unwrap_or_else(|e| panic!("expected to create dir {}: {e}", parent.display()));
        }
        std::fs::copy(src, &p)
            .unwrap_or_else(|e| panic!("expected to copy {} to {p}: {e}", src.display()));
        p
    }

    /// Creates the hard link `<scratch>/<rel>` to the file `target` (as this untagged process);
    /// returns the link's path.
    #[must_use]
    pub fn hard_link(&self, target: &str, rel: &str) -> String {
        let p = self.join(rel);
        std::fs::hard_link(target, &p)
            .unwrap_or_else(|e| panic!("expected to create hard link {p} -> {target}: {e}"));
        p
    }

    /// Creates the symlink `<scratch>/<rel>` pointing at `target`; returns the link's path.
    #[must_use]
    pub fn symlink(&self, target: &str, rel: &str) -> String {
        let p = self.join(rel);
        std::os::unix::fs::symlink(target, &p)
            .unwrap_or_else(|e| panic!("expected to create symlink {p} -> {target}: {e}"));
        p
    }
}

impl Drop for Scratch {
    fn drop(&mut self) {
        // std's remove_dir_all walks with openat, so trees deeper than PATH_MAX go too.
        let _ = std::fs::remove_dir_all(&self.path);
    }
}
