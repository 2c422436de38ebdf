//! `cargo xtask run`: the daemon on this machine with the repository's policies.
use std::os::unix::process::CommandExt as _;
use std::process::Command;

use anyhow::{Result, bail};

use crate::kernels::Kernel;
use crate::{binaries, command, paths, setup};

/// Builds `corral` and replaces this process with `corral daemon --policies <repo>/policies
/// --events - <extra>` (socket: the daemon's default, /run/corral/corral.sock).
pub fn daemon(extra: &[String]) -> Result<()> {
    setup::run(&[] as &[Kernel])?;
    let corral = binaries::corral()?;
    let mut cmd = Command::new(corral);
    cmd.arg("daemon")
        .arg("--policies")
        .arg(paths::policies())
        .args(["--events", "-"])
        .args(extra);
    println!("$ {}", command::describe(&cmd));
    let error = cmd.exec();
    bail!("starting {}: {error}", command::describe(&cmd))
}
