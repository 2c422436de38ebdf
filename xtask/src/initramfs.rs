//! The test VMs' initramfs: busybox-static and its applets, Corral's binaries and the `vm` test
//! executable, every shared library `ldd` names for them (at the same absolute path, loader
//! included), the repository's policies, the kernel modules of each kernel the image boots
//! (`/lib/modules/<release>/`, see `vm_modules`) and `tests/vm/init.sh` as `/init`.
use std::collections::BTreeSet;
use std::fs;
use std::io::BufWriter;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::command;
use crate::newc::Archive;
use crate::vm_modules::{self, Modules};

/// busybox-static's binary (package busybox-static).
const BUSYBOX: &str = "/bin/busybox";

/// Directories the init script mounts on or writes to.
const DIRS: [&str; 13] = [
    "/bin",
    "/sbin",
    "/usr/bin",
    "/usr/sbin",
    "/proc",
    "/sys",
    "/dev",
    "/tmp",
    "/run",
    "/etc",
    "/root",
    "/policies",
    "/mnt",
];

/// What goes into the image besides busybox.
pub struct Contents {
    /// (path inside the VM, file on the host) for each executable.
    pub executables: Vec<(&'static str, PathBuf)>,
    /// Copied recursively to `/policies`.
    pub policies: PathBuf,
    /// Becomes `/init`.
    pub init: PathBuf,
    /// Per kernel the image boots: its modules, at `/lib/modules/<release>/<name>.ko`, with
    /// `/lib/modules/<release>/load-order` naming them in load order.
    pub modules: Vec<Modules>,
}

/// Writes the image to `out` (newc cpio, uncompressed) and returns its size in bytes.
pub fn build(contents: &Contents, out: &Path) -> Result<u64> {
    let file = fs::File::create(out).with_context(|| format!("creating {}", out.display()))?;
    let mut archive = Archive::new(BufWriter::new(file));
    let io =
        |e: std::io::Error| anyhow::Error::new(e).context(format!("writing {}", out.display()));

    for dir in DIRS {
        archive.dir(dir).map_err(io)?;
    }
    // init's stdio: the kernel opens /dev/console before devtmpfs is mounted.
    archive
        .char_device("/dev/console", 0o600, 5, 1)
        .map_err(io)?;

    archive
        .file(BUSYBOX, 0o755, &read(Path::new(BUSYBOX))?)
        .map_err(io)?;
    for applet in applets()? {
        if applet != BUSYBOX {
            archive.symlink(&applet, BUSYBOX).map_err(io)?;
        }
    }

    let mut libraries = BTreeSet::new();
    for (inside, host) in &contents.executables {
        archive.file(inside, 0o755, &read(host)?).map_err(io)?;
        libraries.extend(shared_libraries(host)?);
    }
    for library in &libraries {
        let name = library.to_string_lossy();
        archive.file(&name, 0o755, &read(library)?).map_err(io)?;
    }

    for kernel in &contents.modules {
        let dir = format!("/lib/modules/{}", kernel.release);
        for (name, host) in &kernel.files {
            archive
                .file(&format!("{dir}/{name}.ko"), 0o644, &read(host)?)
                .map_err(io)?;
        }
        archive
            .file(
                &format!("{dir}/load-order"),
                0o644,
                vm_modules::load_order(kernel).as_bytes(),
            )
            .map_err(io)?;
    }

    add_tree(&mut archive, &contents.policies, "/policies").map_err(|e| {
        e.context(format!(
            "copying {} into {}",
            contents.policies.display(),
            out.display()
        ))
    })?;
    archive
        .file("/init", 0o755, &read(&contents.init)?)
        .map_err(io)?;

    archive.finish().map_err(io)?;
    Ok(fs::metadata(out)
        .with_context(|| format!("reading size of {}", out.display()))?
        .len())
}

fn read(path: &Path) -> Result<Vec<u8>> {
    fs::read(path).with_context(|| format!("reading {}", path.display()))
}

/// `busybox --list-full`: `usr/bin/env`, ... as absolute paths.
fn applets() -> Result<Vec<String>> {
    let list = command::stdout(Command::new(BUSYBOX).arg("--list-full"))
        .context("busybox-static is needed for the VM image (run `cargo xtask setup`)")?;
    Ok(list
        .lines()
        .filter(|l| !l.is_empty())
        .map(|l| format!("/{}", l.trim_start_matches('/')))
        .collect())
}

/// The absolute paths `ldd` resolves for `binary` (empty for a static binary).
fn shared_libraries(binary: &Path) -> Result<Vec<PathBuf>> {
    let output = Command::new("ldd")
        .arg(binary)
        .output()
        .with_context(|| format!("running ldd {}", binary.display()))?;
    let text = String::from_utf8_lossy(&output.stdout);
    if !output.status.success() {
        if String::from_utf8_lossy(&output.stderr).contains("not a dynamic executable")
            || text.contains("not a dynamic executable")
        {
            return Ok(Vec::new());
        }
        bail!(
            "ldd {} failed: {}",
            binary.display(),
            String::from_utf8_lossy(&output.stderr).trim()
        );
    }
    let mut libraries = Vec::new();
    for line in text.lines().map(str::trim) {
        if line.contains("not found") {
            bail!("ldd {}: {line}", binary.display());
        }
        // `libc.so.6 => /lib/x86_64-linux-gnu/libc.so.6 (0x...)` or `/lib64/ld-linux... (0x...)`;
        // the vDSO (`linux-vdso.so.1 (0x...)`) has no file.
        let resolved = line.split_once("=> ").map_or(line, |(_, path)| path);
        let path = resolved.split(" (").next().unwrap_or_default();
        if path.starts_with('/') {
            libraries.push(PathBuf::from(path));
        }
    }
    Ok(libraries)
}

/// Copies the regular files under `dir` to `inside` in the archive, recursively.
fn add_tree<W: std::io::Write>(archive: &mut Archive<W>, dir: &Path, inside: &str) -> Result<()> {
    archive
        .dir(inside)
        .with_context(|| format!("adding {inside}"))?;
    let mut entries = fs::read_dir(dir)
        .with_context(|| format!("listing {}", dir.display()))?
        .collect::<std::io::Result<Vec<_>>>()
        .with_context(|| format!("listing {}", dir.display()))?;
    entries.sort_by_key(fs::DirEntry::file_name);
    for entry in entries {
        let path = entry.path();
        let name = format!("{inside}/{}", entry.file_name().to_string_lossy());
        let kind = entry
            .file_type()
            .with_context(|| format!("reading type of {}", path.display()))?;
        if kind.is_dir() {
            add_tree(archive, &path, &name)?;
        } else if kind.is_file() {
            archive
                .file(&name, 0o644, &read(&path)?)
                .with_context(|| format!("adding {name}"))?;
        }
    }
    Ok(())
}
