//! `corral`: exit codes follow sysexits: 64 configuration error, 69 a needed service or kernel
//! feature is unavailable, 77 refused.

use std::process::ExitCode;

use agent::{
    cli::{Cli, Command, PolicyCommand, doctor, policy_check, policy_mode, run, status, unload},
    daemon::{self, DaemonConfig},
};
use clap::Parser;

fn main() -> ExitCode {
    let cli = Cli::parse();
    match cli.command {
        Command::Daemon {
            policies,
            socket,
            events,
            btf,
            pin_dir,
        } => {
            init_tracing();
            let config = DaemonConfig {
                policies,
                socket,
                events,
                btf,
                landlock_abi: agent::landlock::abi_version(),
                pin_dir,
            };
            match daemon::run(&config) {
                Ok(()) => ExitCode::SUCCESS,
                Err(e) => fail(&e, e.exit_code()),
            }
        }
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
        Command::Doctor { json, btf } => {
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
    }
}

fn fail(e: &dyn std::error::Error, code: u8) -> ExitCode {
    // Every error type here puts its cause in its own message: one line, no backtrace.
    eprintln!("corral: {e}");
    ExitCode::from(code)
}

fn init_tracing() {
    use std::io::IsTerminal;
    let filter = tracing_subscriber::EnvFilter::try_from_env("CORRAL_LOG")
        .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info"));
    tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(std::io::stderr)
        .with_ansi(std::io::stderr().is_terminal())
        .init();
}
