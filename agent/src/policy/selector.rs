//! `spec.selector`: how processes join a task without `corral run`.

use std::fmt;

use agent_common::CGROUP_PATH_MAX;
use serde::Deserialize;

use super::{
    path_rule::check_normalized,
    scalar::{ScalarRule, deserialize_as_scalar},
};

/// `spec.selector`.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct SelectorSection {
    /// Executables (absolute paths of files): an untagged process that executes one joins the
    /// task. Matched by the file's identity (device and inode), resolved when the policy loads.
    #[serde(default)]
    pub executables: Vec<ExecutablePath>,
    /// cgroup v2 paths relative to the hierarchy's root (`/system.slice/agent.service`): every
    /// untagged process in that cgroup or below it joins the task, those already there when the
    /// policy loads and those that arrive later.
    #[serde(default)]
    pub cgroups: Vec<CgroupPath>,
}

/// An absolute, normalized path of an executable file (not a directory).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ExecutablePath(String);

impl ExecutablePath {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for ExecutablePath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ScalarRule for ExecutablePath {
    const EXPECTING: &'static str = "an absolute path of an executable";

    fn parse(text: &str) -> Result<Self, String> {
        check_normalized(text)
            .map_err(|problem| format!("invalid executable {text:?}: {problem}"))?;
        if text.ends_with('/') {
            return Err(format!(
                "invalid executable {text:?}: it names a directory (selectors name files)"
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

deserialize_as_scalar!(ExecutablePath);

/// Longest cgroup selector path: its `/`-terminated kernel key must fit `CGROUP_PATH_MAX - 1`
/// bytes, so a cut-off kernel path can never match its exact entry.
pub const CGROUP_SELECTOR_MAX: usize = CGROUP_PATH_MAX - 2;

/// A cgroup v2 path relative to the hierarchy's root, without a trailing `/`; not `/` itself.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct CgroupPath(String);

impl CgroupPath {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for CgroupPath {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ScalarRule for CgroupPath {
    const EXPECTING: &'static str = "a cgroup v2 path such as /system.slice/agent.service";

    fn parse(text: &str) -> Result<Self, String> {
        check_normalized(text).map_err(|problem| format!("invalid cgroup {text:?}: {problem}"))?;
        if text == "/" {
            return Err(
                "invalid cgroup \"/\": the root cgroup holds every process of the host".to_owned(),
            );
        }
        if text.ends_with('/') {
            return Err(format!(
                "invalid cgroup {text:?}: write it without the trailing '/' (cgroups below it are always included)"
            ));
        }
        if text.starts_with("/sys/fs/cgroup") {
            return Err(format!(
                "invalid cgroup {text:?}: write the path inside the cgroup hierarchy (as in /proc/PID/cgroup), not its mount point"
            ));
        }
        if text.len() > CGROUP_SELECTOR_MAX {
            return Err(format!(
                "invalid cgroup {text:?}: it is {} bytes long, more than the {CGROUP_SELECTOR_MAX} a selector can hold",
                text.len()
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

deserialize_as_scalar!(CgroupPath);
