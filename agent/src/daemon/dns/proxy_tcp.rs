//! The DNS proxy over TCP (RFC 7766: each message behind a two-byte length): one upstream
//! connection per client connection, each answer installed before it is relayed, as over UDP.

use std::{io, net::SocketAddr, sync::Arc, time::Duration};

use tokio::{
    io::{AsyncReadExt, AsyncWriteExt},
    net::{TcpListener, TcpStream},
    sync::mpsc,
};

use super::proxy::{Learn, Origins, ProxyError, install};

/// How long a client or the server may stay silent in the middle of a connection.
const IDLE: Duration = Duration::from_secs(10);

/// A listening TCP proxy.
pub struct TcpProxy {
    listener: TcpListener,
}

impl TcpProxy {
    /// Listens on `addr` (loopback; the UDP proxy's port).
    pub async fn bind(addr: SocketAddr) -> Result<Self, ProxyError> {
        let listener = TcpListener::bind(addr)
            .await
            .map_err(|source| ProxyError::Listen { addr, source })?;
        Ok(Self { listener })
    }

    /// Serves until the daemon stops; each connection in its own task.
    pub async fn serve(self, origins: Arc<dyn Origins>, learn: mpsc::UnboundedSender<Learn>) {
        let Ok(local) = self.listener.local_addr() else {
            tracing::error!("DNS proxy: its TCP listener has no address: not serving");
            return;
        };
        loop {
            let (client, peer) = match self.listener.accept().await {
                Ok(got) => got,
                Err(e) => {
                    tracing::warn!("DNS proxy: cannot accept: {e}");
                    continue;
                }
            };
            let origins = Arc::clone(&origins);
            let learn = learn.clone();
            tokio::spawn(async move {
                let Some(server) = origins.tcp_origin(peer, local) else {
                    tracing::warn!(client = %peer, "DNS proxy: TCP connection from a socket whose server is unknown: closed");
                    return;
                };
                if let Err(problem) = relay(client, server, &learn).await {
                    tracing::warn!(client = %peer, %server, "DNS proxy (TCP): {problem}");
                }
            });
        }
    }
}

/// Relays messages until either side closes.
async fn relay(
    mut client: TcpStream,
    server: SocketAddr,
    learn: &mpsc::UnboundedSender<Learn>,
) -> Result<(), String> {
    let mut upstream = tokio::time::timeout(IDLE, TcpStream::connect(server))
        .await
        .map_err(|_| format!("cannot reach {server} within {IDLE:?}"))?
        .map_err(|e| format!("cannot reach {server}: {e}"))?;
    loop {
        let Some(query) = read_message(&mut client)
            .await
            .map_err(|e| format!("reading a query: {e}"))?
        else {
            return Ok(());
        };
        write_message(&mut upstream, &query)
            .await
            .map_err(|e| format!("sending to {server}: {e}"))?;
        let Some(answer) = read_message(&mut upstream)
            .await
            .map_err(|e| format!("reading from {server}: {e}"))?
        else {
            return Ok(());
        };
        install(&answer, learn).await?;
        write_message(&mut client, &answer)
            .await
            .map_err(|e| format!("replying: {e}"))?;
    }
}

/// One length-prefixed message; `None` at a clean end of stream.
async fn read_message(stream: &mut TcpStream) -> io::Result<Option<Vec<u8>>> {
    let mut len = [0u8; 2];
    match tokio::time::timeout(IDLE, stream.read_exact(&mut len)).await {
        Err(_) => return Err(io::Error::new(io::ErrorKind::TimedOut, "idle")),
        Ok(Err(e)) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(None),
        Ok(Err(e)) => return Err(e),
        Ok(Ok(_)) => {}
    }
    let mut message = vec![0u8; usize::from(u16::from_be_bytes(len))];
    tokio::time::timeout(IDLE, stream.read_exact(&mut message))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "idle"))??;
    Ok(Some(message))
}

async fn write_message(stream: &mut TcpStream, message: &[u8]) -> io::Result<()> {
    let len = u16::try_from(message.len())
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidData, "message over 65535 bytes"))?;
    let mut framed = Vec::with_capacity(message.len() + 2);
    framed.extend_from_slice(&len.to_be_bytes());
    framed.extend_from_slice(message);
    stream.write_all(&framed).await
}
