//! Connect: inet destinations against CIDR + port rules, unix sockets against listed addresses.

use agent_common::{
    ConnectSeen, Mode, NetV4Data, NetV6Data, Op, PortSet, Proto, Reason, UNIX_PATH_MAX, UnixRuleKey,
};
use aya_ebpf::{
    helpers::{
        bpf_get_current_pid_tgid, bpf_probe_read_kernel,
        generated::{
            bpf_probe_read_kernel as raw_probe_read_kernel,
            bpf_probe_read_kernel_str as raw_probe_read_kernel_str,
        },
    },
    macros::lsm,
    maps::lpm_trie::Key,
    programs::LsmContext,
};

use crate::{
    context::{Caller, btf_load, caller, caller_of, current_tag},
    maps::{CONNECT_SEEN, NET_V4_RULES, NET_V6_RULES, UNIX_RULES, offsets},
    report::{PathSource, Target, finish, lsm_verdict},
    sock_addr::connects_judged_here,
};

const AF_UNSPEC: u16 = 0;
const AF_UNIX: u16 = 1;
const AF_INET: u16 = 2;
const AF_INET6: u16 = 10;
const SOCKADDR_IN_LEN: i32 = 16;
/// `SIN6_LEN_RFC2133`: the shortest `sockaddr_in6` the kernel accepts.
const SOCKADDR_IN6_LEN: i32 = 24;
/// `offsetof(struct sockaddr_un, sun_path)`.
const SUN_PATH_OFF: i32 = 2;

/// `socket_connect(struct socket *sock, struct sockaddr *address, int addrlen)`: TCP and UDP
/// connects over IPv4 and IPv6, and `AF_UNIX` connects.
///
/// Allows untagged processes. For a tagged process: an inet destination must fall in a CIDR of
/// the task whose ports include the destination port (IPv4-mapped IPv6 is judged as IPv4); a
/// unix pathname socket must be listed exactly (a relative path is refused: it cannot be judged
/// by what it reaches); an abstract socket must be listed as `@name`. `AF_UNSPEC` (disconnect)
/// is allowed; every other family and any malformed address is a miss. Fails closed for tagged
/// processes.
///
/// The inet connects of TCP stream and UDP datagram sockets are left to the cgroup
/// `connect4/6` programs where they are attached (`inet_by_cgroup`): every such connect,
/// `connect(2)`, `io_uring` and TCP Fast Open alike, runs them (the protocols' `pre_connect`),
/// and they judge the destination the connect really goes to, so judging it here too would
/// only double the cost. The inet connects of other protocols (UDP-Lite, MPTCP, and those a
/// `spec.privileges` grant allows) are judged here.
#[lsm(hook = "socket_connect")]
pub fn corral_socket_connect(ctx: LsmContext) -> i32 {
    lsm_verdict(match try_socket_connect(&ctx) {
        Ok(v) | Err(v) => v,
    })
}

fn try_socket_connect(ctx: &LsmContext) -> Result<i32, i32> {
    let Some(tag) = current_tag() else {
        return Ok(0);
    };
    // SAFETY: the hook's arguments are `struct socket *`, `struct sockaddr *` (the kernel's own
    // copy, a `sockaddr_storage`) and `int`; every read below is a fault-tolerant probe read
    // or a direct load checked against BTF (`btf_load`).
    let (sock, addr, addrlen): (*const u8, *const u8, i32) = (ctx.arg(0), ctx.arg(1), ctx.arg(2));
    // Left to the cgroup programs before anything else is looked up (the task, its rules): an
    // inet address (`sa_family`, offset 0 of the kernel's copy; an unreadable one, 0, is judged
    // below) on a socket of a kind they judge.
    if addrlen >= 2 {
        // SAFETY: a BTF pointer (`struct sockaddr *`) and its first field.
        let family: u16 = unsafe { btf_load(addr, 0) };
        if (family == AF_INET || family == AF_INET6) && judged_by_cgroup(sock) {
            return Ok(0);
        }
    }
    let who = caller_of(tag);
    let mut target = Target::empty();
    target.proto = sock_proto(sock);
    if addrlen < 2 {
        return Err(finish(Op::Connect, &who, Some(Reason::BadAddress), &target));
    }
    let family: u16 = unsafe { bpf_probe_read_kernel(addr.cast::<u16>()) }
        .map_err(|_| finish(Op::Connect, &who, Some(Reason::BadAddress), &target))?;
    target.family = u32::from(family);
    let miss = match family {
        AF_UNSPEC => None,
        AF_INET => judge_inet4(&who, addr, addrlen, &mut target),
        AF_INET6 => judge_inet6(&who, addr, addrlen, &mut target),
        AF_UNIX => judge_unix(&who, addr, addrlen, &mut target),
        _ => Some(Reason::FamilyNotAllowed),
    };
    if (family == AF_INET || family == AF_INET6) && who.mode == Mode::Audit as u32 {
        mark_judged(&target);
    }
    Ok(finish(Op::Connect, &who, miss, &target))
}

