//! Struct member offsets straight from the raw bytes of a BTF blob (`/sys/kernel/btf/vmlinux`).
//!
//! The loader needs about 40 offsets. A general BTF parser turns every one of the ~150 000
//! kernel types into owned structures (more than 30 MiB of heap for a 5.5 MiB file, which made
//! it the daemon's peak RSS); this reader keeps the file's bytes and one `u32` per type (where
//! its record starts), and decodes only the structs it is asked about.

use std::{fs, ops::Range, path::Path};

#[derive(Debug, thiserror::Error)]
pub enum BtfReadError {
    #[error("{source}")]
    Io { source: std::io::Error },
    #[error("not a little-endian BTF blob (magic {magic:#06x})")]
    Magic { magic: u16 },
    #[error("truncated or malformed BTF: {what}")]
    Malformed { what: &'static str },
    #[error("unknown BTF kind {kind} for type {id}")]
    Kind { kind: u32, id: u32 },
}

const MAGIC: u16 = 0xeb9f;

const KIND_INT: u32 = 1;
const KIND_ARRAY: u32 = 3;
const KIND_STRUCT: u32 = 4;
const KIND_UNION: u32 = 5;
const KIND_ENUM: u32 = 6;
const KIND_TYPEDEF: u32 = 8;
const KIND_VOLATILE: u32 = 9;
const KIND_CONST: u32 = 10;
const KIND_RESTRICT: u32 = 11;
const KIND_FUNC_PROTO: u32 = 13;
const KIND_VAR: u32 = 14;
const KIND_DATASEC: u32 = 15;
const KIND_DECL_TAG: u32 = 17;
const KIND_ENUM64: u32 = 19;
const KIND_MAX: u32 = 19;

/// Bytes of a type's common header (`name_off`, `info`, `size`/`type`).
const TYPE_HEADER: usize = 12;

/// A BTF blob, indexed by type id.
pub struct RawBtf {
    data: Vec<u8>,
    types: Range<usize>,
    strings: Range<usize>,
    /// Byte offset (in `data`) of each type's record; index 0 is `void` (unused).
    starts: Vec<u32>,
}

/// One struct or union member.
struct Member {
    name_off: u32,
    type_id: u32,
    bit_offset: u32,
}

impl RawBtf {
    /// Reads and indexes the BTF at `path`.
    pub fn read(path: &Path) -> Result<Self, BtfReadError> {
        Self::parse(fs::read(path).map_err(|source| BtfReadError::Io { source })?)
    }

    /// Indexes a BTF blob (native, little-endian byte order, as the kernel exports it here).
    pub fn parse(data: Vec<u8>) -> Result<Self, BtfReadError> {
        let word = |at: usize| read_u32(&data, at);
        let magic = data
            .get(..2)
            .map(|b| u16::from_le_bytes([b[0], b[1]]))
            .ok_or(BtfReadError::Malformed { what: "header" })?;
        if magic != MAGIC {
            return Err(BtfReadError::Magic { magic });
        }
        let hdr_len = word(4)? as usize;
        let section = |off: usize, len: usize, what| {
            let start = hdr_len + word(off)? as usize;
            let end = start + word(len)? as usize;
            if end > data.len() {
                return Err(BtfReadError::Malformed { what });
            }
            Ok(start..end)
        };
        let types = section(8, 12, "type section")?;
        let strings = section(16, 20, "string section")?;
        let mut starts = vec![0u32];
        let mut at = types.start;
        while at < types.end {
            let id = starts.len() as u32;
            starts.push(u32::try_from(at).map_err(|_| BtfReadError::Malformed {
                what: "type offset",
            })?);
            let info = word(at + 4)?;
            let vlen = (info & 0xffff) as usize;
            let kind = (info >> 24) & 0x1f;
            let extra = match kind {
                KIND_INT | KIND_VAR | KIND_DECL_TAG => 4,
                KIND_ARRAY => 12,
                KIND_STRUCT | KIND_UNION | KIND_DATASEC | KIND_ENUM64 => 12 * vlen,
                KIND_ENUM | KIND_FUNC_PROTO => 8 * vlen,
                0 | 2 | 7..=12 | 16 | 18 => 0,
                _ => return Err(BtfReadError::Kind { kind, id }),
            };
            debug_assert!(kind <= KIND_MAX);
            at += TYPE_HEADER + extra;
        }
        if at != types.end {
            return Err(BtfReadError::Malformed {
                what: "type section end",
            });
        }
        Ok(Self {
            data,
            types,
            strings,
            starts,
        })
    }

