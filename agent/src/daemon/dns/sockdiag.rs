//! The cookie of a client's socket, from its address, through `NETLINK_SOCK_DIAG`: how the DNS
//! proxy finds the entry the redirecting programs wrote under that cookie (`DNS_ORIGINS`).

use std::{
    io,
    net::{IpAddr, SocketAddr},
    os::fd::{AsRawFd, FromRawFd, OwnedFd},
};

/// `SOCK_DIAG_BY_FAMILY`.
const SOCK_DIAG_BY_FAMILY: u16 = 20;
/// `NLMSG_ERROR`.
const NLMSG_ERROR: u16 = 2;
/// `sizeof(struct nlmsghdr)`.
const NLMSG_HDR: usize = 16;
/// `sizeof(struct inet_diag_req_v2)`.
const REQ_V2: usize = 56;
/// Offset of `inet_diag_msg.id` after the netlink header (family, state, timer, retrans).
const MSG_ID: usize = NLMSG_HDR + 4;

/// The transport of the client socket.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Transport {
    Udp,
    Tcp,
}

/// The cookie of the socket bound to `client` that sent to (or is connected to) `peer` (both in
/// this network namespace); `None` when no such socket exists any more.
pub fn socket_cookie(
    transport: Transport,
    client: SocketAddr,
    peer: SocketAddr,
) -> io::Result<Option<u64>> {
    // The kernel's exact look-up reads the address pair in one order for TCP and in the other
    // for UDP ("swapped for historical reasons"); asking both ways and checking that the
    // answer's local end is `client` does not depend on which.
    for (src, dst) in [(client, peer), (peer, client)] {
        if let Some((local, cookie)) = ask(transport, src, dst)? {
            if local.port() == client.port() {
                return Ok(Some(cookie));
            }
        }
    }
    Ok(None)
}

/// `SO_COOKIE` of one of our own sockets: what the programs' `bpf_get_socket_cookie` sees.
fn socket_own_cookie(fd: &impl AsRawFd) -> io::Result<u64> {
    let mut cookie = 0u64;
    let mut len = libc::socklen_t::try_from(size_of::<u64>()).unwrap_or(8);
    // SAFETY: the out-pointers are valid for their lengths.
    let rc = unsafe {
        libc::getsockopt(
            fd.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_COOKIE,
            (&raw mut cookie).cast(),
            &raw mut len,
        )
    };
    if rc == 0 {
        Ok(cookie)
    } else {
        Err(io::Error::last_os_error())
    }
}

/// Whether the look-up works here for UDP and TCP: it needs the kernel's `inet_diag`,
/// `udp_diag` and `tcp_diag` (modules on many distributions, loaded on first use). Checked on
/// the daemon's own loopback sockets; the error says what failed.
pub fn check() -> Result<(), String> {
    let peer = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let peer_addr = peer.local_addr().map_err(|e| format!("bind: {e}"))?;
    let udp = std::net::UdpSocket::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    udp.connect(peer_addr)
        .map_err(|e| format!("connect: {e}"))?;
    let local = udp.local_addr().map_err(|e| format!("bind: {e}"))?;
    let expected = socket_own_cookie(&udp).map_err(|e| format!("SO_COOKIE: {e}"))?;
    match socket_cookie(Transport::Udp, local, peer_addr) {
        Ok(Some(found)) if found == expected => {}
        Ok(_) => return Err("UDP sockets are not found (is udp_diag available?)".to_owned()),
        Err(e) => return Err(format!("UDP look-up: {e} (is udp_diag available?)")),
    }
    let listener = std::net::TcpListener::bind("127.0.0.1:0").map_err(|e| format!("bind: {e}"))?;
    let server = listener.local_addr().map_err(|e| format!("bind: {e}"))?;
    let tcp = std::net::TcpStream::connect(server).map_err(|e| format!("connect: {e}"))?;
    let local = tcp.local_addr().map_err(|e| format!("connect: {e}"))?;
    let expected = socket_own_cookie(&tcp).map_err(|e| format!("SO_COOKIE: {e}"))?;
    match socket_cookie(Transport::Tcp, local, server) {
        Ok(Some(found)) if found == expected => Ok(()),
        Ok(_) => Err("TCP sockets are not found (is tcp_diag available?)".to_owned()),
        Err(e) => Err(format!("TCP look-up: {e} (is tcp_diag available?)")),
    }
}

