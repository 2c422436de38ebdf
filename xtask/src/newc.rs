//! A writer for "newc" cpio archives, the format the kernel unpacks as an initramfs
//! (Documentation/driver-api/early-userspace/buffer-format.rst). Parent directories are added
//! before their entries, because the kernel's unpacker does not create them.
use std::collections::BTreeSet;
use std::fmt::Write as _;
use std::io::{self, Write};

const S_IFDIR: u32 = 0o040_000;
const S_IFREG: u32 = 0o100_000;
const S_IFLNK: u32 = 0o120_000;
const S_IFCHR: u32 = 0o020_000;

/// Header fields after the magic, in order; all 8 hex digits.
struct Header {
    mode: u32,
    nlink: u32,
    size: u32,
    rdev_major: u32,
    rdev_minor: u32,
}

/// An archive being written. Paths are absolute-looking (`/bin/sh`) and stored without `/`.
pub struct Archive<W: Write> {
    out: W,
    written: u64,
    next_ino: u32,
    dirs: BTreeSet<String>,
}

impl<W: Write> Archive<W> {
    pub fn new(out: W) -> Self {
        Self {
            out,
            written: 0,
            next_ino: 1,
            dirs: BTreeSet::new(),
        }
    }

    /// Adds directory `path` (and its parents) if not yet present.
    pub fn dir(&mut self, path: &str) -> io::Result<()> {
        let path = relative(path);
        if path.is_empty() || self.dirs.contains(path) {
            return Ok(());
        }
        self.parents(path)?;
        self.dirs.insert(path.to_owned());
        self.entry(path, &header(S_IFDIR | 0o755, 2, 0), &[])
    }

    /// Adds a regular file with permission bits `perm`.
    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> io::Result<()> {
        let path = relative(path);
        self.parents(path)?;
        let size = u32::try_from(data.len()).map_err(|_| {
            io::Error::new(io::ErrorKind::InvalidInput, format!("{path} is over 4 GiB"))
        })?;
        self.entry(path, &header(S_IFREG | perm, 1, size), data)
    }

    /// Adds a symbolic link `path` -> `target`.
    pub fn symlink(&mut self, path: &str, target: &str) -> io::Result<()> {
        let path = relative(path);
        self.parents(path)?;
        let size = u32::try_from(target.len()).unwrap_or(u32::MAX);
        self.entry(path, &header(S_IFLNK | 0o777, 1, size), target.as_bytes())
    }

    /// Adds a character device node.
    pub fn char_device(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> io::Result<()> {
        let path = relative(path);
        self.parents(path)?;
        let mut h = header(S_IFCHR | perm, 1, 0);
        h.rdev_major = major;
        h.rdev_minor = minor;
        self.entry(path, &h, &[])
    }

    /// Writes the trailer and returns the output.
    pub fn finish(mut self) -> io::Result<W> {
        self.entry("TRAILER!!!", &header(0, 1, 0), &[])?;
        self.out.flush()?;
        Ok(self.out)
    }

    fn parents(&mut self, path: &str) -> io::Result<()> {
        if let Some((parent, _)) = path.rsplit_once('/') {
            self.dir(parent)?;
        }
        Ok(())
    }

    fn entry(&mut self, name: &str, h: &Header, data: &[u8]) -> io::Result<()> {
        let ino = self.next_ino;
        self.next_ino += 1;
        let name_size = name.len() + 1;
        let fields = [
            ino,
            h.mode,
            0, // uid
            0, // gid
            h.nlink,
            0, // mtime: fixed, so the same inputs give the same image
            h.size,
            0, // devmajor
            0, // devminor
            h.rdev_major,
            h.rdev_minor,
            u32::try_from(name_size).unwrap_or(u32::MAX),
            0, // check
        ];
        let mut head = String::with_capacity(110);
        head.push_str("070701");
        for field in fields {
            // Writing to a String cannot fail.
            let _ = write!(head, "{field:08x}");
        }
        self.write(head.as_bytes())?;
        self.write(name.as_bytes())?;
        self.write(&[0])?;
        self.pad()?;
        self.write(data)?;
        self.pad()
    }

    fn write(&mut self, bytes: &[u8]) -> io::Result<()> {
        self.out.write_all(bytes)?;
        self.written += bytes.len() as u64;
        Ok(())
    }

    /// Zero bytes up to the next multiple of 4.
    fn pad(&mut self) -> io::Result<()> {
        let pad = (4 - (self.written % 4) as usize) % 4;
        self.write(&[0; 3][..pad])
    }
}

fn header(mode: u32, nlink: u32, size: u32) -> Header {
    Header {
        mode,
        nlink,
        size,
        rdev_major: 0,
        rdev_minor: 0,
    }
}

fn relative(path: &str) -> &str {
    path.trim_start_matches('/').trim_end_matches('/')
}

#[cfg(test)]
mod tests {
    use super::Archive;

    #[test]
    fn entries_are_aligned_and_parents_come_first() {
        let mut archive = Archive::new(Vec::new());
        archive
            .file("/a/b/c", 0o644, b"xyz")
            .expect("writing to a Vec");
        let bytes = archive.finish().expect("writing to a Vec");
        assert_eq!(bytes.len() % 4, 0, "archive length must be a multiple of 4");
        let names: Vec<&str> = bytes
            .split(|&b| b == 0)
            .filter_map(|chunk| std::str::from_utf8(chunk).ok())
            .filter_map(|s| s.get(110..))
            .filter(|s| !s.is_empty())
            .collect();
        assert_eq!(names, ["a", "a/b", "a/b/c", "TRAILER!!!"], "entry order");
        let first = std::str::from_utf8(&bytes[..110]).expect("ASCII header");
        assert!(first.starts_with("070701"), "newc magic, got {first}");
        assert_eq!(&first[14..22], "000041ed", "mode of directory a");
    }
}
