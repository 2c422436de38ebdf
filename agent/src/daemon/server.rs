//! The control socket: tags callers (identified by peer credentials, never by what they claim)
//! and reports status.

use std::{
    fs,
    io::ErrorKind,
    os::unix::fs::PermissionsExt,
    path::Path,
    sync::{Arc, Mutex},
};

use tokio::{
    io::{AsyncBufReadExt, AsyncWriteExt, BufReader},
    net::{UnixListener, UnixStream},
};

use super::{
    DaemonError, State,
    hub::Hub,
    protocol::{Refusal, Request, Response},
    state::Peer,
    subscriber::{self, Filter},
};

/// Binds the socket, replacing a stale one but never a live daemon's.
pub fn bind(path: &Path) -> Result<UnixListener, DaemonError> {
    let sock_err = |source| DaemonError::Socket {
        path: path.to_owned(),
        source,
    };
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).map_err(sock_err)?;
    }
    if path.exists() {
        if std::os::unix::net::UnixStream::connect(path).is_ok() {
            return Err(DaemonError::AlreadyRunning {
                path: path.to_owned(),
            });
        }
        fs::remove_file(path).map_err(sock_err)?;
    }
    let listener = UnixListener::bind(path).map_err(sock_err)?;
    // Any local user may confine itself (the only change a request can make is to narrow the
    // caller's own rights), so the socket is world-connectable.
    fs::set_permissions(path, fs::Permissions::from_mode(0o666)).map_err(sock_err)?;
    Ok(listener)
}

pub async fn accept_loop(
    listener: UnixListener,
    state: Arc<Mutex<State>>,
    hub: Arc<Hub>,
) -> Result<(), DaemonError> {
    loop {
        match listener.accept().await {
            Ok((stream, _)) => {
                let state = Arc::clone(&state);
                let hub = Arc::clone(&hub);
                tokio::spawn(async move {
                    if let Err(e) = handle(stream, state, hub).await {
                        tracing::warn!("control connection: {e:#}");
                    }
                });
            }
            Err(e) if e.kind() == ErrorKind::Interrupted => {}
            Err(e) => tracing::warn!("accept on control socket: {e:#}"),
        }
    }
}

async fn handle(
    stream: UnixStream,
    state: Arc<Mutex<State>>,
    hub: Arc<Hub>,
) -> std::io::Result<()> {
    let peer = stream.peer_cred().ok().and_then(|c| {
        Some(Peer {
            pid: u32::try_from(c.pid()?).ok().filter(|p| *p > 0)?,
            uid: c.uid(),
        })
    });
    let (read, mut write) = stream.into_split();
    let mut line = String::new();
    let mut read = BufReader::new(read);
    read.read_line(&mut line).await?;
    if let Ok(Request::Subscribe {
        task,
        ops,
        decisions,
        follow,
    }) = serde_json::from_str::<Request>(&line)
    {
        let filter = Filter {
            task,
            ops,
            decisions,
        };
        return subscriber::stream(&hub, filter, follow, read, write).await;
    }
    let response = match serde_json::from_str::<Request>(&line) {
        Err(e) => Response::Refused {
            refusal: Refusal::BadRequest,
            message: format!("bad request: {e}"),
        },
        Ok(request) => respond(request, peer, &state),
    };
    let mut out = serde_json::to_vec(&response).map_err(std::io::Error::other)?;
    out.push(b'\n');
    write.write_all(&out).await
}

fn respond(request: Request, peer: Option<Peer>, state: &Mutex<State>) -> Response {
    let Ok(mut state) = state.lock() else {
        return Response::Refused {
            refusal: Refusal::Internal,
            message: "daemon state is poisoned".to_owned(),
        };
    };
    match request {
        Request::Status => state.status(),
        Request::SetMode { task, mode } => match peer {
            Some(peer) => state.set_mode(peer, &task, mode.into()),
            _ => Response::Refused {
                refusal: Refusal::BadRequest,
                message: "cannot identify the calling process (no peer credentials)".to_owned(),
            },
        },
        Request::Subscribe { .. } => Response::Refused {
            refusal: Refusal::BadRequest,
            message: "subscriptions are streamed, not answered".to_owned(),
        },
        Request::Tag {
            task,
            accept_unenforced,
            ttl_secs,
        } => match peer {
            Some(peer) => state.tag(
                peer.pid,
                &task,
                accept_unenforced,
                ttl_secs.map(std::time::Duration::from_secs),
            ),
            _ => Response::Refused {
                refusal: Refusal::BadRequest,
                message: "cannot identify the calling process (no peer credentials)".to_owned(),
            },
        },
    }
}
