//! `userfaultfd`: a confined process may not create one. A userfaultfd stalls the kernel at a
//! page fault of the caller's choosing, the classic way to widen a race window in the kernel
//! (and, once shared, to watch another process's faults). Both ways of making one, the
//! `userfaultfd(2)` syscall and `ioctl(USERFAULTFD_IOC_NEW)` on `/dev/userfaultfd`, create an
//! anonymous inode named `[userfaultfd]` through `anon_inode_getfd_secure`, which asks the LSM
//! `inode_init_security_anon` hook first.

use agent_common::{Op, PRIV_USERFAULTFD, Reason};
use aya_ebpf::{
    helpers::{bpf_probe_read_kernel, bpf_probe_read_kernel_str_bytes},
    macros::lsm,
    programs::LsmContext,
};

use crate::{
    context::caller,
    privileges::granted,
    report::{Target, finish, lsm_verdict},
};

/// The anonymous inode name of a userfaultfd, NUL included.
const USERFAULTFD: &[u8; 14] = b"[userfaultfd]\0";

/// Whether the `struct qstr *` `name` names a userfaultfd. An unreadable name counts as one:
/// for a tagged process a doubt is a refusal.
#[inline(always)]
fn is_userfaultfd(name: *const u8) -> bool {
    // `struct qstr`: u32 hash, u32 len, then `const unsigned char *name`.
    // SAFETY: fault-tolerant probe reads.
    let Ok(ptr) = (unsafe { bpf_probe_read_kernel(name.wrapping_add(8).cast::<*const u8>()) })
    else {
        return true;
    };
    let mut buf = [0u8; 16];
    // SAFETY: as above; at most `buf.len()` bytes are written.
    let Ok(read) = (unsafe { bpf_probe_read_kernel_str_bytes(ptr, &mut buf) }) else {
        return true;
    };
    if read.len() + 1 != USERFAULTFD.len() {
        return false;
    }
    let mut i = 0;
    while i < USERFAULTFD.len() - 1 {
        if buf[i] != USERFAULTFD[i] {
            return false;
        }
        i += 1;
    }
    true
}

/// `inode_init_security_anon(struct inode *inode, const struct qstr *name, const struct inode
/// *context_inode)`: a new anonymous inode with its own security context. Refused for tagged
/// processes when it is a `[userfaultfd]` (unless the task's `spec.privileges` grants
/// `userfaultfd`); every other kind (`[io_uring]`, ...) is let through.
#[lsm(hook = "inode_init_security_anon")]
pub fn corral_inode_init_security_anon(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    // Arg 1 is `const struct qstr *name`.
    let name: *const u8 = ctx.arg(1);
    if !is_userfaultfd(name) {
        return 0;
    }
    let miss = (!granted(&who, PRIV_USERFAULTFD)).then_some(Reason::Forbidden);
    lsm_verdict(finish(Op::Userfaultfd, &who, miss, &Target::empty()))
}
