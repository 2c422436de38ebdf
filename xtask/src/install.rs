//! `cargo xtask install`: puts `corral`, its systemd unit, its configuration and the example
//! policies in place. `--destdir` stages everything under another root (for packaging and
//! tests); an existing configuration or policy is never overwritten.
use std::fs;
use std::os::unix::fs::PermissionsExt as _;
use std::path::{Path, PathBuf};

use anyhow::{Context as _, Result, bail};

use crate::{binaries, paths};

/// The unit's `ExecStart` as shipped; rewritten for the chosen prefix and configuration path.
const SHIPPED_EXEC_START: &str =
    "ExecStart=/usr/local/bin/corral daemon --config /etc/corral/corral.toml";

#[derive(clap::Args, Debug, Clone)]
pub struct Args {
    /// Installation prefix: the binary goes to PREFIX/bin/corral.
    #[arg(long, default_value = "/usr/local")]
    pub prefix: PathBuf,
    /// Configuration directory: SYSCONFDIR/corral/corral.toml and SYSCONFDIR/corral/policies/.
    #[arg(long, default_value = "/etc")]
    pub sysconfdir: PathBuf,
    /// Where the systemd unit goes.
    #[arg(long, default_value = "/etc/systemd/system")]
    pub unitdir: PathBuf,
    /// Stage everything under this root instead of `/` (the installed files still name the
    /// final paths).
    #[arg(long)]
    pub destdir: Option<PathBuf>,
    /// Install this binary instead of building `corral` in release mode.
    #[arg(long)]
    pub binary: Option<PathBuf>,
}

/// What was written, for the summary and the tests.
#[derive(Debug, Default)]
pub struct Installed {
    pub written: Vec<PathBuf>,
    /// Existing configuration and policy files left as they were.
    pub kept: Vec<PathBuf>,
}

/// Builds (unless `--binary`) and installs.
pub fn run(args: &Args) -> Result<()> {
    let binary = match &args.binary {
        Some(b) => b.clone(),
        None => binaries::corral()?,
    };
    let installed = install(args, &binary, &paths::repo())?;
    for p in &installed.written {
        println!("install: {}", p.display());
    }
    for p in &installed.kept {
        println!("install: kept existing {}", p.display());
    }
    if args.destdir.is_none() {
        println!("install: done; `systemctl daemon-reload && systemctl enable --now corral`");
    }
    Ok(())
}

/// Final (in-system) paths of everything installed.
pub struct Layout {
    pub binary: PathBuf,
    pub config: PathBuf,
    pub policies: PathBuf,
    pub unit: PathBuf,
}

impl Layout {
    pub fn of(args: &Args) -> Self {
        let etc = args.sysconfdir.join("corral");
        Self {
            binary: args.prefix.join("bin/corral"),
            config: etc.join("corral.toml"),
            policies: etc.join("policies"),
            unit: args.unitdir.join("corral.service"),
        }
    }
}

/// `DESTDIR/path` (`path` is absolute).
fn staged(destdir: Option<&Path>, path: &Path) -> PathBuf {
    match destdir {
        Some(root) => root.join(path.strip_prefix("/").unwrap_or(path)),
        None => path.to_path_buf(),
    }
}

/// Installs from the repository at `repo`.
pub fn install(args: &Args, binary: &Path, repo: &Path) -> Result<Installed> {
    let layout = Layout::of(args);
    for p in [&layout.binary, &layout.config, &layout.unit] {
        if !p.is_absolute() {
            bail!("install paths must be absolute, got {}", p.display());
        }
    }
    let dest = args.destdir.as_deref();
    let mut done = Installed::default();

    let bin = staged(dest, &layout.binary);
    copy(binary, &bin, 0o755, true, &mut done)?;

    let unit_text = fs::read_to_string(repo.join("deploy/systemd/corral.service"))
        .context("reading deploy/systemd/corral.service")?;
    if !unit_text.contains(SHIPPED_EXEC_START) {
        bail!("deploy/systemd/corral.service has no `{SHIPPED_EXEC_START}` line to adapt");
    }
    let exec_start = format!(
        "ExecStart={} daemon --config {}",
        layout.binary.display(),
        layout.config.display()
    );
    let unit = staged(dest, &layout.unit);
    write(
        &unit,
        &unit_text.replace(SHIPPED_EXEC_START, &exec_start),
        0o644,
        &mut done,
    )?;

    let config_text = fs::read_to_string(repo.join("deploy/corral.toml"))
        .context("reading deploy/corral.toml")?;
    let config_text = config_text.replace(
        "policies = \"/etc/corral/policies\"",
        &format!("policies = \"{}\"", layout.policies.display()),
    );
    let config = staged(dest, &layout.config);
    if config.exists() {
        done.kept.push(config);
    } else {
        write(&config, &config_text, 0o644, &mut done)?;
    }

    let policies = staged(dest, &layout.policies);
    let mut shipped: Vec<PathBuf> = fs::read_dir(repo.join("policies"))
        .context("listing policies/")?
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "yaml"))
        .collect();
    shipped.sort();
    for policy in shipped {
        let Some(name) = policy.file_name() else {
            continue;
        };
        copy(&policy, &policies.join(name), 0o644, false, &mut done)?;
    }
    Ok(done)
}

