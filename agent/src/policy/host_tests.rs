//! `host` connect rules in whole documents: parsing, positioned errors, sub-task narrowing.

use super::{
    Destination, HostName, WildcardHost,
    tests::{error_of, parse, with_spec},
    wider_than,
};

#[test]
fn host_rules_parse_lowercased_next_to_cidr_rules() {
    let p = parse(&with_spec(
        "  network:\n    connect:\n      - host: API.GitHub.com.\n        ports: [443]\n      - cidr: 10.0.0.0/8\n",
    ));
    assert_eq!(p.connect.len(), 2, "two connect rules");
    assert_eq!(
        p.connect[0].host().map(HostName::as_str),
        Some("api.github.com"),
        "the host is lowercased and loses its trailing dot"
    );
    assert_eq!(p.connect[0].cidr(), None, "a host rule has no network");
    let ports: Vec<(u16, u16)> = p.connect[0]
        .ports()
        .expect("the host rule lists ports")
        .iter()
        .map(|s| (s.lo(), s.hi()))
        .collect();
    assert_eq!(ports, [(443, 443)]);
    assert!(
        matches!(p.connect[1].destination(), Destination::Cidr(_)),
        "the second rule is a network"
    );
}

#[test]
fn host_rule_errors_name_the_position_and_the_problem() {
    for (spec, expected) in [
        (
            "  network:\n    connect:\n      - host: \"*.com\"\n",
            "bad.yaml:8:15: spec.network.connect[0].host: invalid host \"*.com\": a wildcard needs a suffix of at least two labels",
        ),
        (
            "  network:\n    connect:\n      - cidr: 10.0.0.0/8\n      - host: api_x.example.com\n",
            "bad.yaml:9:15: spec.network.connect[1].host: invalid host \"api_x.example.com\": label \"api_x\" holds '_'",
        ),
        (
            "  network:\n    connect:\n      - host: 10.1.2.3\n",
            "bad.yaml:8:15: spec.network.connect[0].host: invalid host \"10.1.2.3\": an IP address is not a host name; write `cidr: \"10.1.2.3/32\"`",
        ),
        (
            "  network:\n    connect:\n      - host: a.example\n        cidr: 10.0.0.0/8\n",
            // The check needs the whole entry: the position is the entry's.
            "bad.yaml:8:7: spec.network.connect: a connect rule has `cidr` or `host`, not both",
        ),
        (
            "  network:\n    connect:\n      - ports: [443]\n",
            "bad.yaml:8:7: spec.network.connect: a connect rule needs a destination: `cidr` or `host`",
        ),
        (
            "  network:\n    connect:\n      - host: a.example\n        hosts: [b.example]\n",
            "spec.network.connect[0]: unknown field `hosts`, expected one of `cidr`, `host`, `ports`",
        ),
    ] {
        let err = error_of(&with_spec(spec));
        assert!(
            err.contains(expected),
            "error for {spec:?} should contain {expected:?}, got {err:?}"
        );
    }
}

