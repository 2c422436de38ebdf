//! The policies shipped in `$CORRAL_POLICIES`, read just enough to exercise them: which paths
//! they allow and deny. (The daemon validates them; this reads them leniently.)

use std::path::{Path, PathBuf};

use serde_yaml_ng::Value;

use crate::{env, interp, runtime};

/// What a test needs to know about one shipped policy.
#[derive(Debug, Clone)]
pub struct ShippedPolicy {
    pub file: PathBuf,
    pub name: String,
    /// `enforce` or `audit`.
    pub mode: String,
    pub exec: Vec<String>,
    pub read: Vec<String>,
    pub write: Vec<String>,
    pub deny: Vec<String>,
}

/// Every `*.yaml` in `$CORRAL_POLICIES`, sorted by file name. Panics if there is none.
#[must_use]
pub fn load_all() -> Vec<ShippedPolicy> {
    let dir = env::policies_dir();
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("expected to list {}: {e}", dir.display()))
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    files.sort();
    assert!(
        !files.is_empty(),
        "expected the repository to ship at least one policy (*.yaml) in {}",
        dir.display()
    );
    files.iter().map(|f| parse(f)).collect()
}

fn parse(file: &Path) -> ShippedPolicy {
    let text = std::fs::read_to_string(file)
        .unwrap_or_else(|e| panic!("expected to read {}: {e}", file.display()));
    let doc: Value = serde_yaml_ng::from_str(&text)
        .unwrap_or_else(|e| panic!("expected {} to be YAML: {e}", file.display()));
    let list = |path: &[&str]| -> Vec<String> {
        let mut v = &doc;
        for key in path {
            match v.get(*key) {
                Some(next) => v = next,
                None => return Vec::new(),
            }
        }
        v.as_sequence()
            .map(|s| {
                s.iter()
                    .filter_map(|e| e.as_str().map(str::to_owned))
                    .collect()
            })
            .unwrap_or_default()
    };
    let name = doc
        .get("metadata")
        .and_then(|m| m.get("name"))
        .and_then(Value::as_str)
        .unwrap_or_else(|| panic!("expected metadata.name in {}", file.display()))
        .to_owned();
    let mode = doc
        .get("spec")
        .and_then(|s| s.get("mode"))
        .and_then(Value::as_str)
        .unwrap_or("enforce")
        .to_owned();
    ShippedPolicy {
        file: file.to_owned(),
        name,
        mode,
        exec: list(&["spec", "exec", "allow"]),
        read: list(&["spec", "files", "read"]),
        write: list(&["spec", "files", "write"]),
        deny: list(&["spec", "files", "deny"]),
    }
}

/// Whether a policy entry covers `path`: a `dir/` entry covers the directory and everything
/// beneath it, any other entry only that exact path.
#[must_use]
pub fn covers(entry: &str, path: &str) -> bool {
    match entry.strip_suffix('/') {
        Some(dir) => path == dir || path.starts_with(entry),
        None => path == entry,
    }
}

impl ShippedPolicy {
    #[must_use]
    pub fn denied(&self, path: &str) -> bool {
        self.deny.iter().any(|e| covers(e, path))
    }

    #[must_use]
    pub fn can_read(&self, path: &str) -> bool {
        !self.denied(path) && self.read.iter().any(|e| covers(e, path))
    }

    #[must_use]
    pub fn can_write(&self, path: &str) -> bool {
        !self.denied(path) && self.write.iter().any(|e| covers(e, path))
    }

    #[must_use]
    pub fn can_exec(&self, path: &str) -> bool {
        !self.denied(path) && self.exec.iter().any(|e| covers(e, path))
    }

    /// True when `path` can be opened to read, or exec-opened (the ELF loader).
    #[must_use]
    pub fn can_load(&self, path: &str) -> bool {
        self.can_read(path) || self.can_exec(path)
    }
}

/// Files and links a test placed on the machine for a shipped policy; removed when dropped.
#[derive(Default)]
pub struct Placed {
    paths: Vec<String>,
}

impl Placed {
    /// Records `path` for removal.
    pub fn track(&mut self, path: &str) {
        self.paths.push(path.to_owned());
    }

    /// Writes `contents` to `path` (creating parent dirs) unless it exists; records it if created.
    pub fn file(&mut self, path: &str, contents: &str) {
        if Path::new(path).exists() {
            return;
        }
        mkdir_parent(path);
        std::fs::write(path, contents).unwrap_or_else(|e| panic!("expected to write {path}: {e}"));
        self.track(path);
    }
}

impl Drop for Placed {
    fn drop(&mut self) {
        for p in self.paths.iter().rev() {
            let _ = std::fs::remove_file(p);
        }
    }
}

fn mkdir_parent(path: &str) {
    if let Some(parent) = Path::new(path).parent() {
        std::fs::create_dir_all(parent)
            .unwrap_or_else(|e| panic!("expected to create {}: {e}", parent.display()));
    }
}

