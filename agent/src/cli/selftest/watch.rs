//! The events of the selftest task, collected while the probes run (as `corral events --follow
//! --task corral-selftest --decision denied` would show them).

use std::{
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
    sync::{Arc, Mutex},
    time::{Duration, Instant},
};

use serde_json::Value;

use crate::{
    daemon::protocol::{Request, Response},
    policy::selftest_task::SELFTEST_TASK,
};

#[derive(Debug, thiserror::Error)]
pub enum WatchError {
    #[error("cannot subscribe to the events of {}: {source} (is `corral daemon` running?)", path.display())]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corral daemon at {}: {message}", path.display())]
    Protocol { path: PathBuf, message: String },
}

/// Denied events of the selftest task, in arrival order.
#[derive(Clone, Default)]
pub struct Seen(Arc<Mutex<Vec<Value>>>);

impl Seen {
    /// How many have arrived.
    #[must_use]
    pub fn count(&self) -> usize {
        self.0.lock().map_or(0, |v| v.len())
    }

    /// Waits up to `timeout` for an event after the first `from` with this `op`. Opens of
    /// `/proc/` files are not the probes' own: every Rust program reads `/proc/self/maps` as it
    /// starts, which the selftest task does not allow.
    #[must_use]
    pub fn wait_for(&self, from: usize, op: &str, timeout: Duration) -> Option<Value> {
        let deadline = Instant::now() + timeout;
        loop {
            if let Ok(events) = self.0.lock()
                && let Some(ev) = events
                    .iter()
                    .skip(from)
                    .find(|e| e["op"] == op && !is_startup_noise(e))
            {
                return Some(ev.clone());
            }
            if Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

fn is_startup_noise(ev: &Value) -> bool {
    ev["target"]["path"]
        .as_str()
        .is_some_and(|p| p.starts_with("/proc/"))
}

/// Subscribes and collects in a thread until the process exits. The backlog (earlier runs'
/// events) arrives first: callers count from `count()` taken after `settle`.
pub fn start(socket: &Path) -> Result<Seen, WatchError> {
    let unreachable = |source| WatchError::Unreachable {
        path: socket.to_owned(),
        source,
    };
    let protocol = |message: String| WatchError::Protocol {
        path: socket.to_owned(),
        message,
    };
    let request = Request::Subscribe {
        task: Some(SELFTEST_TASK.to_owned()),
        ops: Vec::new(),
        decisions: vec!["denied".to_owned()],
        follow: true,
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    let mut line = serde_json::to_vec(&request).map_err(|e| protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header).map_err(unreachable)?;
    match serde_json::from_str::<Response>(&header) {
        Ok(Response::Subscribed { .. }) => {}
        Ok(other) => return Err(protocol(format!("unexpected answer: {other:?}"))),
        Err(e) => return Err(protocol(format!("unreadable answer: {e}"))),
    }
    let seen = Seen::default();
    let events = Arc::clone(&seen.0);
    std::thread::spawn(move || {
        for line in reader.lines() {
            let Ok(line) = line else { break };
            if let Ok(ev) = serde_json::from_str::<Value>(&line)
                && ev.get("op").is_some()
                && let Ok(mut list) = events.lock()
            {
                list.push(ev);
            }
        }
    });
    std::thread::sleep(SETTLE);
    Ok(seen)
}

/// Time for the backlog to arrive.
const SETTLE: Duration = Duration::from_millis(300);
