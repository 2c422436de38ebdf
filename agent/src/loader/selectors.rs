//! The selector maps: executables and cgroups whose processes join a task.

use std::collections::HashMap as StdHashMap;

use agent_common::{CgroupPathData, InodeKey, names};
use aya::{
    Ebpf,
    maps::{HashMap, LpmTrie, MapData, MapError, lpm_trie::Key},
};

use super::rules::{RulesError, take};
use crate::compile::CgroupEntry;

/// Typed handles on `EXEC_SELECTORS` and `CGROUP_SELECTORS`.
pub struct SelectorMaps {
    executables: HashMap<MapData, InodeKey, u32>,
    cgroups: LpmTrie<MapData, CgroupPathData, u32>,
}

impl SelectorMaps {
    /// Takes the maps out of the loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, RulesError> {
        Ok(Self {
            executables: take(ebpf, names::EXEC_SELECTORS)?,
            cgroups: take(ebpf, names::CGROUP_SELECTORS)?,
        })
    }

    /// What the maps hold now (an earlier daemon's entries included).
    pub fn installed(&self) -> Result<(StdHashMap<InodeKey, u32>, Vec<CgroupEntry>), RulesError> {
        let read = |map: &'static str| move |source| RulesError::Read { map, source };
        let mut executables = StdHashMap::new();
        for entry in &self.executables {
            let (k, v) = entry.map_err(read(names::EXEC_SELECTORS))?;
            executables.insert(k, v);
        }
        let mut cgroups = Vec::new();
        for entry in &self.cgroups {
            let (k, v) = entry.map_err(read(names::CGROUP_SELECTORS))?;
            cgroups.push(CgroupEntry {
                prefix_len: k.prefix_len(),
                data: k.data(),
                task_id: v,
            });
        }
        Ok((executables, cgroups))
    }

    /// Makes an exec of the file `key` join `task_id`.
    pub fn select_executable(&mut self, key: InodeKey, task_id: u32) -> Result<(), RulesError> {
        self.executables
            .insert(key, task_id, 0)
            .map_err(|source| RulesError::Write {
                map: names::EXEC_SELECTORS,
                task_id,
                source,
            })
    }

    /// Makes processes entering a cgroup covered by `entry` join its task.
    pub fn select_cgroup(&mut self, entry: &CgroupEntry) -> Result<(), RulesError> {
        self.cgroups
            .insert(&Key::new(entry.prefix_len, entry.data), entry.task_id, 0)
            .map_err(|source| RulesError::Write {
                map: names::CGROUP_SELECTORS,
                task_id: entry.task_id,
                source,
            })
    }

    /// Stops an exec of the file `key` from joining a task.
    pub fn unselect_executable(&mut self, key: InodeKey) -> Result<(), RulesError> {
        match self.executables.remove(&key) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(RulesError::Write {
                map: names::EXEC_SELECTORS,
                task_id: 0,
                source,
            }),
        }
    }

    /// Stops processes entering a cgroup covered by `entry` from joining its task.
    pub fn unselect_cgroup(&mut self, entry: &CgroupEntry) -> Result<(), RulesError> {
        match self.cgroups.remove(&Key::new(entry.prefix_len, entry.data)) {
            Ok(()) | Err(MapError::KeyNotFound) => Ok(()),
            Err(source) => Err(RulesError::Write {
                map: names::CGROUP_SELECTORS,
                task_id: entry.task_id,
                source,
            }),
        }
    }
}