/// One exact look-up: the found socket's local address and cookie.
fn ask(
    transport: Transport,
    src: SocketAddr,
    dst: SocketAddr,
) -> io::Result<Option<(SocketAddr, u64)>> {
    // SAFETY: plain socket(2); the fd is owned at once.
    let raw = unsafe {
        libc::socket(
            libc::AF_NETLINK,
            libc::SOCK_DGRAM | libc::SOCK_CLOEXEC,
            libc::NETLINK_SOCK_DIAG,
        )
    };
    if raw < 0 {
        return Err(io::Error::last_os_error());
    }
    // SAFETY: `raw` is a fresh fd nothing else owns.
    let fd = unsafe { OwnedFd::from_raw_fd(raw) };
    let request = request(transport, src, dst);
    // SAFETY: the buffer is valid for its length; the kernel is the default destination.
    let sent = unsafe { libc::send(fd.as_raw_fd(), request.as_ptr().cast(), request.len(), 0) };
    if sent < 0 {
        return Err(io::Error::last_os_error());
    }
    let mut buf = [0u8; 512];
    // SAFETY: the buffer is valid for its length.
    let got = unsafe { libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0) };
    let got = usize::try_from(got).map_err(|_| io::Error::last_os_error())?;
    parse(&buf[..got], src.is_ipv4())
}

fn request(transport: Transport, src: SocketAddr, dst: SocketAddr) -> Vec<u8> {
    let mut m = Vec::with_capacity(NLMSG_HDR + REQ_V2);
    let len = u32::try_from(NLMSG_HDR + REQ_V2).unwrap_or(u32::MAX);
    m.extend_from_slice(&len.to_ne_bytes());
    m.extend_from_slice(&SOCK_DIAG_BY_FAMILY.to_ne_bytes());
    m.extend_from_slice(&(libc::NLM_F_REQUEST as u16).to_ne_bytes());
    m.extend_from_slice(&1u32.to_ne_bytes()); // seq
    m.extend_from_slice(&0u32.to_ne_bytes()); // pid: the kernel
    let family = if src.is_ipv4() {
        libc::AF_INET
    } else {
        libc::AF_INET6
    };
    let protocol = match transport {
        Transport::Udp => libc::IPPROTO_UDP,
        Transport::Tcp => libc::IPPROTO_TCP,
    };
    m.push(u8::try_from(family).unwrap_or(0));
    m.push(u8::try_from(protocol).unwrap_or(0));
    m.push(0); // ext
    m.push(0); // pad
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // every state
    m.extend_from_slice(&src.port().to_be_bytes());
    m.extend_from_slice(&dst.port().to_be_bytes());
    m.extend_from_slice(&addr16(src.ip()));
    m.extend_from_slice(&addr16(dst.ip()));
    m.extend_from_slice(&0u32.to_ne_bytes()); // interface: any
    m.extend_from_slice(&u32::MAX.to_ne_bytes()); // INET_DIAG_NOCOOKIE
    m.extend_from_slice(&u32::MAX.to_ne_bytes());
    m
}

/// An address as the 16 bytes of `idiag_src`/`idiag_dst` (IPv4 in the first four).
fn addr16(ip: IpAddr) -> [u8; 16] {
    match ip {
        IpAddr::V4(a) => {
            let mut b = [0u8; 16];
            b[..4].copy_from_slice(&a.octets());
            b
        }
        IpAddr::V6(a) => a.octets(),
    }
}

