//! What the daemon knows at run time: the maps, the loaded tasks, and how policy changes reach
//! the kernel.

use std::{
    collections::{BTreeMap, HashMap},
    path::{Path, PathBuf},
};

use serde_json::json;

use agent_common::{Mode, TAG_LANDLOCK, TAG_NO_EXPIRY, TaskTag};

use super::{
    instances::Instances,
    protocol::{Refusal, Response},
    selectors,
    tasks::{ApplyError, Change, TaskTable},
};
use crate::{
    loader::{Backends, HookSpec, InstanceMaps, OpenCacheState, RuleMaps, SelectorMaps},
    policy::{self, TaskPolicy},
};

/// Reload bookkeeping, for `corral status` and metrics.
#[derive(Debug, Default, Clone, serde::Serialize)]
pub struct ReloadStats {
    /// Reloads whose every file was valid and applied.
    pub applied: u64,
    /// Reloads with at least one problem (an invalid file kept its last good version, or the
    /// whole set was refused).
    pub rejected: u64,
    /// The problems of the last reload, one line each (`file:line:column: message`).
    pub problems: Vec<String>,
}

/// A daemon event about policies, written to the event sinks next to decisions.
#[derive(Debug, Clone, serde::Serialize, PartialEq, Eq)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum PolicyEvent {
    /// A policy file (or the set) was refused; the last good version keeps enforcing.
    PolicyRejected { error: String },
    /// A task instance outlived its `--ttl`: its processes are denied everything from now on.
    InstanceExpired { instance: String, task: String },
    /// A DNS name of a `host` connect rule resolved to addresses it did not stand for: they are
    /// allowed (with the rule's ports) to every task naming it, until their TTL runs out.
    DnsResolved {
        host: String,
        added: Vec<String>,
        addresses: Vec<String>,
        ttl_secs: u64,
    },
    /// Addresses of a DNS name whose TTL ran out without an answer renewing them: refused from
    /// now on.
    DnsExpired { host: String, expired: Vec<String> },
    /// A DNS name stopped resolving (`result`: `nxdomain`, `no_records`, `error`): its addresses
    /// stay allowed until their TTLs run out. Reported once per change of result.
    DnsUnresolved {
        host: String,
        result: String,
        error: String,
    },
    /// A new policy generation reached the kernel.
    PolicyApplied {
        generation: u64,
        added: Vec<String>,
        changed: Vec<String>,
        removed: Vec<String>,
    },
}

/// A `PolicyEvent` with its time, as one sink line.
#[derive(Debug, Clone, serde::Serialize)]
pub struct TimedPolicyEvent {
    pub time: String,
    #[serde(flatten)]
    pub event: PolicyEvent,
}

pub struct State {
    maps: RuleMaps,
    selector_maps: SelectorMaps,
    instances: Instances,
    tasks: TaskTable,
    backends: Backends,
    attached: Vec<HookSpec>,
    open_cache: OpenCacheState,
    policies: PathBuf,
    cgroup_root: Option<PathBuf>,
    reloads: ReloadStats,
    /// Name lookups by result (`ok`, `no_records`, `nxdomain`, `error`).
    dns_resolutions: BTreeMap<&'static str, u64>,
}

/// What the loader put in place.
pub struct Enforcement {
    /// What enforces each operation.
    pub backends: Backends,
    /// The programs attached, in attach order.
    pub attached: Vec<HookSpec>,
    /// Whether `file_open` remembers allowed decisions.
    pub open_cache: OpenCacheState,
}

impl State {
    #[must_use]
    pub fn new(
        maps: RuleMaps,
        selector_maps: SelectorMaps,
        instances: InstanceMaps,
        enforcement: Enforcement,
        policies: PathBuf,
        cgroup_root: Option<PathBuf>,
    ) -> Self {
        let Enforcement {
            backends,
            attached,
            open_cache,
        } = enforcement;
        Self {
            maps,
            selector_maps,
            instances: Instances::new(instances),
            tasks: TaskTable::default(),
            backends,
            attached,
            open_cache,
            policies,
            cgroup_root,
            reloads: ReloadStats::default(),
            dns_resolutions: BTreeMap::new(),
        }
    }

    /// Installs the policies read at start (already validated as a whole).
    pub fn load(&mut self, policies: Vec<(PathBuf, TaskPolicy)>) -> Result<Change, ApplyError> {
        self.tasks.adopt(&self.maps, &self.selector_maps)?;
        let change = self
            .tasks
            .apply(&mut self.maps, &mut self.selector_maps, policies)?;
        self.adopt();
        Ok(change)
    }

