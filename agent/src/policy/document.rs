//! The YAML document of one policy file, as serde reads it. Every value is validated while it is
//! read (see `scalar`), so errors carry the position of the offending value.

use serde::Deserialize;

use super::{
    include::Included,
    network::ConnectRule,
    path_rule::PathRule,
    privilege::Privilege,
    scalar::{ScalarRule, deserialize_as_scalar},
    selector::SelectorSection,
    task_name::TaskName,
    unix_addr::UnixAddr,
};

/// The only `apiVersion` this version reads.
pub const API_VERSION: &str = "corral.dev/v1";
/// The only `kind` this version reads.
pub const KIND: &str = "TaskPolicy";

/// One policy file: one task.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
pub(crate) struct PolicyDocument {
    /// Schema version: `corral.dev/v1`.
    #[allow(dead_code, reason = "validated when read, nothing else to keep")]
    pub api_version: ApiVersion,
    /// Document kind: `TaskPolicy`.
    #[allow(dead_code, reason = "validated when read, nothing else to keep")]
    pub kind: Kind,
    /// Identity of the task.
    pub metadata: Metadata,
    /// What the task's processes may do. `spec: {}` allows nothing.
    pub spec: Spec,
}

/// `apiVersion`, checked to be `API_VERSION`.
#[derive(Debug)]
pub(crate) struct ApiVersion;

impl ScalarRule for ApiVersion {
    const EXPECTING: &'static str = "corral.dev/v1";

    fn parse(text: &str) -> Result<Self, String> {
        if text == API_VERSION {
            Ok(Self)
        } else {
            Err(format!(
                "unsupported apiVersion {text:?}, expected {API_VERSION:?}"
            ))
        }
    }
}

deserialize_as_scalar!(ApiVersion);

/// `kind`, checked to be `KIND`.
#[derive(Debug)]
pub(crate) struct Kind;

impl ScalarRule for Kind {
    const EXPECTING: &'static str = "TaskPolicy";

    fn parse(text: &str) -> Result<Self, String> {
        if text == KIND {
            Ok(Self)
        } else {
            Err(format!("unsupported kind {text:?}, expected {KIND:?}"))
        }
    }
}

deserialize_as_scalar!(Kind);

/// `metadata`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Metadata {
    /// The task name `corral run --task` refers to: `[a-z0-9-]`, 1..=63 characters, not starting
    /// or ending with `-`. Unique across the policy directory.
    pub name: TaskName,
}

/// `spec`. An absent section allows nothing of its kind.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct Spec {
    /// `enforce` (misses are refused) or `audit` (misses are allowed and reported).
    #[serde(default)]
    pub mode: ModeName,
    /// Programs the task may execute.
    #[serde(default)]
    pub exec: Option<ExecSection>,
    /// Files the task may open.
    #[serde(default)]
    pub files: Option<FilesSection>,
    /// Destinations the task may connect to.
    #[serde(default)]
    pub network: Option<NetworkSection>,
    /// Processes that join the task without `corral run`: by executable or by cgroup.
    #[serde(default)]
    pub selector: Option<SelectorSection>,
    /// Tasks a process of this task may hand to a child with `corral run --task`. Each must be
    /// narrower: everything it allows, this task allows.
    #[serde(default)]
    pub subtasks: Vec<TaskName>,
    /// Fragments (`fragments/<name>.yaml` beside the policy files) whose allow-lists and denies
    /// are added to this task's.
    #[serde(default)]
    pub include: Vec<Included>,
    /// Guarded operations the task's processes may do after all: `raw_sockets`,
    /// `packet_sockets`, `netlink`, `perf_events`, `userfaultfd`, `other_sockets`. Absent: none. Operations that
    /// would let a confined process disable Corral (`bpf`, `kernel_modules`, `mount`, `ptrace`,
    /// `signal`, `setns`, `bpffs`) can never be named.
    #[serde(default)]
    pub privileges: Vec<Privilege>,
}

/// `spec.mode`.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub(crate) enum ModeName {
    /// Refuse what no rule allows (`EPERM`) and report it.
    #[default]
    Enforce,
    /// Allow what no rule allows, and report it.
    Audit,
}

/// `spec.exec`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct ExecSection {
    /// Executables (exact paths) and directories (ending in `/`: everything beneath).
    #[serde(default)]
    pub allow: Vec<PathRule>,
}

/// `spec.files`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FilesSection {
    /// Paths that may be opened for reading.
    #[serde(default)]
    pub read: Vec<PathRule>,
    /// Paths that may be opened for writing.
    #[serde(default)]
    pub write: Vec<PathRule>,
    /// Paths that may not be opened or executed at all, whatever `read`, `write` or `exec` say.
    #[serde(default)]
    pub deny: Vec<PathRule>,
}

/// `spec.network`.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct NetworkSection {
    /// TCP/UDP destinations (IPv4 and IPv6).
    #[serde(default)]
    pub connect: Vec<ConnectRule>,
    /// `AF_UNIX` sockets: absolute paths, or `@name` for abstract sockets.
    #[serde(default)]
    pub unix: Vec<UnixAddr>,
}
