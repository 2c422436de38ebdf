//! Readiness for systemd (`Type=notify`): `READY=1` once the socket is served, `STOPPING=1`
//! on the way out. Without `NOTIFY_SOCKET` (not under systemd) these do nothing.

use sd_notify::NotifyState;

/// Tells systemd the daemon is ready.
pub fn ready() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Ready]) {
        tracing::warn!("cannot tell systemd the daemon is ready: {e}");
    }
}

/// Tells systemd the daemon is stopping.
pub fn stopping() {
    if let Err(e) = sd_notify::notify(&[NotifyState::Stopping]) {
        tracing::warn!("cannot tell systemd the daemon is stopping: {e}");
    }
}
