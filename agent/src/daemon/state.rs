//! What the daemon knows at run time: the maps, and the tasks by name and id.

use std::collections::HashMap;

use serde_json::json;

use agent_common::{Mode, TAG_LANDLOCK};

use crate::{
    compile::CompiledTask,
    daemon::protocol::{Refusal, Response},
    landlock::LandlockSpec,
    loader::{Backends, HookSpec, RuleMaps},
};

struct TaskInfo {
    id: u32,
    mode: Mode,
    /// What `corral run` applies where exec/open are enforced by Landlock.
    landlock: LandlockSpec,
}

pub struct State {
    maps: RuleMaps,
    by_name: HashMap<String, TaskInfo>,
    names: HashMap<u32, String>,
    backends: Backends,
    attached: Vec<HookSpec>,
}

impl State {
    #[must_use]
    pub fn new(
        maps: RuleMaps,
        tasks: &[(String, u32, CompiledTask)],
        backends: Backends,
        attached: Vec<HookSpec>,
        mut landlock: HashMap<String, LandlockSpec>,
    ) -> Self {
        let by_name = tasks
            .iter()
            .map(|(name, id, t)| {
                (
                    name.clone(),
                    TaskInfo {
                        id: *id,
                        mode: t.mode,
                        landlock: landlock.remove(name).unwrap_or_else(|| LandlockSpec {
                            task: name.clone(),
                            exec: Vec::new(),
                            read: Vec::new(),
                            write: Vec::new(),
                            deny: Vec::new(),
                        }),
                    },
                )
            })
            .collect();
        let names = tasks
            .iter()
            .map(|(name, id, _)| (*id, name.clone()))
            .collect();
        Self {
            maps,
            by_name,
            names,
            backends,
            attached,
        }
    }

    /// Task names by id, for events.
    #[must_use]
    pub fn task_names(&self) -> &HashMap<u32, String> {
        &self.names
    }

    /// What enforces each operation here.
    #[must_use]
    pub fn backends(&self) -> Backends {
        self.backends
    }

    /// The executable the kernel recorded for a confined process.
    #[must_use]
    pub fn exe_of(&self, tgid: u32) -> Option<String> {
        self.maps.exe_of(tgid)
    }

    /// Confines process `pid` with `task`, refusing unknown tasks, already confined callers, and
    /// (unless accepted, or the task is in audit mode) tasks this host cannot fully enforce.
    pub fn tag(&mut self, pid: u32, task: &str, accept_unenforced: bool) -> Response {
        let Some(info) = self.by_name.get(task) else {
            return Response::Refused {
                refusal: Refusal::UnknownTask,
                message: format!("no task named `{task}` is loaded"),
            };
        };
        let task_id = info.id;
        // Landlock refuses: in audit mode the kill observer reports instead, and lets it happen.
        let landlock = (self.backends.needs_landlock() && info.mode == Mode::Enforce)
            .then(|| info.landlock.clone());
        let flags = if landlock.is_some() { TAG_LANDLOCK } else { 0 };
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
        match self.maps.tag_of(pid) {
            Ok(Some(current)) => {
                let current = self
                    .names
                    .get(&current)
                    .map_or_else(|| format!("id {current}"), Clone::clone);
                return Response::Refused {
                    refusal: Refusal::AlreadyTagged,
                    message: format!(
                        "process {pid} is already confined by task `{current}`; a confined process cannot change its task"
                    ),
                };
            }
            Ok(None) => {}
            Err(e) => {
                return Response::Refused {
                    refusal: Refusal::Internal,
                    message: format!("{e:#}"),
                };
            }
        }
        match self.maps.tag(pid, task_id, flags) {
            Ok(()) => {
                tracing::info!(pid, task, task_id, "process confined");
                Response::Tagged {
                    task: task.to_owned(),
                    task_id,
                    pid,
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

    /// Hooks, tasks with their confined process counts, and counters.
    #[must_use]
    pub fn status(&self) -> Response {
        let hooks: Vec<_> = self
            .attached
            .iter()
            .map(|h| json!({"program": h.program, "kind": h.kind.as_str(), "hook": h.hook, "attached": true}))
            .collect();
        let counts = self.maps.tag_counts().unwrap_or_default();
        let mut tasks: Vec<_> = self
            .by_name
            .iter()
            .map(|(name, info)| {
                json!({
                    "name": name,
                    "id": info.id,
                    "mode": info.mode.as_str(),
                    "processes": counts.get(&info.id).copied().unwrap_or(0),
                })
            })
            .collect();
        tasks.sort_by_key(|t| t["id"].as_u64());
        let counters = match self.maps.counters() {
            Ok(c) => serde_json::to_value(c).unwrap_or_default(),
            Err(e) => json!({"error": format!("{e:#}")}),
        };
        Response::Status {
            status: json!({
                "backends": self.backends.to_json(),
                "hooks": hooks,
                "tasks": tasks,
                "counters": counters,
            }),
        }
    }
}
