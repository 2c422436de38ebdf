//! Reading and rewriting the ELF interpreter (`PT_INTERP`) of a 64-bit little-endian binary, so a
//! copy of the probe can load its libraries from a directory a shipped policy lets it read.

const PT_INTERP: u32 = 3;

/// Offset and size of the `PT_INTERP` string in `elf`.
fn interp_segment(elf: &[u8], what: &str) -> (usize, usize) {
    assert!(
        elf.len() >= 64 && elf[..4] == *b"\x7fELF" && elf[4] == 2 && elf[5] == 1,
        "expected {what} to be a 64-bit little-endian ELF file"
    );
    let u16_at = |o: usize| usize::from(u16::from_le_bytes([elf[o], elf[o + 1]]));
    let u32_at = |o: usize| u32::from_le_bytes([elf[o], elf[o + 1], elf[o + 2], elf[o + 3]]);
    let u64_at = |o: usize| {
        let mut b = [0u8; 8];
        b.copy_from_slice(&elf[o..o + 8]);
        usize::try_from(u64::from_le_bytes(b)).unwrap_or(usize::MAX)
    };
    let (phoff, phentsize, phnum) = (u64_at(0x20), u16_at(0x36), u16_at(0x38));
    for i in 0..phnum {
        let ph = phoff + i * phentsize;
        assert!(
            ph + 56 <= elf.len(),
            "expected {what}'s program headers inside the file"
        );
        if u32_at(ph) == PT_INTERP {
            let (off, size) = (u64_at(ph + 8), u64_at(ph + 32));
            assert!(
                size >= 2 && off.saturating_add(size) <= elf.len(),
                "expected {what}'s PT_INTERP inside the file"
            );
            return (off, size);
        }
    }
    panic!("expected {what} to be dynamically linked (to have a PT_INTERP segment)")
}

/// The interpreter path of the ELF file at `path`.
#[must_use]
pub fn interpreter(path: &str) -> String {
    let elf = std::fs::read(path).unwrap_or_else(|e| panic!("expected to read {path}: {e}"));
    let (off, size) = interp_segment(&elf, path);
    let raw = &elf[off..off + size];
    let end = raw.iter().position(|&b| b == 0).unwrap_or(raw.len());
    String::from_utf8_lossy(&raw[..end]).into_owned()
}

/// Rewrites the interpreter path of the ELF file at `path` in place. `new` must fit in the
/// existing segment (with its NUL); the rest is zero-filled.
pub fn set_interpreter(path: &str, new: &str) {
    let mut elf = std::fs::read(path).unwrap_or_else(|e| panic!("expected to read {path}: {e}"));
    let (off, size) = interp_segment(&elf, path);
    assert!(
        new.len() < size,
        "expected the new interpreter {new:?} to fit in the {size}-byte PT_INTERP of {path}"
    );
    elf[off..off + size].fill(0);
    elf[off..off + new.len()].copy_from_slice(new.as_bytes());
    std::fs::write(path, &elf).unwrap_or_else(|e| panic!("expected to write {path}: {e}"));
}

#[cfg(test)]
mod tests {
    use super::{interpreter, set_interpreter};

    #[test]
    fn interpreter_is_rewritten_in_place() {
        let me = std::fs::read_link("/proc/self/exe").expect("expected /proc/self/exe");
        let copy = format!("/tmp/corral-tests-interp-{}", std::process::id());
        std::fs::copy(&me, &copy).expect("expected to copy the test binary");
        let before = interpreter(&copy);
        assert!(
            before.starts_with('/'),
            "expected an absolute interpreter, got {before:?}"
        );
        set_interpreter(&copy, "/tmp/ld");
        let after = interpreter(&copy);
        let _ = std::fs::remove_file(&copy);
        assert_eq!(after, "/tmp/ld", "expected the rewritten interpreter");
    }
}
