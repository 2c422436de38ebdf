//! Task instances: one per `corral run`, with an id the kernel tags processes with, a UUID for
//! events, a parent (`corral run` from inside another task) and an optional expiry.

use std::{collections::HashMap, fmt::Write as _, time::Duration};

use agent_common::InstanceInfo;

use crate::loader::{InstanceMaps, RulesError};

/// A fresh, non-zero instance id from the kernel's random source.
#[must_use]
pub fn new_instance_id() -> u32 {
    loop {
        let mut b = [0u8; 4];
        // SAFETY: writes at most 4 bytes into `b`.
        let n = unsafe { libc::getrandom(b.as_mut_ptr().cast(), 4, 0) };
        let id = u32::from_ne_bytes(b);
        if n == 4 && id != 0 {
            return id;
        }
    }
}

/// `CLOCK_BOOTTIME` now plus `ttl`, in nanoseconds (what the hooks compare with).
#[must_use]
pub fn boot_deadline(ttl: Duration) -> u64 {
    let mut ts = libc::timespec {
        tv_sec: 0,
        tv_nsec: 0,
    };
    // SAFETY: valid clock id and out pointer.
    unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
    let now = u64::try_from(ts.tv_sec).unwrap_or(0) * 1_000_000_000
        + u64::try_from(ts.tv_nsec).unwrap_or(0);
    now.saturating_add(u64::try_from(ttl.as_nanos()).unwrap_or(u64::MAX))
        .max(1)
}

/// The UUID events show for `instance`: derived from this boot's id and the instance id, so a
/// restarted daemon names an adopted instance the same way.
#[must_use]
pub fn instance_uuid(boot_id: &str, instance: u32) -> String {
    let fnv = |seed: u64| {
        let mut h: u64 = 0xcbf2_9ce4_8422_2325 ^ seed;
        for b in boot_id.bytes().chain(instance.to_le_bytes()) {
            h ^= u64::from(b);
            h = h.wrapping_mul(0x0000_0100_0000_01b3);
        }
        h
    };
    let (hi, lo) = (fnv(0), fnv(0x9e37_79b9_7f4a_7c15));
    // UUID version 8 (custom), RFC 9562 variant.
    let hi = (hi & !0xf000) | 0x8000;
    let lo = (lo & 0x3fff_ffff_ffff_ffff) | 0x8000_0000_0000_0000;
    let mut s = String::with_capacity(36);
    let _ = write!(
        s,
        "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
        hi >> 32,
        (hi >> 16) & 0xffff,
        hi & 0xffff,
        lo >> 48,
        lo & 0xffff_ffff_ffff
    );
    s
}

/// This boot's id (`/proc/sys/kernel/random/boot_id`).
#[must_use]
pub fn boot_id() -> String {
    std::fs::read_to_string("/proc/sys/kernel/random/boot_id")
        .map(|s| s.trim().to_owned())
        .unwrap_or_default()
}

/// The instances the daemon knows, cached from the map.
pub struct Instances {
    pub maps: InstanceMaps,
    boot_id: String,
    known: HashMap<u32, InstanceInfo>,
    /// Instances whose expiry was already reported.
    reported_expired: std::collections::HashSet<u32>,
}

impl Instances {
    #[must_use]
    pub fn new(maps: InstanceMaps) -> Self {
        Self {
            maps,
            boot_id: boot_id(),
            known: HashMap::new(),
            reported_expired: std::collections::HashSet::new(),
        }
    }

    /// Creates an instance of `task_id` (parent `parent`, 0 for none) expiring after `ttl`;
    /// returns its id and UUID.
    pub fn create(
        &mut self,
        task_id: u32,
        parent: u32,
        ttl: Option<Duration>,
    ) -> Result<(u32, String), RulesError> {
        let id = new_instance_id();
        let info = InstanceInfo {
            expires_ns: ttl.map_or(0, boot_deadline),
            task_id,
            parent,
        };
        self.maps.insert(id, info)?;
        self.known.insert(id, info);
        Ok((id, self.uuid(id)))
    }

    #[must_use]
    pub fn uuid(&self, instance: u32) -> String {
        instance_uuid(&self.boot_id, instance)
    }

    /// One instance, from the cache or the map.
    pub fn get(&mut self, instance: u32) -> Option<InstanceInfo> {
        if let Some(i) = self.known.get(&instance) {
            return Some(*i);
        }
        let info = self.maps.get(instance)?;
        self.known.insert(instance, info);
        Some(info)
    }

    /// The task ids of `instance`'s ancestors, nearest first (bounded: a cycle cannot hang).
    pub fn ancestors(&mut self, instance: u32) -> Vec<u32> {
        let mut out = Vec::new();
        let mut cur = self.get(instance).map_or(0, |i| i.parent);
        while cur != 0 && out.len() < 16 {
            let Some(info) = self.get(cur) else { break };
            out.push(info.task_id);
            cur = info.parent;
        }
        out
    }

    /// Forgets instances no confined process belongs to (nor descends from), and returns the
    /// instances whose expiry passed since the last call (to report once each).
    pub fn sweep(&mut self, live: &std::collections::HashSet<u32>) -> Vec<(u32, InstanceInfo)> {
        let Ok(all) = self.maps.all() else {
            return Vec::new();
        };
        let mut keep: std::collections::HashSet<u32> = std::collections::HashSet::new();
        for &i in live {
            let mut cur = i;
            while cur != 0 && keep.insert(cur) {
                cur = all.get(&cur).map_or(0, |x| x.parent);
            }
        }
        for id in all.keys() {
            if !keep.contains(id) {
                self.maps.remove(*id);
                self.known.remove(id);
                self.reported_expired.remove(id);
            }
        }
        let now = boot_deadline(Duration::ZERO);
        all.into_iter()
            .filter(|(id, info)| {
                keep.contains(id)
                    && info.expires_ns != 0
                    && info.expires_ns < now
                    && self.reported_expired.insert(*id)
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uuids_are_stable_per_boot_and_distinct_per_instance() {
        let a = instance_uuid("boot-a", 7);
        assert_eq!(
            a,
            instance_uuid("boot-a", 7),
            "the same instance names the same way"
        );
        assert_ne!(a, instance_uuid("boot-a", 8), "instances differ");
        assert_ne!(a, instance_uuid("boot-b", 7), "boots differ");
        assert_eq!(a.len(), 36, "8-4-4-4-12 hex digits: {a}");
        assert_eq!(&a[14..15], "8", "version 8: {a}");
        assert!(
            matches!(&a[19..20], "8" | "9" | "a" | "b"),
            "RFC 9562 variant: {a}"
        );
    }

    #[test]
    fn instance_ids_are_never_zero() {
        for _ in 0..1000 {
            assert_ne!(new_instance_id(), 0, "0 means no instance");
        }
    }
}
