//! Installing the policies' selectors, and adopting the processes already in selected cgroups.

use std::{
    collections::{HashMap, HashSet},
    fs, io,
    path::{Path, PathBuf},
};

use agent_common::{InodeKey, TAG_SELECTED, TaskTag};

use crate::{
    compile::executable_key,
    loader::RuleMaps,
    policy::{CgroupPath, TaskPolicy},
};

/// Passes over the selected cgroups when adopting their processes: each pass tags what the
/// previous one missed (processes forked meanwhile by a parent not yet tagged).
const ADOPT_PASSES: usize = 8;

/// The identity of every selected executable, for the task that selects it. An executable that
/// cannot be resolved now (not installed yet) is reported and left out, never a silent no-op.
#[must_use]
pub fn resolve_executables(policies: &[(&TaskPolicy, u32)]) -> HashMap<InodeKey, u32> {
    let mut keys = HashMap::new();
    for (policy, task_id) in policies {
        for exe in &policy.select_executables {
            match executable_key(Path::new(exe.as_str())) {
                Ok(key) => {
                    keys.insert(key, *task_id);
                }
                Err(e) => tracing::warn!(
                    task = %policy.name,
                    executable = %exe,
                    error = %e,
                    "selector INACTIVE: the executable cannot be resolved (it is retried at every reload and every {} s)",
                    super::reload::RESCAN_EVERY.as_secs()
                ),
            }
        }
    }
    keys
}

/// Tags the processes that were already in a selected cgroup (or below it) when the selectors
/// were installed; those arriving later are tagged by the kernel. Returns how many were tagged.
pub fn adopt_cgroup_members<'a>(
    maps: &mut RuleMaps,
    cgroup_root: &Path,
    cgroups: impl IntoIterator<Item = (&'a CgroupPath, u32)>,
) -> usize {
    let mut adopted = 0;
    for (cgroup, task_id) in cgroups {
        let dir = cgroup_root.join(cgroup.as_str().trim_start_matches('/'));
        let mut seen = HashSet::new();
        for _ in 0..ADOPT_PASSES {
            let pids = match member_pids(&dir) {
                Ok(pids) => pids,
                Err(e) if e.kind() == io::ErrorKind::NotFound => break,
                Err(e) => {
                    tracing::warn!(cgroup = %cgroup, dir = %dir.display(), error = %e, "cannot list the processes of a selected cgroup");
                    break;
                }
            };
            let new: Vec<u32> = pids.into_iter().filter(|p| seen.insert(*p)).collect();
            if new.is_empty() {
                break;
            }
            for pid in new {
                // An already tagged process keeps its task; a vanished one needs nothing.
                let tag = TaskTag {
                    task_id,
                    flags: TAG_SELECTED,
                    instance: 0,
                    reserved: 0,
                };
                if maps.tag(pid, tag).is_ok() {
                    adopted += 1;
                    tracing::info!(pid, cgroup = %cgroup, task_id, "process in a selected cgroup confined");
                }
            }
        }
    }
    adopted
}

/// The processes of the cgroup at `dir` and of every cgroup below it.
fn member_pids(dir: &Path) -> io::Result<Vec<u32>> {
    let mut pids = Vec::new();
    let mut stack: Vec<PathBuf> = vec![dir.to_owned()];
    while let Some(d) = stack.pop() {
        let procs = match fs::read_to_string(d.join("cgroup.procs")) {
            Ok(text) => text,
            // A child cgroup removed while we walk.
            Err(e) if e.kind() == io::ErrorKind::NotFound && d != dir => continue,
            Err(e) => return Err(e),
        };
        pids.extend(procs.lines().filter_map(|l| l.trim().parse::<u32>().ok()));
        for entry in fs::read_dir(&d)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                stack.push(entry.path());
            }
        }
    }
    Ok(pids)
}
