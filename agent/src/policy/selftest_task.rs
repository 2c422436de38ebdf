//! The built-in task `corral-selftest`: what `corral doctor --selftest` confines its probes with.
//!
//! The daemon compiles it at start and at every reload from fixed rules, so no operator writes
//! a policy for it; a policy file may neither define it nor list it as a sub-task. It allows
//! only what a probe needs to start (exec and read of the daemon's own binary, reads of the
//! system libraries) and the scratch directory the doctor prepares: it can only narrow what a
//! process may do, and it changes nothing for other tasks.

use std::path::{Path, PathBuf};

use super::{PolicyError, TaskPolicy, parse_policy};

/// The reserved task name.
pub const SELFTEST_TASK: &str = "corral-selftest";

/// Where `corral doctor --selftest` lays out its fixtures (root-owned, recreated per run).
pub const SELFTEST_DIR: &str = "/run/corral-selftest";

/// The pseudo file the built-in task is reported as coming from.
pub const SELFTEST_FILE: &str = "<built-in>/corral-selftest.yaml";

/// The built-in policy: `exe` (the daemon's own binary, which the probes run) may be executed;
/// `SELFTEST_DIR/allowed/` is readable and writable, `SELFTEST_DIR/readonly/` only readable,
/// `SELFTEST_DIR/denied/` is denied, nothing else is writable or reachable over the network.
pub fn policy(exe: &Path) -> Result<(PathBuf, TaskPolicy), PolicyError> {
    let exe = exe.display();
    let text = format!(
        r#"apiVersion: corral.dev/v1
kind: TaskPolicy
metadata:
  name: {SELFTEST_TASK}
spec:
  mode: enforce
  exec:
    allow:
      - "{exe}"
  files:
    read:
      - "{exe}"
      - /usr/
      - /lib/
      - /lib64/
      - /etc/ld.so.cache
      - /dev/null
      - {SELFTEST_DIR}/allowed/
      - {SELFTEST_DIR}/readonly/
    write:
      - /dev/null
      - {SELFTEST_DIR}/allowed/
    deny:
      - {SELFTEST_DIR}/denied/
"#
    );
    let file = PathBuf::from(SELFTEST_FILE);
    parse_policy(&file, &text).map(|p| (file, p))
}

/// The built-in task for the running binary, to add to the policies the daemon loads; `None`
/// (with a warning) when the binary's path cannot be a rule: `corral doctor --selftest` then
/// finds no such task. Built once per process, at the first call (the daemon's start): a binary
/// replaced on disk later does not change the task at the next reload.
#[must_use]
pub fn for_this_binary() -> Option<(PathBuf, TaskPolicy)> {
    static BUILT: std::sync::OnceLock<Option<(PathBuf, TaskPolicy)>> = std::sync::OnceLock::new();
    BUILT
        .get_or_init(|| {
            let built = std::env::current_exe()
                .map_err(|e| e.to_string())
                .and_then(|exe| policy(&exe).map_err(|e| format!("{e:#}")));
            match built {
                Ok(p) => Some(p),
                Err(why) => {
                    tracing::warn!(task = SELFTEST_TASK, "built-in task not loaded: {why}");
                    None
                }
            }
        })
        .clone()
}

/// Whether `file` is the built-in task's pseudo file.
#[must_use]
pub fn is_builtin(file: &Path) -> bool {
    file == Path::new(SELFTEST_FILE)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_builtin_task_allows_only_the_binary_and_the_scratch_dir() {
        let (file, p) = policy(Path::new("/opt/corral/bin/corral"))
            .unwrap_or_else(|e| panic!("expected the built-in policy to parse: {e}"));
        assert!(is_builtin(&file), "expected the pseudo file, got {file:?}");
        assert_eq!(p.name.as_str(), SELFTEST_TASK);
        let exec: Vec<String> = p.exec.iter().map(ToString::to_string).collect();
        assert_eq!(
            exec,
            ["/opt/corral/bin/corral"],
            "exec allows the binary only"
        );
        let write: Vec<String> = p.write.iter().map(ToString::to_string).collect();
        assert_eq!(write, ["/dev/null", "/run/corral-selftest/allowed/"]);
        let read: Vec<String> = p.read.iter().map(ToString::to_string).collect();
        assert!(
            read.iter().any(|r| r == "/run/corral-selftest/readonly/"),
            "expected the read-only fixture directory readable, read: {read:?}"
        );
        assert!(
            p.connect.is_empty() && p.unix.is_empty(),
            "no network at all"
        );
        assert!(p.privileges.is_empty() && p.subtasks.is_empty());
        assert!(p.select_executables.is_empty() && p.select_cgroups.is_empty());
    }

    fn user_policy(name: &str, subtasks: &str) -> (PathBuf, TaskPolicy) {
        let file = PathBuf::from("/etc/corral/policies/mine.yaml");
        let text = format!(
            "apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: {name}\nspec:\n  subtasks: [{subtasks}]\n"
        );
        let p = parse_policy(&file, &text)
            .unwrap_or_else(|e| panic!("expected the user policy to parse: {e}"));
        (file, p)
    }

    fn reserved(set: &[(PathBuf, TaskPolicy)]) -> usize {
        crate::policy::set_problems(set)
            .iter()
            .filter(|p| matches!(p, crate::policy::PolicyDirProblem::ReservedTask { .. }))
            .count()
    }

    #[test]
    fn a_policy_file_may_neither_define_nor_list_the_reserved_task() {
        let builtin = policy(Path::new("/usr/bin/corral"))
            .unwrap_or_else(|e| panic!("expected the built-in policy to parse: {e}"));
        assert_eq!(
            reserved(std::slice::from_ref(&builtin)),
            0,
            "the built-in task is fine"
        );
        let defined = user_policy(SELFTEST_TASK, "");
        assert_eq!(
            reserved(&[defined]),
            1,
            "a file defining corral-selftest is refused"
        );
        let listed = user_policy("agent", SELFTEST_TASK);
        assert_eq!(
            reserved(&[listed, builtin]),
            1,
            "a file listing corral-selftest as a sub-task is refused"
        );
    }
}
