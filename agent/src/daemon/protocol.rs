//! The control socket's protocol: one JSON request line, one JSON response line.

use serde::{Deserialize, Serialize};

/// Default path of the control socket.
pub const DEFAULT_SOCKET: &str = "/run/corral/corral.sock";

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(tag = "op", rename_all = "snake_case", deny_unknown_fields)]
pub enum Request {
    /// Confine the calling process (identified by the socket's peer credentials) with `task`.
    Tag {
        task: String,
        /// Confine even if this host cannot enforce some of the task's operations.
        #[serde(default)]
        accept_unenforced: bool,
        /// Seconds after which the instance's processes are denied everything.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        ttl_secs: Option<u64>,
    },
    /// Report hooks, tasks and counters.
    Status,
    /// Stream events: the recent ones the daemon kept, then (with `follow`) each new one until
    /// the client hangs up. After the `Subscribed` response line every line is an event, or
    /// `{"dropped":N}` when N events were dropped at that point because the client was slow.
    Subscribe {
        /// Only events of this task.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<String>,
        /// Only events of these operations (`exec`, `open`, `connect`, `sendmsg`, ...); empty:
        /// all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        ops: Vec<String>,
        /// Only events with these decisions (`denied`, `audited`, `allowed`); empty: all.
        #[serde(default, skip_serializing_if = "Vec::is_empty")]
        decisions: Vec<String>,
        /// Keep streaming new events after the recent ones.
        #[serde(default)]
        follow: bool,
    },
    /// Switch a task between `enforce` and `audit` for its running processes (root only, from
    /// outside any task).
    SetMode { task: String, mode: ModeName },
}

/// A task mode on the wire.
#[derive(Debug, Clone, Copy, Serialize, Deserialize, PartialEq, Eq, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum ModeName {
    Enforce,
    Audit,
}

impl From<ModeName> for agent_common::Mode {
    fn from(m: ModeName) -> Self {
        match m {
            ModeName::Enforce => Self::Enforce,
            ModeName::Audit => Self::Audit,
        }
    }
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
pub enum Refusal {
    /// No task of that name is loaded.
    UnknownTask,
    /// The caller is already confined; it may not move itself to another task.
    AlreadyTagged,
    /// The request could not be parsed or the peer could not be identified.
    BadRequest,
    /// This host cannot enforce some of the task's operations and the caller did not accept it.
    Unenforceable,
    /// The daemon failed to carry it out.
    Internal,
    /// The caller may not ask for this (not root, or confined).
    NotPermitted,
}

#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "result", rename_all = "snake_case")]
pub enum Response {
    Tagged {
        task: String,
        task_id: u32,
        pid: u32,
        /// The UUID of the task instance this `corral run` created (it names it in events).
        #[serde(default)]
        instance: String,
        /// Rules `corral run` must apply to itself with Landlock before it execs the command,
        /// when Landlock (not BPF LSM) enforces exec and open on this host.
        #[serde(default, skip_serializing_if = "Option::is_none")]
        landlock: Option<crate::landlock::LandlockSpec>,
    },
    Status {
        status: serde_json::Value,
    },
    ModeSet {
        task: String,
        mode: String,
    },
    Refused {
        refusal: Refusal,
        message: String,
    },
    /// Accepted a `Subscribe`: `backlog` recent events follow, then live ones if asked.
    Subscribed {
        backlog: usize,
    },
}
