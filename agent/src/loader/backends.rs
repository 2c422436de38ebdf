//! Which kernel mechanism enforces each operation on this host.

use agent_common::{Backend, Op};
use serde::Serialize;

/// The enforcing backend of each operation; `None` where nothing on this host can enforce it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Backends {
    pub exec: Option<Backend>,
    pub open: Option<Backend>,
    /// `connect` of inet TCP and UDP sockets.
    pub connect: Option<Backend>,
    /// `connect` of `AF_UNIX` sockets: only the LSM hook sees their addresses.
    pub connect_unix: Option<Backend>,
    pub sendmsg: Option<Backend>,
    /// exec and open of processes that joined their task through a selector (no `corral run`,
    /// so no Landlock): BPF LSM, else the kill observer.
    pub selected_exec_open: Option<Backend>,
}

/// What the kernel was found to run, from which `Backends` follow.
#[expect(
    clippy::struct_excessive_bools,
    reason = "one independent yes/no per kernel mechanism"
)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Capabilities {
    pub lsm: bool,
    pub tp_btf: bool,
    pub sock_addr: bool,
    pub landlock: bool,
}

impl Backends {
    /// The strongest backend per operation. Process tagging (and so every eBPF backend) needs
    /// BTF tracepoints: without them a confined process's children would escape, so no eBPF
    /// backend is claimed. Landlock needs no tagging: its restrictions are inherited.
    #[must_use]
    pub fn choose(caps: Capabilities) -> Self {
        let lsm = caps.lsm && caps.tp_btf;
        let sock_addr = caps.sock_addr && caps.tp_btf;
        let file = if lsm {
            Some(Backend::Lsm)
        } else if caps.landlock {
            Some(Backend::Landlock)
        } else {
            None
        };
        Self {
            exec: file,
            open: file,
            // The cgroup programs judge TCP and UDP connects where they run, LSM or not: they see
            // the destination the connect really goes to (the LSM hook then judges only the
            // inet connects of other protocols, and unix ones).
            connect: if sock_addr {
                Some(Backend::CgroupSockAddr)
            } else if lsm {
                Some(Backend::Lsm)
            } else {
                None
            },
            connect_unix: lsm.then_some(Backend::Lsm),
            sendmsg: sock_addr.then_some(Backend::CgroupSockAddr),
            selected_exec_open: if lsm {
                Some(Backend::Lsm)
            } else if caps.tp_btf {
                Some(Backend::Kill)
            } else {
                None
            },
        }
    }

    /// `(operation name, backend)` in display order. `connect_unix` is `connect` of `AF_UNIX`
    /// sockets, listed apart because fewer backends see it.
    #[must_use]
    pub fn by_op(&self) -> [(&'static str, Option<Backend>); 6] {
        [
            (Op::Exec.as_str(), self.exec),
            (Op::Open.as_str(), self.open),
            (Op::Connect.as_str(), self.connect),
            ("connect_unix", self.connect_unix),
            (Op::Sendmsg.as_str(), self.sendmsg),
            ("selected_exec_open", self.selected_exec_open),
        ]
    }

    /// Operations nothing on this host enforces.
    #[must_use]
    pub fn unenforced(&self) -> Vec<&'static str> {
        self.by_op()
            .into_iter()
            .filter(|(_, b)| b.is_none())
            .map(|(op, _)| op)
            .collect()
    }

    /// Whether `corral run` must apply Landlock before exec.
    #[must_use]
    pub fn needs_landlock(&self) -> bool {
        self.exec == Some(Backend::Landlock) || self.open == Some(Backend::Landlock)
    }

    /// `{"exec":"lsm",...}` with `null` for unenforced operations.
    #[must_use]
    pub fn to_json(&self) -> serde_json::Value {
        let map: serde_json::Map<String, serde_json::Value> = self
            .by_op()
            .into_iter()
            .map(|(op, b)| {
                (
                    op.to_owned(),
                    b.map_or(serde_json::Value::Null, |b| b.as_str().into()),
                )
            })
            .collect();
        serde_json::Value::Object(map)
    }
}

impl Serialize for Backends {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        self.to_json().serialize(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const ALL: Capabilities = Capabilities {
        lsm: true,
        tp_btf: true,
        sock_addr: true,
        landlock: true,
    };

    #[test]
    fn lsm_host_uses_lsm_and_sock_addr_for_inet_connects_and_sendmsg() {
        let b = Backends::choose(ALL);
        assert_eq!(b.exec, Some(Backend::Lsm));
        assert_eq!(b.open, Some(Backend::Lsm));
        assert_eq!(
            b.connect,
            Some(Backend::CgroupSockAddr),
            "TCP and UDP connects are judged once, by the program that sees the final destination"
        );
        assert_eq!(b.connect_unix, Some(Backend::Lsm));
        assert_eq!(b.sendmsg, Some(Backend::CgroupSockAddr));
        assert_eq!(b.selected_exec_open, Some(Backend::Lsm));
        assert!(b.unenforced().is_empty());
        assert!(!b.needs_landlock());
    }

    #[test]
    fn lsm_without_sock_addr_judges_inet_connects_itself() {
        let b = Backends::choose(Capabilities {
            sock_addr: false,
            ..ALL
        });
        assert_eq!(b.connect, Some(Backend::Lsm));
        assert_eq!(b.sendmsg, None);
    }

    #[test]
    fn host_refusing_lsm_falls_back_to_landlock_and_sock_addr() {
        let b = Backends::choose(Capabilities { lsm: false, ..ALL });
        assert_eq!(b.exec, Some(Backend::Landlock));
        assert_eq!(b.open, Some(Backend::Landlock));
        assert_eq!(b.connect, Some(Backend::CgroupSockAddr));
        assert_eq!(b.sendmsg, Some(Backend::CgroupSockAddr));
        assert_eq!(
            b.connect_unix, None,
            "cgroup sock_addr programs do not see unix addresses"
        );
        assert_eq!(b.unenforced(), vec!["connect_unix"]);
        assert_eq!(
            b.selected_exec_open,
            Some(Backend::Kill),
            "processes joined by a selector have no Landlock: killed after the fact"
        );
        assert!(b.needs_landlock());
    }

    #[test]
    fn without_tagging_no_ebpf_backend_is_claimed() {
        let b = Backends::choose(Capabilities {
            tp_btf: false,
            ..ALL
        });
        assert_eq!(
            b.connect, None,
            "children would escape an untagged connect hook"
        );
        assert_eq!(b.sendmsg, None);
        assert_eq!(
            b.exec,
            Some(Backend::Landlock),
            "Landlock is inherited without tags"
        );
        assert_eq!(
            b.unenforced(),
            vec!["connect", "connect_unix", "sendmsg", "selected_exec_open"]
        );
    }

    #[test]
    fn nothing_available_enforces_nothing() {
        let b = Backends::choose(Capabilities::default());
        assert_eq!(b.unenforced().len(), 6);
        assert_eq!(
            b.to_json(),
            serde_json::json!({"exec": null, "open": null, "connect": null,
                               "connect_unix": null, "sendmsg": null,
                               "selected_exec_open": null})
        );
    }
}
