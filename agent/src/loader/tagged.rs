//! `TAGGED`, the untagged fast path of every hook (see `agent-ebpf/src/tagged.rs`): one byte per
//! tgid that must be set whenever the process has a `TAGS` entry. The daemon sets the byte before
//! it tags a process, and, when a generation of programs starts, the bytes of every process
//! `TAGS` already holds before it sets the header that lets the programs trust a zero byte.
//!
//! The map is mmapable and the daemon writes single bytes through the mapping: a map update
//! would rewrite a whole 8-byte entry, and could undo a byte the programs set meanwhile for a
//! neighbouring tgid (a fork).

use std::{
    ptr::NonNull,
    sync::atomic::{AtomicU8, Ordering},
};

use agent_common::{TAGGED_HEADER_BYTES, TAGGED_TGIDS_MAX, names};
use aya::maps::{Map, MapData};

/// Where the kernel's highest process id is set.
const PID_MAX: &str = "/proc/sys/kernel/pid_max";

#[derive(Debug, thiserror::Error)]
pub enum TaggedError {
    #[error("map `{map}` is missing from the eBPF object")]
    Missing { map: &'static str },
    #[error("map `{map}` is not an array")]
    NotArray { map: &'static str },
    #[error("cannot read the size of map `{map}`: {source}")]
    Info {
        map: &'static str,
        source: aya::maps::MapError,
    },
    #[error("cannot map `{map}` ({len} bytes) into the daemon: {source}")]
    Mmap {
        map: &'static str,
        len: usize,
        source: std::io::Error,
    },
}

/// Entries `TAGGED` needs for tgids up to `pid_max` (the header entry included).
#[must_use]
pub fn entries_for(pid_max: u32) -> u32 {
    let header = (TAGGED_HEADER_BYTES / 8) as u32;
    header + pid_max.clamp(1, TAGGED_TGIDS_MAX).div_ceil(8)
}

/// Entries for this kernel's `pid_max`; the largest `pid_max` can be if it cannot be read.
#[must_use]
pub fn entries() -> u32 {
    let pid_max = std::fs::read_to_string(PID_MAX)
        .ok()
        .and_then(|s| s.trim().parse::<u32>().ok())
        .unwrap_or(TAGGED_TGIDS_MAX);
    entries_for(pid_max)
}

/// `TAGGED`, mapped into the daemon.
pub struct TaggedBytes {
    /// Keeps the map's descriptor for as long as the mapping is used.
    _map: MapData,
    base: NonNull<u8>,
    len: usize,
}

// SAFETY: the mapping is shared memory written only through atomics (`byte`); the pointer is
// valid until `drop` unmaps it.
unsafe impl Send for TaggedBytes {}
// SAFETY: as above: every access is an atomic byte operation.
unsafe impl Sync for TaggedBytes {}

impl TaggedBytes {
    /// Takes `TAGGED` out of the loaded object and maps it.
    pub fn take(ebpf: &mut aya::Ebpf) -> Result<Self, TaggedError> {
        let map = names::TAGGED;
        let Map::Array(data) = ebpf.take_map(map).ok_or(TaggedError::Missing { map })? else {
            return Err(TaggedError::NotArray { map });
        };
        let info = data
            .info()
            .map_err(|source| TaggedError::Info { map, source })?;
        let len = info.max_entries() as usize * 8;
        let fd = {
            use std::os::fd::{AsFd as _, AsRawFd as _};
            data.fd().as_fd().as_raw_fd()
        };
        // SAFETY: a shared mapping of the map's own memory, `len` bytes, which the kernel
        // allows for an array created with `BPF_F_MMAPABLE`; unmapped in `drop`.
        let ptr = unsafe {
            libc::mmap(
                std::ptr::null_mut(),
                len,
                libc::PROT_READ | libc::PROT_WRITE,
                libc::MAP_SHARED,
                fd,
                0,
            )
        };
        if ptr == libc::MAP_FAILED {
            return Err(TaggedError::Mmap {
                map,
                len,
                source: std::io::Error::last_os_error(),
            });
        }
        let base = NonNull::new(ptr.cast::<u8>()).ok_or(TaggedError::Mmap {
            map,
            len,
            source: std::io::Error::other("mmap returned NULL"),
        })?;
        Ok(Self {
            _map: data,
            base,
            len,
        })
    }

    /// Sets `tgid`'s byte: before its `TAGS` entry is written. A tgid past the map (`pid_max`
    /// raised since load) has none: the programs take the slow path for it.
    pub fn mark(&self, tgid: u32) {
        if let Some(byte) = self.byte(TAGGED_HEADER_BYTES + tgid as usize) {
            byte.store(1, Ordering::SeqCst);
        }
    }

    /// Marks every process in `tgids` (all `TAGS` holds), then sets the header: from then on the
    /// programs leave a process with a zero byte without the `TAGS` look-up. Called once the
    /// programs of this generation are attached and the earlier generation's are detached, so
    /// every later tag is marked by the programs (fork, selectors) or by `mark`.
    pub fn complete(&self, tgids: impl IntoIterator<Item = u32>) {
        for tgid in tgids {
            self.mark(tgid);
        }
        if let Some(header) = self.byte(0) {
            header.store(1, Ordering::SeqCst);
        }
    }

    fn byte(&self, offset: usize) -> Option<&AtomicU8> {
        (offset < self.len).then(|| {
            // SAFETY: within the mapping, which lives as long as `self`; `AtomicU8` has the
            // size and alignment of `u8`.
            unsafe { &*self.base.as_ptr().add(offset).cast::<AtomicU8>() }
        })
    }
}

impl Drop for TaggedBytes {
    fn drop(&mut self) {
        // SAFETY: the mapping made in `take`, unmapped once.
        unsafe {
            libc::munmap(self.base.as_ptr().cast(), self.len);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entries_cover_every_tgid_up_to_pid_max_after_the_header() {
        // pid_max 32768: tgids 0..=32767 in 4096 entries, plus the header.
        assert_eq!(entries_for(32_768), 4097, "expected 4096 byte entries + 1");
        assert_eq!(entries_for(9), 3, "expected tgids 0..=8 in 2 entries + 1");
        assert_eq!(
            entries_for(u32::MAX),
            TAGGED_TGIDS_MAX / 8 + 1,
            "expected pid_max capped at the kernel's limit"
        );
        assert_eq!(entries_for(0), 2, "expected at least one byte entry");
    }
}
