//! Reading and matching the daemon's JSON event lines.

use serde_json::Value;

/// Parses the complete lines of an events file. A trailing line without its newline is still
/// being written and is left for the next read; any complete line that is not a JSON object
/// fails the test.
#[must_use]
pub fn parse_lines(text: &str, source: &str) -> Vec<Value> {
    let complete = match text.rfind('\n') {
        Some(i) => &text[..=i],
        None => "",
    };
    complete
        .lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, line)| {
            let v: Value = serde_json::from_str(line).unwrap_or_else(|e| {
                panic!(
                    "expected line {} of {source} to be JSON, got {line:?}: {e}",
                    i + 1
                )
            });
            assert!(
                v.is_object(),
                "expected line {} of {source} to be a JSON object, got {line}",
                i + 1
            );
            v
        })
        .collect()
}

/// True when every `(JSON pointer, value)` pair holds in `ev`, e.g.
/// `has(ev, &[("/op", "open".into()), ("/target/path", path.into())])`.
#[must_use]
pub fn has(ev: &Value, fields: &[(&str, Value)]) -> bool {
    fields
        .iter()
        .all(|(ptr, want)| ev.pointer(ptr) == Some(want))
}

/// `ev` at `ptr` as a string ("" when absent), for messages and comparisons.
#[must_use]
pub fn text<'a>(ev: &'a Value, ptr: &str) -> &'a str {
    ev.pointer(ptr).and_then(Value::as_str).unwrap_or("")
}

/// The last `n` events, one per line, for assertion messages.
#[must_use]
pub fn tail(events: &[Value], n: usize) -> String {
    if events.is_empty() {
        return "  (no events)".to_owned();
    }
    let skip = events.len().saturating_sub(n);
    events[skip..]
        .iter()
        .map(|e| format!("  {e}"))
        .collect::<Vec<_>>()
        .join("\n")
}

#[cfg(test)]
mod tests {
    use super::{has, parse_lines};

    #[test]
    fn incomplete_last_line_is_left_for_later() {
        let evs = parse_lines("{\"op\":\"open\"}\n{\"op\":\"ex", "test");
        assert_eq!(evs.len(), 1, "expected only the complete line, got {evs:?}");
        assert!(
            has(&evs[0], &[("/op", "open".into())]),
            "expected op open in {evs:?}"
        );
    }

    #[test]
    #[should_panic(expected = "to be JSON")]
    fn invalid_complete_line_fails() {
        let _ = parse_lines("not json\n", "test");
    }
}
