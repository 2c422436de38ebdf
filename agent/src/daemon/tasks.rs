//! The loaded tasks, and how a new set of policies replaces them: at start and at every reload.
//!
//! A changed task's rules are written under a fresh rules id, then its one `TASKS` entry is
//! switched to that id: a hook sees the old rule set or the new one, never a mix, never an empty
//! set. The old entries are deleted only after `RETIRE_AFTER`, when no hook that read the old id
//! can still be running. A removed task loses its `TASKS` entry: its processes stay confined and
//! are denied everything (fail closed), never untagged.

use std::{
    collections::{BTreeMap, BTreeSet, HashMap},
    path::PathBuf,
    time::{Duration, Instant},
};

use agent_common::{InodeKey, Mode};

use super::{identities, selectors};
use crate::{
    compile::{self, CgroupEntry, CompileError, CompiledTask, ResolvedHosts, cgroup_entries},
    landlock::{self, LandlockSpec},
    loader::{RuleMaps, RulesError, SelectorMaps},
    policy::{ConnectRule, HostName, TaskPolicy},
};

/// How long replaced rules stay in the maps after no task points at them. BPF programs run to
/// completion within microseconds; this only has to outlast one hook invocation.
pub const RETIRE_AFTER: Duration = Duration::from_secs(2);

/// One loaded task.
pub struct LoadedTask {
    /// Stable for the daemon's life: a task removed and added back keeps its id.
    pub id: u32,
    /// Current mode (the policy's, or what `corral policy mode` set since).
    pub mode: Mode,
    /// The id its current rules are keyed by.
    pub rules_id: u32,
    /// The policy as last loaded from `file`.
    pub policy: TaskPolicy,
    pub compiled: CompiledTask,
    /// What `corral run` applies where exec/open are enforced by Landlock.
    pub landlock: LandlockSpec,
    /// The file it was loaded from.
    pub file: PathBuf,
}

/// Why a policy set was not applied. Nothing was written to the maps.
#[derive(Debug, thiserror::Error)]
pub enum ApplyError {
    #[error(transparent)]
    Compile(#[from] CompileError),
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error("tasks `{first}` and `{second}` hash to the same task id {id}; rename one of them")]
    IdCollision {
        first: String,
        second: String,
        id: u32,
    },
}

/// A task's id: a hash of its name, so a restarted daemon gives every task the id the processes
/// it adopts are tagged with. FNV-1a, 31 bits, never 0.
#[must_use]
pub fn task_id_of(name: &str) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for b in name.bytes() {
        h ^= u32::from(b);
        h = h.wrapping_mul(0x0100_0193);
    }
    (h & 0x7fff_ffff).max(1)
}

/// What an apply changed, by task name.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Change {
    pub added: Vec<String>,
    pub changed: Vec<String>,
    pub removed: Vec<String>,
}

impl Change {
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.added.is_empty() && self.changed.is_empty() && self.removed.is_empty()
    }
}

/// The tasks, their ids, and the selectors installed for them.
#[derive(Default)]
pub struct TaskTable {
    tasks: BTreeMap<String, LoadedTask>,
    names: HashMap<u32, String>,
    next_rules_id: u32,
    retired: Vec<(Instant, u32, CompiledTask)>,
    /// `TASKS` entries an earlier daemon left: removed unless a loaded task has the id.
    foreign_tasks: Vec<u32>,
    /// When set, rule entries of no current or retired rules id are deleted at `sweep` once
    /// `RETIRE_AFTER` has passed (an earlier daemon's rules).
    purge_after: Option<Instant>,
    executables: HashMap<InodeKey, u32>,
    cgroups: Vec<CgroupEntry>,
    /// Bumped by every apply that changed something.
    pub generation: u64,
    /// The addresses of the `host` rules' names, as the resolver last handed them over: every
    /// compile uses them, so a reload carries them over into the new rules id.
    resolved: ResolvedHosts,
}

impl TaskTable {
    #[must_use]
    pub fn get(&self, name: &str) -> Option<&LoadedTask> {
        self.tasks.get(name)
    }

    pub fn iter(&self) -> impl Iterator<Item = &LoadedTask> {
        self.tasks.values()
    }

    /// Task names by id, for events (removed tasks keep their names).
    #[must_use]
    pub fn names(&self) -> &HashMap<u32, String> {
        &self.names
    }

