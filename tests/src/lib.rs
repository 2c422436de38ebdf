//! Harness for Corral's kernel tests: the `corral-probe` tool's callers, a private daemon per
//! test, policy builders and assertions that say what was expected and what happened.
//!
//! The `vm` tests run inside qemu VMs with BPF LSM (Debian 6.1 and 6.12 kernels); the `host`
//! tests run natively on a kernel that refuses BPF LSM programs, where the daemon falls back to
//! cgroup `sock_addr` programs (and Landlock). Both get `CORRAL_BIN`,
//! `CORRAL_PROBE` and `CORRAL_POLICIES` from `cargo xtask test` and run with one test thread.

pub mod daemon;
pub mod deep;
pub mod dns;
pub mod dns_learning;
pub mod doctor;
pub mod env;
pub mod events;
pub mod interp;
pub mod mounts;
pub mod network;
pub mod ops;
pub mod policy;
pub mod process;
pub mod reload;
pub mod runtime;
pub mod scratch;
pub mod selectors;
pub mod selftest;
pub mod shipped;
pub mod verifier;

pub use daemon::{ACCEPT_UNENFORCED, Daemon, EVENT_TIMEOUT, expect_corral_exit};
pub use events::has;
pub use policy::Policy;
pub use process::{Background, RunOutput};
pub use scratch::Scratch;
pub use serde_json::{Value, json};

/// `corral run` exit code: the daemon could not be reached (`EX_UNAVAILABLE`).
pub const EXIT_UNAVAILABLE: i32 = 69;
/// `corral run` exit code: the daemon refused (`EX_NOPERM`).
pub const EXIT_REFUSED: i32 = 77;
/// Exit code of a configuration error (malformed policy, bad arguments), per the CLI contract.
pub const EXIT_CONFIG: i32 = 64;
