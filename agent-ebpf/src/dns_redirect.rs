//! DNS learning in the cgroup `sock_addr` programs: an allowed DNS connect or datagram (port 53,
//! UDP or TCP) of a task with name rules (`DNS_LEARN`) goes to the daemon's proxy instead
//! (`DNS_PROXY`), its intended server kept under the socket's cookie (`DNS_ORIGINS`); answers the
//! client reads with `recvmsg`/`recvfrom` show the intended server as their source.

use agent_common::{DNS_PORT, DnsOrigin, Proto, Reason};
use aya_ebpf::{
    bindings::bpf_sock_addr, helpers::generated::bpf_get_socket_cookie, macros::cgroup_sock_addr,
    programs::SockAddrContext,
};

use crate::{
    context::Caller,
    maps::{DNS_LEARN, DNS_ORIGINS, DNS_PROXY},
};

const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
/// The third `user_ip6` word of an IPv4-mapped address (`::ffff:0:0/96`), in memory order.
const MAPPED_WORD: u32 = u32::from_ne_bytes([0, 0, 0xff, 0xff]);

/// What `redirect` did.
pub enum Redirect {
    /// Not DNS of a learning task: judged and sent as written.
    Untouched,
    /// Rewritten to the proxy.
    ToProxy,
    /// DNS of a learning task without a proxy (or a full origins map): refuse it.
    Refuse,
}

/// Whether this is DNS of a learning task that cannot go through the proxy (no proxy for the
/// destination's family): judged as a miss before the rules' verdict is reported.
#[inline(always)]
pub fn refusal(who: &Caller, family: u16, port: u16, proto: u32) -> Option<Reason> {
    if port != DNS_PORT || (proto != Proto::Tcp as u32 && proto != Proto::Udp as u32) {
        return None;
    }
    // SAFETY: the value is only tested for presence.
    unsafe { DNS_LEARN.get(&who.task_id) }?;
    let Some(proxy) = DNS_PROXY.get(0) else {
        return Some(Reason::NoDnsProxy);
    };
    let port = if family == AF_INET {
        proxy.port4
    } else {
        proxy.port6
    };
    if port == 0 {
        Some(Reason::NoDnsProxy)
    } else {
        None
    }
}

/// For an allowed DNS destination (`ip` as the task's rules judged it: 4 bytes for IPv4 and
/// IPv4-mapped, else 16) of a learning task: records the origin and rewrites the destination
/// to the proxy. `v6_socket`: the context's address is a `sockaddr_in6`.
#[inline(always)]
pub fn redirect(
    ctx: &SockAddrContext,
    who: &Caller,
    v6_socket: bool,
    family: u16,
    addr: [u8; 16],
    port: u16,
    proto: u32,
) -> Redirect {
    if port != DNS_PORT || (proto != Proto::Tcp as u32 && proto != Proto::Udp as u32) {
        return Redirect::Untouched;
    }
    // SAFETY: the value is only tested for presence.
    if unsafe { DNS_LEARN.get(&who.task_id) }.is_none() {
        return Redirect::Untouched;
    }
    let Some(proxy) = DNS_PROXY.get(0) else {
        return Redirect::Refuse;
    };
    let proxy = *proxy;
    let (proxy_port, mapped) = if family == AF_INET {
        (proxy.port4, v6_socket)
    } else {
        (proxy.port6, false)
    };
    if proxy_port == 0 {
        return Redirect::Refuse;
    }
    let sa: *mut bpf_sock_addr = ctx.sock_addr;
    // SAFETY: the context pointer is the kernel's; the helper only reads the socket.
    let cookie = unsafe { bpf_get_socket_cookie(sa.cast()) };
    let origin = DnsOrigin {
        addr,
        port,
        family,
        task_id: who.task_id,
    };
    if DNS_ORIGINS.insert(&cookie, &origin, 0).is_err() {
        return Redirect::Refuse;
    }
    let port_be = u32::from(proxy_port.to_be());
    // SAFETY: writes to the context's `user_*` fields are checked by the verifier (allowed in
    // connect and sendmsg programs).
    unsafe {
        if !v6_socket {
            (*sa).user_ip4 = u32::from_ne_bytes(proxy.ip4);
        } else if mapped {
            (*sa).user_ip6 = [0, 0, MAPPED_WORD, u32::from_ne_bytes(proxy.ip4)];
        } else {
            (*sa).user_ip6 = words(&proxy.ip6);
        }
        (*sa).user_port = port_be;
    }
    Redirect::ToProxy
}

/// 16 bytes as the four `user_ip6` words (each in network order, as the kernel keeps them).
#[inline(always)]
fn words(b: &[u8; 16]) -> [u32; 4] {
    [
        u32::from_ne_bytes([b[0], b[1], b[2], b[3]]),
        u32::from_ne_bytes([b[4], b[5], b[6], b[7]]),
        u32::from_ne_bytes([b[8], b[9], b[10], b[11]]),
        u32::from_ne_bytes([b[12], b[13], b[14], b[15]]),
    ]
}

/// `recvmsg4`: a datagram read from a redirected socket shows its intended server as source.
/// Always lets the read through (a `recvmsg` program cannot refuse).
#[cgroup_sock_addr(recvmsg4)]
pub fn corral_recvmsg4(ctx: SockAddrContext) -> i32 {
    restore_source(&ctx, false);
    1
}

/// `recvmsg6`: as `recvmsg4` for IPv6 sockets (IPv4-mapped sources included).
#[cgroup_sock_addr(recvmsg6)]
pub fn corral_recvmsg6(ctx: SockAddrContext) -> i32 {
    restore_source(&ctx, true);
    1
}

#[inline(always)]
fn restore_source(ctx: &SockAddrContext, v6_socket: bool) {
    let sa: *mut bpf_sock_addr = ctx.sock_addr;
    // SAFETY: the helper only reads the socket.
    let cookie = unsafe { bpf_get_socket_cookie(sa.cast()) };
    // SAFETY: copied out at once.
    let Some(origin) = (unsafe { DNS_ORIGINS.get(&cookie) }).copied() else {
        return;
    };
    let Some(proxy) = DNS_PROXY.get(0).copied() else {
        return;
    };
    // SAFETY: reads and writes of the context's `user_*` fields are checked by the verifier.
    unsafe {
        let port = u16::from_be((*sa).user_port as u16);
        if v6_socket {
            let from = [
                (*sa).user_ip6[0],
                (*sa).user_ip6[1],
                (*sa).user_ip6[2],
                (*sa).user_ip6[3],
            ];
            let mapped_proxy = [0, 0, MAPPED_WORD, u32::from_ne_bytes(proxy.ip4)];
            let from_proxy = (from == mapped_proxy && port == proxy.port4)
                || (from == words(&proxy.ip6) && port == proxy.port6);
            if !from_proxy {
                return;
            }
            (*sa).user_ip6 = if origin.family == AF_INET6 {
                words(&origin.addr)
            } else {
                [
                    0,
                    0,
                    MAPPED_WORD,
                    u32::from_ne_bytes([
                        origin.addr[0],
                        origin.addr[1],
                        origin.addr[2],
                        origin.addr[3],
                    ]),
                ]
            };
        } else {
            if (*sa).user_ip4 != u32::from_ne_bytes(proxy.ip4) || port != proxy.port4 {
                return;
            }
            (*sa).user_ip4 = u32::from_ne_bytes([
                origin.addr[0],
                origin.addr[1],
                origin.addr[2],
                origin.addr[3],
            ]);
        }
        (*sa).user_port = u32::from(origin.port.to_be());
    }
}
