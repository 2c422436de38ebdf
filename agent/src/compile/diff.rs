//! What changes in a task's network entries when the addresses of its `host` rules change: the
//! entries to write (new keys, or known keys whose ports changed) and the keys to delete.
//!
//! The daemon applies a diff in place, under the task's current rules id: writes first, then
//! deletes. Each map update is atomic per key, so a hook sees every address that stays allowed
//! throughout, and at worst a departing address for the microseconds between the two steps.

use agent_common::{NetV4Data, NetV6Data};

use super::{CompiledTask, NetEntry};

/// Network entries to write and to delete, as `CompiledTask`s (whose other lists stay empty), so
/// the rule maps' `write_rules` and `delete_rules` apply them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NetDiff {
    /// New entries and entries whose ports changed.
    pub write: CompiledTask,
    /// Entries whose key is gone.
    pub delete: CompiledTask,
}

impl NetDiff {
    /// Whether applying the diff changes nothing.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.write.net_v4.is_empty()
            && self.write.net_v6.is_empty()
            && self.delete.net_v4.is_empty()
            && self.delete.net_v6.is_empty()
    }
}

/// The network entries that turn `old` into `new` (same rules id). Files and UNIX rules are not
/// compared: resolving names changes only network entries.
#[must_use]
pub fn net_diff(old: &CompiledTask, new: &CompiledTask) -> NetDiff {
    let empty = || CompiledTask {
        mode: new.mode,
        files: Vec::new(),
        net_v4: Vec::new(),
        net_v6: Vec::new(),
        unix: Vec::new(),
        // 0: neither written nor deleted with the network entries (the task keeps its entry).
        privileges: 0,
    };
    let mut write = empty();
    let mut delete = empty();
    (write.net_v4, delete.net_v4) = family_diff(&old.net_v4, &new.net_v4, |d: &NetV4Data| {
        (d.task_id, d.addr.to_vec())
    });
    (write.net_v6, delete.net_v6) = family_diff(&old.net_v6, &new.net_v6, |d: &NetV6Data| {
        (d.task_id, d.addr.to_vec())
    });
    NetDiff { write, delete }
}

type Entries<D> = Vec<NetEntry<D>>;

fn family_diff<D: Copy, K: PartialEq>(
    old: &[NetEntry<D>],
    new: &[NetEntry<D>],
    key: impl Fn(&D) -> K,
) -> (Entries<D>, Entries<D>) {
    let same_key = |a: &NetEntry<D>, b: &NetEntry<D>| {
        a.prefix_len == b.prefix_len && key(&a.data) == key(&b.data)
    };
    let write = new
        .iter()
        .filter(|n| !old.iter().any(|o| same_key(o, n) && o.ports == n.ports))
        .copied()
        .collect();
    let delete = old
        .iter()
        .filter(|o| !new.iter().any(|n| same_key(o, n)))
        .copied()
        .collect();
    (write, delete)
}
