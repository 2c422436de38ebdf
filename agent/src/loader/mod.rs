//! Loads the embedded eBPF object into the kernel: checks what the kernel offers, fills in the
//! struct offsets from its BTF, loads and attaches every program, and hands out typed maps.

#[cfg(test)]
mod layout_tests;
mod offsets;
mod preflight;
mod rules;

use std::path::{Path, PathBuf};

use agent_common::names;
use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{BtfTracePoint, Lsm, ProgramError},
};

pub use offsets::{OffsetError, VMLINUX_BTF, read_offsets};
pub use preflight::{PreflightError, active_lsms};
pub use rules::{Counters, RuleMaps, RulesError};

/// The object built by `build.rs` from `agent-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf"));

/// One hook of the object and where it attaches.
#[derive(Debug, Clone, Copy)]
pub struct HookSpec {
    pub program: &'static str,
    pub kind: HookKind,
    /// LSM hook or tracepoint name.
    pub hook: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Lsm,
    BtfTracepoint,
}

impl HookKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Lsm => "lsm",
            Self::BtfTracepoint => "tp_btf",
        }
    }
}

/// Every program, in attach order: tagging first, so forks are followed before any hook judges.
pub const HOOKS: [HookSpec; 5] = [
    HookSpec {
        program: names::PROG_FORK,
        kind: HookKind::BtfTracepoint,
        hook: "sched_process_fork",
    },
    HookSpec {
        program: names::PROG_EXIT,
        kind: HookKind::BtfTracepoint,
        hook: "sched_process_exit",
    },
    HookSpec {
        program: names::PROG_EXEC,
        kind: HookKind::Lsm,
        hook: "bprm_check_security",
    },
    HookSpec {
        program: names::PROG_OPEN,
        kind: HookKind::Lsm,
        hook: "file_open",
    },
    HookSpec {
        program: names::PROG_CONNECT,
        kind: HookKind::Lsm,
        hook: "socket_connect",
    },
];

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error("cannot parse kernel BTF {}: {source}", path.display())]
    Btf {
        path: PathBuf,
        source: aya::BtfError,
    },
    #[error("cannot load the eBPF object: {source}")]
    Object { source: aya::EbpfError },
    #[error("program `{program}` is missing from the eBPF object")]
    MissingProgram { program: &'static str },
    #[error("program `{program}` is not a {kind} program: {source}")]
    ProgramType {
        program: &'static str,
        kind: &'static str,
        source: ProgramError,
    },
    #[error(
        "the kernel refuses BPF LSM programs (loading `{program}` for {hook} failed with EPERM) although `bpf` is an active LSM: BPF trampolines are disabled on this kernel; run Corral on a kernel that allows BPF LSM programs"
    )]
    LsmRefused {
        program: &'static str,
        hook: &'static str,
    },
    #[error("cannot load program `{program}` ({kind} {hook}): {source:#}")]
    Load {
        program: &'static str,
        kind: &'static str,
        hook: &'static str,
        source: ProgramError,
    },
    #[error("cannot attach program `{program}` ({kind} {hook}): {source:#}")]
    Attach {
        program: &'static str,
        kind: &'static str,
        hook: &'static str,
        source: ProgramError,
    },
    #[error(transparent)]
    Rules(#[from] RulesError),
}

/// The loaded object with all programs attached. Dropping it detaches them.
pub struct Loaded {
    /// Owns the programs and their links: keep it alive as long as enforcement must last.
    pub ebpf: Ebpf,
    pub maps: RuleMaps,
    pub events: aya::maps::RingBuf<aya::maps::MapData>,
}

/// Loads and attaches everything, or explains what the kernel lacks.
pub fn load(btf_path: &Path) -> Result<Loaded, LoaderError> {
    preflight::check(btf_path)?;
    let offsets = read_offsets(btf_path)?;
    let btf = Btf::parse_file(btf_path, aya::Endianness::default()).map_err(|source| {
        LoaderError::Btf {
            path: btf_path.to_owned(),
            source,
        }
    })?;
    let mut ebpf = EbpfLoader::new()
        .btf(Some(&btf))
        .override_global(names::OFFSETS, &offsets, true)
        .load(EBPF_OBJECT)
        .map_err(|source| LoaderError::Object { source })?;
    for spec in HOOKS {
        attach(&mut ebpf, &btf, spec)?;
    }
    let (maps, events) = RuleMaps::take(&mut ebpf)?;
    Ok(Loaded { ebpf, maps, events })
}

fn attach(ebpf: &mut Ebpf, btf: &Btf, spec: HookSpec) -> Result<(), LoaderError> {
    let HookSpec {
        program,
        kind,
        hook,
    } = spec;
    let prog = ebpf
        .program_mut(program)
        .ok_or(LoaderError::MissingProgram { program })?;
    let kind_str = kind.as_str();
    let load_err = |source: ProgramError| {
        if is_eperm(&source) && kind == HookKind::Lsm {
            LoaderError::LsmRefused { program, hook }
        } else {
            LoaderError::Load {
                program,
                kind: kind_str,
                hook,
                source,
            }
        }
    };
    let attach_err = |source| LoaderError::Attach {
        program,
        kind: kind_str,
        hook,
        source,
    };
    let type_err = |source| LoaderError::ProgramType {
        program,
        kind: kind_str,
        source,
    };
    match kind {
        HookKind::Lsm => {
            let p: &mut Lsm = prog.try_into().map_err(type_err)?;
            p.load(hook, btf).map_err(load_err)?;
            p.attach().map_err(attach_err)?;
        }
        HookKind::BtfTracepoint => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(type_err)?;
            p.load(hook, btf).map_err(load_err)?;
            p.attach().map_err(attach_err)?;
        }
    }
    Ok(())
}

fn is_eperm(err: &ProgramError) -> bool {
    match err {
        ProgramError::LoadError { io_error, .. } => io_error.raw_os_error() == Some(libc::EPERM),
        ProgramError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::EPERM),
        _ => false,
    }
}
