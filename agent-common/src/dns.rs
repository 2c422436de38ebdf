//! DNS learning: the confined processes of tasks with name rules (`host:` connect rules) have
//! their DNS (UDP and TCP port 53) redirected by the cgroup `sock_addr` programs to the daemon's
//! forwarding proxy on loopback, which learns the answered addresses before relaying them.

/// Value of `DNS_PROXY` (key: u32 0, the only entry): where the daemon's DNS proxy listens.
/// `port` 0 (or no entry) means no proxy: the DNS of learning tasks is then refused (fail closed).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DnsProxy {
    /// The proxy's IPv4 address as the kernel's `user_ip4` holds it (network order bytes).
    pub ip4: [u8; 4],
    /// The proxy's port on `ip4` (and on `::ffff:ip4` for v4-mapped destinations), host order.
    pub port4: u16,
    /// The proxy's port on `ip6`, host order (0: IPv6 DNS of learning tasks is refused).
    pub port6: u16,
    /// The proxy's IPv6 address (`::1`).
    pub ip6: [u8; 16],
}

/// Bound of `DNS_PROXY`: one entry (key 0).
pub const DNS_PROXY_MAX: u32 = 1;

/// Value of `DNS_ORIGINS` (key: u64 socket cookie): the server a redirected socket meant to ask.
/// Written by `connect4/6` and `sendmsg4/6` when they redirect; read by the proxy (which finds
/// the client socket's cookie through `sock_diag`) and by `recvmsg4/6`, which give the client
/// the original server as the answer's source.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct DnsOrigin {
    /// IPv4 (first 4 bytes) or IPv6 address, as written by the caller.
    pub addr: [u8; 16],
    /// Port, host order.
    pub port: u16,
    /// `AF_INET` (2) or `AF_INET6` (10): the family of `addr`.
    pub family: u16,
    /// The task id (not the rules id) of the process that wrote the entry.
    pub task_id: u32,
}

/// Bound of `DNS_ORIGINS` (an LRU map: the oldest sockets' entries go first).
pub const DNS_ORIGINS_MAX: u32 = 16_384;

/// Value of `DNS_LEARN` (key: u32 task id): present for the tasks whose DNS goes through the
/// proxy (those with `host` rules); the value is reserved (1).
pub const DNS_LEARN_MAX: u32 = 1024;

/// The DNS port whose traffic is redirected.
pub const DNS_PORT: u16 = 53;

const _: () = assert!(core::mem::size_of::<DnsProxy>() == 24);
const _: () = assert!(core::mem::size_of::<DnsOrigin>() == 24);

#[cfg(feature = "user")]
mod pod {
    // SAFETY: `#[repr(C)]`, `Copy`, integers and integer arrays only, no implicit padding (see
    // the size asserts), so every bit pattern is valid.
    unsafe impl aya::Pod for super::DnsProxy {}
    unsafe impl aya::Pod for super::DnsOrigin {}
}
