//! Addresses learned from the DNS answers the confined processes received (through the daemon's
//! proxy), for names the loaded policies' `host` rules match (wildcards, and exact names too:
//! the process may have been given an address the daemon's own lookup did not see, as CDNs
//! answer differently per query). Each address stays until the TTL of the last answer holding it
//! has passed; names are never asked again: only a new answer renews them.

use std::{
    collections::{BTreeMap, BTreeSet},
    net::IpAddr,
    time::{Duration, Instant},
};

use super::ttl::{self, Expiries};
use crate::{
    compile::ResolvedHosts,
    policy::{HostName, WildcardHost},
};

/// The names the loaded policies' `host` rules match.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct NamePatterns {
    /// Exact `host` names.
    pub exact: BTreeSet<HostName>,
    /// `*.suffix` patterns.
    pub wildcards: BTreeSet<WildcardHost>,
}

impl NamePatterns {
    /// Whether a rule names `name`.
    #[must_use]
    pub fn matches(&self, name: &HostName) -> bool {
        self.exact.contains(name) || self.wildcards.iter().any(|w| w.matches(name))
    }

    /// Whether no rule names any host.
    #[must_use]
    pub fn is_empty(&self) -> bool {
        self.exact.is_empty() && self.wildcards.is_empty()
    }
}

/// Learned names → address → when its TTL runs out.
#[derive(Debug)]
pub struct LearnedBook {
    entries: BTreeMap<HostName, Expiries>,
    min_ttl: Duration,
}

impl LearnedBook {
    /// An empty book; TTLs below `min_ttl` count as `min_ttl`.
    #[must_use]
    pub fn new(min_ttl: Duration) -> Self {
        Self {
            entries: BTreeMap::new(),
            min_ttl,
        }
    }

    /// Records the addresses an answer gave `name`; returns those it did not hold before.
    pub fn learn(
        &mut self,
        name: &HostName,
        answers: &[(IpAddr, Duration)],
        now: Instant,
    ) -> Vec<IpAddr> {
        let entry = self.entries.entry(name.clone()).or_default();
        let mut added = Vec::new();
        for &(addr, ttl) in answers {
            if ttl::hold(entry, addr, now + ttl.max(self.min_ttl)) {
                added.push(addr);
            }
        }
        if entry.is_empty() {
            self.entries.remove(name);
        }
        added
    }

    /// Forgets the names no rule matches any more (a reload dropped their rules).
    pub fn keep_matching(&mut self, patterns: &NamePatterns) {
        self.entries.retain(|name, _| patterns.matches(name));
    }

    /// Drops the addresses whose TTL ran out; returns them by name.
    pub fn expire(&mut self, now: Instant) -> Vec<(HostName, Vec<IpAddr>)> {
        let mut gone = Vec::new();
        for (name, addrs) in &mut self.entries {
            let expired = ttl::take_expired(addrs, now);
            if !expired.is_empty() {
                gone.push((name.clone(), expired));
            }
        }
        self.entries.retain(|_, addrs| !addrs.is_empty());
        gone
    }

    /// When the next address runs out.
    #[must_use]
    pub fn next_deadline(&self) -> Option<Instant> {
        self.entries
            .values()
            .flat_map(|a| a.values().copied())
            .min()
    }

    /// Adds the learned addresses to `resolved` (the daemon's own lookups).
    pub fn merge_into(&self, resolved: &mut ResolvedHosts) {
        for (name, addrs) in &self.entries {
            resolved
                .entry(name.clone())
                .or_default()
                .extend(addrs.keys().copied());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn name(text: &str) -> HostName {
        text.parse()
            .unwrap_or_else(|e| panic!("expected {text:?} to be a host name: {e}"))
    }

    fn ip(text: &str) -> IpAddr {
        text.parse()
            .unwrap_or_else(|e| panic!("expected {text:?} to be an address: {e}"))
    }

    fn secs(n: u64) -> Duration {
        Duration::from_secs(n)
    }

    fn patterns() -> NamePatterns {
        let wildcard: WildcardHost =
            serde_yaml_ng::from_str::<crate::policy::ConnectRule>("host: \"*.example.test\"")
                .ok()
                .and_then(|r| r.wildcard().cloned())
                .expect("a wildcard rule parses");
        NamePatterns {
            exact: [name("api.other.test")].into_iter().collect(),
            wildcards: [wildcard].into_iter().collect(),
        }
    }

    #[test]
    fn patterns_match_exact_names_and_names_beneath_wildcards() {
        let p = patterns();
        assert!(p.matches(&name("a.example.test")) && p.matches(&name("x.y.example.test")));
        assert!(p.matches(&name("api.other.test")));
        assert!(
            !p.matches(&name("example.test")),
            "the suffix itself is not matched"
        );
        assert!(!p.matches(&name("www.other.test")));
    }

    #[test]
    fn learned_addresses_last_their_ttl_renewed_by_later_answers_and_merge_with_lookups() {
        let t0 = Instant::now();
        let mut book = LearnedBook::new(secs(2));
        let a = name("a.example.test");
        assert_eq!(
            book.learn(&a, &[(ip("192.0.2.1"), secs(10))], t0),
            [ip("192.0.2.1")]
        );
        assert_eq!(
            book.learn(
                &a,
                &[(ip("192.0.2.1"), secs(10)), (ip("192.0.2.2"), secs(0))],
                t0 + secs(5)
            ),
            [ip("192.0.2.2")],
            "only the new address is added"
        );
        assert_eq!(
            book.next_deadline(),
            Some(t0 + secs(7)),
            "a TTL of 0 counts as min_ttl (2s)"
        );
        assert_eq!(
            book.expire(t0 + secs(7)),
            [(a.clone(), vec![ip("192.0.2.2")])]
        );
        assert!(
            book.expire(t0 + secs(14)).is_empty(),
            "192.0.2.1 was renewed until 15s"
        );
        let mut resolved = ResolvedHosts::new();
        resolved.insert(a.clone(), [ip("192.0.2.9")].into_iter().collect());
        book.merge_into(&mut resolved);
        assert_eq!(
            resolved
                .get(&a)
                .map(|s| s.iter().map(ToString::to_string).collect::<Vec<_>>()),
            Some(vec!["192.0.2.1".to_owned(), "192.0.2.9".to_owned()]),
            "learned and looked-up addresses add up"
        );
        assert_eq!(book.expire(t0 + secs(15)), [(a, vec![ip("192.0.2.1")])]);
        assert_eq!(book.next_deadline(), None, "nothing left");
    }

    #[test]
    fn names_no_rule_matches_any_more_are_forgotten() {
        let t0 = Instant::now();
        let mut book = LearnedBook::new(secs(2));
        book.learn(&name("a.example.test"), &[(ip("192.0.2.1"), secs(60))], t0);
        book.learn(&name("api.other.test"), &[(ip("192.0.2.2"), secs(60))], t0);
        let mut p = patterns();
        p.wildcards.clear();
        book.keep_matching(&p);
        let mut resolved = ResolvedHosts::new();
        book.merge_into(&mut resolved);
        assert_eq!(
            resolved.keys().map(ToString::to_string).collect::<Vec<_>>(),
            ["api.other.test"],
            "a.example.test went with the wildcard rule"
        );
    }
}
