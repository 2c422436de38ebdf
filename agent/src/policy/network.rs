//! `spec.network.connect`: CIDR or DNS-name + port rules for TCP/UDP destinations.

use std::fmt;

use ipnet::{IpNet, Ipv4Net};
use serde::{
    Deserialize, Deserializer,
    de::{self, SeqAccess, Visitor},
};

use super::{
    host::HostName,
    scalar::{ScalarRule, deserialize_as_scalar},
    wildcard::{HostField, WildcardHost},
};

/// One `connect` entry: destinations (`cidr` or `host`, exactly one), on `ports`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(try_from = "RawConnectRule")]
pub struct ConnectRule {
    /// `cidr` or `host`, as written.
    destination: Destination,
    /// `ports`; `None` = every port.
    ports: Option<PortList>,
}

/// Where a connect rule allows connecting to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Destination {
    /// Every address of a network.
    Cidr(IpNet),
    /// The addresses a DNS name resolves to, kept current by the daemon.
    Host(HostName),
    /// The addresses of every name beneath a suffix that the task's processes looked up, as
    /// their DNS answers said (learned by the daemon's DNS proxy), until the answers' TTLs run out.
    Wildcard(WildcardHost),
}

/// `connect` entry as written, before the one-destination check.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct RawConnectRule {
    /// Destination network, e.g. `10.0.0.0/8` or `"2001:db8::/32"`. Host bits must be zero.
    /// An IPv4-mapped IPv6 network (`::ffff:10.0.0.0/104`) is read as the IPv4 network, since the
    /// kernel judges IPv4-mapped destinations as IPv4.
    #[serde(default)]
    cidr: Option<Cidr>,
    /// Destination DNS name, e.g. `api.github.com`: the daemon resolves it (A and AAAA, honouring
    /// the TTLs) and allows the addresses it answers. Or a wildcard, `"*.githubusercontent.com"`
    /// (names strictly beneath the suffix, any depth): the daemon allows the addresses of the
    /// matching names the task's processes look up themselves, as their DNS answers said (their
    /// DNS goes through the daemon's proxy). Exclusive with `cidr`.
    #[serde(default)]
    host: Option<HostField>,
    /// Allowed destination ports: integers (`443`) and inclusive ranges (`"9000-9100"`).
    /// Absent = every port. An empty list is an error (it would allow nothing).
    #[serde(default)]
    ports: Option<PortList>,
}

impl TryFrom<RawConnectRule> for ConnectRule {
    type Error = String;

    fn try_from(raw: RawConnectRule) -> Result<Self, String> {
        let destination = match (raw.cidr, raw.host) {
            (Some(cidr), None) => Destination::Cidr(cidr.0),
            (None, Some(HostField::Name(host))) => Destination::Host(host),
            (None, Some(HostField::Wildcard(pattern))) => Destination::Wildcard(pattern),
            (Some(_), Some(_)) => {
                return Err("a connect rule has `cidr` or `host`, not both".to_owned());
            }
            (None, None) => {
                return Err("a connect rule needs a destination: `cidr` or `host`".to_owned());
            }
        };
        Ok(Self {
            destination,
            ports: raw.ports,
        })
    }
}

impl ConnectRule {
    /// Where the rule allows connecting to.
    #[must_use]
    pub fn destination(&self) -> &Destination {
        &self.destination
    }

    /// The destination network of a `cidr` rule (host bits zero, IPv4-mapped networks converted
    /// to IPv4); `None` for a `host` rule.
    #[must_use]
    pub fn cidr(&self) -> Option<IpNet> {
        match &self.destination {
            Destination::Cidr(net) => Some(*net),
            Destination::Host(_) | Destination::Wildcard(_) => None,
        }
    }

    /// The DNS name of a `host` rule; `None` for a `cidr` rule.
    #[must_use]
    pub fn host(&self) -> Option<&HostName> {
        match &self.destination {
            Destination::Host(name) => Some(name),
            Destination::Cidr(_) | Destination::Wildcard(_) => None,
        }
    }

    /// The pattern of a wildcard `host` rule; `None` otherwise.
    #[must_use]
    pub fn wildcard(&self) -> Option<&WildcardHost> {
        match &self.destination {
            Destination::Wildcard(pattern) => Some(pattern),
            Destination::Cidr(_) | Destination::Host(_) => None,
        }
    }

