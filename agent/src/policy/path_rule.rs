//! File and exec rule paths (`spec.exec.allow`, `spec.files.*`).

use std::fmt;

use agent_common::RULE_PATH_MAX;

use super::scalar::{ScalarRule, deserialize_as_scalar};

/// Longest exact rule path: its key also holds the terminating NUL.
pub const EXACT_PATH_MAX: usize = RULE_PATH_MAX - 1;
/// Longest prefix (directory) rule path, trailing `/` included.
pub const PREFIX_PATH_MAX: usize = RULE_PATH_MAX;

/// An absolute, normalized path. Ending in `/` makes it a prefix rule: the directory and
/// everything beneath it. Otherwise it is an exact rule: that path only.
///
/// Rules are matched against the path the kernel resolved for the file really reached, so
/// symlinks are followed: a rule must name the target (`/usr/bin/dash`, not `/bin/sh`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct PathRule(String);

impl PathRule {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Whether the rule covers everything beneath a directory (it ends in `/`).
    #[must_use]
    pub fn is_prefix(&self) -> bool {
        self.0.ends_with('/')
    }
}

impl fmt::Display for PathRule {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

/// Checks that `text` is absolute and normalized: no NUL byte, no empty, `.` or `..` component.
/// A trailing `/` is allowed (callers decide what it means). Returns what is wrong.
pub(crate) fn check_normalized(text: &str) -> Result<(), &'static str> {
    if text.is_empty() {
        Err("it is empty")
    } else if text.contains('\0') {
        Err("it contains a NUL byte")
    } else if !text.starts_with('/') {
        Err("it is not absolute (it must start with '/')")
    } else if text.contains("//") {
        Err("it has an empty component ('//')")
    } else if text.contains("/./") || text.ends_with("/.") {
        Err("it has a '.' component")
    } else if text.contains("/../") || text.ends_with("/..") {
        Err("it has a '..' component")
    } else {
        Ok(())
    }
}

impl ScalarRule for PathRule {
    const EXPECTING: &'static str = "an absolute path";

    fn parse(text: &str) -> Result<Self, String> {
        check_normalized(text).map_err(|problem| format!("invalid path {text:?}: {problem}"))?;
        let (max, kind) = if text.ends_with('/') {
            (PREFIX_PATH_MAX, "a directory rule")
        } else {
            (EXACT_PATH_MAX, "an exact rule")
        };
        if text.len() > max {
            return Err(format!(
                "invalid path {text:?}: it is {} bytes long, more than the {max} bytes {kind} can hold",
                text.len()
            ));
        }
        Ok(Self(text.to_owned()))
    }
}

deserialize_as_scalar!(PathRule);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_exact_and_prefix_paths_up_to_their_bounds() {
        let exact = format!("/{}", "a".repeat(EXACT_PATH_MAX - 1));
        let prefix = format!("/{}/", "a".repeat(PREFIX_PATH_MAX - 2));
        for (text, is_prefix) in [
            ("/", true),
            ("/usr/", true),
            ("/etc/ld.so.cache", false),
            ("/workspace/.env", false),
            ("/a/..b/.c", false),
            (exact.as_str(), false),
            (prefix.as_str(), true),
        ] {
            let rule = PathRule::parse(text)
                .unwrap_or_else(|e| panic!("expected {text:?} to be a valid rule path: {e}"));
            assert_eq!(rule.is_prefix(), is_prefix, "prefix-ness of {text:?}");
            assert_eq!(rule.as_str(), text, "the path should be kept as written");
        }
    }

    #[test]
    fn rejects_unnormalized_and_overlong_paths() {
        let exact = format!("/{}", "a".repeat(EXACT_PATH_MAX));
        let prefix = format!("/{}/", "a".repeat(PREFIX_PATH_MAX - 1));
        for (text, expected) in [
            ("", "it is empty"),
            ("usr/bin", "not absolute"),
            ("/usr\0/bin", "NUL byte"),
            ("/usr//bin", "empty component"),
            ("/usr/./bin", "'.' component"),
            ("/usr/.", "'.' component"),
            ("/usr/../etc", "'..' component"),
            ("/usr/..", "'..' component"),
            (
                exact.as_str(),
                "252 bytes long, more than the 251 bytes an exact rule",
            ),
            (
                prefix.as_str(),
                "253 bytes long, more than the 252 bytes a directory rule",
            ),
        ] {
            let err = PathRule::parse(text)
                .expect_err(&format!("expected {text:?} to be rejected as a rule path"));
            assert!(
                err.contains(expected),
                "error for {text:?} should contain {expected:?}, got {err:?}"
            );
        }
    }
}
