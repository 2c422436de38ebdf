//! The daemon's configuration file, `/etc/corral/corral.toml` (TOML, every key optional and
//! documented in `schema`, unknown keys are errors). Command-line flags given explicitly win
//! over the file; the file wins over the built-in defaults.

mod error;
mod schema;

#[cfg(test)]
mod tests;

use std::{
    fs,
    io::ErrorKind,
    path::{Path, PathBuf},
};

pub use error::ConfigError;
pub use schema::DnsSection;
pub use schema::{
    AllowedEvents, Config, DEFAULT_CONFIG, DEFAULT_METRICS_LISTEN, DEFAULT_POLICIES, DaemonSection,
    EventsSection, LogSection, MetricsSection,
};

/// Parses the text of a configuration file; `file` only names it in errors.
pub fn parse(file: &Path, text: &str) -> Result<Config, ConfigError> {
    toml::from_str::<Config>(text).map_err(|e| ConfigError::from_toml(file, text, &e))
}

/// Reads the configuration. A missing file is an error only when it was named explicitly
/// (`--config`, `CORRAL_CONFIG`); the default path may be absent (then the defaults apply).
pub fn load(path: &Path, explicit: bool) -> Result<Config, ConfigError> {
    match fs::read_to_string(path) {
        Ok(text) => parse(path, &text),
        Err(io) if io.kind() == ErrorKind::NotFound && !explicit => Ok(Config::default()),
        Err(io) => Err(ConfigError::Read {
            file: path.to_owned(),
            io,
        }),
    }
}

/// Flags given explicitly on the command line, which override the file.
#[derive(Debug, Clone, Default)]
pub struct Overrides {
    /// `--policies`.
    pub policies: Option<PathBuf>,
    /// `--socket`.
    pub socket: Option<PathBuf>,
    /// `--events`: `-` for stdout only, else that file only.
    pub events: Option<PathBuf>,
}

impl Config {
    /// Applies the explicit flags on top of the file's values.
    #[must_use]
    pub fn with_overrides(mut self, flags: Overrides) -> Self {
        if let Some(p) = flags.policies {
            self.daemon.policies = p;
        }
        if let Some(s) = flags.socket {
            self.daemon.socket = s;
        }
        if let Some(e) = flags.events {
            if e == Path::new("-") {
                self.events.stdout = true;
                self.events.file = None;
            } else {
                self.events.stdout = false;
                self.events.file = Some(e);
            }
        }
        self
    }

    /// The legacy single `--events` value: the file if there is one, else `-` (stdout).
    #[must_use]
    pub fn events_spec(&self) -> PathBuf {
        self.events
            .file
            .clone()
            .unwrap_or_else(|| PathBuf::from("-"))
    }
}
