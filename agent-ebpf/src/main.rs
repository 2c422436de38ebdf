//! Corral's kernel programs.
//!
//! Every hook starts with the one look-up that lets untagged processes leave: `TAGS[tgid]`. For a
//! tagged process it judges the operation against the task's allow-list and, on a miss, reports an
//! `Event` and returns `-EPERM` (enforce) or 0 (audit). Once a process is tagged, every doubt
//! (unresolvable path, unknown task, kernel offsets not filled in) is a miss: the hooks fail
//! closed for tagged processes and stay out of the way of everything else.
#![no_std]
#![no_main]
// Lints whose advice does not hold for BPF programs (checked by `cargo xtask test`, which runs
// clippy on this crate for its bpfel target).
#![allow(
    clippy::inline_always,
    reason = "BPF-to-BPF calls are limited and cost stack; the helpers must be inlined into \
              each program for the verifier to see the constants and pointers they take"
)]
#![allow(
    clippy::cast_ptr_alignment,
    reason = "kernel structures are read at BTF byte offsets through the probe-read helpers, \
              which do not need aligned pointers"
)]
#![allow(
    clippy::needless_borrows_for_generic_args,
    reason = "map keys and values are handed over by reference so they stay off the 512-byte \
              BPF stack instead of being copied onto it"
)]
#![allow(
    clippy::needless_pass_by_value,
    reason = "aya's program macros hand each program its context by value"
)]

mod changes;
mod connect;
mod context;
mod decision_cache;
mod dns_redirect;
mod escaped;
mod files;
mod identity;
mod kill;
mod maps;
mod mmap;
mod mount_ns;
mod pathwalk;
mod perf;
mod privileges;
mod rename;
mod report;
mod selector;
mod sock_addr;
mod socket_kinds;
mod syscalls;
mod tagged;
mod tagging;
mod tamper;
mod userfaultfd;

#[cfg(not(test))]
#[panic_handler]
fn panic(_info: &core::panic::PanicInfo) -> ! {
    // The verifier rejects any path that could reach this; it is never executed.
    loop {}
}

/// GPL-compatible licence: `bpf_d_path` and BTF tracepoints are GPL-only helpers.
#[unsafe(link_section = "license")]
#[unsafe(no_mangle)]
static LICENSE: [u8; 13] = *b"Dual MIT/GPL\0";
