//! Performance monitoring: `perf_event_open` reads other processes' and the kernel's activity,
//! and a root caller (`CAP_PERFMON`) skips the ptrace access check on its target. Refused to
//! tagged processes, whatever the target.

use agent_common::{Op, PRIV_PERF_EVENTS, Reason};
use aya_ebpf::{macros::lsm, programs::LsmContext};

use crate::{
    context::caller,
    privileges::granted,
    report::{Target, finish, lsm_verdict},
};

/// `perf_event_open(struct perf_event_attr *attr, int type)`: every `perf_event_open` call
/// (`type` says which access it needs). Refused for tagged processes unless the task's
/// `spec.privileges` grants `perf_events`.
#[lsm(hook = "perf_event_open")]
pub fn corral_perf_event_open(ctx: LsmContext) -> i32 {
    let Some(who) = caller() else {
        return 0;
    };
    let mut target = Target::empty();
    // Arg 1 is the `int type` of access (PERF_SECURITY_OPEN, _CPU, _KERNEL, _TRACEPOINT).
    target.access = ctx.arg::<i32>(1) as u32;
    let miss = (!granted(&who, PRIV_PERF_EVENTS)).then_some(Reason::Forbidden);
    lsm_verdict(finish(Op::Perf, &who, miss, &target))
}
