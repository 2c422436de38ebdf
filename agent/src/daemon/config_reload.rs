//! `SIGHUP` re-reads `corral.toml` and applies what can change while the daemon runs: the event
//! sinks and their limits, `events.allowed` (the kernel's `SETTINGS`), the metrics endpoint and
//! the log filter. Keys that need a restart (`[daemon]`, `[dns]`) are named in one log line each and
//! keep their running value. An invalid file is one `file:line:column: message` line, counted
//! (`corral_config_reloads_total{result="error"}`), and changes nothing.

use std::{
    fmt,
    path::PathBuf,
    sync::{Arc, atomic::Ordering},
};

use tokio::sync::mpsc;

use super::{hub::Hub, metrics::Endpoint, sink::Sink};
use crate::{
    config::{self, Config, EventsSection, Overrides},
    loader::SettingsMap,
};

/// Where `corral.toml` is, and the command-line flags that win over it (kept for reloads).
#[derive(Debug, Clone)]
pub struct ConfigSource {
    pub file: PathBuf,
    /// Named explicitly (`--config`, `CORRAL_CONFIG`): then it must exist.
    pub named: bool,
    pub overrides: Overrides,
}

/// Sets the log filter: takes a `tracing` filter, `Err` says why it was refused.
pub type SetLogFilter = dyn Fn(&str) -> Result<(), String> + Send + Sync;

/// Sets the daemon's log filter (a `tracing` filter); `Err` says why a filter was refused.
#[derive(Clone)]
pub struct LogFilter(pub Arc<SetLogFilter>);

impl fmt::Debug for LogFilter {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("LogFilter")
    }
}

/// What a reload can change, and the configuration now in force.
pub struct Live {
    pub source: ConfigSource,
    /// The configuration in force (with the flags applied).
    pub running: Config,
    pub settings: SettingsMap,
    pub hub: Arc<Hub>,
    pub endpoint: Arc<Endpoint>,
    /// Hands new sinks to the event pump, which drops the old ones.
    pub sinks: mpsc::UnboundedSender<Vec<Sink>>,
    /// `None` when `CORRAL_LOG` fixes the filter.
    pub log_filter: Option<LogFilter>,
}

/// Cannot install a handler for `SIGHUP`.
#[derive(Debug, thiserror::Error)]
#[error("cannot handle SIGHUP (configuration reload): {source}")]
pub struct HangupError {
    pub source: std::io::Error,
}

/// Re-reads the configuration on every `SIGHUP`. Runs until the daemon stops.
pub async fn watch(mut live: Live) -> Result<(), HangupError> {
    let mut hangup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup())
        .map_err(|source| HangupError { source })?;
    while hangup.recv().await.is_some() {
        live.reload();
    }
    Ok(())
}

/// The keys that only a restart can change, whose value in `new` differs from the running one:
/// `(key, running value, value in the file)`. Flags given on the command line are applied to
/// both, so a key a flag sets never differs.
fn restart_only_changes<'a>(
    running: &'a Config,
    new: &'a Config,
) -> Vec<(&'static str, &'a std::path::Path, &'a std::path::Path)> {
    [
        (
            "daemon.policies",
            &running.daemon.policies,
            &new.daemon.policies,
        ),
        ("daemon.socket", &running.daemon.socket, &new.daemon.socket),
    ]
    .into_iter()
    .filter(|(_, r, n)| r != n)
    .map(|(k, r, n)| (k, r.as_path(), n.as_path()))
    .collect()
}

/// The sink keys of `[events]`: a change reopens the sinks.
fn sink_keys(e: &EventsSection) -> (bool, Option<&PathBuf>, u64, u32) {
    (e.stdout, e.file.as_ref(), e.rotate_bytes, e.keep)
}

impl Live {
    /// Writes the kernel settings of the running configuration (at start).
    pub fn apply_kernel_settings(&mut self) -> Result<(), crate::loader::RulesError> {
        self.settings.write(self.running.events.kernel_settings())
    }

