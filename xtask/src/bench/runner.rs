//! Runs every measurement in the current environment (the host, or inside a VM as its /init):
//! the interleaved micro rounds, then the BPF statistics pass, then the workloads.
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead as _, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

use anyhow::{Context as _, Result, bail};
use serde_json::{Value, json};

use super::configs::{self, Config, PolicyPaths, ROUND};
use super::daemon::{Daemon, Events};
use super::recorder::Recorder;
use super::{Plan, machine, workload};

/// The unprivileged user the loops drop to (`nobody`).
const LOOPS_UID: &str = "65534";

/// The binaries and the scratch directory of one environment.
pub struct Tools {
    pub corral: PathBuf,
    pub bench: PathBuf,
    /// Scratch directory (recreated).
    pub work: PathBuf,
}

impl Tools {
    pub fn tree(&self) -> PathBuf {
        self.work.join("tree")
    }

    pub fn policies(&self) -> PathBuf {
        self.work.join("policies")
    }

    pub fn macro_dir(&self) -> PathBuf {
        self.work.join("macro")
    }
}

/// Everything, in order; the records carry `env`.
pub fn measure_all(tools: &Tools, plan: &Plan, rec: &mut Recorder) -> Result<()> {
    let others = prepare(tools)?;
    rec.push(machine::describe(&others));
    let macro_mount = workload::MacroMount::mount(&tools.macro_dir())?;
    workload::prepare_macro(tools, plan)?;
    micro_rounds(tools, plan, rec)?;
    drop(macro_mount);
    bpf_stats_pass(tools, plan, rec)?;
    workload::throughput(tools, plan, rec)?;
    rec.progress("done");
    Ok(())
}

/// Recreates the scratch directory, the file tree and the bench policies; returns the names
/// of the BPF programs already loaded (another agent's, say).
pub fn prepare(tools: &Tools) -> Result<Vec<String>> {
    let _ = std::fs::remove_dir_all(&tools.work);
    std::fs::create_dir_all(&tools.work)
        .with_context(|| format!("creating {}", tools.work.display()))?;
    let before = program_stats(&tools.bench)?;
    let others: Vec<String> = before.values().map(|p| p.name.clone()).collect();
    let tree = tools.tree();
    run_ok(Command::new(&tools.bench).arg("prepare").arg(&tree))?;
    configs::write_policies(
        &tools.policies(),
        &PolicyPaths {
            bench: &tools.bench,
            tree: &tree,
            macro_dir: &tools.macro_dir(),
        },
    )?;
    Ok(others)
}

/// `plan.rounds` rounds of [`ROUND`], one daemon per round for the configurations needing one.
/// The first `plan.macro_rounds` rounds also run the macro workload: its C0 before the daemon
/// starts, its C2 and C3 under the round's daemon (a daemon start costs tens of seconds in a
/// TCG VM, where it verifies every LSM program: the macro rounds share the micro rounds'
/// daemons rather than starting their own).
fn micro_rounds(tools: &Tools, plan: &Plan, rec: &mut Recorder) -> Result<()> {
    let events = tools.work.join("events.json");
    for round in 0..plan.rounds {
        rec.progress(&format!("round {}/{}", round + 1, plan.rounds));
        let with_macro = round < plan.macro_rounds;
        if with_macro {
            workload::macro_without_daemon(tools, plan, round, rec)?;
        }
        let mut daemon: Option<Daemon> = None;
        for config in ROUND {
            if config.needs_daemon() && daemon.is_none() {
                let started = Daemon::start(
                    &tools.corral,
                    &tools.policies(),
                    &tools.work,
                    &Events::File(&events),
                )?;
                rec.progress("daemon ready");
                if with_macro {
                    workload::macro_with_daemon(tools, plan, round, &started, &events, rec)?;
                }
                if round == 0 {
                    let status = started.status()?;
                    rec.push(json!({"kind": "backends", "backends": status["backends"]}));
                }
                daemon = Some(started);
            }
            let null = if config == Config::C1 {
                Some(NullHooks::attach(&tools.bench, rec, round == 0)?)
            } else {
                None
            };
            for mut result in cell(tools, plan, config, daemon.as_ref(), None)? {
                result["round"] = json!(round);
                rec.push(result);
            }
            if let Some(null) = null {
                null.detach()?;
            }
        }
        if let Some(daemon) = daemon {
            daemon.stop()?;
        }
    }
    Ok(())
}

