//! Medians, extremes and ratios of the records, per environment, and the targets.
use std::collections::BTreeMap;

use serde_json::Value;

use super::Plan;
use super::configs::{Config, ROUND};

/// The loops in table order.
pub const LOOPS: [&str; 9] = [
    "getpid",
    "open_close_depth1",
    "open_close_depth4",
    "open_close_depth12",
    "open_missing",
    "udp_connect",
    "tcp_connect",
    "fork_exec",
    "fork_exit",
];

/// Several runs of one cell.
#[derive(Clone, Debug)]
pub struct Cell {
    pub median: f64,
    pub min: f64,
    pub max: f64,
    pub runs: usize,
    /// Operations that failed (refused, or ENOENT for `open_missing`), and how.
    pub failed: u64,
    pub ops: u64,
    pub errno: Option<String>,
}

impl Cell {
    pub(super) fn of(values: &[f64]) -> Option<Self> {
        let mut sorted = values.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = match n {
            0 => return None,
            _ if n % 2 == 1 => sorted[n / 2],
            _ => f64::midpoint(sorted[n / 2 - 1], sorted[n / 2]),
        };
        Some(Self {
            median,
            min: sorted[0],
            max: sorted[n - 1],
            runs: n,
            failed: 0,
            ops: 0,
            errno: None,
        })
    }
}

/// One issue target, judged on one environment's rows.
pub struct Target {
    pub what: String,
    pub goal: String,
    pub measured: String,
    pub met: bool,
}

/// Everything measured in one environment.
pub struct EnvSummary {
    pub env: String,
    pub machine: Value,
    pub backends: Value,
    pub null_hooks: Value,
    /// loop → config label → cell.
    pub micro: BTreeMap<String, BTreeMap<&'static str, Cell>>,
    /// (config, program, runs, ns per run), summed over the loops.
    pub bpf: Vec<(String, String, u64, f64)>,
    /// loop → config label → our programs' run time per operation of the loop (ns), from the
    /// statistics pass: what the hooks themselves cost, without the wall clock's noise.
    pub bpf_per_op: BTreeMap<String, BTreeMap<String, f64>>,
    pub throughput: Vec<Value>,
    /// The daemon pipeline replay (`corral-bench pipeline`), natively.
    pub pipeline: Option<Value>,
    /// config → wall seconds.
    pub macro_wall: BTreeMap<String, Cell>,
    pub daemon_cpu_s: Vec<f64>,
    pub peak_rss_kib: u64,
    pub targets: Vec<Target>,
}

pub struct Summary {
    pub envs: Vec<EnvSummary>,
    /// `env/config/loop` cells with fewer runs than rounds.
    pub missing_cells: Vec<String>,
}

fn of_kind<'a>(
    records: &'a [Value],
    env: &'a str,
    kind: &'a str,
) -> impl Iterator<Item = &'a Value> {
    records
        .iter()
        .filter(move |r| r["env"] == env && r["kind"] == kind)
}

impl Summary {
    pub fn of(records: &[Value], plan: &Plan) -> Self {
        let mut envs: Vec<String> = Vec::new();
        for r in records {
            if let Some(env) = r["env"].as_str()
                && !envs.iter().any(|e| e == env)
            {
                envs.push(env.to_owned());
            }
        }
        let mut missing_cells = Vec::new();
        let envs = envs
            .iter()
            .map(|env| {
                let s = summarize_env(records, env);
                for name in LOOPS {
                    for config in ROUND {
                        let runs = s
                            .micro
                            .get(name)
                            .and_then(|m| m.get(config.label()))
                            .map_or(0, |c| c.runs);
                        if runs < plan.rounds {
                            missing_cells
                                .push(format!("{env}/{}/{name} ({runs} runs)", config.label()));
                        }
                    }
                }
                s
            })
            .collect();
        Self {
            envs,
            missing_cells,
        }
    }
}