    /// Whether the rule names hosts (exactly or by wildcard), so its entries follow DNS answers.
    #[must_use]
    pub fn by_name(&self) -> bool {
        !matches!(self.destination, Destination::Cidr(_))
    }

    /// The allowed port ranges; `None` means every port.
    #[must_use]
    pub fn ports(&self) -> Option<&[PortSpan]> {
        self.ports.as_ref().map(|p| p.0.as_slice())
    }
}

impl fmt::Display for Destination {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::Cidr(net) => write!(f, "{net}"),
            Self::Host(name) => write!(f, "host {name}"),
            Self::Wildcard(pattern) => write!(f, "host {pattern}"),
        }
    }
}

/// A validated destination network.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Cidr(IpNet);

impl ScalarRule for Cidr {
    const EXPECTING: &'static str = "a CIDR such as 10.0.0.0/8";

    fn parse(text: &str) -> Result<Self, String> {
        let invalid = |problem: &dyn fmt::Display| format!("invalid CIDR {text:?}: {problem}");
        if !text.contains('/') {
            let hint = if text.contains(':') { 128 } else { 32 };
            return Err(invalid(&format_args!(
                "missing prefix length (for a single address write \"{text}/{hint}\")"
            )));
        }
        let net: IpNet = text.parse().map_err(|e| invalid(&e))?;
        if net.trunc() != net {
            return Err(invalid(&format_args!(
                "host bits are set; did you mean \"{}\"?",
                net.trunc()
            )));
        }
        Ok(Self(unmap_v4(net)))
    }
}

deserialize_as_scalar!(Cidr);

/// `::ffff:a.b.c.d/n` (n >= 96) as the IPv4 network `a.b.c.d/(n-96)`; anything else unchanged.
fn unmap_v4(net: IpNet) -> IpNet {
    let IpNet::V6(v6) = net else {
        return net;
    };
    let mapped = v6
        .network()
        .to_ipv4_mapped()
        .filter(|_| v6.prefix_len() >= 96);
    match mapped.map(|v4| Ipv4Net::new(v4, v6.prefix_len() - 96)) {
        Some(Ok(v4net)) => IpNet::V4(v4net),
        _ => net,
    }
}

/// An inclusive range of destination ports (a single port is `lo == hi`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub struct PortSpan {
    lo: u16,
    hi: u16,
}

impl PortSpan {
    #[must_use]
    pub fn lo(self) -> u16 {
        self.lo
    }

    #[must_use]
    pub fn hi(self) -> u16 {
        self.hi
    }

    fn port(value: u64, text: &dyn fmt::Display) -> Result<u16, String> {
        match u16::try_from(value) {
            Ok(0) | Err(_) => Err(format!("invalid port {text}: ports are 1..=65535")),
            Ok(port) => Ok(port),
        }
    }

    fn parse_text(text: &str) -> Result<Self, String> {
        let number = |part: &str| {
            let value: u64 = part
                .trim()
                .parse()
                .map_err(|_| format!("invalid port {text:?}: expected a port or \"lo-hi\""))?;
            Self::port(value, &format_args!("{text:?}"))
        };
        let (lo, hi) = if let Some((lo, hi)) = text.split_once('-') {
            (number(lo)?, number(hi)?)
        } else {
            let port = number(text)?;
            (port, port)
        };
        if lo > hi {
            return Err(format!(
                "invalid port range {text:?}: the start is after the end"
            ));
        }
        Ok(Self { lo, hi })
    }
}

impl<'de> Deserialize<'de> for PortSpan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct PortVisitor;

        impl Visitor<'_> for PortVisitor {
            type Value = PortSpan;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a port (1..=65535) or a \"lo-hi\" range")
            }

            fn visit_u64<E: de::Error>(self, value: u64) -> Result<PortSpan, E> {
                let port = PortSpan::port(value, &value).map_err(E::custom)?;
                Ok(PortSpan { lo: port, hi: port })
            }

            fn visit_i64<E: de::Error>(self, value: i64) -> Result<PortSpan, E> {
                match u64::try_from(value) {
                    Ok(value) => self.visit_u64(value),
                    Err(_) => Err(E::custom(format!(
                        "invalid port {value}: ports are 1..=65535"
                    ))),
                }
            }

            fn visit_str<E: de::Error>(self, text: &str) -> Result<PortSpan, E> {
                PortSpan::parse_text(text).map_err(E::custom)
            }
        }

        deserializer.deserialize_any(PortVisitor)
    }
}

