//! `corral policy mode TASK enforce|audit`: switches a running task's mode in the kernel.

use std::path::Path;

use super::client::{self, ClientError};
use crate::daemon::protocol::{ModeName, Refusal, Request, Response};

/// Why the mode was not changed.
#[derive(Debug, thiserror::Error)]
pub enum ModeError {
    #[error(transparent)]
    Client(#[from] ClientError),
    #[error("the daemon refused: {message}")]
    Refused { refusal: Refusal, message: String },
    #[error("unexpected answer from the daemon: {answer}")]
    Unexpected { answer: String },
}

impl ModeError {
    /// 69 when the daemon is unreachable, 77 when it refused.
    #[must_use]
    pub const fn exit_code(&self) -> u8 {
        match self {
            Self::Client(_) | Self::Unexpected { .. } => 69,
            Self::Refused { .. } => 77,
        }
    }
}

/// Asks the daemon at `socket` to switch `task` to `mode`; returns the confirmation line.
pub fn set(socket: &Path, task: &str, mode: ModeName) -> Result<String, ModeError> {
    let request = Request::SetMode {
        task: task.to_owned(),
        mode,
    };
    match client::call(socket, &request)? {
        Response::ModeSet { task, mode } => Ok(format!("task {task} is now in {mode} mode")),
        Response::Refused { refusal, message } => Err(ModeError::Refused { refusal, message }),
        other => Err(ModeError::Unexpected {
            answer: format!("{other:?}"),
        }),
    }
}
