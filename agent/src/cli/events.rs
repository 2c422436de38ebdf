//! `corral events`: the recent events the daemon kept and, with `--follow`, each new one as it
//! happens; one aligned line per event for people (colours only on a terminal), or the raw
//! JSON lines with `--json`.

use std::{
    fmt::Write as _,
    io::{BufRead, BufReader, Write},
    os::unix::net::UnixStream,
    path::{Path, PathBuf},
};

use serde_json::Value;

use crate::daemon::protocol::{Request, Response};

#[derive(Debug, thiserror::Error)]
pub enum EventsError {
    #[error("cannot reach the corral daemon at {}: {source} (is `corral daemon` running?)", path.display())]
    Unreachable {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("corral daemon at {}: {message}", path.display())]
    Protocol { path: PathBuf, message: String },
    #[error("cannot write events: {source}")]
    Output { source: std::io::Error },
}

/// Which operations `--op` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum OpName {
    Exec,
    Open,
    Connect,
    Sendmsg,
}

impl OpName {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Exec => "exec",
            Self::Open => "open",
            Self::Connect => "connect",
            Self::Sendmsg => "sendmsg",
        }
    }
}

/// Which decisions `--decision` accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum DecisionName {
    Denied,
    Audited,
    Allowed,
}

impl DecisionName {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Denied => "denied",
            Self::Audited => "audited",
            Self::Allowed => "allowed",
        }
    }
}

/// How to print.
#[derive(Debug, Clone, Copy)]
pub struct Style {
    pub json: bool,
    pub colour: bool,
}

/// Subscribes and prints until the daemon ends the stream (or, with `follow`, until the
/// daemon goes away or the output is closed).
pub fn run(
    socket: &Path,
    task: Option<String>,
    ops: &[OpName],
    decisions: &[DecisionName],
    follow: bool,
    style: Style,
    out: &mut impl Write,
) -> Result<(), EventsError> {
    let unreachable = |source| EventsError::Unreachable {
        path: socket.to_owned(),
        source,
    };
    let protocol = |message: String| EventsError::Protocol {
        path: socket.to_owned(),
        message,
    };
    let request = Request::Subscribe {
        task,
        ops: ops.iter().map(|o| o.as_str().to_owned()).collect(),
        decisions: decisions.iter().map(|d| d.as_str().to_owned()).collect(),
        follow,
    };
    let mut stream = UnixStream::connect(socket).map_err(unreachable)?;
    let mut line = serde_json::to_vec(&request).map_err(|e| protocol(e.to_string()))?;
    line.push(b'\n');
    stream.write_all(&line).map_err(unreachable)?;
    let mut reader = BufReader::new(stream);
    let mut header = String::new();
    reader.read_line(&mut header).map_err(unreachable)?;
    match serde_json::from_str::<Response>(&header) {
        Ok(Response::Subscribed { .. }) => {}
        Ok(Response::Refused { message, .. }) => return Err(protocol(message)),
        Ok(other) => return Err(protocol(format!("unexpected answer: {other:?}"))),
        Err(_) if header.is_empty() => {
            return Err(protocol(
                "closed the connection without answering".to_owned(),
            ));
        }
        Err(e) => return Err(protocol(format!("unreadable answer: {e}"))),
    }
    let output = |source| EventsError::Output { source };
    for event in reader.lines() {
        let event = event.map_err(unreachable)?;
        let text = if style.json {
            event
        } else {
            render_line(&event, style.colour)
        };
        writeln!(out, "{text}").map_err(output)?;
        out.flush().map_err(output)?;
    }
    Ok(())
}

const RED: &str = "\x1b[31m";
const YELLOW: &str = "\x1b[33m";
const GREEN: &str = "\x1b[32m";
const DIM: &str = "\x1b[2m";
const RESET: &str = "\x1b[0m";

/// One event (or drop notice) as an aligned line:
/// `TIME DECISION TASK OP TARGET REASON comm[pid] exe`.
#[must_use]
pub fn render_line(json: &str, colour: bool) -> String {
    let Ok(v) = serde_json::from_str::<Value>(json) else {
        return json.to_owned();
    };
    if let Some(n) = v.get("dropped").and_then(Value::as_u64) {
        let text = format!("--- {n} event(s) dropped here: this subscriber did not keep up ---");
        return if colour {
            format!("{YELLOW}{text}{RESET}")
        } else {
            text
        };
    }
    let s = |key: &str| v.get(key).and_then(Value::as_str).unwrap_or("?");
    let time = s("time");
    // Seconds with milliseconds is enough to read; the JSON keeps the microseconds.
    let time = time.get(..23).map_or(time, |t| t);
    let decision = s("decision");
    let decision_cell = format!("{decision:<8}");
    let decision_cell = match (colour, decision) {
        (true, "denied") => format!("{RED}{decision_cell}{RESET}"),
        (true, "audited") => format!("{YELLOW}{decision_cell}{RESET}"),
        (true, "allowed") => format!("{GREEN}{decision_cell}{RESET}"),
        _ => decision_cell,
    };
    let process = &v["process"];
    let who = format!(
        "{}[{}]",
        process["comm"].as_str().unwrap_or("?"),
        process["pid"].as_u64().unwrap_or(0)
    );
    let mut line = format!(
        "{time:<23} {decision_cell} {:<16} {:<8} {:<40} {:<18} {who}",
        s("task"),
        s("op"),
        target(&v["target"]),
        s("reason"),
    );
    if let Some(exe) = process["exe"].as_str() {
        if colour {
            let _ = write!(line, " {DIM}{exe}{RESET}");
        } else {
            let _ = write!(line, " {exe}");
        }
    }
    line
}

