//! The kernels the VM suites boot: Debian's stock bookworm 6.1 and the newest 6.12 built for
//! bookworm. Package names are resolved through apt at setup time (ABI numbers move), the
//! `.deb` is cached and its `boot/vmlinuz-*` extracted to `<cache>/kernels/<package>/vmlinuz`,
//! the modules the VMs load beside it (`vm_modules`).
use std::fs;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};

use anyhow::{Context as _, Result, bail};
use clap::ValueEnum;

use crate::apt::{self, Apt};
use crate::vm_modules::{self, Modules};

/// A kernel line the tests run on.
#[derive(Clone, Copy, PartialEq, Eq, Debug, ValueEnum)]
pub enum Kernel {
    /// bookworm's own kernel (`linux-image-amd64` depends on it).
    #[value(name = "6.1")]
    V6_1,
    /// The newest `linux-image-6.12.*+deb12-amd64`.
    #[value(name = "6.12")]
    V6_12,
}

impl Kernel {
    pub const ALL: [Kernel; 2] = [Kernel::V6_1, Kernel::V6_12];

    /// "6.1" / "6.12": log prefixes and file names.
    pub fn label(self) -> &'static str {
        match self {
            Kernel::V6_1 => "6.1",
            Kernel::V6_12 => "6.12",
        }
    }
}

/// A kernel ready to boot.
pub struct Image {
    pub kernel: Kernel,
    /// The Debian package it came from, e.g. `linux-image-6.1.0-56-amd64`.
    pub package: String,
    pub vmlinuz: PathBuf,
    /// The modules `tests/vm/init.sh` loads on it.
    pub modules: Modules,
}

/// Resolves, downloads (if not cached) and extracts `kernel`.
pub fn ensure(kernel: Kernel, cache: &Path, apt: &mut Apt) -> Result<Image> {
    let package = resolve(kernel, apt)?;
    let dir = cache.join("kernels");
    let package_dir = dir.join(&package);
    let vmlinuz = package_dir.join("vmlinuz");
    let mut modules = vm_modules::cached(&package, &package_dir)?;
    if vmlinuz.is_file() && modules.is_some() {
        println!(
            "setup: kernel {}: {package}, cached at {}",
            kernel.label(),
            vmlinuz.display()
        );
    } else {
        fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
        let deb = if let Some(deb) = cached_deb(&dir, &package)? {
            deb
        } else {
            println!("setup: kernel {}: downloading {package}", kernel.label());
            apt::download(&package, &dir)?;
            cached_deb(&dir, &package)?.with_context(|| {
                format!(
                    "apt-get download {package} left no {package}_*.deb in {}",
                    dir.display()
                )
            })?
        };
        if !vmlinuz.is_file() {
            println!(
                "setup: kernel {}: extracting vmlinuz from {}",
                kernel.label(),
                deb.display()
            );
            extract_vmlinuz(&deb, &vmlinuz)?;
        }
        if modules.is_none() {
            println!(
                "setup: kernel {}: extracting modules {} from {}",
                kernel.label(),
                vm_modules::MODULES.join(" "),
                deb.display()
            );
            modules = Some(vm_modules::extract(&deb, &package, &package_dir)?);
        }
    }
    Ok(Image {
        kernel,
        package,
        vmlinuz,
        modules: modules.context("the kernel's modules were neither cached nor extracted")?,
    })
}

/// The Debian package name for `kernel`, refreshing apt's lists once if it finds none.
fn resolve(kernel: Kernel, apt: &mut Apt) -> Result<String> {
    loop {
        let found = match kernel {
            Kernel::V6_1 => bookworm_kernel()?,
            Kernel::V6_12 => newest_6_12()?,
        };
        if let Some(package) = found {
            return Ok(package);
        }
        if apt.updated() {
            bail!(
                "apt knows no package for kernel {} (is bookworm{} in the apt sources?)",
                kernel.label(),
                if kernel == Kernel::V6_12 {
                    "-security or bookworm-backports"
                } else {
                    ""
                }
            );
        }
        apt.update()?;
    }
}

/// What bookworm's `linux-image-amd64` depends on: `linux-image-6.1.0-<abi>-amd64`.
fn bookworm_kernel() -> Result<Option<String>> {
    // apt-cache fails for a package it has never heard of: treat it like "no lists yet".
    let Ok(text) = apt::cache_query(&["depends", "linux-image-amd64"]) else {
        return Ok(None);
    };
    let packages: Vec<&str> = text
        .lines()
        .filter_map(|l| l.trim().trim_start_matches('|').strip_prefix("Depends: "))
        .filter(|p| p.starts_with("linux-image-"))
        .collect();
    match packages.as_slice() {
        [] => Ok(None),
        [one] if one.starts_with("linux-image-6.1.") => Ok(Some((*one).to_owned())),
        _ => bail!(
            "linux-image-amd64 depends on {packages:?}, expected one linux-image-6.1.* (not bookworm?)"
        ),
    }
}

