//! The release binaries the kernel tests run: `corral`, the `corral-probe` helper and the
//! `host`, `landlock`, `reload` and `vm` test executables of `corral-tests`.
use std::path::PathBuf;

use anyhow::Result;

use crate::initramfs::Contents;
use crate::kernels::Image;
use crate::{cargo, paths};

pub struct Binaries {
    pub corral: PathBuf,
    pub probe: PathBuf,
    /// Test executables run natively on this host, by target name (`host`, `landlock`, `reload`,
    /// `ops`).
    pub native_tests: Vec<(&'static str, PathBuf)>,
    pub vm_tests: PathBuf,
}

/// Builds just the daemon (`cargo build --release -p agent`).
pub fn corral() -> Result<PathBuf> {
    let built = cargo::build(&["build", "--release", "-p", "agent"])?;
    Ok(cargo::executable(&built, "corral", "bin")?.to_path_buf())
}

/// Builds everything the native and VM suites need.
pub fn build() -> Result<Binaries> {
    let corral = corral()?;
    let tests = cargo::build(&["test", "--release", "-p", "corral-tests", "--no-run"])?;
    let bins = cargo::build(&["build", "--release", "-p", "corral-tests", "--bins"])?;
    Ok(Binaries {
        corral,
        probe: cargo::executable(&bins, "corral-probe", "bin")?.to_path_buf(),
        native_tests: ["host", "landlock", "reload", "ops", "dns"]
            .into_iter()
            .map(|name| Ok((name, cargo::executable(&tests, name, "test")?.to_path_buf())))
            .collect::<Result<_>>()?,
        vm_tests: cargo::executable(&tests, "vm", "test")?.to_path_buf(),
    })
}

impl Binaries {
    /// What the VM image holds: the binaries at the paths `tests/vm/init.sh` runs them from,
    /// and the modules it loads on each of `images`.
    pub fn vm_contents(&self, images: &[Image]) -> Contents {
        Contents {
            executables: vec![
                ("/bin/corral", self.corral.clone()),
                ("/bin/corral-probe", self.probe.clone()),
                // Built beside the probe: the DNS learning tests' plain resolver.
                (
                    "/bin/corral-dns-query",
                    self.probe.with_file_name("corral-dns-query"),
                ),
                ("/bin/vm-tests", self.vm_tests.clone()),
            ],
            policies: paths::policies(),
            init: init_script(),
            modules: images.iter().map(|i| i.modules.clone()).collect(),
        }
    }
}

/// `tests/vm/init.sh`, the VM's PID 1.
pub fn init_script() -> PathBuf {
    paths::repo().join("tests/vm/init.sh")
}
