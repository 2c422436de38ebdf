//! `cargo xtask bench` (issue 7): what Corral costs, measured side by side with no agent, null
//! programs, Landlock and seccomp, interleaved in one run. Native rows use this host's backends
//! (here the fallbacks: cgroup `sock_addr`, Landlock); BPF LSM rows come from a qemu VM on a
//! Debian kernel, measured there by this same code (`--inside-vm`, run by the VM's /init).
//! Rows of different environments never share a ratio.

// Counts and durations here (operations, nanoseconds, KiB) stay far below 2^52.
#![allow(clippy::cast_precision_loss)]

mod configs;
mod daemon;
mod machine;
mod pipeline;
mod recorder;
mod report;
mod runner;
mod stats;
#[cfg(test)]
mod tests;
mod vm;
mod workload;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use crate::kernels::Kernel;
use crate::libtest::Counts;
use crate::suite::Suite;
use crate::{binaries, cargo, paths, setup};

#[derive(clap::Args)]
#[allow(clippy::struct_excessive_bools)] // command-line flags
pub struct Args {
    /// Smoke mode: every cell a few times, native rows only, checks that the output parses;
    /// writes target/xtask/BENCHMARKS-quick.md, not BENCHMARKS.md.
    #[arg(long)]
    quick: bool,
    /// Kernel the VM boots for the BPF LSM rows. 6.12 by default: under TCG a daemon start
    /// (every LSM program verified) takes about 2.5 times longer on 6.1, which would put the
    /// full bench over 15 minutes; `--kernel 6.1` measures the older kernel.
    #[arg(long, value_enum, default_value_t = Kernel::V6_12)]
    kernel: Kernel,
    /// Native rows only (the BPF LSM rows are then NOT measured).
    #[arg(long, conflicts_with = "vm")]
    no_vm: bool,
    /// With --quick: boot the VM too (a quick run is native only otherwise).
    #[arg(long)]
    vm: bool,
    /// Rounds of the interleaved configurations (default 10; 2 with --quick).
    #[arg(long)]
    rounds: Option<usize>,
    /// Only the event flood, natively, with the full run's flood length; prints its records
    /// (events/s, drops, daemon CPU) and writes no report.
    #[arg(long, conflicts_with_all = ["quick", "vm", "inside_vm"])]
    flood: bool,
    /// With --flood: this daemon binary instead of a release build of the worktree (to
    /// measure another commit's daemon the same way).
    #[arg(long, requires = "flood")]
    corral: Option<PathBuf>,
    /// Only the daemon pipeline replay (its capacity without the kernel producer), natively;
    /// prints its record and writes no report.
    #[arg(long, conflicts_with_all = ["quick", "vm", "inside_vm", "flood"])]
    pipeline: bool,
    /// Internal: measure here and print `CORRAL_BENCH` records (the bench VM's /init).
    #[arg(long, hide = true)]
    inside_vm: bool,
}

/// Sizes of one run.
#[derive(Clone, Copy)]
pub struct Plan {
    pub quick: bool,
    pub rounds: usize,
    /// Wall time per micro loop and cell.
    pub ms: u64,
    /// Wall time of the event flood.
    pub flood_ms: u64,
    pub macro_files: usize,
    /// Micro rounds that also run the macro workload (the first ones; at most `rounds`).
    pub macro_rounds: usize,
    /// Records replayed through the daemon's per-record path.
    pub pipeline_records: usize,
}

impl Plan {
    fn quick(rounds: Option<usize>) -> Self {
        Self {
            quick: true,
            rounds: rounds.unwrap_or(2),
            ms: 5,
            flood_ms: 300,
            macro_files: 300,
            macro_rounds: 1,
            pipeline_records: 20_000,
        }
    }

    fn new(args: &Args) -> Self {
        if args.quick {
            Self::quick(args.rounds)
        } else {
            Self {
                quick: false,
                rounds: args.rounds.unwrap_or(10),
                ms: 30,
                flood_ms: 2000,
                macro_files: 3000,
                macro_rounds: 5,
                pipeline_records: 2_000_000,
            }
        }
    }

    /// The arguments that give the same plan inside the VM.
    fn as_args(&self) -> Vec<String> {
        let mut args = vec!["--rounds".to_owned(), self.rounds.to_string()];
        if self.quick {
            args.push("--quick".to_owned());
        }
        args
    }
}

pub fn run(args: &Args) -> Result<bool> {
    let plan = Plan::new(args);
    if args.inside_vm {
        let tools = runner::Tools {
            corral: PathBuf::from("/bin/corral"),
            bench: PathBuf::from("/bin/corral-bench"),
            work: PathBuf::from("/tmp/corral-bench"),
        };
        let mut rec = recorder::Recorder::new("vm", true);
        runner::measure_all(&tools, &plan, &mut rec)?;
        return Ok(true);
    }
    if args.flood {
        return flood_only(&plan, args.corral.as_deref());
    }
    if args.pipeline {
        return pipeline_only(&plan);
    }
    let started = Instant::now();
    let kernels = if args.no_vm || (args.quick && !args.vm) {
        Vec::new()
    } else {
        vec![args.kernel]
    };
    let images = setup::run(&kernels)?;
    let (corral, bench) = build()?;
    let out = paths::xtask_out()?;
    let mut records = native(&corral, &bench, &plan)?;
    if let Some(image) = images.first() {
        records.extend(vm::measure(image, &corral, &bench, &plan, &out)?);
    }
    let target = if plan.quick {
        out.join("BENCHMARKS-quick.md")
    } else {
        paths::repo().join("BENCHMARKS.md")
    };
    let summary = report(&records, &plan, started.elapsed(), &out, &target)?;
    println!("{}", std::fs::read_to_string(&target).unwrap_or_default());
    println!(
        "bench: {} records, report {}, {:.0} s",
        records.len(),
        target.display(),
        started.elapsed().as_secs_f64()
    );
    if summary.missing_cells.is_empty() {
        Ok(true)
    } else {
        bail!(
            "cells without results: {}",
            summary.missing_cells.join(", ")
        )
    }
}

