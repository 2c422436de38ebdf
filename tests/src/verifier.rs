//! The verifier's work per program: how close each loaded Corral program comes to the kernel's
//! limit of 1,000,000 processed instructions. A program near the limit fails to load after a
//! harmless change (or on another kernel's verifier), and its load time is the daemon's start
//! time under qemu. The kernel reports the count (`verified_insns`, Linux ≥ 5.16) for every
//! loaded program.

use std::collections::BTreeSet;

/// Most processed instructions any one program may cost the verifier: a fifth of the kernel's
/// limit. The event writer inlined into every hook once made `socket_connect` cost 581,535 on
/// 6.1; as a global function (`report::corral_emit`) the costliest program stays under 60,000.
pub const VERIFIED_INSNS_BUDGET: u32 = 200_000;

/// Kernel program names are cut to `BPF_OBJ_NAME_LEN - 1` bytes.
const KERNEL_NAME_LEN: usize = 15;

/// Every loaded program whose name is one of `programs` (compared as the kernel keeps it, cut
/// to 15 bytes), with the verifier's count.
///
/// # Panics
/// When the kernel's program list cannot be read or a program has no count.
#[must_use]
pub fn verified_insns(programs: &[&str]) -> Vec<(String, u32)> {
    let wanted: BTreeSet<&str> = programs.iter().map(|p| kernel_name(p)).collect();
    let mut counts = Vec::new();
    for info in aya::programs::loaded_programs() {
        let info = info.unwrap_or_else(|e| panic!("expected to read the loaded programs: {e}"));
        let Some(name) = info.name_as_str().filter(|n| wanted.contains(n)) else {
            continue;
        };
        let insns = info.verified_instruction_count().unwrap_or_else(|| {
            panic!("expected the kernel to report verified_insns for program {name}")
        });
        counts.push((name.to_owned(), insns));
    }
    counts
}

/// Asserts that each of `programs` is loaded and that every loaded program of those names cost
/// the verifier at most `VERIFIED_INSNS_BUDGET` processed instructions.
///
/// # Panics
/// When one is not loaded or one is over the budget.
pub fn assert_within_budget(programs: &[&str]) {
    let counts = verified_insns(programs);
    let loaded: BTreeSet<&str> = counts.iter().map(|(n, _)| n.as_str()).collect();
    let missing: Vec<&str> = programs
        .iter()
        .filter(|p| !loaded.contains(kernel_name(p)))
        .copied()
        .collect();
    assert!(
        missing.is_empty(),
        "expected every program to be loaded; not loaded: {missing:?} (loaded: {counts:?})"
    );
    let over: Vec<_> = counts
        .iter()
        .filter(|(_, n)| *n > VERIFIED_INSNS_BUDGET)
        .collect();
    assert!(
        over.is_empty(),
        "expected every program to cost the verifier at most {VERIFIED_INSNS_BUDGET} processed \
         instructions; over budget: {over:?} (all: {counts:?})"
    );
}

fn kernel_name(program: &str) -> &str {
    program.get(..KERNEL_NAME_LEN).unwrap_or(program)
}
