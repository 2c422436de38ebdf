//! `spec.network.connect[].host: "*.example.com"`: every name strictly beneath a suffix. The
//! daemon cannot enumerate such names; it learns them from the DNS answers the task's own
//! processes receive (see `daemon::dns::proxy`).

use std::fmt;

use super::{host::HostName, scalar::ScalarRule};

/// A validated `*.suffix` pattern, lowercase. Matches the names strictly beneath the suffix, at
/// any depth (`a.example.com`, `b.a.example.com`), never the suffix itself (`example.com`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct WildcardHost(HostName);

impl WildcardHost {
    /// The suffix, without `*.`.
    #[must_use]
    pub fn suffix(&self) -> &HostName {
        &self.0
    }

    /// Whether `name` lies strictly beneath the suffix.
    #[must_use]
    pub fn matches(&self, name: &HostName) -> bool {
        name.as_str()
            .strip_suffix(self.0.as_str())
            .is_some_and(|head| head.len() > 1 && head.ends_with('.'))
    }

    /// Whether every name `other` matches, this pattern matches too.
    #[must_use]
    pub fn covers(&self, other: &Self) -> bool {
        self == other || self.matches(&other.0)
    }
}

impl fmt::Display for WildcardHost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "*.{}", self.0)
    }
}

/// What a `host` field holds: one name, or a wildcard.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) enum HostField {
    /// `api.github.com`.
    Name(HostName),
    /// `*.githubusercontent.com`.
    Wildcard(WildcardHost),
}

impl ScalarRule for HostField {
    const EXPECTING: &'static str =
        "a DNS name such as api.github.com, or a wildcard such as \"*.githubusercontent.com\"";

    fn parse(text: &str) -> Result<Self, String> {
        let Some(suffix) = text.strip_prefix("*.") else {
            return HostName::parse(text).map(Self::Name);
        };
        let invalid = |problem: &dyn fmt::Display| format!("invalid host {text:?}: {problem}");
        if suffix.contains('*') {
            return Err(invalid(&"only a leading `*.` is a wildcard"));
        }
        // The name's own error repeats `invalid host "suffix": `; keep only its problem.
        let suffix = HostName::parse(suffix).map_err(|e| {
            let problem = e.split_once(": ").map_or(e.as_str(), |(_, p)| p);
            invalid(&problem)
        })?;
        if !suffix.as_str().contains('.') {
            return Err(invalid(&format_args!(
                "a wildcard needs a suffix of at least two labels (`*.{suffix}` would match a \
                 whole top-level domain)"
            )));
        }
        Ok(Self::Wildcard(WildcardHost(suffix)))
    }
}

super::scalar::deserialize_as_scalar!(HostField);

#[cfg(test)]
mod tests {
    use super::*;

    fn wildcard(text: &str) -> WildcardHost {
        match HostField::parse(text) {
            Ok(HostField::Wildcard(w)) => w,
            other => panic!("expected {text:?} to be a wildcard, got {other:?}"),
        }
    }

    fn name(text: &str) -> HostName {
        HostName::parse(text).unwrap_or_else(|e| panic!("expected {text:?} to be a name: {e}"))
    }

    #[test]
    fn a_wildcard_matches_names_strictly_beneath_its_suffix_at_any_depth() {
        let w = wildcard("*.Example.COM.");
        assert_eq!(
            w.to_string(),
            "*.example.com",
            "lowercased, no trailing dot"
        );
        for yes in ["a.example.com", "b.a.example.com", "x-1.y.z.example.com"] {
            assert!(w.matches(&name(yes)), "{yes} lies beneath example.com");
        }
        for no in [
            "example.com",
            "badexample.com",
            "a.example.org",
            "com",
            "example.com.evil",
        ] {
            assert!(
                !w.matches(&name(no)),
                "{no} does not lie beneath example.com"
            );
        }
    }

    #[test]
    fn a_wildcard_covers_itself_and_narrower_wildcards_only() {
        let w = wildcard("*.example.com");
        assert!(w.covers(&wildcard("*.example.com")));
        assert!(w.covers(&wildcard("*.cdn.example.com")));
        assert!(
            !w.covers(&wildcard("*.ample.com")),
            "a string suffix is not a name suffix"
        );
        assert!(
            !wildcard("*.cdn.example.com").covers(&w),
            "a narrower one covers less"
        );
    }

    #[test]
    fn bad_wildcards_are_rejected_with_the_reason() {
        for (text, expected) in [
            ("*.com", "at least two labels"),
            ("*.", "empty name"),
            ("*", "holds '*'"),
            ("*.*.example.com", "only a leading `*.`"),
            ("a*.example.com", "holds '*'"),
            ("*.a..b", "invalid host \"*.a..b\": empty label"),
        ] {
            let err =
                HostField::parse(text).expect_err(&format!("expected {text:?} to be rejected"));
            assert!(
                err.contains(expected),
                "error for {text:?} should contain {expected:?}, got {err:?}"
            );
        }
    }
}
