//! A small authoritative DNS server on loopback for the DNS egress tests: UDP, A and AAAA
//! records whose addresses and TTLs the test changes while it runs, NXDOMAIN for names it does
//! not hold, and a switch that makes it stop answering (timeouts). Never the network.

use std::{
    collections::HashMap,
    net::{IpAddr, SocketAddr, UdpSocket},
    sync::{
        Arc, Mutex, PoisonError,
        atomic::{AtomicBool, AtomicUsize, Ordering},
    },
    thread::JoinHandle,
    time::{Duration, Instant},
};

use crate::daemon::Launch;
use crate::{Background, Daemon, Policy, Scratch, env};
use hickory_proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{
        RData, Record, RecordType,
        rdata::{A, AAAA},
    },
};

/// The records of one name.
#[derive(Clone)]
struct Records {
    addrs: Vec<IpAddr>,
    ttl: u32,
}

#[derive(Default)]
struct Zone {
    /// Lowercase name without the trailing dot → records.
    names: HashMap<String, Records>,
}

// ---------------------------------------------------------------------------------------------
// the DNS egress scenario shared by the native and VM tests

pub const TASK: &str = "dns-egress";
pub const HOST: &str = "svc.corral.test";

/// Longest wait for a resolver event (refreshes come at 3/4 of TTLs of a few seconds).
pub const DNS_TIMEOUT: Duration = Duration::from_secs(20);

#[must_use]
pub fn policy() -> Policy {
    Policy::probe_only(TASK).connect_host(HOST, &["1-65535"])
}

/// A daemon whose resolver asks `server`, with a 1s TTL floor, enforcing `policies`.
#[must_use]
pub fn daemon(server: &DnsServer, scratch: &Scratch, policies: &[&Policy]) -> Daemon {
    let config = scratch.file(
        "corral.toml",
        &format!(
            "[dns]\nservers = [\"{}\"]\nmin_ttl = \"1s\"\n",
            server.addr()
        ),
    );
    let files: Vec<(String, String)> = policies.iter().map(|p| (p.file_name(), p.yaml())).collect();
    let refs: Vec<(&str, &str)> = files
        .iter()
        .map(|(n, y)| (n.as_str(), y.as_str()))
        .collect();
    Daemon::launch(&Launch {
        policies: &refs,
        env: &[("CORRAL_CONFIG", &config)],
        ..Launch::default()
    })
}

/// Waits for the resolver event of `kind` about `HOST` whose list `field` holds `addr`; returns
/// when it was seen.
#[must_use]
pub fn wait_dns_event(d: &Daemon, kind: &str, field: &str, addr: &str) -> Instant {
    let _ = d.wait_events(
        |e| {
            e["kind"] == kind
                && e["host"] == HOST
                && e[field]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == addr))
        },
        DNS_TIMEOUT,
    );
    Instant::now()
}

/// A tagged TCP connect to a fresh listener on `addr` succeeds (the listener sees it).
pub fn expect_connect_allowed(d: &Daemon, addr: &str, why: &str) {
    let listener = Background::probe(&["listen", "tcp", addr, "0"]);
    let port = listener.port().to_string();
    let out = d.run_accepting_unenforced(TASK, &[&env::probe(), "connect", "tcp", addr, &port]);
    assert_eq!(
        out.code,
        Some(0),
        "expected the connect to {addr}:{port} to be allowed ({why})\n{}\ndaemon stderr:\n{}",
        out.describe(),
        d.stderr()
    );
    let accepted = listener.wait();
    assert_eq!(
        accepted.code,
        Some(0),
        "expected the listener on {addr}:{port} to accept the connect ({why})\n{}",
        accepted.describe()
    );
}

/// A tagged TCP connect to `addr` is refused with EPERM before it leaves.
pub fn expect_connect_refused(d: &Daemon, addr: &str, why: &str) {
    let out = d.run_accepting_unenforced(TASK, &[&env::probe(), "connect", "tcp", addr, "9"]);
    eprintln!("expecting EPERM: {why}");
    d.expect_errno(&out, "EPERM");
}

/// A running server; stopped when dropped.
pub struct DnsServer {
    addr: SocketAddr,
    zone: Arc<Mutex<Zone>>,
    silent: Arc<AtomicBool>,
    stop: Arc<AtomicBool>,
    queries: Arc<AtomicUsize>,
    thread: Option<JoinHandle<()>>,
}

impl DnsServer {
    /// Binds a UDP socket on `127.0.0.1`, port chosen by the kernel, and serves it on a thread.
    #[must_use]
    pub fn start() -> Self {
        Self::start_on("127.0.0.1:0")
    }

    /// Binds a UDP socket on `addr` (loopback) and serves it on a thread.
    #[must_use]
    pub fn start_on(addr: &str) -> Self {
        let socket = UdpSocket::bind(addr).unwrap_or_else(|e| {
            panic!("expected to bind the test DNS server on loopback {addr}: {e}")
        });
        socket
            .set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap_or_else(|e| panic!("expected to set the DNS server's read timeout: {e}"));
        let addr = socket
            .local_addr()
            .unwrap_or_else(|e| panic!("expected the DNS server's address: {e}"));
        let zone = Arc::new(Mutex::new(Zone::default()));
        let silent = Arc::new(AtomicBool::new(false));
        let stop = Arc::new(AtomicBool::new(false));
        let queries = Arc::new(AtomicUsize::new(0));
        let thread = {
            let (zone, silent, stop, queries) = (
                Arc::clone(&zone),
                Arc::clone(&silent),
                Arc::clone(&stop),
                Arc::clone(&queries),
            );
            std::thread::spawn(move || serve(&socket, &zone, &silent, &stop, &queries))
        };
        Self {
            addr,
            zone,
            silent,
            stop,
            queries,
            thread: Some(thread),
        }
    }

