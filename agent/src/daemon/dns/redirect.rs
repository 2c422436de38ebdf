//! Starting DNS learning: the proxy's sockets on loopback, their addresses in `DNS_PROXY`, the
//! learning tasks in `DNS_LEARN`, and the origin look-up (socket address → cookie →
//! `DNS_ORIGINS`).

use std::{
    collections::BTreeSet,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
};

use tokio::sync::mpsc;

use super::{
    proxy::{Learn, Origins, ProxyError, UdpProxy},
    proxy_tcp::TcpProxy,
    sockdiag::{Transport, socket_cookie},
};
use crate::loader::{DnsControl, DnsMaps, DnsOrigins};

const AF_INET6: u16 = 10;

/// Whether the programs that redirect DNS to the proxy (the cgroup `sock_addr` ones) are
/// among the `attached`.
#[must_use]
pub fn redirects(attached: &[crate::loader::HookSpec]) -> bool {
    attached
        .iter()
        .any(|h| h.program == agent_common::names::PROG_RECVMSG4)
}

/// Looks redirected sockets' intended servers up in `DNS_ORIGINS`.
struct MapOrigins(DnsOrigins);

impl MapOrigins {
    /// The intended server of the client socket `client` of `transport` that was redirected
    /// to `proxy`; `None` (warned about when the look-up failed) when it is not known.
    fn origin(
        &self,
        transport: Transport,
        client: SocketAddr,
        proxy: SocketAddr,
    ) -> Option<SocketAddr> {
        let cookie = match socket_cookie(transport, client, proxy) {
            Ok(Some(cookie)) => cookie,
            Ok(None) => return None,
            Err(e) => {
                tracing::warn!(%client, "DNS proxy: cannot find the client's socket: {e}");
                return None;
            }
        };
        self.0.get(cookie).map(|o| origin_addr(&o))
    }
}

impl Origins for MapOrigins {
    fn udp_origin(&self, client: SocketAddr, proxy: SocketAddr) -> Option<SocketAddr> {
        self.origin(Transport::Udp, client, proxy)
    }

    fn tcp_origin(&self, client: SocketAddr, proxy: SocketAddr) -> Option<SocketAddr> {
        self.origin(Transport::Tcp, client, proxy)
    }
}

fn origin_addr(origin: &agent_common::DnsOrigin) -> SocketAddr {
    let ip = if origin.family == AF_INET6 {
        IpAddr::from(origin.addr)
    } else {
        IpAddr::from([
            origin.addr[0],
            origin.addr[1],
            origin.addr[2],
            origin.addr[3],
        ])
    };
    SocketAddr::new(ip, origin.port)
}

/// Binds the UDP proxy on `ip` (a free port), then the TCP one on the same port: the programs
/// redirect both transports to one port. Retries a few ports when the TCP one is taken.
async fn bind_pair(ip: IpAddr) -> Result<(UdpProxy, TcpProxy), ProxyError> {
    let mut last = None;
    for _ in 0..8 {
        let udp = UdpProxy::bind(SocketAddr::new(ip, 0)).await?;
        let addr = udp.local_addr().map_err(|source| ProxyError::Bind {
            addr: SocketAddr::new(ip, 0),
            source,
        })?;
        match TcpProxy::bind(addr).await {
            Ok(tcp) => return Ok((udp, tcp)),
            Err(e) => last = Some(e),
        }
    }
    Err(last.unwrap_or(ProxyError::Listen {
        addr: SocketAddr::new(ip, 0),
        source: std::io::Error::from(std::io::ErrorKind::AddrInUse),
    }))
}

/// The learning side the DNS loop keeps: which tasks learn, and whether a proxy serves them.
/// Dropping it (the daemon stops) clears `DNS_PROXY`, so the learning tasks' DNS fails closed.
pub struct Learning {
    control: DnsControl,
    serving: bool,
    tasks: BTreeSet<u32>,
    warned: bool,
}

impl Learning {
    /// Binds the proxy on `127.0.0.1` and `::1` (random ports) when the redirecting programs are
    /// attached (`redirect`), and points `DNS_PROXY` at it; otherwise leaves `DNS_PROXY` empty.
    pub async fn start(maps: DnsMaps, learn: mpsc::UnboundedSender<Learn>, redirect: bool) -> Self {
        let DnsMaps {
            mut control,
            origins,
        } = maps;
        let mut addrs = (None, None);
        if redirect {
            let origins: Arc<dyn Origins> = Arc::new(MapOrigins(origins));
            for ip in [
                IpAddr::from(Ipv4Addr::LOCALHOST),
                IpAddr::from(Ipv6Addr::LOCALHOST),
            ] {
                match bind_pair(ip).await {
                    Ok((udp, tcp)) => {
                        let addr = udp.local_addr().ok();
                        if ip.is_ipv4() {
                            addrs.0 = addr;
                        } else {
                            addrs.1 = addr;
                        }
                        tokio::spawn(udp.serve(Arc::clone(&origins), learn.clone()));
                        tokio::spawn(tcp.serve(Arc::clone(&origins), learn.clone()));
                    }
                    Err(e) => tracing::error!("{e:#}: DNS of tasks with wildcard hosts fails"),
                }
            }
        }
        let serving = addrs.0.is_some() || addrs.1.is_some();
        if serving {
            if let Err(problem) = super::sockdiag::check() {
                tracing::error!(
                    "the DNS proxy cannot find its clients' sockets through NETLINK_SOCK_DIAG: \
                     {problem}; the DNS of tasks with wildcard hosts goes unanswered"
                );
            }
        }
        if let Err(e) = control.set_proxy(addrs.0, addrs.1) {
            tracing::error!("{e:#}: DNS of tasks with wildcard hosts fails");
        } else if serving {
            tracing::info!(v4 = ?addrs.0, v6 = ?addrs.1, "DNS proxy listening for tasks with wildcard hosts");
        }
        Self {
            control,
            serving,
            tasks: BTreeSet::new(),
            warned: false,
        }
    }

    /// Makes `DNS_LEARN` hold exactly `tasks` (ids of the tasks with wildcard rules).
    pub fn set_tasks(&mut self, tasks: BTreeSet<u32>) {
        if tasks == self.tasks {
            return;
        }
        if !tasks.is_empty() && !self.serving && !self.warned {
            self.warned = true;
            tracing::error!(
                "no DNS proxy (cgroup sock_addr programs are not attached here): the DNS of tasks \
                 with wildcard hosts is refused, and their wildcard rules allow nothing"
            );
        }
        match self.control.set_learning(&tasks) {
            Ok(()) => self.tasks = tasks,
            Err(e) => tracing::error!("cannot mark the tasks whose DNS is learned from: {e:#}"),
        }
    }
}

impl Drop for Learning {
    fn drop(&mut self) {
        if self.serving {
            if let Err(e) = self.control.set_proxy(None, None) {
                tracing::warn!("cannot clear the DNS proxy's address: {e:#}");
            }
        }
    }
}
