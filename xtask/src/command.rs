//! Running external commands, echoing them first, with errors that name the command.
use std::ffi::OsString;
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};

/// The cargo that runs us (`$CARGO`, set by `cargo run`), so nested builds use the same toolchain.
pub fn cargo() -> OsString {
    std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into())
}

/// `program arg1 arg2 ...`, for messages.
pub fn describe(cmd: &Command) -> String {
    let mut line = cmd.get_program().to_string_lossy().into_owned();
    for arg in cmd.get_args() {
        line.push(' ');
        line.push_str(&arg.to_string_lossy());
    }
    // `$CARGO` is an absolute path into the toolchain; `cargo` reads better.
    if let Some(rest) = line.strip_prefix(&*cargo().to_string_lossy()) {
        return format!("cargo{rest}");
    }
    line
}

/// Runs `cmd` with the terminal as its stdio; fails unless it exits 0.
pub fn run(cmd: &mut Command) -> Result<()> {
    let line = describe(cmd);
    println!("$ {line}");
    let status = cmd.status().with_context(|| format!("starting `{line}`"))?;
    if !status.success() {
        bail!("`{line}` failed ({status})");
    }
    Ok(())
}

/// Runs `cmd` quietly and returns its stdout; fails unless it exits 0 (the error carries stderr).
pub fn stdout(cmd: &mut Command) -> Result<String> {
    let line = describe(cmd);
    let output = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("starting `{line}`"))?;
    if !output.status.success() {
        bail!(
            "`{line}` failed ({}): {}",
            output.status,
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    String::from_utf8(output.stdout).with_context(|| format!("`{line}` printed non-UTF-8 output"))
}
