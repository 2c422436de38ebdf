//! Where events go: JSON lines on stdout or appended to a file (rotated by size), one
//! `write_all` per line.

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
    Stdout,
    File(RotatingFile),
}

impl Sink {
    /// `-` is stdout; anything else is a file opened for appending (created if missing) and
    /// never rotated.
    pub fn open(spec: &Path) -> Result<Self, SinkError> {
        if spec == Path::new("-") {
            return Ok(Self::Stdout);
        }
        Ok(Self::File(RotatingFile::open(spec, 0, 1)?))
    }

    /// The sinks `[events]` asks for: stdout and/or the rotated file.
    pub fn open_all(events: &EventsSection) -> Result<Vec<Self>, SinkError> {
        let mut sinks = Vec::new();
        if events.stdout {
            sinks.push(Self::Stdout);
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

    /// Writes one line (ending in `\n`).
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), SinkError> {
        match self {
            Self::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(line)
                    .and_then(|()| out.flush())
                    .map_err(|source| SinkError::Stdout { source })
            }
            Self::File(file) => Ok(file.write_line(line)?),
        }
    }
}
