//! Runs a long command (a test executable, a VM) under a deadline, streaming each line of its
//! output to the terminal with a prefix and, unprefixed, into a log file.
use std::fs::File;
use std::io::{BufRead as _, BufReader, Read, Write as _};
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::{Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, PoisonError, mpsc};
use std::thread;
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result};

use crate::command;

/// How a supervised command ended.
pub struct Outcome {
    /// `None` if it was killed at the deadline.
    pub status: Option<ExitStatus>,
    /// Everything it printed (stdout and stderr interleaved by line, `\r` removed).
    pub output: String,
    pub elapsed: Duration,
}

struct Sink {
    prefix: String,
    log: File,
    output: String,
}

/// Runs `cmd` (stdin closed, in its own process group) until it exits or `timeout` passes, then
/// kills whatever is left of its process group.
pub fn run(cmd: &mut Command, prefix: &str, log: &Path, timeout: Duration) -> Result<Outcome> {
    let line = command::describe(cmd);
    println!("$ {line}");
    let log_file = File::create(log).with_context(|| format!("creating {}", log.display()))?;
    let sink = Arc::new(Mutex::new(Sink {
        prefix: prefix.to_owned(),
        log: log_file,
        output: String::new(),
    }));

    let started = Instant::now();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0)
        .spawn()
        .with_context(|| format!("starting `{line}`"))?;
    let group = child.id();
    let (done_tx, done_rx) = mpsc::channel();
    let streams = [
        child
            .stdout
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
        child
            .stderr
            .take()
            .map(|s| Box::new(s) as Box<dyn Read + Send>),
    ];
    let mut readers = 0;
    for stream in streams.into_iter().flatten() {
        let sink = Arc::clone(&sink);
        let done = done_tx.clone();
        thread::spawn(move || {
            pump(stream, &sink);
            let _ = done.send(());
        });
        readers += 1;
    }

    let status = loop {
        if let Some(status) = child
            .try_wait()
            .with_context(|| format!("waiting for `{line}`"))?
        {
            break Some(status);
        }
        if started.elapsed() >= timeout {
            kill_group(group);
            child.wait().with_context(|| format!("reaping `{line}`"))?;
            break None;
        }
        thread::sleep(Duration::from_millis(100));
    };
    // Stragglers (a daemon a crashed test left behind) would keep the pipes open.
    kill_group(group);
    // A process that left the group (setsid) can still hold the pipes: do not wait forever.
    for _ in 0..readers {
        if done_rx.recv_timeout(Duration::from_secs(5)).is_err() {
            let warning = "xtask: output still open 5 s after the process ended; stopped reading";
            println!("{prefix}{warning}");
            break;
        }
    }
    let elapsed = started.elapsed();
    let output = std::mem::take(&mut sink.lock().unwrap_or_else(PoisonError::into_inner).output);
    Ok(Outcome {
        status,
        output,
        elapsed,
    })
}

fn pump(stream: Box<dyn Read + Send>, sink: &Mutex<Sink>) {
    let mut reader = BufReader::new(stream);
    let mut raw = Vec::new();
    loop {
        raw.clear();
        match reader.read_until(b'\n', &mut raw) {
            Ok(0) | Err(_) => return,
            Ok(_) => {}
        }
        let text = printable(&String::from_utf8_lossy(&raw));
        let mut sink = sink.lock().unwrap_or_else(PoisonError::into_inner);
        let mut stdout = std::io::stdout().lock();
        // Terminal or log write errors must not stop the command; the log is best effort.
        let _ = writeln!(stdout, "{}{text}", sink.prefix);
        let _ = writeln!(sink.log, "{text}");
        sink.output.push_str(&text);
        sink.output.push('\n');
    }
}

/// `line` without terminal escape sequences (the VM firmware clears the screen) and control
/// characters other than tabs.
fn printable(line: &str) -> String {
    let mut out = String::with_capacity(line.len());
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        if c == '\x1b' {
            // CSI: ESC [ parameters final-byte; otherwise ESC plus one character.
            if chars.next_if_eq(&'[').is_some() {
                while chars.next().is_some_and(|c| !('@'..='~').contains(&c)) {}
            } else {
                chars.next();
            }
        } else if c == '\t' || !c.is_control() {
            out.push(c);
        }
    }
    out
}

fn kill_group(group: u32) {
    if let Ok(pgid) = libc::pid_t::try_from(group) {
        // SAFETY: kill(2) with a negative pid signals the process group we created; no memory
        // is involved. ESRCH (nothing left) is fine.
        unsafe {
            libc::kill(-pgid, libc::SIGKILL);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::printable;

    #[test]
    fn printable_drops_escape_sequences_and_control_characters() {
        assert_eq!(
            printable("\x1bc\x1b[?7l\x1b[2J\x1b[0mSeaBIOS (version 1.16)\r\n"),
            "SeaBIOS (version 1.16)"
        );
        assert_eq!(printable("test a ... ok\t[x]"), "test a ... ok\t[x]");
    }
}
