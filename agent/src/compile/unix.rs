//! `UNIX_RULES` keys.

use std::collections::BTreeSet;

use agent_common::{UNIX_PATH_MAX, UnixRuleKey};

use crate::policy::{TaskPolicy, UnixAddr};

/// One key per distinct address: `sun_path` bytes zero padded, `len` = bytes of the address
/// (a pathname's length; for `@name`, 1 + the name's length with the leading NUL).
pub(super) fn unix_keys(task_id: u32, policy: &TaskPolicy) -> Vec<UnixRuleKey> {
    let addrs: BTreeSet<&[u8]> = policy.unix.iter().map(UnixAddr::sun_path).collect();
    addrs
        .into_iter()
        .map(|sun_path| {
            let mut key = UnixRuleKey {
                task_id,
                len: 0,
                path: [0; UNIX_PATH_MAX],
            };
            // `UnixAddr` holds at most UNIX_PATH_MAX - 1 bytes, so zip copies all of them.
            for (dst, src) in key.path.iter_mut().zip(sun_path) {
                *dst = *src;
                key.len += 1;
            }
            key
        })
        .collect()
}
