//! cgroup `sock_addr` programs on the cgroup v2 root: everywhere, the judge of the inet
//! connects of TCP and UDP sockets (`connect(2)`, `io_uring` and TCP Fast Open, which skips LSM
//! `socket_connect`), on the destination as it leaves, and the only hook that sees destinations
//! given to `sendto`/`sendmsg` on unconnected UDP sockets.
//!
//! Each returns 1 to let the operation through and 0 to refuse it (the caller gets `EPERM`).

use agent_common::{Backend, Mode, Op, Proto, Reason};
use aya_ebpf::{
    bindings::bpf_sock_addr, helpers::bpf_get_current_pid_tgid, macros::cgroup_sock_addr,
    programs::SockAddrContext,
};

use crate::{
    connect::{judge_v4, judge_v6},
    context::caller,
    dns_redirect::{Redirect, redirect, refusal},
    maps::{CONNECT_SEEN, offsets},
    report::{DENY, Target, finish_counting},
};

const SOCK_STREAM: u32 = 1;
const SOCK_DGRAM: u32 = 2;
const IPPROTO_TCP: u32 = 6;
const IPPROTO_UDP: u32 = 17;

/// `connect4`: IPv4 TCP and UDP connects, TCP Fast Open included. Allows untagged processes;
/// for a tagged process allows only destinations in the task's CIDR + port rules. Fails closed
/// for tagged processes.
#[cgroup_sock_addr(connect4)]
pub fn corral_connect4(ctx: SockAddrContext) -> i32 {
    judge(&ctx, Op::Connect, false)
}

/// `connect6`: as `connect4` for IPv6 (IPv4-mapped destinations judged as IPv4).
#[cgroup_sock_addr(connect6)]
pub fn corral_connect6(ctx: SockAddrContext) -> i32 {
    judge(&ctx, Op::Connect, true)
}

/// `sendmsg4`: a UDP datagram sent with an explicit IPv4 destination. Same rules as connect.
#[cgroup_sock_addr(sendmsg4)]
pub fn corral_sendmsg4(ctx: SockAddrContext) -> i32 {
    judge(&ctx, Op::Sendmsg, false)
}

/// `sendmsg6`: as `sendmsg4` for IPv6.
#[cgroup_sock_addr(sendmsg6)]
pub fn corral_sendmsg6(ctx: SockAddrContext) -> i32 {
    judge(&ctx, Op::Sendmsg, true)
}

/// Trivial program `corral doctor` attaches to learn whether cgroup `sock_addr` programs work.
#[cgroup_sock_addr(connect4)]
pub fn corral_probe_sock_addr(_ctx: SockAddrContext) -> i32 {
    1
}

#[inline(always)]
fn judge(ctx: &SockAddrContext, op: Op, v6: bool) -> i32 {
    let Some(who) = caller() else {
        return 1;
    };
    let sa: *const bpf_sock_addr = ctx.sock_addr;
    let mut target = Target::empty();
    target.backend = Backend::CgroupSockAddr as u32;
    // SAFETY: the context is the kernel's `bpf_sock_addr`; the verifier checks each field read.
    let (ty, protocol, port_be, ip4, ip6) = unsafe {
        (
            (*sa).type_,
            (*sa).protocol,
            (*sa).user_port,
            (*sa).user_ip4,
            [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ],
        )
    };
    target.proto = match ty {
        SOCK_STREAM => Proto::Tcp as u32,
        SOCK_DGRAM => Proto::Udp as u32,
        _ => Proto::Other as u32,
    };
    // The LSM connect hook leaves the connects of TCP stream and UDP datagram sockets to this
    // program (`inet_by_cgroup`); it judged (and counted) those of other protocols that still
    // reach here (MPTCP's subflow), whose refusals never get here. In audit mode it reported
    // them too and left a mark (`CONNECT_SEEN`) that this program consumes instead of
    // reporting a duplicate.
    let lsm_saw_it =
        op == Op::Connect && offsets().lsm_connect != 0 && !connects_judged_here(ty, protocol);
    // `user_port` holds the port in network byte order in its low 16 bits.
    let port = u16::from_be(port_be as u16);
    target.port = u32::from(port);
    let miss: Option<Reason> = if v6 {
        let mut ip = [0u8; 16];
        let mut i = 0;
        while i < 4 {
            let w = ip6[i].to_ne_bytes();
            ip[i * 4] = w[0];
            ip[i * 4 + 1] = w[1];
            ip[i * 4 + 2] = w[2];
            ip[i * 4 + 3] = w[3];
            i += 1;
        }
        judge_v6(&who, ip, port, &mut target)
    } else {
        judge_v4(&who, ip4.to_ne_bytes(), port, &mut target)
    };
    // A second look at a connect the LSM judged can only miss where the destination changed
    // on the way; its allowed ones were counted there.
    // DNS of a task that learns from its answers, with no proxy to send it to: a miss.
    let no_proxy = if miss.is_none() {
        refusal(&who, target.family as u16, port, target.proto)
    } else {
        None
    };
    let miss = miss.or(no_proxy);
    // The mark is looked for whatever the socket says: an MPTCP connect, judged by the LSM,
    // reaches here as its TCP subflow's.
    let lsm_marked = op == Op::Connect && offsets().lsm_connect != 0;
    let allowed = if lsm_marked && who.mode == Mode::Audit as u32 && consume_mark(&target) {
        true
    } else {
        let count_allowed = !lsm_saw_it;
        finish_counting(op, &who, miss, &target, count_allowed) != DENY
    };
    if !allowed {
        return 0;
    }
    if no_proxy.is_some() {
        // Audit mode: let it go as written.
        return 1;
    }
    // An allowed DNS query of a task that learns from its answers goes to the daemon's proxy.
    match redirect(
        ctx,
        &who,
        v6,
        target.family as u16,
        target.addr,
        port,
        target.proto,
    ) {
        Redirect::Refuse => 0,
        Redirect::Untouched | Redirect::ToProxy => 1,
    }
}

/// Whether these programs are the judge of the inet connects of a socket of type `ty` and
/// `protocol` (the kernel's numbers): TCP streams and UDP datagrams, the two protocols whose
/// every connect runs them (`pre_connect`). The LSM `socket_connect` hook leaves exactly these
/// to them (`connect::judged_by_cgroup`).
#[inline(always)]
pub fn connects_judged_here(ty: u32, protocol: u32) -> bool {
    matches!(
        (ty, protocol),
        (SOCK_STREAM, IPPROTO_TCP) | (SOCK_DGRAM, IPPROTO_UDP)
    )
}

/// Whether the LSM connect hook judged (and reported) this very destination on this thread,
/// removing its mark. A mark for another destination is left alone and does not match.
#[inline(always)]
fn consume_mark(target: &Target) -> bool {
    let tid = bpf_get_current_pid_tgid() as u32;
    // SAFETY: the value is copied out at once.
    let Some(seen) = (unsafe { CONNECT_SEEN.get(&tid) }).copied() else {
        return false;
    };
    let _ = CONNECT_SEEN.remove(&tid);
    seen.port == target.port && seen.addr == target.addr
}
