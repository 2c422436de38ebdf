//! One test suite's verdict (native, or one VM kernel) and its summary line.
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::libtest::Counts;

pub struct Suite {
    /// `native`, `vm 6.1`, ...
    pub name: String,
    pub counts: Counts,
    pub elapsed: Duration,
    /// Why the suite failed; `None` if it passed.
    pub failure: Option<String>,
    pub log: PathBuf,
}

impl Suite {
    /// Judges a finished run: `problems` are the checks that failed, in order of importance.
    pub fn judge(
        name: &str,
        counts: Counts,
        elapsed: Duration,
        problems: &[String],
        log: &Path,
    ) -> Self {
        let failure = (!problems.is_empty()).then(|| problems.join("; "));
        Self {
            name: name.to_owned(),
            counts,
            elapsed,
            failure,
            log: log.to_path_buf(),
        }
    }

    /// Failed tests, counting a suite that failed without a failed test (crash, timeout,
    /// zero tests) as one, so the closing `N passed, N failed` line never looks clean.
    pub fn failed(&self) -> u64 {
        match (&self.failure, self.counts.failed) {
            (Some(_), 0) => 1,
            (_, failed) => failed,
        }
    }

    pub fn summary_line(&self) -> String {
        let seconds = self.elapsed.as_secs_f64();
        match &self.failure {
            None => format!(
                "{}: ok, {} passed, 0 failed ({seconds:.0} s)",
                self.name, self.counts.passed
            ),
            Some(why) => format!(
                "{}: FAILED, {} passed, {} failed ({seconds:.0} s): {why}; log: {}",
                self.name,
                self.counts.passed,
                self.failed(),
                self.log.display()
            ),
        }
    }
}

/// Checks shared by every suite on a run that exited: results exist, more than zero tests ran,
/// none failed.
pub fn count_problems(counts: Counts) -> Vec<String> {
    let mut problems = Vec::new();
    if counts.results == 0 {
        problems.push("no libtest `test result:` line in the output".to_owned());
    } else if counts.passed == 0 && counts.failed == 0 {
        problems.push("zero tests ran".to_owned());
    }
    if counts.failed > 0 {
        problems.push(format!("{} test(s) failed", counts.failed));
    }
    problems
}
