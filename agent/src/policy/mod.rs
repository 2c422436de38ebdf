//! The policy model: one YAML file per task (`apiVersion: corral.dev/v1`, `kind: TaskPolicy`),
//! read with `serde_yaml_ng` and validated while it is read, so every error names the file, the
//! line and column of the offending value, and its field path.

mod dir;
mod document;
mod error;
mod narrowing;
mod network;
mod path_rule;
mod scalar;
mod selector;
mod task_name;
mod unix_addr;

#[cfg(test)]
mod tests;

use std::{fs, path::Path};

use agent_common::Mode;

pub use dir::{
    PolicyDirError, PolicyDirProblem, load_policy_dir, load_policy_dir_files, policy_files,
    set_problems,
};
pub use document::{API_VERSION, KIND};
pub use error::PolicyError;
pub use narrowing::wider_than;
pub use network::{ConnectRule, PortSpan};
pub use path_rule::{EXACT_PATH_MAX, PREFIX_PATH_MAX, PathRule};
pub use selector::{CGROUP_SELECTOR_MAX, CgroupPath, ExecutablePath};
pub use task_name::{TASK_NAME_MAX, TaskName};
pub use unix_addr::{UNIX_ABSTRACT_MAX, UNIX_PATHNAME_MAX, UnixAddr};

use document::{ModeName, PolicyDocument};

/// A validated task policy, flattened from its YAML document. Empty lists allow nothing.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskPolicy {
    /// `metadata.name`.
    pub name: TaskName,
    /// `spec.mode` (default `Enforce`).
    pub mode: Mode,
    /// `spec.exec.allow`.
    pub exec: Vec<PathRule>,
    /// `spec.files.read`.
    pub read: Vec<PathRule>,
    /// `spec.files.write`.
    pub write: Vec<PathRule>,
    /// `spec.files.deny`.
    pub deny: Vec<PathRule>,
    /// `spec.network.connect`.
    pub connect: Vec<ConnectRule>,
    /// `spec.network.unix`.
    pub unix: Vec<UnixAddr>,
    /// `spec.selector.executables`.
    pub select_executables: Vec<ExecutablePath>,
    /// `spec.selector.cgroups`.
    pub select_cgroups: Vec<CgroupPath>,
    /// `spec.subtasks`.
    pub subtasks: Vec<TaskName>,
}

impl From<PolicyDocument> for TaskPolicy {
    fn from(doc: PolicyDocument) -> Self {
        let spec = doc.spec;
        let files = spec.files;
        let network = spec.network;
        let (read, write, deny) =
            files.map_or_else(Default::default, |f| (f.read, f.write, f.deny));
        let (connect, unix) = network.map_or_else(Default::default, |n| (n.connect, n.unix));
        let selector = spec.selector.unwrap_or_default();
        Self {
            name: doc.metadata.name,
            mode: match spec.mode {
                ModeName::Enforce => Mode::Enforce,
                ModeName::Audit => Mode::Audit,
            },
            exec: spec.exec.map(|e| e.allow).unwrap_or_default(),
            read,
            write,
            deny,
            connect,
            unix,
            select_executables: selector.executables,
            select_cgroups: selector.cgroups,
            subtasks: spec.subtasks,
        }
    }
}

/// Parses the text of one policy file; `file` is only used to name it in errors.
pub fn parse_policy(file: &Path, text: &str) -> Result<TaskPolicy, PolicyError> {
    serde_yaml_ng::from_str::<PolicyDocument>(text)
        .map(TaskPolicy::from)
        .map_err(|e| PolicyError::from_yaml(file, &e))
}

/// Reads and parses one policy file.
pub fn load_policy_file(path: &Path) -> Result<TaskPolicy, PolicyError> {
    let text = fs::read_to_string(path).map_err(|io| PolicyError::Read {
        file: path.to_owned(),
        io,
    })?;
    parse_policy(path, &text)
}
