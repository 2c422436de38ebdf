//! BENCHMARKS.md: the method, then per environment the machine, the micro table (median ns/op
//! and ratio to that environment's C0), the spread, BPF statistics, event throughput, the macro
//! workload and the targets.
use std::fmt::Write as _;
use std::time::Duration;

use serde_json::Value;

use super::Plan;
use super::configs::{Config, ROUND};
use super::stats::{EnvSummary, LOOPS, Summary};

const METHOD: &str = "\
## Method

`cargo xtask bench` regenerates this file (raw records: `target/xtask/bench.jsonl`).

- **Micro loops** (`corral-bench loops`, `tests/src/bin/corral-bench/`): each loop runs its
  operation in batches for a fixed wall time per cell, pinned to CPU 0, after dropping root to
  uid 65534; `ns/op` is wall time / operations. A refused operation still counts as one
  operation (the `failed` notes say how many failed and with which errno). `open_close_depthN`
  opens and closes a file N path components below the bench directory; `open_missing` opens a
  file that does not exist; `udp_connect` re-connects one UDP socket to 127.0.0.1:9;
  `tcp_connect` is socket + connect + close (RST) to a loopback listener; `fork_exec` forks,
  execs a 129-byte static ELF that only calls `exit(0)`, and waits; `fork_exit` forks a child
  that exits at once and waits.
- **Configurations**, interleaved: every round runs C0, C1, R1, R2, then starts a fresh daemon
  and runs C2, C3, C4, C5, then stops it; each cell's median, minimum and maximum are over the
  rounds. Ratios are to C0 **of the same environment** only.
- **C1** attaches a two-instruction program (`r0 = verdict; exit`) to every hook the daemon
  attaches on that kernel (its plan: the tagging tracepoints, the cgroup `sock_addr` programs,
  and the BPF LSM hooks, or where the kernel refuses those the kill observer's `sys_exit`, as
  the daemon does), through raw `bpf(2)` calls.
- **BPF statistics**: a separate pass with `kernel.bpf_stats_enabled=1`, one run of each loop
  per configuration, ten times as long as a round's; `run_time_ns / run_cnt` per program over those runs. Program names are the
  kernel's (15 characters): `corral_socket_c` is `socket_connect` or `socket_create`,
  `null_*` are C1's programs. The hooks' time per operation is the run time all our programs
  accrued during one loop's run / its operations (host-wide: the loop process's own start and other
  processes' calls that reach the hooks meanwhile count too, so it is an upper bound). It is what the hooks themselves add,
  without the wall clock's run-to-run spread; the statistics' own clock reads (two per program
  run) are in every configuration alike.
- **Event throughput**: a process tagged with an audit-mode task that allows nothing floods one
  operation (opens where BPF LSM judges them, UDP connects where only the cgroup backend
  reports events); events/s = lines that reached the sink / time from the flood's start to the
  last line (for the file sink, the file's modification time: when the daemon wrote it, not when
  the bench read it). One producer pinned to CPU 0, then one per CPU (the daemon shares the
  CPUs with them); drops are the daemon's `events_dropped` counter; unaccounted = audited (kernel
  counter) − delivered − dropped. Then the same with a subscriber on `--events -` that reads
  4 KiB per millisecond.
- **Daemon pipeline capacity** (native only): `corral-bench pipeline` replays synthetic
  ring-buffer records (30 % IPv4 and 10 % IPv6 connects without a parent in the record, 45 %
  opens with paths of 10 to 400 bytes, 15 % execs; 12 processes of 3 tasks, 2 instances)
  through the daemon's own per-record path (`agent::daemon::Delivery`: decode, task, instance
  and executable naming, JSON line, hub, the rotating file sink, 64 MiB files) on one thread, in
  batches of 256; the names come from in-memory maps instead of the kernel's `EXES`.
  events/s per CPU second = 1 / the thread's CPU time per record; every record must come out
  as one JSON line.
- **Macro**: `rm -rf out && mkdir out && tar -xf src.tar -C out && find out -type f | wc -l` on
  an archive of small files, in a tmpfs mounted for the run (what the hooks add to file-heavy
  work, not the disk's writeback), in the first micro rounds: without daemon (C0, before the round's
  daemon starts), with the round's daemon and untagged (C2), tagged with a task allowing it
  (C3), before the round's tagged micro cells; daemon CPU seconds from `/proc/PID/stat` over
  C2 + C3, peak RSS from `VmHWM` (so far, micro rounds included).
- **Environments**: `native` is this host with the backends it offers (the daemon's status is
  shown); `vm` is a qemu guest (TCG, software emulation, one vCPU) on a Debian kernel (6.12 unless `--kernel 6.1`), the only
  place BPF LSM loads here. TCG makes every operation several times slower, so only the vm's
  own ratios mean anything; never compare its nanoseconds with the host's.
";

fn configs_legend() -> String {
    let mut text = String::from("| config | meaning |\n|---|---|\n");
    for c in ROUND {
        let _ = writeln!(text, "| {} | {} |", c.label(), c.describe());
    }
    text
}

