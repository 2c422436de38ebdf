//! From a `LandlockSpec` to the list of (path, rights) rules to add, reading the filesystem as it
//! is at launch. Nothing here touches Landlock itself, so it is tested on temporary directories.
//!
//! Landlock only allows, and a rule on a directory covers everything beneath it. A denied path
//! inside an allowed directory is therefore honoured by *expanding* the directory: instead of one
//! rule for it, one rule for each of its entries except the one leading to the denied path,
//! recursively down to the denied path's parent, which is left out.

use std::{
    collections::BTreeSet,
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
};

use landlock::{AccessFs, BitFlags};
use serde::Serialize;

use super::{LandlockError, LandlockSpec, elf_interp, rights};

/// Default bound on the number of rules one spec may need.
pub const MAX_RULES: usize = 4096;
/// Bound on the files examined beneath `exec.allow` directories for their ELF interpreter.
const MAX_INTERP_SCAN: usize = 4096;

/// One rule to add: `access` on `path` (and beneath it, if it is a directory).
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct PlannedRule {
    pub path: PathBuf,
    pub access: BitFlags<AccessFs>,
}

/// A policy path that got no rule of its own.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Skipped {
    /// The policy list it came from: `exec`, `read` or `write`.
    pub list: &'static str,
    /// The path as the policy writes it.
    pub path: String,
    /// Why it got no rule.
    pub reason: SkipReason,
}

/// Why a policy path got no rule.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum SkipReason {
    /// Nothing exists there at launch (Landlock rules are attached to existing files).
    Missing,
    /// The path goes through a symlink. Rules name the path the kernel reaches (as with BPF LSM,
    /// where such a rule matches nothing), so it is not followed.
    ThroughSymlink { resolved: PathBuf },
    /// An exact rule (no trailing `/`) names a directory. It covers only the directory itself,
    /// which a Landlock rule (always the directory and everything beneath) cannot express.
    ExactRuleOnDirectory,
}

impl std::fmt::Display for Skipped {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{} {}: ", self.list, self.path)?;
        match &self.reason {
            SkipReason::Missing => f.write_str("does not exist"),
            SkipReason::ThroughSymlink { resolved } => write!(
                f,
                "goes through a symlink to {} (rules name resolved paths)",
                resolved.display()
            ),
            SkipReason::ExactRuleOnDirectory => {
                f.write_str("is a directory: end the rule with '/' to cover what is beneath it")
            }
        }
    }
}

/// The rules for a spec, the paths that got none, and the ELF interpreters granted.
#[derive(Debug, Default)]
pub(crate) struct Plan {
    pub rules: Vec<PlannedRule>,
    pub skipped: Vec<Skipped>,
    pub interpreters: Vec<PathBuf>,
}

/// A denied path, resolved.
#[derive(Debug)]
struct Deny {
    path: PathBuf,
    /// Denies `path` and everything beneath it. False only for an exact rule naming an existing
    /// directory: then only opening the directory itself is denied, its entries are not.
    subtree: bool,
    /// It is, or may become, a directory: listing any directory above it could list it.
    dir_like: bool,
}

impl Deny {
    fn covers(&self, path: &Path) -> bool {
        if self.subtree {
            path.starts_with(&self.path)
        } else {
            false
        }
    }
}

/// An allowed path, resolved, with the rights its list grants.
struct Grant {
    list: &'static str,
    path: PathBuf,
    is_dir: bool,
    rights: BitFlags<AccessFs>,
}

/// Plans the rules for `spec`, failing if more than `max_rules` are needed.
pub(crate) fn plan(spec: &LandlockSpec, max_rules: usize) -> Result<Plan, LandlockError> {
    let mut planner = Planner {
        plan: Plan::default(),
        max_rules,
    };
    let denies = spec
        .deny
        .iter()
        .map(|d| resolve_deny(d))
        .collect::<Result<Vec<_>, _>>()?;
    let deny_refs: Vec<&Deny> = denies.iter().collect();
    let mut grants = Vec::new();
    for (list, entries, list_rights) in [
        ("exec", &spec.exec, rights::EXEC),
        ("read", &spec.read, rights::READ),
        ("write", &spec.write, rights::WRITE),
    ] {
        for entry in entries {
            if let Some(grant) = planner.resolve_grant(list, entry, list_rights)? {
                grants.push(grant);
            }
        }
    }
    for grant in &grants {
        planner.grant(&grant.path, grant.is_dir, grant.rights, &deny_refs, None)?;
    }
    planner.grant_interpreters(&grants, &deny_refs)?;
    Ok(planner.plan)
}