/// The target in a few words: `/etc/shadow (read)`, `10.0.0.1:443/tcp`, `@name (unix stream)`.
fn target(t: &Value) -> String {
    let s = |key: &str| t.get(key).and_then(Value::as_str);
    match (s("family"), t.get("port").and_then(Value::as_u64)) {
        (Some("ipv6"), Some(port)) => {
            format!(
                "[{}]:{port}/{}",
                s("addr").unwrap_or("?"),
                s("proto").unwrap_or("?")
            )
        }
        (Some(_), Some(port)) => {
            format!(
                "{}:{port}/{}",
                s("addr").unwrap_or("?"),
                s("proto").unwrap_or("?")
            )
        }
        (Some("unix"), None) => format!(
            "{} (unix {})",
            s("path").unwrap_or("?"),
            s("proto").unwrap_or("?")
        ),
        _ => match (s("path"), s("access"), s("error")) {
            (Some(path), Some(access), _) => format!("{path} ({access})"),
            (Some(path), None, _) => path.to_owned(),
            (None, _, Some(error)) => format!("<unresolved: {error}>"),
            _ => t.to_string(),
        },
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const OPEN: &str = r#"{"time":"2026-11-26T06:30:00.123456Z","decision":"denied","mode":"enforce","op":"open","backend":"lsm","task":"repo-coder","reason":"not_allowed","target":{"path":"/etc/shadow","access":"read"},"process":{"pid":4242,"tgid":4242,"ppid":4200,"uid":1000,"gid":1000,"comm":"cat","exe":"/usr/bin/cat"}}"#;
    const CONNECT: &str = r#"{"time":"2026-11-26T06:30:01.000001Z","decision":"audited","mode":"audit","op":"connect","backend":"cgroup_sock_addr","task":"researcher","reason":"not_allowed","target":{"addr":"::1","port":443,"family":"ipv6","proto":"tcp"},"process":{"pid":7,"tgid":7,"ppid":1,"uid":0,"gid":0,"comm":"curl","exe":null}}"#;

    #[test]
    fn lines_are_aligned_and_plain_without_colour() {
        let a = render_line(OPEN, false);
        let b = render_line(CONNECT, false);
        assert_eq!(
            a,
            "2026-11-26T06:30:00.123 denied   repo-coder       open     /etc/shadow (read)                       not_allowed        cat[4242] /usr/bin/cat"
        );
        assert!(
            b.starts_with(
                "2026-11-26T06:30:01.000 audited  researcher       connect  [::1]:443/tcp "
            ),
            "got {b}"
        );
        let column = |l: &str, word: &str| l.find(word);
        assert_eq!(
            column(&a, "not_allowed"),
            column(&b, "not_allowed"),
            "reasons must line up:\n{a}\n{b}"
        );
        assert!(!a.contains('\x1b'), "no escape codes without colour: {a}");
    }

    #[test]
    fn colour_marks_the_decision_on_a_terminal() {
        let a = render_line(OPEN, true);
        assert!(a.contains("\x1b[31mdenied"), "denied in red: {a:?}");
        let b = render_line(CONNECT, true);
        assert!(b.contains("\x1b[33maudited"), "audited in yellow: {b:?}");
        let c = render_line(ALLOWED, true);
        assert!(c.contains("\x1b[32mallowed"), "allowed in green: {c:?}");
    }

    const ALLOWED: &str = r#"{"time":"2026-11-26T06:30:02.000001Z","decision":"allowed","mode":"enforce","op":"open","backend":"kill","task":"repo-coder","reason":"none","target":{"path":"/srv/repo/a.rs","access":"read"},"process":{"pid":9,"tgid":9,"ppid":1,"uid":0,"gid":0,"comm":"cat","exe":null}}"#;

    #[test]
    fn allowed_events_line_up_with_the_others() {
        let a = render_line(OPEN, false);
        let c = render_line(ALLOWED, false);
        assert!(
            c.starts_with(
                "2026-11-26T06:30:02.000 allowed  repo-coder       open     /srv/repo/a.rs (read)"
            ),
            "got {c}"
        );
        assert_eq!(
            a.find("not_allowed"),
            c.find("none"),
            "the reason column lines up:\n{a}\n{c}"
        );
    }

    #[test]
    fn drop_notices_say_how_many() {
        assert_eq!(
            render_line(r#"{"dropped":12}"#, false),
            "--- 12 event(s) dropped here: this subscriber did not keep up ---"
        );
    }
}
