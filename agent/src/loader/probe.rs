//! What the running kernel really allows, found by loading and attaching trivial programs (not
//! by reading configuration), and the fix for everything missing. Used by the daemon at start
//! and by `corral doctor`.

use std::path::{Path, PathBuf};

use agent_common::{DecisionCacheConfig, names};
use serde::Serialize;

use super::{
    Backends, Capabilities, HookKind, LoaderError, attach, cgroup, hook, load_object, preflight,
    read_offsets,
};

/// One mechanism: whether it works here, what was seen, and how to get it if it does not.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Finding {
    pub mechanism: &'static str,
    pub available: bool,
    pub detail: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub fix: Option<String>,
}

/// Everything `corral doctor` reports.
#[derive(Debug, Clone, Serialize)]
pub struct Probe {
    pub kernel: String,
    pub active_lsms: Vec<String>,
    pub btf: bool,
    pub cgroup2: Option<PathBuf>,
    pub landlock_abi: Option<u32>,
    pub bpffs: bool,
    #[serde(skip)]
    pub caps: Capabilities,
    pub findings: Vec<Finding>,
}

impl Probe {
    #[must_use]
    pub fn backends(&self) -> Backends {
        Backends::choose(self.caps)
    }

    /// The unavailable mechanisms and why, on one line.
    #[must_use]
    pub fn summary(&self) -> String {
        self.findings
            .iter()
            .filter(|f| !f.available)
            .map(|f| format!("{}: {}", f.mechanism, f.detail))
            .collect::<Vec<_>>()
            .join("; ")
    }
}

fn found(mechanism: &'static str, detail: impl Into<String>) -> Finding {
    Finding {
        mechanism,
        available: true,
        detail: detail.into(),
        fix: None,
    }
}

fn missing(mechanism: &'static str, detail: impl Into<String>, fix: impl Into<String>) -> Finding {
    Finding {
        mechanism,
        available: false,
        detail: detail.into(),
        fix: Some(fix.into()),
    }
}

/// Probes the kernel. Never fails: what cannot be checked is reported as unavailable.
#[must_use]
pub fn probe(btf_path: &Path, landlock_abi: Option<u32>) -> Probe {
    let kernel = std::fs::read_to_string("/proc/sys/kernel/osrelease")
        .map_or_else(|_| "unknown".to_owned(), |s| s.trim().to_owned());
    let (active_lsms, lsm_list_error) = match preflight::active_lsms() {
        Ok(l) => (l, None),
        Err(e) => (Vec::new(), Some(e.to_string())),
    };
    let btf = btf_path.exists();
    let cgroup2 = cgroup::find_cgroup2().ok().flatten();
    let bpffs = std::fs::read_to_string("/proc/self/mountinfo")
        .is_ok_and(|m| m.lines().any(|l| l.contains(" - bpf ")));
    let mut caps = Capabilities {
        landlock: landlock_abi.is_some(),
        ..Capabilities::default()
    };
    let mut findings = Vec::new();

    let ebpf_findings = probe_ebpf(btf_path, btf, &active_lsms, lsm_list_error, &mut caps);
    findings.extend(ebpf_findings);
    findings.push(match landlock_abi {
        Some(abi) => found("landlock", format!("ABI {abi}")),
        None => missing(
            "landlock",
            "not enabled",
            "use a kernel with CONFIG_SECURITY_LANDLOCK=y and `landlock` in the lsm= boot parameter",
        ),
    });
    Probe {
        kernel,
        active_lsms,
        btf,
        cgroup2,
        landlock_abi,
        bpffs,
        caps,
        findings,
    }
}