    /// The policy each file last loaded successfully, to keep enforcing when the file breaks.
    #[must_use]
    pub fn last_good(&self) -> HashMap<PathBuf, TaskPolicy> {
        self.tasks
            .values()
            .map(|t| (t.file.clone(), t.policy.clone()))
            .collect()
    }

    /// Switches a task between enforce and audit in the kernel, keeping its rules.
    pub fn set_mode(
        &mut self,
        maps: &mut RuleMaps,
        name: &str,
        mode: Mode,
    ) -> Result<bool, RulesError> {
        let Some(task) = self.tasks.get_mut(name) else {
            return Ok(false);
        };
        maps.set_task(task.id, mode, task.rules_id)?;
        task.mode = mode;
        Ok(true)
    }

    fn id_for(&mut self, name: &str) -> u32 {
        let id = task_id_of(name);
        self.names.insert(id, name.to_owned());
        id
    }

    /// Takes over the pinned state of an earlier daemon: rules ids continue above its ones, its
    /// tasks are replaced (or removed) by the first `apply`, its selectors reconciled, and its
    /// rules deleted once nothing can use them.
    pub fn adopt(
        &mut self,
        maps: &RuleMaps,
        selector_maps: &SelectorMaps,
    ) -> Result<(), RulesError> {
        let tasks = maps.task_entries()?;
        let top = maps
            .rules_ids()?
            .into_iter()
            .chain(tasks.values().copied())
            .max()
            .unwrap_or(0);
        self.next_rules_id = self.next_rules_id.max(top);
        self.foreign_tasks = tasks.into_keys().collect();
        let (executables, cgroups) = selector_maps.installed()?;
        self.executables = executables;
        self.cgroups = cgroups;
        self.purge_after = Some(Instant::now() + RETIRE_AFTER);
        Ok(())
    }

    /// Replaces the loaded tasks by `policies` (file, policy). Compiles and checks capacity
    /// first: on error nothing was written and the old tasks keep enforcing.
    pub fn apply(
        &mut self,
        maps: &mut RuleMaps,
        selector_maps: &mut SelectorMaps,
        policies: Vec<(PathBuf, TaskPolicy)>,
    ) -> Result<Change, ApplyError> {
        let mut change = Change::default();
        let mut staged: Vec<(PathBuf, TaskPolicy, u32, CompiledTask)> = Vec::new();
        let mut keep: Vec<(String, PathBuf)> = Vec::new();
        for (file, policy) in policies {
            let name = policy.name.to_string();
            match self.tasks.get(&name) {
                Some(t) if t.policy == policy => keep.push((name, file)),
                existing => {
                    if existing.is_some() {
                        change.changed.push(name.clone());
                    } else {
                        change.added.push(name.clone());
                    }
                    self.next_rules_id += 1;
                    let rules_id = self.next_rules_id;
                    let mut compiled =
                        compile::compile_resolved(rules_id, &policy, &self.resolved)?;
                    compiled.identities = identities::walk(rules_id, &policy)?;
                    staged.push((file, policy, rules_id, compiled));
                }
            }
        }
        let wanted: Vec<&str> = keep
            .iter()
            .map(|(n, _)| n.as_str())
            .chain(staged.iter().map(|(_, p, _, _)| p.name.as_str()))
            .collect();
        change.removed = self
            .tasks
            .keys()
            .filter(|n| !wanted.contains(&n.as_str()))
            .cloned()
            .collect();
        // Old and new entries coexist until the old ones are retired: both must fit.
        let mut in_maps: Vec<CompiledTask> =
            self.tasks.values().map(|t| t.compiled.clone()).collect();
        in_maps.extend(self.retired.iter().map(|(_, _, c)| c.clone()));
        in_maps.extend(staged.iter().map(|(_, _, _, c)| c.clone()));
        compile::check_capacity(&in_maps)?;
        let mut by_id: HashMap<u32, &str> = HashMap::new();
        for name in &wanted {
            let id = task_id_of(name);
            if let Some(first) = by_id.insert(id, name) {
                return Err(ApplyError::IdCollision {
                    first: first.to_owned(),
                    second: (*name).to_owned(),
                    id,
                });
            }
        }

        for (name, file) in &keep {
            if let Some(t) = self.tasks.get_mut(name) {
                t.file.clone_from(file);
            }
        }
        for (file, policy, rules_id, compiled) in staged {
            let name = policy.name.to_string();
            let id = self.id_for(&name);
            maps.write_rules(rules_id, &compiled)?;
            maps.set_task(id, policy.mode, rules_id)?;
            let task = LoadedTask {
                id,
                mode: policy.mode,
                rules_id,
                landlock: landlock::spec_for(&policy),
                policy,
                compiled,
                file,
            };
            if let Some(old) = self.tasks.insert(name, task) {
                self.retired
                    .push((Instant::now(), old.rules_id, old.compiled));
            }
        }
        for name in &change.removed {
            if let Some(old) = self.tasks.remove(name) {
                maps.remove_task(old.id)?;
                self.retired
                    .push((Instant::now(), old.rules_id, old.compiled));
            }
        }
        for id in std::mem::take(&mut self.foreign_tasks) {
            if !self.tasks.values().any(|t| t.id == id) {
                maps.remove_task(id)?;
            }
        }
        for (name, _) in &keep {
            self.refresh_identities(maps, name)?;
        }
        self.sync_selectors(selector_maps)?;
        if !change.is_empty() {
            self.generation += 1;
        }
        Ok(change)
    }

