//! Loading every policy of a directory: all errors at once, and task names unique across files.

use std::{
    collections::BTreeMap,
    fmt, fs, io,
    path::{Path, PathBuf},
};

use thiserror::Error;

use super::{PolicyError, TaskPolicy, load_policy_file};

/// A policy directory that could not be loaded. Displays on one line.
#[derive(Debug, Error)]
pub enum PolicyDirError {
    /// The directory itself could not be listed.
    #[error("cannot read policy directory {}: {io}", dir.display())]
    ReadDir { dir: PathBuf, io: io::Error },
    /// Some files are invalid or define the same task; every problem found is listed.
    #[error("{} in policy directory {}: {}", Problems::count(problems), dir.display(), Problems(problems))]
    Invalid {
        dir: PathBuf,
        problems: Vec<PolicyDirProblem>,
    },
}

/// One problem of a policy directory.
#[derive(Debug, Error)]
pub enum PolicyDirProblem {
    /// A file that is not a valid policy.
    #[error(transparent)]
    File(#[from] PolicyError),
    /// Two files define the same task.
    #[error("task {name:?} is defined twice: in {} and in {}", first.display(), second.display())]
    DuplicateTask {
        name: String,
        first: PathBuf,
        second: PathBuf,
    },
    /// A listed sub-task that no file defines.
    #[error("task {task:?} (in {}) lists sub-task {subtask:?}, which no policy file defines", file.display())]
    UnknownSubtask {
        task: String,
        subtask: String,
        file: PathBuf,
    },
    /// A sub-task that allows more than its parent: rights could grow down an agent tree.
    #[error("sub-task {subtask:?} of task {task:?} (in {}) is wider than its parent: {why}", file.display())]
    WiderSubtask {
        task: String,
        subtask: String,
        file: PathBuf,
        why: String,
    },
    /// Two tasks select the same executable or cgroup: a process could not join both.
    #[error("{kind} {selector:?} is selected by two tasks: {first:?} in {} and {second:?} in {}", first_file.display(), second_file.display())]
    DuplicateSelector {
        kind: &'static str,
        selector: String,
        first: String,
        first_file: PathBuf,
        second: String,
        second_file: PathBuf,
    },
    /// A policy file that defines or lists as a sub-task the built-in `corral-selftest` task.
    #[error("task name {name:?} (in {}) is reserved for `corral doctor --selftest`", file.display())]
    ReservedTask { name: String, file: PathBuf },
}

/// Displays problems joined with "; ".
struct Problems<'a>(&'a [PolicyDirProblem]);

impl Problems<'_> {
    fn count(problems: &[PolicyDirProblem]) -> String {
        match problems.len() {
            1 => "1 error".to_owned(),
            n => format!("{n} errors"),
        }
    }
}

impl fmt::Display for Problems<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, problem) in self.0.iter().enumerate() {
            if i > 0 {
                f.write_str("; ")?;
            }
            write!(f, "{problem}")?;
        }
        Ok(())
    }
}

/// Whether `path` names a policy file by its name: `*.yaml` or `*.yml`, not hidden.
fn is_policy_name(path: &Path) -> bool {
    let hidden = path
        .file_name()
        .is_none_or(|name| name.as_encoded_bytes().starts_with(b"."));
    let yaml = path
        .extension()
        .is_some_and(|ext| ext == "yaml" || ext == "yml");
    !hidden && yaml
}

/// The policy files of `dir` (not recursive), sorted by name. Directories named `*.yaml` are
/// skipped; symlinks are followed.
pub fn policy_files(dir: &Path) -> Result<Vec<PathBuf>, PolicyDirError> {
    let read_dir = |io| PolicyDirError::ReadDir {
        dir: dir.to_owned(),
        io,
    };
    let mut files = Vec::new();
    for entry in fs::read_dir(dir).map_err(read_dir)? {
        let path = entry.map_err(read_dir)?.path();
        // A file whose metadata cannot be read is kept: loading it reports why.
        if is_policy_name(&path) && !fs::metadata(&path).is_ok_and(|m| m.is_dir()) {
            files.push(path);
        }
    }
    files.sort();
    Ok(files)
}

