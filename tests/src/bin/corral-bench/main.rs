//! `corral-bench`: the measuring side of `cargo xtask bench` (issue 7). Every subcommand prints
//! JSON lines on stdout, so the same binary serves the native host and the qemu VMs.
//!
//! ```text
//! corral-bench prepare DIR                 (root) the file tree and the tiny static binary
//! corral-bench loops DIR [OPTS]            the micro loops, one JSON line per loop
//!   OPTS: --ms N (time per loop, default 20)  --cpu N (pin, default 0)  --user UID (drop root)
//!         --only NAME[,NAME...]  --landlock POLICY.yaml (R1)  --seccomp (R2)
//! corral-bench null-hooks                  (root) attach programs that return at once to every
//!                                          hook the daemon uses; prints `ready N`, holds them
//!                                          until stdin closes
//! corral-bench bpf-stats                   (root) run_time_ns and run_cnt of every loaded program
//! corral-bench pipeline DIR [--records N]  the daemon's per-record path on replayed records
//! ```
//!
//! Exit codes: 0 success, 1 a step failed (message on stderr), 2 usage.
mod bpf_stats;
mod confine;
mod loops;
mod null_hooks;
mod options;
mod pipeline;
mod tree;

use std::process::ExitCode;

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let result = match args.split_first() {
        Some((cmd, rest)) if cmd == "prepare" => match rest {
            [dir] => tree::prepare(std::path::Path::new(dir)),
            _ => return usage("prepare DIR"),
        },
        Some((cmd, rest)) if cmd == "loops" => match options::LoopOptions::parse(rest) {
            Ok(opts) => loops::run(&opts),
            Err(message) => return usage(&message),
        },
        Some((cmd, [])) if cmd == "null-hooks" => null_hooks::hold(),
        Some((cmd, [])) if cmd == "bpf-stats" => bpf_stats::print(),
        Some((cmd, rest)) if cmd == "pipeline" => pipeline::run(rest),
        _ => return usage("prepare|loops|null-hooks|bpf-stats|pipeline ..."),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("corral-bench: {message}");
            ExitCode::from(1)
        }
    }
}

fn usage(message: &str) -> ExitCode {
    eprintln!("corral-bench: usage: {message}");
    ExitCode::from(2)
}