    /// Re-walks the deny rules of a task that kept its rules: files created beneath them since
    /// the last walk join `DENIED_INODES`, files gone leave it (see `identities::refresh`).
    fn refresh_identities(&mut self, maps: &mut RuleMaps, name: &str) -> Result<(), RulesError> {
        let others: usize = self
            .tasks
            .iter()
            .filter(|(n, _)| n.as_str() != name)
            .map(|(_, t)| t.compiled.identities.len())
            .chain(self.retired.iter().map(|(_, _, c)| c.identities.len()))
            .sum();
        let Some(task) = self.tasks.get_mut(name) else {
            return Ok(());
        };
        if let Some(new) = identities::refresh(
            maps,
            task.rules_id,
            &task.policy,
            &task.compiled.identities,
            others,
        )? {
            task.compiled.identities = new;
        }
        Ok(())
    }

    /// Makes the selector maps say what the loaded policies say: new and changed entries first,
    /// stale ones last, so no selector is missing in between.
    fn sync_selectors(&mut self, maps: &mut SelectorMaps) -> Result<(), RulesError> {
        let policies: Vec<(&TaskPolicy, u32)> =
            self.tasks.values().map(|t| (&t.policy, t.id)).collect();
        let executables = selectors::resolve_executables(&policies);
        let cgroups: Vec<CgroupEntry> = policies
            .iter()
            .flat_map(|(p, id)| {
                p.select_cgroups
                    .iter()
                    .flat_map(move |c| cgroup_entries(*id, c))
            })
            .collect();
        for (key, task_id) in &executables {
            if self.executables.get(key) != Some(task_id) {
                maps.select_executable(*key, *task_id)?;
            }
        }
        for entry in &cgroups {
            if !self.cgroups.contains(entry) {
                maps.select_cgroup(entry)?;
            }
        }
        for key in self.executables.keys() {
            if !executables.contains_key(key) {
                maps.unselect_executable(*key)?;
            }
        }
        for entry in &self.cgroups {
            if !cgroups
                .iter()
                .any(|e| e.prefix_len == entry.prefix_len && e.data == entry.data)
            {
                maps.unselect_cgroup(entry)?;
            }
        }
        self.executables = executables;
        self.cgroups = cgroups;
        Ok(())
    }

    /// `(map, entries, capacity)` of the rule maps as they are now: the loaded tasks' entries
    /// (with the addresses their `host` rules resolved to) and those of replaced rules not yet
    /// deleted, which stay in the maps until `sweep`.
    #[must_use]
    pub fn map_entries(&self) -> Vec<(&'static str, u64, u64)> {
        use agent_common::{FILE_RULES_MAX, NET_RULES_MAX, TASKS_MAX, UNIX_RULES_MAX, names};
        let in_maps = || {
            self.tasks
                .values()
                .map(|t| &t.compiled)
                .chain(self.retired.iter().map(|(_, _, c)| c))
        };
        let total = |count: fn(&CompiledTask) -> usize| in_maps().map(count).sum::<usize>() as u64;
        vec![
            (names::TASKS, self.tasks.len() as u64, u64::from(TASKS_MAX)),
            (
                names::FILE_RULES,
                total(|t| t.files.len()),
                u64::from(FILE_RULES_MAX),
            ),
            (
                names::NET_V4_RULES,
                total(|t| t.net_v4.len()),
                u64::from(NET_RULES_MAX),
            ),
            (
                names::NET_V6_RULES,
                total(|t| t.net_v6.len()),
                u64::from(NET_RULES_MAX),
            ),
            (
                names::UNIX_RULES,
                total(|t| t.unix.len()),
                u64::from(UNIX_RULES_MAX),
            ),
        ]
    }

