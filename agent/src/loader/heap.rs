//! Giving freed heap back to the kernel once loading is over.
//!
//! Loading parses the kernel's BTF (about 15 MiB of heap for /sys/kernel/btf/vmlinux) and then
//! frees it. glibc keeps freed memory mapped for reuse, so without this the daemon's resident
//! size would stay at its loading peak for its whole life, and the event ring buffer mapped
//! afterwards would add to that peak instead of reusing the room.

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
    use super::*;

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
}
