//! Where things live: the repository, cargo's target directory and Corral's download cache.
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, anyhow};

use crate::command;

/// The workspace root (the parent of `xtask/`).
pub fn repo() -> PathBuf {
    let manifest_dir = Path::new(env!("CARGO_MANIFEST_DIR"));
    manifest_dir
        .parent()
        .map_or_else(|| manifest_dir.to_path_buf(), Path::to_path_buf)
}

/// The repository's policy directory, handed to the daemon and the tests.
pub fn policies() -> PathBuf {
    repo().join("policies")
}

/// Corral's download cache: `$CORRAL_CACHE`, else `~/.cache/corral`.
pub fn cache() -> Result<PathBuf> {
    if let Some(dir) = std::env::var_os("CORRAL_CACHE").filter(|v| !v.is_empty()) {
        return Ok(PathBuf::from(dir));
    }
    let home = std::env::var_os("HOME")
        .filter(|v| !v.is_empty())
        .ok_or_else(|| anyhow!("neither CORRAL_CACHE nor HOME is set: no place for the cache"))?;
    Ok(PathBuf::from(home).join(".cache/corral"))
}

/// `target/xtask` (or the same under `CARGO_TARGET_DIR`): logs and initramfs images.
pub fn xtask_out() -> Result<PathBuf> {
    let text = command::stdout(
        Command::new(command::cargo())
            .args(["metadata", "--no-deps", "--format-version", "1"])
            .current_dir(repo()),
    )?;
    let metadata: serde_json::Value =
        serde_json::from_str(&text).context("parsing `cargo metadata` output")?;
    let target = metadata["target_directory"]
        .as_str()
        .ok_or_else(|| anyhow!("`cargo metadata` output has no target_directory"))?;
    let dir = Path::new(target).join("xtask");
    std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
    Ok(dir)
}