/// `socket_sendmsg(struct socket *sock, struct msghdr *msg, int size)`: every `sendmsg`,
/// `sendto` and `sendmmsg` message (and `io_uring`'s), after the kernel copied its destination.
///
/// Allows untagged processes, and messages without a destination (connected sockets, whose
/// connect was judged) or with an inet one (judged by the cgroup `sendmsg4/6` programs, which
/// see the final address). A message to an `AF_UNIX` address, which reaches a datagram socket
/// without any connect, is judged like a unix connect: the pathname socket must be listed
/// exactly, an abstract one as `@name`. Other families cannot be created by a tagged process
/// without a privilege (`socket_create`). Fails closed for tagged processes.
#[lsm(hook = "socket_sendmsg")]
pub fn corral_socket_sendmsg(ctx: LsmContext) -> i32 {
    lsm_verdict(match try_socket_sendmsg(&ctx) {
        Ok(v) | Err(v) => v,
    })
}

fn try_socket_sendmsg(ctx: &LsmContext) -> Result<i32, i32> {
    let Some(who) = caller() else {
        return Ok(0);
    };
    let off = offsets();
    // SAFETY: the hook's arguments are `struct socket *` and `struct msghdr *` (the kernel's
    // own, whose `msg_name` points at its copy of the destination): BTF pointers, read by
    // direct loads at BTF offsets (`btf_load`). `msg_name` is a `void *`: a plain number to the
    // verifier, read below by probe reads.
    let (sock, msg): (*const u8, *const u8) = (ctx.arg(0), ctx.arg(1));
    let (name, namelen): (*const u8, i32) = unsafe {
        (
            btf_load(msg, off.msghdr_msg_name),
            btf_load(msg, off.msghdr_msg_namelen),
        )
    };
    // Connected sockets (no destination), the common case, leave here.
    if name.is_null() || namelen < 2 {
        return Ok(0);
    }
    let mut target = Target::empty();
    target.proto = sock_proto(sock);
    let family: u16 = unsafe { bpf_probe_read_kernel(name.cast::<u16>()) }
        .map_err(|_| finish(Op::Sendmsg, &who, Some(Reason::BadAddress), &target))?;
    if family != AF_UNIX {
        return Ok(0);
    }
    target.family = u32::from(family);
    let miss = judge_unix(&who, name, namelen, &mut target);
    Ok(finish(Op::Sendmsg, &who, miss, &target))
}

/// `struct socket::type` as a `Proto` code. `sock` is the hook's `struct socket *`.
#[inline(always)]
fn sock_proto(sock: *const u8) -> u32 {
    // SAFETY: a BTF pointer and the offset of one of its fields (see `btf_load`).
    let ty: i16 = unsafe { btf_load(sock, offsets().socket_type) };
    match ty {
        1 => Proto::Tcp as u32,
        2 => Proto::Udp as u32,
        5 => Proto::Seqpacket as u32,
        _ => Proto::Other as u32,
    }
}

/// Whether the cgroup `connect4/6` programs judge an inet connect of `sock`: they are attached,
/// and the socket is an inet socket of the kind they judge (`sock_addr::connects_judged_here`:
/// TCP streams and UDP datagrams, whose connects always run them). UDP-Lite has no
/// `pre_connect` (its connects never reach them); MPTCP's reach them only through its subflow.
#[inline(always)]
fn judged_by_cgroup(sock: *const u8) -> bool {
    let off = offsets();
    if off.inet_by_cgroup == 0 {
        return false;
    }
    // SAFETY: BTF pointers and the offsets of their fields (see `btf_load`). `sk` may be NULL
    // to the verifier (6.12 wants it checked before any offset is added): then the LSM judges.
    let (ty, family, protocol): (i16, u16, u16) = unsafe {
        let ty = btf_load(sock, off.socket_type);
        let sk: *const u8 = btf_load(sock, off.socket_sk);
        if sk.is_null() {
            return false;
        }
        (
            ty,
            btf_load(sk, off.sock_family),
            btf_load(sk, off.sock_sk_protocol),
        )
    };
    (family == AF_INET || family == AF_INET6)
        && connects_judged_here(u32::from(ty as u16), u32::from(protocol))
}

