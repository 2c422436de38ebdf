//! Booting the test VMs: qemu with TCG (KVM is unusable on the CI host) on a Debian kernel with
//! our initramfs. `/init` (tests/vm/init.sh) runs the `vm` test executable and prints
//! `CORRAL_VM_EXIT=<rc>` before powering off.
use std::os::unix::process::CommandExt as _;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};

use crate::kernels::{Image, Kernel};
use crate::suite::{self, Suite};
use crate::{binaries, initramfs, libtest, paths, setup, supervise};

/// Kernel command line; `quiet` keeps kernel messages from splitting libtest's lines.
const APPEND: &str = "console=ttyS0 quiet panic=-1";
/// A VM suite under TCG takes 20 to 48 minutes on a 2-core host (6.1 is the slow one, with the
/// 6.12 VM beside it); past this it is killed and reported. `.ci/run` has 90 minutes in all.
const DEFAULT_TIMEOUT_SECS: u64 = 3600;
const EXIT_MARKER: &str = "CORRAL_VM_EXIT=";
const LSM_MARKER: &str = "CORRAL_VM_LSM=";
/// `/init` could not load a kernel module the image packs for it (`vm_modules`).
const MODULE_MARKER: &str = "CORRAL_VM_MODULE_FAILED=";

pub fn qemu(vmlinuz: &Path, initrd: &Path, append: &str) -> Command {
    let mut cmd = Command::new("qemu-system-x86_64");
    cmd.args(["-accel", "tcg", "-cpu", "max", "-m", "2048", "-smp", "1"])
        .arg("-kernel")
        .arg(vmlinuz)
        .arg("-initrd")
        .arg(initrd)
        .args(["-append", append])
        .args(["-nographic", "-no-reboot", "-nic", "none"]);
    cmd
}

/// `CORRAL_VM_TIMEOUT` seconds, default `DEFAULT_TIMEOUT_SECS`.
fn timeout() -> Result<Duration> {
    match std::env::var("CORRAL_VM_TIMEOUT") {
        Ok(v) => v
            .trim()
            .parse()
            .map(Duration::from_secs)
            .with_context(|| format!("CORRAL_VM_TIMEOUT={v:?} is not a number of seconds")),
        Err(_) => Ok(Duration::from_secs(DEFAULT_TIMEOUT_SECS)),
    }
}

/// Boots `image` with `initrd`, runs the VM suite (with libtest `test_args`) and judges it.
pub fn run_suite(image: &Image, initrd: &Path, test_args: &[String], out: &Path) -> Result<Suite> {
    let label = image.kernel.label();
    let name = format!("vm {label}");
    let log = out.join(format!("vm-{label}.log"));
    let timeout = timeout()?;
    let mut append = APPEND.to_owned();
    if !test_args.is_empty() {
        // The kernel hands everything after `--` to init as arguments.
        append.push_str(" -- ");
        append.push_str(&test_args.join(" "));
    }
    let mut cmd = qemu(&image.vmlinuz, initrd, &append);
    cmd.args(["-monitor", "none", "-serial", "stdio"]);
    println!(
        "vm {label}: booting {} ({})",
        image.package,
        image.vmlinuz.display()
    );
    let outcome = supervise::run(&mut cmd, &format!("[{name}] "), &log, timeout)?;

    let counts = libtest::summarize(&outcome.output);
    let mut problems = Vec::new();
    match (outcome.status, marker(&outcome.output, EXIT_MARKER)) {
        (None, _) => problems.push(format!(
            "timed out after {} s (CORRAL_VM_TIMEOUT) and was killed",
            timeout.as_secs()
        )),
        (Some(status), None) => problems.push(format!(
            "no {EXIT_MARKER} line: the VM did not boot or /init died (qemu {status})"
        )),
        (Some(_), Some(rc)) if rc != "0" => problems.push(format!("vm-tests exited {rc}")),
        (Some(status), Some(_)) if !status.success() => {
            problems.push(format!("qemu exited with {status}"));
        }
        (Some(_), Some(_)) => {}
    }
    if outcome.status.is_some() {
        match marker(&outcome.output, LSM_MARKER) {
            Some(lsm) if lsm.split(',').any(|m| m == "bpf") => {}
            Some(lsm) => problems.push(format!("BPF LSM is not active in the VM (lsm={lsm})")),
            None => problems.push(format!("no {LSM_MARKER} line from /init")),
        }
    }
    for line in outcome.output.lines() {
        if let Some((_, module)) = line.split_once(MODULE_MARKER) {
            problems.push(format!("kernel module {} did not load", module.trim()));
        }
    }
    problems.extend(suite::count_problems(counts));
    Ok(Suite::judge(
        &name,
        counts,
        outcome.elapsed,
        &problems,
        &log,
    ))
}

/// The value after `name` on the last line that has it (console noise may precede it).
fn marker<'a>(output: &'a str, name: &str) -> Option<&'a str> {
    output
        .lines()
        .rev()
        .find_map(|l| l.split_once(name).map(|(_, v)| v.trim()))
}

/// `cargo xtask vm-shell`: the test image with a shell on the console instead of the tests.
pub fn shell(kernel: Kernel) -> Result<()> {
    let images = setup::run(&[kernel])?;
    let image = images.first().context("setup returned no kernel image")?;
    let binaries = binaries::build()?;
    let initrd = paths::xtask_out()?.join("initramfs.cpio");
    initramfs::build(&binaries.vm_contents(&images), &initrd)?;
    let mut cmd = qemu(&image.vmlinuz, &initrd, &format!("{APPEND} corral.shell=1"));
    println!(
        "vm-shell: {} (leave with `exit`, or Ctrl-A x to kill qemu)",
        image.package
    );
    let error = cmd.exec();
    bail!("starting qemu-system-x86_64: {error}")
}
