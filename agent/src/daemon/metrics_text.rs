//! The Prometheus text exposition of one scrape, built from a snapshot of the daemon (its
//! status, the event hub's counts, the kernel's program statistics) with the `prometheus`
//! crate's types and encoder.

use prometheus::{
    Encoder, IntCounter, IntCounterVec, IntGauge, IntGaugeVec, Opts, Registry, TextEncoder,
    core::Collector,
};
use serde_json::Value;

use super::{hub::DecisionCounts, run_stats::RunStats};

/// Everything one scrape reports.
pub struct Snapshot<'a> {
    /// `corral status --json`'s document (tasks, counters, hooks).
    pub status: &'a Value,
    /// Events per task, operation and decision (from the hub).
    pub decisions: &'a DecisionCounts,
    pub subscriber_drops: u64,
    /// Live subscribers of the control socket now.
    pub subscribers: u64,
    /// `(map, entries, capacity)`.
    pub maps: &'a [(&'static str, u64, u64)],
    /// Policy generation now loaded (1 after the start-up load).
    pub generation: u64,
    /// Reloads by result (`ok`, `error`).
    pub reloads: &'a [(&'static str, u64)],
    /// Per program, when the kernel keeps run statistics.
    pub run_stats: Option<&'a [(&'a str, RunStats)]>,
    /// Configuration (`corral.toml`) reloads by result (`ok`, `error`).
    pub config_reloads: &'a [(&'static str, u64)],
    /// Lookups of `host` rule names by result (`ok`, `no_records`, `nxdomain`, `error`).
    pub dns_resolutions: &'a [(&'static str, u64)],
}

#[derive(Debug, thiserror::Error)]
#[error("cannot build metric {metric}: {source}")]
pub struct RenderError {
    metric: &'static str,
    source: prometheus::Error,
}

fn err(metric: &'static str) -> impl FnOnce(prometheus::Error) -> RenderError {
    move |source| RenderError { metric, source }
}

fn counter_vec(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntCounterVec, RenderError> {
    let v = IntCounterVec::new(Opts::new(name, help), labels).map_err(err(name))?;
    register(registry, name, v.clone())?;
    Ok(v)
}

fn gauge_vec(
    registry: &Registry,
    name: &'static str,
    help: &str,
    labels: &[&str],
) -> Result<IntGaugeVec, RenderError> {
    let v = IntGaugeVec::new(Opts::new(name, help), labels).map_err(err(name))?;
    register(registry, name, v.clone())?;
    Ok(v)
}

fn register<C: Collector + 'static>(
    registry: &Registry,
    name: &'static str,
    c: C,
) -> Result<(), RenderError> {
    registry.register(Box::new(c)).map_err(err(name))
}

fn as_u64(v: &Value) -> u64 {
    v.as_u64().unwrap_or(0)
}

/// Nanoseconds as seconds (exact up to 2^53 ns, about 104 days of program run time).
#[allow(clippy::cast_precision_loss)]
fn seconds(ns: u64) -> f64 {
    ns as f64 / 1e9
}

/// Renders the text format.
pub fn render(s: &Snapshot<'_>) -> Result<String, RenderError> {
    let r = Registry::new();
    decisions_and_drops(&r, s)?;
    tasks_and_maps(&r, s)?;
    programs_and_build(&r, s)?;
    config_reloads(&r, s)?;
    let mut out = Vec::new();
    TextEncoder::new()
        .encode(&r.gather(), &mut out)
        .map_err(err("(encoding)"))?;
    Ok(String::from_utf8_lossy(&out).into_owned())
}

fn config_reloads(r: &Registry, s: &Snapshot<'_>) -> Result<(), RenderError> {
    let reloads = counter_vec(
        r,
        "corral_config_reloads_total",
        "Re-reads of corral.toml on SIGHUP: result=ok (applied), result=error (invalid or not applicable; the running configuration was kept).",
        &["result"],
    )?;
    for (result, n) in s.config_reloads {
        reloads.with_label_values(&[result]).inc_by(*n);
    }
    Ok(())
}