/// One run of the loops binary under `config`: its JSON lines as `micro` records.
pub fn cell(
    tools: &Tools,
    plan: &Plan,
    config: Config,
    daemon: Option<&Daemon>,
    only: Option<&str>,
) -> Result<Vec<Value>> {
    cell_on(tools, plan, config, daemon, only, None)
}

/// `cell`, with the loops process pinned to `cpu` (CPU 0 by default).
pub fn cell_on(
    tools: &Tools,
    plan: &Plan,
    config: Config,
    daemon: Option<&Daemon>,
    only: Option<&str>,
    cpu: Option<usize>,
) -> Result<Vec<Value>> {
    let mut cmd = match (config.task(), daemon) {
        (Some(task), Some(daemon)) => {
            let mut cmd = daemon.run_prefix(task);
            cmd.arg(&tools.bench);
            cmd
        }
        (Some(task), None) => bail!("{} needs the daemon (task {task})", config.label()),
        (None, _) => Command::new(&tools.bench),
    };
    cmd.arg("loops")
        .arg(tools.tree())
        .args(["--ms", &plan.ms.to_string(), "--user", LOOPS_UID]);
    if let Some(only) = only {
        cmd.args(["--only", only]);
    }
    if let Some(cpu) = cpu {
        cmd.args(["--cpu", &cpu.to_string()]);
    }
    match config {
        Config::R1 => {
            cmd.arg("--landlock").arg(
                tools
                    .policies()
                    .join(format!("{}.yaml", configs::TASK_ALLOW)),
            );
        }
        Config::R2 => {
            cmd.arg("--seccomp");
        }
        _ => {}
    }
    let stdout = run_ok(&mut cmd)?;
    stdout
        .lines()
        .map(|line| {
            let mut record: Value = serde_json::from_str(line)
                .with_context(|| format!("corral-bench printed a non-JSON line: {line:?}"))?;
            if record["ns_per_op"].as_f64().is_none() {
                bail!("corral-bench line without ns_per_op: {line}");
            }
            record["kind"] = json!("micro");
            record["config"] = json!(config.label());
            Ok(record)
        })
        .collect()
}

/// Runs `cmd`, fails with its stderr unless it exits 0, returns its stdout.
pub fn run_ok(cmd: &mut Command) -> Result<String> {
    let line = crate::command::describe(cmd);
    let out = cmd
        .stdin(Stdio::null())
        .output()
        .with_context(|| format!("running {line}"))?;
    if !out.status.success() {
        bail!(
            "`{line}` exited {}: {}",
            out.status,
            String::from_utf8_lossy(&out.stderr).trim()
        );
    }
    String::from_utf8(out.stdout).with_context(|| format!("`{line}` printed non-UTF-8"))
}

/// C1's programs, held by a `corral-bench null-hooks` child until its stdin closes.
struct NullHooks(Child);

impl NullHooks {
    fn attach(bench: &Path, rec: &mut Recorder, report: bool) -> Result<Self> {
        let mut child = Command::new(bench)
            .arg("null-hooks")
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .spawn()
            .context("starting corral-bench null-hooks")?;
        let mut line = String::new();
        let stdout = child.stdout.take().context("null-hooks stdout not piped")?;
        BufReader::new(stdout)
            .read_line(&mut line)
            .context("reading null-hooks' ready line")?;
        let ready: Value = serde_json::from_str(&line)
            .with_context(|| format!("null-hooks did not get ready: {line:?}"))?;
        if report {
            rec.push(json!({"kind": "null_hooks", "attached": ready["attached"],
                            "refused": ready["refused"].as_array().map_or(0, Vec::len)}));
        }
        Ok(Self(child))
    }

    fn detach(mut self) -> Result<()> {
        if let Some(mut stdin) = self.0.stdin.take() {
            let _ = stdin.flush();
        }
        let status = self.0.wait().context("waiting for null-hooks")?;
        if !status.success() {
            bail!("corral-bench null-hooks exited {status}");
        }
        Ok(())
    }
}

/// One loaded program's counters.
pub struct ProgramStats {
    pub name: String,
    pub run_cnt: u64,
    pub run_time_ns: u64,
}

