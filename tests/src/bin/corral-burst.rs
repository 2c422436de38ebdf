//! `corral-burst N ADDR PORT`: attempts N TCP connects to ADDR:PORT as fast as it can (a burst
//! of events when a task refuses them) and prints `eperm E other O` (connects refused with
//! `EPERM`, and those that ended otherwise). Exit 0 once all N were attempted; 2 on bad usage.

use std::io::ErrorKind;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let parsed = match args.as_slice() {
        [n, addr, port] => n
            .parse::<u32>()
            .ok()
            .zip(addr.parse::<IpAddr>().ok())
            .zip(port.parse::<u16>().ok()),
        _ => None,
    };
    let Some(((count, addr), port)) = parsed else {
        eprintln!("usage: corral-burst N ADDR PORT");
        std::process::exit(2);
    };
    let target = SocketAddr::new(addr, port);
    let (mut eperm, mut other) = (0u32, 0u32);
    for _ in 0..count {
        match TcpStream::connect_timeout(&target, Duration::from_secs(2)) {
            Err(e) if e.kind() == ErrorKind::PermissionDenied => eperm += 1,
            _ => other += 1,
        }
    }
    println!("eperm {eperm} other {other}");
}
