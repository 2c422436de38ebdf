//! The keys of `corral.toml`. Every key is optional; an absent key takes the default shown in
//! `deploy/corral.toml`. Unknown keys are errors.

use std::{net::SocketAddr, path::PathBuf, time::Duration};

use serde::Deserialize;

/// Default path of the configuration file.
pub const DEFAULT_CONFIG: &str = "/etc/corral/corral.toml";
/// Default directory of task policies.
pub const DEFAULT_POLICIES: &str = "/etc/corral/policies";
/// Default Prometheus listen address: loopback only.
pub const DEFAULT_METRICS_LISTEN: &str = "127.0.0.1:9464";

/// The whole file.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize, Default)]
#[serde(deny_unknown_fields, default)]
pub struct Config {
    /// `[daemon]`: where the policies and the control socket are.
    pub daemon: DaemonSection,
    /// `[events]`: where decisions go (stdout, a rotated file, live subscribers).
    pub events: EventsSection,
    /// `[metrics]`: the Prometheus endpoint with `/healthz` and `/readyz`.
    pub metrics: MetricsSection,
    /// `[log]`: the daemon's own log (stderr, journald-friendly).
    pub log: LogSection,
    /// `[dns]`: how the daemon resolves the `host` of connect rules.
    pub dns: DnsSection,
}

/// `[daemon]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DaemonSection {
    /// Directory of task policies (`*.yaml`, one task per file). `--policies` overrides it.
    pub policies: PathBuf,
    /// Control socket path. `--socket` overrides it.
    pub socket: PathBuf,
}

impl Default for DaemonSection {
    fn default() -> Self {
        Self {
            policies: PathBuf::from(DEFAULT_POLICIES),
            socket: PathBuf::from(crate::daemon::protocol::DEFAULT_SOCKET),
        }
    }
}

/// `[events]`. `--events -` means stdout only, `--events PATH` that file only.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct EventsSection {
    /// Write each event as one JSON line on stdout.
    pub stdout: bool,
    /// Append each event as one JSON line to this file (absent: no file).
    pub file: Option<PathBuf>,
    /// Rotate the file before a line would make it larger than this many bytes (0: never).
    pub rotate_bytes: u64,
    /// Rotated files kept beside the file (`FILE.1` newest … `FILE.N` oldest); at least 1.
    #[serde(deserialize_with = "at_least_one_u32")]
    pub keep: u32,
    /// Recent events kept in memory for `corral events` (without `--follow`).
    #[serde(deserialize_with = "at_most_a_million")]
    pub backlog: usize,
    /// Events queued for one live subscriber before its further events are dropped (counted,
    /// and the subscriber is told with a `{"dropped":N}` line); at least 1.
    #[serde(deserialize_with = "queue_len")]
    pub subscriber_queue: usize,
    /// Which allowed decisions of confined processes become events: `none` (only counted),
    /// `sampled` (one in `allowed_sample`, chosen at random in the kernel) or `all`. Changes
    /// apply on `SIGHUP`.
    pub allowed: AllowedEvents,
    /// With `allowed = "sampled"`: one allowed decision in this many becomes an event on
    /// average (1 to 1048576; 1 reports every one).
    #[serde(deserialize_with = "sample_rate")]
    pub allowed_sample: u32,
}

impl Default for EventsSection {
    fn default() -> Self {
        Self {
            stdout: true,
            file: None,
            rotate_bytes: 64 << 20,
            keep: 5,
            backlog: 1000,
            subscriber_queue: 1024,
            allowed: AllowedEvents::None,
            allowed_sample: 100,
        }
    }
}

/// `events.allowed`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum AllowedEvents {
    /// Allowed decisions are counted (`corral status`, metrics), never sent as events.
    #[default]
    None,
    /// One allowed decision in `events.allowed_sample` is sent as an event (with
    /// `"decision":"allowed"`), chosen at random by the kernel programs.
    Sampled,
    /// Every allowed decision of a confined process is sent as an event.
    All,
}

impl AllowedEvents {
    /// The code the kernel programs read from the `SETTINGS` map.
    #[must_use]
    pub const fn code(self) -> agent_common::AllowedEvents {
        match self {
            Self::None => agent_common::AllowedEvents::None,
            Self::Sampled => agent_common::AllowedEvents::Sampled,
            Self::All => agent_common::AllowedEvents::All,
        }
    }
}

