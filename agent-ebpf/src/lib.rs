//! Empty on the host: `agent` lists this crate as a build-dependency only so cargo rebuilds the
//! daemon when the kernel programs change. The programs live in `main.rs` (bpfel target).
#![no_std]
