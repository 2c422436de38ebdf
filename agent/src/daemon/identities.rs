//! Walking the tasks' `files.deny` rules for the identities of the files they cover
//! (`DENIED_INODES`): when a rule set is loaded, and again at every reload and periodic rescan
//! for the tasks that kept their rules, so files created beneath a deny rule since the last walk
//! are covered by identity too (until then a hard link to such a file is judged by its path).

use agent_common::{DENIED_INODES_MAX, DeniedInodeKey};

use crate::{
    compile::{self, CompileError},
    loader::{RuleMaps, RulesError},
    policy::TaskPolicy,
};

/// The identities `policy`'s deny rules cover, keyed by `rules_id`. Unreadable entries are
/// logged (the files beneath them are judged by path only); a walk past the map's bound is an
/// error naming the rule.
pub fn walk(rules_id: u32, policy: &TaskPolicy) -> Result<Vec<DeniedInodeKey>, CompileError> {
    let found = compile::deny_identities(rules_id, policy)?;
    for (path, error) in &found.unreadable {
        tracing::warn!(
            task = %policy.name,
            path = %path.display(),
            %error,
            "cannot walk beneath a files.deny rule: hard links to files there are judged by their path only"
        );
    }
    Ok(found.keys)
}

/// Re-walks a loaded task's deny rules and brings its current rule set's `DENIED_INODES` keys up
/// to date in place: new keys written first, departed ones deleted after. `others` is how many
/// keys the other rule sets in the maps hold. Returns the new keys, or `None` (logged) when the
/// walk failed or the result would not fit: the old keys then stay.
pub fn refresh(
    maps: &mut RuleMaps,
    rules_id: u32,
    policy: &TaskPolicy,
    old: &[DeniedInodeKey],
    others: usize,
) -> Result<Option<Vec<DeniedInodeKey>>, RulesError> {
    let new = match walk(rules_id, policy) {
        Ok(new) => new,
        Err(e) => {
            tracing::warn!(task = %policy.name, "files.deny identities not refreshed: {e:#}");
            return Ok(None);
        }
    };
    let (write, delete) = compile::identity_diff(old, &new);
    if write.is_empty() && delete.is_empty() {
        return Ok(Some(new));
    }
    if others + old.len() + write.len() > DENIED_INODES_MAX as usize {
        tracing::warn!(
            task = %policy.name,
            bound = DENIED_INODES_MAX,
            "files.deny identities not refreshed: DENIED_INODES would be full"
        );
        return Ok(None);
    }
    maps.write_identities(rules_id, &write)?;
    maps.delete_identities(rules_id, &delete)?;
    tracing::debug!(
        task = %policy.name,
        added = write.len(),
        removed = delete.len(),
        "files.deny identities refreshed"
    );
    Ok(Some(new))
}