fn parse(reply: &[u8], v4: bool) -> io::Result<Option<(SocketAddr, u64)>> {
    let u16_at = |at: usize| {
        reply
            .get(at..at + 2)
            .map(|b| u16::from_ne_bytes([b[0], b[1]]))
    };
    let u32_at = |at: usize| {
        reply
            .get(at..at + 4)
            .map(|b| u32::from_ne_bytes([b[0], b[1], b[2], b[3]]))
    };
    match u16_at(4) {
        Some(NLMSG_ERROR) => {
            let errno = u32_at(NLMSG_HDR).map_or(0, u32::cast_signed);
            return if errno == -libc::ENOENT || errno == 0 {
                Ok(None)
            } else {
                Err(io::Error::from_raw_os_error(-errno))
            };
        }
        Some(SOCK_DIAG_BY_FAMILY) => {}
        _ => return Ok(None),
    }
    let (Some(sport), Some(src), Some(lo), Some(hi)) = (
        reply.get(MSG_ID..MSG_ID + 2),
        reply.get(MSG_ID + 4..MSG_ID + 20),
        u32_at(MSG_ID + 40),
        u32_at(MSG_ID + 44),
    ) else {
        return Ok(None);
    };
    let port = u16::from_be_bytes([sport[0], sport[1]]);
    let ip = if v4 {
        IpAddr::from([src[0], src[1], src[2], src[3]])
    } else {
        let mut b = [0u8; 16];
        b.copy_from_slice(src);
        IpAddr::from(b)
    };
    Ok(Some((
        SocketAddr::new(ip, port),
        u64::from(lo) | (u64::from(hi) << 32),
    )))
}

#[cfg(test)]
mod tests {
    use std::net::{TcpListener, TcpStream, UdpSocket};

    use super::*;

    fn own_cookie(fd: &impl AsRawFd) -> u64 {
        socket_own_cookie(fd).unwrap_or_else(|e| panic!("expected SO_COOKIE to work: {e}"))
    }

    #[test]
    fn finds_the_cookie_of_connected_and_unconnected_udp_sockets_and_of_tcp_clients() {
        let peer = UdpSocket::bind("127.0.0.1:0").expect("bind the peer");
        let peer_addr = peer.local_addr().expect("the peer's address");
        let connected = UdpSocket::bind("127.0.0.1:0").expect("bind a client");
        connected.connect(peer_addr).expect("connect the client");
        let unconnected = UdpSocket::bind("0.0.0.0:0").expect("bind a client");
        let unconnected_port = unconnected.local_addr().expect("its address").port();
        for (name, socket, local) in [
            (
                "connected",
                &connected,
                connected.local_addr().expect("its address"),
            ),
            (
                "unconnected (bound to 0.0.0.0)",
                &unconnected,
                SocketAddr::from(([127, 0, 0, 1], unconnected_port)),
            ),
        ] {
            let found = socket_cookie(Transport::Udp, local, peer_addr)
                .unwrap_or_else(|e| panic!("sock_diag failed for the {name} socket: {e}"));
            assert_eq!(
                found,
                Some(own_cookie(socket)),
                "the {name} UDP socket's cookie"
            );
        }
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind a listener");
        let server = listener.local_addr().expect("the listener's address");
        let client = TcpStream::connect(server).expect("connect");
        let local = client.local_addr().expect("the client's address");
        assert_eq!(
            socket_cookie(Transport::Tcp, local, server).expect("sock_diag for TCP"),
            Some(own_cookie(&client)),
            "the TCP client's cookie"
        );
        assert_eq!(
            check(),
            Ok(()),
            "the self-check passes where the look-ups work"
        );
        drop(connected);
        let gone = SocketAddr::from(([127, 0, 0, 1], 1));
        assert_eq!(
            socket_cookie(Transport::Udp, gone, peer_addr).expect("sock_diag"),
            None,
            "no socket, no cookie"
        );
    }
}
