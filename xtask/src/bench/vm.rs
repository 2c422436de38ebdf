//! The BPF LSM rows: the same measurements inside a qemu VM on a Debian kernel (this host
//! refuses BPF LSM). The VM's /init (`tests/vm/bench-init.sh`) runs this xtask binary with
//! `bench --inside-vm`, which prints its records on the console.
use std::path::Path;
use std::time::Duration;

use anyhow::{Context as _, Result, bail};
use serde_json::Value;

use super::Plan;
use super::recorder;
use crate::initramfs::{self, Contents};
use crate::kernels::Image;
use crate::{paths, supervise, vm};

const EXIT_MARKER: &str = "CORRAL_VM_EXIT=";
/// The VM part takes about 350 s on 6.12 (the default) on the 2-core CI host, where a daemon
/// start (29 LSM programs verified under TCG) takes about 12 s; on 6.1 a start takes about 40 s
/// and the part roughly twice as long: the bound leaves room for `--kernel 6.1` on a loaded host.
const TIMEOUT: Duration = Duration::from_secs(1080);

pub fn measure(
    image: &Image,
    corral: &Path,
    bench: &Path,
    plan: &Plan,
    out: &Path,
) -> Result<Vec<Value>> {
    let xtask = std::env::current_exe().context("locating the xtask executable")?;
    let contents = Contents {
        executables: vec![
            ("/bin/corral", corral.to_path_buf()),
            ("/bin/corral-bench", bench.to_path_buf()),
            ("/bin/xtask", xtask),
        ],
        policies: paths::policies(),
        init: paths::repo().join("tests/vm/bench-init.sh"),
        // The benchmarks need no module (bench-init.sh loads none).
        modules: Vec::new(),
    };
    let initrd = out.join("bench-initramfs.cpio");
    initramfs::build(&contents, &initrd)?;
    let label = image.kernel.label();
    let append = format!(
        "console=ttyS0 quiet panic=-1 -- {}",
        plan.as_args().join(" ")
    );
    let mut cmd = vm::qemu(&image.vmlinuz, &initrd, &append);
    cmd.args(["-monitor", "none", "-serial", "stdio"]);
    println!("bench vm {label}: booting {}", image.package);
    let log = out.join(format!("bench-vm-{label}.log"));
    let outcome = supervise::run(&mut cmd, &format!("[bench vm {label}] "), &log, TIMEOUT)?;
    let exit = outcome.output.lines().rev().find_map(|l| {
        l.split_once(EXIT_MARKER)
            .map(|(_, rc)| rc.trim().to_owned())
    });
    match (outcome.status, exit.as_deref()) {
        (None, _) => bail!(
            "bench VM timed out after {TIMEOUT:?}; log: {}",
            log.display()
        ),
        (_, Some("0")) => {}
        (_, other) => bail!("bench VM failed (exit {other:?}); log: {}", log.display()),
    }
    let (mut records, unreadable) = recorder::parse_console(&outcome.output);
    if unreadable > 0 {
        println!("bench vm {label}: {unreadable} record line(s) garbled on the console, skipped");
    }
    let env = format!("vm {label}");
    for record in &mut records {
        record["env"] = Value::String(env.clone());
    }
    Ok(records)
}
