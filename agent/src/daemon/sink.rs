//! Where events go: JSON lines on stdout or appended to a file, flushed per line.

use std::{
    fs::{File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

#[derive(Debug, thiserror::Error)]
pub enum SinkError {
    #[error("cannot open event file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot write event to {target}: {source}")]
    Write { target: String, source: io::Error },
}

/// A JSON-lines sink.
pub enum Sink {
    Stdout,
    File { path: PathBuf, file: File },
}

impl Sink {
    /// `-` is stdout; anything else is a file opened for appending (created if missing).
    pub fn open(spec: &Path) -> Result<Self, SinkError> {
        if spec == Path::new("-") {
            return Ok(Self::Stdout);
        }
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(spec)
            .map_err(|source| SinkError::Open {
                path: spec.to_owned(),
                source,
            })?;
        Ok(Self::File {
            path: spec.to_owned(),
            file,
        })
    }

    /// Writes one event as one line.
    pub fn write<T: serde::Serialize>(&mut self, event: &T) -> Result<(), SinkError> {
        let mut line = serde_json::to_vec(event).map_err(|e| SinkError::Write {
            target: self.name(),
            source: io::Error::other(e),
        })?;
        line.push(b'\n');
        let res = match self {
            Self::Stdout => {
                let mut out = io::stdout().lock();
                out.write_all(&line).and_then(|()| out.flush())
            }
            Self::File { file, .. } => file.write_all(&line),
        };
        res.map_err(|source| SinkError::Write {
            target: self.name(),
            source,
        })
    }

    fn name(&self) -> String {
        match self {
            Self::Stdout => "stdout".to_owned(),
            Self::File { path, .. } => path.display().to_string(),
        }
    }
}
