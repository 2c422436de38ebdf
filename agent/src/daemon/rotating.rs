//! An append-only JSON-lines file rotated by size: `FILE` is renamed to `FILE.1` (`FILE.1` to
//! `FILE.2`, ...; `FILE.<keep>` is deleted) and reopened before a line would make it larger
//! than the limit. Lines are collected whole in a buffer and written with one `write_all` per
//! `flush` (the daemon flushes after each batch of ring-buffer records); a rotation first writes
//! what is buffered to the old file. Only the daemon writes, so every line lands in exactly one
//! file: none is lost or split by a rotation.

use std::{
    fs::{self, File, OpenOptions},
    io::{self, Write},
    path::{Path, PathBuf},
};

/// What a failed rotation or write concerned.
#[derive(Debug, thiserror::Error)]
pub enum RotateError {
    #[error("cannot open event file {}: {source}", path.display())]
    Open { path: PathBuf, source: io::Error },
    #[error("cannot rotate event file {} to {}: {source}", from.display(), to.display())]
    Rename {
        from: PathBuf,
        to: PathBuf,
        source: io::Error,
    },
    #[error("cannot write event file {}: {source}", path.display())]
    Write { path: PathBuf, source: io::Error },
}

/// The open file and its rotation rule.
pub struct RotatingFile {
    path: PathBuf,
    file: File,
    /// Bytes in the current file.
    size: u64,
    /// Rotate before the file would grow past this (0: never).
    max_bytes: u64,
    /// Rotated files kept.
    keep: u32,
    /// Whole lines not yet written to `file` (counted in `size` already).
    pending: Vec<u8>,
}

/// Buffered bytes beyond which `write_line` writes them out without waiting for `flush`.
const PENDING_MAX: usize = 256 << 10;

impl RotatingFile {
    /// Opens (creating, appending) `path`.
    pub fn open(path: &Path, max_bytes: u64, keep: u32) -> Result<Self, RotateError> {
        let file = open_append(path)?;
        let size = file.metadata().map_or(0, |m| m.len());
        Ok(Self {
            path: path.to_owned(),
            file,
            size,
            max_bytes,
            keep: keep.max(1),
            pending: Vec::new(),
        })
    }

    #[must_use]
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// Appends one line (which ends in `\n`) to the buffer, rotating first if it would not fit.
    /// A failed rotation is reported and the line still goes to the current file: a too large
    /// file beats a lost event. The line reaches the file at the next `flush` (or earlier, once
    /// `PENDING_MAX` bytes are buffered).
    pub fn write_line(&mut self, line: &[u8]) -> Result<(), RotateError> {
        let len = line.len() as u64;
        let mut rotate_error = None;
        if self.max_bytes > 0 && self.size > 0 && self.size + len > self.max_bytes {
            // What is buffered belongs to the file being rotated out.
            self.flush()?;
            if let Err(e) = self.rotate() {
                rotate_error = Some(e);
            }
        }
        self.pending.extend_from_slice(line);
        self.size += len;
        if self.pending.len() >= PENDING_MAX {
            self.flush()?;
        }
        rotate_error.map_or(Ok(()), Err)
    }

    /// Writes the buffered lines to the file, in one `write_all`.
    pub fn flush(&mut self) -> Result<(), RotateError> {
        if self.pending.is_empty() {
            return Ok(());
        }
        let result = self.file.write_all(&self.pending);
        // Written or not, the lines leave the buffer: a failing disk must not grow it forever.
        self.pending.clear();
        if self.pending.capacity() > PENDING_MAX * 2 {
            self.pending.shrink_to(PENDING_MAX);
        }
        result.map_err(|source| RotateError::Write {
            path: self.path.clone(),
            source,
        })
    }

