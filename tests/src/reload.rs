//! Rewriting policy files the ways operators do: an editor's rename-into-place, and a Kubernetes
//! `ConfigMap` volume's `..data` symlink swap.

use std::path::Path;
use std::time::Duration;

/// Writes `text` to `dir/name` by writing a hidden temporary file and renaming it over the old
/// one (what editors and config management do): readers see the old file or the new, whole.
pub fn replace_file(dir: &Path, name: &str, text: &str) {
    let tmp = dir.join(format!(".{name}.tmp"));
    std::fs::write(&tmp, text)
        .unwrap_or_else(|e| panic!("expected to write {}: {e}", tmp.display()));
    std::fs::rename(&tmp, dir.join(name))
        .unwrap_or_else(|e| panic!("expected to rename {} into place: {e}", tmp.display()));
}

/// Rewrites `dir/name` `count` times, alternating `versions[0]` and `versions[1]`, `every` apart.
pub fn churn(dir: &Path, name: &str, versions: [&str; 2], count: usize, every: Duration) {
    for i in 0..count {
        replace_file(dir, name, versions[i % 2]);
        std::thread::sleep(every);
    }
}

/// A directory laid out like a mounted `ConfigMap`: `..<version>/` holds the files, `..data` points
/// at the current version, and each visible file is a symlink through `..data`.
pub struct ConfigMapDir<'a> {
    pub dir: &'a Path,
    version: usize,
}

impl<'a> ConfigMapDir<'a> {
    /// Lays out version 1 with `files` (name, text).
    #[must_use]
    pub fn new(dir: &'a Path, files: &[(&str, &str)]) -> Self {
        let mut cm = Self { dir, version: 0 };
        cm.publish(files);
        for (name, _) in files {
            std::os::unix::fs::symlink(format!("..data/{name}"), dir.join(name))
                .unwrap_or_else(|e| panic!("expected to link {name} through ..data: {e}"));
        }
        cm
    }

    /// Publishes a new version atomically, as the kubelet does: a new `..<version>` directory, a
    /// `..data_tmp` symlink to it, renamed over `..data`.
    pub fn publish(&mut self, files: &[(&str, &str)]) {
        self.version += 1;
        let version = format!("..2026_11_26_v{}", self.version);
        let vdir = self.dir.join(&version);
        std::fs::create_dir(&vdir)
            .unwrap_or_else(|e| panic!("expected to create {}: {e}", vdir.display()));
        for (name, text) in files {
            std::fs::write(vdir.join(name), text)
                .unwrap_or_else(|e| panic!("expected to write {name}: {e}"));
        }
        let tmp = self.dir.join("..data_tmp");
        let _ = std::fs::remove_file(&tmp);
        std::os::unix::fs::symlink(&version, &tmp)
            .unwrap_or_else(|e| panic!("expected to create ..data_tmp: {e}"));
        std::fs::rename(&tmp, self.dir.join("..data"))
            .unwrap_or_else(|e| panic!("expected to swap ..data: {e}"));
    }
}
