//! `spec.privileges`: operations the kernel guards refuse to every confined process unless its
//! policy names them. A closed set: an unknown name is an error, and the operations that would let
//! a confined process disable Corral itself can never be named.

use std::fmt;

use agent_common::{
    PRIV_IO_URING, PRIV_NETLINK, PRIV_OTHER_SOCKETS, PRIV_PACKET_SOCKETS, PRIV_PERF_EVENTS,
    PRIV_RAW_SOCKETS, PRIV_USERFAULTFD,
};

use super::scalar::{ScalarRule, deserialize_as_scalar};

/// One operation a policy may re-allow.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum Privilege {
    /// `raw_sockets`: `SOCK_RAW` and ICMP datagram sockets of `AF_INET`/`AF_INET6` (ping,
    /// traceroute).
    RawSockets,
    /// `packet_sockets`: `AF_PACKET` sockets (sniffing and forging link-layer frames).
    PacketSockets,
    /// `netlink`: `AF_NETLINK` sockets (routes, addresses, firewall, audit).
    Netlink,
    /// `perf_events`: `perf_event_open` (profilers).
    PerfEvents,
    /// `userfaultfd`: `userfaultfd(2)` and `/dev/userfaultfd` (live migration, some GCs).
    Userfaultfd,
    /// `other_sockets`: sockets whose traffic no Corral hook judges: SCTP, DCCP and other inet
    /// protocols but TCP, MPTCP, UDP and UDP-Lite, and every family but unix, inet, inet6,
    /// packet and netlink (vsock, TIPC, RDS, XDP, Bluetooth, CAN, ...); without BPF LSM, UDP-Lite
    /// too (its connects run no cgroup connect program). Granting it lets the task send data
    /// where its `connect` rules do not reach.
    OtherSockets,
    /// `io_uring`: `io_uring_setup` without BPF LSM, where Corral's fallback backends do not see
    /// the operations a ring runs (Landlock still judges its opens and the cgroup programs its
    /// TCP and UDP connects; its other sockets and, for processes without Landlock, its opens go
    /// unjudged). With BPF LSM every ring operation is judged and rings need no privilege.
    IoUring,
}

/// Every privilege, with its policy name.
pub const PRIVILEGES: [(Privilege, &str); 7] = [
    (Privilege::RawSockets, "raw_sockets"),
    (Privilege::PacketSockets, "packet_sockets"),
    (Privilege::Netlink, "netlink"),
    (Privilege::PerfEvents, "perf_events"),
    (Privilege::Userfaultfd, "userfaultfd"),
    (Privilege::OtherSockets, "other_sockets"),
    (Privilege::IoUring, "io_uring"),
];

/// Names a policy may never use, and why: each would let a confined process reach Corral's own
/// programs, maps or daemon, or the kernel under them.
const NEVER: [(&str, &str); 7] = [
    ("bpf", "bpf() reaches Corral's own maps and programs by id"),
    (
        "kernel_modules",
        "kernel code can switch off any LSM, Corral included",
    ),
    (
        "mount",
        "mounts can hide paths from the rules, and unmount or cover bpffs",
    ),
    (
        "ptrace",
        "ptrace reaches every process, the Corral daemon included",
    ),
    (
        "signal",
        "signals reach every process, the Corral daemon included",
    ),
    (
        "setns",
        "setns into another process's namespaces needs ptrace access to it, which is never granted",
    ),
    ("bpffs", "writing bpffs unpins Corral's maps and links"),
];

impl Privilege {
    /// The name used in policies.
    #[must_use]
    pub fn as_str(self) -> &'static str {
        PRIVILEGES
            .iter()
            .find(|(p, _)| *p == self)
            .map_or("?", |(_, name)| name)
    }

    /// The `PRIV_*` bit of the kernel's `PRIVILEGES` map.
    #[must_use]
    pub const fn bit(self) -> u32 {
        match self {
            Self::RawSockets => PRIV_RAW_SOCKETS,
            Self::PacketSockets => PRIV_PACKET_SOCKETS,
            Self::Netlink => PRIV_NETLINK,
            Self::PerfEvents => PRIV_PERF_EVENTS,
            Self::Userfaultfd => PRIV_USERFAULTFD,
            Self::OtherSockets => PRIV_OTHER_SOCKETS,
            Self::IoUring => PRIV_IO_URING,
        }
    }
}

