//! DNS learning (wildcard `host` rules): the confined process's own DNS goes through the
//! daemon's proxy, which allows the answered addresses of matching names. Shared by the native
//! and VM tests; uses the loopback DNS server of `dns` on port 53 (only port 53 is redirected).

use crate::{
    Daemon, Policy, RunOutput,
    dns::{DnsServer, TASK},
    env, runtime,
};

/// Where the test DNS server listens: a loopback address of its own, on the DNS port.
pub const SERVER_IP: &str = "127.0.0.153";
/// `SERVER_IP:53`.
pub const SERVER: &str = "127.0.0.153:53";
/// A second server, on IPv6 loopback.
pub const SERVER6: &str = "[::1]:53";
/// The wildcard of the task.
pub const WILDCARD: &str = "*.example.test";

/// The DNS server on `SERVER`.
#[must_use]
pub fn server() -> DnsServer {
    DnsServer::start_on(SERVER)
}

/// `corral-dns-query`, built beside `corral-probe`.
#[must_use]
pub fn query_bin() -> String {
    env::sibling_bin("corral-dns-query")
}

/// Task `dns::TASK`: the probe, `corral-dns-query`, DNS to `SERVER` only, and `WILDCARD` on
/// every port.
#[must_use]
pub fn policy() -> Policy {
    let bin = query_bin();
    let mut p = Policy::probe_only(TASK)
        .exec(&bin)
        .read(&bin)
        .connect(&format!("{SERVER_IP}/32"), &["53"])
        .connect("::1/128", &["53"])
        .connect_host(WILDCARD, &["1-65535"]);
    for path in runtime::load_reads(&bin) {
        p = p.read(&path);
    }
    p
}

/// Runs `corral-dns-query MODE SERVER NAME` confined by the task.
#[must_use]
pub fn query(d: &Daemon, mode: &str, server: &str, name: &str) -> RunOutput {
    d.run_accepting_unenforced(TASK, &[&query_bin(), mode, server, name])
}

/// A query that got an answer from `SERVER` (as the process sees it) holding `addr`.
pub fn expect_answer(d: &Daemon, mode: &str, name: &str, addr: &str) {
    expect_answer_from(d, mode, SERVER, name, addr);
}

/// A query to `server` that got an answer from it (as the process sees it) holding `addr`.
pub fn expect_answer_from(d: &Daemon, mode: &str, server: &str, name: &str, addr: &str) {
    let out = query(d, mode, server, name);
    let from = format!("from {server}");
    let has = format!("addr {addr}");
    assert!(
        out.code == Some(0)
            && out.stdout.lines().any(|l| l == from)
            && out.stdout.lines().any(|l| l == has),
        "expected the {mode} query for {name} to be answered by {server} with {addr}\n{}\ndaemon stderr:\n{}",
        out.describe(),
        d.stderr()
    );
}