struct Planner {
    plan: Plan,
    max_rules: usize,
}

impl Planner {
    /// Resolves one allowed path; `None` (and a `Skipped` entry) if it gets no rule.
    fn resolve_grant(
        &mut self,
        list: &'static str,
        entry: &str,
        rights: BitFlags<AccessFs>,
    ) -> Result<Option<Grant>, LandlockError> {
        let prefix = entry.ends_with('/');
        let written = rule_path(entry);
        let mut skip = |reason| {
            self.plan.skipped.push(Skipped {
                list,
                path: entry.to_owned(),
                reason,
            });
            Ok(None)
        };
        let resolved = match fs::canonicalize(&written) {
            Ok(resolved) => resolved,
            Err(e) if is_missing(&e) => return skip(SkipReason::Missing),
            Err(source) => {
                return Err(LandlockError::Resolve {
                    path: entry.to_owned(),
                    source,
                });
            }
        };
        if resolved != written {
            return skip(SkipReason::ThroughSymlink { resolved });
        }
        let is_dir = match fs::symlink_metadata(&resolved) {
            Ok(meta) => meta.is_dir(),
            Err(e) if is_missing(&e) => return skip(SkipReason::Missing),
            Err(source) => {
                return Err(LandlockError::Resolve {
                    path: entry.to_owned(),
                    source,
                });
            }
        };
        if is_dir && !prefix {
            return skip(SkipReason::ExactRuleOnDirectory);
        }
        Ok(Some(Grant {
            list,
            path: resolved,
            is_dir,
            rights,
        }))
    }

    /// Adds the rules granting `rights` on `path`, leaving out every denied path: one rule if
    /// no denied path is at or beneath it, else (it is a directory) one per entry, recursively.
    /// `expanding` is the directory whose entries are being granted, for the error message.
    fn grant(
        &mut self,
        path: &Path,
        is_dir: bool,
        rights: BitFlags<AccessFs>,
        denies: &[&Deny],
        expanding: Option<&Path>,
    ) -> Result<(), LandlockError> {
        if denies.iter().any(|d| d.covers(path)) {
            return Ok(());
        }
        let inside: Vec<&Deny> = denies
            .iter()
            .copied()
            .filter(|d| d.path.starts_with(path))
            .collect();
        if inside.is_empty() {
            let access = if is_dir {
                rights
            } else {
                rights & rights::FILE_RIGHTS
            };
            return self.push(path, access, expanding.unwrap_or(path));
        }
        if !is_dir {
            // Only a denied path equal to a file can be "inside" it, and that one covers it.
            return Ok(());
        }
        // The directory itself may still be listed, unless that could list a denied directory:
        // `read_dir` on a directory covers every directory beneath it.
        let list = rights & AccessFs::ReadDir;
        if !list.is_empty() && !inside.iter().any(|d| d.dir_like) {
            self.push(path, list, path)?;
        }
        for (child, child_is_dir) in entries(path)? {
            self.grant(&child, child_is_dir, rights, &inside, Some(path))?;
        }
        Ok(())
    }

    fn push(
        &mut self,
        path: &Path,
        access: BitFlags<AccessFs>,
        dir: &Path,
    ) -> Result<(), LandlockError> {
        if access.is_empty() {
            return Ok(());
        }
        if self.plan.rules.len() >= self.max_rules {
            return Err(LandlockError::TooManyRules {
                dir: dir.to_owned(),
                max: self.max_rules,
            });
        }
        self.plan.rules.push(PlannedRule {
            path: path.to_owned(),
            access,
        });
        Ok(())
    }

