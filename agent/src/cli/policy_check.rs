//! `corral policy check`.

use std::path::PathBuf;

use crate::policy;

/// Checks every file; returns the error lines (`file:line:column: message`), empty when valid.
#[must_use]
pub fn check(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .filter_map(|f| policy::load_policy_file(f).err())
        .map(|e| e.to_string())
        .collect()
}
