//! Debian packages: installing the VM tools and finding/downloading kernel packages.
use std::path::Path;
use std::process::Command;

use anyhow::Result;

use crate::command;

/// Packages the VM suites need on the host: the emulator, a static shell for the initramfs and
/// xz for the 6.12 kernel's compressed modules (`vm_modules`).
pub const VM_TOOLS: [&str; 3] = ["qemu-system-x86", "busybox-static", "xz-utils"];

/// Packages the unit tests need: `systemd-analyze verify` checks the shipped unit.
pub const TEST_TOOLS: [&str; 1] = ["systemd"];

/// apt, remembering whether this run already refreshed the package lists.
#[derive(Default)]
pub struct Apt {
    updated: bool,
}

impl Apt {
    /// `apt-get update`, at most once per run.
    pub fn update(&mut self) -> Result<()> {
        if !self.updated {
            command::run(Command::new("apt-get").args(["update", "-q"]))?;
            self.updated = true;
        }
        Ok(())
    }

    /// Whether this run already refreshed the lists (so an empty look-up is final).
    pub fn updated(&self) -> bool {
        self.updated
    }

    /// Installs the packages of `packages` that are not installed yet.
    pub fn install_missing(&mut self, packages: &[&str]) -> Result<()> {
        let missing: Vec<&str> = packages
            .iter()
            .copied()
            .filter(|p| !is_installed(p))
            .collect();
        if missing.is_empty() {
            println!("setup: apt packages {}: installed", packages.join(" "));
            return Ok(());
        }
        println!("setup: installing {}", missing.join(" "));
        self.update()?;
        command::run(
            Command::new("apt-get")
                .args(["install", "-y", "-q", "--no-install-recommends"])
                .args(&missing)
                .env("DEBIAN_FRONTEND", "noninteractive"),
        )
    }
}

/// `apt-get download package` into `dir`.
pub fn download(package: &str, dir: &Path) -> Result<()> {
    command::run(
        Command::new("apt-get")
            .args(["download", "-q", package])
            .current_dir(dir),
    )
}

fn is_installed(package: &str) -> bool {
    Command::new("dpkg-query")
        .args(["-W", "-f", "${Status}", package])
        .output()
        .is_ok_and(|o| o.status.success() && o.stdout.ends_with(b" installed"))
}

/// `apt-cache` with `args`, stdout as text.
pub fn cache_query(args: &[&str]) -> Result<String> {
    command::stdout(Command::new("apt-cache").args(args))
}