    /// Deletes the rules retired more than `RETIRE_AFTER` ago (and, once, an earlier daemon's).
    pub fn sweep(&mut self, maps: &mut RuleMaps) {
        let now = Instant::now();
        if self.purge_after.is_some_and(|at| now >= at) {
            self.purge_after = None;
            let keep: std::collections::HashSet<u32> = self
                .tasks
                .values()
                .map(|t| t.rules_id)
                .chain(self.retired.iter().map(|(_, id, _)| *id))
                .collect();
            match maps.purge_rules_except(&keep) {
                Ok(n) if n > 0 => tracing::info!(entries = n, "deleted an earlier daemon's rules"),
                Ok(_) => {}
                Err(e) => tracing::warn!("cannot delete an earlier daemon's rules: {e:#}"),
            }
        }
        let (due, kept): (Vec<_>, Vec<_>) = std::mem::take(&mut self.retired)
            .into_iter()
            .partition(|(at, _, _)| now.duration_since(*at) >= RETIRE_AFTER);
        self.retired = kept;
        for (_, rules_id, compiled) in due {
            if let Err(e) = maps.delete_rules(rules_id, &compiled) {
                tracing::warn!(rules_id, "cannot delete replaced rules: {e:#}");
            }
        }
    }

    /// The names the loaded tasks' `host` rules use.
    #[must_use]
    pub fn wanted_hosts(&self) -> BTreeSet<HostName> {
        self.tasks
            .values()
            .flat_map(|t| t.policy.connect.iter().filter_map(|r| r.host().cloned()))
            .collect()
    }

    /// The names the loaded tasks' `host` rules match, exactly or by wildcard.
    #[must_use]
    pub fn name_patterns(&self) -> super::dns::NamePatterns {
        let rules = || self.tasks.values().flat_map(|t| t.policy.connect.iter());
        super::dns::NamePatterns {
            exact: rules().filter_map(|r| r.host().cloned()).collect(),
            wildcards: rules().filter_map(|r| r.wildcard().cloned()).collect(),
        }
    }

    /// The ids of the tasks with wildcard `host` rules: their DNS goes through the proxy.
    #[must_use]
    pub fn learning_tasks(&self) -> BTreeSet<u32> {
        self.tasks
            .iter()
            .filter(|(_, t)| t.policy.connect.iter().any(|r| r.wildcard().is_some()))
            .map(|(name, _)| task_id_of(name))
            .collect()
    }

    /// Installs a new set of resolved addresses: each task using a name whose addresses changed
    /// gets the changed entries written into its current rules id (new and re-ported entries
    /// first, departed ones deleted after), without a new rules id. Returns the tasks changed.
    /// On error the maps may hold part of the change; the next call writes the rest.
    pub fn set_resolved(
        &mut self,
        maps: &mut RuleMaps,
        resolved: ResolvedHosts,
    ) -> Result<Vec<String>, ApplyError> {
        let mut staged = Vec::new();
        for (name, task) in &self.tasks {
            if !task.policy.connect.iter().any(ConnectRule::by_name) {
                continue;
            }
            let new = compile::compile_resolved(task.rules_id, &task.policy, &resolved)?;
            let diff = compile::net_diff(&task.compiled, &new);
            if !diff.is_empty() {
                staged.push((name.clone(), new, diff));
            }
        }
        let mut in_maps: Vec<CompiledTask> = self
            .tasks
            .iter()
            .map(|(name, t)| {
                staged
                    .iter()
                    .find(|(n, _, _)| n == name)
                    .map_or_else(|| t.compiled.clone(), |(_, new, _)| new.clone())
            })
            .collect();
        in_maps.extend(self.retired.iter().map(|(_, _, c)| c.clone()));
        compile::check_capacity(&in_maps)?;
        self.resolved = resolved;
        let mut changed = Vec::new();
        for (name, new, diff) in staged {
            let Some(task) = self.tasks.get_mut(&name) else {
                continue;
            };
            maps.write_rules(task.rules_id, &diff.write)?;
            maps.delete_rules(task.rules_id, &diff.delete)?;
            // Names change network entries only: the walked identities stay.
            let walked = std::mem::take(&mut task.compiled.identities);
            task.compiled = new;
            task.compiled.identities = walked;
            changed.push(name);
        }
        Ok(changed)
    }
}
