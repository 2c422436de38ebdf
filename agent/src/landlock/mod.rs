//! Landlock confinement for exec and open, where the kernel refuses BPF LSM programs.
//!
//! `corral run` receives a [`LandlockSpec`] (the task's file and exec rules, as written in the
//! policy) with the daemon's acknowledgement and calls [`apply`] on itself before it execs the
//! command: the command and everything it starts are then confined by the kernel's Landlock LSM,
//! which no process can leave or loosen.
//!
//! How the policy maps onto Landlock (see `rights` for the exact rights):
//! - `exec.allow` grants `execute` and `read_file` (the kernel reads a program to load it).
//!   The ELF interpreter of each program `exec.allow` reaches is granted the same, if the policy
//!   lets the task read it: the kernel opens the interpreter for execution as well.
//! - `files.read` grants `read_file` and `read_dir`; `files.write` grants writing and truncating
//!   files and, beneath a directory, creating, removing, renaming and linking entries. Both also
//!   grant `ioctl_dev`, since Corral does not judge ioctls.
//! - `files.deny`: Landlock only allows, so a denied path inside an allowed directory is left out
//!   by granting the directory's other entries one by one (see `plan`).
//! - The ruleset handles every filesystem right Corral knows that the running ABI has; what an
//!   older ABI lacks is reported in [`Applied::not_enforced`], never dropped silently.
//! - `no_new_privs` is always set (Landlock requires it of unprivileged callers, and set-uid
//!   programs must not escape).
//!
//! Limits, stated plainly:
//! - **Rules are fixed at launch.** They are attached to the files that exist when `corral run`
//!   starts. A path of the policy created later gets no rule (refused). Inside a directory that
//!   was expanded around a denied path, entries created later get no rule either, and the
//!   directory itself gets no `write` rights (nothing can be created or removed directly in it).
//! - A directory that holds a denied directory (at any depth) cannot be listed: Landlock's
//!   `read_dir` on it would cover the denied directory too.
//! - Rule paths that go through a symlink are skipped (rules name resolved paths); exact rules
//!   on directories are skipped (Landlock cannot cover a directory but not its entries).
//! - `exec.allow` also lets the task read the programs it lists, and granting `execute` on the
//!   ELF interpreter lets the task start it directly (`ld.so PROGRAM` runs any readable program).
//! - At most [`MAX_RULES`] rules: a spec that needs more fails, naming the directory.
//! - Network (`network.*`) is not Landlock's job here: the connect backend enforces it.

mod elf_interp;
mod error;
mod plan;
mod rights;

#[cfg(test)]
mod tests;

use std::os::fd::{FromRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::PathBuf;

use landlock::{
    CompatLevel, Compatible, PathBeneath, RestrictionStatus, Ruleset, RulesetAttr,
    RulesetCreatedAttr, RulesetStatus,
};
use serde::{Deserialize, Serialize};

pub(crate) use elf_interp::interpreter_of;
pub use error::LandlockError;
pub use plan::{MAX_RULES, SkipReason, Skipped};

use crate::policy::{PathRule, TaskPolicy};

/// A task's file and exec rules for Landlock, as the policy writes them: a trailing `/` means the
/// directory and everything beneath it, any other path exactly that file.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct LandlockSpec {
    /// The task these rules belong to (for messages).
    pub task: String,
    /// `spec.exec.allow`.
    pub exec: Vec<String>,
    /// `spec.files.read`.
    pub read: Vec<String>,
    /// `spec.files.write`.
    pub write: Vec<String>,
    /// `spec.files.deny`.
    pub deny: Vec<String>,
}

/// The Landlock spec of a task policy.
#[must_use]
pub fn spec_for(policy: &TaskPolicy) -> LandlockSpec {
    let paths = |rules: &[PathRule]| rules.iter().map(|r| r.as_str().to_owned()).collect();
    LandlockSpec {
        task: policy.name.to_string(),
        exec: paths(&policy.exec),
        read: paths(&policy.read),
        write: paths(&policy.write),
        deny: paths(&policy.deny),
    }
}

/// What [`apply`] enforced.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct Applied {
    /// The kernel's Landlock ABI version.
    pub abi: u32,
    /// Filesystem rights the ruleset handles: refused unless a rule grants them.
    pub enforced: Vec<&'static str>,
    /// Rights Corral handles on newer kernels that this ABI lacks: not restricted here.
    pub not_enforced: Vec<&'static str>,
    /// Rules added.
    pub rules: usize,
    /// ELF interpreters granted `execute` so that dynamically linked programs can start.
    pub interpreters: Vec<PathBuf>,
    /// Policy paths that got no rule, and why.
    pub skipped: Vec<Skipped>,
}

