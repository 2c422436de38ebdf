//! Reading libtest's closing lines
//! (`test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; ...`).
use std::ops::AddAssign;

/// Test counts summed over every `test result:` line of one output.
#[derive(Clone, Copy, Default, Debug, PartialEq, Eq)]
pub struct Counts {
    pub passed: u64,
    pub failed: u64,
    /// How many `test result:` lines were found (one per test executable run).
    pub results: u32,
}

impl AddAssign for Counts {
    fn add_assign(&mut self, other: Self) {
        self.passed += other.passed;
        self.failed += other.failed;
        self.results += other.results;
    }
}

/// Sums the `test result:` lines in `output` (which may carry prefixes or console noise).
pub fn summarize(output: &str) -> Counts {
    let mut counts = Counts::default();
    for line in output.lines() {
        let Some((_, result)) = line.split_once("test result: ") else {
            continue;
        };
        let words: Vec<&str> = result.split_whitespace().collect();
        let count_of = |label: &str| {
            words
                .windows(2)
                .find(|w| w[1].trim_end_matches([';', ',']) == label)
                .and_then(|w| w[0].parse::<u64>().ok())
        };
        if let (Some(passed), Some(failed)) = (count_of("passed"), count_of("failed")) {
            counts.passed += passed;
            counts.failed += failed;
            counts.results += 1;
        }
    }
    counts
}

#[cfg(test)]
mod tests {
    use super::{Counts, summarize};

    #[test]
    fn sums_every_result_line_and_ignores_the_rest() {
        let output = "running 3 tests\n\
            test a ... ok\n\
            [6.1] test result: ok. 3 passed; 0 failed; 0 ignored; 0 measured; 0 filtered out; finished in 0.01s\n\
            test result: FAILED. 1 passed; 2 failed; 0 ignored; 0 measured; 0 filtered out\n\
            test result: garbage\n";
        assert_eq!(
            summarize(output),
            Counts {
                passed: 4,
                failed: 2,
                results: 2
            }
        );
    }

    #[test]
    fn no_result_line_means_no_results() {
        assert_eq!(summarize("Kernel panic - not syncing\n").results, 0);
    }
}
