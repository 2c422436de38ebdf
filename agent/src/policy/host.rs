//! `spec.network.connect[].host`: a DNS name the daemon resolves into per-task IP entries.

use std::{fmt, net::IpAddr};

use super::scalar::{ScalarRule, deserialize_as_scalar};

/// Longest DNS name in text form (RFC 1035: 255 octets on the wire, 253 characters written).
pub const HOST_NAME_MAX: usize = 253;
/// Longest label of a DNS name.
const LABEL_MAX: usize = 63;

/// A validated, lowercase DNS name without the trailing dot (`api.github.com`). Matched
/// case-insensitively, as DNS does: the policy's spelling is normalised to lowercase.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct HostName(String);

impl HostName {
    /// The name, lowercase, without a trailing dot.
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::str::FromStr for HostName {
    type Err = String;

    /// Validates and normalises a name as the policy does (e.g. a name from a DNS answer).
    fn from_str(text: &str) -> Result<Self, String> {
        <Self as ScalarRule>::parse(text)
    }
}

impl fmt::Display for HostName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl ScalarRule for HostName {
    const EXPECTING: &'static str = "a DNS name such as api.github.com";

    fn parse(text: &str) -> Result<Self, String> {
        let invalid = |problem: &dyn fmt::Display| format!("invalid host {text:?}: {problem}");
        if text.starts_with("*.") {
            return Err(invalid(&"a wildcard where a single name is expected"));
        }
        if text.parse::<IpAddr>().is_ok() {
            let bits = if text.contains(':') { 128 } else { 32 };
            return Err(invalid(&format_args!(
                "an IP address is not a host name; write `cidr: \"{text}/{bits}\"`"
            )));
        }
        let name = text.strip_suffix('.').unwrap_or(text).to_ascii_lowercase();
        if name.is_empty() {
            return Err(invalid(&"empty name"));
        }
        if name.len() > HOST_NAME_MAX {
            return Err(invalid(&format_args!(
                "{} characters, more than the {HOST_NAME_MAX} of a DNS name",
                name.len()
            )));
        }
        for label in name.split('.') {
            check_label(label).map_err(|problem| invalid(&problem))?;
        }
        if name
            .rsplit('.')
            .next()
            .is_some_and(|tld| tld.bytes().all(|b| b.is_ascii_digit()))
        {
            return Err(invalid(&"the last label is all digits (not a DNS name)"));
        }
        Ok(Self(name))
    }
}

deserialize_as_scalar!(HostName);

/// A letter-digit-hyphen label: 1 to 63 of `[a-z0-9-]`, neither starting nor ending with `-`.
fn check_label(label: &str) -> Result<(), String> {
    if label.is_empty() {
        return Err("empty label (two dots in a row, or a leading dot)".to_owned());
    }
    if label.len() > LABEL_MAX {
        return Err(format!(
            "label {label:?} is {} characters, more than {LABEL_MAX}",
            label.len()
        ));
    }
    if let Some(c) = label
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || *c == '-'))
    {
        return Err(format!(
            "label {label:?} holds {c:?}; names are letters, digits and '-' (write \
             internationalised names in their xn-- form)"
        ));
    }
    if label.starts_with('-') || label.ends_with('-') {
        return Err(format!("label {label:?} starts or ends with '-'"));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(text: &str) -> String {
        HostName::parse(text)
            .unwrap_or_else(|e| panic!("expected {text:?} to be a valid host: {e}"))
            .0
    }

    #[test]
    fn normalises_case_and_the_trailing_dot() {
        assert_eq!(host("api.github.com"), "api.github.com");
        assert_eq!(host("API.GitHub.com."), "api.github.com");
        assert_eq!(host("localhost"), "localhost");
        assert_eq!(host("xn--bcher-kva.example"), "xn--bcher-kva.example");
        assert_eq!(host("a-1.b2.c"), "a-1.b2.c");
    }

    #[test]
    fn rejects_bad_names_with_the_reason() {
        let long_label = format!("{}.com", "a".repeat(64));
        let long_name = format!("{}com", "abcdefghi.".repeat(26));
        for (text, expected) in [
            (
                "*.githubusercontent.com",
                "a wildcard where a single name is expected",
            ),
            ("10.0.0.1", "write `cidr: \"10.0.0.1/32\"`"),
            ("::1", "write `cidr: \"::1/128\"`"),
            ("", "empty name"),
            (".", "empty name"),
            ("a..b", "empty label"),
            (".a.b", "empty label"),
            ("api_x.example.com", "holds '_'"),
            ("bücher.example", "xn--"),
            ("-a.example", "starts or ends with '-'"),
            ("a-.example", "starts or ends with '-'"),
            ("a.*.example", "holds '*'"),
            ("1.2.3.4.5", "all digits"),
            (long_label.as_str(), "more than 63"),
            (long_name.as_str(), "more than the 253"),
        ] {
            let err =
                HostName::parse(text).expect_err(&format!("expected {text:?} to be rejected"));
            assert!(
                err.contains(expected),
                "error for {text:?} should contain {expected:?}, got {err:?}"
            );
        }
    }
}
