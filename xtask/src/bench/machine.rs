//! The machine and kernel a set of rows was measured on.
use std::fs;

use serde_json::{Value, json};

fn read(path: &str) -> Option<String> {
    fs::read_to_string(path).ok().map(|s| s.trim().to_owned())
}

/// `{"kind":"env", kernel, cpu, cores, memory_kib, lsm, loadavg, other_programs}`;
/// `other_programs` are BPF programs already loaded before the run (other tools, other daemons
/// on a shared host): they run in every configuration, C0 included.
pub fn describe(other_programs: &[String]) -> Value {
    let cpu = read("/proc/cpuinfo").and_then(|info| {
        info.lines()
            .find_map(|l| l.strip_prefix("model name"))
            .map(|v| v.trim_start_matches([' ', '\t', ':']).to_owned())
    });
    let memory = read("/proc/meminfo").and_then(|info| {
        info.lines()
            .find_map(|l| l.strip_prefix("MemTotal:"))
            .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<u64>().ok())
    });
    json!({
        "kind": "env",
        "kernel": read("/proc/sys/kernel/osrelease"),
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map_or(1, std::num::NonZero::get),
        "memory_kib": memory,
        "lsm": read("/sys/kernel/security/lsm"),
        // Load from other work on a shared machine inflates and spreads every number.
        "loadavg": read("/proc/loadavg"),
        "other_programs": other_programs,
    })
}