/// The highest-versioned `linux-image-6.12.<n>+deb12-amd64` apt knows.
fn newest_6_12() -> Result<Option<String>> {
    let text = apt::cache_query(&[
        "search",
        "--names-only",
        r"^linux-image-6\.12\.[0-9.]+\+deb12-amd64$",
    ])?;
    Ok(text
        .lines()
        .filter_map(|l| l.split_whitespace().next())
        .filter_map(|name| Some((version_key(name)?, name)))
        .max()
        .map(|(_, name)| name.to_owned()))
}

/// `linux-image-6.12.117+deb12-amd64` -> `[6, 12, 117]`.
fn version_key(package: &str) -> Option<Vec<u64>> {
    let version = package
        .strip_prefix("linux-image-")?
        .strip_suffix("+deb12-amd64")?;
    version.split('.').map(|n| n.parse().ok()).collect()
}

/// A previously downloaded `<package>_<version>_amd64.deb` in `dir`, if any.
fn cached_deb(dir: &Path, package: &str) -> Result<Option<PathBuf>> {
    let prefix = format!("{package}_");
    let mut debs = Vec::new();
    for entry in fs::read_dir(dir).with_context(|| format!("listing {}", dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", dir.display()))?
            .path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let is_deb = path.extension().is_some_and(|e| e == "deb");
        if is_deb && name.is_some_and(|n| n.starts_with(&prefix)) {
            debs.push(path);
        }
    }
    debs.sort();
    Ok(debs.pop())
}

/// `dpkg-deb --fsys-tarfile deb | tar -x ./boot/vmlinuz-*`, then moves the image to `vmlinuz`.
fn extract_vmlinuz(deb: &Path, vmlinuz: &Path) -> Result<()> {
    let dir = vmlinuz
        .parent()
        .with_context(|| format!("{} has no parent directory", vmlinuz.display()))?;
    let scratch = dir.join(".extract");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    untar(deb, &scratch, &["./boot/vmlinuz-*"])?;

    let boot = scratch.join("boot");
    let image = fs::read_dir(&boot)
        .with_context(|| format!("listing {}", boot.display()))?
        .filter_map(Result::ok)
        .map(|e| e.path())
        .find(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with("vmlinuz-"))
        })
        .with_context(|| format!("{} holds no boot/vmlinuz-*", deb.display()))?;
    fs::rename(&image, vmlinuz)
        .with_context(|| format!("moving {} to {}", image.display(), vmlinuz.display()))?;
    fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    Ok(())
}

/// `dpkg-deb --fsys-tarfile deb | tar -x -C into --wildcards patterns...`.
pub fn untar(deb: &Path, into: &Path, patterns: &[impl AsRef<std::ffi::OsStr>]) -> Result<()> {
    let mut dpkg = Command::new("dpkg-deb")
        .arg("--fsys-tarfile")
        .arg(deb)
        .stdout(Stdio::piped())
        .spawn()
        .with_context(|| format!("starting dpkg-deb --fsys-tarfile {}", deb.display()))?;
    let tar_input = dpkg
        .stdout
        .take()
        .context("dpkg-deb stdout was not piped")?;
    let tar = Command::new("tar")
        .arg("-x")
        .arg("-C")
        .arg(into)
        .arg("--wildcards")
        .args(patterns)
        .stdin(tar_input)
        .status()
        .context("running tar -x")?;
    let dpkg_status = dpkg.wait().context("waiting for dpkg-deb")?;
    if !dpkg_status.success() || !tar.success() {
        let patterns: Vec<_> = patterns
            .iter()
            .map(|p| p.as_ref().to_string_lossy())
            .collect();
        bail!(
            "extracting {} from {} failed (dpkg-deb: {dpkg_status}, tar: {tar})",
            patterns.join(" "),
            deb.display()
        );
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::version_key;

    #[test]
    fn version_key_orders_patch_levels_numerically() {
        let old = version_key("linux-image-6.12.99+deb12-amd64").expect("6.12.99 parses");
        let new = version_key("linux-image-6.12.117+deb12-amd64").expect("6.12.117 parses");
        assert!(new > old, "6.12.117 must sort after 6.12.99");
        assert_eq!(
            version_key("linux-image-6.12.117+deb12-amd64-unsigned"),
            None
        );
    }
}