#[inline(always)]
fn read_port(addr: *const u8) -> Option<u16> {
    let be: u16 = unsafe { bpf_probe_read_kernel(addr.add(2).cast::<u16>()) }.ok()?;
    Some(u16::from_be(be))
}

#[inline(always)]
fn judge_inet4(who: &Caller, addr: *const u8, addrlen: i32, target: &mut Target) -> Option<Reason> {
    if addrlen < SOCKADDR_IN_LEN {
        return Some(Reason::BadAddress);
    }
    let Some(port) = read_port(addr) else {
        return Some(Reason::BadAddress);
    };
    let Ok(ip) = (unsafe { bpf_probe_read_kernel(addr.add(4).cast::<[u8; 4]>()) }) else {
        return Some(Reason::BadAddress);
    };
    target.port = u32::from(port);
    judge_v4(who, ip, port, target)
}

/// Judges an IPv4 destination against the task's CIDR + port rules.
#[inline(always)]
pub fn judge_v4(who: &Caller, ip: [u8; 4], port: u16, target: &mut Target) -> Option<Reason> {
    target.family = u32::from(AF_INET);
    target.addr[..4].copy_from_slice(&ip);
    let key = Key::new(
        32 + 32,
        NetV4Data {
            task_id: who.rules,
            addr: ip,
        },
    );
    port_allowed(NET_V4_RULES.get(&key), port)
}

#[inline(always)]
fn judge_inet6(who: &Caller, addr: *const u8, addrlen: i32, target: &mut Target) -> Option<Reason> {
    if addrlen < SOCKADDR_IN6_LEN {
        return Some(Reason::BadAddress);
    }
    let Some(port) = read_port(addr) else {
        return Some(Reason::BadAddress);
    };
    let Ok(ip) = (unsafe { bpf_probe_read_kernel(addr.add(8).cast::<[u8; 16]>()) }) else {
        return Some(Reason::BadAddress);
    };
    target.port = u32::from(port);
    judge_v6(who, ip, port, target)
}

/// Judges an IPv6 destination; an IPv4-mapped one is judged as the IPv4 address.
#[inline(always)]
pub fn judge_v6(who: &Caller, ip: [u8; 16], port: u16, target: &mut Target) -> Option<Reason> {
    if is_v4_mapped(&ip) {
        return judge_v4(who, [ip[12], ip[13], ip[14], ip[15]], port, target);
    }
    target.family = u32::from(AF_INET6);
    target.addr = ip;
    let key = Key::new(
        32 + 128,
        NetV6Data {
            task_id: who.rules,
            addr: ip,
        },
    );
    port_allowed(NET_V6_RULES.get(&key), port)
}

/// `::ffff:a.b.c.d`.
#[inline(always)]
fn is_v4_mapped(ip: &[u8; 16]) -> bool {
    let mut zero = 0u8;
    let mut i = 0;
    while i < 10 {
        zero |= ip[i];
        i += 1;
    }
    zero == 0 && ip[10] == 0xff && ip[11] == 0xff
}

/// Whether `port` falls in one of the entry's ranges. Every slot is checked (the loader fills
/// unused slots with the empty range `1..=0`), so the loop has a constant trip count that LLVM
/// unrolls and the verifier never has to bound a data-dependent index.
#[inline(always)]
fn port_allowed(set: Option<&PortSet>, port: u16) -> Option<Reason> {
    let Some(set) = set else {
        return Some(Reason::NotAllowed);
    };
    let mut hit = false;
    for r in &set.ranges {
        hit |= r.lo <= port && port <= r.hi;
    }
    if hit { None } else { Some(Reason::NotAllowed) }
}