/// The heading of the hand-written section that regeneration keeps.
pub const NOTES_HEADING: &str = "## Notes";

/// The report; `previous` (the file being replaced) gives back its hand-written notes section
/// (from [`NOTES_HEADING`] to the end), which stays last.
pub fn render(summary: &Summary, plan: &Plan, elapsed: Duration, previous: Option<&str>) -> String {
    let mut md = String::from("# Benchmarks\n\n");
    let _ = writeln!(
        md,
        "Generated by `cargo xtask bench{}` in {:.0} s: {} rounds, {} ms per loop and cell.\n",
        if plan.quick { " --quick" } else { "" },
        elapsed.as_secs_f64(),
        plan.rounds,
        plan.ms
    );
    if plan.quick {
        md.push_str("**Smoke run (`--quick`): too short to mean anything; it only shows that every cell runs.**\n\n");
    }
    md.push_str(&configs_legend());
    md.push('\n');
    for env in &summary.envs {
        env_section(&mut md, env);
    }
    if !summary.missing_cells.is_empty() {
        let _ = writeln!(
            md,
            "Cells without all their runs: {}\n",
            summary.missing_cells.join(", ")
        );
    }
    md.push_str(METHOD);
    if let Some(prev) = previous
        && let Some(at) = prev.find(&format!("\n{NOTES_HEADING}\n"))
    {
        md.push_str(&prev[at..]);
    }
    md
}

fn env_section(md: &mut String, s: &EnvSummary) {
    let m = &s.machine;
    let _ = writeln!(md, "## Environment `{}`\n", s.env);
    let _ = writeln!(
        md,
        "- kernel {}, CPU {}, {} cores, {} MiB, load average at the start: {}\n- active LSMs: {}\n- daemon backends: {}\n- C1 null programs attached: {} ({} LSM hooks refused by this kernel)\n- BPF programs loaded by others before the run (they run in every configuration, C0 included): {}\n",
        m["kernel"].as_str().unwrap_or("?"),
        m["cpu"].as_str().unwrap_or("?"),
        m["cores"],
        m["memory_kib"].as_u64().unwrap_or(0) / 1024,
        m["loadavg"].as_str().unwrap_or("?"),
        m["lsm"].as_str().unwrap_or("?"),
        s.backends,
        s.null_hooks["attached"].as_array().map_or(0, Vec::len),
        s.null_hooks["refused"],
        list(&m["other_programs"]),
    );
    micro_tables(md, s);
    bpf_table(md, s);
    bpf_per_op_table(md, s);
    throughput_table(md, s);
    pipeline_table(md, s);
    macro_table(md, s);
    let _ = writeln!(
        md,
        "### Targets (`{}`)\n\n| target | goal | measured | met |\n|---|---|---|---|",
        s.env
    );
    for t in &s.targets {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} |",
            t.what,
            t.goal,
            t.measured,
            if t.met { "yes" } else { "**no**" }
        );
    }
    md.push('\n');
}

fn list(v: &Value) -> String {
    match v.as_array() {
        Some(a) if a.is_empty() => "none".to_owned(),
        Some(a) => a
            .iter()
            .filter_map(Value::as_str)
            .collect::<Vec<_>>()
            .join(", "),
        None => "?".to_owned(),
    }
}

