//! Corral's kernel programs.
//!
//! Every hook starts with the one look-up that lets untagged processes leave: `TAGS[tgid]`. For a
//! tagged process it judges the operation against the task's allow-list and, on a miss, reports an
//! `Event` and returns `-EPERM` (enforce) or 0 (audit). Once a process is tagged, every doubt
//! (unresolvable path, unknown task, kernel offsets not filled in) is a miss: the hooks fail
//! closed for tagged processes and stay out of the way of everything else.
#![no_std]
#![no_main]

mod changes;
mod connect;
mod context;
mod dns_redirect;
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