fn summarize_env(records: &[Value], env: &str) -> EnvSummary {
    let first = |kind| {
        of_kind(records, env, kind)
            .next()
            .cloned()
            .unwrap_or(Value::Null)
    };
    let mut micro: BTreeMap<String, BTreeMap<&'static str, Cell>> = BTreeMap::new();
    for name in LOOPS {
        for config in ROUND {
            let runs: Vec<&Value> = of_kind(records, env, "micro")
                .filter(|r| r["loop"] == name && r["config"] == config.label())
                .collect();
            let values: Vec<f64> = runs
                .iter()
                .filter_map(|r| r["ns_per_op"].as_f64())
                .collect();
            if let Some(mut cell) = Cell::of(&values) {
                cell.failed = runs.iter().filter_map(|r| r["failed"].as_u64()).sum();
                cell.ops = runs.iter().filter_map(|r| r["ops"].as_u64()).sum();
                cell.errno = runs
                    .iter()
                    .find_map(|r| r["errno"].as_str().map(str::to_owned));
                micro
                    .entry(name.to_owned())
                    .or_default()
                    .insert(config.label(), cell);
            }
        }
    }
    let (bpf, bpf_per_op) = bpf_summary(records, env);
    let mut macro_wall = BTreeMap::new();
    for config in ["C0", "C2", "C3"] {
        let values: Vec<f64> = of_kind(records, env, "macro")
            .filter(|r| r["config"] == config)
            .filter_map(|r| r["seconds"].as_f64())
            .collect();
        if let Some(cell) = Cell::of(&values) {
            macro_wall.insert(config.to_owned(), cell);
        }
    }
    let throughput: Vec<Value> = of_kind(records, env, "throughput").cloned().collect();
    let daemon_cpu_s = of_kind(records, env, "macro_daemon")
        .filter_map(|r| r["daemon_cpu_s"].as_f64())
        .collect();
    let peak_rss_kib = of_kind(records, env, "macro_daemon")
        .chain(throughput.iter())
        .filter_map(|r| r["daemon_peak_rss_kib"].as_u64())
        .max()
        .unwrap_or(0);
    let mut s = EnvSummary {
        env: env.to_owned(),
        machine: first("env"),
        backends: first("backends")["backends"].clone(),
        null_hooks: first("null_hooks"),
        micro,
        bpf,
        bpf_per_op,
        throughput,
        pipeline: of_kind(records, env, "pipeline").next().cloned(),
        macro_wall,
        daemon_cpu_s,
        peak_rss_kib,
        targets: Vec::new(),
    };
    s.targets = targets(&s);
    s
}

/// The statistics pass's records: per (config, program id) summed over the loops, in the
/// order first seen; and per loop and config, all our programs' time per operation.
type BpfSummary = (
    Vec<(String, String, u64, f64)>,
    BTreeMap<String, BTreeMap<String, f64>>,
);

/// A program of one configuration: (config, program id).
type ProgramKey = (String, u64);

fn bpf_summary(records: &[Value], env: &str) -> BpfSummary {
    // (config, id) → (program, runs, ns)
    let mut programs: Vec<(ProgramKey, (String, u64, u64))> = Vec::new();
    // (loop, config) → (ns, ops of that loop run)
    let mut per_loop: BTreeMap<(String, String), (u64, u64)> = BTreeMap::new();
    for r in of_kind(records, env, "bpf_stats") {
        let (Some(config), Some(program), Some(runs), Some(ns)) = (
            r["config"].as_str(),
            r["program"].as_str(),
            r["run_cnt"].as_u64(),
            r["run_time_ns"].as_u64(),
        ) else {
            continue;
        };
        let key = (config.to_owned(), r["id"].as_u64().unwrap_or(0));
        match programs.iter_mut().find(|(k, _)| *k == key) {
            Some((_, (_, total_runs, total_ns))) => {
                *total_runs += runs;
                *total_ns += ns;
            }
            None => programs.push((key, (program.to_owned(), runs, ns))),
        }
        if let (Some(name), Some(ops)) = (r["loop"].as_str(), r["ops"].as_u64()) {
            let entry = per_loop
                .entry((name.to_owned(), config.to_owned()))
                .or_insert((0, ops));
            entry.0 += ns;
        }
    }
    let bpf = programs
        .into_iter()
        .filter(|(_, (_, runs, _))| *runs > 0)
        .map(|((config, _), (program, runs, ns))| (config, program, runs, ns as f64 / runs as f64))
        .collect();
    let mut per_op: BTreeMap<String, BTreeMap<String, f64>> = BTreeMap::new();
    for ((name, config), (ns, ops)) in per_loop {
        if ops > 0 {
            per_op
                .entry(name)
                .or_default()
                .insert(config, ns as f64 / ops as f64);
        }
    }
    (bpf, per_op)
}

impl EnvSummary {
    pub fn median(&self, name: &str, config: Config) -> Option<f64> {
        self.micro.get(name)?.get(config.label()).map(|c| c.median)
    }

    /// Our programs' run time per operation of loop `name` under `config` (statistics pass).
    pub fn program_ns(&self, name: &str, config: Config) -> Option<f64> {
        self.bpf_per_op.get(name)?.get(config.label()).copied()
    }

    fn ratio(&self, name: &str, config: Config) -> Option<f64> {
        Some(self.median(name, config)? / self.median(name, Config::C0)?)
    }
}

fn ratio_target(
    s: &EnvSummary,
    what: &str,
    name: &str,
    config: Config,
    limit: f64,
) -> Option<Target> {
    let r = s.ratio(name, config)?;
    // The floor: what the same hooks cost returning at once. Where it alone is above the
    // target, no work in the hooks can meet it.
    let floor = s
        .ratio(name, Config::C1)
        .map(|c1| format!("; C1, the null hooks: {c1:.3}"))
        .unwrap_or_default();
    Some(Target {
        what: format!("{what} ({name}, {})", config.label()),
        goal: format!("≤ {limit:.2} × C0"),
        measured: format!(
            "{r:.3} ({:+.1} % vs the target{floor})",
            (r / limit - 1.0) * 100.0
        ),
        met: r <= limit,
    })
}

