//! The addresses each wanted DNS name stands for, each with the instant its TTL runs out, and
//! when each name is asked again. Pure bookkeeping: the caller supplies the time and the answers.
//!
//! An address stays until its own TTL has passed since the last answer that held it, whatever
//! happened since: a record change adds the new address at once and lets the old one run out; a
//! name that stops resolving (NXDOMAIN, no records, timeouts, SERVFAIL) keeps its addresses until
//! their TTLs have passed. A process that looked the name up itself may be using any address
//! whose TTL it was given and which has not run out yet.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use super::ttl::{self, Expiries};
use crate::{compile::ResolvedHosts, policy::HostName};

/// Shortest wait between two attempts after failed ones (doubled per failure, up to `min_ttl`).
const RETRY_FIRST: Duration = Duration::from_secs(1);

/// What one name stands for now.
#[derive(Debug, Clone)]
struct Entry {
    /// Address → when its TTL runs out.
    addrs: Expiries,
    /// When to ask again.
    refresh_at: Instant,
    /// Failed attempts in a row.
    failures: u32,
}

/// How an answer changed a name's addresses.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Answered {
    /// Addresses the name did not stand for before this answer.
    pub added: Vec<IpAddr>,
    /// Every address the name stands for after it (new and still unexpired old ones).
    pub current: Vec<IpAddr>,
}

/// The wanted names and their addresses.
#[derive(Debug)]
pub struct AddressBook {
    entries: BTreeMap<HostName, Entry>,
    min_ttl: Duration,
}

impl AddressBook {
    /// An empty book; TTLs below `min_ttl` count as `min_ttl`.
    #[must_use]
    pub fn new(min_ttl: Duration) -> Self {
        Self {
            entries: BTreeMap::new(),
            min_ttl,
        }
    }

    /// Makes the book hold exactly `names`: new ones are due at once, dropped ones forgotten
    /// (with their addresses). Returns the names added.
    pub fn want(&mut self, names: &BTreeSet<HostName>, now: Instant) -> Vec<HostName> {
        self.entries.retain(|name, _| names.contains(name));
        let mut added = Vec::new();
        for name in names {
            if !self.entries.contains_key(name) {
                self.entries.insert(
                    name.clone(),
                    Entry {
                        addrs: BTreeMap::new(),
                        refresh_at: now,
                        failures: 0,
                    },
                );
                added.push(name.clone());
            }
        }
        added
    }

    /// The names to ask now.
    #[must_use]
    pub fn due(&self, now: Instant) -> Vec<HostName> {
        self.entries
            .iter()
            .filter(|(_, e)| e.refresh_at <= now)
            .map(|(name, _)| name.clone())
            .collect()
    }

    /// Records an answer: `(address, TTL)` pairs, empty when the name has no address (NXDOMAIN,
    /// no A and no AAAA records). Each address is renewed until now + its TTL; the name is asked
    /// again at 3/4 of the shortest TTL. Unknown names (no longer wanted) are ignored.
    pub fn answered(
        &mut self,
        name: &HostName,
        answers: &[(IpAddr, Duration)],
        now: Instant,
    ) -> Answered {
        let min_ttl = self.min_ttl;
        let Some(entry) = self.entries.get_mut(name) else {
            return Answered::default();
        };
        let mut added = Vec::new();
        let mut shortest = None::<Duration>;
        for &(addr, ttl) in answers {
            let ttl = ttl.max(min_ttl);
            shortest = Some(shortest.map_or(ttl, |s| s.min(ttl)));
            if ttl::hold(&mut entry.addrs, addr, now + ttl) {
                added.push(addr);
            }
        }
        entry.failures = 0;
        entry.refresh_at = now + shortest.unwrap_or(min_ttl) * 3 / 4;
        Answered {
            added,
            current: entry.addrs.keys().copied().collect(),
        }
    }

    /// Records a failed attempt (timeout, SERVFAIL, no server): the addresses stay until their
    /// TTLs run out; the name is asked again after 1s, 2s, 4s, ... up to `min_ttl`.
    pub fn failed(&mut self, name: &HostName, now: Instant) {
        let min_ttl = self.min_ttl;
        if let Some(entry) = self.entries.get_mut(name) {
            let wait = RETRY_FIRST
                .saturating_mul(1 << entry.failures.min(16))
                .min(min_ttl);
            entry.failures = entry.failures.saturating_add(1);
            entry.refresh_at = now + wait;
        }
    }

    /// Drops the addresses whose TTL ran out; returns them by name.
    pub fn expire(&mut self, now: Instant) -> Vec<(HostName, Vec<IpAddr>)> {
        let mut gone = Vec::new();
        for (name, entry) in &mut self.entries {
            let expired = ttl::take_expired(&mut entry.addrs, now);
            if !expired.is_empty() {
                gone.push((name.clone(), expired));
            }
        }
        gone
    }

