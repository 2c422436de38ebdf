//! Where events go: JSON lines on stdout or appended to a file (rotated by size). Lines are
//! buffered whole and written with one `write_all` per `flush`, which the daemon calls after
//! each batch of ring-buffer records.

use std::{
    io::{self, Write},
    path::Path,
};

use super::rotating::{RotateError, RotatingFile};
use crate::config::EventsSection;

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error(transparent)]
    File(#[from] RotateError),
    #[error("cannot write event to stdout: {source}")]
    Stdout { source: io::Error },
}

/// A JSON-lines sink.
pub enum Sink {
    /// Stdout, with the lines not yet written.
    Stdout(Vec<u8>),
    File(RotatingFile),
}

/// Buffered stdout bytes beyond which `write_line` writes them out without waiting for `flush`.
const STDOUT_PENDING_MAX: usize = 256 << 10;

impl Sink {
    /// `-` is stdout; anything else is a file opened for appending (created if missing) and
    /// never rotated.
    pub fn open(spec: &Path) -> Result<Self, SinkError> {
        if spec == Path::new("-") {
            return Ok(Self::Stdout(Vec::new()));
        }
        Ok(Self::File(RotatingFile::open(spec, 0, 1)?))
    }

    /// The sinks `[events]` asks for: stdout and/or the rotated file.
    pub fn open_all(events: &EventsSection) -> Result<Vec<Self>, SinkError> {
        let mut sinks = Vec::new();
        if events.stdout {
            sinks.push(Self::Stdout(Vec::new()));
        }
        if let Some(path) = &events.file {
            sinks.push(Self::File(RotatingFile::open(
                path,
                events.rotate_bytes,
                events.keep,
            )?));
        }
        Ok(sinks)
    }

    /// Queues one line (ending in `\n`); it is written by the next `flush` at the latest.
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        match self {
            Self::Stdout(pending) => {
                pending.extend_from_slice(line);
                if pending.len() >= STDOUT_PENDING_MAX {
                    return self.flush();
                }
                Ok(())
            }
            Self::File(file) => Ok(file.write_line(line)?),
        }
    }

    /// Writes the queued lines.
    pub fn flush(&mut self) -> Result<(), SinkError> {
        match self {
            Self::Stdout(pending) => {
                if pending.is_empty() {
                    return Ok(());
                }
                let mut out = io::stdout().lock();
                let result = out.write_all(pending).and_then(|()| out.flush());
                pending.clear();
                if pending.capacity() > STDOUT_PENDING_MAX * 2 {
                    pending.shrink_to(STDOUT_PENDING_MAX);
                }
                result.map_err(|source| SinkError::Stdout { source })
            }
            Self::File(file) => Ok(file.flush()?),
        }
    }
}

impl Drop for Sink {
    /// Queued lines still go out when the sink goes away.
    fn drop(&mut self) {
        if let Self::Stdout(_) = self {
            if let Err(e) = self.flush() {
                tracing::error!("{e:#}");
            }
        }
    }
}
