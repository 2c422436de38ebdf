//! `ConfigError`: what is wrong with the daemon's configuration file, and where.

use std::{io, path::PathBuf};

/// An invalid or unreadable configuration file. Displays as `file:line:column: message`
/// (1-based), like the policy checker, so editors can jump to it.
#[derive(Debug, thiserror::Error)]
pub enum ConfigError {
    /// The file is not a valid configuration.
    #[error("{}:{line}:{column}: {message}", file.display())]
    Invalid {
        /// The configuration file, as it was named.
        file: PathBuf,
        /// 1-based line of the offending key or value (1 when the parser gives no position).
        line: usize,
        /// 1-based column of the offending key or value (1 when the parser gives no position).
        column: usize,
        /// What is wrong.
        message: String,
    },
    /// The file could not be read.
    #[error("{}:1:1: cannot read configuration file: {io}", file.display())]
    Read { file: PathBuf, io: io::Error },
}

impl ConfigError {
    /// Places a `toml` error at the line and column where its span starts.
    pub(crate) fn from_toml(file: &std::path::Path, text: &str, error: &toml::de::Error) -> Self {
        let (line, column) = error
            .span()
            .map_or((1, 1), |span| line_column(text, span.start));
        Self::Invalid {
            file: file.to_owned(),
            line,
            column,
            message: error.message().trim_end().to_owned(),
        }
    }
}

/// 1-based line and column (in characters) of byte `offset` in `text`.
fn line_column(text: &str, offset: usize) -> (usize, usize) {
    let offset = offset.min(text.len());
    let before = text.get(..offset).unwrap_or(text);
    let line = before.matches('\n').count() + 1;
    let line_start = before.rfind('\n').map_or(0, |i| i + 1);
    let column = before[line_start..].chars().count() + 1;
    (line, column)
}

#[cfg(test)]
mod tests {
    use super::line_column;

    #[test]
    fn offsets_become_one_based_lines_and_columns() {
        let text = "a = 1\n[events]\nfile = 3\n";
        assert_eq!(line_column(text, 0), (1, 1), "start of the file");
        assert_eq!(line_column(text, 6), (2, 1), "start of the second line");
        assert_eq!(line_column(text, 22), (3, 8), "the value on the third line");
    }
}