/// The running kernel's Landlock ABI version; `None` if Landlock is not built in or not enabled.
#[must_use]
pub fn abi_version() -> Option<u32> {
    landlock_abi().ok()
}

/// The ABI version, or why there is none.
fn landlock_abi() -> Result<u32, LandlockError> {
    /// `LANDLOCK_CREATE_RULESET_VERSION`.
    const VERSION: libc::c_uint = 1;
    // SAFETY: with this flag the kernel reads neither the (null) attribute pointer nor a size.
    let version = unsafe {
        libc::syscall(
            libc::SYS_landlock_create_ruleset,
            std::ptr::null::<libc::c_void>(),
            0usize,
            VERSION,
        )
    };
    if version > 0 {
        return u32::try_from(version).map_err(|_| LandlockError::Unsupported {
            reason: "the kernel reported an invalid ABI version",
        });
    }
    let reason = match std::io::Error::last_os_error().raw_os_error() {
        Some(libc::EOPNOTSUPP) => {
            "it is built in but not enabled (add `landlock` to the `lsm=` boot parameter)"
        }
        Some(libc::ENOSYS) => "it is not built into this kernel (CONFIG_SECURITY_LANDLOCK)",
        _ => "the landlock_create_ruleset system call failed",
    };
    Err(LandlockError::Unsupported { reason })
}

/// Restricts the calling process (and everything it later executes or starts) to `spec`.
/// Fails, leaving the process unrestricted, if the kernel has no Landlock or any rule cannot be
/// built; the caller must then not run the confined command.
///
/// Call it from a single-threaded process (as `corral run` is): Landlock restricts the calling
/// thread, which then execs.
pub fn apply(spec: &LandlockSpec) -> Result<Applied, LandlockError> {
    let abi = landlock_abi()?;
    let handled = rights::handled_at(abi);
    let plan = plan::plan(spec, MAX_RULES)?;
    set_no_new_privs()?;
    let create_error = |source| LandlockError::CreateRuleset { abi, source };
    let mut ruleset = Ruleset::default()
        // Everything asked for below is supported by this ABI: anything else is an error.
        .set_compatibility(CompatLevel::HardRequirement)
        .handle_access(handled)
        .map_err(create_error)?
        .create()
        .map_err(create_error)?;
    let mut rules = 0;
    for rule in &plan.rules {
        let access = rule.access & handled;
        if access.is_empty() {
            continue;
        }
        let fd = open_path(&rule.path)?;
        ruleset = ruleset
            .add_rule(PathBeneath::new(fd, access))
            .map_err(|source| LandlockError::AddRule {
                path: rule.path.clone(),
                source,
            })?;
        rules += 1;
    }
    let status = ruleset
        .restrict_self()
        .map_err(|source| LandlockError::Restrict { source })?;
    check_enforced(&status)?;
    Ok(Applied {
        abi,
        enforced: rights::names(handled),
        not_enforced: rights::names(rights::handled_at(u32::MAX) & !handled),
        rules,
        interpreters: plan.interpreters,
        skipped: plan.skipped,
    })
}

fn check_enforced(status: &RestrictionStatus) -> Result<(), LandlockError> {
    if status.ruleset == RulesetStatus::FullyEnforced && status.no_new_privs {
        Ok(())
    } else {
        Err(LandlockError::NotEnforced {
            status: format!(
                "ruleset {:?}, no_new_privs {}",
                status.ruleset, status.no_new_privs
            ),
        })
    }
}

fn set_no_new_privs() -> Result<(), LandlockError> {
    // SAFETY: plain prctl with integer arguments.
    let done = unsafe { libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) };
    if done == 0 {
        Ok(())
    } else {
        Err(LandlockError::NoNewPrivs {
            source: std::io::Error::last_os_error(),
        })
    }
}

/// An `O_PATH` descriptor of `path` itself (a planned rule path is never a symlink).
fn open_path(path: &std::path::Path) -> Result<OwnedFd, LandlockError> {
    let open_error = |source| LandlockError::OpenRule {
        path: path.to_owned(),
        source,
    };
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|e| open_error(std::io::Error::other(e)))?;
    // SAFETY: `c_path` is NUL-terminated; these flags need no mode argument.
    let fd = unsafe {
        libc::open(
            c_path.as_ptr(),
            libc::O_PATH | libc::O_NOFOLLOW | libc::O_CLOEXEC,
        )
    };
    if fd < 0 {
        return Err(open_error(std::io::Error::last_os_error()));
    }
    // SAFETY: `fd` was just opened and is owned by nobody else.
    Ok(unsafe { OwnedFd::from_raw_fd(fd) })
}