    /// Where it listens (`127.0.0.1:PORT`).
    #[must_use]
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Makes `name` answer `addrs` (A for IPv4, AAAA for IPv6) with `ttl` seconds.
    pub fn set(&self, name: &str, addrs: &[&str], ttl: u32) {
        let addrs = addrs
            .iter()
            .map(|a| {
                a.parse()
                    .unwrap_or_else(|e| panic!("expected {a:?} to be an address: {e}"))
            })
            .collect();
        self.zone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .names
            .insert(name.to_ascii_lowercase(), Records { addrs, ttl });
    }

    /// Also answers over TCP on the same address (RFC 7766 framing), on a thread of its own
    /// that stops with the server.
    pub fn serve_tcp(&self) {
        let listener = std::net::TcpListener::bind(self.addr)
            .unwrap_or_else(|e| panic!("expected to listen on {} over TCP: {e}", self.addr));
        listener
            .set_nonblocking(true)
            .unwrap_or_else(|e| panic!("expected a non-blocking listener: {e}"));
        let (zone, stop, queries) = (
            Arc::clone(&self.zone),
            Arc::clone(&self.stop),
            Arc::clone(&self.queries),
        );
        std::thread::spawn(move || {
            while !stop.load(Ordering::SeqCst) {
                match listener.accept() {
                    Ok((stream, _)) => serve_tcp_connection(stream, &zone, &queries),
                    Err(_) => std::thread::sleep(Duration::from_millis(50)),
                }
            }
        });
    }

    /// Makes `name` answer NXDOMAIN.
    pub fn remove(&self, name: &str) {
        self.zone
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .names
            .remove(&name.to_ascii_lowercase());
    }

    /// `true`: every query goes unanswered (the resolver times out).
    pub fn set_silent(&self, silent: bool) {
        self.silent.store(silent, Ordering::SeqCst);
    }

    /// Queries received so far.
    #[must_use]
    pub fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn serve(
    socket: &UdpSocket,
    zone: &Mutex<Zone>,
    silent: &AtomicBool,
    stop: &AtomicBool,
    queries: &AtomicUsize,
) {
    let mut buf = [0u8; 4096];
    while !stop.load(Ordering::SeqCst) {
        let Ok((len, peer)) = socket.recv_from(&mut buf) else {
            continue;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        if silent.load(Ordering::SeqCst) {
            continue;
        }
        let Ok(request) = Message::from_vec(&buf[..len]) else {
            continue;
        };
        let reply = {
            let zone = zone.lock().unwrap_or_else(PoisonError::into_inner);
            answer(&request, &zone)
        };
        if let Ok(bytes) = reply.to_vec() {
            let _ = socket.send_to(&bytes, peer);
        }
    }
}

/// Answers the length-prefixed queries of one TCP connection until it closes.
fn serve_tcp_connection(
    mut stream: std::net::TcpStream,
    zone: &Mutex<Zone>,
    queries: &AtomicUsize,
) {
    use std::io::{Read, Write};
    let _ = stream.set_nonblocking(false);
    let _ = stream.set_read_timeout(Some(Duration::from_secs(5)));
    loop {
        let mut len = [0u8; 2];
        if stream.read_exact(&mut len).is_err() {
            return;
        }
        let mut buf = vec![0u8; usize::from(u16::from_be_bytes(len))];
        if stream.read_exact(&mut buf).is_err() {
            return;
        }
        queries.fetch_add(1, Ordering::SeqCst);
        let Ok(request) = Message::from_vec(&buf) else {
            return;
        };
        let reply = {
            let zone = zone.lock().unwrap_or_else(PoisonError::into_inner);
            answer(&request, &zone)
        };
        let Ok(bytes) = reply.to_vec() else {
            return;
        };
        let Ok(n) = u16::try_from(bytes.len()) else {
            return;
        };
        let mut framed = n.to_be_bytes().to_vec();
        framed.extend_from_slice(&bytes);
        if stream.write_all(&framed).is_err() {
            return;
        }
    }
}

/// The authoritative answer to `request` from `zone`.
fn answer(request: &Message, zone: &Zone) -> Message {
    let mut reply = Message::new();
    reply
        .set_id(request.id())
        .set_message_type(MessageType::Response)
        .set_op_code(request.op_code())
        .set_recursion_desired(request.recursion_desired())
        .set_recursion_available(true)
        .set_authoritative(true);
    let Some(query) = request.queries().first() else {
        reply.set_response_code(ResponseCode::FormErr);
        return reply;
    };
    reply.add_query(query.clone());
    let name = query.name().to_ascii();
    let key = name.trim_end_matches('.').to_ascii_lowercase();
    let Some(records) = zone.names.get(&key) else {
        reply.set_response_code(ResponseCode::NXDomain);
        return reply;
    };
    for addr in &records.addrs {
        let rdata = match (addr, query.query_type()) {
            (IpAddr::V4(v4), RecordType::A) => RData::A(A(*v4)),
            (IpAddr::V6(v6), RecordType::AAAA) => RData::AAAA(AAAA(*v6)),
            _ => continue,
        };
        reply.add_answer(Record::from_rdata(query.name().clone(), records.ttl, rdata));
    }
    reply
}
