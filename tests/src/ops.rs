//! Harness for the operations tests: a daemon started with a `corral.toml` of the test's own
//! (metrics on a free loopback port), its Prometheus endpoint, the `corral-burst` helper and
//! the rotated event files.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::time::Duration;

use prometheus_parse::{Scrape, Value as Sample};

use crate::daemon::{Daemon, Launch};
use crate::env;
use crate::policy::Policy;
use crate::runtime;
use crate::scratch::Scratch;

/// A daemon with its configuration file and metrics address.
pub struct OpsDaemon {
    pub daemon: Daemon,
    pub metrics: SocketAddr,
    /// The daemon's `corral.toml` (tests may edit it and send `SIGHUP`).
    pub config_file: PathBuf,
    /// Holds the configuration file; removed after the daemon (fields drop in order).
    _config: Scratch,
}

/// A free loopback port (bound and released: good enough on a test host).
#[must_use]
pub fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map_or_else(
            |e| panic!("expected a free loopback port: {e}"),
            |a| a.port(),
        )
}

impl OpsDaemon {
    /// Starts a daemon with `policies` and a `corral.toml` made of `toml` plus a `[metrics]`
    /// section on a free loopback port (given through `CORRAL_CONFIG`).
    #[must_use]
    pub fn start(policies: &[&Policy], toml: &str) -> Self {
        Self::start_with(policies, toml, false)
    }

    /// `start`, but without `--events`: the event sinks are the ones `toml` names.
    #[must_use]
    pub fn start_own_sinks(policies: &[&Policy], toml: &str) -> Self {
        Self::start_with(policies, toml, true)
    }

    /// The `[metrics]` section `start` adds to a configuration (to keep it in an edit).
    #[must_use]
    pub fn metrics_section(&self) -> String {
        format!(
            "\n[metrics]\nenabled = true\nlisten = \"{}\"\n",
            self.metrics
        )
    }

    fn start_with(policies: &[&Policy], toml: &str, no_events_flag: bool) -> Self {
        let config = Scratch::new("ops-config");
        let metrics = SocketAddr::from(([127, 0, 0, 1], free_port()));
        let text = format!("{toml}\n[metrics]\nenabled = true\nlisten = \"{metrics}\"\n");
        let path = config.file("corral.toml", &text);
        let files: Vec<(String, String)> =
            policies.iter().map(|p| (p.file_name(), p.yaml())).collect();
        let refs: Vec<(&str, &str)> = files
            .iter()
            .map(|(n, y)| (n.as_str(), y.as_str()))
            .collect();
        let daemon = Daemon::launch(&Launch {
            policies: &refs,
            env: &[("CORRAL_CONFIG", &path)],
            no_events_flag,
            ..Launch::default()
        });
        Self {
            daemon,
            metrics,
            config_file: PathBuf::from(&path),
            _config: config,
        }
    }

    /// `GET path` on the metrics endpoint: status code and body.
    #[must_use]
    pub fn get(&self, path: &str) -> (u16, String) {
        http_get(self.metrics, path)
    }

    /// `/metrics`, parsed with a Prometheus text parser.
    #[must_use]
    pub fn scrape(&self) -> Scrape {
        let (code, body) = self.get("/metrics");
        assert_eq!(
            code, 200,
            "expected /metrics to answer 200, got {code}:\n{body}"
        );
        Scrape::parse(body.lines().map(|l| Ok(l.to_owned())))
            .unwrap_or_else(|e| panic!("expected Prometheus text from /metrics: {e}\n{body}"))
    }
}

/// A minimal HTTP/1.1 GET (no client library needed for one request).
#[must_use]
pub fn http_get(addr: SocketAddr, path: &str) -> (u16, String) {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5))
        .unwrap_or_else(|e| panic!("expected the metrics endpoint at {addr}: {e}"));
    let _ = stream.set_read_timeout(Some(Duration::from_secs(10)));
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n"
    )
    .unwrap_or_else(|e| panic!("expected to send GET {path}: {e}"));
    let mut raw = String::new();
    stream
        .read_to_string(&mut raw)
        .unwrap_or_else(|e| panic!("expected an answer to GET {path}: {e}"));
    let (head, body) = raw.split_once("\r\n\r\n").unwrap_or((&raw, ""));
    let code = head
        .split(' ')
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or_else(|| panic!("expected an HTTP status line, got:\n{head}"));
    (code, body.to_owned())
}