#[inline(always)]
fn judge_unix(who: &Caller, addr: *const u8, addrlen: i32, target: &mut Target) -> Option<Reason> {
    let avail = addrlen - SUN_PATH_OFF;
    if avail <= 0 {
        return Some(Reason::BadAddress);
    }
    let avail = if avail as usize > UNIX_PATH_MAX {
        UNIX_PATH_MAX as u32
    } else {
        avail as u32
    };
    let mut room = KeyRoom {
        key: UnixRuleKey {
            task_id: who.rules,
            len: 0,
            path: [0; UNIX_PATH_MAX],
        },
        spare: [0; SUN_BUF - UNIX_PATH_MAX],
    };
    // The kernel's copy is a `sockaddr_storage` (128 bytes): reads up to 108 bytes past offset 2
    // stay inside it, but bytes past `addrlen` are stale, so every copy is bounded by `avail`.
    let sun_path = unsafe { addr.add(SUN_PATH_OFF as usize) };
    let Ok(first) = (unsafe { bpf_probe_read_kernel(sun_path) }) else {
        return Some(Reason::BadAddress);
    };
    target.path = PathSource::UnixAddress(sun_path);
    // The address is read straight into the key: `SUN_BUF` bytes of room from `path` on.
    let dst: *mut core::ffi::c_void = (&raw mut room.key.path).cast();
    if first == 0 {
        // Abstract: exactly `avail` bytes (NULs included); the rest of the key stays zero.
        let Some(size) = bounded_size(avail) else {
            return Some(Reason::BadAddress);
        };
        if unsafe { raw_probe_read_kernel(dst, size, sun_path.cast()) } != 0 {
            return Some(Reason::BadAddress);
        }
        room.key.len = size;
    } else {
        // Pathname: up to the first NUL within the address. `avail + 1` lets the string copy
        // take all `avail` bytes when the caller did not NUL-terminate (SUN_LEN style).
        if avail as usize == UNIX_PATH_MAX {
            // A 108-byte address without NUL would not fit the key with its terminator: such a
            // path is longer than any rule allows, so it is a miss rather than a truncated match.
            let Ok(last) = (unsafe { bpf_probe_read_kernel(sun_path.add(UNIX_PATH_MAX - 1)) })
            else {
                return Some(Reason::BadAddress);
            };
            if last != 0u8 {
                target.path_len = UNIX_PATH_MAX as u32;
                return Some(Reason::NotAllowed);
            }
        }
        let Some(size) = bounded_size(avail + 1) else {
            return Some(Reason::BadAddress);
        };
        let n = unsafe { raw_probe_read_kernel_str(dst, size, sun_path.cast()) };
        if n <= 0 {
            return Some(Reason::BadAddress);
        }
        // `n` counts the NUL the helper wrote.
        room.key.len = (n - 1) as u32;
        if first != b'/' {
            target.path_len = room.key.len;
            return Some(Reason::RelativeUnixPath);
        }
    }
    target.path_len = room.key.len;
    if unsafe { UNIX_RULES.get(&room.key) }.is_some() {
        None
    } else {
        Some(Reason::NotAllowed)
    }
}

/// A `UnixRuleKey` with room behind its `path` for a copy of a masked size (`bounded_size`):
/// the verifier sees up to `SUN_BUF - 1` bytes, the key holds `UNIX_PATH_MAX`. Reading the
/// address straight into the key spares a second 128-byte stack buffer (the hook's stack,
/// with the event writer's frame, must stay within 512 bytes).
#[repr(C)]
struct KeyRoom {
    key: UnixRuleKey,
    spare: [u8; SUN_BUF - UNIX_PATH_MAX],
}

const _: () = assert!(
    core::mem::offset_of!(KeyRoom, key) + core::mem::offset_of!(UnixRuleKey, path) + SUN_BUF
        <= core::mem::size_of::<KeyRoom>()
);

/// Bytes of room a `sun_path` is copied into: a power of two above `UNIX_PATH_MAX`
/// so a size masked with `SUN_BUF - 1` is provably inside it.
const SUN_BUF: usize = 128;

/// `n` clamped to `1..=UNIX_PATH_MAX`, then masked so the verifier can bound it whatever shape
/// LLVM gives the range check.
#[inline(always)]
fn bounded_size(n: u32) -> Option<u32> {
    if n == 0 {
        return None;
    }
    let n = if n as usize > UNIX_PATH_MAX {
        UNIX_PATH_MAX as u32
    } else {
        n
    };
    // `black_box` hides what LLVM knows of `n`, so the mask survives to the helper call.
    Some(core::hint::black_box(n) & (SUN_BUF as u32 - 1))
}

/// Leaves the mark the cgroup `connect4/6` programs consume so an audited connect is reported
/// once (see `sock_addr.rs`). Only audit mode needs it: in enforce mode the LSM refuses first.
#[inline(always)]
fn mark_judged(target: &Target) {
    let tid = bpf_get_current_pid_tgid() as u32;
    let seen = ConnectSeen {
        port: target.port,
        addr: target.addr,
    };
    let _ = CONNECT_SEEN.insert(&tid, &seen, 0);
}