    /// Re-reads the policy directory and applies what changed. A file that does not parse keeps
    /// its last good version; a set that is invalid as a whole (a task defined twice, ...) is
    /// refused and everything keeps enforcing as before. Returns the events to report.
    pub fn reload(&mut self) -> Vec<PolicyEvent> {
        let mut problems = Vec::new();
        let set = match policy::policy_files(&self.policies) {
            Ok(files) => {
                let last_good = self.tasks.last_good();
                let mut set = Vec::new();
                for file in files {
                    match policy::load_policy_file(&file) {
                        Ok(p) => set.push((file, p)),
                        Err(e) => {
                            let kept = last_good.get(&file).map(|p| p.name.to_string());
                            problems.push(match &kept {
                                Some(task) => format!(
                                    "{e} (task `{task}` keeps its last good version of this file)"
                                ),
                                None => format!("{e} (not loaded)"),
                            });
                            if let Some(p) = last_good.get(&file) {
                                set.push((file, p.clone()));
                            }
                        }
                    }
                }
                set.extend(policy::selftest_task::for_this_binary());
                let whole: Vec<String> = policy::set_problems(&set)
                    .iter()
                    .map(ToString::to_string)
                    .collect();
                if whole.is_empty() {
                    Some(set)
                } else {
                    problems.extend(
                        whole
                            .into_iter()
                            .map(|p| format!("{p} (the whole reload is refused)")),
                    );
                    None
                }
            }
            Err(e) => {
                problems.push(format!("{e} (the whole reload is refused)"));
                None
            }
        };
        let mut events = Vec::new();
        if let Some(set) = set {
            match self
                .tasks
                .apply(&mut self.maps, &mut self.selector_maps, set)
            {
                Ok(change) if change.is_empty() => {}
                Ok(change) => {
                    tracing::info!(
                        generation = self.tasks.generation,
                        added = ?change.added,
                        changed = ?change.changed,
                        removed = ?change.removed,
                        "policies reloaded"
                    );
                    self.adopt();
                    events.push(PolicyEvent::PolicyApplied {
                        generation: self.tasks.generation,
                        added: change.added,
                        changed: change.changed,
                        removed: change.removed,
                    });
                }
                Err(e) => problems.push(format!("{e:#} (the whole reload is refused)")),
            }
        }
        // A periodic rescan finding the same broken file again is not news.
        let news = !events.is_empty() || problems != self.reloads.problems;
        if !news {
            return events;
        }
        for p in &problems {
            tracing::warn!(problem = %p, "policy reload");
            events.push(PolicyEvent::PolicyRejected { error: p.clone() });
        }
        if problems.is_empty() {
            self.reloads.applied += 1;
        } else {
            self.reloads.rejected += 1;
        }
        self.reloads.problems = problems;
        events
    }

    /// The DNS names the loaded policies' `host` rules use.
    #[must_use]
    pub fn wanted_hosts(&self) -> std::collections::BTreeSet<policy::HostName> {
        self.tasks.wanted_hosts()
    }

    /// The names the loaded policies' `host` rules match (exactly or by wildcard).
    #[must_use]
    pub fn name_patterns(&self) -> super::dns::NamePatterns {
        self.tasks.name_patterns()
    }

    /// The ids of the tasks whose DNS goes through the proxy (those with wildcard hosts).
    #[must_use]
    pub fn learning_tasks(&self) -> std::collections::BTreeSet<u32> {
        self.tasks.learning_tasks()
    }

    /// Installs the resolver's current addresses into the tasks' rules.
    pub fn set_resolved(
        &mut self,
        resolved: crate::compile::ResolvedHosts,
    ) -> Result<(), ApplyError> {
        let changed = self.tasks.set_resolved(&mut self.maps, resolved)?;
        if !changed.is_empty() {
            tracing::debug!(tasks = ?changed, "resolved addresses written");
        }
        Ok(())
    }

    /// Counts one name lookup by result.
    pub fn count_resolution(&mut self, result: &'static str) {
        *self.dns_resolutions.entry(result).or_default() += 1;
    }

    /// `(map, entries, capacity)` of the rule maps now (see `TaskTable::map_entries`).
    #[must_use]
    pub fn rule_map_entries(&self) -> Vec<(&'static str, u64, u64)> {
        self.tasks.map_entries()
    }

