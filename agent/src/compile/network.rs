//! `NET_V4_RULES` / `NET_V6_RULES` entries: connect rules, ports folded along enclosing networks.

use std::collections::BTreeMap;

use agent_common::{NetV4Data, NetV6Data, PORT_RANGES_MAX, PortRange, PortSet};
use ipnet::IpNet;

use super::{CompileError, NetEntry, ResolvedHosts};
use crate::policy::{Destination, TaskPolicy};

type NetEntries = (Vec<NetEntry<NetV4Data>>, Vec<NetEntry<NetV6Data>>);

/// One entry per distinct network of the task. Each entry's ports are the union of the ports of
/// every rule whose network contains the entry's network (same family), merged into the fewest
/// ranges; an absent `ports` is the whole range 0..=65535. A `host` rule stands for one /32 or
/// /128 rule per address `resolved` holds for its name (none while it has not resolved), a
/// wildcard one for one per address of every name in `resolved` beneath its suffix.
pub(super) fn net_entries(
    task_id: u32,
    policy: &TaskPolicy,
    resolved: &ResolvedHosts,
) -> Result<NetEntries, CompileError> {
    // Normalized network → ranges of the rules written for exactly that network.
    let mut rules: BTreeMap<IpNet, Vec<(u16, u16)>> = BTreeMap::new();
    for rule in &policy.connect {
        let nets: Vec<IpNet> = match rule.destination() {
            Destination::Cidr(net) => vec![net.trunc()],
            Destination::Host(name) => resolved
                .get(name)
                .into_iter()
                .flatten()
                .map(|addr| IpNet::from(addr.to_canonical()))
                .collect(),
            Destination::Wildcard(pattern) => resolved
                .iter()
                .filter(|(name, _)| pattern.matches(name))
                .flat_map(|(_, addrs)| addrs)
                .map(|addr| IpNet::from(addr.to_canonical()))
                .collect(),
        };
        for net in nets {
            let ranges = rules.entry(net).or_default();
            match rule.ports() {
                None => ranges.push((0, u16::MAX)),
                Some(spans) => ranges.extend(spans.iter().map(|s| (s.lo(), s.hi()))),
            }
        }
    }
    let mut v4 = Vec::new();
    let mut v6 = Vec::new();
    for net in rules.keys() {
        let enclosing = rules
            .iter()
            .filter(|(outer, _)| outer.contains(net))
            .flat_map(|(_, ranges)| ranges.iter().copied());
        let merged = merge_ranges(enclosing);
        if merged.len() > PORT_RANGES_MAX {
            return Err(CompileError::TooManyPortRanges {
                task: policy.name.to_string(),
                cidr: *net,
                count: merged.len(),
                bound: PORT_RANGES_MAX,
            });
        }
        let ports = port_set(&merged);
        let prefix_len = 32 + u32::from(net.prefix_len());
        match net {
            IpNet::V4(n) => v4.push(NetEntry {
                prefix_len,
                data: NetV4Data {
                    task_id,
                    addr: n.network().octets(),
                },
                ports,
            }),
            IpNet::V6(n) => v6.push(NetEntry {
                prefix_len,
                data: NetV6Data {
                    task_id,
                    addr: n.network().octets(),
                },
                ports,
            }),
        }
    }
    Ok((v4, v6))
}

/// Sorts inclusive ranges and coalesces overlapping and adjacent ones.
fn merge_ranges(ranges: impl Iterator<Item = (u16, u16)>) -> Vec<(u16, u16)> {
    let mut sorted: Vec<(u16, u16)> = ranges.collect();
    sorted.sort_unstable();
    let mut merged: Vec<(u16, u16)> = Vec::with_capacity(sorted.len());
    for (lo, hi) in sorted {
        match merged.last_mut() {
            Some(last) if u32::from(lo) <= u32::from(last.1) + 1 => last.1 = last.1.max(hi),
            _ => merged.push((lo, hi)),
        }
    }
    merged
}

/// At most `PORT_RANGES_MAX` ranges (checked by the caller) as a `PortSet`.
fn port_set(ranges: &[(u16, u16)]) -> PortSet {
    let mut set = PortSet {
        count: 0,
        ranges: [PortRange::default(); PORT_RANGES_MAX],
    };
    for (slot, &(lo, hi)) in set.ranges.iter_mut().zip(ranges) {
        *slot = PortRange { lo, hi };
        set.count += 1;
    }
    set
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn merges_overlapping_and_adjacent_ranges() {
        let merged = merge_ranges(
            [
                (443, 443),
                (80, 80),
                (8000, 8080),
                (8081, 8100),
                (8050, 8060),
                (81, 81),
                (1, 1),
            ]
            .into_iter(),
        );
        assert_eq!(
            merged,
            vec![(1, 1), (80, 81), (443, 443), (8000, 8100)],
            "ranges should be sorted, overlaps and neighbours coalesced"
        );
        let all = merge_ranges([(0, u16::MAX), (65535, 65535), (10, 20)].into_iter());
        assert_eq!(
            all,
            vec![(0, u16::MAX)],
            "the full range absorbs everything"
        );
    }
}
