//! Which `corral daemon` flags were given explicitly (they win over `corral.toml`), and where
//! the configuration file is.

use std::path::PathBuf;

use clap::{ArgMatches, parser::ValueSource};

use crate::config::{DEFAULT_CONFIG, Overrides};

/// Environment variable naming the configuration file when `--config` is not given.
pub const CONFIG_ENV: &str = "CORRAL_CONFIG";

/// The flags of `matches` (the whole command line) that were typed, not defaulted.
#[must_use]
pub fn overrides(
    matches: &ArgMatches,
    policies: PathBuf,
    socket: PathBuf,
    events: PathBuf,
) -> Overrides {
    let daemon = matches.subcommand_matches("daemon");
    let typed =
        |id: &str| daemon.and_then(|m| m.value_source(id)) == Some(ValueSource::CommandLine);
    Overrides {
        policies: typed("policies").then_some(policies),
        socket: typed("socket").then_some(socket),
        events: typed("events").then_some(events),
    }
}

/// `--config`, else `$CORRAL_CONFIG`, else the default path; and whether it was named (a named
/// file must exist, the default one may be absent).
#[must_use]
pub fn config_path(flag: Option<PathBuf>) -> (PathBuf, bool) {
    if let Some(path) = flag {
        return (path, true);
    }
    match std::env::var_os(CONFIG_ENV) {
        Some(path) if !path.is_empty() => (PathBuf::from(path), true),
        _ => (PathBuf::from(DEFAULT_CONFIG), false),
    }
}

#[cfg(test)]
mod tests {
    use clap::{CommandFactory, FromArgMatches};

    use super::*;
    use crate::cli::{Cli, Command};

    fn overrides_of(args: &[&str]) -> Overrides {
        let matches = Cli::command()
            .try_get_matches_from(std::iter::once("corral").chain(args.iter().copied()))
            .unwrap_or_else(|e| panic!("expected {args:?} to parse: {e}"));
        let cli = Cli::from_arg_matches(&matches)
            .unwrap_or_else(|e| panic!("expected {args:?} to parse: {e}"));
        let Command::Daemon {
            policies,
            socket,
            events,
            ..
        } = cli.command
        else {
            panic!("expected the daemon subcommand");
        };
        overrides(&matches, policies, socket, events)
    }

    #[test]
    fn only_typed_flags_override_the_file() {
        let none = overrides_of(&["daemon", "--config", "/x.toml"]);
        assert!(
            none.policies.is_none() && none.socket.is_none() && none.events.is_none(),
            "defaults must not override the file: {none:?}"
        );
        let some = overrides_of(&["daemon", "--socket", "/run/x.sock", "--events", "-"]);
        assert_eq!(some.socket, Some(PathBuf::from("/run/x.sock")));
        assert_eq!(some.events, Some(PathBuf::from("-")));
        assert!(some.policies.is_none());
    }
}