/// The value of the sample of `metric` with exactly these labels, if present.
#[must_use]
pub fn sample(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<f64> {
    scrape
        .samples
        .iter()
        .find(|s| {
            s.metric == metric
                && s.labels.len() == labels.len()
                && labels.iter().all(|(k, v)| s.labels.get(k) == Some(*v))
        })
        .map(|s| match s.value {
            Sample::Counter(v) | Sample::Gauge(v) | Sample::Untyped(v) => v,
            _ => f64::NAN,
        })
}

/// `sample`, which must be present.
#[must_use]
pub fn expect_sample(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> f64 {
    sample(scrape, metric, labels).unwrap_or_else(|| {
        let same: Vec<String> = scrape
            .samples
            .iter()
            .filter(|s| s.metric == metric)
            .map(|s| format!("  {}{{{}}} {:?}", s.metric, s.labels, s.value))
            .collect();
        panic!(
            "expected a sample {metric}{labels:?}; samples of that metric:\n{}",
            same.join("\n")
        )
    })
}

/// `expect_sample` as a whole count (counters and gauges of things).
#[must_use]
pub fn expect_count(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> u64 {
    let v = expect_sample(scrape, metric, labels);
    assert!(
        v >= 0.0 && v.fract() == 0.0 && v < 9.0e15,
        "expected a whole count for {metric}{labels:?}, got {v}"
    );
    v as u64
}

/// `sample` as a whole count, if present.
#[must_use]
pub fn count(scrape: &Scrape, metric: &str, labels: &[(&str, &str)]) -> Option<u64> {
    sample(scrape, metric, labels).map(|_| expect_count(scrape, metric, labels))
}

/// `corral-burst`, built beside `corral-probe`.
#[must_use]
pub fn burst() -> String {
    env::sibling_bin("corral-burst")
}

/// A task that may run `corral-burst` (and read what it needs to start) and connect only to
/// `127.0.0.1:allowed_port`.
#[must_use]
pub fn burst_policy(name: &str, allowed_port: u16) -> Policy {
    let bin = burst();
    let mut p = Policy::new(name)
        .exec(&bin)
        .read(&bin)
        .connect("127.0.0.1/32", &[&allowed_port.to_string()]);
    for path in runtime::load_reads(&bin) {
        p = p.read(&path);
    }
    p
}

/// Runs `corral-burst N 127.0.0.1 PORT` confined by `task`; panics unless all N were refused
/// with `EPERM`.
pub fn refused_burst(d: &Daemon, task: &str, count: u32, port: u16) {
    let out = d.run_accepting_unenforced(
        task,
        &[&burst(), &count.to_string(), "127.0.0.1", &port.to_string()],
    );
    assert!(
        out.code == Some(0) && out.first_line() == format!("eperm {count} other 0"),
        "expected all {count} connects refused with EPERM\n{}",
        out.describe()
    );
}

/// `FILE` and its rotated siblings `FILE.1`, `FILE.2`, ... that exist, oldest first.
#[must_use]
pub fn event_files(path: &Path) -> Vec<PathBuf> {
    let mut rotated: Vec<(u32, PathBuf)> = std::fs::read_dir(path.parent().unwrap_or(path))
        .into_iter()
        .flatten()
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            let base = path.file_name()?.to_str()?;
            let n = name.strip_prefix(base)?.strip_prefix('.')?.parse().ok()?;
            Some((n, e.path()))
        })
        .collect();
    rotated.sort_by_key(|(n, _)| std::cmp::Reverse(*n));
    let mut files: Vec<PathBuf> = rotated.into_iter().map(|(_, p)| p).collect();
    if path.exists() {
        files.push(path.to_path_buf());
    }
    files
}

/// Every line of `files`, in order. A file renamed away meanwhile (a rotation while the
/// daemon writes) counts as empty: read again once the daemon is quiet.
#[must_use]
pub fn lines_of(files: &[PathBuf]) -> Vec<String> {
    files
        .iter()
        .flat_map(|f| match std::fs::read_to_string(f) {
            Ok(text) => text.lines().map(str::to_owned).collect::<Vec<_>>(),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Vec::new(),
            Err(e) => panic!("expected to read {}: {e}", f.display()),
        })
        .collect()
}
