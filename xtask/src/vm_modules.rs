//! Kernel modules the test VMs load at boot: the parts of the kernel Corral uses that Debian
//! builds as modules. They come from the kernel's cached `.deb` (6.12 ships them as `.ko.xz`),
//! decompressed and cached beside its vmlinuz as `<cache>/kernels/<package>/modules/<name>.ko`.
//! The initramfs holds them as `/lib/modules/<release>/<name>.ko` with a `load-order` file
//! naming them, which `tests/vm/init.sh` loads with `insmod` for the kernel it booted.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::{command, kernels};

/// Paths under `lib/modules/<release>/kernel/` without `.ko` / `.ko.xz`, each after the
/// modules it depends on (its modinfo `depends=`), so `insmod` in this order works without
/// `modules.dep`. Adding one here makes every cached kernel extract its modules again.
///
/// `NETLINK_SOCK_DIAG` look-ups of UDP and TCP sockets (the DNS proxy finds its clients'
/// sockets): `sock_diag` is built in; `udp_diag` and `tcp_diag` depend on `inet_diag`.
/// `binfmt_misc` (no dependencies): the kernel tests register a handler whose interpreter
/// the task may not run.
pub const MODULES: [&str; 4] = [
    "net/ipv4/inet_diag",
    "net/ipv4/udp_diag",
    "net/ipv4/tcp_diag",
    "fs/binfmt_misc",
];

/// The modules of one kernel, ready to pack.
#[derive(Clone, Debug)]
pub struct Modules {
    /// `uname -r` of the kernel, e.g. `6.1.0-56-amd64`: the directory under `/lib/modules`.
    pub release: String,
    /// (module name, uncompressed `.ko` on the host), in load order.
    pub files: Vec<(String, PathBuf)>,
}

/// `net/ipv4/inet_diag` -> `inet_diag`.
fn module_name(path: &str) -> &str {
    path.rsplit('/').next().unwrap_or(path)
}

/// `linux-image-6.12.117+deb12-amd64` -> `6.12.117+deb12-amd64` (its `/lib/modules` directory).
pub fn release(package: &str) -> Result<String> {
    package
        .strip_prefix("linux-image-")
        .filter(|r| !r.is_empty())
        .map(str::to_owned)
        .with_context(|| format!("{package} is not named linux-image-<release>"))
}

fn layout(package: &str, dir: &Path) -> Result<Modules> {
    let modules = dir.join("modules");
    Ok(Modules {
        release: release(package)?,
        files: MODULES
            .iter()
            .map(|path| {
                let name = module_name(path);
                (name.to_owned(), modules.join(format!("{name}.ko")))
            })
            .collect(),
    })
}

/// The modules of `package` cached in `dir`, or `None` when one of `MODULES` is not there yet.
pub fn cached(package: &str, dir: &Path) -> Result<Option<Modules>> {
    let modules = layout(package, dir)?;
    Ok(modules
        .files
        .iter()
        .all(|(_, file)| file.is_file())
        .then_some(modules))
}

/// Extracts `MODULES` from `deb` (the package `package`) into `dir/modules`, decompressing
/// `.ko.xz` files. Each file is moved into place only once complete.
pub fn extract(deb: &Path, package: &str, dir: &Path) -> Result<Modules> {
    let modules = layout(package, dir)?;
    let scratch = dir.join(".extract-modules");
    if scratch.exists() {
        fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    }
    fs::create_dir_all(&scratch).with_context(|| format!("creating {}", scratch.display()))?;
    let kernel_dir = format!("./lib/modules/{}/kernel", modules.release);
    let patterns: Vec<String> = MODULES
        .iter()
        .map(|path| format!("{kernel_dir}/{path}.ko*"))
        .collect();
    kernels::untar(deb, &scratch, &patterns)?;

    let target = dir.join("modules");
    fs::create_dir_all(&target).with_context(|| format!("creating {}", target.display()))?;
    for (path, (_, file)) in MODULES.iter().zip(&modules.files) {
        let plain = scratch.join(&kernel_dir).join(format!("{path}.ko"));
        let packed = scratch.join(&kernel_dir).join(format!("{path}.ko.xz"));
        if packed.is_file() {
            // `xz -d x.ko.xz` leaves `x.ko` beside it.
            command::run(Command::new("xz").arg("-d").arg(&packed))
                .context("xz (package xz-utils) decompresses the 6.12 kernel's modules")?;
        }
        if !plain.is_file() {
            bail!(
                "{} holds no {kernel_dir}/{path}.ko or .ko.xz",
                deb.display()
            );
        }
        fs::rename(&plain, file)
            .with_context(|| format!("moving {} to {}", plain.display(), file.display()))?;
    }
    fs::remove_dir_all(&scratch).with_context(|| format!("removing {}", scratch.display()))?;
    Ok(modules)
}

/// The `load-order` file of the image: one module name a line, in load order.
pub fn load_order(modules: &Modules) -> String {
    let mut text = String::new();
    for (name, _) in &modules.files {
        text.push_str(name);
        text.push('\n');
    }
    text
}

#[cfg(test)]
mod tests {
    use std::path::Path;

    use super::{MODULES, cached, layout, load_order, release};

    #[test]
    fn release_is_the_package_name_without_linux_image() {
        assert_eq!(
            release("linux-image-6.12.117+deb12-amd64").expect("a kernel package"),
            "6.12.117+deb12-amd64"
        );
        assert_eq!(
            release("linux-image-6.1.0-56-amd64").expect("a kernel package"),
            "6.1.0-56-amd64"
        );
        assert!(
            release("busybox-static").is_err(),
            "a package that is not linux-image-* has no release"
        );
    }

    #[test]
    fn modules_load_after_inet_diag_and_a_missing_one_is_not_cached() {
        let modules =
            layout("linux-image-6.1.0-56-amd64", Path::new("/cache")).expect("a kernel package");
        assert_eq!(
            load_order(&modules),
            "inet_diag\nudp_diag\ntcp_diag\nbinfmt_misc\n",
            "udp_diag and tcp_diag depend on inet_diag, which must load first"
        );
        assert_eq!(
            modules.files[0].1,
            Path::new("/cache/modules/inet_diag.ko"),
            "cached uncompressed under the package's directory"
        );
        assert_eq!(modules.files.len(), MODULES.len());

        let empty =
            std::env::temp_dir().join(format!("corral-xtask-modules-{}", std::process::id()));
        assert!(
            cached("linux-image-6.1.0-56-amd64", &empty)
                .expect("a kernel package")
                .is_none(),
            "a directory without the modules is not a cache hit"
        );
    }
}