    /// One reload: read, check, apply what can change live.
    pub fn reload(&mut self) {
        let file = self.source.file.display().to_string();
        let new = match config::load(&self.source.file, self.source.named) {
            Ok(c) => c.with_overrides(self.source.overrides.clone()),
            Err(e) => {
                tracing::error!(
                    "SIGHUP: {e}; the running configuration is kept (nothing was changed)"
                );
                self.count(false);
                return;
            }
        };
        let mut ok = true;
        let mut applied = self.running.clone();
        for (key, running, wanted) in restart_only_changes(&self.running, &new) {
            tracing::warn!(
                key,
                running = %running.display(),
                file = %wanted.display(),
                "SIGHUP: {file}: `{key}` needs a restart to change; keeping the running value"
            );
        }
        if new.dns != self.running.dns {
            tracing::warn!(
                key = "dns",
                "SIGHUP: {file}: `[dns]` needs a restart to change; keeping the running resolver settings"
            );
        }
        if sink_keys(&new.events) != sink_keys(&self.running.events) {
            match Sink::open_all(&new.events) {
                Ok(sinks) => {
                    if self.sinks.send(sinks).is_ok() {
                        applied.events.stdout = new.events.stdout;
                        applied.events.file.clone_from(&new.events.file);
                        applied.events.rotate_bytes = new.events.rotate_bytes;
                        applied.events.keep = new.events.keep;
                    } else {
                        ok = false;
                        tracing::error!("SIGHUP: the event pump has stopped; sinks unchanged");
                    }
                }
                Err(e) => {
                    ok = false;
                    tracing::error!("SIGHUP: {file}: [events]: {e:#}; keeping the running sinks");
                }
            }
        }
        self.hub
            .set_limits(new.events.backlog, new.events.subscriber_queue);
        applied.events.backlog = new.events.backlog;
        applied.events.subscriber_queue = new.events.subscriber_queue;
        match self.settings.write(new.events.kernel_settings()) {
            Ok(()) => {
                applied.events.allowed = new.events.allowed;
                applied.events.allowed_sample = new.events.allowed_sample;
            }
            Err(e) => {
                ok = false;
                tracing::error!("SIGHUP: events.allowed: {e:#}; the kernel keeps its setting");
            }
        }
        if new.metrics != self.running.metrics {
            let result = if new.metrics.enabled {
                self.endpoint.listen(new.metrics.listen)
            } else {
                self.endpoint.stop();
                Ok(())
            };
            match result {
                Ok(()) => applied.metrics = new.metrics.clone(),
                Err(e) => {
                    ok = false;
                    tracing::error!(
                        "SIGHUP: {file}: [metrics]: {e:#}; keeping the running endpoint"
                    );
                }
            }
        }
        if new.log.level != self.running.log.level {
            if let Some(set) = &self.log_filter {
                if let Err(e) = (set.0)(&new.log.level) {
                    ok = false;
                    tracing::error!("SIGHUP: {file}: log.level: {e}; keeping the running filter");
                } else {
                    applied.log = new.log.clone();
                }
            } else {
                tracing::info!("SIGHUP: log.level changed, but CORRAL_LOG sets the filter");
            }
        }
        self.running = applied;
        self.count(ok);
        tracing::info!(
            file,
            allowed = ?self.running.events.allowed,
            stdout = self.running.events.stdout,
            events_file = ?self.running.events.file,
            metrics = ?self.endpoint.serving_addr(),
            "SIGHUP: configuration reloaded"
        );
    }

    fn count(&self, ok: bool) {
        let counter = if ok {
            &self.endpoint.config_reloads.ok
        } else {
            &self.endpoint.config_reloads.error
        };
        counter.fetch_add(1, Ordering::Relaxed);
    }
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::*;

    fn parse(text: &str) -> Config {
        config::parse(Path::new("corral.toml"), text)
            .unwrap_or_else(|e| panic!("expected a valid configuration: {e}"))
    }

    #[test]
    fn daemon_keys_are_named_as_needing_a_restart_unless_a_flag_sets_them() {
        let running = parse("[daemon]\nsocket = \"/run/a.sock\"\n");
        let edited = parse(
            "[daemon]\nsocket = \"/run/b.sock\"\npolicies = \"/p\"\n[events]\nallowed = \"all\"\n",
        );
        let keys: Vec<&str> = restart_only_changes(&running, &edited)
            .iter()
            .map(|(k, ..)| *k)
            .collect();
        assert_eq!(keys, ["daemon.policies", "daemon.socket"]);
        let flags = Overrides {
            socket: Some("/run/flag.sock".into()),
            policies: Some("/flag".into()),
            events: None,
        };
        let running = running.with_overrides(flags.clone());
        let edited = edited.with_overrides(flags);
        assert!(
            restart_only_changes(&running, &edited).is_empty(),
            "keys set by flags cannot change through the file"
        );
    }

    #[test]
    fn only_sink_keys_reopen_the_sinks() {
        let a = parse("[events]\nfile = \"/x.json\"\n");
        let b = parse("[events]\nfile = \"/x.json\"\nbacklog = 5\nallowed = \"all\"\n");
        assert_eq!(sink_keys(&a.events), sink_keys(&b.events));
        let c = parse("[events]\nfile = \"/x.json\"\nkeep = 2\n");
        assert_ne!(sink_keys(&a.events), sink_keys(&c.events));
    }
}
