//! `host` rules: their resolved addresses as /32 and /128 entries folded with the networks, and
//! the diff that moves a task from one set of addresses to the next.

use std::net::IpAddr;

use super::{CompiledTask, ResolvedHosts, compile_resolved, net_diff, tests::policy};
use crate::policy::HostName;

const SPEC: &str = "  network:\n    connect:\n      - host: svc.test\n        ports: [8080]\n      - cidr: 127.0.0.0/8\n        ports: [22]\n      - host: other.test\n";

fn resolved(entries: &[(&str, &[&str])]) -> ResolvedHosts {
    entries
        .iter()
        .map(|(name, addrs)| {
            let name: HostName = serde_yaml_ng::from_str(name)
                .unwrap_or_else(|e| panic!("expected {name:?} to be a host name: {e}"));
            let addrs = addrs
                .iter()
                .map(|a| {
                    a.parse::<IpAddr>()
                        .unwrap_or_else(|e| panic!("expected {a:?} to be an address: {e}"))
                })
                .collect();
            (name, addrs)
        })
        .collect()
}

fn compiled(hosts: &ResolvedHosts) -> CompiledTask {
    compile_resolved(7, &policy(SPEC), hosts)
        .unwrap_or_else(|e| panic!("expected the policy to compile: {e}"))
}

/// `(address/prefix, [(lo, hi)])` of every v4 and v6 entry.
fn nets(task: &CompiledTask) -> Vec<(String, Vec<(u16, u16)>)> {
    let ports = |p: agent_common::PortSet| {
        p.ranges[..p.count as usize]
            .iter()
            .map(|r| (r.lo, r.hi))
            .collect::<Vec<_>>()
    };
    let v4 = task.net_v4.iter().map(|e| {
        assert_eq!(e.data.task_id, 7, "entries are keyed by the rules id");
        (
            format!(
                "{}/{}",
                std::net::Ipv4Addr::from(e.data.addr),
                e.prefix_len - 32
            ),
            ports(e.ports),
        )
    });
    let v6 = task.net_v6.iter().map(|e| {
        (
            format!(
                "{}/{}",
                std::net::Ipv6Addr::from(e.data.addr),
                e.prefix_len - 32
            ),
            ports(e.ports),
        )
    });
    v4.chain(v6).collect()
}

#[test]
fn an_unresolved_host_allows_nothing() {
    let task = compiled(&ResolvedHosts::new());
    assert_eq!(
        nets(&task),
        [("127.0.0.0/8".to_owned(), vec![(22, 22)])],
        "only the network rule has an entry before any name resolved"
    );
}

#[test]
fn resolved_addresses_become_host_entries_folded_with_enclosing_networks() {
    let task = compiled(&resolved(&[
        ("svc.test", &["127.0.0.2", "::1", "::ffff:127.0.0.5"]),
        ("other.test", &["192.0.2.9"]),
        ("unused.test", &["198.51.100.1"]),
    ]));
    assert_eq!(
        nets(&task),
        [
            ("127.0.0.0/8".to_owned(), vec![(22, 22)]),
            ("127.0.0.2/32".to_owned(), vec![(22, 22), (8080, 8080)]),
            ("127.0.0.5/32".to_owned(), vec![(22, 22), (8080, 8080)]),
            ("192.0.2.9/32".to_owned(), vec![(0, u16::MAX)]),
            ("::1/128".to_owned(), vec![(8080, 8080)]),
        ],
        "each address of a used name is a host entry with the rule's ports, plus those of the \
         networks holding it; a v4-mapped AAAA answer is an IPv4 entry; names no rule uses add \
         nothing"
    );
}

#[test]
fn two_names_on_one_address_share_an_entry_with_both_rules_ports() {
    let task = compiled(&resolved(&[
        ("svc.test", &["192.0.2.1"]),
        ("other.test", &["192.0.2.1"]),
    ]));
    assert_eq!(
        nets(&task),
        [
            ("127.0.0.0/8".to_owned(), vec![(22, 22)]),
            ("192.0.2.1/32".to_owned(), vec![(0, u16::MAX)]),
        ],
        "an address shared by two names carries the union of their ports"
    );
}

#[test]
fn the_diff_writes_new_and_changed_entries_and_deletes_departed_ones() {
    let before = compiled(&resolved(&[
        ("svc.test", &["127.0.0.2", "192.0.2.1", "::1"]),
        ("other.test", &["192.0.2.7"]),
    ]));
    let after = compiled(&resolved(&[
        ("svc.test", &["127.0.0.3", "192.0.2.1", "::1"]),
        ("other.test", &["192.0.2.1"]),
    ]));
    let diff = net_diff(&before, &after);
    assert_eq!(
        nets(&diff.write),
        [
            ("127.0.0.3/32".to_owned(), vec![(22, 22), (8080, 8080)]),
            ("192.0.2.1/32".to_owned(), vec![(0, u16::MAX)]),
        ],
        "the new address is written, and 192.0.2.1 again since its ports changed (other.test \
         now resolves to it too)"
    );
    assert_eq!(
        nets(&diff.delete),
        [
            ("127.0.0.2/32".to_owned(), vec![(22, 22), (8080, 8080)]),
            ("192.0.2.7/32".to_owned(), vec![(0, u16::MAX)]),
        ],
        "departed addresses are deleted; the network and ::1 are untouched"
    );
    assert!(
        diff.write.files.is_empty() && diff.write.unix.is_empty(),
        "a diff never carries file or unix entries"
    );
    assert!(
        net_diff(&after, &after).is_empty(),
        "the same entries need no change"
    );
}

#[test]
fn a_wildcard_rule_allows_the_addresses_of_every_known_name_beneath_its_suffix() {
    const WILD: &str =
        "  network:\n    connect:\n      - host: \"*.example.test\"\n        ports: [443]\n";
    let task = compile_resolved(
        7,
        &policy(WILD),
        &resolved(&[
            ("a.example.test", &["192.0.2.1"]),
            ("b.c.example.test", &["2001:db8::2"]),
            ("example.test", &["192.0.2.3"]),
            ("a.example.other", &["192.0.2.4"]),
        ]),
    )
    .unwrap_or_else(|e| panic!("expected the wildcard policy to compile: {e}"));
    assert_eq!(
        nets(&task),
        [
            ("192.0.2.1/32".to_owned(), vec![(443, 443)]),
            ("2001:db8::2/128".to_owned(), vec![(443, 443)]),
        ],
        "names beneath example.test at any depth count; example.test itself and other suffixes \
         do not"
    );
}
