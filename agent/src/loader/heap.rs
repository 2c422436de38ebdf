//! Keeping the heap's resident size close to what is live: large blocks mapped on their own
//! (`map_large_blocks`), and freed heap given back to the kernel once loading is over
//! (`release_freed`).
//!
//! Loading parses the kernel's BTF (about 15 MiB of heap for /sys/kernel/btf/vmlinux) and then
//! frees it. glibc keeps freed memory mapped for reuse, so without this the daemon's resident
//! size would stay at its loading peak for its whole life, and the event ring buffer mapped
//! afterwards would add to that peak instead of reusing the room.

/// Size from which glibc serves an allocation with a mapping of its own: its initial default,
/// made fixed.
const MMAP_THRESHOLD: i32 = 128 * 1024;

/// Makes glibc serve every allocation of `MMAP_THRESHOLD` bytes or more with a mapping of its
/// own for the rest of the run; call it before loading. Returns whether the setting was taken;
/// a no-op where the C library is not glibc.
///
/// By default glibc raises that threshold to the size of each mapped block freed (up to
/// 32 MiB). Loading parses the kernel BTF several times (aya parses it in `EbpfLoader::new`,
/// then ours, in the probe and again in the load), each parse freeing multi-MiB vectors, so
/// every parse after the first grew its vectors on the brk heap instead: each doubling copies
/// into a new block while the old one stays resident until trimmed, and the loading peak held
/// the 9 MiB type vector plus its 4.7 MiB predecessor. A mapped block grows by `mremap`
/// (pages moved, not copied) and is unmapped when freed. Measured natively on the shipped
/// policies: peak resident size (`VmHWM`) 29.3–29.6 → 27.7–27.8 MiB. After loading, blocks
/// this large are rare (the event path reads the ring buffer in place).
#[allow(clippy::must_use_candidate)] // the daemon has nothing to do when it is not taken
pub fn map_large_blocks() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: `mallopt` only sets a parameter of the allocator; glibc returns 1 on success.
        unsafe { libc::mallopt(libc::M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

/// Returns the free pages of every malloc arena to the kernel (`malloc_trim(0)`). Returns
/// whether any memory was released; a no-op where the C library is not glibc.
pub fn release_freed() -> bool {
    #[cfg(target_env = "gnu")]
    {
        // SAFETY: `malloc_trim` only walks the allocator's own free lists.
        unsafe { libc::malloc_trim(0) == 1 }
    }
    #[cfg(not(target_env = "gnu"))]
    {
        false
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// Held by the tests that compare resident sizes, so they do not see each other's blocks.
    static RSS_MEASURED: Mutex<()> = Mutex::new(());

    fn rss_kib() -> u64 {
        std::fs::read_to_string("/proc/self/status")
            .unwrap_or_else(|e| panic!("expected /proc/self/status: {e}"))
            .lines()
            .find_map(|l| l.strip_prefix("VmRSS:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
            .unwrap_or_else(|| panic!("expected a VmRSS line"))
    }

    #[test]
    fn freed_small_allocations_leave_the_resident_set() {
        let _alone = RSS_MEASURED.lock();
        // Many small blocks (below the mmap threshold) live on the heap; keep one block alive
        // at the end so plain top-of-heap trimming cannot give the rest back on free().
        let blocks: Vec<Vec<u8>> = (0..40_000).map(|i| vec![i as u8; 1000]).collect();
        let keep = vec![1u8; 1000];
        drop(blocks);
        let before = rss_kib();
        release_freed();
        let after = rss_kib();
        assert!(
            after + 10_000 < before,
            "expected malloc_trim to release most of 40 MB of freed blocks: {before} KiB → {after} KiB"
        );
        assert_eq!(keep[0], 1);
    }

    #[test]
    fn large_blocks_are_unmapped_when_freed_even_after_glibc_adapted() {
        let _alone = RSS_MEASURED.lock();
        // A freed 30 MiB mapped block makes glibc serve blocks up to 30 MiB from the heap (and
        // keep 60 MiB of freed heap before trimming), as a freed BTF parse does in the daemon.
        drop(std::hint::black_box(vec![1u8; 30 << 20]));
        assert!(map_large_blocks(), "expected glibc to take the threshold");
        let block = std::hint::black_box(vec![1u8; 24 << 20]);
        let before = rss_kib();
        drop(block);
        let after = rss_kib();
        assert!(
            after + 20_000 < before,
            "expected a freed 24 MiB block to leave the resident set at once: {before} KiB → {after} KiB"
        );
    }
}