/// `corral` and `corral-bench`, release builds.
fn build() -> Result<(PathBuf, PathBuf)> {
    let corral = binaries::corral()?;
    let built = cargo::build(&[
        "build",
        "--release",
        "-p",
        "corral-tests",
        "--bin",
        "corral-bench",
    ])?;
    let bench = cargo::executable(&built, "corral-bench", "bin")?.to_path_buf();
    Ok((corral, bench))
}

/// Every measurement on this host.
fn native(corral: &Path, bench: &Path, plan: &Plan) -> Result<Vec<Value>> {
    let mut rec = recorder::Recorder::new("native", false);
    let tools = runner::Tools {
        corral: corral.to_path_buf(),
        bench: bench.to_path_buf(),
        work: native_work(),
    };
    runner::measure_all(&tools, plan, &mut rec)?;
    pipeline::replay(&tools, plan, &mut rec)?;
    // Kept after a failure, for its daemon log.
    let _ = std::fs::remove_dir_all(&tools.work);
    Ok(rec.records)
}

/// `--pipeline`: the daemon pipeline replay alone, on this host.
fn pipeline_only(plan: &Plan) -> Result<bool> {
    let (corral, bench) = build()?;
    let mut rec = recorder::Recorder::new("native", false);
    let tools = runner::Tools {
        corral,
        bench,
        work: native_work(),
    };
    std::fs::create_dir_all(&tools.work)
        .with_context(|| format!("creating {}", tools.work.display()))?;
    pipeline::replay(&tools, plan, &mut rec)?;
    for record in &rec.records {
        println!("{record}");
    }
    let _ = std::fs::remove_dir_all(&tools.work);
    Ok(true)
}

/// This run's scratch directory on this host (the daemon's control socket, its log, the bench
/// tree): one per xtask process, so concurrent runs (other worktrees) neither share the socket
/// nor remove each other's files. The VM, which runs one bench, keeps `/tmp/corral-bench`.
fn native_work() -> PathBuf {
    std::env::temp_dir().join(format!("corral-bench-{}", std::process::id()))
}

/// `--flood`: the event throughput part alone, on this host.
fn flood_only(plan: &Plan, corral: Option<&Path>) -> Result<bool> {
    let (built, bench) = build()?;
    let corral = corral.map_or(built, Path::to_path_buf);
    let mut rec = recorder::Recorder::new("native", false);
    let tools = runner::Tools {
        corral,
        bench,
        work: native_work(),
    };
    runner::prepare(&tools)?;
    workload::throughput(&tools, plan, &mut rec)?;
    let _ = std::fs::remove_dir_all(&tools.work);
    for record in &rec.records {
        println!("{record}");
    }
    Ok(true)
}

/// Writes the raw records (`out/bench.jsonl`) and the report to `target`.
fn report(
    records: &[Value],
    plan: &Plan,
    elapsed: Duration,
    out: &Path,
    target: &Path,
) -> Result<stats::Summary> {
    let raw = out.join("bench.jsonl");
    let lines: Vec<String> = records.iter().map(ToString::to_string).collect();
    std::fs::write(&raw, lines.join("\n") + "\n")
        .with_context(|| format!("writing {}", raw.display()))?;
    let summary = stats::Summary::of(records, plan);
    let previous = std::fs::read_to_string(target).ok();
    let text = report::render(&summary, plan, elapsed, previous.as_deref());
    std::fs::write(target, &text).with_context(|| format!("writing {}", target.display()))?;
    Ok(summary)
}

/// `cargo xtask bench --quick` natively, as a step of `cargo xtask test`: passes if every cell
/// ran and its output parsed (one "test" per cell).
pub fn smoke_suite(out: &Path) -> Suite {
    let started = Instant::now();
    let log = out.join("BENCHMARKS-quick.md");
    let plan = Plan::quick(None);
    let result = build().and_then(|(corral, bench)| native(&corral, &bench, &plan));
    let (counts, problems) =
        match result.and_then(|records| report(&records, &plan, started.elapsed(), out, &log)) {
            Ok(summary) => {
                let cells = (stats::LOOPS.len() * configs::ROUND.len()) as u64;
                let missing = summary.missing_cells.len() as u64;
                let counts = Counts {
                    passed: cells - missing,
                    failed: missing,
                    results: 1,
                };
                let problems = if missing == 0 {
                    Vec::new()
                } else {
                    vec![format!(
                        "cells without results: {}",
                        summary.missing_cells.join(", ")
                    )]
                };
                (counts, problems)
            }
            Err(e) => (Counts::default(), vec![format!("{e:#}")]),
        };
    Suite::judge("bench --quick", counts, started.elapsed(), &problems, &log)
}