/// A non-empty list of port spans.
#[derive(Debug, Clone, PartialEq, Eq)]
struct PortList(Vec<PortSpan>);

impl<'de> Deserialize<'de> for PortList {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        struct ListVisitor;

        impl<'de> Visitor<'de> for ListVisitor {
            type Value = PortList;

            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a list of ports")
            }

            fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<PortList, A::Error> {
                let mut spans = Vec::new();
                while let Some(span) = seq.next_element()? {
                    spans.push(span);
                }
                if spans.is_empty() {
                    return Err(de::Error::custom(
                        "empty port list allows nothing; omit `ports` to allow every port",
                    ));
                }
                Ok(PortList(spans))
            }
        }

        deserializer.deserialize_seq(ListVisitor)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cidr(text: &str) -> IpNet {
        Cidr::parse(text)
            .unwrap_or_else(|e| panic!("expected {text:?} to be a valid CIDR: {e}"))
            .0
    }

    #[test]
    fn keeps_v4_and_v6_networks() {
        assert_eq!(cidr("10.0.0.0/8").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("127.0.0.1/32").to_string(), "127.0.0.1/32");
        assert_eq!(cidr("::1/128").to_string(), "::1/128");
        assert_eq!(cidr("2001:db8::/32").to_string(), "2001:db8::/32");
        assert_eq!(cidr("0.0.0.0/0").to_string(), "0.0.0.0/0");
    }

    #[test]
    fn converts_v4_mapped_networks_to_v4() {
        assert_eq!(cidr("::ffff:10.0.0.0/104").to_string(), "10.0.0.0/8");
        assert_eq!(cidr("::ffff:127.0.0.1/128").to_string(), "127.0.0.1/32");
        assert_eq!(cidr("::ffff:0:0/96").to_string(), "0.0.0.0/0");
        assert!(
            matches!(cidr("::ffff:192.0.2.0/120"), IpNet::V4(_)),
            "a mapped network should become IPv4"
        );
        // Shorter than /96 it is not inside the mapped range: stays IPv6.
        assert_eq!(cidr("::/0").to_string(), "::/0");
    }

    #[test]
    fn rejects_bad_cidrs_with_a_hint() {
        for (text, expected) in [
            (
                "10.0.0.1/8",
                "host bits are set; did you mean \"10.0.0.0/8\"?",
            ),
            ("2001:db8::1/32", "did you mean \"2001:db8::/32\"?"),
            (
                "10.0.0.300/8",
                "invalid CIDR \"10.0.0.300/8\": invalid IP address syntax",
            ),
            ("10.0.0.0/33", "invalid CIDR \"10.0.0.0/33\""),
            (
                "10.0.0.1",
                "missing prefix length (for a single address write \"10.0.0.1/32\")",
            ),
            ("::1", "write \"::1/128\""),
        ] {
            let err = Cidr::parse(text).expect_err(&format!("expected {text:?} to be rejected"));
            assert!(
                err.contains(expected),
                "error for {text:?} should contain {expected:?}, got {err:?}"
            );
        }
    }

    #[test]
    fn parses_port_ranges_and_rejects_bad_ones() {
        let span = PortSpan::parse_text("9000-9100").expect("\"9000-9100\" should be a range");
        assert_eq!((span.lo(), span.hi()), (9000, 9100));
        let span = PortSpan::parse_text("443").expect("\"443\" should be a single port");
        assert_eq!((span.lo(), span.hi()), (443, 443));
        for (text, expected) in [
            ("0", "ports are 1..=65535"),
            ("0-10", "ports are 1..=65535"),
            ("10-65536", "ports are 1..=65535"),
            ("100-10", "the start is after the end"),
            ("http", "expected a port or \"lo-hi\""),
            ("1-", "expected a port or \"lo-hi\""),
        ] {
            let err =
                PortSpan::parse_text(text).expect_err(&format!("expected {text:?} to be rejected"));
            assert!(
                err.contains(expected),
                "error for {text:?} should contain {expected:?}, got {err:?}"
            );
        }
    }
}
