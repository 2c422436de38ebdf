//! `corral-dns-query connected|sendto|tcp SERVER_IP:PORT NAME [DELAY_MS]`: one plain A query
//! (after `DELAY_MS`), as a libc
//! resolver sends it (UDP `connect` + `send`, or `sendto` on an unconnected socket, or over TCP),
//! waiting 3s for the answer. Prints `from ADDR` (the answer's source as `recvfrom` gives it; for
//! TCP the address connected to) and one
//! `addr IP` line per A/AAAA record, and exits 0; `err ENAME N` and exit 1 when a call fails
//! (as `corral-probe` reports failures); `timeout` and exit 3 when nothing comes back.

use std::{
    io::ErrorKind,
    net::{SocketAddr, UdpSocket},
    process::ExitCode,
    str::FromStr,
    time::Duration,
};

use hickory_proto::{
    op::{Message, Query},
    rr::{Name, RData, RecordType},
    serialize::binary::{BinDecodable, BinEncodable},
};

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let (mode, server, name, delay) = match args.as_slice() {
        [mode, server, name] => (mode, server, name, "0"),
        [mode, server, name, delay] => (mode, server, name, delay.as_str()),
        _ => {
            eprintln!(
                "usage: corral-dns-query connected|sendto|tcp SERVER_IP:PORT NAME [DELAY_MS]"
            );
            return ExitCode::from(64);
        }
    };
    let Ok(delay) = delay.parse::<u64>() else {
        eprintln!("corral-dns-query: bad delay {delay:?}");
        return ExitCode::from(64);
    };
    std::thread::sleep(Duration::from_millis(delay));
    let (Ok(server), Ok(name)) = (SocketAddr::from_str(server), Name::from_str(name)) else {
        eprintln!("corral-dns-query: bad server address or name");
        return ExitCode::from(64);
    };
    if mode == "tcp" {
        return tcp_query(server, name);
    }
    let local = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = match UdpSocket::bind(local) {
        Ok(s) => s,
        Err(e) => return fail("bind", &e),
    };
    let wire = query_wire(name);
    let sent = if mode == "connected" {
        if let Err(e) = socket.connect(server) {
            return fail("connect", &e);
        }
        socket.send(&wire)
    } else {
        socket.send_to(&wire, server)
    };
    if let Err(e) = sent {
        return fail("send", &e);
    }
    let _ = socket.set_read_timeout(Some(Duration::from_secs(3)));
    let mut buf = [0u8; 4096];
    let (len, from) = match socket.recv_from(&mut buf) {
        Ok(got) => got,
        Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
            println!("timeout");
            return ExitCode::from(3);
        }
        Err(e) => return fail("recv", &e),
    };
    println!("from {from}");
    print_answer(&buf[..len])
}

fn print_answer(wire: &[u8]) -> ExitCode {
    let Ok(answer) = Message::from_bytes(wire) else {
        println!("err EBADMSG {}", libc::EBADMSG);
        return ExitCode::from(1);
    };
    for record in answer.answers() {
        match record.data() {
            RData::A(a) => println!("addr {}", a.0),
            RData::AAAA(a) => println!("addr {}", a.0),
            _ => {}
        }
    }
    ExitCode::SUCCESS
}

fn fail(step: &str, e: &std::io::Error) -> ExitCode {
    let n = e.raw_os_error().unwrap_or(0);
    let name = match n {
        libc::EPERM => "EPERM",
        libc::EACCES => "EACCES",
        libc::ECONNREFUSED => "ECONNREFUSED",
        _ => "EOTHER",
    };
    println!("err {name} {n}");
    eprintln!("corral-dns-query: {step}: {e}");
    ExitCode::from(1)
}

fn query_wire(name: Name) -> Vec<u8> {
    let mut query = Message::new();
    query.set_id(0x5eed);
    query.set_recursion_desired(true);
    query.add_query(Query::query(name, RecordType::A));
    query.to_bytes().unwrap_or_default()
}

/// One query over TCP (two-byte length, then the message), as resolvers fall back to.
fn tcp_query(server: SocketAddr, name: Name) -> ExitCode {
    use std::io::{Read, Write};
    let mut stream = match std::net::TcpStream::connect(server) {
        Ok(s) => s,
        Err(e) => return fail("connect", &e),
    };
    let _ = stream.set_read_timeout(Some(Duration::from_secs(3)));
    let wire = query_wire(name);
    let mut framed = u16::try_from(wire.len())
        .unwrap_or(0)
        .to_be_bytes()
        .to_vec();
    framed.extend_from_slice(&wire);
    if let Err(e) = stream.write_all(&framed) {
        return fail("send", &e);
    }
    let mut len = [0u8; 2];
    if let Err(e) = stream.read_exact(&mut len) {
        if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) {
            println!("timeout");
            return ExitCode::from(3);
        }
        return fail("recv", &e);
    }
    let mut answer = vec![0u8; usize::from(u16::from_be_bytes(len))];
    if let Err(e) = stream.read_exact(&mut answer) {
        return fail("recv", &e);
    }
    println!("from {server}");
    print_answer(&answer)
}
