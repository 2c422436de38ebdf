//! What a DNS answer says a process may connect to: the A and AAAA addresses of the asked name,
//! following the CNAME chain in the answer, each with the shortest TTL along its chain.

use std::{net::IpAddr, time::Duration};

use hickory_resolver::proto::{
    op::{Message, MessageType, ResponseCode},
    rr::{Name, RData},
    serialize::binary::BinDecodable,
};

use crate::policy::HostName;

/// Longest CNAME chain followed (resolvers stop well before this).
const CHAIN_MAX: usize = 16;

/// The addresses an answer gives one name of its chain.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NameAddresses {
    /// The asked name or an alias on its CNAME chain.
    pub name: HostName,
    /// Each address with the shortest TTL of the records leading to it from this name.
    pub addrs: Vec<(IpAddr, Duration)>,
}

/// Every name of every question's CNAME chain (the asked name first) with the addresses the
/// chain ends in. Nothing for a query, an error answer, a malformed message, or names that are
/// not plain host names (`_srv._tcp...`).
#[must_use]
pub fn addresses_by_name(wire: &[u8]) -> Vec<NameAddresses> {
    let Ok(message) = Message::from_bytes(wire) else {
        return Vec::new();
    };
    if message.message_type() != MessageType::Response
        || message.response_code() != ResponseCode::NoError
    {
        return Vec::new();
    }
    let mut found = Vec::new();
    for query in message.queries() {
        // (name, shortest TTL from the asked name down to it)
        let mut chain: Vec<(Name, u32)> = vec![(query.name().clone(), u32::MAX)];
        while chain.len() < CHAIN_MAX {
            let (current, ttl) = chain[chain.len() - 1].clone();
            let next = message.answers().iter().find_map(|r| match r.data() {
                RData::CNAME(target) if r.name() == &current => {
                    Some((target.0.clone(), ttl.min(r.ttl())))
                }
                _ => None,
            });
            match next {
                Some(next) if !chain.iter().any(|(n, _)| n == &next.0) => chain.push(next),
                _ => break,
            }
        }
        let (last, chain_ttl) = chain[chain.len() - 1].clone();
        let ends: Vec<(IpAddr, u32)> = message
            .answers()
            .iter()
            .filter(|r| r.name() == &last)
            .filter_map(|r| match r.data() {
                RData::A(a) => Some((IpAddr::V4(a.0), r.ttl().min(chain_ttl))),
                RData::AAAA(a) => Some((IpAddr::V6(a.0), r.ttl().min(chain_ttl))),
                _ => None,
            })
            .collect();
        if ends.is_empty() {
            continue;
        }
        // Each TTL is bounded by the whole chain's: the client caches what it asked for no
        // longer than its shortest record.
        for (name, _) in &chain {
            let Some(name) = host_name(name) else {
                continue;
            };
            let addrs = ends
                .iter()
                .map(|&(addr, ttl)| (addr, Duration::from_secs(ttl.into())))
                .collect();
            found.push(NameAddresses { name, addrs });
        }
    }
    found
}

fn host_name(name: &Name) -> Option<HostName> {
    let text = name.to_ascii();
    text.parse().ok()
}

#[cfg(test)]
mod tests {
    use std::{net::Ipv4Addr, str::FromStr};

    use hickory_resolver::proto::{
        op::{Message, MessageType, Query},
        rr::{Name, RData, Record, RecordType, rdata},
        serialize::binary::BinEncodable,
    };

    use super::*;

    fn name(text: &str) -> Name {
        Name::from_str(text).unwrap_or_else(|e| panic!("expected {text:?} to be a DNS name: {e}"))
    }

    fn answer(asked: &str, records: Vec<Record>, code: ResponseCode) -> Vec<u8> {
        let mut m = Message::new();
        m.set_message_type(MessageType::Response);
        m.set_response_code(code);
        m.add_query(Query::query(name(asked), RecordType::A));
        m.add_answers(records);
        m.to_bytes().expect("the test message encodes")
    }

    fn a(owner: &str, ttl: u32, ip: [u8; 4]) -> Record {
        Record::from_rdata(name(owner), ttl, RData::A(rdata::A(Ipv4Addr::from(ip))))
    }

    fn cname(owner: &str, ttl: u32, target: &str) -> Record {
        Record::from_rdata(name(owner), ttl, RData::CNAME(rdata::CNAME(name(target))))
    }

    fn texts(found: &[NameAddresses]) -> Vec<(String, Vec<(String, u64)>)> {
        found
            .iter()
            .map(|n| {
                (
                    n.name.to_string(),
                    n.addrs
                        .iter()
                        .map(|(a, t)| (a.to_string(), t.as_secs()))
                        .collect(),
                )
            })
            .collect()
    }

    #[test]
    fn a_cname_chain_gives_its_addresses_to_every_name_with_the_shortest_ttl() {
        let wire = answer(
            "A.Example.test.",
            vec![
                cname("a.example.test.", 30, "edge.cdn.test."),
                cname("edge.cdn.test.", 300, "pop1.cdn.test."),
                a("pop1.cdn.test.", 60, [192, 0, 2, 1]),
                a("pop1.cdn.test.", 10, [192, 0, 2, 2]),
                a("unrelated.test.", 60, [192, 0, 2, 99]),
            ],
            ResponseCode::NoError,
        );
        let expected = vec![("192.0.2.1".to_owned(), 30), ("192.0.2.2".to_owned(), 10)];
        assert_eq!(
            texts(&addresses_by_name(&wire)),
            [
                ("a.example.test".to_owned(), expected.clone()),
                ("edge.cdn.test".to_owned(), expected.clone()),
                ("pop1.cdn.test".to_owned(), expected),
            ],
            "every name on the chain gets the chain's end addresses, each TTL bounded by the \
             chain's; a record off the chain is ignored"
        );
    }

    #[test]
    fn errors_queries_loops_and_garbage_give_nothing() {
        let nx = answer(
            "a.example.test.",
            vec![a("a.example.test.", 60, [192, 0, 2, 1])],
            ResponseCode::NXDomain,
        );
        assert!(
            addresses_by_name(&nx).is_empty(),
            "an error answer installs nothing"
        );
        let looped = answer(
            "a.example.test.",
            vec![
                cname("a.example.test.", 60, "b.example.test."),
                cname("b.example.test.", 60, "a.example.test."),
            ],
            ResponseCode::NoError,
        );
        assert!(
            addresses_by_name(&looped).is_empty(),
            "a CNAME loop ends in no address"
        );
        assert!(addresses_by_name(b"\x00\x01garbage").is_empty());
        let mut query = Message::new();
        query.add_query(Query::query(name("a.example.test."), RecordType::A));
        query.add_answer(a("a.example.test.", 60, [192, 0, 2, 1]));
        let query = query.to_bytes().expect("the test message encodes");
        assert!(
            addresses_by_name(&query).is_empty(),
            "a query is not an answer"
        );
    }
}
