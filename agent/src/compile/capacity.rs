//! Whether all tasks together fit the kernel maps.

use agent_common::{
    DENIED_INODES_MAX, FILE_RULES_MAX, NET_RULES_MAX, TASKS_MAX, UNIX_RULES_MAX, names,
};

use super::{CompileError, CompiledTask};

/// Checks the total entries of every map against its bound (and the task count against
/// `TASKS_MAX`), so the daemon refuses a policy set before writing any of it.
pub fn check_capacity(tasks: &[CompiledTask]) -> Result<(), CompileError> {
    let total = |count: fn(&CompiledTask) -> usize| tasks.iter().map(count).sum::<usize>();
    let maps: [(&'static str, usize, u32); 6] = [
        (names::TASKS, tasks.len(), TASKS_MAX),
        (names::FILE_RULES, total(|t| t.files.len()), FILE_RULES_MAX),
        (
            names::NET_V4_RULES,
            total(|t| t.net_v4.len()),
            NET_RULES_MAX,
        ),
        (
            names::NET_V6_RULES,
            total(|t| t.net_v6.len()),
            NET_RULES_MAX,
        ),
        (names::UNIX_RULES, total(|t| t.unix.len()), UNIX_RULES_MAX),
        (
            names::DENIED_INODES,
            total(|t| t.identities.len()),
            DENIED_INODES_MAX,
        ),
    ];
    for (map, count, bound) in maps {
        if count > bound as usize {
            return Err(CompileError::Capacity { map, count, bound });
        }
    }
    Ok(())
}