fn decisions_and_drops(r: &Registry, s: &Snapshot<'_>) -> Result<(), RenderError> {
    let decisions = counter_vec(
        r,
        "corral_decisions_total",
        "Decisions of the kernel programs. task=\"\": the kernel's own counters over all tasks (allowed included); task=NAME: the events of that task (denied and audited; allowed events, which may be sampled, are not counted here).",
        &["task", "op", "decision"],
    )?;
    if let Some(counters) = s.status.get("counters").and_then(Value::as_object) {
        for (op, c) in counters {
            let Some(c) = c.as_object() else { continue };
            for (decision, n) in c {
                decisions
                    .with_label_values(&["", op.as_str(), decision.as_str()])
                    .inc_by(as_u64(n));
            }
        }
    }
    for ((task, op, decision), n) in s.decisions {
        decisions
            .with_label_values(&[task.as_str(), op, decision])
            .inc_by(*n);
    }

    let dropped = counter_vec(
        r,
        "corral_events_dropped_total",
        "Events lost: stage=kernel when the ring buffer was full, stage=subscriber when a live subscriber did not keep up.",
        &["stage"],
    )?;
    let kernel_drops = s
        .status
        .pointer("/counters/events_dropped")
        .map_or(0, as_u64);
    dropped.with_label_values(&["kernel"]).inc_by(kernel_drops);
    dropped
        .with_label_values(&["subscriber"])
        .inc_by(s.subscriber_drops);

    let hits = IntCounter::new(
        "corral_open_decision_cache_hits_total",
        "Opens of confined processes allowed by a remembered decision, without resolving the path again (BPF LSM only; also counted in corral_decisions_total as allowed opens).",
    )
    .map_err(err("corral_open_decision_cache_hits_total"))?;
    hits.inc_by(
        s.status
            .pointer("/counters/open_cache_hits")
            .map_or(0, as_u64),
    );
    register(r, "corral_open_decision_cache_hits_total", hits)?;

    let enabled = IntGauge::new(
        "corral_open_decision_cache_enabled",
        "1 when the BPF LSM file_open hook remembers allowed decisions on this host, 0 when every open is judged in full (corral status says why).",
    )
    .map_err(err("corral_open_decision_cache_enabled"))?;
    enabled.set(i64::from(
        s.status.pointer("/open_decision_cache/state") == Some(&serde_json::json!("on")),
    ));
    register(r, "corral_open_decision_cache_enabled", enabled)?;

    Ok(())
}

fn tasks_and_maps(r: &Registry, s: &Snapshot<'_>) -> Result<(), RenderError> {
    let subscribers = IntGauge::new(
        "corral_event_subscribers",
        "Live event subscribers on the control socket (corral events --follow).",
    )
    .map_err(err("corral_event_subscribers"))?;
    subscribers.set(s.subscribers as i64);
    register(r, "corral_event_subscribers", subscribers)?;

    let tagged = gauge_vec(
        r,
        "corral_tagged_processes",
        "Processes confined by each task now.",
        &["task"],
    )?;
    for t in s
        .status
        .get("tasks")
        .and_then(Value::as_array)
        .into_iter()
        .flatten()
    {
        if let Some(name) = t.get("name").and_then(Value::as_str) {
            tagged
                .with_label_values(&[name])
                .set(t.get("processes").map_or(0, as_u64) as i64);
        }
    }

    let reloads = counter_vec(
        r,
        "corral_policy_reloads_total",
        "Policy reloads by result.",
        &["result"],
    )?;
    for (result, n) in s.reloads {
        reloads.with_label_values(&[result]).inc_by(*n);
    }
    let dns = counter_vec(
        r,
        "corral_dns_resolutions_total",
        "Lookups of the names of host connect rules, by result.",
        &["result"],
    )?;
    for (result, n) in s.dns_resolutions {
        dns.with_label_values(&[result]).inc_by(*n);
    }
    let generation = IntGauge::new(
        "corral_policy_generation",
        "Generation of the policy set in force (1 after the start-up load).",
    )
    .map_err(err("corral_policy_generation"))?;
    generation.set(s.generation as i64);
    register(r, "corral_policy_generation", generation)?;

    let entries = gauge_vec(
        r,
        "corral_map_entries",
        "Entries in each kernel map.",
        &["map"],
    )?;
    let capacity = gauge_vec(
        r,
        "corral_map_capacity",
        "Capacity (max entries) of each kernel map.",
        &["map"],
    )?;
    for (map, n, cap) in s.maps {
        entries.with_label_values(&[map]).set(*n as i64);
        capacity.with_label_values(&[map]).set(*cap as i64);
    }

    Ok(())
}