fn parent_dir(path: &Path) -> Result<()> {
    if let Some(dir) = path.parent() {
        fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    Ok(())
}

fn set_mode(path: &Path, mode: u32) -> Result<()> {
    fs::set_permissions(path, fs::Permissions::from_mode(mode))
        .with_context(|| format!("setting mode {mode:o} on {}", path.display()))
}

/// Copies `from` to `to` with `mode`; an existing `to` is replaced only if `replace`.
fn copy(from: &Path, to: &Path, mode: u32, replace: bool, done: &mut Installed) -> Result<()> {
    if to.exists() && !replace {
        done.kept.push(to.to_path_buf());
        return Ok(());
    }
    parent_dir(to)?;
    // Through a temporary name and a rename: a running binary is replaced, never rewritten.
    let tmp = to.with_extension("xtask-new");
    fs::copy(from, &tmp)
        .with_context(|| format!("copying {} to {}", from.display(), tmp.display()))?;
    set_mode(&tmp, mode)?;
    fs::rename(&tmp, to).with_context(|| format!("renaming to {}", to.display()))?;
    done.written.push(to.to_path_buf());
    Ok(())
}

fn write(to: &Path, text: &str, mode: u32, done: &mut Installed) -> Result<()> {
    parent_dir(to)?;
    fs::write(to, text).with_context(|| format!("writing {}", to.display()))?;
    set_mode(to, mode)?;
    done.written.push(to.to_path_buf());
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::process::Command;

    use super::*;

    fn scratch(name: &str) -> PathBuf {
        let dir = std::env::temp_dir().join(format!("xtask-install-{}-{name}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("expected a scratch dir: {e}"));
        dir
    }

    fn args(root: &Path, destdir: Option<PathBuf>) -> Args {
        Args {
            prefix: root.join("usr/local"),
            sysconfdir: root.join("etc"),
            unitdir: root.join("etc/systemd/system"),
            destdir,
            binary: None,
        }
    }

    /// A stand-in for the daemon binary (any executable will do for the layout and the unit).
    fn fake_binary(dir: &Path) -> PathBuf {
        let bin = dir.join("corral-built");
        fs::write(&bin, "#!/bin/sh\nexit 0\n").unwrap_or_else(|e| panic!("expected a file: {e}"));
        set_mode(&bin, 0o755).unwrap_or_else(|e| panic!("expected chmod: {e:#}"));
        bin
    }

    fn mode(path: &Path) -> u32 {
        fs::metadata(path)
            .unwrap_or_else(|e| panic!("expected {} installed: {e}", path.display()))
            .permissions()
            .mode()
            & 0o777
    }

    /// `systemd-analyze verify UNIT`: success and nothing said about the unit.
    fn verify(unit: &Path) -> Result<(), String> {
        let out = Command::new("systemd-analyze")
            .arg("verify")
            .arg(unit)
            .output()
            .unwrap_or_else(|e| {
                panic!("expected systemd-analyze (apt package systemd, `cargo xtask setup`): {e}")
            });
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let about_unit: Vec<&str> = stderr
            .lines()
            .filter(|l| l.contains("corral.service"))
            .collect();
        if out.status.success() && about_unit.is_empty() {
            Ok(())
        } else {
            Err(format!("exit {}: {stderr}", out.status))
        }
    }

    #[test]
    fn installs_binary_unit_config_and_policies_with_their_modes() {
        let root = scratch("layout");
        let a = args(&root, None);
        let done = install(&a, &fake_binary(&root), &paths::repo())
            .unwrap_or_else(|e| panic!("expected the install to succeed: {e:#}"));
        let layout = Layout::of(&a);
        assert_eq!(mode(&layout.binary), 0o755);
        assert_eq!(mode(&layout.unit), 0o644);
        assert_eq!(mode(&layout.config), 0o644);
        for policy in ["repo-coder.yaml", "reviewer.yaml", "researcher.yaml"] {
            assert_eq!(mode(&layout.policies.join(policy)), 0o644, "{policy}");
        }
        let unit = fs::read_to_string(&layout.unit).unwrap_or_default();
        let want = format!(
            "ExecStart={} daemon --config {}",
            layout.binary.display(),
            layout.config.display()
        );
        assert!(
            unit.contains(&want),
            "expected `{want}` in the unit:\n{unit}"
        );
        let config = fs::read_to_string(&layout.config).unwrap_or_default();
        assert!(
            config.contains(&format!("policies = \"{}\"", layout.policies.display())),
            "expected the config to name the installed policies:\n{config}"
        );
        assert!(done.kept.is_empty(), "nothing existed: {:?}", done.kept);

        // Again, with the operator's own config: it stays.
        fs::write(&layout.config, "# mine\n").unwrap_or_else(|e| panic!("{e}"));
        let again = install(&a, &fake_binary(&root), &paths::repo())
            .unwrap_or_else(|e| panic!("expected the second install to succeed: {e:#}"));
        assert_eq!(
            fs::read_to_string(&layout.config).unwrap_or_default(),
            "# mine\n"
        );
        assert!(again.kept.contains(&layout.config), "{:?}", again.kept);
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn destdir_stages_under_another_root() {
        let root = scratch("destdir");
        let stage = root.join("stage");
        let a = Args {
            prefix: PathBuf::from("/usr"),
            sysconfdir: PathBuf::from("/etc"),
            unitdir: PathBuf::from("/lib/systemd/system"),
            destdir: Some(stage.clone()),
            binary: None,
        };
        let _ = install(&a, &fake_binary(&root), &paths::repo())
            .unwrap_or_else(|e| panic!("expected the staged install to succeed: {e:#}"));
        assert_eq!(mode(&stage.join("usr/bin/corral")), 0o755);
        let unit =
            fs::read_to_string(stage.join("lib/systemd/system/corral.service")).unwrap_or_default();
        assert!(
            unit.contains("ExecStart=/usr/bin/corral daemon --config /etc/corral/corral.toml"),
            "expected the final paths in the staged unit:\n{unit}"
        );
        assert!(stage.join("etc/corral/policies/reviewer.yaml").exists());
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn installed_unit_passes_systemd_analyze_verify() {
        let root = scratch("verify");
        let a = args(&root, None);
        let _ = install(&a, &fake_binary(&root), &paths::repo())
            .unwrap_or_else(|e| panic!("expected the install to succeed: {e:#}"));
        let unit = Layout::of(&a).unit;
        if let Err(e) = verify(&unit) {
            panic!("expected `systemd-analyze verify` to accept the unit: {e}");
        }
        // The check bites: a misspelt option and a missing binary are both reported.
        let text = fs::read_to_string(&unit).unwrap_or_default();
        fs::write(&unit, text.replace("ProtectClock=", "ProtectClok="))
            .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            verify(&unit).is_err(),
            "expected a misspelt key to be reported"
        );
        fs::write(
            &unit,
            text.replace(
                &Layout::of(&a).binary.display().to_string(),
                "/nonexistent/corral",
            ),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        assert!(
            verify(&unit).is_err(),
            "expected a missing binary to be reported"
        );
        let _ = fs::remove_dir_all(&root);
    }

    #[test]
    fn unit_keeps_the_hardening_that_still_allows_bpf() {
        let unit = fs::read_to_string(paths::repo().join("deploy/systemd/corral.service"))
            .unwrap_or_else(|e| panic!("expected the shipped unit: {e}"));
        let value = |key: &str| {
            unit.lines()
                .find_map(|l| l.strip_prefix(&format!("{key}=")))
                .unwrap_or_else(|| panic!("expected {key}= in the unit"))
                .to_owned()
        };
        assert_eq!(value("Type"), "notify");
        assert_eq!(value("Restart"), "on-failure");
        assert_eq!(value("ProtectSystem"), "strict");
        let caps = value("CapabilityBoundingSet");
        for cap in ["CAP_BPF", "CAP_PERFMON", "CAP_SYS_ADMIN", "CAP_NET_ADMIN"] {
            assert!(
                caps.split(' ').any(|c| c == cap),
                "expected {cap} in {caps}"
            );
        }
        let rw = value("ReadWritePaths");
        for path in ["/sys/fs/bpf", "/run/corral", "/var/log/corral"] {
            assert!(rw.split(' ').any(|p| p == path), "expected {path} in {rw}");
        }
    }
}
