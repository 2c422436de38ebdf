//! Watching the policies directory: every change (an edit, an editor's rename-into-place, a
//! Kubernetes `ConfigMap`'s `..data` symlink swap, a removal) triggers a reload `DEBOUNCE` after
//! its first event; a periodic rescan catches what inotify cannot see (the
//! directory replaced under us, an executable selector's file reinstalled).

use std::{
    path::Path,
    sync::{Arc, Mutex},
    time::Duration,
};

use futures_util::StreamExt as _;
use inotify::{Inotify, WatchMask};
use tokio::sync::mpsc;

use super::{State, state::PolicyEvent};

/// How long the events of one change are gathered before reloading (editors write in several
/// steps). Counted from the first event, so a directory that keeps changing still reloads at
/// least this often.
pub const DEBOUNCE: Duration = Duration::from_millis(100);
/// A full rescan this often even without inotify events.
pub const RESCAN_EVERY: Duration = Duration::from_secs(10);
/// Replaced rules are deleted this often (once `tasks::RETIRE_AFTER` has passed).
const SWEEP_EVERY: Duration = Duration::from_secs(1);

/// Cannot watch the policies directory.
#[derive(Debug, thiserror::Error)]
#[error("cannot watch policy directory {dir} for changes: {source}")]
pub struct WatchError {
    pub dir: String,
    pub source: std::io::Error,
}

/// Reloads on every change of `dir` (and every `RESCAN_EVERY`), sending what happened to
/// `events`. Runs until the daemon stops.
pub async fn watch(
    dir: &Path,
    state: Arc<Mutex<State>>,
    events: mpsc::UnboundedSender<PolicyEvent>,
) -> Result<(), WatchError> {
    let watch_err = |source| WatchError {
        dir: dir.display().to_string(),
        source,
    };
    let inotify = Inotify::init().map_err(watch_err)?;
    inotify
        .watches()
        .add(
            dir,
            changes() | WatchMask::DELETE_SELF | WatchMask::MOVE_SELF,
        )
        .map_err(watch_err)?;
    // Fragments (`spec.include`) live one level down; a directory created later is caught by
    // the periodic rescan.
    let fragments = dir.join(crate::policy::FRAGMENTS_DIR);
    if fragments.is_dir() {
        if let Err(e) = inotify.watches().add(&fragments, changes()) {
            tracing::warn!(dir = %fragments.display(), "cannot watch the fragments directory (changes are seen by the periodic rescan): {e}");
        }
    }
    let mut stream = inotify.into_event_stream([0u8; 4096]).map_err(watch_err)?;
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(watch_err)?;
    let mut rescan = tokio::time::interval(RESCAN_EVERY);
    let mut sweep = tokio::time::interval(SWEEP_EVERY);
    loop {
        tokio::select! {
            ev = stream.next() => {
                match ev {
                    Some(Ok(e)) => tracing::debug!(name = ?e.name, "policy directory changed"),
                    Some(Err(e)) => tracing::warn!("policy directory watch: {e}"),
                    None => return Ok(()),
                }
                // Gather the burst of events of one change, then reload once.
                let until = tokio::time::Instant::now() + DEBOUNCE;
                while let Ok(Some(_)) = tokio::time::timeout_at(until, stream.next()).await {}
                reload(&state, &events);
            }
            _ = rescan.tick() => reload(&state, &events),
            _ = hangup.recv() => {
                tracing::info!("SIGHUP: rescanning the policies now");
                reload(&state, &events);
            }
            _ = sweep.tick() => {
                if let Ok(mut s) = state.lock() {
                    for ev in s.sweep() {
                        let _ = events.send(ev);
                    }
                }
            }
        }
    }
}

/// Every way a file in a watched directory can change (written, replaced, moved, removed).
fn changes() -> WatchMask {
    WatchMask::CREATE
        | WatchMask::CLOSE_WRITE
        | WatchMask::MODIFY
        | WatchMask::MOVED_TO
        | WatchMask::MOVED_FROM
        | WatchMask::DELETE
        | WatchMask::ATTRIB
}

fn reload(state: &Mutex<State>, events: &mpsc::UnboundedSender<PolicyEvent>) {
    let Ok(mut s) = state.lock() else {
        return;
    };
    tracing::debug!("rescanning the policy directory");
    for ev in s.reload() {
        let _ = events.send(ev);
    }
}