/// Paths that no test should find on a real machine, so creating them clobbers nothing.
const PROC_LIKE: [&str; 3] = ["/proc/", "/sys/", "/dev/"];

/// A copy of the probe that can start under `policy`: placed where `exec.allow` allows it and,
/// when the policy cannot read the machine's own libraries, pointed at copies of them in a
/// directory it can read (rewritten ELF interpreter + `LD_LIBRARY_PATH`).
pub struct StagedProbe {
    /// Path to execute.
    pub exe: String,
    /// Environment the command needs.
    pub env: Vec<(String, String)>,
}

/// Stages the probe for `policy` (see `StagedProbe`); everything it places is tracked in `placed`.
/// Panics, naming the policy, when the policy allows no exec location or no readable directory.
#[must_use]
pub fn stage_probe(policy: &ShippedPolicy, placed: &mut Placed) -> StagedProbe {
    let tag = format!("corral-test-{}", std::process::id());
    let exe = policy
        .exec
        .iter()
        .filter(|e| !PROC_LIKE.iter().any(|p| e.starts_with(p)))
        .find_map(|entry| {
            let candidate = if entry.ends_with('/') {
                format!("{entry}{tag}-probe")
            } else {
                entry.clone()
            };
            (policy.can_exec(&candidate) && !Path::new(&candidate).exists()).then_some(candidate)
        })
        .unwrap_or_else(|| {
            panic!(
                "expected policy {} ({}) to allow exec of a path where the test can place the probe (a dir/ entry, or a file that does not exist yet); exec.allow: {:?}",
                policy.name,
                policy.file.display(),
                policy.exec
            )
        });
    mkdir_parent(&exe);
    std::fs::copy(env::probe_bin(), &exe)
        .unwrap_or_else(|e| panic!("expected to copy the probe to {exe}: {e}"));
    placed.track(&exe);

    let libs = runtime::loaded_files(&env::probe());
    if libs.iter().all(|l| policy.can_load(l)) {
        return StagedProbe {
            exe,
            env: Vec::new(),
        };
    }
    let lib_dir = policy
        .read
        .iter()
        .filter(|e| e.ends_with('/') && !PROC_LIKE.iter().any(|p| e.starts_with(p)))
        .map(|e| format!("{e}{tag}-libs"))
        .find(|d| policy.can_read(&format!("{d}/libc.so.6")))
        .unwrap_or_else(|| {
            panic!(
                "expected policy {} ({}) to be able to load the probe: it cannot read {:?} and has no readable dir/ entry to copy them into; files.read: {:?}",
                policy.name,
                policy.file.display(),
                libs.iter().filter(|l| !policy.can_load(l)).collect::<Vec<_>>(),
                policy.read
            )
        });
    std::fs::create_dir_all(&lib_dir)
        .unwrap_or_else(|e| panic!("expected to create {lib_dir}: {e}"));
    let interp = std::fs::canonicalize(interp::interpreter(&env::probe())).map_or_else(
        |e| panic!("expected the probe's interpreter to exist: {e}"),
        |p| p.display().to_string(),
    );
    let mut interp_copy = String::new();
    for lib in &libs {
        let base = lib.rsplit('/').next().unwrap_or(lib);
        let dst = format!("{lib_dir}/{base}");
        std::fs::copy(lib, &dst).unwrap_or_else(|e| panic!("expected to copy {lib} to {dst}: {e}"));
        placed.track(&dst);
        if *lib == interp {
            interp_copy = dst;
        }
    }
    assert!(
        !interp_copy.is_empty(),
        "expected the probe's interpreter {interp} among its mapped files {libs:?}"
    );
    // A short link to the copied loader, so the new PT_INTERP fits where the old one was.
    let link = format!("/tmp/cld-{}", std::process::id());
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(&interp_copy, &link)
        .unwrap_or_else(|e| panic!("expected to link {link} -> {interp_copy}: {e}"));
    placed.track(&link);
    interp::set_interpreter(&exe, &link);
    StagedProbe {
        exe,
        env: vec![("LD_LIBRARY_PATH".to_owned(), lib_dir)],
    }
}

#[cfg(test)]
mod tests {
    use super::covers;

    #[test]
    fn dir_entries_cover_beneath_and_file_entries_only_themselves() {
        assert!(
            covers("/usr/", "/usr/bin/git"),
            "expected /usr/ to cover /usr/bin/git"
        );
        assert!(
            covers("/usr/", "/usr"),
            "expected /usr/ to cover /usr itself"
        );
        assert!(
            !covers("/usr/", "/usrx/y"),
            "expected /usr/ not to cover /usrx/y"
        );
        assert!(covers("/", "/etc/shadow"), "expected / to cover everything");
        assert!(
            !covers("/usr/bin/git", "/usr/bin/git2"),
            "expected an exact entry to be exact"
        );
    }
}