fn programs_and_build(r: &Registry, s: &Snapshot<'_>) -> Result<(), RenderError> {
    if let Some(stats) = s.run_stats {
        let time = prometheus::CounterVec::new(
            Opts::new(
                "corral_hook_run_time_seconds_total",
                "Time the kernel spent running each program while kernel.bpf_stats_enabled was 1.",
            ),
            &["program"],
        )
        .map_err(err("corral_hook_run_time_seconds_total"))?;
        register(r, "corral_hook_run_time_seconds_total", time.clone())?;
        let runs = counter_vec(
            r,
            "corral_hook_runs_total",
            "Runs of each program while kernel.bpf_stats_enabled was 1.",
            &["program"],
        )?;
        for (program, st) in stats {
            time.with_label_values(&[program])
                .inc_by(seconds(st.run_time_ns));
            runs.with_label_values(&[program]).inc_by(st.runs);
        }
    }

    let build = gauge_vec(
        r,
        "corral_build_info",
        "Always 1; the labels name the build.",
        &["version"],
    )?;
    build.with_label_values(&[env!("CARGO_PKG_VERSION")]).set(1);
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use serde_json::json;

    use super::*;

    #[test]
    fn renders_every_metric_with_its_values() {
        let status = json!({
            "tasks": [{"name": "a", "id": 1, "mode": "enforce", "processes": 3}],
            "open_decision_cache": {"state": "on"},
            "counters": {
                "open": {"allowed": 10, "denied": 2, "audited": 0},
                "events_dropped": 4,
                "tag_insert_failed": 0,
                "open_cache_hits": 8
            }
        });
        let mut decisions = BTreeMap::new();
        decisions.insert(("a".to_owned(), "open", "denied"), 2);
        let programs = [(
            "corral_file_open",
            RunStats {
                run_time_ns: 1_500_000_000,
                runs: 7,
            },
        )];
        let text = render(&Snapshot {
            status: &status,
            decisions: &decisions,
            subscriber_drops: 5,
            subscribers: 2,
            maps: &[("TAGS", 3, 131_072)],
            generation: 1,
            reloads: &[("ok", 0), ("error", 0)],
            run_stats: Some(&programs),
            config_reloads: &[("ok", 1), ("error", 2)],
            dns_resolutions: &[("ok", 6), ("nxdomain", 1)],
        })
        .unwrap_or_else(|e| panic!("expected the metrics to render: {e}"));
        for line in [
            "corral_decisions_total{decision=\"allowed\",op=\"open\",task=\"\"} 10",
            "corral_decisions_total{decision=\"denied\",op=\"open\",task=\"a\"} 2",
            "corral_events_dropped_total{stage=\"kernel\"} 4",
            "corral_events_dropped_total{stage=\"subscriber\"} 5",
            "corral_open_decision_cache_hits_total 8",
            "corral_open_decision_cache_enabled 1",
            "corral_tagged_processes{task=\"a\"} 3",
            "corral_event_subscribers 2",
            "corral_policy_reloads_total{result=\"error\"} 0",
            "corral_policy_generation 1",
            "corral_dns_resolutions_total{result=\"ok\"} 6",
            "corral_dns_resolutions_total{result=\"nxdomain\"} 1",
            "corral_map_entries{map=\"TAGS\"} 3",
            "corral_map_capacity{map=\"TAGS\"} 131072",
            "corral_hook_run_time_seconds_total{program=\"corral_file_open\"} 1.5",
            "corral_hook_runs_total{program=\"corral_file_open\"} 7",
            "corral_config_reloads_total{result=\"ok\"} 1",
            "corral_config_reloads_total{result=\"error\"} 2",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "expected `{line}` in:\n{text}"
            );
        }
        assert!(
            text.contains("corral_build_info{version=\""),
            "expected build info in:\n{text}"
        );
        assert!(
            !text.contains("tag_insert_failed"),
            "a scalar counter is not an op:\n{text}"
        );
    }
}
