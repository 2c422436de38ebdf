//! `corral unload`: removes what daemons pinned (programs detach, confined processes are
//! released). Refused while a daemon is alive: it would keep running without enforcement.

use std::path::{Path, PathBuf};

use crate::loader::{PinDir, PinError};

#[derive(Debug, thiserror::Error)]
pub enum UnloadError {
    #[error(
        "a corral daemon is running on {} (stop it first: it would keep running with nothing enforced)",
        socket.display()
    )]
    DaemonAlive { socket: PathBuf },
    #[error(transparent)]
    Pin(#[from] PinError),
}

/// Removes the pins under `pin_dir`; returns the removed paths.
pub fn unload(pin_dir: &Path, socket: &Path) -> Result<Vec<PathBuf>, UnloadError> {
    if std::os::unix::net::UnixStream::connect(socket).is_ok() {
        return Err(UnloadError::DaemonAlive {
            socket: socket.to_owned(),
        });
    }
    Ok(PinDir::new(pin_dir).unload()?)
}
