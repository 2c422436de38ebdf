//! The forwarding DNS proxy the confined processes' DNS is redirected to (by the cgroup
//! `sock_addr` programs, for tasks with name rules). It forwards each query to the server the
//! process meant to ask, and before it replies, has the addresses the answer gives names the
//! rules match installed (`super::learned`), so the process never holds an address it may not
//! yet connect to. It fails closed: a query whose intended server is unknown, or whose answer
//! could not be installed, gets no reply (the process's resolver times out).

use std::{
    io,
    net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr},
    sync::Arc,
    time::Duration,
};

use tokio::{
    net::UdpSocket,
    sync::{mpsc, oneshot},
};

use super::answer::{NameAddresses, addresses_by_name};

/// Largest DNS message over UDP we forward (EDNS0 sizes included).
const UDP_MAX: usize = 4096;
/// How long the intended server has to answer.
const UPSTREAM_TIMEOUT: Duration = Duration::from_secs(5);
/// How long installing an answer's addresses may take before the reply is dropped.
const INSTALL_TIMEOUT: Duration = Duration::from_secs(2);

/// One answer's names and addresses, to install; `done` fires once they are.
#[derive(Debug)]
pub struct Learn {
    /// What the answer says.
    pub found: Vec<NameAddresses>,
    /// Answered by the DNS loop after installing.
    pub done: oneshot::Sender<()>,
}

/// Finds the server a redirected query was meant for, from the client's socket address.
pub trait Origins: Send + Sync + 'static {
    /// The intended server of the UDP socket at `client` that sent to the proxy at `proxy`;
    /// `None` when it is unknown.
    fn udp_origin(&self, client: SocketAddr, proxy: SocketAddr) -> Option<SocketAddr>;

    /// The intended server of the TCP connection from `client` to the proxy at `proxy`.
    fn tcp_origin(&self, client: SocketAddr, proxy: SocketAddr) -> Option<SocketAddr>;
}

/// Why the proxy cannot serve.
#[derive(Debug, thiserror::Error)]
pub enum ProxyError {
    #[error("cannot bind the DNS proxy's UDP socket on {addr}: {source}")]
    Bind { addr: SocketAddr, source: io::Error },
    #[error("cannot listen for the DNS proxy's TCP connections on {addr}: {source}")]
    Listen { addr: SocketAddr, source: io::Error },
}

/// A bound proxy, to learn its address before serving.
pub struct UdpProxy {
    socket: Arc<UdpSocket>,
}

impl UdpProxy {
    /// Binds on `addr` (loopback; port 0 picks one).
    pub async fn bind(addr: SocketAddr) -> Result<Self, ProxyError> {
        let socket = UdpSocket::bind(addr)
            .await
            .map_err(|source| ProxyError::Bind { addr, source })?;
        Ok(Self {
            socket: Arc::new(socket),
        })
    }

    /// Where it listens.
    pub fn local_addr(&self) -> io::Result<SocketAddr> {
        self.socket.local_addr()
    }

    /// Serves until the daemon stops; each query is handled in its own task.
    pub async fn serve(self, origins: Arc<dyn Origins>, learn: mpsc::UnboundedSender<Learn>) {
        let mut buf = vec![0u8; UDP_MAX];
        let Ok(local) = self.socket.local_addr() else {
            tracing::error!("DNS proxy: its socket has no address: not serving");
            return;
        };
        loop {
            let (len, client) = match self.socket.recv_from(&mut buf).await {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!("DNS proxy: cannot receive: {e}");
                    continue;
                }
            };
            let query = buf[..len].to_vec();
            let socket = Arc::clone(&self.socket);
            let origins = Arc::clone(&origins);
            let learn = learn.clone();
            tokio::spawn(async move {
                let Some(server) = origins.udp_origin(client, local) else {
                    tracing::warn!(%client, "DNS proxy: query from a socket whose server is unknown: not answered");
                    return;
                };
                match forward_udp(&query, server, &learn).await {
                    Ok(reply) => {
                        if let Err(e) = socket.send_to(&reply, client).await {
                            tracing::warn!(%client, "DNS proxy: cannot reply: {e}");
                        }
                    }
                    Err(problem) => {
                        tracing::warn!(%client, %server, "DNS proxy: query not answered: {problem}");
                    }
                }
            });
        }
    }
}

/// Asks `server`, installs what the answer says, and returns the answer to relay.
async fn forward_udp(
    query: &[u8],
    server: SocketAddr,
    learn: &mpsc::UnboundedSender<Learn>,
) -> Result<Vec<u8>, String> {
    let any: IpAddr = if server.is_ipv4() {
        Ipv4Addr::UNSPECIFIED.into()
    } else {
        Ipv6Addr::UNSPECIFIED.into()
    };
    let upstream = UdpSocket::bind(SocketAddr::new(any, 0))
        .await
        .map_err(|e| format!("cannot bind a socket to ask {server}: {e}"))?;
    upstream
        .connect(server)
        .await
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    upstream
        .send(query)
        .await
        .map_err(|e| format!("cannot send to {server}: {e}"))?;
    let mut buf = vec![0u8; UDP_MAX];
    let reply = loop {
        let len = tokio::time::timeout(UPSTREAM_TIMEOUT, upstream.recv(&mut buf))
            .await
            .map_err(|_| format!("{server} did not answer within {UPSTREAM_TIMEOUT:?}"))?
            .map_err(|e| format!("cannot receive from {server}: {e}"))?;
        // The same id as the query: a stray or spoofed datagram is not the answer.
        if len >= 2 && query.len() >= 2 && buf[..2] == query[..2] {
            break buf[..len].to_vec();
        }
    };
    install(&reply, learn).await?;
    Ok(reply)
}

