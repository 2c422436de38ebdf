//! JSON text pieces written straight into a line buffer, as `serde_json` writes them: strings
//! escaped with its rules (`"`, `\`, and control characters: `\b \t \n \f \r`, the others as
//! `\u00xx`; everything else, DEL and non-ASCII included, as is), runs of bytes that need no
//! escaping copied at once; kernel bytes made text as `String::from_utf8_lossy` does (each
//! invalid sequence becomes U+FFFD).

/// What a byte becomes inside a JSON string: 0 as is, `u` as `\u00xx`, else `\` + that byte.
const ESCAPE: [u8; 256] = {
    let mut table = [0u8; 256];
    let mut b = 0;
    while b < 0x20 {
        table[b] = b'u';
        b += 1;
    }
    table[0x08] = b'b';
    table[0x09] = b't';
    table[0x0a] = b'n';
    table[0x0c] = b'f';
    table[0x0d] = b'r';
    table[b'"' as usize] = b'"';
    table[b'\\' as usize] = b'\\';
    table
};

const HEX: &[u8; 16] = b"0123456789abcdef";

/// U+FFFD in UTF-8.
const REPLACEMENT: &[u8] = "\u{fffd}".as_bytes();

/// Appends `"text"`, escaped.
pub fn string(out: &mut Vec<u8>, text: &str) {
    out.push(b'"');
    escaped(out, text.as_bytes());
    out.push(b'"');
}

/// Appends `"text"` or `null`.
pub fn opt_string(out: &mut Vec<u8>, text: Option<&str>) {
    match text {
        Some(text) => string(out, text),
        None => out.extend_from_slice(b"null"),
    }
}

/// Appends kernel bytes as a JSON string: invalid UTF-8 replaced, then escaped.
pub fn lossy(out: &mut Vec<u8>, bytes: &[u8]) {
    out.push(b'"');
    lossy_inner(out, bytes);
    out.push(b'"');
}

/// As `lossy`, without the quotes.
pub fn lossy_inner(out: &mut Vec<u8>, bytes: &[u8]) {
    // Most kernel text is printable ASCII without quotes or backslashes: copied at once.
    if plain_ascii(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    for chunk in bytes.utf8_chunks() {
        escaped(out, chunk.valid().as_bytes());
        if !chunk.invalid().is_empty() {
            out.extend_from_slice(REPLACEMENT);
        }
    }
}

/// Whether `bytes` are all ASCII that JSON takes as is (no control character, `"` or `\`),
/// checked eight at a time.
fn plain_ascii(bytes: &[u8]) -> bool {
    const LOW: u64 = u64::from_ne_bytes([0x01; 8]);
    const HIGH: u64 = u64::from_ne_bytes([0x80; 8]);
    // Non-zero when a byte of `w` is below `n` (n ≤ 128; exact as a yes or no: a borrow only
    // spreads above a byte that was below `n` already).
    const fn has_below(w: u64, n: u8) -> u64 {
        w.wrapping_sub(LOW * n as u64) & !w & HIGH
    }
    let mut words = bytes.chunks_exact(8);
    for word in &mut words {
        let w = u64::from_ne_bytes([
            word[0], word[1], word[2], word[3], word[4], word[5], word[6], word[7],
        ]);
        let special = (w & HIGH)
            | has_below(w, 0x20)
            | has_below(w ^ (LOW * u64::from(b'"')), 1)
            | has_below(w ^ (LOW * u64::from(b'\\')), 1);
        if special != 0 {
            return false;
        }
    }
    words
        .remainder()
        .iter()
        .all(|&b| b < 0x80 && ESCAPE[b as usize] == 0)
}

/// Appends valid UTF-8 (or any bytes the caller vouches for), escaped, without quotes.
fn escaped(out: &mut Vec<u8>, bytes: &[u8]) {
    if plain_ascii(bytes) {
        out.extend_from_slice(bytes);
        return;
    }
    let mut start = 0;
    for (i, &b) in bytes.iter().enumerate() {
        let escape = ESCAPE[b as usize];
        if escape == 0 {
            continue;
        }
        out.extend_from_slice(&bytes[start..i]);
        start = i + 1;
        if escape == b'u' {
            out.extend_from_slice(&[
                b'\\',
                b'u',
                b'0',
                b'0',
                HEX[(b >> 4) as usize],
                HEX[(b & 0xf) as usize],
            ]);
        } else {
            out.extend_from_slice(&[b'\\', escape]);
        }
    }
    out.extend_from_slice(&bytes[start..]);
}

/// Appends a number.
pub fn number(out: &mut Vec<u8>, n: impl itoa::Integer) {
    out.extend_from_slice(itoa::Buffer::new().format(n).as_bytes());
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn strings_are_escaped_as_serde_json_escapes_them() {
        let mut all = String::new();
        for c in (0u8..=0x7f).map(char::from) {
            all.push(c);
        }
        all.push_str("é\u{fffd}😀 end");
        let mut out = Vec::new();
        string(&mut out, &all);
        let expected = serde_json::to_string(&all).unwrap_or_default();
        assert_eq!(
            String::from_utf8_lossy(&out),
            expected,
            "expected serde_json's escaping of every ASCII byte and some non-ASCII"
        );
    }

    #[test]
    fn plain_ascii_is_told_apart_at_every_position() {
        for special in [0x00u8, 0x1f, b'"', b'\\', 0x80, 0xff, b'\n'] {
            for len in 0..20 {
                for at in 0..len {
                    let mut bytes = vec![b'a'; len];
                    bytes[at] = special;
                    assert!(
                        !plain_ascii(&bytes),
                        "expected byte {special:#x} at {at} of {len} to need care"
                    );
                }
                assert!(
                    plain_ascii(&vec![b' '; len]) && plain_ascii(&vec![0x7f; len]),
                    "expected spaces and DEL ({len}) to be plain"
                );
            }
        }
        let printable: Vec<u8> = (0x20..0x7f).filter(|&b| b != b'"' && b != b'\\').collect();
        assert!(
            plain_ascii(&printable),
            "expected printable ASCII to be plain"
        );
    }

    #[test]
    fn invalid_utf8_is_replaced_like_from_utf8_lossy() {
        let cases: [&[u8]; 6] = [
            b"plain",
            b"a\xffb",
            b"\xe2\x82",
            b"\xe2\x82\xac\xf0\x9f\x98",
            b"\xc0\x80\"\n",
            b"",
        ];
        for bytes in cases {
            let mut out = Vec::new();
            lossy(&mut out, bytes);
            let expected =
                serde_json::to_string(&String::from_utf8_lossy(bytes)).unwrap_or_default();
            assert_eq!(
                String::from_utf8_lossy(&out),
                expected,
                "expected {bytes:?} replaced and escaped like from_utf8_lossy + serde_json"
            );
        }
    }
}