    /// Byte offset of `field` in every struct named `name` that has it (the first such struct),
    /// looking through anonymous struct and union members. `Ok(None)` with `found_struct`
    /// telling whether any struct of that name exists.
    pub fn member_offset(&self, name: &str, field: &str) -> Result<MemberLookup, BtfReadError> {
        let mut found_struct = false;
        for id in 1..self.starts.len() as u32 {
            let (name_off, info, _) = self.header(id)?;
            if (info >> 24) & 0x1f != KIND_STRUCT || self.name(name_off)? != name.as_bytes() {
                continue;
            }
            found_struct = true;
            if let Some(bits) = self.find_member(id, field.as_bytes(), 0)? {
                return Ok(MemberLookup::Found(bits / 8));
            }
        }
        Ok(if found_struct {
            MemberLookup::NoField
        } else {
            MemberLookup::NoStruct
        })
    }

    /// Bit offset of `field` in the struct or union `id`.
    fn find_member(&self, id: u32, field: &[u8], depth: u32) -> Result<Option<u32>, BtfReadError> {
        // Anonymous members nest a few levels at most; a cycle would be malformed BTF.
        if depth > 32 {
            return Err(BtfReadError::Malformed {
                what: "anonymous members nested too deep",
            });
        }
        let (_, info, _) = self.header(id)?;
        let kind_flag = info >> 31 == 1;
        for m in self.members(id, info)? {
            let member = m?;
            // With `kind_flag`, the top 8 bits hold a bitfield size.
            let bit_offset = if kind_flag {
                member.bit_offset & 0x00ff_ffff
            } else {
                member.bit_offset
            };
            let member_name = self.name(member.name_off)?;
            if member_name == field {
                return Ok(Some(bit_offset));
            }
            if member_name.is_empty() {
                let inner = self.strip_modifiers(member.type_id)?;
                let (_, inner_info, _) = self.header(inner)?;
                let kind = (inner_info >> 24) & 0x1f;
                if kind == KIND_STRUCT || kind == KIND_UNION {
                    if let Some(bits) = self.find_member(inner, field, depth + 1)? {
                        return Ok(Some(bit_offset + bits));
                    }
                }
            }
        }
        Ok(None)
    }

    fn members(
        &self,
        id: u32,
        info: u32,
    ) -> Result<impl Iterator<Item = Result<Member, BtfReadError>> + '_, BtfReadError> {
        let start = self.start(id)? + TYPE_HEADER;
        let vlen = (info & 0xffff) as usize;
        Ok((0..vlen).map(move |i| {
            let at = start + 12 * i;
            Ok(Member {
                name_off: read_u32(&self.data, at)?,
                type_id: read_u32(&self.data, at + 4)?,
                bit_offset: read_u32(&self.data, at + 8)?,
            })
        }))
    }

    /// Follows typedef, volatile, const and restrict to the type they qualify.
    fn strip_modifiers(&self, mut id: u32) -> Result<u32, BtfReadError> {
        for _ in 0..64 {
            let (_, info, next) = self.header(id)?;
            match (info >> 24) & 0x1f {
                KIND_TYPEDEF | KIND_VOLATILE | KIND_CONST | KIND_RESTRICT => id = next,
                _ => return Ok(id),
            }
        }
        Err(BtfReadError::Malformed {
            what: "modifier chain too long",
        })
    }

    fn start(&self, id: u32) -> Result<usize, BtfReadError> {
        self.starts
            .get(id as usize)
            .filter(|_| id != 0)
            .map(|&s| s as usize)
            .ok_or(BtfReadError::Malformed { what: "type id" })
    }

    /// `(name_off, info, size_or_type)` of type `id`.
    fn header(&self, id: u32) -> Result<(u32, u32, u32), BtfReadError> {
        let at = self.start(id)?;
        debug_assert!(self.types.contains(&at));
        Ok((
            read_u32(&self.data, at)?,
            read_u32(&self.data, at + 4)?,
            read_u32(&self.data, at + 8)?,
        ))
    }

