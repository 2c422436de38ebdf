//! `spec.include`: shared fragments (the dynamic loader, libc, locale, CA certificates, ...) kept
//! in `fragments/` next to the policy files, so policies stay short.
//!
//! A fragment is read while its `include` entry is read, so an error in it (or a missing one) is
//! reported at that entry's line and column, with the fragment's own position in the message.

use std::{
    cell::RefCell,
    path::{Path, PathBuf},
};

use serde::Deserialize;

use super::{
    document::{ApiVersion, ExecSection, FilesSection, NetworkSection},
    error::PolicyError,
    scalar::{ScalarRule, deserialize_as_scalar},
    task_name::TaskName,
};

/// The `kind` of a fragment file.
pub const FRAGMENT_KIND: &str = "PolicyFragment";
/// The directory, next to the policy files, that holds fragments.
pub const FRAGMENTS_DIR: &str = "fragments";

thread_local! {
    /// The directory of the policy file being read (fragments are found beside it).
    static POLICY_DIR: RefCell<Option<PathBuf>> = const { RefCell::new(None) };
}

/// Runs `read` with `dir` as the directory fragments are looked up in.
pub(crate) fn with_policy_dir<T>(dir: Option<&Path>, read: impl FnOnce() -> T) -> T {
    let previous = POLICY_DIR.with(|d| d.replace(dir.map(Path::to_path_buf)));
    let out = read();
    POLICY_DIR.with(|d| *d.borrow_mut() = previous);
    out
}

/// One `spec.include` entry, with the fragment it names already read.
#[derive(Debug)]
pub(crate) struct Included {
    pub spec: FragmentSpec,
}

impl<'de> Deserialize<'de> for Included {
    fn deserialize<D: serde::Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let name = TaskName::deserialize(deserializer)?;
        let dir = POLICY_DIR
            .with(|d| d.borrow().clone())
            .unwrap_or_else(|| PathBuf::from("."));
        let file = dir.join(FRAGMENTS_DIR).join(format!("{name}.yaml"));
        let text = std::fs::read_to_string(&file).map_err(|e| {
            serde::de::Error::custom(format!(
                "fragment `{name}`: cannot read {}: {e}",
                file.display()
            ))
        })?;
        let doc: FragmentDocument = serde_yaml_ng::from_str(&text).map_err(|e| {
            serde::de::Error::custom(format!(
                "fragment `{name}`: {}",
                PolicyError::from_yaml(&file, &e)
            ))
        })?;
        if doc.metadata.name.as_str() != name.as_str() {
            return Err(serde::de::Error::custom(format!(
                "fragment `{name}`: {} names itself `{}`",
                file.display(),
                doc.metadata.name
            )));
        }
        Ok(Self { spec: doc.spec })
    }
}

/// A fragment file.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct FragmentDocument {
    /// Schema version: `corral.dev/v1`.
    #[allow(dead_code, reason = "validated when read, nothing else to keep")]
    api_version: ApiVersion,
    /// Document kind: `PolicyFragment`.
    #[allow(dead_code, reason = "validated when read, nothing else to keep")]
    kind: FragmentKind,
    /// Identity of the fragment: its name is its file name.
    metadata: FragmentMetadata,
    /// What the fragment adds to every task that includes it.
    spec: FragmentSpec,
}

/// `metadata` of a fragment.
#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct FragmentMetadata {
    /// The name `spec.include` refers to (`fragments/<name>.yaml`).
    name: TaskName,
}

/// `kind`, checked to be `FRAGMENT_KIND`.
#[derive(Debug)]
struct FragmentKind;

impl ScalarRule for FragmentKind {
    const EXPECTING: &'static str = "PolicyFragment";

    fn parse(text: &str) -> Result<Self, String> {
        if text == FRAGMENT_KIND {
            Ok(Self)
        } else {
            Err(format!(
                "unsupported kind {text:?}, expected {FRAGMENT_KIND:?}"
            ))
        }
    }
}

deserialize_as_scalar!(FragmentKind);

/// `spec` of a fragment: allow-lists only (no mode, selectors, sub-tasks or includes).
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub(crate) struct FragmentSpec {
    /// Programs every including task may execute.
    #[serde(default)]
    pub exec: Option<ExecSection>,
    /// Files every including task may open (and must not: `deny`).
    #[serde(default)]
    pub files: Option<FilesSection>,
    /// Destinations every including task may connect to.
    #[serde(default)]
    pub network: Option<NetworkSection>,
}
