//! Run-time statistics of the attached programs, read from the kernel (`run_time_ns`,
//! `run_cnt` in `/proc/self/fdinfo/<prog fd>`). The kernel only accumulates them while
//! `kernel.bpf_stats_enabled` is 1.

use std::{
    fs,
    os::fd::{AsFd, AsRawFd},
};

use aya::{Ebpf, programs::ProgramFd};

/// `/proc/sys/kernel/bpf_stats_enabled`.
pub const BPF_STATS_SYSCTL: &str = "/proc/sys/kernel/bpf_stats_enabled";

/// Our own handles on the loaded programs (duplicated fds), by program name.
pub struct Programs {
    fds: Vec<(String, ProgramFd)>,
}

/// One program's totals.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RunStats {
    pub run_time_ns: u64,
    pub runs: u64,
}

impl Programs {
    /// Duplicates the fd of every loaded program of the object (programs left unloaded,
    /// like the probes, are skipped).
    #[must_use]
    pub fn of(ebpf: &Ebpf) -> Self {
        let fds = ebpf
            .programs()
            .filter_map(|(name, prog)| {
                let fd = prog.fd().ok()?.try_clone().ok()?;
                Some((name.to_owned(), fd))
            })
            .collect();
        Self { fds }
    }

    /// Whether the kernel accumulates run statistics now.
    #[must_use]
    pub fn stats_enabled() -> bool {
        fs::read_to_string(BPF_STATS_SYSCTL).is_ok_and(|v| v.trim() == "1")
    }

    /// Run statistics per program, for those whose fdinfo could be read.
    #[must_use]
    pub fn stats(&self) -> Vec<(&str, RunStats)> {
        self.fds
            .iter()
            .filter_map(|(name, fd)| {
                let path = format!("/proc/self/fdinfo/{}", fd.as_fd().as_raw_fd());
                let text = fs::read_to_string(path).ok()?;
                Some((name.as_str(), parse_fdinfo(&text)?))
            })
            .collect()
    }
}

/// `run_time_ns:` and `run_cnt:` of a program's fdinfo.
fn parse_fdinfo(text: &str) -> Option<RunStats> {
    let field = |key: &str| {
        text.lines()
            .find_map(|l| l.strip_prefix(key))
            .and_then(|v| v.trim().parse::<u64>().ok())
    };
    Some(RunStats {
        run_time_ns: field("run_time_ns:")?,
        runs: field("run_cnt:")?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_run_stats_from_fdinfo() {
        let text = "pos:\t0\nflags:\t02000002\nprog_type:\t29\nprog_jited:\t1\nprog_tag:\tabc\nmemlock:\t4096\nprog_id:\t42\nrun_time_ns:\t123456\nrun_cnt:\t78\nrecursion_misses:\t0\n";
        assert_eq!(
            parse_fdinfo(text),
            Some(RunStats {
                run_time_ns: 123_456,
                runs: 78
            })
        );
        assert_eq!(parse_fdinfo("prog_id:\t1\n"), None, "no stats, no numbers");
    }
}
