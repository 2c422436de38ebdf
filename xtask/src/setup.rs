//! `cargo xtask setup`: everything the build and the kernel tests need beyond rustup's stable
//! toolchain. Idempotent; each step says what it found or did.
use std::process::Command;
use std::time::Instant;

use anyhow::{Context as _, Result};

use crate::apt::{self, Apt};
use crate::kernels::{self, Image, Kernel};
use crate::{bpf_linker, command, paths};

/// Sets everything up and returns the bootable images of `kernels`.
pub fn run(kernels: &[Kernel]) -> Result<Vec<Image>> {
    let started = Instant::now();
    let cache = paths::cache()?;
    std::fs::create_dir_all(&cache).with_context(|| format!("creating {}", cache.display()))?;

    command::run(Command::new("rustup").args([
        "component",
        "add",
        "rust-src",
        "--toolchain",
        "nightly",
    ]))?;
    bpf_linker::ensure(&cache)?;

    let mut apt = Apt::default();
    apt.install_missing(&apt::VM_TOOLS)?;
    apt.install_missing(&apt::TEST_TOOLS)?;
    let images = kernels
        .iter()
        .map(|&k| kernels::ensure(k, &cache, &mut apt))
        .collect::<Result<Vec<_>>>()?;
    println!("setup: done in {:.1} s", started.elapsed().as_secs_f64());
    Ok(images)
}
