//! The paths the test runner hands over in the environment.

use std::path::PathBuf;

/// `$CORRAL_BIN`: absolute path of the `corral` binary under test.
#[must_use]
pub fn corral_bin() -> PathBuf {
    required(
        "CORRAL_BIN",
        "absolute path of the corral binary under test",
    )
}

/// `$CORRAL_PROBE`: absolute path of the `corral-probe` binary.
#[must_use]
pub fn probe_bin() -> PathBuf {
    required("CORRAL_PROBE", "absolute path of the corral-probe binary")
}

/// `$CORRAL_POLICIES`: the repository's `policies/` directory.
#[must_use]
pub fn policies_dir() -> PathBuf {
    required("CORRAL_POLICIES", "the repository's policies/ directory")
}

/// `corral_bin()` as a string, for command lines and policy entries.
#[must_use]
pub fn corral() -> String {
    text(corral_bin(), "CORRAL_BIN")
}

/// `probe_bin()` as a string, for command lines and policy entries.
#[must_use]
pub fn probe() -> String {
    text(probe_bin(), "CORRAL_PROBE")
}

/// The test binary `name` (`corral-burst`, `corral-dns-query`, ...), built beside
/// `corral-probe`, as a string for command lines and policy entries.
#[must_use]
pub fn sibling_bin(name: &str) -> String {
    let path = probe_bin().with_file_name(name);
    assert!(
        path.exists(),
        "expected {} (built with the tests' binaries)",
        path.display()
    );
    text(path, "CORRAL_PROBE")
}

fn required(var: &str, what: &str) -> PathBuf {
    let value = std::env::var_os(var).unwrap_or_else(|| {
        panic!(
            "expected ${var} ({what}) in the environment; run these tests with `cargo xtask test`"
        )
    });
    let path = PathBuf::from(value);
    assert!(
        path.is_absolute(),
        "expected ${var} to be an absolute path ({what}), got {}",
        path.display()
    );
    assert!(
        path.exists(),
        "expected ${var}={} to exist ({what})",
        path.display()
    );
    path
}

fn text(path: PathBuf, var: &str) -> String {
    path.into_os_string()
        .into_string()
        .unwrap_or_else(|p| panic!("expected ${var} to be UTF-8, got {}", p.display()))
}
