//! Egress by DNS name, natively (cgroup `sock_addr` programs enforce connect for `corral run`
//! tasks): the daemon resolves a `host` rule's name at a DNS server the test runs on loopback,
//! allows the addresses it answers, follows record changes and lets addresses go when their TTL
//! runs out, also after the name stopped resolving. Never the network.

use std::time::{Duration, Instant};

use corral_tests::dns::{
    DNS_TIMEOUT, DnsServer, HOST, TASK, daemon, expect_connect_allowed, expect_connect_refused,
    policy, wait_dns_event,
};
use corral_tests::reload::replace_file;
use corral_tests::{Scratch, Value};

#[test]
fn dns_host_rule_allows_the_resolved_v4_and_v6_addresses_only_and_survives_a_reload() {
    let server = DnsServer::start();
    server.set(HOST, &["127.0.0.2", "::1"], 300);
    let scratch = Scratch::new("dns-basic");
    let pol = policy();
    let d = daemon(&server, &scratch, &[&pol]);
    let _ = wait_dns_event(&d, "dns_resolved", "added", "127.0.0.2");
    let _ = wait_dns_event(&d, "dns_resolved", "added", "::1");

    expect_connect_allowed(&d, "127.0.0.2", "A record of the host rule");
    expect_connect_allowed(&d, "::1", "AAAA record of the host rule");
    expect_connect_refused(&d, "127.0.0.3", "an address the name does not resolve to");

    // A reload writes the task's rules under a new rules id: the resolved entries come along.
    let reloaded = pol.connect("192.0.2.0/24", &["443"]);
    replace_file(&d.policies(), &reloaded.file_name(), &reloaded.yaml());
    let _ = d.wait_events(
        |e| e["kind"] == "policy_applied" && e["changed"] == serde_json::json!([TASK]),
        DNS_TIMEOUT,
    );
    expect_connect_allowed(&d, "127.0.0.2", "right after a reload to a new rules id");
    expect_connect_refused(
        &d,
        "127.0.0.3",
        "still not the name's address after the reload",
    );
}

#[test]
fn dns_record_change_moves_the_allowance_and_a_dead_name_keeps_its_addresses_until_their_ttl() {
    let server = DnsServer::start();
    server.set(HOST, &["127.0.0.2"], 2);
    let scratch = Scratch::new("dns-change");
    let d = daemon(&server, &scratch, &[&policy()]);
    let _ = wait_dns_event(&d, "dns_resolved", "added", "127.0.0.2");
    expect_connect_allowed(&d, "127.0.0.2", "the first answer");
    expect_connect_refused(&d, "127.0.0.3", "not an answer yet");

    // The record changes: the new address is allowed at the next refresh (3/4 of 2s), the old
    // one when its 2s TTL has run out.
    server.set(HOST, &["127.0.0.3"], 8);
    let moved_at = wait_dns_event(&d, "dns_resolved", "added", "127.0.0.3");
    // From now on the name does not exist; the next refresh is due 6s (3/4 of 8s) after the
    // answer, and 127.0.0.3 stays allowed until 8s after it.
    server.remove(HOST);
    expect_connect_allowed(&d, "127.0.0.3", "the changed record");
    let _ = wait_dns_event(&d, "dns_expired", "expired", "127.0.0.2");
    expect_connect_refused(&d, "127.0.0.2", "the old record after its TTL ran out");

    let _ = d.wait_events(
        |e| e["kind"] == "dns_unresolved" && e["host"] == HOST && e["result"] == "nxdomain",
        DNS_TIMEOUT,
    );
    let answered_for = moved_at.elapsed();
    assert!(
        answered_for < Duration::from_secs(8),
        "expected NXDOMAIN to be reported before the 8s TTL ran out (after {answered_for:?})"
    );
    expect_connect_allowed(
        &d,
        "127.0.0.3",
        "NXDOMAIN: the last address stays until its TTL runs out",
    );
    let gone_at = wait_dns_event(&d, "dns_expired", "expired", "127.0.0.3");
    let lived = gone_at.duration_since(moved_at);
    assert!(
        lived >= Duration::from_secs(6),
        "expected 127.0.0.3 to stay allowed about its 8s TTL after the answer, it went after {lived:?}"
    );
    expect_connect_refused(
        &d,
        "127.0.0.3",
        "the TTL ran out after the name stopped resolving",
    );
    let events: Vec<Value> = d.events();
    assert_eq!(
        events
            .iter()
            .filter(|e| e["kind"] == "dns_unresolved" && e["host"] == HOST)
            .count(),
        1,
        "expected one dns_unresolved event however many retries failed"
    );
}