/// Every loaded BPF program, by id.
pub fn program_stats(bench: &Path) -> Result<BTreeMap<u64, ProgramStats>> {
    let out = run_ok(Command::new(bench).arg("bpf-stats"))?;
    out.lines()
        .map(|line| {
            let v: Value = serde_json::from_str(line)
                .with_context(|| format!("bpf-stats printed {line:?}"))?;
            let num = |k: &str| v[k].as_u64().with_context(|| format!("bpf-stats: no {k}"));
            Ok((
                num("id")?,
                ProgramStats {
                    name: v["name"].as_str().unwrap_or_default().to_owned(),
                    run_cnt: num("run_cnt")?,
                    run_time_ns: num("run_time_ns")?,
                },
            ))
        })
        .collect()
}

const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// With `kernel.bpf_stats_enabled=1`: the run count and time each of our programs accrued
/// during one run of each loop under C1, C2, C3, C4 and C5 (separate pass: the statistics cost
/// time themselves). Ours = the programs that appeared while the null programs or the daemon
/// started (other tools may load programs meanwhile).
fn bpf_stats_pass(tools: &Tools, plan: &Plan, rec: &mut Recorder) -> Result<()> {
    let previous = std::fs::read_to_string(BPF_STATS_SYSCTL)
        .with_context(|| format!("reading {BPF_STATS_SYSCTL}"))?;
    std::fs::write(BPF_STATS_SYSCTL, "1")
        .with_context(|| format!("writing 1 to {BPF_STATS_SYSCTL}"))?;
    rec.progress("BPF statistics pass");
    let result = (|| -> Result<()> {
        let before = program_stats(&tools.bench)?;
        let null = NullHooks::attach(&tools.bench, rec, false)?;
        let ours = new_ids(&before, &program_stats(&tools.bench)?);
        stats_of_cell(tools, plan, Config::C1, None, &ours, rec)?;
        null.detach()?;
        let before = program_stats(&tools.bench)?;
        let daemon = Daemon::start(
            &tools.corral,
            &tools.policies(),
            &tools.work,
            &Events::File(&tools.work.join("events-stats.json")),
        )?;
        let ours = new_ids(&before, &program_stats(&tools.bench)?);
        for config in [Config::C2, Config::C3, Config::C4, Config::C5] {
            stats_of_cell(tools, plan, config, Some(&daemon), &ours, rec)?;
        }
        daemon.stop()
    })();
    std::fs::write(BPF_STATS_SYSCTL, previous.trim())
        .with_context(|| format!("restoring {BPF_STATS_SYSCTL}"))?;
    result
}

fn new_ids(
    before: &BTreeMap<u64, ProgramStats>,
    after: &BTreeMap<u64, ProgramStats>,
) -> BTreeSet<u64> {
    after
        .keys()
        .filter(|id| !before.contains_key(id))
        .copied()
        .collect()
}

/// How much longer each loop runs in the statistics pass than in a round: the loop process's
/// own start (its execve, the loader's opens) reaches the hooks too and must be a small share of
/// the operations it is divided by.
const STATS_LOOP_SCALE: u64 = 10;

/// The statistics of one cell, loop by loop (one `corral-bench loops --only` each, for
/// [`STATS_LOOP_SCALE`] × the plan's time), so that a loop's program time per operation can be
/// read off: each record names the loop and how many operations it ran.
fn stats_of_cell(
    tools: &Tools,
    plan: &Plan,
    config: Config,
    daemon: Option<&Daemon>,
    ours: &BTreeSet<u64>,
    rec: &mut Recorder,
) -> Result<()> {
    let long = Plan {
        ms: plan.ms * STATS_LOOP_SCALE,
        ..*plan
    };
    for name in super::stats::LOOPS {
        let before = program_stats(&tools.bench)?;
        let micro = cell(tools, &long, config, daemon, Some(name))?;
        let after = program_stats(&tools.bench)?;
        let ops: u64 = micro.iter().filter_map(|r| r["ops"].as_u64()).sum();
        for (id, stats) in &after {
            if !ours.contains(id) {
                continue;
            }
            let (cnt0, time0) = before
                .get(id)
                .map_or((0, 0), |b| (b.run_cnt, b.run_time_ns));
            let runs = stats.run_cnt.saturating_sub(cnt0);
            if runs == 0 {
                continue;
            }
            rec.push(json!({
                "kind": "bpf_stats", "config": config.label(), "program": stats.name,
                "id": id, "loop": name, "ops": ops,
                "run_cnt": runs, "run_time_ns": stats.run_time_ns.saturating_sub(time0),
            }));
        }
    }
    Ok(())
}
