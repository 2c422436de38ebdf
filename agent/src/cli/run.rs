//! `corral run`: get this process confined, then become the command.

use std::{ffi::OsString, os::unix::process::CommandExt, path::Path, process::Command};

use super::client::{self, ClientError};
use crate::{
    daemon::protocol::{Request, Response},
    landlock::{self, LandlockError},
};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the daemon refused to confine this process with task `{task}`: {message}")]
    Refused { task: String, message: String },
    #[error("unexpected answer from the daemon: {answer}")]
    Unexpected { answer: String },
    #[error("cannot confine this process with Landlock for task `{task}`: {source}")]
    Landlock { task: String, source: LandlockError },
    #[error("cannot execute {}: {source}", command.to_string_lossy())]
    Exec {
        command: OsString,
        source: std::io::Error,
    },
}

impl RunError {
    /// 69 when the daemon cannot be reached, 77 when it refuses or Landlock cannot be applied,
    /// 126 when CMD cannot be run.
    #[must_use]
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::Client(ClientError::Unreachable { .. }) => 69,
            Self::Client(_)
            | Self::Refused { .. }
            | Self::Unexpected { .. }
            | Self::Landlock { .. } => 77,
            Self::Exec { .. } => 126,
        }
    }
}

/// Asks the daemon to tag this process with `task` and, once acknowledged (and, when the daemon
/// says so, once Landlock restricts this process), execs `command`. Returns only on failure; CMD
/// never starts unconfined.
/// The instance's UUID and task are exported to CMD as `CORRAL_INSTANCE` and `CORRAL_TASK`.
#[must_use]
pub fn run(
    socket: &Path,
    task: &str,
    accept_unenforced: bool,
    ttl: Option<std::time::Duration>,
    command: &[OsString],
) -> RunError {
    let response = match client::call(
        socket,
        &Request::Tag {
            task: task.to_owned(),
            accept_unenforced,
            ttl_secs: ttl.map(|t| t.as_secs().max(1)),
        },
    ) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    let (landlock_spec, instance) = match response {
        Response::Tagged {
            pid,
            landlock,
            instance,
            ..
        } if pid == std::process::id() => (landlock, instance),
        Response::Refused { message, .. } => {
            return RunError::Refused {
                task: task.to_owned(),
                message,
            };
        }
        other => {
            return RunError::Unexpected {
                answer: format!("{other:?}"),
            };
        }
    };
    if let Some(spec) = landlock_spec {
        match landlock::apply(&spec) {
            Ok(applied) if !applied.not_enforced.is_empty() => eprintln!(
                "corral: warning: this kernel's Landlock (ABI {}) cannot restrict: {}",
                applied.abi,
                applied.not_enforced.join(", ")
            ),
            Ok(_) => {}
            Err(source) => {
                return RunError::Landlock {
                    task: task.to_owned(),
                    source,
                };
            }
        }
    }
    let Some((program, args)) = command.split_first() else {
        return RunError::Exec {
            command: OsString::new(),
            source: std::io::Error::other("no command given"),
        };
    };
    let source = Command::new(program)
        .args(args)
        .env("CORRAL_TASK", task)
        .env("CORRAL_INSTANCE", instance)
        .exec();
    RunError::Exec {
        command: program.clone(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use std::{
        io::{BufRead, BufReader, Write},
        os::unix::net::UnixListener,
    };

    use super::*;
    use crate::landlock::LandlockSpec;

    #[test]
    fn a_landlock_spec_that_cannot_be_applied_refuses_with_77_before_the_command() {
        let dir = std::env::temp_dir().join(format!("corral-run-landlock-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir)
            .unwrap_or_else(|e| panic!("expected to create {}: {e}", dir.display()));
        // A symlink to itself: resolving the rule path fails (ELOOP) before anything is applied.
        let looped = dir.join("loop");
        std::os::unix::fs::symlink(&looped, &looped)
            .unwrap_or_else(|e| panic!("expected to create {}: {e}", looped.display()));
        let socket = dir.join("corral.sock");
        let listener = UnixListener::bind(&socket)
            .unwrap_or_else(|e| panic!("expected to listen on {}: {e}", socket.display()));
        let answer = Response::Tagged {
            task: "t".to_owned(),
            task_id: 1,
            pid: std::process::id(),
            instance: "00000000-0000-8000-8000-000000000000".to_owned(),
            landlock: Some(LandlockSpec {
                task: "t".to_owned(),
                exec: Vec::new(),
                read: vec![format!("{}/", looped.display())],
                write: Vec::new(),
                deny: Vec::new(),
            }),
        };
        let daemon = std::thread::spawn(move || {
            let (stream, _) = listener
                .accept()
                .unwrap_or_else(|e| panic!("expected corral run to connect: {e}"));
            let mut request = String::new();
            let _ = BufReader::new(&stream).read_line(&mut request);
            let mut reply = serde_json::to_vec(&answer)
                .unwrap_or_else(|e| panic!("expected to serialize the answer: {e}"));
            reply.push(b'\n');
            let _ = (&stream).write_all(&reply);
        });
        let marker = dir.join("ran");
        let err = run(
            &socket,
            "t",
            false,
            None,
            &["/usr/bin/touch".into(), marker.clone().into_os_string()],
        );
        let _ = daemon.join();
        let message = err.to_string();
        let code = err.exit_code();
        let _ = std::fs::remove_dir_all(&dir);
        assert!(
            matches!(err, RunError::Landlock { .. }) && code == 77,
            "expected a Landlock refusal with exit 77, got {err:?} (exit {code})"
        );
        assert!(
            message.contains(&looped.display().to_string()) && !message.contains('\n'),
            "expected one line naming {}, got {message:?}",
            looped.display()
        );
        assert!(!marker.exists(), "expected the command not to have run");
    }
}