/// Has the answer's addresses installed before it is relayed.
pub(super) async fn install(
    reply: &[u8],
    learn: &mpsc::UnboundedSender<Learn>,
) -> Result<(), String> {
    let found = addresses_by_name(reply);
    if found.is_empty() {
        return Ok(());
    }
    let (done, installed) = oneshot::channel();
    learn
        .send(Learn { found, done })
        .map_err(|_| "the DNS loop is gone: cannot install the answer".to_owned())?;
    match tokio::time::timeout(INSTALL_TIMEOUT, installed).await {
        Ok(Ok(())) => Ok(()),
        Ok(Err(_)) => Err("the DNS loop dropped the answer".to_owned()),
        Err(_) => Err(format!(
            "installing the answer took over {INSTALL_TIMEOUT:?}"
        )),
    }
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, str::FromStr};

    use hickory_resolver::proto::{
        op::{Message, MessageType, Query},
        rr::{Name, RData, Record, RecordType, rdata},
        serialize::binary::{BinDecodable, BinEncodable},
    };

    use super::*;

    struct Fixed(Option<SocketAddr>);

    impl Origins for Fixed {
        fn udp_origin(&self, _client: SocketAddr, _proxy: SocketAddr) -> Option<SocketAddr> {
            self.0
        }

        fn tcp_origin(&self, _client: SocketAddr, _proxy: SocketAddr) -> Option<SocketAddr> {
            self.0
        }
    }

    fn loopback() -> SocketAddr {
        SocketAddr::from((Ipv4Addr::LOCALHOST, 0))
    }

    /// A server answering every A query with 192.0.2.7 (TTL 30).
    async fn server() -> SocketAddr {
        let socket = UdpSocket::bind(loopback())
            .await
            .expect("bind the test server");
        let addr = socket.local_addr().expect("the test server's address");
        tokio::spawn(async move {
            let mut buf = vec![0u8; 512];
            while let Ok((len, from)) = socket.recv_from(&mut buf).await {
                let query = Message::from_bytes(&buf[..len]).expect("the proxy forwards a query");
                let mut reply = Message::new();
                reply.set_id(query.id());
                reply.set_message_type(MessageType::Response);
                for q in query.queries() {
                    reply.add_query(q.clone());
                    reply.add_answer(Record::from_rdata(
                        q.name().clone(),
                        30,
                        RData::A(rdata::A(Ipv4Addr::new(192, 0, 2, 7))),
                    ));
                }
                let wire = reply.to_bytes().expect("the reply encodes");
                let _ = socket.send_to(&wire, from).await;
            }
        });
        addr
    }

    fn query(id: u16) -> Vec<u8> {
        let mut m = Message::new();
        m.set_id(id);
        m.add_query(Query::query(
            Name::from_str("a.example.test.").expect("a name"),
            RecordType::A,
        ));
        m.to_bytes().expect("the query encodes")
    }

    async fn start(origin: Option<SocketAddr>) -> (SocketAddr, mpsc::UnboundedReceiver<Learn>) {
        let proxy = UdpProxy::bind(loopback()).await.expect("bind the proxy");
        let addr = proxy.local_addr().expect("the proxy's address");
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(proxy.serve(Arc::new(Fixed(origin)), tx));
        (addr, rx)
    }

    #[tokio::test]
    async fn the_answer_is_installed_before_it_is_relayed() {
        let (proxy, mut learn) = start(Some(server().await)).await;
        let client = UdpSocket::bind(loopback()).await.expect("bind the client");
        client
            .send_to(&query(0x4242), proxy)
            .await
            .expect("send the query");
        let request = tokio::time::timeout(Duration::from_secs(5), learn.recv())
            .await
            .expect("the proxy asks for the answer to be installed within 5s")
            .expect("the learn channel is open");
        assert_eq!(request.found.len(), 1, "one name: {:?}", request.found);
        assert_eq!(request.found[0].name.as_str(), "a.example.test");
        assert_eq!(
            request.found[0].addrs,
            [(IpAddr::from([192, 0, 2, 7]), Duration::from_secs(30))]
        );
        let mut buf = [0u8; 512];
        assert!(
            tokio::time::timeout(Duration::from_millis(300), client.recv_from(&mut buf))
                .await
                .is_err(),
            "no reply before the addresses are installed"
        );
        request
            .done
            .send(())
            .expect("the proxy waits for the install");
        let (len, from) = tokio::time::timeout(Duration::from_secs(5), client.recv_from(&mut buf))
            .await
            .expect("the reply arrives once installed")
            .expect("receive the reply");
        assert_eq!(from, proxy);
        let reply = Message::from_bytes(&buf[..len]).expect("the reply is a DNS message");
        assert_eq!(reply.id(), 0x4242, "the server's answer is relayed as is");
        assert_eq!(reply.answers().len(), 1);
    }

    #[tokio::test]
    async fn unknown_servers_and_failed_installs_get_no_reply() {
        let (proxy, _learn) = start(None).await;
        let client = UdpSocket::bind(loopback()).await.expect("bind the client");
        client
            .send_to(&query(1), proxy)
            .await
            .expect("send the query");
        let mut buf = [0u8; 512];
        assert!(
            tokio::time::timeout(Duration::from_millis(500), client.recv_from(&mut buf))
                .await
                .is_err(),
            "a query whose server is unknown is never forwarded anywhere else nor answered"
        );
        let (proxy, learn) = start(Some(server().await)).await;
        drop(learn);
        client
            .send_to(&query(2), proxy)
            .await
            .expect("send the query");
        assert!(
            tokio::time::timeout(Duration::from_secs(1), client.recv_from(&mut buf))
                .await
                .is_err(),
            "an answer that cannot be installed is not relayed"
        );
    }
}