#[test]
fn dns_silent_server_keeps_the_addresses_until_their_ttl_then_they_go() {
    let server = DnsServer::start();
    server.set(HOST, &["::1"], 4);
    let scratch = Scratch::new("dns-silent");
    let d = daemon(&server, &scratch, &[&policy()]);
    let _ = wait_dns_event(&d, "dns_resolved", "added", "::1");
    server.set_silent(true);
    let _ = d.wait_events(
        |e| e["kind"] == "dns_unresolved" && e["host"] == HOST && e["result"] == "error",
        DNS_TIMEOUT,
    );
    let _ = wait_dns_event(&d, "dns_expired", "expired", "::1");
    expect_connect_refused(
        &d,
        "::1",
        "the AAAA record's TTL ran out while the server was silent",
    );
    server.set_silent(false);
    // The first answer made one `dns_resolved` event; the answer after the silence another.
    let deadline = Instant::now() + DNS_TIMEOUT;
    while d
        .events()
        .iter()
        .filter(|e| e["kind"] == "dns_resolved" && e["host"] == HOST)
        .count()
        < 2
    {
        assert!(
            Instant::now() < deadline,
            "expected the address to be resolved again once the server answers\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    expect_connect_allowed(&d, "::1", "the server answers again");
    assert!(server.queries() >= 3, "expected the daemon to keep asking");
}

#[test]
fn dns_host_added_by_a_reload_resolves_and_one_removed_goes_at_once() {
    let server = DnsServer::start();
    server.set(HOST, &["127.0.0.2"], 300);
    let scratch = Scratch::new("dns-reload");
    // No host rule at start: the resolver has nothing to ask.
    let without = corral_tests::Policy::probe_only(TASK).connect("192.0.2.0/24", &["443"]);
    let d = daemon(&server, &scratch, &[&without]);
    expect_connect_refused(&d, "127.0.0.2", "no rule names it yet");
    assert_eq!(server.queries(), 0, "expected no lookup without host rules");

    let with = policy();
    replace_file(&d.policies(), &with.file_name(), &with.yaml());
    let _ = wait_dns_event(&d, "dns_resolved", "added", "127.0.0.2");
    expect_connect_allowed(&d, "127.0.0.2", "the host rule a reload added");

    // The rule goes: its addresses go with the task's new rules, whatever their TTL.
    replace_file(&d.policies(), &without.file_name(), &without.yaml());
    let applied = |d: &corral_tests::Daemon| {
        d.events()
            .iter()
            .filter(|e| e["kind"] == "policy_applied")
            .count()
    };
    let deadline = Instant::now() + DNS_TIMEOUT;
    while applied(&d) < 2 {
        assert!(
            Instant::now() < deadline,
            "expected the second reload to be applied\n{}",
            d.stderr()
        );
        std::thread::sleep(Duration::from_millis(100));
    }
    expect_connect_refused(&d, "127.0.0.2", "the host rule was removed");
}

// ---------------------------------------------------------------------------------------------
// Wildcard `host` rules: the confined process's own DNS query goes through the daemon's proxy,
// which allows the answered addresses of names beneath the wildcard, with the answer's TTL. The
// DNS server runs on loopback port 53 (only port 53 is redirected).

use corral_tests::dns_learning;

#[test]
fn dns_wildcard_allows_what_the_process_was_answered_for_matching_names_only() {
    let server = dns_learning::server();
    server.set("a.example.test", &["127.0.0.2"], 300);
    server.set("b.deep.example.test", &["127.0.0.5"], 300);
    server.set("other.test", &["127.0.0.4"], 300);
    let scratch = Scratch::new("dns-wildcard");
    let d = daemon(&server, &scratch, &[&dns_learning::policy()]);
    expect_connect_refused(&d, "127.0.0.2", "no answer seen yet");

    dns_learning::expect_answer(&d, "sendto", "a.example.test", "127.0.0.2");
    expect_connect_allowed(&d, "127.0.0.2", "answered for a.example.test");
    expect_connect_refused(&d, "127.0.0.3", "never answered");

    dns_learning::expect_answer(&d, "connected", "b.deep.example.test", "127.0.0.5");
    expect_connect_allowed(
        &d,
        "127.0.0.5",
        "answered (connected socket) for a deeper name",
    );

    dns_learning::expect_answer(&d, "sendto", "other.test", "127.0.0.4");
    expect_connect_refused(
        &d,
        "127.0.0.4",
        "answered, but for a name the wildcard does not match",
    );

    let out = dns_learning::query(&d, "sendto", "127.0.0.154:53", "a.example.test");
    eprintln!("expecting EPERM: DNS to a server the policy does not allow");
    d.expect_errno(&out, "EPERM");
}

#[test]
fn dns_wildcard_learns_from_tcp_and_ipv6_queries() {
    let server = dns_learning::server();
    server.serve_tcp();
    server.set("t.example.test", &["127.0.0.7"], 300);
    let server6 = corral_tests::dns::DnsServer::start_on(dns_learning::SERVER6);
    server6.set("v6.example.test", &["127.0.0.8"], 300);
    let scratch = Scratch::new("dns-wildcard-tcp6");
    let d = daemon(&server, &scratch, &[&dns_learning::policy()]);
    dns_learning::expect_answer(&d, "tcp", "t.example.test", "127.0.0.7");
    expect_connect_allowed(&d, "127.0.0.7", "answered over TCP");
    dns_learning::expect_answer_from(
        &d,
        "sendto",
        dns_learning::SERVER6,
        "v6.example.test",
        "127.0.0.8",
    );
    expect_connect_allowed(&d, "127.0.0.8", "answered by an IPv6 server");
}

#[test]
fn dns_wildcard_tasks_dns_fails_closed_once_the_daemon_and_its_proxy_are_gone() {
    let server = dns_learning::server();
    server.set("a.example.test", &["127.0.0.2"], 300);
    let scratch = Scratch::new("dns-wildcard-closed");
    let mut d = daemon(&server, &scratch, &[&dns_learning::policy()]);
    dns_learning::expect_answer(&d, "sendto", "a.example.test", "127.0.0.2");
    let bin = dns_learning::query_bin();
    let later = corral_tests::process::Later::start(d.run_command_with(
        corral_tests::dns::TASK,
        &[corral_tests::ACCEPT_UNENFORCED],
        &[
            &bin,
            "sendto",
            dns_learning::SERVER,
            "a.example.test",
            "4000",
        ],
    ));
    // Started and tagged; its query goes out once the daemon (and its proxy) stopped. The
    // programs stay attached (pinned) and enforcing.
    std::thread::sleep(std::time::Duration::from_secs(1));
    let code = d.terminate();
    assert_eq!(
        code,
        Some(0),
        "expected the daemon to stop cleanly on SIGTERM"
    );
    let queries = server.queries();
    let out = later.wait();
    assert!(
        out.code == Some(1) && out.first_line() == format!("err EPERM {}", libc::EPERM),
        "expected the query to be refused with EPERM without a proxy, never sent unseen\n{}",
        out.describe()
    );
    assert_eq!(
        server.queries(),
        queries,
        "the server never saw the refused query"
    );
}

#[test]
fn dns_wildcard_answers_go_when_their_ttl_runs_out() {
    let server = dns_learning::server();
    server.set("short.example.test", &["127.0.0.6"], 2);
    let scratch = Scratch::new("dns-wildcard-ttl");
    let d = daemon(&server, &scratch, &[&dns_learning::policy()]);
    dns_learning::expect_answer(&d, "sendto", "short.example.test", "127.0.0.6");
    expect_connect_allowed(&d, "127.0.0.6", "answered with a 2s TTL");
    let _ = d.wait_events(
        |e| {
            e["kind"] == "dns_expired"
                && e["host"] == "short.example.test"
                && e["expired"]
                    .as_array()
                    .is_some_and(|a| a.iter().any(|v| v == "127.0.0.6"))
        },
        DNS_TIMEOUT,
    );
    expect_connect_refused(&d, "127.0.0.6", "its TTL ran out");
}
