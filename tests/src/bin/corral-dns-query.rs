//! `corral-dns-query connected|sendto SERVER_IP:PORT NAME`: one plain UDP A query, as a libc
//! resolver sends it (`connect` + `send`, or `sendto` on an unconnected socket), waiting 3s for
//! the answer. Prints `from ADDR` (the answer's source as `recvfrom` gives it) and one
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
    let [mode, server, name] = args.as_slice() else {
        eprintln!("usage: corral-dns-query connected|sendto SERVER_IP:PORT NAME");
        return ExitCode::from(64);
    };
    let (Ok(server), Ok(name)) = (SocketAddr::from_str(server), Name::from_str(name)) else {
        eprintln!("corral-dns-query: bad server address or name");
        return ExitCode::from(64);
    };
    let fail = |step: &str, e: &std::io::Error| {
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
    };
    let local = if server.is_ipv4() {
        "0.0.0.0:0"
    } else {
        "[::]:0"
    };
    let socket = match UdpSocket::bind(local) {
        Ok(s) => s,
        Err(e) => return fail("bind", &e),
    };
    let mut query = Message::new();
    query.set_id(0x5eed);
    query.set_recursion_desired(true);
    query.add_query(Query::query(name, RecordType::A));
    let Ok(wire) = query.to_bytes() else {
        eprintln!("corral-dns-query: cannot encode the query");
        return ExitCode::from(64);
    };
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
    let Ok(answer) = Message::from_bytes(&buf[..len]) else {
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
