//! One request/response exchange on the control socket, blocking (no runtime needed: `corral run`
//! must stay a single-threaded process until it execs).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
};

use crate::daemon::protocol::{Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum ClientError {
    #[error("cannot reach the corral daemon at {}: {source} (is `corral daemon` running?)", path.display())]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corral daemon at {}: {message}", path.display())]
    Protocol { path: PathBuf, message: String },
}

/// Sends `request` and returns the daemon's response.
pub fn call(socket: &Path, request: &Request) -> Result<Response, ClientError> {
    let unreachable = |source| ClientError::Unreachable {
        path: socket.to_owned(),
        source,
    };
    let protocol = |message: String| ClientError::Protocol {
        path: socket.to_owned(),
        message,
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    let mut line = serde_json::to_vec(request).map_err(|e| protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    let mut reply = String::new();
    BufReader::new(&stream)
        .read_line(&mut reply)
        .map_err(unreachable)?;
    if reply.is_empty() {
        return Err(protocol(
            "closed the connection without answering".to_owned(),
        ));
    }
    serde_json::from_str(&reply).map_err(|e| protocol(format!("unreadable answer: {e}")))
}
