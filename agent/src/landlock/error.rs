//! What can go wrong while building and applying a Landlock ruleset. Each error names the path
//! involved; any of them means the process was NOT restricted and the command must not run.

use std::path::PathBuf;

#[derive(Debug, thiserror::Error)]
pub enum LandlockError {
    #[error("Landlock is not available on this kernel: {reason}")]
    Unsupported { reason: &'static str },
    #[error("cannot resolve the Landlock rule path {path}: {source}")]
    Resolve {
        path: String,
        source: std::io::Error,
    },
    #[error("cannot list {} to leave the denied paths beneath it out of the Landlock rules: {source}", dir.display())]
    ListDir {
        dir: PathBuf,
        source: std::io::Error,
    },
    #[error(
        "leaving the denied paths out of {} needs more than {max} Landlock rules (one per entry beside each denied path): deny fewer paths there or allow narrower directories",
        dir.display()
    )]
    TooManyRules { dir: PathBuf, max: usize },
    #[error("cannot open {} for a Landlock rule: {source}", path.display())]
    OpenRule {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("cannot create the Landlock ruleset (ABI {abi}): {source}")]
    CreateRuleset {
        abi: u32,
        source: landlock::RulesetError,
    },
    #[error("cannot add the Landlock rule for {}: {source}", path.display())]
    AddRule {
        path: PathBuf,
        source: landlock::RulesetError,
    },
    #[error("cannot set no_new_privs, which Landlock requires: {source}")]
    NoNewPrivs { source: std::io::Error },
    #[error("cannot restrict this process with the Landlock ruleset: {source}")]
    Restrict { source: landlock::RulesetError },
    #[error("the kernel did not fully enforce the Landlock ruleset ({status})")]
    NotEnforced { status: String },
}
