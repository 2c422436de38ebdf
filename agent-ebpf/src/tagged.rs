//! The untagged fast path: one byte per tgid in `TAGGED` says whether the process may be
//! confined, read by an inlined array look-up before the `TAGS` hash look-up, which only a
//! process whose byte is set pays.
//!
//! The byte may be set without a `TAGS` entry (a failed insert, a stale byte: only the cost of
//! the hash look-up), never the other way round: every writer of `TAGS` sets the byte first and
//! clears it only after removing the entry (`tagging.rs`, `selector.rs`, the daemon's
//! `loader::tagged`). Until the daemon has set every byte of the processes `TAGS` already held
//! (an earlier daemon's), the header is zero and every hook takes the hash look-up.

use agent_common::TAGGED_HEADER_BYTES;

use crate::maps::TAGGED;

/// Whether `tgid` may be confined: false only when the header says the bytes are complete and
/// the tgid's byte is zero. A tgid past the map's end (`pid_max` raised after load) is `true`.
#[inline(always)]
pub fn maybe_tagged(tgid: u32) -> bool {
    let (Some(header), Some(word)) = (TAGGED.get(0), TAGGED.get(word_index(tgid))) else {
        return true;
    };
    if *header == 0 {
        return true;
    }
    // SAFETY: a byte (`tgid % 8`, below 8) of a map value of 8 bytes.
    unsafe {
        core::ptr::read_volatile((&raw const *word).cast::<u8>().add((tgid % 8) as usize)) != 0
    }
}

/// Sets `tgid`'s byte: called before the process's `TAGS` entry is written.
#[inline(always)]
pub fn mark(tgid: u32) {
    write(tgid, 1);
}

/// Clears `tgid`'s byte: called after the process's `TAGS` entry is removed (or found missing)
/// as its last thread exits, when no new process can have its pid yet.
#[inline(always)]
pub fn unmark(tgid: u32) {
    write(tgid, 0);
}

#[inline(always)]
fn write(tgid: u32, value: u8) {
    if let Some(word) = TAGGED.get_ptr_mut(word_index(tgid)) {
        // SAFETY: a byte (`tgid % 8`, below 8) of a map value of 8 bytes; a single-byte store
        // never touches the neighbouring tgids' bytes.
        unsafe {
            core::ptr::write_volatile(word.cast::<u8>().add((tgid % 8) as usize), value);
        }
    }
}

/// The entry holding `tgid`'s byte (entry 0 is the header).
#[inline(always)]
fn word_index(tgid: u32) -> u32 {
    const HEADER_ENTRIES: u32 = (TAGGED_HEADER_BYTES / 8) as u32;
    HEADER_ENTRIES + tgid / 8
}