fn micro_tables(md: &mut String, s: &EnvSummary) {
    let header = |md: &mut String, title: &str| {
        let _ = writeln!(md, "### {title} (`{}`)\n", s.env);
        md.push_str("| loop |");
        for c in ROUND {
            let _ = write!(md, " {} |", c.label());
        }
        md.push_str("\n|---|");
        for _ in ROUND {
            md.push_str("---:|");
        }
        md.push('\n');
    };
    header(md, "Median ns/op (ratio to C0)");
    for name in LOOPS {
        let _ = write!(md, "| {name} |");
        for c in ROUND {
            let cell = s.micro.get(name).and_then(|m| m.get(c.label()));
            let base = s.median(name, Config::C0);
            match (cell, base) {
                (Some(cell), Some(base)) => {
                    let _ = write!(md, " {:.0} ({:.2}) |", cell.median, cell.median / base);
                }
                (Some(cell), None) => {
                    let _ = write!(md, " {:.0} |", cell.median);
                }
                _ => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    md.push('\n');
    header(md, "Min–max ns/op over the rounds");
    let mut failures = Vec::new();
    for name in LOOPS {
        let _ = write!(md, "| {name} |");
        for c in ROUND {
            match s.micro.get(name).and_then(|m| m.get(c.label())) {
                Some(cell) => {
                    let _ = write!(md, " {:.0}–{:.0} |", cell.min, cell.max);
                    if cell.failed > 0 {
                        failures.push(format!(
                            "{name}/{}: {} of {} failed ({})",
                            c.label(),
                            cell.failed,
                            cell.ops,
                            cell.errno.as_deref().unwrap_or("?")
                        ));
                    }
                }
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    let _ = writeln!(
        md,
        "\nFailed operations: {}.\n",
        if failures.is_empty() {
            "none".to_owned()
        } else {
            failures.join("; ")
        }
    );
}

fn bpf_table(md: &mut String, s: &EnvSummary) {
    if s.bpf.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### BPF statistics per program (`{}`)\n\n| config | program | runs | ns/run |\n|---|---|---:|---:|",
        s.env
    );
    for (config, program, runs, ns) in &s.bpf {
        let _ = writeln!(md, "| {config} | {program} | {runs} | {ns:.0} |");
    }
    md.push('\n');
}

fn bpf_per_op_table(md: &mut String, s: &EnvSummary) {
    if s.bpf_per_op.is_empty() {
        return;
    }
    let configs: Vec<Config> = ROUND
        .into_iter()
        .filter(|c| s.bpf_per_op.values().any(|row| row.contains_key(c.label())))
        .collect();
    let _ = write!(
        md,
        "### Hooks' own time per operation, ns (BPF statistics, `{}`)\n\n| loop |",
        s.env
    );
    for c in &configs {
        let _ = write!(md, " {} |", c.label());
    }
    md.push_str("\n|---|");
    md.push_str(&"---:|".repeat(configs.len()));
    md.push('\n');
    for name in LOOPS {
        let _ = write!(md, "| {name} |");
        for c in &configs {
            match s.program_ns(name, *c) {
                Some(ns) => {
                    let _ = write!(md, " {ns:.0} |");
                }
                None => md.push_str(" – |"),
            }
        }
        md.push('\n');
    }
    md.push('\n');
}

fn throughput_table(md: &mut String, s: &EnvSummary) {
    if s.throughput.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Event throughput (`{}`)\n\n| subscriber | producers | op | operations | audited | delivered | dropped (counted) | unaccounted | seconds | events/s | daemon CPU s | daemon peak RSS MiB |\n|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        s.env
    );
    for r in &s.throughput {
        let _ = writeln!(
            md,
            "| {} | {} | {} | {} | {} | {} | {} | {} | {:.2} | {:.0} | {:.2} | {:.1} |",
            r["subscriber"].as_str().unwrap_or("?"),
            r["producers"].as_u64().unwrap_or(1),
            r["op"].as_str().unwrap_or("?"),
            r["ops"],
            r["audited"],
            r["delivered"],
            r["dropped"],
            r["unaccounted"],
            r["seconds"].as_f64().unwrap_or(0.0),
            r["events_per_s"].as_f64().unwrap_or(0.0),
            r["daemon_cpu_s"].as_f64().unwrap_or(0.0),
            r["daemon_peak_rss_kib"].as_f64().unwrap_or(0.0) / 1024.0,
        );
    }
    md.push('\n');
}

fn pipeline_table(md: &mut String, s: &EnvSummary) {
    let Some(r) = &s.pipeline else {
        return;
    };
    let _ = writeln!(
        md,
        "### Daemon pipeline capacity (`{}`)\n\n| measurement | records | lines written | seconds | events/s (wall) | CPU µs/event | events/s per CPU second | sink MiB | load average |\n|---|---:|---:|---:|---:|---:|---:|---:|---|",
        s.env
    );
    let _ = writeln!(
        md,
        "| daemon pipeline capacity (replayed records) | {} | {} | {:.2} | {:.0} | {:.2} | {:.0} | {:.0} | {} |\n",
        r["records"],
        r["lines"],
        r["seconds"].as_f64().unwrap_or(0.0),
        r["events_per_s"].as_f64().unwrap_or(0.0),
        r["cpu_us_per_event"].as_f64().unwrap_or(0.0),
        super::pipeline::capacity(r).unwrap_or(0.0),
        r["sink_bytes"].as_f64().unwrap_or(0.0) / 1_048_576.0,
        r["loadavg"].as_str().unwrap_or("?"),
    );
}

fn macro_table(md: &mut String, s: &EnvSummary) {
    if s.macro_wall.is_empty() {
        return;
    }
    let _ = writeln!(
        md,
        "### Macro workload (`{}`)\n\n| config | median s | min s | max s | ratio to C0 |\n|---|---:|---:|---:|---:|",
        s.env
    );
    let base = s.macro_wall.get("C0").map(|c| c.median);
    for (config, cell) in &s.macro_wall {
        let ratio = base.map_or_else(|| "–".to_owned(), |b| format!("{:.3}", cell.median / b));
        let _ = writeln!(
            md,
            "| {config} | {:.3} | {:.3} | {:.3} | {ratio} |",
            cell.median, cell.min, cell.max
        );
    }
    let cpu: f64 = s.daemon_cpu_s.iter().sum::<f64>() / s.daemon_cpu_s.len().max(1) as f64;
    let _ = writeln!(
        md,
        "\nDaemon CPU per round (C2 + C3 runs): {cpu:.3} s on average; daemon peak RSS over the whole run: {:.1} MiB.\n",
        s.peak_rss_kib as f64 / 1024.0
    );
}
