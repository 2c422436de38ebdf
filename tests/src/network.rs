//! Network scenarios shared by the native and VM tests: listeners and the fields of inet events.

use serde_json::{Value, json};

use crate::process::Background;

/// Loopback addresses of both families: `(address, its /32 or /128 CIDR, event family)`.
pub const LOOPBACKS: [(&str, &str, &str); 2] = [
    ("127.0.0.1", "127.0.0.1/32", "ipv4"),
    ("::1", "::1/128", "ipv6"),
];

/// Two untagged TCP listeners on `addr`: one a policy will allow, one it will not.
#[must_use]
pub fn two_listeners(addr: &str) -> (Background, Background) {
    (
        Background::probe(&["listen", "tcp", addr, "0"]),
        Background::probe(&["listen", "tcp", addr, "0"]),
    )
}

/// What an inet event is expected to say.
pub struct InetEvent<'a> {
    pub task: &'a str,
    /// `connect` or `sendmsg`.
    pub op: &'a str,
    /// `lsm` or `cgroup_sock_addr`.
    pub backend: &'a str,
    pub addr: &'a str,
    pub port: u16,
    /// `ipv4` or `ipv6`.
    pub family: &'a str,
    /// `tcp` or `udp`.
    pub proto: &'a str,
}

impl InetEvent<'_> {
    /// The fields of the `denied` (enforce mode, `not_allowed`) event, for `events::has`.
    #[must_use]
    pub fn denied(&self) -> Vec<(&'static str, Value)> {
        let mut f = self.target();
        f.extend([
            ("/decision", json!("denied")),
            ("/mode", json!("enforce")),
            ("/reason", json!("not_allowed")),
        ]);
        f
    }

    /// The fields of any event about this operation and destination, whatever the backend
    /// and decision: to count every copy of it.
    #[must_use]
    pub fn any_backend(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("/op", json!(self.op)),
            ("/task", json!(self.task)),
            ("/target/addr", json!(self.addr)),
            ("/target/port", json!(self.port)),
        ]
    }

    /// Task, op, backend and the whole target.
    #[must_use]
    pub fn target(&self) -> Vec<(&'static str, Value)> {
        vec![
            ("/op", json!(self.op)),
            ("/backend", json!(self.backend)),
            ("/task", json!(self.task)),
            ("/target/addr", json!(self.addr)),
            ("/target/port", json!(self.port)),
            ("/target/family", json!(self.family)),
            ("/target/proto", json!(self.proto)),
        ]
    }
}

/// `ev`'s `process.pid` (0 when absent).
#[must_use]
pub fn event_pid(ev: &Value) -> u64 {
    ev.pointer("/process/pid")
        .and_then(Value::as_u64)
        .unwrap_or(0)
}
