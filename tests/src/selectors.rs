//! Selectors in tests: a copied probe that joins a task by being executed, and a cgroup v2
//! directory of the test's own.

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::{Policy, RunOutput, Scratch, env, runtime};

/// `$CORRAL_PROBE` copied to `bin/selected-agent` in `scratch`, and a policy under which that copy can start.
#[must_use]
pub fn selected_probe(scratch: &Scratch, task: &str) -> (String, Policy) {
    let copy = scratch.copy_exe(Path::new(&env::probe()), "bin/selected-agent");
    let mut pol = Policy::new(task)
        .exec(&copy)
        .read(&copy)
        .select_executable(&copy);
    for path in runtime::probe_runtime_reads() {
        pol = pol.read(&path);
    }
    (copy, pol)
}

/// Whether `out` ended by a signal (`corral-probe` never does on its own).
#[must_use]
pub fn killed(out: &RunOutput) -> bool {
    out.code.is_none()
}

/// A cgroup v2 directory for one test, removed (after its processes left) on drop.
pub struct TestCgroup {
    dir: PathBuf,
    /// The path inside the hierarchy (`/corral-test-...`), as policies name it.
    pub name: String,
}

impl TestCgroup {
    #[must_use]
    pub fn new(label: &str) -> Self {
        let root = cgroup2_mount().unwrap_or_else(|| {
            panic!("expected a cgroup v2 mount on this host (the daemon needs one)")
        });
        let name = format!("/corral-test-{label}-{}", std::process::id());
        let dir = Path::new(&root).join(name.trim_start_matches('/'));
        let _ = std::fs::remove_dir(&dir);
        std::fs::create_dir(&dir)
            .unwrap_or_else(|e| panic!("expected to create cgroup {}: {e}", dir.display()));
        Self { dir, name }
    }

    /// The cgroup's directory in the cgroup v2 mount.
    #[must_use]
    pub fn dir(&self) -> String {
        self.dir.display().to_string()
    }

    #[must_use]
    pub fn procs(&self) -> String {
        self.dir.join("cgroup.procs").display().to_string()
    }
}

impl Drop for TestCgroup {
    fn drop(&mut self) {
        for _ in 0..50 {
            if std::fs::remove_dir(&self.dir).is_ok() {
                return;
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

/// The first cgroup v2 mount point in `/proc/self/mountinfo`.
#[must_use]
pub fn cgroup2_mount() -> Option<String> {
    let text = std::fs::read_to_string("/proc/self/mountinfo")
        .unwrap_or_else(|e| panic!("expected to read /proc/self/mountinfo: {e}"));
    text.lines().find_map(|line| {
        let (left, right) = line.split_once(" - ")?;
        (right.split_whitespace().next()? == "cgroup2")
            .then(|| left.split_whitespace().nth(4).map(str::to_owned))?
    })
}
