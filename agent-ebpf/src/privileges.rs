//! Privileges a task's policy re-allowed (`spec.privileges`): the few guarded operations a
//! confined process may do when its policy names them.

use agent_common::PRIVILEGES_MAX;
use aya_ebpf::{macros::map, maps::HashMap};

use crate::context::Caller;

/// Key: rules id (u32, `TaskConfig::rules_id`). Value: u32 `PRIV_*` bits. Bound:
/// `PRIVILEGES_MAX` (a current and a new rule set per task during a reload). Why: the tampering
/// guards refuse raw, packet and netlink sockets, `perf_event_open` and userfaultfd unless the
/// task's rules grant them. Keyed by rules id like the rule maps, so a reload switches it with
/// the rest. A rules id without an entry grants nothing.
#[map(name = "PRIVILEGES")]
pub static PRIVILEGES: HashMap<u32, u32> = HashMap::with_max_entries(PRIVILEGES_MAX, 0);

/// Whether the caller's current rules grant every bit of `bits`. A caller that must be denied
/// everything (unknown task, offsets missing, instance expired) is never granted anything.
#[inline(always)]
pub fn granted(who: &Caller, bits: u32) -> bool {
    if who.forced_miss.is_some() || bits == 0 {
        return false;
    }
    // SAFETY: the value is copied out at once.
    match unsafe { PRIVILEGES.get(&who.rules) } {
        Some(have) => *have & bits == bits,
        None => false,
    }
}
