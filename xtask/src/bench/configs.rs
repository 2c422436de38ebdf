//! The configurations of issue 7 and the task policies the daemon gets for them.
use std::fmt::Write as _;
use std::fs;
use std::path::Path;

use anyhow::{Context as _, Result};

/// One column of the tables.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum Config {
    /// No agent.
    C0,
    /// Programs that return at once on every hook the daemon uses (the floor).
    C1,
    /// The daemon running, caller untagged.
    C2,
    /// Caller tagged, every operation allowed.
    C3,
    /// Caller tagged, audit mode: every operation would be refused (one event each).
    C4,
    /// Caller tagged, every operation refused.
    C5,
    /// A Landlock ruleset with the paths of C3's policy, no daemon.
    R1,
    /// A one-rule seccomp filter, no daemon.
    R2,
}

/// The order of one round: the configurations without a daemon, then those with one (started
/// once per round, so every round sees a fresh daemon and the same order).
pub const ROUND: [Config; 8] = [
    Config::C0,
    Config::C1,
    Config::R1,
    Config::R2,
    Config::C2,
    Config::C3,
    Config::C4,
    Config::C5,
];

/// Task names in the generated policies.
pub const TASK_ALLOW: &str = "bench-allow";
pub const TASK_AUDIT: &str = "bench-audit";
pub const TASK_DENY: &str = "bench-deny";
pub const TASK_MACRO: &str = "bench-macro";

impl Config {
    pub fn label(self) -> &'static str {
        match self {
            Self::C0 => "C0",
            Self::C1 => "C1",
            Self::C2 => "C2",
            Self::C3 => "C3",
            Self::C4 => "C4",
            Self::C5 => "C5",
            Self::R1 => "R1",
            Self::R2 => "R2",
        }
    }

    pub fn describe(self) -> &'static str {
        match self {
            Self::C0 => "no agent",
            Self::C1 => "null programs on every daemon hook (return at once)",
            Self::C2 => "daemon running, caller untagged",
            Self::C3 => "caller tagged (`bench-allow`), operation allowed",
            Self::C4 => "caller tagged (`bench-audit`, audit mode), operation audited",
            Self::C5 => "caller tagged (`bench-deny`), operation refused",
            Self::R1 => "Landlock ruleset with `bench-allow`'s paths, no daemon",
            Self::R2 => "one-rule seccomp filter, no daemon",
        }
    }

    pub fn needs_daemon(self) -> bool {
        matches!(self, Self::C2 | Self::C3 | Self::C4 | Self::C5)
    }

    /// The task `corral run` tags the loops with.
    pub fn task(self) -> Option<&'static str> {
        match self {
            Self::C3 => Some(TASK_ALLOW),
            Self::C4 => Some(TASK_AUDIT),
            Self::C5 => Some(TASK_DENY),
            _ => None,
        }
    }
}

/// What the policies name: the loops binary, the tree it opens, the macro workload's directory.
pub struct PolicyPaths<'a> {
    pub bench: &'a Path,
    pub tree: &'a Path,
    pub macro_dir: &'a Path,
}

/// Libraries, loader, configuration and /proc: what any dynamically linked program reads.
const SYSTEM_READ: &str = "/usr/, /lib/, /lib64/, /etc/, /proc/";

/// Writes the four task policies into `dir`.
pub fn write_policies(dir: &Path, paths: &PolicyPaths) -> Result<()> {
    fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    let bench = paths.bench.display();
    let tree = paths.tree.display();
    let allow = policy(
        TASK_ALLOW,
        "enforce",
        &format!("{bench}, {tree}/true"),
        &format!("{tree}/, {SYSTEM_READ}"),
        "",
        true,
    );
    let refuse = |name, mode| policy(name, mode, &bench.to_string(), SYSTEM_READ, "", false);
    let workload = paths.macro_dir.display();
    let macro_policy = policy(
        TASK_MACRO,
        "enforce",
        "/usr/bin/, /bin/, /usr/sbin/, /sbin/",
        &format!("{workload}/, {SYSTEM_READ}"),
        &format!("{workload}/"),
        false,
    );
    for (name, text) in [
        (TASK_ALLOW, allow),
        (TASK_AUDIT, refuse(TASK_AUDIT, "audit")),
        (TASK_DENY, refuse(TASK_DENY, "enforce")),
        (TASK_MACRO, macro_policy),
    ] {
        let file = dir.join(format!("{name}.yaml"));
        fs::write(&file, text).with_context(|| format!("writing {}", file.display()))?;
    }
    Ok(())
}

fn policy(name: &str, mode: &str, exec: &str, read: &str, write: &str, loopback: bool) -> String {
    let mut text = format!(
        "apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: {name}\nspec:\n  \
         mode: {mode}\n  exec:\n    allow: [{exec}]\n  files:\n    read: [{read}]\n"
    );
    if !write.is_empty() {
        let _ = writeln!(text, "    write: [{write}]");
    }
    if loopback {
        text.push_str("  network:\n    connect:\n      - cidr: 127.0.0.1/32\n");
    }
    text
}
