//! Asking the name servers: A and AAAA records of one name, with their TTLs (hickory-resolver,
//! without its cache, so every answer is fresh and its TTLs are the server's).

use std::{
    net::{IpAddr, SocketAddr},
    path::{Path, PathBuf},
    time::Duration,
};

use hickory_resolver::{
    ResolveError, TokioResolver,
    config::{NameServerConfig, ResolveHosts, ResolverConfig, ResolverOpts},
    name_server::TokioConnectionProvider,
    proto::{
        rr::{RData, RecordType},
        xfer::Protocol,
    },
};

use crate::policy::HostName;

/// Where the default servers come from.
pub const RESOLV_CONF: &str = "/etc/resolv.conf";
/// How long one query waits for one server.
const QUERY_TIMEOUT: Duration = Duration::from_secs(2);

/// Why there are no servers to ask.
#[derive(Debug, thiserror::Error)]
pub enum UpstreamError {
    #[error("cannot read {}: {source}", path.display())]
    Read {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("{} names no name server (set `[dns] servers` in corral.toml)", path.display())]
    NoServers { path: PathBuf },
}

/// What a name resolved to.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Outcome {
    /// The servers answered: every address with its TTL (the shortest TTL of the records that
    /// led to it, CNAMEs included). Empty when the name has neither A nor AAAA records.
    Answer(Vec<(IpAddr, Duration)>),
    /// The name does not exist (NXDOMAIN).
    NoSuchName,
    /// No usable answer: timeout, SERVFAIL, refused, unreachable servers.
    Failed(String),
}

impl Outcome {
    /// The `result` label of `corral_dns_resolutions_total`.
    #[must_use]
    pub fn label(&self) -> &'static str {
        match self {
            Self::Answer(a) if a.is_empty() => "no_records",
            Self::Answer(_) => "ok",
            Self::NoSuchName => "nxdomain",
            Self::Failed(_) => "error",
        }
    }
}

/// The `nameserver` lines of a resolv.conf, on port 53.
pub fn servers_from_resolv_conf(path: &Path) -> Result<Vec<SocketAddr>, UpstreamError> {
    let text = std::fs::read_to_string(path).map_err(|source| UpstreamError::Read {
        path: path.to_owned(),
        source,
    })?;
    let servers: Vec<SocketAddr> = text
        .lines()
        .filter_map(|line| line.strip_prefix("nameserver"))
        .filter_map(|rest| {
            let addr = rest.split_whitespace().next()?;
            // A scoped IPv6 address (fe80::1%eth0) keeps only the address.
            let addr = addr.split('%').next()?;
            addr.parse::<IpAddr>().ok()
        })
        .map(|ip| SocketAddr::new(ip, 53))
        .collect();
    if servers.is_empty() {
        return Err(UpstreamError::NoServers {
            path: path.to_owned(),
        });
    }
    Ok(servers)
}

/// The name servers, asked over UDP (TCP when an answer is truncated), in the configured order.
pub struct Upstream {
    resolver: TokioResolver,
}

impl Upstream {
    #[must_use]
    pub fn new(servers: &[SocketAddr]) -> Self {
        let mut group = Vec::new();
        for server in servers {
            group.push(NameServerConfig::new(*server, Protocol::Udp));
            group.push(NameServerConfig::new(*server, Protocol::Tcp));
        }
        let config = ResolverConfig::from_parts(None, Vec::new(), group);
        let mut opts = ResolverOpts::default();
        opts.cache_size = 0;
        opts.use_hosts_file = ResolveHosts::Never;
        opts.timeout = QUERY_TIMEOUT;
        opts.attempts = 1;
        opts.ndots = 0;
        opts.server_ordering_strategy =
            hickory_resolver::config::ServerOrderingStrategy::UserProvidedOrder;
        let resolver =
            TokioResolver::builder_with_config(config, TokioConnectionProvider::default())
                .with_options(opts)
                .build();
        Self { resolver }
    }

    /// Asks for the A and AAAA records of `name` (as a fully qualified name: no search domains).
    pub async fn resolve(&self, name: &HostName) -> Outcome {
        let fqdn = format!("{name}.");
        let (v4, v6) = futures_util::future::join(
            self.resolver.lookup(fqdn.as_str(), RecordType::A),
            self.resolver.lookup(fqdn.as_str(), RecordType::AAAA),
        )
        .await;
        let mut answers = Vec::new();
        let mut nxdomain = 0;
        let mut errors = Vec::new();
        for result in [v4, v6] {
            match result {
                Ok(lookup) => {
                    let ttl = lookup
                        .records()
                        .iter()
                        .map(hickory_resolver::proto::rr::Record::ttl)
                        .min()
                        .unwrap_or(0);
                    answers.extend(lookup.iter().filter_map(|rdata| match rdata {
                        RData::A(a) => Some((IpAddr::V4(a.0), Duration::from_secs(ttl.into()))),
                        RData::AAAA(a) => Some((IpAddr::V6(a.0), Duration::from_secs(ttl.into()))),
                        _ => None,
                    }));
                }
                Err(e) if e.is_nx_domain() => nxdomain += 1,
                Err(e) if e.is_no_records_found() => {}
                Err(e) => errors.push(describe(&e)),
            }
        }
        if !answers.is_empty() {
            // One family answered: the other's failure does not take its addresses away.
            return Outcome::Answer(answers);
        }
        if let Some(first) = errors.into_iter().next() {
            return Outcome::Failed(first);
        }
        if nxdomain > 0 {
            Outcome::NoSuchName
        } else {
            Outcome::Answer(Vec::new())
        }
    }
}

fn describe(e: &ResolveError) -> String {
    e.to_string()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resolv_conf_servers_are_read_on_port_53() {
        let dir = std::env::temp_dir().join(format!("corral-resolv-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("cannot create a scratch directory");
        let path = dir.join("resolv.conf");
        std::fs::write(
            &path,
            "# comment\nsearch corp.example\nnameserver 10.0.0.2\nnameserver fe80::1%eth0\nnameserver not-an-ip\noptions ndots:2\n",
        )
        .expect("cannot write resolv.conf");
        let servers = servers_from_resolv_conf(&path)
            .unwrap_or_else(|e| panic!("expected the servers to be read: {e}"));
        let texts: Vec<String> = servers.iter().map(ToString::to_string).collect();
        assert_eq!(texts, ["10.0.0.2:53", "[fe80::1]:53"]);
        std::fs::write(&path, "search corp.example\n").expect("cannot write resolv.conf");
        let err = servers_from_resolv_conf(&path).expect_err("no nameserver line is an error");
        assert!(
            err.to_string().contains("names no name server"),
            "unexpected error: {err}"
        );
        let _ = std::fs::remove_dir_all(&dir);
    }
}
