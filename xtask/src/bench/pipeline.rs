//! The daemon's event capacity without the kernel producer (issue 7): `corral-bench pipeline`
//! replays synthetic ring-buffer records through the daemon's own per-record path
//! (`agent::daemon::Delivery`) into the rotating JSON file sink on one thread. The flood
//! (`workload::throughput`) cannot show 500k events/s on a small host: its producer is slower
//! than the daemon; this measures the daemon alone.
use std::process::Command;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::Plan;
use super::recorder::Recorder;
use super::runner::{Tools, run_ok};

/// Replays `plan.pipeline_records` records; fails unless every record came out as one line
/// (no timing is judged here).
pub fn replay(tools: &Tools, plan: &Plan, rec: &mut Recorder) -> Result<()> {
    println!(
        "bench {}: daemon pipeline, {} replayed records",
        rec.env, plan.pipeline_records
    );
    let loadavg = std::fs::read_to_string("/proc/loadavg").unwrap_or_default();
    let out = run_ok(
        Command::new(&tools.bench)
            .arg("pipeline")
            .arg(tools.work.join("pipeline"))
            .args(["--records", &plan.pipeline_records.to_string()]),
    )?;
    let mut record: Value = out
        .lines()
        .find_map(|l| serde_json::from_str(l).ok())
        .with_context(|| format!("no record in corral-bench pipeline's output: {out}"))?;
    check(&record, plan.pipeline_records)?;
    record["loadavg"] = Value::String(loadavg.trim().to_owned());
    rec.push(record);
    Ok(())
}

/// Every record replayed, and one JSON line per record in the sink.
pub fn check(record: &Value, records: usize) -> Result<()> {
    let replayed = record["records"].as_u64();
    let lines = record["lines"].as_u64();
    let bad = record["unparsable_lines"].as_u64();
    if replayed != Some(records as u64) || lines != replayed || bad != Some(0) {
        bail!(
            "daemon pipeline: expected {records} records to come out as {records} JSON lines, got {record}"
        );
    }
    Ok(())
}

/// Events per CPU second on one core (the capacity the target judges).
pub fn capacity(record: &Value) -> Option<f64> {
    let us = record["cpu_us_per_event"].as_f64()?;
    (us > 0.0).then(|| 1e6 / us)
}
