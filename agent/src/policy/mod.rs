//! The policy model: one YAML file per task (`apiVersion: corral.dev/v1`, `kind: TaskPolicy`),
//! read with `serde_yaml_ng` and validated while it is read, so every error names the file, the
//! line and column of the offending value, and its field path.

mod dir;
mod document;
mod error;
mod host;
mod include;
mod narrowing;
mod network;
mod path_rule;
mod privilege;
mod scalar;
mod selector;
pub mod selftest_task;
mod task_name;
mod unix_addr;
mod wildcard;

#[cfg(test)]
mod host_tests;
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
pub use host::{HOST_NAME_MAX, HostName};
pub use include::{FRAGMENT_KIND, FRAGMENTS_DIR};
pub use narrowing::wider_than;
pub use network::{ConnectRule, Destination, PortSpan};
pub use path_rule::{EXACT_PATH_MAX, PREFIX_PATH_MAX, PathRule};
pub use privilege::{PRIVILEGES, Privilege, privilege_bits};
pub use selector::{CGROUP_SELECTOR_MAX, CgroupPath, ExecutablePath};
pub use task_name::{TASK_NAME_MAX, TaskName};
pub use unix_addr::{UNIX_ABSTRACT_MAX, UNIX_PATHNAME_MAX, UnixAddr};
pub use wildcard::WildcardHost;

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
    /// `spec.privileges`, without duplicates.
    pub privileges: Vec<Privilege>,
}

impl From<PolicyDocument> for TaskPolicy {
    fn from(doc: PolicyDocument) -> Self {
        let spec = doc.spec;
        let files = spec.files;
        let network = spec.network;
        let (mut read, mut write, mut deny) =
            files.map_or_else(Default::default, |f| (f.read, f.write, f.deny));
        let (mut connect, mut unix) =
            network.map_or_else(Default::default, |n| (n.connect, n.unix));
        let mut exec = spec.exec.map(|e| e.allow).unwrap_or_default();
        for included in spec.include {
            let f = included.spec;
            if let Some(e) = f.exec {
                extend_unique(&mut exec, e.allow);
            }
            if let Some(files) = f.files {
                extend_unique(&mut read, files.read);
                extend_unique(&mut write, files.write);
                extend_unique(&mut deny, files.deny);
            }
            if let Some(n) = f.network {
                extend_unique(&mut connect, n.connect);
                extend_unique(&mut unix, n.unix);
            }
        }
        let selector = spec.selector.unwrap_or_default();
        Self {
            name: doc.metadata.name,
            mode: match spec.mode {
                ModeName::Enforce => Mode::Enforce,
                ModeName::Audit => Mode::Audit,
            },
            exec,
            read,
            write,
            deny,
            connect,
            unix,
            select_executables: selector.executables,
            select_cgroups: selector.cgroups,
            subtasks: spec.subtasks,
            privileges: {
                let mut p = spec.privileges;
                p.sort_unstable();
                p.dedup();
                p
            },
        }
    }
}

/// Parses the text of one policy file; `file` names it in errors, and its directory is where
/// `spec.include` fragments are found (`fragments/<name>.yaml`).
pub fn parse_policy(file: &Path, text: &str) -> Result<TaskPolicy, PolicyError> {
    include::with_policy_dir(file.parent(), || {
        serde_yaml_ng::from_str::<PolicyDocument>(text)
            .map(TaskPolicy::from)
            .map_err(|e| PolicyError::from_yaml(file, &e))
    })
}

/// Appends the items of `more` that `list` does not hold yet.
fn extend_unique<T: PartialEq>(list: &mut Vec<T>, more: Vec<T>) {
    for item in more {
        if !list.contains(&item) {
            list.push(item);
        }
    }
}

/// Reads and parses one policy file.
pub fn load_policy_file(path: &Path) -> Result<TaskPolicy, PolicyError> {
    let text = fs::read_to_string(path).map_err(|io| PolicyError::Read {
        file: path.to_owned(),
        io,
    })?;
    parse_policy(path, &text)
}
