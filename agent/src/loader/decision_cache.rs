//! Turning the open-decision cache on: the addresses of the kernel's `rename_lock` and
//! `mount_lock`, whose sequence counts tell the BPF LSM `file_open` hook whether a remembered
//! decision still holds (see `agent_common::DecisionCacheConfig`).
//!
//! The addresses come from `/proc/kallsyms` (data symbols: the kernel needs
//! `CONFIG_KALLSYMS_ALL`, which Debian, Ubuntu, Fedora and RHEL kernels have; root sees real
//! addresses unless `kernel.kptr_restrict` is 2). The layout is checked in the kernel's BTF: a
//! `seqlock_t` starts with a `seqcount_spinlock_t`, which starts with a `seqcount_t`, whose first
//! field is `sequence`. Without either, the cache stays off and every open is judged in full:
//! slower, never weaker.

use std::path::{Path, PathBuf};

use agent_common::DecisionCacheConfig;

use super::btf_members::{BtfReadError, MemberLookup, RawBtf};

/// Where the kernel lists its symbols.
pub const KALLSYMS: &str = "/proc/kallsyms";

#[derive(Debug, thiserror::Error)]
pub enum DecisionCacheError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "{} has no data symbol `{symbol}` (the kernel needs CONFIG_KALLSYMS_ALL=y)",
        path.display()
    )]
    Missing { path: PathBuf, symbol: &'static str },
    #[error(
        "{} has more than one data symbol `{symbol}`: which one the kernel uses is unknown",
        path.display()
    )]
    Ambiguous { path: PathBuf, symbol: &'static str },
    #[error(
        "{} shows `{symbol}` at address 0: `kernel.kptr_restrict` hides addresses from this process (set it to 0 or 1)",
        path.display()
    )]
    Hidden { path: PathBuf, symbol: &'static str },
    #[error("cannot read kernel BTF {}: {source}", path.display())]
    Btf { path: PathBuf, source: BtfReadError },
    #[error(
        "kernel BTF {}: `{name}.{field}` is not the first field (at {found:?}), so a seqlock's first word is not its sequence count",
        path.display()
    )]
    Layout {
        path: PathBuf,
        name: &'static str,
        field: &'static str,
        found: Option<u32>,
    },
}

/// Whether the BPF LSM `file_open` hook remembers allowed decisions on this host: shown by
/// `corral status` and the `corral_open_decision_cache_enabled` metric, so a fleet can find the
/// hosts where every open is judged in full (slower, never weaker).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OpenCacheState {
    /// Re-opens of allowed files are not re-judged until a rename or mount change.
    On,
    /// BPF LSM is active but the cache could not be turned on: `reason` says why and what to
    /// change.
    Off { reason: String },
    /// BPF LSM is not active: the fallback backend judges every open in full.
    NotUsed,
}

impl OpenCacheState {
    /// `{"state": "on" | "off" | "not_used", "reason": ...}` for the status document.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        match self {
            Self::On => serde_json::json!({"state": "on"}),
            Self::Off { reason } => serde_json::json!({"state": "off", "reason": reason}),
            Self::NotUsed => serde_json::json!({
                "state": "not_used",
                "reason": "BPF LSM is not active: the fallback backend judges every open in full",
            }),
        }
    }
}

/// The two sequence locks the cache watches.
const LOCKS: [&str; 2] = ["rename_lock", "mount_lock"];

/// The cache's configuration on this kernel, or why it must stay off.
pub fn config(kallsyms: &Path, btf_path: &Path) -> Result<DecisionCacheConfig, DecisionCacheError> {
    check_layout(btf_path)?;
    let text = std::fs::read_to_string(kallsyms).map_err(|source| DecisionCacheError::Read {
        path: kallsyms.to_owned(),
        source,
    })?;
    let [rename_lock, mount_lock] = LOCKS.map(|symbol| data_symbol(&text, kallsyms, symbol));
    Ok(DecisionCacheConfig {
        rename_lock: rename_lock?,
        mount_lock: mount_lock?,
    })
}

