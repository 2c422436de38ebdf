//! Which sockets a tagged process may create without a privilege: those whose traffic Corral's
//! hooks judge. Shared by the BPF LSM guard (`socket_create`, which refuses) and the kill
//! backend (`sys_exit` of `socket(2)`, which kills), each with the hooks of its own host.

use agent_common::{PRIV_NETLINK, PRIV_OTHER_SOCKETS, PRIV_PACKET_SOCKETS, PRIV_RAW_SOCKETS};

use crate::report::Target;

const AF_UNIX: i32 = 1;
const AF_INET: i32 = 2;
const AF_INET6: i32 = 10;
const AF_PACKET: i32 = 17;
const AF_NETLINK: i32 = 16;
const SOCK_STREAM: i32 = 1;
const SOCK_DGRAM: i32 = 2;
const SOCK_RAW: i32 = 3;
const IPPROTO_ICMP: i32 = 1;
const IPPROTO_TCP: i32 = 6;
const IPPROTO_UDP: i32 = 17;
const IPPROTO_ICMPV6: i32 = 58;
const IPPROTO_UDPLITE: i32 = 136;
const IPPROTO_MPTCP: i32 = 262;
/// Low bits of the socket type (the rest are `SOCK_NONBLOCK`/`SOCK_CLOEXEC` flags).
pub const SOCK_TYPE_MASK: i32 = 0xf;

/// The `PRIV_*` bit a tagged process needs, where BPF LSM runs, to create a socket of `family`,
/// `ty` (without the `SOCK_NONBLOCK`/`SOCK_CLOEXEC` flags) and `protocol`; 0 for the sockets
/// Corral judges: `AF_UNIX` (the LSM `socket_connect` and `unix_may_send` rules), inet TCP and
/// MPTCP (whose first subflow is a TCP connect the hooks see) and inet UDP and UDP-Lite
/// (`connect` and the cgroup `sendmsg` programs). Protocol 0 is the family's default for the
/// type (TCP for streams, UDP for datagrams).
#[inline(always)]
pub fn privilege_with_lsm(family: i32, ty: i32, protocol: i32) -> u32 {
    match family {
        AF_UNIX => 0,
        AF_PACKET => PRIV_PACKET_SOCKETS,
        AF_NETLINK => PRIV_NETLINK,
        AF_INET | AF_INET6 => match (ty, protocol) {
            (SOCK_STREAM, 0 | IPPROTO_TCP | IPPROTO_MPTCP)
            | (SOCK_DGRAM, 0 | IPPROTO_UDP | IPPROTO_UDPLITE) => 0,
            // Ping sockets: ICMP echo requests to any address, with any payload.
            (SOCK_RAW, _) | (SOCK_DGRAM, IPPROTO_ICMP | IPPROTO_ICMPV6) => PRIV_RAW_SOCKETS,
            _ => PRIV_OTHER_SOCKETS,
        },
        _ => PRIV_OTHER_SOCKETS,
    }
}

/// As `privilege_with_lsm`, for the kill backend (no BPF LSM), which kills the process that
/// created the socket. Two differences, both from what the fallback's hooks see:
/// - UDP-Lite needs `other_sockets`: its connects never run the cgroup connect programs (no
///   `pre_connect`), so without the LSM `socket_connect` hook nothing judges where it goes.
/// - netlink is left alone: glibc's resolver opens a netlink socket (`getaddrinfo` with
///   `AI_ADDRCONFIG`), which BPF LSM refuses with `EPERM` and the resolver survives, but a
///   kill would end every program that resolves a name. Netlink stays **not judged** there.
#[inline(always)]
pub fn privilege_without_lsm(family: i32, ty: i32, protocol: i32) -> u32 {
    match family {
        AF_NETLINK => 0,
        AF_INET | AF_INET6 if ty == SOCK_DGRAM && protocol == IPPROTO_UDPLITE => PRIV_OTHER_SOCKETS,
        _ => privilege_with_lsm(family, ty, protocol),
    }
}

/// The event target of a socket a guard judged: `family`, `ty` (without the flags) in `access`,
/// `protocol` in `proto`. The same for both guards.
#[inline(always)]
pub fn socket_target(family: i32, ty: i32, protocol: i32) -> Target {
    let mut target = Target::empty();
    target.family = family as u32;
    target.access = ty as u32;
    target.proto = protocol as u32;
    target
}