fn probe_ebpf(
    btf_path: &Path,
    btf_present: bool,
    active_lsms: &[String],
    lsm_list_error: Option<String>,
    caps: &mut Capabilities,
) -> Vec<Finding> {
    let no_btf = |m| {
        missing(
            m,
            format!("no kernel BTF at {}", btf_path.display()),
            "use a kernel built with CONFIG_DEBUG_INFO_BTF=y",
        )
    };
    if !btf_present {
        return vec![
            no_btf("tp_btf"),
            no_btf("bpf_lsm"),
            no_btf("cgroup_sock_addr"),
        ];
    }
    let prepared = read_offsets(btf_path)
        .map_err(|e| e.to_string())
        .and_then(|off| {
            load_object(btf_path, &off, &DecisionCacheConfig::default(), None)
                .map_err(|e| e.to_string())
        });
    let (btf, mut ebpf) = match prepared {
        Ok(p) => p,
        Err(e) => {
            let fail = |m| {
                missing(
                    m,
                    e.clone(),
                    "see the error; `corral doctor --json` for details",
                )
            };
            return vec![fail("tp_btf"), fail("bpf_lsm"), fail("cgroup_sock_addr")];
        }
    };
    let mut out = Vec::new();

    // BTF tracepoints: process tagging.
    let tp = attach(
        &mut ebpf,
        &btf,
        hook(
            names::PROG_PROBE_TP_BTF,
            HookKind::BtfTracepoint,
            "sched_process_fork",
        ),
        None,
    )
    // The trivial program detaches when its link is dropped, here.
    .map(drop)
    .map_err(|e| e.to_string());
    caps.tp_btf = tp.is_ok();
    out.push(match tp {
        Ok(()) => found("tp_btf", "sched_process_fork attached"),
        Err(e) => missing(
            "tp_btf",
            e,
            "use a kernel ≥ 5.5 with BTF; run the daemon as root (CAP_BPF, CAP_PERFMON)",
        ),
    });

    // BPF LSM: listed as active, and a program really loads and attaches.
    let lsm = probe_lsm(&mut ebpf, &btf, active_lsms, lsm_list_error);
    caps.lsm = lsm.is_ok();
    out.push(match lsm {
        Ok(()) => found("bpf_lsm", "file_open program attached"),
        Err((detail, fix)) => missing("bpf_lsm", detail, fix),
    });

    // cgroup sock_addr programs on the cgroup v2 root.
    let sock = cgroup::cgroup2_root()
        .map_err(|e| e.to_string())
        .and_then(|root| {
            let spec = hook(
                names::PROG_PROBE_SOCK_ADDR,
                HookKind::CgroupSockAddr,
                "connect4",
            );
            drop(attach(&mut ebpf, &btf, spec, Some(&root)).map_err(|e| e.to_string())?);
            Ok(root)
        });
    caps.sock_addr = sock.is_ok();
    out.push(match sock {
        Ok(root) => found(
            "cgroup_sock_addr",
            format!("connect4 program attached to {}", root.display()),
        ),
        Err(e) => missing(
            "cgroup_sock_addr",
            e,
            "mount the cgroup v2 hierarchy (`mount -t cgroup2 none /sys/fs/cgroup`) on a kernel with CONFIG_CGROUP_BPF=y",
        ),
    });
    out
}

/// BPF LSM: `bpf` must be an active LSM (else attached programs would never run) and an LSM
/// program must really load and attach. The error carries the detail and the fix.
fn probe_lsm(
    ebpf: &mut aya::Ebpf,
    btf: &aya::Btf,
    active_lsms: &[String],
    lsm_list_error: Option<String>,
) -> Result<(), (String, String)> {
    if let Some(e) = lsm_list_error {
        Err((
            e,
            "mount securityfs: `mount -t securityfs securityfs /sys/kernel/security`".to_owned(),
        ))
    } else if !active_lsms.iter().any(|l| l == "bpf") {
        let list = active_lsms.join(",");
        Err((
            format!("`bpf` is not an active LSM (active: {list})"),
            format!(
                "add `lsm={list},bpf` to the kernel command line (GRUB_CMDLINE_LINUX in /etc/default/grub, then update-grub and reboot)"
            ),
        ))
    } else {
        attach(
            ebpf,
            btf,
            hook(names::PROG_PROBE_LSM, HookKind::Lsm, "file_open"),
            None,
        )
        .map(drop)
        .map_err(|e| {
            (
                match e {
                    LoaderError::LsmRefused { .. } => e.to_string(),
                    other => format!("an LSM program does not load: {other}"),
                },
                "the kernel refuses BPF trampoline programs; use a kernel that allows them (Debian's stock kernels do)".to_owned(),
            )
        })
    }
}
