//! Corral's userspace: the daemon and CLI behind the `corral` binary.
//!
//! One module per concern, in the order data flows:
//! `policy` (the YAML model) → `compile` (bounded map entries) → `loader` (eBPF object, kernel
//! offsets, attach, map writes) → `events` (ring-buffer records → JSON events) → `daemon`
//! (control socket, tagging, sinks) → `cli` (the `corral` commands). `landlock` confines exec and
//! open where BPF LSM cannot: `corral run` applies it to itself before it execs the command.
pub mod cli;
pub mod compile;
pub mod config;
pub mod daemon;
pub mod events;
pub mod landlock;
pub mod loader;
pub mod policy;
