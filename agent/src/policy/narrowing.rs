//! Sub-tasks may only narrow: everything a sub-task allows, its parent task allows too.

use super::{ConnectRule, Destination, PathRule, TaskPolicy};
use agent_common::Mode;

/// Why `child` is not narrower than `parent`, or `None` when it is.
#[must_use]
pub fn wider_than(child: &TaskPolicy, parent: &TaskPolicy) -> Option<String> {
    if child.mode == Mode::Audit && parent.mode == Mode::Enforce {
        return Some(
            "it is in audit mode (allows everything) while its parent enforces".to_owned(),
        );
    }
    for (kind, theirs, ours) in [
        ("exec.allow", &parent.exec, &child.exec),
        ("files.read", &parent.read, &child.read),
        ("files.write", &parent.write, &child.write),
    ] {
        for rule in ours {
            if !theirs.iter().any(|p| covers(p, rule)) {
                return Some(format!("{kind} {rule} is not allowed to its parent"));
            }
            for deny in &parent.deny {
                let meets = covers(rule, deny) || covers(deny, rule);
                let denied_too = child
                    .deny
                    .iter()
                    .any(|d| covers(d, deny) || covers(d, rule));
                if meets && !denied_too {
                    return Some(format!(
                        "{kind} {rule} reaches {deny}, which its parent denies (deny it too)"
                    ));
                }
            }
        }
    }
    for rule in &child.connect {
        if !parent.connect.iter().any(|p| connect_covers(p, rule)) {
            return Some(format!(
                "network.connect {} (ports {}) is not allowed to its parent",
                rule.destination(),
                ports_text(rule)
            ));
        }
    }
    for p in &child.privileges {
        if !parent.privileges.contains(p) {
            return Some(format!("privileges {p} is not granted to its parent"));
        }
    }
    for addr in &child.unix {
        if !parent.unix.contains(addr) {
            return Some(format!(
                "network.unix {addr:?} is not allowed to its parent"
            ));
        }
    }
    None
}

/// Whether rule `outer` allows every path `inner` allows.
fn covers(outer: &PathRule, inner: &PathRule) -> bool {
    outer == inner || (outer.is_prefix() && inner.as_str().starts_with(outer.as_str()))
}

/// Whether rule `outer` allows every destination and port `inner` allows. A host rule is
/// covered only by a rule for the same name or a wildcard matching it; a wildcard only by a
/// wildcard whose suffix holds its own: the addresses a name resolves to change, so no network
/// can be known to hold them all, and a network is never covered by a name.
fn connect_covers(outer: &ConnectRule, inner: &ConnectRule) -> bool {
    let same_destination = match (outer.destination(), inner.destination()) {
        (Destination::Cidr(theirs), Destination::Cidr(ours)) => theirs.contains(ours),
        (Destination::Host(theirs), Destination::Host(ours)) => theirs == ours,
        (Destination::Wildcard(theirs), Destination::Host(ours)) => theirs.matches(ours),
        (Destination::Wildcard(theirs), Destination::Wildcard(ours)) => theirs.covers(ours),
        _ => false,
    };
    if !same_destination {
        return false;
    }
    match (outer.ports(), inner.ports()) {
        (None, _) => true,
        (Some(_), None) => false,
        (Some(theirs), Some(ours)) => ours
            .iter()
            .all(|o| theirs.iter().any(|t| t.lo() <= o.lo() && o.hi() <= t.hi())),
    }
}

fn ports_text(rule: &ConnectRule) -> String {
    rule.ports().map_or_else(
        || "all".to_owned(),
        |p| {
            p.iter()
                .map(|s| format!("{}-{}", s.lo(), s.hi()))
                .collect::<Vec<_>>()
                .join(",")
        },
    )
}
