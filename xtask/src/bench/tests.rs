//! Statistics, console parsing and target judgement on hand-made records.
use serde_json::{Value, json};

use super::Plan;
use super::configs::ROUND;
use super::recorder::parse_console;
use super::stats::{Cell, LOOPS, Summary};

fn plan(rounds: usize) -> Plan {
    Plan {
        rounds,
        ..Plan::quick(None)
    }
}

/// `rounds` runs of every loop under every configuration, all at `ns`, except `loop_name`
/// under `config`, at `special`.
fn records(rounds: usize, ns: f64, special: (&str, &str, f64)) -> Vec<Value> {
    let mut out = Vec::new();
    for round in 0..rounds {
        for name in LOOPS {
            for config in ROUND {
                let value = if (name, config.label()) == (special.0, special.1) {
                    special.2
                } else {
                    ns
                };
                out.push(json!({"env": "native", "kind": "micro", "round": round,
                    "loop": name, "config": config.label(), "ns_per_op": value,
                    "ops": 10, "failed": 0, "errno": null}));
            }
        }
    }
    out
}

#[test]
fn cell_median_of_odd_and_even_counts_with_extremes() {
    let odd = Cell::of(&[5.0, 1.0, 3.0]).expect("three values make a cell");
    assert_eq!(
        (odd.median, odd.min, odd.max, odd.runs),
        (3.0, 1.0, 5.0, 3),
        "median/min/max of 1,3,5"
    );
    let even = Cell::of(&[4.0, 1.0, 2.0, 10.0]).expect("four values make a cell");
    assert!(
        (even.median - 3.0).abs() < 1e-9,
        "median of 1,2,4,10 is the mean of 2 and 4, got {}",
        even.median
    );
    assert!(Cell::of(&[]).is_none(), "no values, no cell");
}

#[test]
fn console_records_are_found_after_noise_and_garbled_ones_counted() {
    let output = "CORRAL_VM_LSM=bpf\n\
        [bench vm] CORRAL_BENCH {\"kind\":\"micro\",\"ns_per_op\":1.5}\n\
        CORRAL_BENCH {\"kind\":\"env\"}\n\
        CORRAL_BENCH {\"kind\":[   1.234] random: crng init done\n";
    let (records, garbled) = parse_console(output);
    assert_eq!(records.len(), 2, "two complete records in {output:?}");
    assert_eq!(records[0]["ns_per_op"], 1.5, "first record's value");
    assert_eq!(garbled, 1, "the line split by a kernel message is counted");
}

#[test]
fn a_cell_with_too_few_runs_is_reported_missing() {
    let mut recs = records(3, 100.0, ("getpid", "C0", 100.0));
    recs.retain(|r| !(r["loop"] == "fork_exec" && r["config"] == "C3" && r["round"] == 2));
    let summary = Summary::of(&recs, &plan(3));
    assert_eq!(
        summary.missing_cells,
        vec!["native/C3/fork_exec (2 runs)".to_owned()],
        "exactly the thinned cell is missing"
    );
}

#[test]
fn targets_are_judged_against_c0_of_the_same_environment() {
    // Tagged allowed open+close at depth 1 is 20 % slower than C0: the 1.10 target is missed.
    let recs = records(2, 1000.0, ("open_close_depth1", "C3", 1200.0));
    let summary = Summary::of(&recs, &plan(2));
    assert!(summary.missing_cells.is_empty(), "every cell has its runs");
    let env = &summary.envs[0];
    let judged = |what: &str| {
        env.targets
            .iter()
            .find(|t| t.what == what)
            .unwrap_or_else(|| panic!("no target {what:?}"))
            .met
    };
    assert!(
        !judged("tagged allowed open+close (open_close_depth1, C3)"),
        "1.20 × C0 misses ≤ 1.10"
    );
    assert!(
        judged("tagged allowed open+close (open_close_depth4, C3)"),
        "1.00 × C0 meets ≤ 1.10"
    );
    assert!(
        !judged("tagged allowed open+close vs Landlock (open_close_depth1)"),
        "C3 slower than R1"
    );
}

#[test]
fn regeneration_keeps_the_hand_written_notes_last() {
    let summary = Summary::of(&records(1, 100.0, ("getpid", "C0", 100.0)), &plan(1));
    let previous = "# Benchmarks\nold table 12345\n## Method\nold\n\n## Notes\n\nwhy C3 misses\n";
    let text = super::report::render(
        &summary,
        &plan(1),
        std::time::Duration::from_secs(1),
        Some(previous),
    );
    assert!(
        text.ends_with("\n## Notes\n\nwhy C3 misses\n"),
        "notes kept at the end: {text}"
    );
    assert!(!text.contains("old table 12345"), "old tables replaced");
    assert_eq!(text.matches("## Method").count(), 1, "one method section");
}