/// The open+close targets, per path depth.
fn open_targets(s: &EnvSummary, t: &mut Vec<Target>) {
    for name in [
        "open_close_depth1",
        "open_close_depth4",
        "open_close_depth12",
    ] {
        if let (Some(c2), Some(c1)) = (s.median(name, Config::C2), s.median(name, Config::C1)) {
            t.push(Target {
                what: format!("untagged open+close ({name}, C2)"),
                goal: "≤ C1 + 15 ns".to_owned(),
                measured: format!("C2 − C1 = {:+.0} ns", c2 - c1),
                met: c2 - c1 <= 15.0,
            });
        }
        if let (Some(c2), Some(c1)) = (
            s.program_ns(name, Config::C2),
            s.program_ns(name, Config::C1),
        ) {
            t.push(Target {
                what: format!("untagged open+close, hooks' own time ({name}, C2, BPF statistics)"),
                goal: "≤ C1 + 15 ns".to_owned(),
                measured: format!(
                    "C2 − C1 = {:+.0} ns per operation ({c2:.0} vs {c1:.0})",
                    c2 - c1
                ),
                met: c2 - c1 <= 15.0,
            });
        }
        t.extend(ratio_target(
            s,
            "tagged allowed open+close",
            name,
            Config::C3,
            1.10,
        ));
        if let (Some(c3), Some(r1)) = (s.median(name, Config::C3), s.median(name, Config::R1)) {
            t.push(Target {
                what: format!("tagged allowed open+close vs Landlock ({name})"),
                goal: "C3 ≤ R1".to_owned(),
                measured: format!("C3 / R1 = {:.3}", c3 / r1),
                met: c3 <= r1,
            });
        }
    }
}

fn targets(s: &EnvSummary) -> Vec<Target> {
    let mut t = Vec::new();
    open_targets(s, &mut t);
    for name in ["udp_connect", "tcp_connect"] {
        t.extend(ratio_target(
            s,
            "tagged allowed connect",
            name,
            Config::C3,
            1.02,
        ));
    }
    t.extend(ratio_target(
        s,
        "tagged fork+exec",
        "fork_exec",
        Config::C3,
        1.03,
    ));
    if let (Some(c3), Some(c0)) = (s.macro_wall.get("C3"), s.macro_wall.get("C0")) {
        let r = c3.median / c0.median;
        t.push(Target {
            what: "macro workload wall time, tagged (C3)".to_owned(),
            goal: "≤ 1.02 × C0".to_owned(),
            measured: format!("{r:.3} ({:+.1} % vs the target)", (r / 1.02 - 1.0) * 100.0),
            met: r <= 1.02,
        });
    }
    // The file-sink flood that delivered the most (one producer, or one per CPU).
    let rate_of = |r: &&Value| r["events_per_s"].as_f64().unwrap_or(0.0);
    if let Some(flood) = s
        .throughput
        .iter()
        .filter(|r| r["subscriber"] == "file")
        .max_by(|a, b| rate_of(a).total_cmp(&rate_of(b)))
    {
        let rate = flood["events_per_s"].as_f64().unwrap_or(0.0);
        let unaccounted = flood["unaccounted"].as_i64().unwrap_or(i64::MAX);
        t.push(Target {
            what: "events to the JSON file sink".to_owned(),
            goal: "≥ 500000 events/s, 0 unaccounted".to_owned(),
            measured: format!(
                "{rate:.0} events/s ({:.1} % of the target, {} producer(s)), {} dropped (counted), {unaccounted} unaccounted",
                rate / 5000.0,
                flood["producers"].as_u64().unwrap_or(1),
                flood["dropped"]
            ),
            met: rate >= 500_000.0 && unaccounted == 0,
        });
    }
    if let Some(replay) = &s.pipeline {
        let rate = super::pipeline::capacity(replay).unwrap_or(0.0);
        t.push(Target {
            what: "daemon pipeline capacity (replayed records)".to_owned(),
            goal: "≥ 500 000 events/s on one core".to_owned(),
            measured: format!(
                "{rate:.0} events/s per CPU second ({:.2} µs/event; {:.0} events/s wall clock)",
                replay["cpu_us_per_event"].as_f64().unwrap_or(0.0),
                replay["events_per_s"].as_f64().unwrap_or(0.0)
            ),
            met: rate >= 500_000.0,
        });
    }
    if s.peak_rss_kib > 0 {
        let mib = s.peak_rss_kib as f64 / 1024.0;
        t.push(Target {
            what: "daemon peak RSS".to_owned(),
            goal: "≤ 30 MiB".to_owned(),
            measured: format!("{mib:.1} MiB"),
            met: mib <= 30.0,
        });
    }
    t
}
