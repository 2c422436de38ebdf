//! Measurements as JSON records (`{"kind": "micro" | "bpf_stats" | ..., "env": ...}`): kept in
//! memory on the host; inside the VM also printed as `CORRAL_BENCH <json>` console lines, which
//! the host collects.
use std::time::Instant;

use serde_json::Value;

/// The console marker of a record printed inside the VM.
pub const MARKER: &str = "CORRAL_BENCH ";

pub struct Recorder {
    /// `native` or `vm 6.1`, ...
    pub env: String,
    pub records: Vec<Value>,
    echo: bool,
    started: Instant,
}

impl Recorder {
    pub fn new(env: &str, echo: bool) -> Self {
        Self {
            env: env.to_owned(),
            records: Vec::new(),
            echo,
            started: Instant::now(),
        }
    }

    /// A progress line with the seconds since this environment's measurements began (where a
    /// slow run spends its time shows in the log).
    pub fn progress(&self, what: &str) {
        println!(
            "bench {} [{:.0} s]: {what}",
            self.env,
            self.started.elapsed().as_secs_f64()
        );
    }

    pub fn push(&mut self, mut record: Value) {
        record["env"] = Value::String(self.env.clone());
        if self.echo {
            println!("{MARKER}{record}");
        }
        self.records.push(record);
    }
}

/// The records in a VM's console output (lines that kernel messages split are skipped and
/// counted).
pub fn parse_console(output: &str) -> (Vec<Value>, usize) {
    let mut records = Vec::new();
    let mut unreadable = 0;
    for line in output.lines() {
        if let Some((_, json)) = line.split_once(MARKER) {
            match serde_json::from_str(json.trim()) {
                Ok(record) => records.push(record),
                Err(_) => unreadable += 1,
            }
        }
    }
    (records, unreadable)
}