    /// When something is next due: a refresh or an expiry.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .flat_map(|e| std::iter::once(e.refresh_at).chain(e.addrs.values().copied()))
            .min()
    }

    /// The addresses of every name that has any.
    #[must_use]
    pub fn snapshot(&self) -> ResolvedHosts {
        self.entries
            .iter()
            .filter(|(_, e)| !e.addrs.is_empty())
            .map(|(name, e)| (name.clone(), e.addrs.keys().copied().collect()))
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> HostName {
        serde_yaml_ng::from_str(text)
            .unwrap_or_else(|e| panic!("expected {text:?} to be a host name: {e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|e| panic!("expected {text:?} to be an address: {e}"))
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn book_with(names: &[&str], now: Instant) -> AddressBook {
        let mut book = AddressBook::new(secs(2));
        let wanted: BTreeSet<HostName> = names.iter().map(|n| name(n)).collect();
        book.want(&wanted, now);
        book
    }

    fn addrs_of(book: &AddressBook, host: &str) -> Vec<String> {
        book.snapshot()
            .get(&name(host))
            .map(|s| s.iter().map(ToString::to_string).collect())
            .unwrap_or_default()
    }

    #[test]
    fn new_names_are_due_at_once_and_refreshed_at_three_quarters_of_the_shortest_ttl() {
        let t0 = Instant::now();
        let mut book = book_with(&["a.test", "b.test"], t0);
        assert_eq!(book.due(t0), [name("a.test"), name("b.test")]);
        let got = book.answered(
            &name("a.test"),
            &[(ip("127.0.0.2"), secs(40)), (ip("::1"), secs(20))],
            t0,
        );
        assert_eq!(got.added, [ip("127.0.0.2"), ip("::1")], "both are new");
        assert_eq!(book.due(t0), [name("b.test")], "a.test was just answered");
        assert_eq!(book.due(t0 + secs(14)), [name("b.test")]);
        assert_eq!(
            book.due(t0 + secs(15)),
            [name("a.test"), name("b.test")],
            "a.test is due at 3/4 of its shortest TTL (20s)"
        );
        assert_eq!(addrs_of(&book, "a.test"), ["127.0.0.2", "::1"]);
    }

    #[test]
    fn a_changed_record_adds_the_new_address_and_lets_the_old_one_run_out() {
        let t0 = Instant::now();
        let mut book = book_with(&["a.test"], t0);
        book.answered(&name("a.test"), &[(ip("127.0.0.2"), secs(10))], t0);
        let got = book.answered(
            &name("a.test"),
            &[(ip("127.0.0.3"), secs(10))],
            t0 + secs(8),
        );
        assert_eq!(got.added, [ip("127.0.0.3")]);
        assert_eq!(
            got.current,
            [ip("127.0.0.2"), ip("127.0.0.3")],
            "the old address keeps its TTL"
        );
        assert!(book.expire(t0 + secs(9)).is_empty(), "nothing expired yet");
        assert_eq!(
            book.expire(t0 + secs(10)),
            [(name("a.test"), vec![ip("127.0.0.2")])],
            "the old address goes when its TTL runs out"
        );
        assert_eq!(addrs_of(&book, "a.test"), ["127.0.0.3"]);
    }

    #[test]
    fn a_name_that_stops_resolving_keeps_its_addresses_until_their_ttl() {
        let t0 = Instant::now();
        let mut book = book_with(&["a.test"], t0);
        book.answered(&name("a.test"), &[(ip("127.0.0.2"), secs(8))], t0);
        // NXDOMAIN at 6s, then timeouts.
        book.answered(&name("a.test"), &[], t0 + secs(6));
        book.failed(&name("a.test"), t0 + secs(7));
        assert!(book.expire(t0 + secs(7)).is_empty());
        assert_eq!(addrs_of(&book, "a.test"), ["127.0.0.2"], "kept until 8s");
        assert_eq!(
            book.expire(t0 + secs(8)),
            [(name("a.test"), vec![ip("127.0.0.2")])]
        );
        assert!(
            book.snapshot().is_empty(),
            "a name without addresses is left out of the snapshot"
        );
    }

    #[test]
    fn small_ttls_are_raised_to_the_minimum_and_failures_back_off() {
        let t0 = Instant::now();
        let mut book = AddressBook::new(secs(8));
        book.want(&[name("a.test")].into_iter().collect(), t0);
        book.answered(&name("a.test"), &[(ip("192.0.2.1"), secs(0))], t0);
        assert_eq!(
            book.next_deadline(),
            Some(t0 + secs(6)),
            "3/4 of the 8s floor"
        );
        assert!(
            book.expire(t0 + secs(7)).is_empty(),
            "a TTL of 0 counts as 8s"
        );
        let mut at = t0 + secs(6);
        let mut waits = Vec::new();
        for _ in 0..5 {
            book.failed(&name("a.test"), at);
            let next = book.due(at + secs(60));
            assert_eq!(next, [name("a.test")]);
            let wait = (1..=60)
                .map(secs)
                .find(|w| !book.due(at + *w).is_empty())
                .expect("a retry within 60s");
            waits.push(wait.as_secs());
            at += wait;
        }
        assert_eq!(
            waits,
            [1, 2, 4, 8, 8],
            "doubling retries, capped at min_ttl"
        );
    }

    #[test]
    fn unwanted_names_are_forgotten_with_their_addresses() {
        let t0 = Instant::now();
        let mut book = book_with(&["a.test", "b.test"], t0);
        book.answered(&name("a.test"), &[(ip("192.0.2.1"), secs(60))], t0);
        book.answered(&name("b.test"), &[(ip("192.0.2.2"), secs(60))], t0);
        let added = book.want(&[name("b.test"), name("c.test")].into_iter().collect(), t0);
        assert_eq!(added, [name("c.test")]);
        assert_eq!(
            book.snapshot().keys().cloned().collect::<Vec<_>>(),
            [name("b.test")],
            "a.test is no longer wanted; c.test has not resolved"
        );
        assert_eq!(
            book.answered(&name("a.test"), &[(ip("192.0.2.9"), secs(60))], t0),
            Answered::default(),
            "a late answer for a dropped name is ignored"
        );
    }
}
