//! `metadata.name`: the task name processes are tagged with.

use std::fmt;

use super::scalar::{ScalarRule, deserialize_as_scalar};

/// Longest task name.
pub const TASK_NAME_MAX: usize = 63;

/// A task name: 1..=63 characters of `[a-z0-9-]`, not starting or ending with `-`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct TaskName(String);

impl TaskName {
    #[must_use]
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl fmt::Display for TaskName {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl AsRef<str> for TaskName {
    fn as_ref(&self) -> &str {
        &self.0
    }
}

impl ScalarRule for TaskName {
    const EXPECTING: &'static str = "a task name of [a-z0-9-]";

    fn parse(text: &str) -> Result<Self, String> {
        let problem = if text.is_empty() {
            Some("it is empty".to_owned())
        } else if text.len() > TASK_NAME_MAX {
            Some(format!(
                "it is {} characters long, more than {TASK_NAME_MAX}",
                text.chars().count()
            ))
        } else if let Some(c) = text
            .chars()
            .find(|c| !(c.is_ascii_lowercase() || c.is_ascii_digit() || *c == '-'))
        {
            Some(format!("{c:?} is not one of [a-z0-9-]"))
        } else if text.starts_with('-') || text.ends_with('-') {
            Some("it starts or ends with '-'".to_owned())
        } else {
            None
        };
        match problem {
            None => Ok(Self(text.to_owned())),
            Some(problem) => Err(format!("invalid task name {text:?}: {problem}")),
        }
    }
}

deserialize_as_scalar!(TaskName);

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accepts_names_of_the_allowed_alphabet() {
        for name in ["a", "repo-coder", "x1-2-3", &"a".repeat(63)] {
            let parsed = TaskName::parse(name)
                .unwrap_or_else(|e| panic!("expected {name:?} to be a valid task name: {e}"));
            assert_eq!(parsed.as_str(), name, "the name should be kept as written");
        }
    }

    #[test]
    fn rejects_names_outside_the_rules() {
        for (name, expected) in [
            ("", "it is empty"),
            ("Repo", "'R' is not one of [a-z0-9-]"),
            ("repo_coder", "'_' is not one of [a-z0-9-]"),
            ("-repo", "starts or ends with '-'"),
            ("repo-", "starts or ends with '-'"),
            (&"a".repeat(64), "64 characters long, more than 63"),
        ] {
            let err = TaskName::parse(name)
                .expect_err(&format!("expected {name:?} to be rejected as a task name"));
            assert!(
                err.contains(expected),
                "error for {name:?} should contain {expected:?}, got {err:?}"
            );
        }
    }
}
