//! The `INSTANCES` map: one entry per `corral run` (task, parent instance, expiry).

use std::collections::HashMap as StdHashMap;

use agent_common::{InstanceInfo, names};
use aya::{
    Ebpf,
    maps::{HashMap, MapData, MapError},
};

use super::rules::{RulesError, take};

/// Typed handle on `INSTANCES`.
pub struct InstanceMaps {
    instances: HashMap<MapData, u32, InstanceInfo>,
}

impl InstanceMaps {
    /// Takes the map out of the loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, RulesError> {
        Ok(Self {
            instances: take(ebpf, names::INSTANCES)?,
        })
    }

    /// Records an instance. `BPF_NOEXIST`: ids are never reused.
    pub fn insert(&mut self, instance: u32, info: InstanceInfo) -> Result<(), RulesError> {
        const BPF_NOEXIST: u64 = 1;
        self.instances
            .insert(instance, info, BPF_NOEXIST)
            .map_err(|source| RulesError::Write {
                map: names::INSTANCES,
                task_id: info.task_id,
                source,
            })
    }

    /// One instance, if known.
    #[must_use]
    pub fn get(&self, instance: u32) -> Option<InstanceInfo> {
        self.instances.get(&instance, 0).ok()
    }

    /// Every instance (an earlier daemon's included).
    pub fn all(&self) -> Result<StdHashMap<u32, InstanceInfo>, RulesError> {
        let mut out = StdHashMap::new();
        for entry in &self.instances {
            match entry {
                Ok((k, v)) => {
                    out.insert(k, v);
                }
                Err(MapError::KeyNotFound) => {}
                Err(source) => {
                    return Err(RulesError::Read {
                        map: names::INSTANCES,
                        source,
                    });
                }
            }
        }
        Ok(out)
    }

    /// Forgets an instance no process belongs to any more.
    pub fn remove(&mut self, instance: u32) {
        let _ = self.instances.remove(&instance);
    }
}
