//! The `SETTINGS` map: run-time settings of the kernel programs (which allowed decisions become
//! events), written at start and on every configuration reload.

use agent_common::{Settings, names};
use aya::{
    Ebpf,
    maps::{Array, MapData},
};

use super::rules::{RulesError, take, write_single};

/// Typed handle on `SETTINGS`.
pub struct SettingsMap {
    settings: Array<MapData, Settings>,
}

impl SettingsMap {
    /// Takes the map out of the loaded object.
    pub fn take(ebpf: &mut Ebpf) -> Result<Self, RulesError> {
        Ok(Self {
            settings: take(ebpf, names::SETTINGS)?,
        })
    }

    /// Writes the one entry; the programs see it at their next run.
    pub fn write(&mut self, settings: Settings) -> Result<(), RulesError> {
        write_single(&mut self.settings, names::SETTINGS, settings)
    }

    /// The entry the programs read now.
    pub fn read(&self) -> Result<Settings, RulesError> {
        self.settings.get(&0, 0).map_err(|source| RulesError::Read {
            map: names::SETTINGS,
            source,
        })
    }
}