/// Loads every `*.yaml`/`*.yml` file of `dir` (sorted by name, not recursive, hidden files
/// skipped). Reports every invalid file and every task name defined by two files.
pub fn load_policy_dir(dir: &Path) -> Result<Vec<TaskPolicy>, PolicyDirError> {
    Ok(load_policy_dir_files(dir)?
        .into_iter()
        .map(|(_, p)| p)
        .collect())
}

/// As `load_policy_dir`, with the file each policy came from.
pub fn load_policy_dir_files(dir: &Path) -> Result<Vec<(PathBuf, TaskPolicy)>, PolicyDirError> {
    let mut policies = Vec::new();
    let mut problems = Vec::new();
    for file in policy_files(dir)? {
        match load_policy_file(&file) {
            Ok(policy) => policies.push((file, policy)),
            Err(e) => problems.push(e.into()),
        }
    }
    problems.extend(set_problems(&policies));
    if problems.is_empty() {
        Ok(policies)
    } else {
        Err(PolicyDirError::Invalid {
            dir: dir.to_owned(),
            problems,
        })
    }
}

/// What is wrong with a set of valid policies taken together: a task name defined twice, an
/// executable or cgroup selected by two tasks.
#[must_use]
pub fn set_problems(policies: &[(PathBuf, TaskPolicy)]) -> Vec<PolicyDirProblem> {
    let mut problems = Vec::new();
    let mut defined_in: BTreeMap<String, PathBuf> = BTreeMap::new();
    let mut selected_by: BTreeMap<(&'static str, String), (String, PathBuf)> = BTreeMap::new();
    for (file, policy) in policies {
        let reserved = super::selftest_task::SELFTEST_TASK;
        let uses_reserved = policy.name.as_str() == reserved
            || policy.subtasks.iter().any(|s| s.as_str() == reserved);
        if uses_reserved && !super::selftest_task::is_builtin(file) {
            problems.push(PolicyDirProblem::ReservedTask {
                name: reserved.to_owned(),
                file: file.clone(),
            });
        }
        let name = policy.name.to_string();
        if let Some(first) = defined_in.get(&name) {
            problems.push(PolicyDirProblem::DuplicateTask {
                name,
                first: first.clone(),
                second: file.clone(),
            });
            continue;
        }
        defined_in.insert(name.clone(), file.clone());
        let selectors = policy
            .select_executables
            .iter()
            .map(|e| ("executable", e.to_string()))
            .chain(
                policy
                    .select_cgroups
                    .iter()
                    .map(|c| ("cgroup", c.to_string())),
            );
        for (kind, selector) in selectors {
            match selected_by.get(&(kind, selector.clone())) {
                Some((first, first_file)) if *first != name => {
                    problems.push(PolicyDirProblem::DuplicateSelector {
                        kind,
                        selector,
                        first: first.clone(),
                        first_file: first_file.clone(),
                        second: name.clone(),
                        second_file: file.clone(),
                    });
                }
                Some(_) => {}
                None => {
                    selected_by.insert((kind, selector), (name.clone(), file.clone()));
                }
            }
        }
    }
    for (file, policy) in policies {
        for sub in &policy.subtasks {
            match policies.iter().find(|(_, p)| p.name == *sub) {
                None => problems.push(PolicyDirProblem::UnknownSubtask {
                    task: policy.name.to_string(),
                    subtask: sub.to_string(),
                    file: file.clone(),
                }),
                Some((_, child)) => {
                    if let Some(why) = super::wider_than(child, policy) {
                        problems.push(PolicyDirProblem::WiderSubtask {
                            task: policy.name.to_string(),
                            subtask: sub.to_string(),
                            file: file.clone(),
                            why,
                        });
                    }
                }
            }
        }
    }
    problems
}
