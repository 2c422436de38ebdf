//! Typed handles on the object's maps, and the writes the daemon makes to them.

use std::collections::HashMap as StdHashMap;

use agent_common::{
    COUNTER_EVENTS_DROPPED, COUNTER_OPEN_CACHE_HITS, COUNTER_TAG_INSERT_FAILED, Decision,
    EXE_PATH_MAX, ExePath, FileRuleData, Mode, NetV4Data, NetV6Data, Op, PortRange, PortSet,
    TaskConfig, TaskTag, UnixRuleKey, counter_index, names,
};
use agent_common::{DeniedInodeKey, IDENTITY_DENIED};
use aya::{
    Ebpf,
    maps::{HashMap, LpmTrie, MapData, MapError, PerCpuArray, RingBuf, lpm_trie::Key},
};

use super::tagged::{TaggedBytes, TaggedError};
use crate::compile::CompiledTask;

#[derive(Debug, thiserror::Error)]
pub enum RulesError {
    #[error("map `{map}` is missing from the eBPF object")]
    MissingMap { map: &'static str },
    #[error("map `{map}` has an unexpected type: {source}")]
    MapType { map: &'static str, source: MapError },
    #[error("cannot write map `{map}` for task id {task_id}: {source}")]
    Write {
        map: &'static str,
        task_id: u32,
        source: MapError,
    },
    #[error("cannot read map `{map}`: {source}")]
    Read { map: &'static str, source: MapError },
    #[error("cannot tag process {tgid}: {source}")]
    Tag { tgid: u32, source: MapError },
    #[error(transparent)]
    Tagged(#[from] TaggedError),
}

/// Decision and drop counters summed over CPUs, per operation name.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct Counters {
    #[serde(flatten)]
    pub ops: std::collections::BTreeMap<&'static str, OpCounters>,
    pub events_dropped: u64,
    pub tag_insert_failed: u64,
    /// Opens allowed by a remembered decision (BPF LSM only; also counted as allowed opens).
    pub open_cache_hits: u64,
}

#[derive(Debug, Clone, Copy, Default, serde::Serialize)]
pub struct OpCounters {
    pub allowed: u64,
    pub denied: u64,
    pub audited: u64,
}

/// The maps the daemon writes and reads.
pub struct RuleMaps {
    tags: HashMap<MapData, u32, TaskTag>,
    /// The untagged fast path's bytes: set before each `tags` insert.
    tagged: TaggedBytes,
    tasks: HashMap<MapData, u32, TaskConfig>,
    files: LpmTrie<MapData, FileRuleData, u32>,
    net_v4: LpmTrie<MapData, NetV4Data, PortSet>,
    net_v6: LpmTrie<MapData, NetV6Data, PortSet>,
    unix: HashMap<MapData, UnixRuleKey, u32>,
    privileges: HashMap<MapData, u32, u32>,
    counters: PerCpuArray<MapData, u64>,
    exes: HashMap<MapData, u32, ExePath>,
    identities: HashMap<MapData, DeniedInodeKey, u32>,
}

pub(super) fn take<T>(ebpf: &mut Ebpf, map: &'static str) -> Result<T, RulesError>
where
    T: TryFrom<aya::maps::Map, Error = MapError>,
{
    let raw = ebpf.take_map(map).ok_or(RulesError::MissingMap { map })?;
    T::try_from(raw).map_err(|source| RulesError::MapType { map, source })
}

/// Writes `value` as the one entry (index 0) of `array`, the single-entry map named `map`.
pub(super) fn write_single<T: aya::Pod>(
    array: &mut aya::maps::Array<MapData, T>,
    map: &'static str,
    value: T,
) -> Result<(), RulesError> {
    array.set(0, value, 0).map_err(|source| RulesError::Write {
        map,
        task_id: 0,
        source,
    })
}

impl RuleMaps {
    /// Takes the maps out of the loaded object (the programs keep their own references).
    pub fn take(ebpf: &mut Ebpf) -> Result<(Self, RingBuf<MapData>), RulesError> {
        let maps = Self {
            tags: take(ebpf, names::TAGS)?,
            tagged: TaggedBytes::take(ebpf)?,
            tasks: take(ebpf, names::TASKS)?,
            files: take(ebpf, names::FILE_RULES)?,
            net_v4: take(ebpf, names::NET_V4_RULES)?,
            net_v6: take(ebpf, names::NET_V6_RULES)?,
            unix: take(ebpf, names::UNIX_RULES)?,
            privileges: take(ebpf, names::PRIVILEGES)?,
            counters: take(ebpf, names::COUNTERS)?,
            exes: take(ebpf, names::EXES)?,
            identities: take(ebpf, names::DENIED_INODES)?,
        };
        let events = take(ebpf, names::EVENTS)?;
        Ok((maps, events))
    }

    /// Writes every rule of a compiled task (compiled with `rules_id`). Nothing reads them until
    /// `set_task` points a task at `rules_id`.
    pub fn write_rules(&mut self, rules_id: u32, task: &CompiledTask) -> Result<(), RulesError> {
        let write = |map: &'static str| {
            move |source| RulesError::Write {
                map,
                task_id: rules_id,
                source,
            }
        };
        for e in &task.files {
            self.files
                .insert(&Key::new(e.prefix_len, e.data), e.flags, 0)
                .map_err(write(names::FILE_RULES))?;
        }
        for e in &task.net_v4 {
            self.net_v4
                .insert(&Key::new(e.prefix_len, e.data), kernel_port_set(e.ports), 0)
                .map_err(write(names::NET_V4_RULES))?;
        }
        for e in &task.net_v6 {
            self.net_v6
                .insert(&Key::new(e.prefix_len, e.data), kernel_port_set(e.ports), 0)
                .map_err(write(names::NET_V6_RULES))?;
        }
        for key in &task.unix {
            self.unix
                .insert(key, 1, 0)
                .map_err(write(names::UNIX_RULES))?;
        }
        if task.privileges != 0 {
            self.privileges
                .insert(rules_id, task.privileges, 0)
                .map_err(write(names::PRIVILEGES))?;
        }
        self.write_identities(rules_id, &task.identities)
    }

    /// Writes `DENIED_INODES` keys (of rule set `rules_id`).
    pub fn write_identities(
        &mut self,
        rules_id: u32,
        keys: &[DeniedInodeKey],
    ) -> Result<(), RulesError> {
        for key in keys {
            self.identities
                .insert(key, IDENTITY_DENIED, 0)
                .map_err(|source| RulesError::Write {
                    map: names::DENIED_INODES,
                    task_id: rules_id,
                    source,
                })?;
        }
        Ok(())
    }

    /// Deletes `DENIED_INODES` keys (of rule set `rules_id`); keys already gone are fine.
    pub fn delete_identities(
        &mut self,
        rules_id: u32,
        keys: &[DeniedInodeKey],
    ) -> Result<(), RulesError> {
        for key in keys {
            match self.identities.remove(key) {
                // A hash map's missing key is `ENOENT` from the syscall, not `KeyNotFound`.
                Ok(()) | Err(MapError::KeyNotFound) => {}
                Err(MapError::SyscallError(e))
                    if e.io_error.raw_os_error() == Some(libc::ENOENT) => {}
                Err(source) => {
                    return Err(RulesError::Write {
                        map: names::DENIED_INODES,
                        task_id: rules_id,
                        source,
                    });
                }
            }
        }
        Ok(())
    }

    /// Points task `task_id` at the rules written under `rules_id`, in `mode`: one map update,
    /// so every hook sees the old rule set or the new one, never a mix. Until a task has an
    /// entry its processes (if any) are denied everything.
    pub fn set_task(&mut self, task_id: u32, mode: Mode, rules_id: u32) -> Result<(), RulesError> {
        let config = TaskConfig {
            mode: mode as u32,
            rules_id,
        };
        self.tasks
            .insert(task_id, config, 0)
            .map_err(|source| RulesError::Write {
                map: names::TASKS,
                task_id,
                source,
            })
    }

    /// Removes a task's `TASKS` entry: its processes stay confined and are denied everything.
    pub fn remove_task(&mut self, task_id: u32) -> Result<(), RulesError> {
        match self.tasks.remove(&task_id) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(RulesError::Write {
                map: names::TASKS,
                task_id,
                source,
            }),
        }
    }

    /// Deletes rules no task points at any more (entries already gone are fine).
    pub fn delete_rules(&mut self, rules_id: u32, task: &CompiledTask) -> Result<(), RulesError> {
        let gone = |map: &'static str| {
            move |r: Result<(), MapError>| match r {
                Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
                Err(source) => Err(RulesError::Write {
                    map,
                    task_id: rules_id,
                    source,
                }),
            }
        };
        for e in &task.files {
            gone(names::FILE_RULES)(self.files.remove(&Key::new(e.prefix_len, e.data)))?;
        }
        for e in &task.net_v4 {
            gone(names::NET_V4_RULES)(self.net_v4.remove(&Key::new(e.prefix_len, e.data)))?;
        }
        for e in &task.net_v6 {
            gone(names::NET_V6_RULES)(self.net_v6.remove(&Key::new(e.prefix_len, e.data)))?;
        }
        for key in &task.unix {
            gone(names::UNIX_RULES)(self.unix.remove(key))?;
        }
        // Written only when the task has privileges (a missing key is ENOENT here, not
        // `KeyNotFound`).
        if task.privileges != 0 {
            gone(names::PRIVILEGES)(self.privileges.remove(&rules_id))?;
        }
        self.delete_identities(rules_id, &task.identities)
    }

    /// The `TASKS` entries an earlier daemon left in pinned maps: task id → rules id.
    pub fn task_entries(&self) -> Result<StdHashMap<u32, u32>, RulesError> {
        let mut out = StdHashMap::new();
        for entry in &self.tasks {
            let (id, cfg) = entry.map_err(|source| RulesError::Read {
                map: names::TASKS,
                source,
            })?;
            out.insert(id, cfg.rules_id);
        }
        Ok(out)
    }

    /// The rules ids present in the rule maps (an earlier daemon's included).
    pub fn rules_ids(&self) -> Result<std::collections::HashSet<u32>, RulesError> {
        let read = |map: &'static str| move |source| RulesError::Read { map, source };
        let mut ids = std::collections::HashSet::new();
        for k in self.files.keys() {
            ids.insert(k.map_err(read(names::FILE_RULES))?.data().task_id);
        }
        for k in self.net_v4.keys() {
            ids.insert(k.map_err(read(names::NET_V4_RULES))?.data().task_id);
        }
        for k in self.net_v6.keys() {
            ids.insert(k.map_err(read(names::NET_V6_RULES))?.data().task_id);
        }
        for k in self.unix.keys() {
            ids.insert(k.map_err(read(names::UNIX_RULES))?.task_id);
        }
        for k in self.privileges.keys() {
            ids.insert(k.map_err(read(names::PRIVILEGES))?);
        }
        for k in self.identities.keys() {
            ids.insert(k.map_err(read(names::DENIED_INODES))?.rules_id);
        }
        Ok(ids)
    }

    /// Deletes every rule entry whose rules id is not in `keep` (an earlier daemon's leftovers).
    /// Returns how many were deleted.
    pub fn purge_rules_except(
        &mut self,
        keep: &std::collections::HashSet<u32>,
    ) -> Result<usize, RulesError> {
        let read = |map: &'static str| move |source| RulesError::Read { map, source };
        let files: Vec<_> = self
            .files
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(read(names::FILE_RULES))?;
        let v4: Vec<_> = self
            .net_v4
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(read(names::NET_V4_RULES))?;
        let v6: Vec<_> = self
            .net_v6
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(read(names::NET_V6_RULES))?;
        let unix: Vec<_> = self
            .unix
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(read(names::UNIX_RULES))?;
        let mut deleted = 0;
        for k in files.iter().filter(|k| !keep.contains(&k.data().task_id)) {
            deleted += usize::from(self.files.remove(k).is_ok());
        }
        for k in v4.iter().filter(|k| !keep.contains(&k.data().task_id)) {
            deleted += usize::from(self.net_v4.remove(k).is_ok());
        }
        for k in v6.iter().filter(|k| !keep.contains(&k.data().task_id)) {
            deleted += usize::from(self.net_v6.remove(k).is_ok());
        }
        for k in unix.iter().filter(|k| !keep.contains(&k.task_id)) {
            deleted += usize::from(self.unix.remove(k).is_ok());
        }
        let privileges: Vec<u32> = self
            .privileges
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(read(names::PRIVILEGES))?;
        for k in privileges.iter().filter(|k| !keep.contains(k)) {
            deleted += usize::from(self.privileges.remove(k).is_ok());
        }
        let identities: Vec<DeniedInodeKey> = self
            .identities
            .keys()
            .collect::<Result<Vec<_>, _>>()
            .map_err(read(names::DENIED_INODES))?;
        for k in identities.iter().filter(|k| !keep.contains(&k.rules_id)) {
            deleted += usize::from(self.identities.remove(k).is_ok());
        }
        Ok(deleted)
    }

    /// Writes a task's rules under `rules_id`, then its `TASKS` entry.
    pub fn install_task(
        &mut self,
        task_id: u32,
        rules_id: u32,
        task: &CompiledTask,
    ) -> Result<(), RulesError> {
        self.write_rules(rules_id, task)?;
        self.set_task(task_id, task.mode, rules_id)
    }

    /// The task a process is confined by, if any.
    pub fn tag_of(&self, tgid: u32) -> Result<Option<TaskTag>, RulesError> {
        match self.tags.get(&tgid, 0) {
            Ok(tag) => Ok(Some(tag)),
            Err(MapError::KeyNotFound) => Ok(None),
            Err(source) => Err(RulesError::Read {
                map: names::TAGS,
                source,
            }),
        }
    }

    /// Confines a process (and, through the fork hook, everything it starts afterwards).
    /// `BPF_NOEXIST`: an already tagged process is never moved to another task this way.
    pub fn tag(&mut self, tgid: u32, tag: TaskTag) -> Result<(), RulesError> {
        const BPF_NOEXIST: u64 = 1;
        // The byte first: the entry is never there without it.
        self.tagged.mark(tgid);
        self.tags
            .insert(tgid, tag, BPF_NOEXIST)
            .map_err(|source| RulesError::Tag { tgid, source })
    }

    /// Moves a confined process to a sub-task (`BPF_EXIST`: only if it is still confined).
    /// Children it already has keep the old tag; the caller is `corral run`, which has none.
    pub fn hand_over(&mut self, tgid: u32, tag: TaskTag) -> Result<(), RulesError> {
        const BPF_EXIST: u64 = 2;
        // Set with its current tag already; set again so this write never relies on that.
        self.tagged.mark(tgid);
        self.tags
            .insert(tgid, tag, BPF_EXIST)
            .map_err(|source| RulesError::Tag { tgid, source })
    }

    /// Marks every process `TAGS` holds in `TAGGED` and lets the programs trust it (see
    /// `TaggedBytes::complete`): once per generation of programs, after the earlier generation's
    /// links are gone. Until then every hook takes the `TAGS` look-up.
    pub fn complete_tagged(&self) -> Result<usize, RulesError> {
        let tgids: Vec<u32> = self
            .tags
            .keys()
            .collect::<Result<_, _>>()
            .map_err(|source| RulesError::Read {
                map: names::TAGS,
                source,
            })?;
        let n = tgids.len();
        self.tagged.complete(tgids);
        Ok(n)
    }

    /// The instances some confined process still belongs to.
    pub fn live_instances(&self) -> Result<std::collections::HashSet<u32>, RulesError> {
        let read = |source| RulesError::Read {
            map: names::TAGS,
            source,
        };
        let mut out = std::collections::HashSet::new();
        let tgids: Vec<u32> = self.tags.keys().collect::<Result<_, _>>().map_err(read)?;
        for tgid in tgids {
            match self.tags.get(&tgid, 0) {
                Ok(tag) => {
                    out.insert(tag.instance);
                }
                Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(read(e)),
            }
        }
        Ok(out)
    }

    /// Tagged processes per task id.
    pub fn tag_counts(&self) -> Result<StdHashMap<u32, usize>, RulesError> {
        let read = |source| RulesError::Read {
            map: names::TAGS,
            source,
        };
        let mut counts = StdHashMap::new();
        let tgids: Vec<u32> = self.tags.keys().collect::<Result<_, _>>().map_err(read)?;
        for tgid in tgids {
            match self.tags.get(&tgid, 0) {
                Ok(tag) => *counts.entry(tag.task_id).or_default() += 1,
                // The process exited while we counted.
                Err(MapError::KeyNotFound) => {}
                Err(e) => return Err(read(e)),
            }
        }
        Ok(counts)
    }

    /// The executable a confined process last exec'd, as the kernel resolved it (cut paths end
    /// in `…`). `None` if the process never exec'd while confined or the entry was evicted.
    #[must_use]
    pub fn exe_of(&self, tgid: u32) -> Option<String> {
        let exe = self.exes.get(&tgid, 0).ok()?;
        let kept = (exe.len as usize).min(EXE_PATH_MAX);
        let mut text = String::from_utf8_lossy(&exe.path[..kept]).into_owned();
        if exe.len as usize > EXE_PATH_MAX {
            text.push('…');
        }
        Some(text)
    }

    /// Decision and drop counters, summed over CPUs.
    pub fn counters(&self) -> Result<Counters, RulesError> {
        let read = |slot: u32| -> Result<u64, RulesError> {
            let values = self
                .counters
                .get(&slot, 0)
                .map_err(|source| RulesError::Read {
                    map: names::COUNTERS,
                    source,
                })?;
            Ok(values.iter().sum())
        };
        let op = |op: Op| -> Result<OpCounters, RulesError> {
            Ok(OpCounters {
                allowed: read(counter_index(op as u32, Decision::Allowed as u32))?,
                denied: read(counter_index(op as u32, Decision::Denied as u32))?,
                audited: read(counter_index(op as u32, Decision::Audited as u32))?,
            })
        };
        let mut ops = std::collections::BTreeMap::new();
        for code in 1..=agent_common::OP_CODE_MAX {
            if let Ok(o) = Op::try_from(code) {
                ops.insert(o.as_str(), op(o)?);
            }
        }
        Ok(Counters {
            ops,
            events_dropped: read(COUNTER_EVENTS_DROPPED)?,
            tag_insert_failed: read(COUNTER_TAG_INSERT_FAILED)?,
            open_cache_hits: read(COUNTER_OPEN_CACHE_HITS)?,
        })
    }
}

/// The kernel checks every slot of a `PortSet`: slots past `count` become the empty range.
fn kernel_port_set(mut ports: PortSet) -> PortSet {
    let used = (ports.count as usize).min(ports.ranges.len());
    for slot in &mut ports.ranges[used..] {
        *slot = PortRange::EMPTY;
    }
    ports
}

#[cfg(test)]
mod tests {
    use agent_common::PORT_RANGES_MAX;

    use super::*;

    #[test]
    fn unused_port_slots_match_no_port() {
        let mut ranges = [PortRange::default(); PORT_RANGES_MAX];
        ranges[0] = PortRange { lo: 443, hi: 443 };
        let set = kernel_port_set(PortSet { count: 1, ranges });
        assert_eq!(
            set.ranges[0],
            PortRange { lo: 443, hi: 443 },
            "used slot kept"
        );
        for r in &set.ranges[1..] {
            assert!(
                r.lo > r.hi,
                "unused slot {r:?} must be empty, else port 0 would pass"
            );
        }
    }
}