/// The address of the core-kernel (not module) data or bss symbol `symbol` in `kallsyms` text.
fn data_symbol(text: &str, path: &Path, symbol: &'static str) -> Result<u64, DecisionCacheError> {
    let mut found = None;
    for line in text.lines() {
        let mut parts = line.split_whitespace();
        let (Some(addr), Some(kind), Some(name), None) =
            (parts.next(), parts.next(), parts.next(), parts.next())
        else {
            continue;
        };
        if name != symbol || !matches!(kind, "d" | "D" | "b" | "B") {
            continue;
        }
        if found.is_some() {
            return Err(DecisionCacheError::Ambiguous {
                path: path.to_owned(),
                symbol,
            });
        }
        found = Some(u64::from_str_radix(addr, 16).unwrap_or(0));
    }
    match found {
        None => Err(DecisionCacheError::Missing {
            path: path.to_owned(),
            symbol,
        }),
        Some(0) => Err(DecisionCacheError::Hidden {
            path: path.to_owned(),
            symbol,
        }),
        Some(addr) => Ok(addr),
    }
}

/// Checks in the kernel's BTF that a seqlock's first word is its sequence count.
fn check_layout(btf_path: &Path) -> Result<(), DecisionCacheError> {
    let btf = RawBtf::read(btf_path).map_err(|source| DecisionCacheError::Btf {
        path: btf_path.to_owned(),
        source,
    })?;
    for (name, field) in [("seqcount", "sequence"), ("seqcount_spinlock", "seqcount")] {
        let found = match btf.member_offset(name, field) {
            Ok(MemberLookup::Found(off)) => Some(off),
            Ok(_) => None,
            Err(source) => {
                return Err(DecisionCacheError::Btf {
                    path: btf_path.to_owned(),
                    source,
                });
            }
        };
        if found != Some(0) {
            return Err(DecisionCacheError::Layout {
                path: btf_path.to_owned(),
                name,
                field,
                found,
            });
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
ffffffff81000000 T _text
ffffffff82a0b0c0 D rename_lock
ffffffff82a0c000 b mount_lock
ffffffffc0a01000 d mount_lock\t[some_module]
ffffffff81234560 T mount_lock_text_decoy
";

    #[test]
    fn core_kernel_data_symbols_are_found_and_module_ones_ignored() {
        let path = Path::new("sample");
        assert_eq!(
            data_symbol(SAMPLE, path, "rename_lock").ok(),
            Some(0xffff_ffff_82a0_b0c0),
            "expected rename_lock's D symbol"
        );
        assert_eq!(
            data_symbol(SAMPLE, path, "mount_lock").ok(),
            Some(0xffff_ffff_82a0_c000),
            "expected mount_lock's b symbol, not the module's"
        );
    }

    #[test]
    fn missing_hidden_and_ambiguous_symbols_are_errors_naming_the_fix() {
        let path = Path::new("/proc/kallsyms");
        let missing = data_symbol("ffffffff81000000 T rename_lock\n", path, "rename_lock")
            .expect_err("expected a text symbol not to count as the lock");
        assert!(
            missing.to_string().contains("CONFIG_KALLSYMS_ALL"),
            "expected the fix in: {missing}"
        );
        let hidden = data_symbol("0000000000000000 D rename_lock\n", path, "rename_lock")
            .expect_err("expected a zero address to be refused");
        assert!(
            hidden.to_string().contains("kptr_restrict"),
            "expected the cause in: {hidden}"
        );
        let twice = "ffffffff82a0b0c0 D rename_lock\nffffffff82a0b0c8 d rename_lock\n";
        assert!(
            matches!(
                data_symbol(twice, path, "rename_lock"),
                Err(DecisionCacheError::Ambiguous { .. })
            ),
            "expected two core symbols of one name to be refused"
        );
    }

    /// Every kernel we run on has BTF; the seqlock layout the cache relies on must hold on the
    /// one this test runs on.
    #[test]
    fn the_running_kernel_keeps_the_sequence_count_first() {
        check_layout(Path::new(super::super::offsets::VMLINUX_BTF))
            .unwrap_or_else(|e| panic!("expected the seqlock layout to hold: {e}"));
    }
}