#[test]
fn a_subtask_host_rule_needs_the_same_host_in_its_parent_with_wider_ports() {
    let parent = parse(&with_spec(
        "  network:\n    connect:\n      - host: api.github.com\n        ports: [443, \"8000-8100\"]\n      - cidr: 10.0.0.0/8\n",
    ));
    let narrower = parse(&with_spec(
        "  network:\n    connect:\n      - host: API.github.com\n        ports: [8080]\n      - cidr: 10.1.0.0/16\n",
    ));
    assert_eq!(
        wider_than(&narrower, &parent),
        None,
        "the same host on fewer ports is narrower"
    );
    for (spec, why) in [
        (
            "  network:\n    connect:\n      - host: api.github.com\n",
            "network.connect host api.github.com (ports all) is not allowed to its parent",
        ),
        (
            "  network:\n    connect:\n      - host: uploads.github.com\n        ports: [443]\n",
            "network.connect host uploads.github.com (ports 443-443) is not allowed to its parent",
        ),
        (
            // A network never covers a name: the name's addresses can move out of it.
            "  network:\n    connect:\n      - host: internal.example\n        ports: [443]\n",
            "network.connect host internal.example (ports 443-443) is not allowed to its parent",
        ),
        (
            "  network:\n    connect:\n      - cidr: 192.0.2.0/24\n",
            "network.connect 192.0.2.0/24 (ports all) is not allowed to its parent",
        ),
    ] {
        let child = parse(&with_spec(spec));
        assert_eq!(
            wider_than(&child, &parent).as_deref(),
            Some(why),
            "expected {spec:?} to be found wider"
        );
    }
    let by_name_only = parse(&with_spec(
        "  network:\n    connect:\n      - host: api.github.com\n",
    ));
    let child_with_cidr = parse(&with_spec(
        "  network:\n    connect:\n      - cidr: 140.82.112.0/20\n        ports: [443]\n",
    ));
    assert_eq!(
        wider_than(&child_with_cidr, &by_name_only).as_deref(),
        Some("network.connect 140.82.112.0/20 (ports 443-443) is not allowed to its parent"),
        "a name never covers a network"
    );
}

#[test]
fn wildcard_host_rules_parse_as_wildcards_next_to_names() {
    let p = parse(&with_spec(
        "  network:\n    connect:\n      - host: \"*.GitHubUserContent.com\"\n        ports: [443]\n      - host: api.github.com\n",
    ));
    assert_eq!(
        p.connect[0]
            .wildcard()
            .map(WildcardHost::to_string)
            .as_deref(),
        Some("*.githubusercontent.com"),
        "the wildcard is lowercased"
    );
    assert_eq!(p.connect[0].host(), None, "a wildcard is not a single name");
    assert!(p.connect[0].by_name() && p.connect[1].by_name());
    assert_eq!(p.connect[1].wildcard(), None);
}

#[test]
fn a_subtask_wildcard_needs_a_covering_parent_wildcard_and_a_parent_wildcard_covers_names() {
    let parent = parse(&with_spec(
        "  network:\n    connect:\n      - host: \"*.example.com\"\n        ports: [443]\n      - host: api.github.com\n",
    ));
    for narrower in [
        "  network:\n    connect:\n      - host: \"*.example.com\"\n        ports: [443]\n",
        "  network:\n    connect:\n      - host: \"*.cdn.example.com\"\n        ports: [443]\n",
        "  network:\n    connect:\n      - host: a.b.example.com\n        ports: [443]\n",
    ] {
        assert_eq!(
            wider_than(&parse(&with_spec(narrower)), &parent),
            None,
            "expected {narrower:?} to be narrower than *.example.com:443"
        );
    }
    for (spec, why) in [
        (
            "  network:\n    connect:\n      - host: example.com\n        ports: [443]\n",
            "network.connect host example.com (ports 443-443) is not allowed to its parent",
        ),
        (
            "  network:\n    connect:\n      - host: \"*.example.com\"\n",
            "network.connect host *.example.com (ports all) is not allowed to its parent",
        ),
        (
            "  network:\n    connect:\n      - host: \"*.github.com\"\n",
            "network.connect host *.github.com (ports all) is not allowed to its parent",
        ),
        (
            "  network:\n    connect:\n      - host: \"*.com.example\"\n        ports: [443]\n",
            "network.connect host *.com.example (ports 443-443) is not allowed to its parent",
        ),
    ] {
        assert_eq!(
            wider_than(&parse(&with_spec(spec)), &parent).as_deref(),
            Some(why),
            "expected {spec:?} to be found wider"
        );
    }
    let names_only = parse(&with_spec(
        "  network:\n    connect:\n      - host: a.example.com\n",
    ));
    assert_eq!(
        wider_than(
            &parse(&with_spec(
                "  network:\n    connect:\n      - host: \"*.a.example.com\"\n"
            )),
            &names_only
        )
        .as_deref(),
        Some("network.connect host *.a.example.com (ports all) is not allowed to its parent"),
        "a name never covers a wildcard"
    );
}
