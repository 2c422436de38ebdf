//! `corral run`: get this process confined, then become the command.

use std::{ffi::OsString, os::unix::process::CommandExt, path::Path, process::Command};

use super::client::{self, ClientError};
use crate::daemon::protocol::{Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum RunError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the daemon refused to confine this process with task `{task}`: {message}")]
    Refused { task: String, message: String },
    #[error("unexpected answer from the daemon: {answer}")]
    Unexpected { answer: String },
    #[error("cannot execute {}: {source}", command.to_string_lossy())]
    Exec {
        command: OsString,
        source: std::io::Error,
    },
}

impl RunError {
    /// 69 when the daemon cannot be reached, 77 when it refuses, 126 when CMD cannot be run.
    #[must_use]
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::Client(ClientError::Unreachable { .. }) => 69,
            Self::Client(_) | Self::Refused { .. } | Self::Unexpected { .. } => 77,
            Self::Exec { .. } => 126,
        }
    }
}

/// Asks the daemon to tag this process with `task` and, once acknowledged, execs `command`.
/// Returns only on failure; CMD never starts unconfined.
#[must_use]
pub fn run(socket: &Path, task: &str, accept_unenforced: bool, command: &[OsString]) -> RunError {
    let response = match client::call(
        socket,
        &Request::Tag {
            task: task.to_owned(),
            accept_unenforced,
        },
    ) {
        Ok(r) => r,
        Err(e) => return e.into(),
    };
    match response {
        Response::Tagged { pid, .. } if pid == std::process::id() => {}
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
    }
    let Some((program, args)) = command.split_first() else {
        return RunError::Exec {
            command: OsString::new(),
            source: std::io::Error::other("no command given"),
        };
    };
    let source = Command::new(program).args(args).exec();
    RunError::Exec {
        command: program.clone(),
        source,
    }
}
