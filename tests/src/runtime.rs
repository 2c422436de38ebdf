//! What a confined binary needs to read just to start: its ELF loader and shared libraries.

use std::collections::BTreeSet;
use std::process::Command;
use std::sync::OnceLock;

use crate::env;
use crate::process;

/// The glibc loader's cache; opened (if present) by every dynamically linked program.
pub const LD_SO_CACHE: &str = "/etc/ld.so.cache";

/// Canonical paths of the loader and shared libraries `binary` loads, as the glibc loader lists
/// them (`LD_TRACE_LOADED_OBJECTS=1`, what `ldd` does: the program itself does not run).
/// Canonical, because the kernel judges the resolved path. Empty for a static binary.
#[must_use]
pub fn loaded_files(binary: &str) -> Vec<String> {
    let mut cmd = Command::new(binary);
    cmd.env("LD_TRACE_LOADED_OBJECTS", "1");
    let out = process::run(cmd);
    let mut files = BTreeSet::new();
    for line in out.stdout.lines() {
        // "\tlibc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)" or "\t/lib64/ld-linux-x86-64.so.2 (0x...)"
        let path = match line.split_once("=> ") {
            Some((_, rest)) => rest,
            None => line.trim_start(),
        };
        let Some(path) = path.split(" (").next().filter(|p| p.starts_with('/')) else {
            continue;
        };
        let canonical = std::fs::canonicalize(path)
            .unwrap_or_else(|e| panic!("expected {binary}'s library {path} to exist: {e}"));
        files.insert(canonical.display().to_string());
    }
    files.into_iter().collect()
}

/// `files.read` entries that let `binary` start: the directory (`dir/`) of each file in
/// `loaded_files`, plus `/etc/ld.so.cache`.
#[must_use]
pub fn load_reads(binary: &str) -> Vec<String> {
    let mut dirs: BTreeSet<String> = loaded_files(binary)
        .iter()
        .filter_map(|f| f.rfind('/').map(|i| format!("{}/", &f[..i])))
        .filter(|d| d != "/")
        .collect();
    dirs.insert(LD_SO_CACHE.to_owned());
    dirs.into_iter().collect()
}

/// `load_reads` of `$CORRAL_PROBE`, computed once. Panics if the probe loads no library at
/// all: then the tests' policies would not show that library reads are judged.
pub fn probe_runtime_reads() -> Vec<String> {
    static READS: OnceLock<Vec<String>> = OnceLock::new();
    READS
        .get_or_init(|| {
            let probe = env::probe();
            assert!(
                !loaded_files(&probe).is_empty(),
                "expected {probe} to be dynamically linked (LD_TRACE_LOADED_OBJECTS listed nothing)"
            );
            load_reads(&probe)
        })
        .clone()
}
