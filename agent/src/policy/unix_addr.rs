//! `spec.network.unix`: `AF_UNIX` addresses a task may connect to.

use std::fmt;

use agent_common::UNIX_PATH_MAX;

use super::{
    path_rule::check_normalized,
    scalar::{ScalarRule, deserialize_as_scalar},
};

/// Longest pathname socket address: `sun_path` with room for its NUL.
pub const UNIX_PATHNAME_MAX: usize = UNIX_PATH_MAX - 1;
/// Longest abstract socket name (after the `@`).
pub const UNIX_ABSTRACT_MAX: usize = UNIX_PATH_MAX - 2;

/// An `AF_UNIX` address: an absolute, normalized socket path (`/run/x.sock`), matched byte for
/// byte against the address the caller passes, or `@name` for the abstract socket `name`
/// (matched against the whole abstract address, so every byte of the name counts).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct UnixAddr {
    /// As written in the policy.
    text: String,
    /// The `sun_path` bytes the kernel compares: the path, or NUL then the abstract name.
    sun_path: Vec<u8>,
}

impl UnixAddr {
    /// The `sun_path` bytes of the address (no trailing NUL; abstract names start with NUL).
    #[must_use]
    pub fn sun_path(&self) -> &[u8] {
        &self.sun_path
    }

    #[must_use]
    pub fn is_abstract(&self) -> bool {
        self.sun_path.first() == Some(&0)
    }
}

impl fmt::Display for UnixAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.text)
    }
}

impl ScalarRule for UnixAddr {
    const EXPECTING: &'static str = "an absolute socket path or \"@name\"";

    fn parse(text: &str) -> Result<Self, String> {
        let invalid =
            |problem: &dyn fmt::Display| format!("invalid unix address {text:?}: {problem}");
        let sun_path = if let Some(name) = text.strip_prefix('@') {
            if name.is_empty() {
                return Err(invalid(&"the abstract name after '@' is empty"));
            }
            if name.len() > UNIX_ABSTRACT_MAX {
                return Err(invalid(&format_args!(
                    "the abstract name is {} bytes long, more than {UNIX_ABSTRACT_MAX}",
                    name.len()
                )));
            }
            let mut bytes = Vec::with_capacity(1 + name.len());
            bytes.push(0);
            bytes.extend_from_slice(name.as_bytes());
            bytes
        } else {
            check_normalized(text).map_err(|p| invalid(&p))?;
            if text.ends_with('/') {
                return Err(invalid(&"a socket path cannot end in '/'"));
            }
            if text.len() > UNIX_PATHNAME_MAX {
                return Err(invalid(&format_args!(
                    "it is {} bytes long, more than {UNIX_PATHNAME_MAX}",
                    text.len()
                )));
            }
            text.as_bytes().to_vec()
        };
        Ok(Self {
            text: text.to_owned(),
            sun_path,
        })
    }
}

deserialize_as_scalar!(UnixAddr);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_pathname_and_abstract_addresses() {
        let path = UnixAddr::parse("/run/agent-tools.sock").expect("a socket path should parse");
        assert_eq!(path.sun_path(), b"/run/agent-tools.sock");
        assert!(!path.is_abstract(), "a path is not abstract");
        let name = UnixAddr::parse("@tools").expect("an abstract name should parse");
        assert_eq!(name.sun_path(), b"\0tools");
        assert!(name.is_abstract(), "@tools is abstract");
        assert_eq!(name.to_string(), "@tools");
        let longest = format!("/{}", "s".repeat(UNIX_PATHNAME_MAX - 1));
        assert!(
            UnixAddr::parse(&longest).is_ok(),
            "a 107-byte path fits sun_path"
        );
        let longest = format!("@{}", "n".repeat(UNIX_ABSTRACT_MAX));
        assert!(
            UnixAddr::parse(&longest).is_ok(),
            "a 106-byte abstract name fits"
        );
    }

    #[test]
    fn rejects_bad_addresses() {
        let long_path = format!("/{}", "s".repeat(UNIX_PATHNAME_MAX));
        let long_name = format!("@{}", "n".repeat(UNIX_ABSTRACT_MAX + 1));
        for (text, expected) in [
            ("@", "abstract name after '@' is empty"),
            ("run/x.sock", "not absolute"),
            ("/run/../x.sock", "'..' component"),
            ("/run/", "cannot end in '/'"),
            (long_path.as_str(), "108 bytes long, more than 107"),
            (long_name.as_str(), "107 bytes long, more than 106"),
        ] {
            let err =
                UnixAddr::parse(text).expect_err(&format!("expected {text:?} to be rejected"));
            assert!(
                err.contains(expected),
                "error for {text:?} should contain {expected:?}, got {err:?}"
            );
        }
    }
}