impl fmt::Display for Privilege {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.as_str())
    }
}

impl ScalarRule for Privilege {
    const EXPECTING: &'static str = "a privilege: raw_sockets, packet_sockets, netlink, perf_events, userfaultfd or other_sockets";

    fn parse(text: &str) -> Result<Self, String> {
        if let Some((_, why)) = NEVER.iter().find(|(name, _)| *name == text) {
            return Err(format!(
                "privilege {text:?} can never be granted to a confined process: {why}"
            ));
        }
        PRIVILEGES
            .iter()
            .find(|(_, name)| *name == text)
            .map(|(p, _)| *p)
            .ok_or_else(|| {
                format!(
                    "unknown privilege {text:?}, expected one of: {}",
                    PRIVILEGES.map(|(_, n)| n).join(", ")
                )
            })
    }
}

deserialize_as_scalar!(Privilege);

/// The `PRIV_*` bits of a list of privileges.
#[must_use]
pub fn privilege_bits(list: &[Privilege]) -> u32 {
    list.iter().fold(0, |acc, p| acc | p.bit())
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use agent_common::{PRIV_NETLINK, PRIV_PERF_EVENTS};

    use super::Privilege;
    use crate::policy::{TaskPolicy, parse_policy, wider_than};

    fn doc(spec: &str) -> String {
        format!("apiVersion: corral.dev/v1\nkind: TaskPolicy\nmetadata:\n  name: t\nspec:\n{spec}")
    }

    fn parse(spec: &str) -> TaskPolicy {
        parse_policy(Path::new("p.yaml"), &doc(spec))
            .unwrap_or_else(|e| panic!("expected {spec:?} to parse, got: {e}"))
    }

    fn error_of(spec: &str) -> String {
        match parse_policy(Path::new("bad.yaml"), &doc(spec)) {
            Ok(p) => panic!("expected a policy error for {spec:?}, it parsed: {p:?}"),
            Err(e) => e.to_string(),
        }
    }

    #[test]
    fn privileges_parse_sorted_without_duplicates_and_compile_to_bits() {
        let p = parse("  privileges: [perf_events, netlink, perf_events]\n");
        assert_eq!(p.privileges, [Privilege::Netlink, Privilege::PerfEvents]);
        assert_eq!(
            super::privilege_bits(&p.privileges),
            PRIV_NETLINK | PRIV_PERF_EVENTS
        );
        assert!(
            parse("  mode: enforce\n").privileges.is_empty(),
            "absent: no privilege"
        );
    }

    #[test]
    fn unknown_privilege_is_an_error_at_its_position() {
        let e = error_of("  privileges: [netlink, raw_socket]\n");
        assert!(
            e.starts_with("bad.yaml:6:25: spec.privileges[1]: unknown privilege \"raw_socket\"")
                && e.contains("raw_sockets, packet_sockets"),
            "expected the unknown name at its position and the known names, got: {e}"
        );
    }

    #[test]
    fn privileges_that_could_disable_corral_are_refused_at_load() {
        for name in [
            "bpf",
            "kernel_modules",
            "mount",
            "ptrace",
            "signal",
            "setns",
            "bpffs",
        ] {
            let e = error_of(&format!("  privileges: [{name}]\n"));
            assert!(
                e.contains(&format!("privilege \"{name}\" can never be granted"))
                    && e.contains("spec.privileges[0]"),
                "expected {name} to be refused with its position, got: {e}"
            );
        }
    }

    #[test]
    fn a_subtask_may_not_hold_a_privilege_its_parent_lacks() {
        let parent = parse("  privileges: [netlink]\n");
        let same = parse("  privileges: [netlink]\n");
        assert_eq!(wider_than(&same, &parent), None);
        let none = parse("  mode: enforce\n");
        assert_eq!(wider_than(&none, &parent), None, "fewer privileges narrow");
        let wider = parse("  privileges: [netlink, perf_events]\n");
        assert_eq!(
            wider_than(&wider, &parent).as_deref(),
            Some("privileges perf_events is not granted to its parent")
        );
    }
}