#[test]
fn the_pipeline_replay_is_judged_per_cpu_second_and_needs_one_line_per_record() {
    let replay = |us: f64, lines: u64| {
        json!({"env": "native", "kind": "pipeline", "records": 1000, "lines": lines,
            "unparsable_lines": 0, "seconds": 0.01, "cpu_us_per_event": us,
            "events_per_s": 100_000.0, "loadavg": "1.00 1.00 1.00 1/100 1"})
    };
    let judged = |record: Value| {
        let mut recs = records(1, 100.0, ("getpid", "C0", 100.0));
        recs.push(record);
        let summary = Summary::of(&recs, &plan(1));
        let env = &summary.envs[0];
        let target = env
            .targets
            .iter()
            .find(|t| t.what == "daemon pipeline capacity (replayed records)")
            .unwrap_or_else(|| panic!("expected a pipeline target"));
        let text =
            super::report::render(&summary, &plan(1), std::time::Duration::from_secs(1), None);
        assert!(
            text.contains("| daemon pipeline capacity (replayed records) | 1000 | 1000 |"),
            "expected the pipeline row in the report: {text}"
        );
        (target.met, target.measured.clone())
    };
    let (met, measured) = judged(replay(1.6, 1000));
    assert!(met, "1.6 µs/event is 625 000 events/s: met ({measured})");
    assert!(
        measured.starts_with("625000 events/s per CPU second"),
        "expected the capacity measured per CPU second: {measured}"
    );
    let (met, _) = judged(replay(2.5, 1000));
    assert!(!met, "2.5 µs/event is 400 000 events/s: not met");
    assert!(
        super::pipeline::check(&replay(1.0, 1000), 1000).is_ok(),
        "1000 lines for 1000 records pass"
    );
    assert!(
        super::pipeline::check(&replay(1.0, 999), 1000).is_err(),
        "a missing line must fail the replay"
    );
}

#[test]
fn hooks_time_per_operation_sums_a_loops_programs_and_judges_the_untagged_open() {
    let stat = |config: &str, id: u64, name: &str, ns: u64, ops: u64| {
        json!({"env": "native", "kind": "bpf_stats", "config": config, "program": "p",
            "id": id, "loop": name, "ops": ops, "run_cnt": 2 * ops, "run_time_ns": ns})
    };
    let mut recs = records(1, 100.0, ("getpid", "C0", 100.0));
    // C1: one null program, 80 ns per operation. C2: two programs (ids 7 and 8) whose time
    // during the same loop adds up to 80 + 10 + 30 ns per operation over 1000 operations.
    recs.push(stat("C1", 1, "open_close_depth1", 80_000, 1000));
    recs.push(stat("C2", 7, "open_close_depth1", 90_000, 1000));
    recs.push(stat("C2", 8, "open_close_depth1", 30_000, 1000));
    // The same program in another loop: summed into the per-program row, not into this loop.
    recs.push(stat("C2", 7, "getpid", 500_000, 1000));
    let summary = Summary::of(&recs, &plan(1));
    let env = &summary.envs[0];
    assert_eq!(
        env.program_ns("open_close_depth1", super::configs::Config::C2),
        Some(120.0),
        "(90 000 + 30 000) ns over 1000 operations"
    );
    let row = env
        .bpf
        .iter()
        .find(|(config, _, _, _)| config == "C2")
        .expect("a C2 program row");
    assert_eq!(
        (row.2, row.3),
        (4000, 147.5),
        "program 7 summed over both loops: 4000 runs, 590 000 ns"
    );
    let target = env
        .targets
        .iter()
        .find(|t| {
            t.what
                .starts_with("untagged open+close, hooks' own time (open_close_depth1")
        })
        .expect("a hooks' own time target for depth 1");
    assert!(
        !target.met && target.measured.starts_with("C2 − C1 = +40 ns"),
        "120 − 80 = +40 ns misses C1 + 15: {}",
        target.measured
    );
    let text = super::report::render(&summary, &plan(1), std::time::Duration::from_secs(1), None);
    assert!(
        text.contains("| open_close_depth1 | 80 | 120 |"),
        "expected the per-operation row (C1 80, C2 120) in the report: {text}"
    );
}