    /// Grants `execute` (and `read_file`) on the ELF interpreter of each program `exec.allow`
    /// reaches, when the policy lets the task read or execute the interpreter itself: the kernel
    /// opens it for execution too, and with BPF LSM such an exec-open is allowed by `exec.allow`
    /// or `files.read`.
    fn grant_interpreters(
        &mut self,
        grants: &[Grant],
        denies: &[&Deny],
    ) -> Result<(), LandlockError> {
        let mut named = BTreeSet::new();
        let mut budget = MAX_INTERP_SCAN;
        for grant in grants.iter().filter(|g| g.list == "exec") {
            if grant.is_dir {
                scan_interpreters(&grant.path, &mut named, &mut budget);
            } else if let Some(interp) = elf_interp::interpreter_of(&grant.path) {
                named.insert(interp);
            }
        }
        for interp in named {
            let Ok(resolved) = fs::canonicalize(&interp) else {
                continue;
            };
            let reachable = grants.iter().any(|g| {
                (g.list == "exec" || g.list == "read")
                    && (g.path == resolved || (g.is_dir && resolved.starts_with(&g.path)))
            });
            let is_denied = denies
                .iter()
                .any(|d| d.path == resolved || d.covers(&resolved));
            if reachable && !is_denied && !self.plan.interpreters.contains(&resolved) {
                self.push(&resolved, rights::EXEC, &resolved)?;
                self.plan.interpreters.push(resolved);
            }
        }
        Ok(())
    }
}

/// The interpreters of the programs beneath `dir`, examining at most `budget` files in all.
/// Stopping early only leaves programs unable to start (refused), never allows more.
fn scan_interpreters(dir: &Path, named: &mut BTreeSet<PathBuf>, budget: &mut usize) {
    let Ok(children) = entries(dir) else { return };
    for (child, is_dir) in children {
        if *budget == 0 {
            return;
        }
        if is_dir {
            scan_interpreters(&child, named, budget);
        } else {
            *budget -= 1;
            if let Some(interp) = elf_interp::interpreter_of(&child) {
                named.insert(interp);
            }
        }
    }
}

/// The entries of `dir` (not symlinks: following one needs no right, and what it reaches is
/// judged by its own place), sorted, each with whether it is a directory.
fn entries(dir: &Path) -> Result<Vec<(PathBuf, bool)>, LandlockError> {
    let list_error = |source| LandlockError::ListDir {
        dir: dir.to_owned(),
        source,
    };
    let mut children = Vec::new();
    for entry in fs::read_dir(dir).map_err(list_error)? {
        let entry = entry.map_err(list_error)?;
        let kind = entry.file_type().map_err(list_error)?;
        if !kind.is_symlink() {
            children.push((entry.path(), kind.is_dir()));
        }
    }
    children.sort();
    Ok(children)
}

/// Resolves a denied path. Symlinks on the way are followed (denying what the path reaches
/// denies at least what it names), and a path that does not exist yet is resolved as far as it
/// exists: its directory is still expanded, so whatever is created there later gets no rule.
fn resolve_deny(entry: &str) -> Result<Deny, LandlockError> {
    let prefix = entry.ends_with('/');
    let path =
        resolve_existing_part(&rule_path(entry)).map_err(|source| LandlockError::Resolve {
            path: entry.to_owned(),
            source,
        })?;
    let is_dir = fs::symlink_metadata(&path).is_ok_and(|m| m.is_dir());
    Ok(Deny {
        path,
        subtree: prefix || !is_dir,
        dir_like: prefix || is_dir,
    })
}

/// `canonicalize`, except that missing trailing components are kept as written.
fn resolve_existing_part(path: &Path) -> std::io::Result<PathBuf> {
    match fs::canonicalize(path) {
        Ok(resolved) => Ok(resolved),
        Err(e) if is_missing(&e) => match (path.parent(), path.file_name()) {
            (Some(parent), Some(name)) => Ok(resolve_existing_part(parent)?.join(name)),
            _ => Err(e),
        },
        Err(e) => Err(e),
    }
}

/// The path of a rule, without its trailing `/` (except for `/` itself).
fn rule_path(entry: &str) -> PathBuf {
    let trimmed = entry.trim_end_matches('/');
    PathBuf::from(if trimmed.is_empty() { "/" } else { trimmed })
}

fn is_missing(e: &std::io::Error) -> bool {
    matches!(e.kind(), ErrorKind::NotFound | ErrorKind::NotADirectory)
}