    /// `FILE.(keep-1)` → `FILE.keep`, ..., `FILE` → `FILE.1`, then a new `FILE`.
    fn rotate(&mut self) -> Result<(), RotateError> {
        for n in (1..self.keep).rev() {
            let from = numbered(&self.path, n);
            if from.exists() {
                let to = numbered(&self.path, n + 1);
                fs::rename(&from, &to).map_err(|source| RotateError::Rename {
                    from,
                    to,
                    source,
                })?;
            }
        }
        let to = numbered(&self.path, 1);
        fs::rename(&self.path, &to).map_err(|source| RotateError::Rename {
            from: self.path.clone(),
            to,
            source,
        })?;
        // The old handle points at FILE.1 now; everything written to it is there (the buffer
        // was flushed before the rotation).
        self.file = open_append(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

impl Drop for RotatingFile {
    /// Buffered lines still reach the file when the sink goes away.
    fn drop(&mut self) {
        if let Err(e) = self.flush() {
            tracing::error!("{e:#}");
        }
    }
}

/// `FILE.n`.
#[must_use]
pub fn numbered(path: &Path, n: u32) -> PathBuf {
    let mut name = path.as_os_str().to_owned();
    name.push(format!(".{n}"));
    PathBuf::from(name)
}

fn open_append(path: &Path) -> Result<File, RotateError> {
    OpenOptions::new()
        .create(true)
        .append(true)
        .open(path)
        .map_err(|source| RotateError::Open {
            path: path.to_owned(),
            source,
        })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("corral-rotate-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("expected a scratch dir: {e}"));
        dir
    }

    fn lines_of(path: &Path) -> Vec<String> {
        fs::read_to_string(path)
            .unwrap_or_default()
            .lines()
            .map(str::to_owned)
            .collect()
    }

    #[test]
    fn every_line_lands_in_exactly_one_file_in_order() {
        let dir = scratch("order");
        let path = dir.join("events.json");
        let mut f = RotatingFile::open(&path, 100, 50)
            .unwrap_or_else(|e| panic!("expected to open the file: {e}"));
        for i in 0..200 {
            f.write_line(format!("{{\"n\":{i:05}}}\n").as_bytes())
                .unwrap_or_else(|e| panic!("expected line {i} written: {e}"));
        }
        f.flush()
            .unwrap_or_else(|e| panic!("expected the last lines written: {e}"));
        // Oldest first: FILE.N ... FILE.1, FILE.
        let mut all = Vec::new();
        let mut rotated = 0;
        for n in (1..=50).rev() {
            let p = numbered(&path, n);
            if p.exists() {
                rotated += 1;
                let size = fs::metadata(&p).map_or(0, |m| m.len());
                assert!(
                    size <= 100,
                    "expected {} within 100 bytes, got {size}",
                    p.display()
                );
                all.extend(lines_of(&p));
            }
        }
        all.extend(lines_of(&path));
        let expected: Vec<String> = (0..200).map(|i| format!("{{\"n\":{i:05}}}")).collect();
        assert_eq!(
            all, expected,
            "every line once, in order, across the rotations"
        );
        assert!(rotated >= 10, "expected many rotations, got {rotated}");
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn only_keep_rotated_files_are_kept() {
        let dir = scratch("keep");
        let path = dir.join("events.json");
        let mut f = RotatingFile::open(&path, 10, 2)
            .unwrap_or_else(|e| panic!("expected to open the file: {e}"));
        for i in 0..10 {
            f.write_line(format!("line {i:02}\n").as_bytes())
                .unwrap_or_else(|e| panic!("expected line {i} written: {e}"));
        }
        f.flush()
            .unwrap_or_else(|e| panic!("expected the last line written: {e}"));
        assert_eq!(lines_of(&path), ["line 09"]);
        assert_eq!(lines_of(&numbered(&path, 1)), ["line 08"]);
        assert_eq!(lines_of(&numbered(&path, 2)), ["line 07"]);
        assert!(
            !numbered(&path, 3).exists(),
            "expected FILE.3 deleted (keep = 2)"
        );
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn reopening_appends_and_counts_what_is_there() {
        let dir = scratch("reopen");
        let path = dir.join("events.json");
        fs::write(&path, "0123456789\n").unwrap_or_else(|e| panic!("expected a file: {e}"));
        let mut f = RotatingFile::open(&path, 15, 1)
            .unwrap_or_else(|e| panic!("expected to open the file: {e}"));
        f.write_line(b"abcdef\n")
            .unwrap_or_else(|e| panic!("expected the line written: {e}"));
        f.flush()
            .unwrap_or_else(|e| panic!("expected the line flushed: {e}"));
        assert_eq!(lines_of(&numbered(&path, 1)), ["0123456789"]);
        assert_eq!(lines_of(&path), ["abcdef"]);
        let _ = fs::remove_dir_all(&dir);
    }

    #[test]
    fn buffered_lines_reach_the_file_on_flush_and_before_a_rotation() {
        let dir = scratch("buffered");
        let path = dir.join("events.json");
        let mut f = RotatingFile::open(&path, 20, 3)
            .unwrap_or_else(|e| panic!("expected to open the file: {e}"));
        f.write_line(b"first 01\n")
            .unwrap_or_else(|e| panic!("expected the line buffered: {e}"));
        assert!(
            lines_of(&path).is_empty(),
            "expected the line held in the buffer until flush"
        );
        f.write_line(b"second 2\n")
            .unwrap_or_else(|e| panic!("expected the line buffered: {e}"));
        // 18 bytes buffered; this one makes 27 > 20: the two go to FILE.1 first.
        f.write_line(b"third 03\n")
            .unwrap_or_else(|e| panic!("expected the line buffered: {e}"));
        assert_eq!(
            lines_of(&numbered(&path, 1)),
            ["first 01", "second 2"],
            "expected the buffered lines written to the rotated file"
        );
        assert!(
            lines_of(&path).is_empty(),
            "expected the third still buffered"
        );
        drop(f);
        assert_eq!(
            lines_of(&path),
            ["third 03"],
            "expected dropping the file to flush it"
        );
        let _ = fs::remove_dir_all(&dir);
    }
}
