//! bpf-linker, built against nightly's own libLLVM so the bitcode nightly rustc emits for the
//! eBPF crate is read by the same LLVM. `<cache>/llvm/lib` holds `libLLVM.so*` symlinks into
//! the nightly sysroot; bpf-linker's RUNPATH points there. A stamp records the nightly it was
//! built for, so a nightly update rebuilds it.
use std::fs;
use std::path::{Path, PathBuf};
use std::process::Command;

use anyhow::{Context as _, Result, bail};

use crate::command;

/// bpf-linker release line known to build against LLVM 22 (nightly 1.97) here.
const VERSION: &str = "^0.13";

/// What identifies nightly's LLVM: the rustc commit and its `LLVM version`.
struct Nightly {
    commit: String,
    llvm_version: String,
    /// `libLLVM.so.<...>` in the nightly sysroot (the file name is also its soname).
    libllvm: PathBuf,
}

impl Nightly {
    fn probe() -> Result<Self> {
        let info = command::stdout(Command::new("rustc").args(["+nightly", "-vV"]))
            .context("nightly rustc is needed for the eBPF crate (rustup toolchain `nightly`)")?;
        let field = |name: &str| {
            info.lines()
                .find_map(|l| l.strip_prefix(name))
                .map(|v| v.trim().to_owned())
                .with_context(|| format!("`rustc +nightly -vV` prints no `{name}` line"))
        };
        let commit = field("commit-hash:")?;
        let llvm_version = field("LLVM version:")?;
        let sysroot =
            command::stdout(Command::new("rustc").args(["+nightly", "--print", "sysroot"]))?;
        let lib = Path::new(sysroot.trim()).join("lib");
        let libllvm = fs::read_dir(&lib)
            .with_context(|| format!("listing {}", lib.display()))?
            .filter_map(Result::ok)
            .map(|e| e.path())
            .find(|p| {
                p.file_name()
                    .is_some_and(|n| n.to_string_lossy().starts_with("libLLVM.so."))
            })
            .with_context(|| format!("no libLLVM.so.* in {}", lib.display()))?;
        Ok(Self {
            commit,
            llvm_version,
            libllvm,
        })
    }

    fn llvm_major(&self) -> &str {
        self.llvm_version
            .split('.')
            .next()
            .unwrap_or(&self.llvm_version)
    }

    fn soname(&self) -> String {
        self.libllvm
            .file_name()
            .map(|n| n.to_string_lossy().into_owned())
            .unwrap_or_default()
    }

    fn stamp(&self) -> String {
        format!(
            "nightly {}\nLLVM {}\nlib {}\n",
            self.commit,
            self.llvm_version,
            self.soname()
        )
    }
}

/// Makes sure `bpf-linker` is on PATH and linked against the current nightly's libLLVM.
pub fn ensure(cache: &Path) -> Result<()> {
    let nightly = Nightly::probe()?;
    let prefix = cache.join("llvm");
    let lib_dir = prefix.join("lib");
    link_libllvm(&nightly, &lib_dir)?;

    let stamp_path = prefix.join("bpf-linker.stamp");
    let stamp = fs::read_to_string(&stamp_path).ok();
    let linked =
        find_on_path("bpf-linker").is_some_and(|bin| links_against(&bin, &nightly, &lib_dir));
    if linked && stamp.as_deref().is_none_or(|s| s == nightly.stamp()) {
        if stamp.is_none() {
            write_stamp(&stamp_path, &nightly)?;
        }
        println!(
            "setup: bpf-linker: linked against {} (nightly {}, LLVM {})",
            nightly.soname(),
            short(&nightly.commit),
            nightly.llvm_version
        );
        return Ok(());
    }

    println!(
        "setup: building bpf-linker against {} (LLVM {}); takes a minute or two",
        nightly.soname(),
        nightly.llvm_version
    );
    command::run(
        Command::new(command::cargo())
            .args([
                "install",
                "bpf-linker",
                "--locked",
                "--force",
                "--version",
                VERSION,
            ])
            .args(["--no-default-features", "--features"])
            .arg(format!("llvm-{}", nightly.llvm_major()))
            .env("LLVM_PREFIX", &prefix),
    )?;
    let Some(bin) = find_on_path("bpf-linker") else {
        bail!("bpf-linker was installed but is not on PATH (add ~/.cargo/bin to PATH)");
    };
    if !links_against(&bin, &nightly, &lib_dir) {
        bail!(
            "{} does not load {} from {} after a rebuild (see `ldd {}`)",
            bin.display(),
            nightly.soname(),
            lib_dir.display(),
            bin.display()
        );
    }
    write_stamp(&stamp_path, &nightly)
}

fn short(commit: &str) -> &str {
    commit.get(..9).unwrap_or(commit)
}

fn write_stamp(path: &Path, nightly: &Nightly) -> Result<()> {
    fs::write(path, nightly.stamp()).with_context(|| format!("writing {}", path.display()))
}

/// `lib_dir/libLLVM.so` and `lib_dir/<soname>` -> nightly's libLLVM; drops stale versions.
fn link_libllvm(nightly: &Nightly, lib_dir: &Path) -> Result<()> {
    fs::create_dir_all(lib_dir).with_context(|| format!("creating {}", lib_dir.display()))?;
    let soname = nightly.soname();
    for entry in fs::read_dir(lib_dir).with_context(|| format!("listing {}", lib_dir.display()))? {
        let path = entry
            .with_context(|| format!("listing {}", lib_dir.display()))?
            .path();
        let name = path.file_name().map(|n| n.to_string_lossy().into_owned());
        let ours = name.as_deref() == Some("libLLVM.so") || name.as_deref() == Some(&soname);
        let points_right = fs::read_link(&path).is_ok_and(|t| t == nightly.libllvm);
        if name.is_some_and(|n| n.starts_with("libLLVM.so")) && !(ours && points_right) {
            fs::remove_file(&path).with_context(|| format!("removing {}", path.display()))?;
        }
    }
    for name in ["libLLVM.so", soname.as_str()] {
        let link = lib_dir.join(name);
        if fs::symlink_metadata(&link).is_err() {
            std::os::unix::fs::symlink(&nightly.libllvm, &link).with_context(|| {
                format!(
                    "linking {} -> {}",
                    link.display(),
                    nightly.libllvm.display()
                )
            })?;
        }
    }
    Ok(())
}

/// Whether `ldd bin` resolves nightly's libLLVM soname to `lib_dir`.
fn links_against(bin: &Path, nightly: &Nightly, lib_dir: &Path) -> bool {
    let Ok(text) = command::stdout(Command::new("ldd").arg(bin)) else {
        return false;
    };
    let wanted = format!(
        "{} => {}",
        nightly.soname(),
        lib_dir.join(nightly.soname()).display()
    );
    text.lines().any(|l| l.trim().starts_with(&wanted))
}

fn find_on_path(program: &str) -> Option<PathBuf> {
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|dir| dir.join(program))
        .find(|p| p.is_file())
}
