//! The ELF interpreter (`PT_INTERP`, e.g. `/lib64/ld-linux-x86-64.so.2`) a program names.
//!
//! The kernel opens the interpreter of a dynamically linked program the way it opens the program
//! itself, and Landlock asks for the `execute` right on both: without a rule for the interpreter,
//! no dynamically linked program could start.

use std::{fs::File, os::unix::fs::FileExt, path::Path, path::PathBuf};

/// `PT_INTERP` program header type.
const PT_INTERP: u32 = 3;
/// More program headers than this is not a program worth believing.
const MAX_PROGRAM_HEADERS: u64 = 512;
/// Longest interpreter path read (the kernel's own bound is `PATH_MAX`).
const MAX_INTERP_LEN: u64 = 4096;

/// The interpreter path `path` names, if it is an ELF file with a `PT_INTERP` header. Anything
/// else (a script, a static binary, an unreadable or malformed file) has none.
#[must_use]
pub(crate) fn interpreter_of(path: &Path) -> Option<PathBuf> {
    let file = File::open(path).ok()?;
    let mut ident = [0u8; 64];
    file.read_exact_at(&mut ident, 0).ok()?;
    if ident[..4] != *b"\x7fELF" {
        return None;
    }
    let elf = Layout::new(ident[4], ident[5])?;
    let phoff = elf.word(&ident, elf.phoff_at)?;
    let phentsize = u64::from(elf.half(&ident, elf.phentsize_at)?);
    let phnum = u64::from(elf.half(&ident, elf.phnum_at)?);
    if phnum > MAX_PROGRAM_HEADERS || phentsize < elf.phdr_len {
        return None;
    }
    let mut header = vec![0u8; usize::try_from(elf.phdr_len).ok()?];
    for i in 0..phnum {
        file.read_exact_at(&mut header, phoff.checked_add(i.checked_mul(phentsize)?)?)
            .ok()?;
        if elf.u32(&header, 0)? != PT_INTERP {
            continue;
        }
        let offset = elf.word(&header, elf.p_offset_at)?;
        let size = elf.word(&header, elf.p_filesz_at)?;
        if size == 0 || size > MAX_INTERP_LEN {
            return None;
        }
        let mut text = vec![0u8; usize::try_from(size).ok()?];
        file.read_exact_at(&mut text, offset).ok()?;
        let end = text.iter().position(|&b| b == 0).unwrap_or(text.len());
        text.truncate(end);
        let text = String::from_utf8(text).ok()?;
        return text.starts_with('/').then(|| PathBuf::from(text));
    }
    None
}

/// Where the fields this module needs sit, for one ELF class and byte order.
struct Layout {
    wide: bool,
    big_endian: bool,
    phoff_at: usize,
    phentsize_at: usize,
    phnum_at: usize,
    phdr_len: u64,
    p_offset_at: usize,
    p_filesz_at: usize,
}

impl Layout {
    /// `class` is `EI_CLASS` (1: 32-bit, 2: 64-bit), `data` is `EI_DATA` (1: little, 2: big).
    fn new(class: u8, data: u8) -> Option<Self> {
        let big_endian = match data {
            1 => false,
            2 => true,
            _ => return None,
        };
        match class {
            1 => Some(Self {
                wide: false,
                big_endian,
                phoff_at: 28,
                phentsize_at: 42,
                phnum_at: 44,
                phdr_len: 32,
                p_offset_at: 4,
                p_filesz_at: 16,
            }),
            2 => Some(Self {
                wide: true,
                big_endian,
                phoff_at: 32,
                phentsize_at: 54,
                phnum_at: 56,
                phdr_len: 56,
                p_offset_at: 8,
                p_filesz_at: 32,
            }),
            _ => None,
        }
    }

    fn half(&self, bytes: &[u8], at: usize) -> Option<u16> {
        let b: [u8; 2] = bytes.get(at..at + 2)?.try_into().ok()?;
        Some(if self.big_endian {
            u16::from_be_bytes(b)
        } else {
            u16::from_le_bytes(b)
        })
    }

    fn u32(&self, bytes: &[u8], at: usize) -> Option<u32> {
        let b: [u8; 4] = bytes.get(at..at + 4)?.try_into().ok()?;
        Some(if self.big_endian {
            u32::from_be_bytes(b)
        } else {
            u32::from_le_bytes(b)
        })
    }

    /// An address-sized field: 4 bytes in 32-bit ELF, 8 in 64-bit.
    fn word(&self, bytes: &[u8], at: usize) -> Option<u64> {
        if !self.wide {
            return self.u32(bytes, at).map(u64::from);
        }
        let b: [u8; 8] = bytes.get(at..at + 8)?.try_into().ok()?;
        Some(if self.big_endian {
            u64::from_be_bytes(b)
        } else {
            u64::from_le_bytes(b)
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_dynamically_linked_program_names_its_interpreter() {
        // The test binary itself is dynamically linked against the system's C library.
        let exe = std::env::current_exe()
            .unwrap_or_else(|e| panic!("expected the test binary's path: {e}"));
        let interp = interpreter_of(&exe)
            .unwrap_or_else(|| panic!("expected {} to name an interpreter", exe.display()));
        assert!(
            interp.is_absolute() && interp.to_string_lossy().contains("ld"),
            "expected a dynamic loader path, got {}",
            interp.display()
        );
        assert!(
            interp.exists(),
            "expected the interpreter {} to exist",
            interp.display()
        );
    }

    #[test]
    fn scripts_and_missing_files_have_none() {
        let dir = std::env::temp_dir().join(format!("corral-elf-interp-{}", std::process::id()));
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("expected to create {}: {e}", dir.display()));
        let script = dir.join("script.sh");
        std::fs::write(&script, "#!/bin/sh\necho hi\n")
            .unwrap_or_else(|e| panic!("expected to write {}: {e}", script.display()));
        let truncated = dir.join("truncated");
        std::fs::write(&truncated, b"\x7fELF\x02\x01")
            .unwrap_or_else(|e| panic!("expected to write {}: {e}", truncated.display()));
        assert_eq!(interpreter_of(&script), None, "a script has no PT_INTERP");
        assert_eq!(interpreter_of(&truncated), None, "a truncated ELF has none");
        assert_eq!(interpreter_of(&dir.join("missing")), None);
        let _ = std::fs::remove_dir_all(&dir);
    }
}
