//! Executable mappings of files: the loader's route to running code without `execve`
//! (`ld.so /path/payload`, `dlopen`, a hand-written `mmap(PROT_EXEC)`).
//!
//! A tagged process may map a file executable only if `exec.allow` lists it, or `files.read`
//! lists it and `files.write` does not (W^X: code the task could have written itself needs an
//! `exec.allow` entry); `files.deny` beats both. Anonymous executable memory (JITs) stays
//! allowed. `mprotect` may not add `PROT_EXEC` to a file mapping that was not mapped executable.

use agent_common::{Access, Op, RULE_EXEC, RULE_READ, RULE_WRITE, Reason};
use aya_ebpf::{EbpfContext, helpers::bpf_probe_read_kernel, macros::lsm, programs::LsmContext};

use crate::{
    context::caller,
    files::judge_file,
    maps::offsets,
    report::{Target, finish, lsm_verdict},
};

const PROT_EXEC: u64 = 0x4;
/// `VM_EXEC` in `vm_area_struct::vm_flags`.
const VM_EXEC: u64 = 0x4;

/// Whether the matched rule flags let a file be mapped executable.
#[inline(always)]
fn exec_mappable(flags: u32) -> bool {
    flags & RULE_EXEC != 0 || (flags & RULE_READ != 0 && flags & RULE_WRITE == 0)
}

/// `mmap_file(struct file *file, unsigned long reqprot, unsigned long prot, unsigned long flags)`:
/// every `mmap` (also the kernel's mappings of a binary and its ELF interpreter at exec, and
/// `shmat`). Judges file mappings with `PROT_EXEC` in the protection the kernel will apply.
#[lsm(hook = "mmap_file")]
pub fn corral_mmap_file(ctx: LsmContext) -> i32 {
    lsm_verdict(try_mmap_file(&ctx))
}

fn try_mmap_file(ctx: &LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let prot: u64 = ctx.arg(2);
    if prot & PROT_EXEC == 0 {
        return 0;
    }
    // `file` is NULL for anonymous memory, but 6.12's verifier takes the argument for a trusted,
    // non-NULL pointer and drops a NULL test on it: test a copy it only knows as a number.
    // SAFETY: arg 0 is the first u64 of the context; a fault yields an error.
    let raw: u64 = unsafe { bpf_probe_read_kernel(ctx.as_ptr().cast::<u64>()) }.unwrap_or(0);
    if raw == 0 {
        return 0;
    }
    let file: *const u8 = ctx.arg(0);
    judge_file(Op::Mmap, &who, file, Access::EXEC, exec_mappable).verdict
}

/// `file_mprotect(struct vm_area_struct *vma, unsigned long reqprot, unsigned long prot)`:
/// `mprotect`/`pkey_mprotect`. Adding `PROT_EXEC` to a file mapping that is not executable is
/// refused (the mapping was judged when it was made, without exec; the path cannot be resolved
/// here). Anonymous memory and mappings that are already executable are left alone.
#[lsm(hook = "file_mprotect")]
pub fn corral_file_mprotect(ctx: LsmContext) -> i32 {
    lsm_verdict(try_file_mprotect(&ctx))
}

fn try_file_mprotect(ctx: &LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let prot: u64 = ctx.arg(2);
    if prot & PROT_EXEC == 0 {
        return 0;
    }
    let off = offsets();
    let vma: *const u8 = ctx.arg(0);
    // SAFETY: fault-tolerant probe reads at the BTF offsets of `vm_file` and `vm_flags`.
    let (file, vm_flags) = unsafe {
        (
            bpf_probe_read_kernel(vma.add(off.vma_vm_file as usize).cast::<u64>()).unwrap_or(1),
            bpf_probe_read_kernel(vma.add(off.vma_vm_flags as usize).cast::<u64>()).unwrap_or(0),
        )
    };
    if file == 0 || vm_flags & VM_EXEC != 0 {
        return 0;
    }
    let mut target = Target::empty();
    target.access = Access::EXEC;
    finish(Op::Mmap, &who, Some(Reason::NotAllowed), &target)
}
