//! `PolicyError`: what is wrong with one policy file, and where.

use std::{
    io,
    path::{Path, PathBuf},
};

use thiserror::Error;

/// An invalid or unreadable policy file. Displays as `file:line:column: message` (1-based).
#[derive(Debug, Error)]
pub enum PolicyError {
    /// The file is not a valid policy. `message` starts with the field path when it is known
    /// (`spec.files.read[2]: invalid path ...`).
    #[error("{}:{line}:{column}: {message}", file.display())]
    Invalid {
        /// The policy file, as it was named to the parser.
        file: PathBuf,
        /// 1-based line of the offending value (1 when the parser gives no position).
        line: usize,
        /// 1-based column of the offending value (1 when the parser gives no position).
        column: usize,
        /// What is wrong, prefixed with the field path when known.
        message: String,
    },
    /// The file could not be read.
    #[error("{}:1:1: cannot read policy file: {io}", file.display())]
    Read { file: PathBuf, io: io::Error },
}

impl PolicyError {
    /// The policy file the error is about.
    #[must_use]
    pub fn file(&self) -> &Path {
        match self {
            Self::Invalid { file, .. } | Self::Read { file, .. } => file,
        }
    }

    /// Splits a `serde_yaml_ng` error into its position and its message (which the library
    /// prefixes with the field path and suffixes with the position, dropped here). Without a
    /// position the error is placed at 1:1.
    pub(crate) fn from_yaml(file: &Path, error: &serde_yaml_ng::Error) -> Self {
        let text = error.to_string();
        let (line, column, message) = match error.location() {
            Some(at) => {
                let suffix = format!(" at line {} column {}", at.line(), at.column());
                let message = match text.strip_suffix(&suffix) {
                    Some(message) => message.to_owned(),
                    None => text.replacen(&suffix, "", 1),
                };
                (at.line(), at.column(), message)
            }
            None => (1, 1, text),
        };
        Self::Invalid {
            file: file.to_owned(),
            line,
            column,
            message,
        }
    }
}
