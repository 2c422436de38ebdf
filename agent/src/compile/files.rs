//! `FILE_RULES` entries: exec and file rules, folded along directory prefixes.

use std::collections::BTreeMap;

use agent_common::{
    FileRuleData, RULE_DENY, RULE_DENY_BENEATH, RULE_EXEC, RULE_PATH_MAX, RULE_READ, RULE_WRITE,
};

use super::{CompileError, FileEntry};
use crate::policy::{PathRule, TaskPolicy};

/// The key of an entry: path bytes, and whether it is a prefix (no NUL) or exact (NUL added).
/// Ordered by path then kind, which is the order entries are emitted in.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct EntryKey {
    path: Vec<u8>,
    prefix: bool,
}

impl EntryKey {
    /// LPM data bytes: the path, plus the NUL of exact keys.
    fn key_len(&self) -> usize {
        self.path.len() + usize::from(!self.prefix)
    }
}

/// Every rule of the task with the flag it grants.
fn flagged_rules(policy: &TaskPolicy) -> impl Iterator<Item = (&PathRule, u32)> {
    [
        (&policy.exec, RULE_EXEC),
        (&policy.read, RULE_READ),
        (&policy.write, RULE_WRITE),
        (&policy.deny, RULE_DENY),
    ]
    .into_iter()
    .flat_map(|(rules, flag)| rules.iter().map(move |r| (r, flag)))
}

/// The entries of the task's exec and file rules:
/// - an exact rule `/a/b` is the key `/a/b` + NUL;
/// - a prefix rule `/a/` is the prefix key `/a/` plus the exact key `/a` + NUL for the directory
///   itself (`/` alone only has its prefix key);
/// - each entry's flags are its own OR those of every prefix rule whose path is a prefix of the
///   entry's path, so one longest-prefix lookup sees them all (a deny directory denies every
///   entry beneath it; a write rule beneath a read directory keeps read);
/// - every ancestor directory `/a` of a deny rule (`/a/b/` or `/a/b/c`), the denied directory
///   itself included, has an exact key `/a` + NUL carrying `RULE_DENY_BENEATH` (and, like any
///   exact key, the flags of the prefix rules above it), so the rename hook can tell in one
///   look-up that moving `/a` would carry a denied path to a new name. `/` is never renamed and
///   has no such key.
pub(super) fn file_entries(
    task_id: u32,
    policy: &TaskPolicy,
) -> Result<Vec<FileEntry>, CompileError> {
    let mut own: BTreeMap<EntryKey, u32> = BTreeMap::new();
    let mut prefixes: BTreeMap<Vec<u8>, u32> = BTreeMap::new();
    let mut add = |path: &[u8], prefix: bool, flag: u32| {
        let key = EntryKey {
            path: path.to_vec(),
            prefix,
        };
        *own.entry(key).or_default() |= flag;
    };
    for (rule, flag) in flagged_rules(policy) {
        let path = rule.as_str().as_bytes();
        if rule.is_prefix() {
            *prefixes.entry(path.to_vec()).or_default() |= flag;
            add(path, true, flag);
            if let Some(dir) = path.strip_suffix(b"/").filter(|dir| !dir.is_empty()) {
                add(dir, false, flag);
            }
        } else {
            add(path, false, flag);
        }
    }
    for rule in &policy.deny {
        for dir in ancestors(rule.as_str().as_bytes()) {
            add(dir, false, RULE_DENY_BENEATH);
        }
    }
    own.into_iter()
        .map(|(key, flags)| {
            let inherited = prefixes
                .iter()
                .filter(|(prefix, _)| key.path.starts_with(prefix))
                .fold(0, |acc, (_, f)| acc | f);
            entry(task_id, policy, &key, flags | inherited)
        })
        .collect()
}

/// The ancestor directories of a rule path, without trailing `/` and without `/` itself:
/// `/a/b/c` and `/a/b/c/` both give `/a`, `/a/b`, and the second also `/a/b/c`.
fn ancestors(path: &[u8]) -> impl Iterator<Item = &[u8]> {
    let dir = path.strip_suffix(b"/").unwrap_or(path);
    let own = usize::from(path.ends_with(b"/"));
    dir.iter()
        .enumerate()
        .skip(1)
        .filter(|&(_, &b)| b == b'/')
        .map(|(i, _)| &dir[..i])
        .chain((own == 1 && !dir.is_empty()).then_some(dir))
}

fn entry(
    task_id: u32,
    policy: &TaskPolicy,
    key: &EntryKey,
    flags: u32,
) -> Result<FileEntry, CompileError> {
    let mut data = FileRuleData {
        task_id,
        path: [0; RULE_PATH_MAX],
    };
    // Exact keys end in the NUL already in the zeroed array; only the path bytes are copied.
    let too_long = || CompileError::PathTooLong {
        task: policy.name.to_string(),
        path: String::from_utf8_lossy(&key.path).into_owned(),
        len: key.key_len(),
        bound: RULE_PATH_MAX,
    };
    if key.key_len() > RULE_PATH_MAX {
        return Err(too_long());
    }
    data.path
        .get_mut(..key.path.len())
        .ok_or_else(too_long)?
        .copy_from_slice(&key.path);
    Ok(FileEntry {
        prefix_len: 32 + 8 * key.key_len() as u32,
        data,
        flags,
    })
}