    /// Name lookups by result, for the metrics.
    #[must_use]
    pub fn dns_resolutions(&self) -> &BTreeMap<&'static str, u64> {
        &self.dns_resolutions
    }

    /// Confines the processes already in selected cgroups.
    fn adopt(&mut self) {
        let Some(root) = self.cgroup_root.clone() else {
            return;
        };
        let cgroups: Vec<_> = self
            .tasks
            .iter()
            .flat_map(|t| {
                t.policy
                    .select_cgroups
                    .iter()
                    .map(move |c| (c.clone(), t.id))
            })
            .collect();
        let adopted = selectors::adopt_cgroup_members(
            &mut self.maps,
            &root,
            cgroups.iter().map(|(c, id)| (c, *id)),
        );
        if adopted > 0 {
            tracing::info!(adopted, "processes already in selected cgroups confined");
        }
    }

    /// Deletes replaced rules that no hook can still be using, forgets instances nothing
    /// belongs to any more, and returns the expiries to report.
    pub fn sweep(&mut self) -> Vec<PolicyEvent> {
        self.tasks.sweep(&mut self.maps);
        let Ok(live) = self.maps.live_instances() else {
            return Vec::new();
        };
        self.instances
            .sweep(&live)
            .into_iter()
            .map(|(id, info)| {
                let task = self
                    .tasks
                    .names()
                    .get(&info.task_id)
                    .cloned()
                    .unwrap_or_else(|| format!("id {}", info.task_id));
                tracing::warn!(
                    instance = id,
                    task,
                    "task instance expired: its processes are denied everything"
                );
                PolicyEvent::InstanceExpired {
                    instance: self.instances.uuid(id),
                    task,
                }
            })
            .collect()
    }

    /// The UUID of `instance` and the task names of its ancestors, nearest first.
    pub fn lineage(&mut self, instance: u32) -> (Option<String>, Vec<String>) {
        if instance == 0 {
            return (None, Vec::new());
        }
        let names = self.tasks.names();
        let parents = self
            .instances
            .ancestors(instance)
            .into_iter()
            .map(|id| {
                names
                    .get(&id)
                    .cloned()
                    .unwrap_or_else(|| format!("id {id}"))
            })
            .collect();
        (Some(self.instances.uuid(instance)), parents)
    }

    /// Task names by id, for events.
    #[must_use]
    pub fn task_names(&self) -> &HashMap<u32, String> {
        self.tasks.names()
    }

    /// The policy generation in the kernel (bumped by every change that reached it).
    #[must_use]
    pub fn generation(&self) -> u64 {
        self.tasks.generation
    }

    /// What enforces each operation here.
    #[must_use]
    pub fn backends(&self) -> Backends {
        self.backends
    }

    /// The policies directory.
    #[must_use]
    pub fn policies_dir(&self) -> &Path {
        &self.policies
    }

    /// The executable the kernel recorded for a confined process.
    #[must_use]
    pub fn exe_of(&self, tgid: u32) -> Option<String> {
        self.maps.exe_of(tgid)
    }

    /// Switches `task` between enforce and audit for its running processes, until its policy
    /// file changes. Only root outside any task may do it.
    pub fn set_mode(&mut self, peer: Peer, task: &str, mode: Mode) -> Response {
        if peer.uid != 0 {
            return Response::Refused {
                refusal: Refusal::NotPermitted,
                message: format!(
                    "only root may change a task's mode (caller uid {})",
                    peer.uid
                ),
            };
        }
        match self.maps.tag_of(peer.pid) {
            Ok(None) => {}
            Ok(Some(_)) => {
                return Response::Refused {
                    refusal: Refusal::NotPermitted,
                    message: "a confined process may not change any task's mode".to_owned(),
                };
            }
            Err(e) => {
                return Response::Refused {
                    refusal: Refusal::Internal,
                    message: format!("{e:#}"),
                };
            }
        }
        match self.tasks.set_mode(&mut self.maps, task, mode) {
            Ok(true) => {
                tracing::info!(task, mode = mode.as_str(), "task mode changed");
                Response::ModeSet {
                    task: task.to_owned(),
                    mode: mode.as_str().to_owned(),
                }
            }
            Ok(false) => Response::Refused {
                refusal: Refusal::UnknownTask,
                message: format!("no task named `{task}` is loaded"),
            },
            Err(e) => Response::Refused {
                refusal: Refusal::Internal,
                message: format!("{e:#}"),
            },
        }
    }

    /// Confines process `pid` with `task` in a new instance (expiring after `ttl`), refusing
    /// unknown tasks and (unless accepted, or the task is in audit mode) tasks this host cannot
    /// fully enforce. A confined caller may only move to one of its task's sub-tasks.
    pub fn tag(
        &mut self,
        pid: u32,
        task: &str,
        accept_unenforced: bool,
        ttl: Option<std::time::Duration>,
    ) -> Response {
        let Some(info) = self.tasks.get(task) else {
            return Response::Refused {
                refusal: Refusal::UnknownTask,
                message: format!("no task named `{task}` is loaded"),
            };
        };
        let task_id = info.id;
        // Landlock refuses: in audit mode the kill observer reports instead, and lets it happen.
        let landlock = (self.backends.needs_landlock() && info.mode == Mode::Enforce)
            .then(|| info.landlock.clone());
        let unenforced = self.backends.unenforced();
        if !unenforced.is_empty() && info.mode == Mode::Enforce && !accept_unenforced {
            let ops = &unenforced;
            return Response::Refused {
                refusal: Refusal::Unenforceable,
                message: format!(
                    "this host cannot enforce {} for task `{task}` (see `corral doctor`); use `mode: audit` in the policy or `corral run --accept-unenforced` to run anyway",
                    ops.join(", ")
                ),
            };
        }
        let current = match self.maps.tag_of(pid) {
            Ok(c) => c,
            Err(e) => {
                return Response::Refused {
                    refusal: Refusal::Internal,
                    message: format!("{e:#}"),
                };
            }
        };
        let (parent_instance, inherited_flags) = match current {
            None => (0, 0),
            Some(cur) => {
                let cur_name = self
                    .tasks
                    .names()
                    .get(&cur.task_id)
                    .cloned()
                    .unwrap_or_else(|| format!("id {}", cur.task_id));
                let allowed = self
                    .tasks
                    .get(&cur_name)
                    .is_some_and(|t| t.policy.subtasks.iter().any(|s| s.as_str() == task));
                if !allowed {
                    return Response::Refused {
                        refusal: Refusal::AlreadyTagged,
                        message: format!(
                            "process {pid} is confined by task `{cur_name}`, which may not hand `{task}` to its children (not in its spec.subtasks)"
                        ),
                    };
                }
                (cur.instance, cur.flags)
            }
        };
        let (instance, uuid) = match self.instances.create(task_id, parent_instance, ttl) {
            Ok(i) => i,
            Err(e) => {
                return Response::Refused {
                    refusal: Refusal::Internal,
                    message: format!("{e:#}"),
                };
            }
        };
        let tag = TaskTag {
            task_id,
            // The new instance's own expiry decides `TAG_NO_EXPIRY`, not the parent's.
            flags: (inherited_flags & !TAG_NO_EXPIRY)
                | if landlock.is_some() { TAG_LANDLOCK } else { 0 }
                | if ttl.is_none() { TAG_NO_EXPIRY } else { 0 },
            instance,
            reserved: 0,
        };
        let written = if current.is_some() {
            self.maps.hand_over(pid, tag)
        } else {
            self.maps.tag(pid, tag)
        };
        match written {
            Ok(()) => {
                tracing::info!(pid, task, task_id, instance = %uuid, parent_instance, "process confined");
                Response::Tagged {
                    task: task.to_owned(),
                    task_id,
                    pid,
                    instance: uuid,
                    landlock,
                }
            }
            Err(e) => Response::Refused {
                // BPF_NOEXIST lost a race with a concurrent tag: still a refusal.
                refusal: Refusal::AlreadyTagged,
                message: format!("{e:#}"),
            },
        }
    }

    /// Hooks, tasks with their confined process counts, policy generation, and counters.
    #[must_use]
    pub fn status(&self) -> Response {
        let hooks: Vec<_> = self
            .attached
            .iter()
            .map(|h| json!({"program": h.program, "kind": h.kind.as_str(), "hook": h.hook, "attached": true}))
            .collect();
        let counts = self.maps.tag_counts().unwrap_or_else(|e| {
            tracing::warn!("cannot count confined processes: {e:#}");
            HashMap::new()
        });
        let tasks: BTreeMap<u32, serde_json::Value> = self
            .tasks
            .iter()
            .map(|t| {
                (
                    t.id,
                    json!({
                        "name": t.policy.name.as_str(),
                        "id": t.id,
                        "mode": t.mode.as_str(),
                        "file": t.file.display().to_string(),
                        "processes": counts.get(&t.id).copied().unwrap_or(0),
                    }),
                )
            })
            .collect();
        let counters = match self.maps.counters() {
            Ok(c) => serde_json::to_value(c).unwrap_or_default(),
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        Response::Status {
            status: json!({
                "backends": self.backends.to_json(),
                "hooks": hooks,
                "open_decision_cache": self.open_cache.to_json(),
                "tasks": tasks.into_values().collect::<Vec<_>>(),
                "confined_processes": counts.values().sum::<usize>(),
                "policy": {
                    "directory": self.policies.display().to_string(),
                    "generation": self.tasks.generation,
                    "reloads": self.reloads,
                },
                "counters": counters,
            }),
        }
    }
}

/// Who is on the other end of the control socket (from its credentials).
#[derive(Debug, Clone, Copy)]
pub struct Peer {
    pub pid: u32,
    pub uid: u32,
}