impl<'de> Deserialize<'de> for AllowedEvents {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        match text.as_str() {
            "none" => Ok(Self::None),
            "sampled" => Ok(Self::Sampled),
            "all" => Ok(Self::All),
            _ => Err(serde::de::Error::custom(format!(
                "unknown value `{text}`, expected `none`, `sampled` or `all`"
            ))),
        }
    }
}

impl EventsSection {
    /// What the kernel programs read from `SETTINGS`.
    #[must_use]
    pub const fn kernel_settings(&self) -> agent_common::Settings {
        agent_common::Settings {
            allowed_events: self.allowed.code() as u32,
            allowed_sample: self.allowed_sample,
        }
    }
}

/// `[metrics]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct MetricsSection {
    /// Serve `/metrics`, `/healthz` and `/readyz` over HTTP.
    pub enabled: bool,
    /// Address to listen on (`IP:PORT`). Loopback by default: expose it deliberately.
    pub listen: SocketAddr,
}

impl Default for MetricsSection {
    fn default() -> Self {
        Self {
            enabled: true,
            listen: SocketAddr::from(([127, 0, 0, 1], 9464)),
        }
    }
}

/// `[log]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogSection {
    /// Log filter (`tracing` syntax, e.g. `info` or `corral=debug`); `CORRAL_LOG` overrides it.
    #[serde(deserialize_with = "log_filter")]
    pub level: String,
}

impl Default for LogSection {
    fn default() -> Self {
        Self {
            level: "info".to_owned(),
        }
    }
}

/// `[dns]`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct DnsSection {
    /// Name servers asked for the A and AAAA records of `host` rules (`IP:PORT`, tried in
    /// order). Empty: the `nameserver` lines of `/etc/resolv.conf`, on port 53.
    pub servers: Vec<SocketAddr>,
    /// Shortest time an answer counts for (`humantime`, e.g. `5s`): a smaller TTL is raised to
    /// it, for the refresh and for how long addresses stay allowed. At least 1s.
    #[serde(deserialize_with = "min_ttl")]
    pub min_ttl: Duration,
}

impl Default for DnsSection {
    fn default() -> Self {
        Self {
            servers: Vec::new(),
            min_ttl: Duration::from_secs(5),
        }
    }
}

fn min_ttl<'de, D: serde::Deserializer<'de>>(d: D) -> Result<Duration, D::Error> {
    let text = String::deserialize(d)?;
    let ttl = humantime::parse_duration(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid duration `{text}`: {e}")))?;
    if ttl < Duration::from_secs(1) {
        return Err(serde::de::Error::custom(format!(
            "`{text}` is less than 1s"
        )));
    }
    Ok(ttl)
}

fn at_least_one_u32<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

fn sample_rate<'de, D: serde::Deserializer<'de>>(d: D) -> Result<u32, D::Error> {
    let n = u32::deserialize(d)?;
    if n == 0 || n > agent_common::ALLOWED_SAMPLE_MAX {
        return Err(serde::de::Error::custom(format!(
            "{n} is not between 1 and {}",
            agent_common::ALLOWED_SAMPLE_MAX
        )));
    }
    Ok(n)
}

fn at_most_a_million<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = usize::deserialize(d)?;
    if n > 1_000_000 {
        return Err(serde::de::Error::custom(format!(
            "{n} is more than 1000000"
        )));
    }
    Ok(n)
}

fn queue_len<'de, D: serde::Deserializer<'de>>(d: D) -> Result<usize, D::Error> {
    let n = at_most_a_million(d)?;
    if n == 0 {
        return Err(serde::de::Error::custom("must be at least 1"));
    }
    Ok(n)
}

fn log_filter<'de, D: serde::Deserializer<'de>>(d: D) -> Result<String, D::Error> {
    let text = String::deserialize(d)?;
    tracing_subscriber::EnvFilter::try_new(&text)
        .map_err(|e| serde::de::Error::custom(format!("invalid log filter `{text}`: {e}")))?;
    Ok(text)
}
