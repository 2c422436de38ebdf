//! Compiles a `TaskPolicy` into the bounded entries of the kernel maps (`agent_common` types).
//!
//! The kernel does one longest-prefix lookup per decision, so the compiler folds: each entry
//! carries everything every broader rule of the same task says about it (file flags of enclosing
//! directory rules, ports of enclosing networks). The most specific entry is then the answer.

mod capacity;
mod diff;
mod files;
mod network;
mod selectors;
mod unix;

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
};

use agent_common::{FileRuleData, Mode, NetV4Data, NetV6Data, PortSet, UnixRuleKey};
use ipnet::IpNet;
use thiserror::Error;

use crate::policy::{HostName, TaskPolicy};

/// The addresses each DNS name currently stands for (the daemon's resolver keeps them).
pub type ResolvedHosts = BTreeMap<HostName, BTreeSet<IpAddr>>;

pub use capacity::check_capacity;
pub use diff::{NetDiff, net_diff};
pub use selectors::{CgroupEntry, cgroup_entries, executable_key};

/// A `FILE_RULES` entry: LPM key (`prefix_len` in bits, over task id and path) and rule flags.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileEntry {
    /// Bits of the key that must match: 32 (task id) + 8 per path byte (the NUL included for
    /// exact entries).
    pub prefix_len: u32,
    /// Task id and path bytes, zero padded.
    pub data: FileRuleData,
    /// `RULE_*` bits.
    pub flags: u32,
}

/// A `NET_V4_RULES` / `NET_V6_RULES` entry: LPM key (`prefix_len` = 32 + CIDR length) and the
/// ports allowed under it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetEntry<D> {
    /// 32 (task id) + the CIDR's prefix length.
    pub prefix_len: u32,
    /// Task id and network address (host bits zero).
    pub data: D,
    /// Ports allowed to addresses under the network, folded from every enclosing network.
    pub ports: PortSet,
}

/// Every map entry of one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CompiledTask {
    /// The `TASKS` value's mode.
    pub mode: Mode,
    /// `FILE_RULES` entries, sorted by path.
    pub files: Vec<FileEntry>,
    /// `NET_V4_RULES` entries, sorted by network.
    pub net_v4: Vec<NetEntry<NetV4Data>>,
    /// `NET_V6_RULES` entries, sorted by network.
    pub net_v6: Vec<NetEntry<NetV6Data>>,
    /// `UNIX_RULES` keys, sorted and without duplicates.
    pub unix: Vec<UnixRuleKey>,
    /// The `PRIVILEGES` value: `PRIV_*` bits of `spec.privileges` (0: no entry).
    pub privileges: u32,
}

/// A policy that does not fit the kernel maps.
#[derive(Debug, Error)]
pub enum CompileError {
    /// After folding, a network entry holds more port ranges than a `PortSet` can.
    #[error(
        "task {task}: network {cidr} needs {count} port ranges (after merging those of every \
         enclosing network), more than the {bound} a rule can hold"
    )]
    TooManyPortRanges {
        task: String,
        cidr: IpNet,
        count: usize,
        bound: usize,
    },
    /// A rule path longer than a `FILE_RULES` key (policy validation rejects these first).
    #[error(
        "task {task}: path {path:?} is {len} bytes, longer than the {bound} of a file rule key"
    )]
    PathTooLong {
        task: String,
        path: String,
        len: usize,
        bound: usize,
    },
    /// The tasks together need more entries than a map holds.
    #[error("map {map} would need {count} entries, more than its bound of {bound}")]
    Capacity {
        map: &'static str,
        count: usize,
        bound: u32,
    },
}

/// Compiles one task's policy into map entries keyed by `task_id`; `host` rules allow nothing
/// (no name has resolved yet).
pub fn compile(task_id: u32, policy: &TaskPolicy) -> Result<CompiledTask, CompileError> {
    compile_resolved(task_id, policy, &ResolvedHosts::new())
}

/// Compiles one task's policy into map entries keyed by `task_id`, each `host` rule standing for
/// the addresses `resolved` holds for its name.
pub fn compile_resolved(
    task_id: u32,
    policy: &TaskPolicy,
    resolved: &ResolvedHosts,
) -> Result<CompiledTask, CompileError> {
    let (net_v4, net_v6) = network::net_entries(task_id, policy, resolved)?;
    Ok(CompiledTask {
        mode: policy.mode,
        files: files::file_entries(task_id, policy)?,
        net_v4,
        net_v6,
        unix: unix::unix_keys(task_id, policy),
        privileges: crate::policy::privilege_bits(&policy.privileges),
    })
}

#[cfg(test)]
mod host_tests;
#[cfg(test)]
mod tests;