    /// The NUL-terminated string at `off` in the string section.
    fn name(&self, off: u32) -> Result<&[u8], BtfReadError> {
        let start = self.strings.start + off as usize;
        let rest = self
            .data
            .get(start..self.strings.end)
            .ok_or(BtfReadError::Malformed {
                what: "string offset",
            })?;
        let len = rest
            .iter()
            .position(|&b| b == 0)
            .ok_or(BtfReadError::Malformed {
                what: "unterminated string",
            })?;
        Ok(&rest[..len])
    }
}

/// What `RawBtf::member_offset` found.
#[derive(Debug, PartialEq, Eq)]
pub enum MemberLookup {
    /// Byte offset of the member.
    Found(u32),
    NoField,
    NoStruct,
}

fn read_u32(data: &[u8], at: usize) -> Result<u32, BtfReadError> {
    data.get(at..at + 4)
        .map(|b| u32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .ok_or(BtfReadError::Malformed { what: "short read" })
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A blob with `int`, `struct inner { int a; int b; }` and
    /// `struct outer { int x; union { struct inner; }; const int y; }`, hand-encoded.
    fn blob() -> Vec<u8> {
        let strings = b"\0int\0inner\0a\0b\0outer\0x\0y\0";
        let s = |name: &str| {
            let needle = format!("\0{name}\0");
            strings
                .windows(needle.len())
                .position(|w| w == needle.as_bytes())
                .map_or_else(
                    || panic!("expected {name} in the test string table"),
                    |p| p as u32 + 1,
                )
        };
        let mut types = Vec::new();
        let mut push = |words: &[u32]| {
            for w in words {
                types.extend_from_slice(&w.to_le_bytes());
            }
        };
        // 1: int (4 bytes, 32 bits).
        push(&[s("int"), KIND_INT << 24, 4, 32]);
        // 2: struct inner { int a @0; int b @32 }.
        push(&[s("inner"), KIND_STRUCT << 24 | 2, 8]);
        push(&[s("a"), 1, 0, s("b"), 1, 32]);
        // 3: anonymous union { struct inner @0 (anonymous member) }.
        push(&[0, KIND_UNION << 24 | 1, 8, 0, 2, 0]);
        // 4: const int.
        push(&[0, KIND_CONST << 24, 1]);
        // 5: struct outer { int x @0; <anon union> @64; const int y @128 }.
        push(&[s("outer"), KIND_STRUCT << 24 | 3, 20]);
        push(&[s("x"), 1, 0, 0, 3, 64, s("y"), 4, 128]);
        let mut out = Vec::new();
        out.extend_from_slice(&MAGIC.to_le_bytes());
        out.extend_from_slice(&[1, 0]);
        for w in [
            24,
            0,
            types.len() as u32,
            types.len() as u32,
            strings.len() as u32,
        ] {
            out.extend_from_slice(&w.to_le_bytes());
        }
        out.extend_from_slice(&types);
        out.extend_from_slice(strings);
        out
    }

    #[test]
    fn finds_direct_nested_anonymous_and_missing_members() {
        let btf = RawBtf::parse(blob()).unwrap_or_else(|e| panic!("expected a valid blob: {e}"));
        let get = |s, f| {
            btf.member_offset(s, f)
                .unwrap_or_else(|e| panic!("expected {s}.{f} looked up: {e}"))
        };
        assert_eq!(get("outer", "x"), MemberLookup::Found(0));
        assert_eq!(get("outer", "y"), MemberLookup::Found(16));
        assert_eq!(
            get("outer", "b"),
            MemberLookup::Found(12),
            "b is 4 bytes into the anonymous inner struct, itself 8 bytes into outer"
        );
        assert_eq!(get("inner", "b"), MemberLookup::Found(4));
        assert_eq!(get("outer", "z"), MemberLookup::NoField);
        assert_eq!(get("nothing", "x"), MemberLookup::NoStruct);
    }

    #[test]
    fn rejects_a_blob_that_is_not_btf_or_is_cut_short() {
        let mut bad = blob();
        bad[0] = 0;
        assert!(
            matches!(RawBtf::parse(bad), Err(BtfReadError::Magic { .. })),
            "expected a wrong magic refused"
        );
        let mut short = blob();
        short.truncate(40);
        assert!(
            RawBtf::parse(short).is_err(),
            "expected a truncated blob refused"
        );
    }
}
