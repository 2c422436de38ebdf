//! The files the loops open: `DIR/f` (depth 1), `DIR/1/2/3/f` (depth 4), `DIR/1/…/11/f`
//! (depth 12), and `DIR/true`, a 129-byte static ELF that only calls `exit(0)`, for fork+exec.
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

/// Loop name and file for each measured depth (components below DIR).
pub const DEPTHS: [(&str, usize); 3] = [
    ("open_close_depth1", 1),
    ("open_close_depth4", 4),
    ("open_close_depth12", 12),
];

/// `DIR/1/2/…/f` with `depth` components below `dir`.
pub fn file_at_depth(dir: &Path, depth: usize) -> PathBuf {
    let mut path = dir.to_path_buf();
    for level in 1..depth {
        path.push(level.to_string());
    }
    path.join("f")
}

/// The tiny static binary.
pub fn tiny_binary(dir: &Path) -> PathBuf {
    dir.join("true")
}

/// A file no loop creates.
pub fn missing(dir: &Path) -> PathBuf {
    dir.join("missing")
}

pub fn prepare(dir: &Path) -> Result<(), String> {
    let err = |what: &Path, e: std::io::Error| format!("{}: {e}", what.display());
    for (_, depth) in DEPTHS {
        let file = file_at_depth(dir, depth);
        let parent = file.parent().unwrap_or(dir);
        fs::create_dir_all(parent).map_err(|e| err(parent, e))?;
        fs::write(&file, b"corral bench\n").map_err(|e| err(&file, e))?;
    }
    // Readable and traversable by the unprivileged user the loops drop to.
    let mut walk = vec![dir.to_path_buf()];
    while let Some(d) = walk.pop() {
        fs::set_permissions(&d, fs::Permissions::from_mode(0o755)).map_err(|e| err(&d, e))?;
        for entry in fs::read_dir(&d).map_err(|e| err(&d, e))? {
            let path = entry.map_err(|e| err(&d, e))?.path();
            if path.is_dir() {
                walk.push(path);
            } else {
                fs::set_permissions(&path, fs::Permissions::from_mode(0o644))
                    .map_err(|e| err(&path, e))?;
            }
        }
    }
    let binary = tiny_binary(dir);
    fs::write(&binary, tiny_elf()).map_err(|e| err(&binary, e))?;
    fs::set_permissions(&binary, fs::Permissions::from_mode(0o755)).map_err(|e| err(&binary, e))
}

/// An x86-64 ELF executable: one `PT_LOAD` segment, code `xor edi,edi; mov eax,60; syscall`.
fn tiny_elf() -> Vec<u8> {
    const BASE: u64 = 0x40_0000;
    const CODE: [u8; 9] = [0x31, 0xff, 0xb8, 0x3c, 0, 0, 0, 0x0f, 0x05];
    let size = (64 + 56 + CODE.len()) as u64;
    let mut elf = Vec::with_capacity(size as usize);
    elf.extend_from_slice(&[0x7f, b'E', b'L', b'F', 2, 1, 1, 0, 0, 0, 0, 0, 0, 0, 0, 0]);
    elf.extend_from_slice(&2u16.to_le_bytes()); // ET_EXEC
    elf.extend_from_slice(&0x3eu16.to_le_bytes()); // x86-64
    elf.extend_from_slice(&1u32.to_le_bytes());
    elf.extend_from_slice(&(BASE + 120).to_le_bytes()); // entry
    elf.extend_from_slice(&64u64.to_le_bytes()); // program headers
    elf.extend_from_slice(&0u64.to_le_bytes()); // no sections
    elf.extend_from_slice(&0u32.to_le_bytes());
    for half in [64u16, 56, 1, 64, 0, 0] {
        elf.extend_from_slice(&half.to_le_bytes());
    }
    elf.extend_from_slice(&1u32.to_le_bytes()); // PT_LOAD
    elf.extend_from_slice(&5u32.to_le_bytes()); // R+X
    for word in [0, BASE, BASE, size, size, 0x1000] {
        elf.extend_from_slice(&word.to_le_bytes());
    }
    elf.extend_from_slice(&CODE);
    elf
}
