//! `corral`: exit codes follow sysexits: 64 configuration error, 69 a needed service or kernel
//! feature is unavailable, 77 refused.

use std::process::ExitCode;

use agent::{
    cli::{Cli, Command, PolicyCommand, doctor, policy_check, policy_mode, run, status, unload},
    cli::{daemon_flags, events},
    daemon::{self, DaemonConfig},
};
use clap::{CommandFactory, FromArgMatches};

fn main() -> ExitCode {
    // The matches tell typed flags from defaults: only typed ones override corral.toml.
    let matches = Cli::command().get_matches();
    let cli = Cli::from_arg_matches(&matches).unwrap_or_else(|e| e.exit());
    match cli.command {
        command @ Command::Daemon { .. } => daemon_command(&matches, command),
        Command::Run {
            task,
            socket,
            accept_unenforced,
            ttl,
            command,
        } => {
            let e = run::run(&socket, &task, accept_unenforced, ttl, &command);
            fail(&e, e.exit_code())
        }
        Command::Policy {
            command: PolicyCommand::Check { files },
        } => {
            let errors = policy_check::check(&files);
            for e in &errors {
                eprintln!("{e}");
            }
            if errors.is_empty() {
                println!("{} policy file(s) valid", files.len());
                ExitCode::SUCCESS
            } else {
                ExitCode::from(64)
            }
        }
        Command::Doctor {
            json,
            btf,
            selftest: true,
            socket,
            selftest_weaken,
        } => selftest_command(&btf, &socket, json, &selftest_weaken),
        Command::SelftestProbe { args } => ExitCode::from(agent::cli::selftest::probe::run(&args)),
        Command::Doctor { json, btf, .. } => {
            let probe = agent::loader::probe(&btf, agent::landlock::abi_version());
            if json {
                println!("{}", doctor::to_json(&probe));
            } else {
                print!("{}", doctor::render(&probe));
            }
            ExitCode::from(doctor::verdict(&probe.backends()) as u8)
        }
        Command::Policy {
            command: PolicyCommand::Mode { task, mode, socket },
        } => match policy_mode::set(&socket, &task, mode) {
            Ok(line) => {
                println!("{line}");
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e, e.exit_code()),
        },
        Command::Unload { pin_dir, socket } => match unload::unload(&pin_dir, &socket) {
            Ok(removed) => {
                println!(
                    "removed {} pinned object(s) from {}: nothing is enforced any more",
                    removed.len(),
                    pin_dir.display()
                );
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e, 69),
        },
        Command::Status { socket, json } => match status::fetch(&socket) {
            Ok(s) if json => {
                println!("{s}");
                ExitCode::SUCCESS
            }
            Ok(s) => {
                print!("{}", status::render(&s));
                ExitCode::SUCCESS
            }
            Err(e) => fail(&e, 69),
        },
        command @ Command::Events { .. } => events_command(command),
    }
}

/// `corral doctor --selftest`: runs the probes, prints the report; 0 when every probe this host
/// claims to close is closed, 1 otherwise, 69 when the selftest could not run.
fn selftest_command(
    btf: &std::path::Path,
    socket: &std::path::Path,
    json: bool,
    weaken: &[String],
) -> ExitCode {
    use agent::cli::selftest;
    let host = agent::loader::probe(btf, agent::landlock::abi_version());
    let options = selftest::Options { socket, weaken };
    match selftest::run(&host, &options) {
        Ok(outcomes) => {
            if json {
                println!("{}", selftest::report::to_json(&outcomes));
            } else {
                print!("{}", selftest::report::render(&outcomes));
            }
            ExitCode::from(selftest::exit_code(&outcomes))
        }
        Err(e) => fail(&e, 69),
    }
}

/// `corral events`: subscribes and prints until the stream ends.
fn events_command(command: Command) -> ExitCode {
    use std::io::IsTerminal;
    let Command::Events {
        follow,
        task,
        op,
        decision,
        json,
        socket,
    } = command
    else {
        unreachable!("called for the events subcommand only");
    };
    let stdout = std::io::stdout();
    let style = events::Style {
        json,
        colour: stdout.is_terminal(),
    };
    match events::run(
        &socket,
        task,
        &op,
        &decision,
        follow,
        style,
        &mut stdout.lock(),
    ) {
        Ok(()) => ExitCode::SUCCESS,
        // The reader went away (`corral events | head`): not an error.
        Err(events::EventsError::Output { source })
            if source.kind() == std::io::ErrorKind::BrokenPipe =>
        {
            ExitCode::SUCCESS
        }
        Err(e) => fail(&e, 69),
    }
}

/// `corral daemon`: corral.toml with the typed flags applied, then the daemon until it stops.
fn daemon_command(matches: &clap::ArgMatches, command: Command) -> ExitCode {
    let Command::Daemon {
        policies,
        socket,
        events,
        btf,
        config,
        pin_dir,
    } = command
    else {
        unreachable!("called for the daemon subcommand only");
    };
    let flags = daemon_flags::overrides(matches, policies, socket, events);
    let (config_file, named) = daemon_flags::config_path(config);
    let settings = match agent::config::load(&config_file, named) {
        Ok(c) => c.with_overrides(flags.clone()),
        Err(e) => return fail(&e, 64),
    };
    let log_filter = init_tracing(&settings.log.level);
    let source = daemon::ConfigSource {
        file: config_file,
        named,
        overrides: flags,
    };
    let config = DaemonConfig {
        policies: settings.daemon.policies.clone(),
        socket: settings.daemon.socket.clone(),
        events: settings.events_spec(),
        btf,
        landlock_abi: agent::landlock::abi_version(),
        pin_dir,
        settings,
        source,
        log_filter,
    };
    match daemon::run(&config) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => fail(&e, e.exit_code()),
    }
}

fn fail(e: &dyn std::error::Error, code: u8) -> ExitCode {
    // Every error type here puts its cause in its own message: one line, no backtrace.
    eprintln!("corral: {e}");
    ExitCode::from(code)
}

/// Logs to stderr with `default_filter` unless `CORRAL_LOG` is set. Returns how to change the
/// filter later (`None` when `CORRAL_LOG` fixes it).
fn init_tracing(default_filter: &str) -> Option<daemon::LogFilter> {
    use std::io::IsTerminal;
    use tracing_subscriber::{EnvFilter, layer::SubscriberExt, reload, util::SubscriberInitExt};
    let (filter, fixed) = match EnvFilter::try_from_env("CORRAL_LOG") {
        Ok(f) => (f, true),
        Err(_) => (EnvFilter::new(default_filter), false),
    };
    let (filter, handle) = reload::Layer::new(filter);
    tracing_subscriber::registry()
        .with(filter)
        .with(
            tracing_subscriber::fmt::layer()
                .with_writer(std::io::stderr)
                .with_ansi(std::io::stderr().is_terminal()),
        )
        .init();
    (!fixed).then(|| {
        daemon::LogFilter(std::sync::Arc::new(move |text: &str| {
            let filter = EnvFilter::try_new(text).map_err(|e| e.to_string())?;
            handle.reload(filter).map_err(|e| e.to_string())
        }))
    })
}
