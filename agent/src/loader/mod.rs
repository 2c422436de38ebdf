//! Loads the embedded eBPF object into the kernel: probes what the kernel really runs (by loading
//! and attaching trivial programs), fills in the struct offsets from its BTF, then loads and
//! attaches the programs of the strongest backends available, and hands out typed maps.

mod backends;
mod btf_members;
mod cgroup;
mod decision_cache;
mod dns;
mod guards;
mod heap;
mod instances;
#[cfg(test)]
mod layout_tests;
mod offsets;
mod pins;
mod preflight;
mod probe;
mod rules;
mod selectors;
mod settings;
mod tagged;

use std::path::{Path, PathBuf};

use agent_common::{DecisionCacheConfig, KernelOffsets, names};
use aya::{
    Btf, Ebpf, EbpfLoader,
    programs::{BtfTracePoint, CgroupAttachMode, CgroupSockAddr, Lsm, ProgramError, links::FdLink},
};

pub use backends::{Backends, Capabilities};
pub use cgroup::{CgroupError, cgroup2_root};
pub use decision_cache::OpenCacheState;
pub use dns::{DnsControl, DnsMaps, DnsOrigins};
pub use guards::{
    GUARDED_OPS, covers as guard_covers, guard_backend, guard_backend_of, guards_json,
};
pub use heap::map_large_blocks;
pub use instances::InstanceMaps;
pub use offsets::{OffsetError, VMLINUX_BTF, read_offsets};
pub use pins::{DEFAULT_PIN_DIR, PinDir, PinError};
pub use preflight::{PreflightError, active_lsms};
pub use probe::{Finding, Probe, probe};
pub use rules::{Counters, RuleMaps, RulesError};
pub use selectors::SelectorMaps;
pub use settings::SettingsMap;

/// The object built by `build.rs` from `agent-ebpf`.
static EBPF_OBJECT: &[u8] = aya::include_bytes_aligned!(concat!(env!("OUT_DIR"), "/agent-ebpf"));

/// One program of the object and where it attaches.
#[derive(Debug, Clone, Copy)]
pub struct HookSpec {
    pub program: &'static str,
    pub kind: HookKind,
    /// LSM hook, tracepoint, or cgroup attach type.
    pub hook: &'static str,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum HookKind {
    Lsm,
    BtfTracepoint,
    CgroupSockAddr,
}

impl HookKind {
    #[must_use]
    pub const fn as_str(self) -> &'static str {
        match self {
            Self::Lsm => "lsm",
            Self::BtfTracepoint => "tp_btf",
            Self::CgroupSockAddr => "cgroup_sock_addr",
        }
    }
}

const fn hook(program: &'static str, kind: HookKind, hook: &'static str) -> HookSpec {
    HookSpec {
        program,
        kind,
        hook,
    }
}

/// Process tagging: attached first, so forks are followed before any hook judges; then the
/// selectors (a process joins a task by exec of a selected file or in a selected cgroup).
pub const TAGGING_HOOKS: [HookSpec; 4] = [
    hook(
        names::PROG_FORK,
        HookKind::BtfTracepoint,
        "sched_process_fork",
    ),
    hook(
        names::PROG_EXIT,
        HookKind::BtfTracepoint,
        "sched_process_exit",
    ),
    hook(
        names::PROG_SCHED_EXEC,
        HookKind::BtfTracepoint,
        "sched_process_exec",
    ),
    hook(
        names::PROG_CGROUP_ATTACH,
        HookKind::BtfTracepoint,
        "cgroup_attach_task",
    ),
];

/// The after-the-fact backend where BPF LSM is missing: opens of tagged processes judged at
/// `sys_exit` (execs are judged by the `sched_process_exec` program of `TAGGING_HOOKS`), a miss
/// killed before the process returns to user space; and Landlock's refusals reported.
pub const KILL_HOOKS: [HookSpec; 1] = [hook(
    names::PROG_SYS_EXIT,
    HookKind::BtfTracepoint,
    "sys_exit",
)];

/// The BPF LSM backend for exec, open and connect, and the tampering guards (what a confined
/// process may never do: `bpf()`, kernel loading, ptrace and signals outside its task, raw and
/// packet sockets, mounts, hard links); executable file mappings, renames and removals.
pub const LSM_HOOKS: [HookSpec; 29] = [
    hook(names::PROG_EXEC, HookKind::Lsm, "bprm_check_security"),
    hook(names::PROG_OPEN, HookKind::Lsm, "file_open"),
    hook(names::PROG_CONNECT, HookKind::Lsm, "socket_connect"),
    hook(names::PROG_SOCKET_SENDMSG, HookKind::Lsm, "socket_sendmsg"),
    hook(names::PROG_BPF, HookKind::Lsm, "bpf"),
    hook(names::PROG_SOCKET_CREATE, HookKind::Lsm, "socket_create"),
    hook(names::PROG_PTRACE, HookKind::Lsm, "ptrace_access_check"),
    hook(names::PROG_TASK_KILL, HookKind::Lsm, "task_kill"),
    hook(
        names::PROG_KERNEL_READ_FILE,
        HookKind::Lsm,
        "kernel_read_file",
    ),
    hook(
        names::PROG_KERNEL_LOAD_DATA,
        HookKind::Lsm,
        "kernel_load_data",
    ),
    hook(names::PROG_SB_MOUNT, HookKind::Lsm, "sb_mount"),
    hook(names::PROG_SB_UMOUNT, HookKind::Lsm, "sb_umount"),
    hook(names::PROG_MOVE_MOUNT, HookKind::Lsm, "move_mount"),
    hook(names::PROG_SB_PIVOTROOT, HookKind::Lsm, "sb_pivotroot"),
    hook(names::PROG_PATH_CHROOT, HookKind::Lsm, "path_chroot"),
    hook(names::PROG_INODE_LINK, HookKind::Lsm, "inode_link"),
    hook(names::PROG_MMAP_FILE, HookKind::Lsm, "mmap_file"),
    hook(names::PROG_FILE_MPROTECT, HookKind::Lsm, "file_mprotect"),
    hook(names::PROG_PATH_RENAME, HookKind::Lsm, "path_rename"),
    hook(names::PROG_PATH_UNLINK, HookKind::Lsm, "path_unlink"),
    hook(names::PROG_PATH_RMDIR, HookKind::Lsm, "path_rmdir"),
    hook(names::PROG_PATH_MKNOD, HookKind::Lsm, "path_mknod"),
    hook(names::PROG_PATH_MKDIR, HookKind::Lsm, "path_mkdir"),
    hook(names::PROG_PATH_SYMLINK, HookKind::Lsm, "path_symlink"),
    hook(names::PROG_PATH_TRUNCATE, HookKind::Lsm, "path_truncate"),
    hook(names::PROG_PATH_CHMOD, HookKind::Lsm, "path_chmod"),
    hook(names::PROG_PATH_CHOWN, HookKind::Lsm, "path_chown"),
    hook(
        names::PROG_PERF_EVENT_OPEN,
        HookKind::Lsm,
        "perf_event_open",
    ),
    hook(
        names::PROG_INODE_INIT_SECURITY_ANON,
        HookKind::Lsm,
        "inode_init_security_anon",
    ),
];

/// The cgroup `sock_addr` programs: the connect backend without BPF LSM, and everywhere the
/// judge of UDP destinations given to `sendmsg` and of TCP Fast Open connects.
pub const SOCK_ADDR_HOOKS: [HookSpec; 6] = [
    hook(names::PROG_CONNECT4, HookKind::CgroupSockAddr, "connect4"),
    hook(names::PROG_CONNECT6, HookKind::CgroupSockAddr, "connect6"),
    hook(names::PROG_SENDMSG4, HookKind::CgroupSockAddr, "sendmsg4"),
    hook(names::PROG_SENDMSG6, HookKind::CgroupSockAddr, "sendmsg6"),
    // DNS learning: answers from the proxy show the intended server as their source.
    hook(names::PROG_RECVMSG4, HookKind::CgroupSockAddr, "recvmsg4"),
    hook(names::PROG_RECVMSG6, HookKind::CgroupSockAddr, "recvmsg6"),
];

/// Every program the daemon may attach.
pub fn all_hooks() -> impl Iterator<Item = HookSpec> {
    TAGGING_HOOKS
        .into_iter()
        .chain(LSM_HOOKS)
        .chain(SOCK_ADDR_HOOKS)
        .chain(KILL_HOOKS)
}

#[derive(Debug, thiserror::Error)]
pub enum LoaderError {
    #[error(transparent)]
    Preflight(#[from] PreflightError),
    #[error(transparent)]
    Offsets(#[from] OffsetError),
    #[error(transparent)]
    Cgroup(#[from] CgroupError),
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
        "the kernel refuses BPF LSM programs (loading `{program}` for {hook} failed with EPERM) although `bpf` is an active LSM: BPF trampolines are disabled on this kernel"
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
    #[error("program `{program}` needs the cgroup v2 root, and none was found")]
    NoCgroupRoot { program: &'static str },
    #[error(
        "nothing on this kernel can confine processes: {reasons} (run `corral doctor` for the fixes)"
    )]
    NoBackend { reasons: String },
    #[error(transparent)]
    Rules(#[from] RulesError),
    #[error(transparent)]
    Pin(#[from] PinError),
    #[error("cannot take the link of program `{program}`: {reason}")]
    Link {
        program: &'static str,
        reason: String,
    },
}

/// The loaded object with its programs attached. Dropping it detaches them.
pub struct Loaded {
    /// Owns the programs.
    pub ebpf: Ebpf,
    /// The pinned links: enforcement outlives the daemon until `corral unload`.
    pub links: Vec<aya::programs::links::PinnedLink>,
    /// Whether maps of an earlier daemon were found and reused.
    pub adopted: bool,
    pub maps: RuleMaps,
    pub selectors: SelectorMaps,
    pub instances: InstanceMaps,
    /// Run-time settings of the programs (`SETTINGS`).
    pub settings: SettingsMap,
    /// DNS learning: `DNS_PROXY`, `DNS_LEARN`, `DNS_ORIGINS`.
    pub dns: DnsMaps,
    pub events: aya::maps::RingBuf<aya::maps::MapData>,
    /// What enforces each operation.
    pub backends: Backends,
    /// The programs attached, in attach order.
    pub attached: Vec<HookSpec>,
    /// Whether `file_open` remembers allowed decisions here.
    pub open_cache: OpenCacheState,
}

/// The kernel's BTF, for aya, with a path in the error.
fn parse_btf(btf_path: &Path) -> Result<Btf, LoaderError> {
    Btf::parse_file(btf_path, aya::Endianness::default()).map_err(|source| LoaderError::Btf {
        path: btf_path.to_owned(),
        source,
    })
}

/// Loads the object with `offsets` as its read-only configuration (no program loaded yet), then
/// parses the kernel BTF at `btf_path` the programs attach by. With `pins`, the maps an earlier
/// daemon pinned there are reused and new ones are pinned.
///
/// aya wants the kernel BTF at load only for CO-RE relocations, and the object has none
/// (`layout_tests::the_object_has_no_co_re_relocations`: offsets come from `KernelOffsets`), so
/// the object loads without one: the parse `EbpfLoader::new` makes of /sys/kernel/btf/vmlinux
/// is dropped at once, and ours (about 14 MiB resident, twice that while parsing) starts only
/// once the object's parse is over, so they never add up at the loading peak.
fn load_object(
    btf_path: &Path,
    offsets: &KernelOffsets,
    cache: &DecisionCacheConfig,
    pins: Option<&PinDir>,
) -> Result<(Btf, Ebpf), LoaderError> {
    let paths: Vec<(&str, PathBuf)> = pins
        .map(|p| PinDir::pinned_maps().map(|m| (m, p.map(m))).collect())
        .unwrap_or_default();
    let ebpf = {
        let mut loader = EbpfLoader::new();
        loader
            .btf(None)
            .override_global(names::OFFSETS, offsets, true)
            .override_global(names::DECISION_CACHE, cache, true)
            .map_max_entries(names::TAGGED, tagged::entries());
        for (name, path) in &paths {
            loader.map_pin_path(name, path.as_path());
        }
        loader
            .load(EBPF_OBJECT)
            .map_err(|source| LoaderError::Object { source })?
    };
    Ok((parse_btf(btf_path)?, ebpf))
}

/// The open-decision cache's configuration, or zeros (off, every open judged in full) with a
/// warning saying why.
fn open_decision_cache(btf_path: &Path) -> (DecisionCacheConfig, OpenCacheState) {
    match decision_cache::config(Path::new(decision_cache::KALLSYMS), btf_path) {
        Ok(cache) => {
            tracing::info!(
                "open-decision cache on: re-opens of allowed files are not re-judged until a rename or mount change"
            );
            (cache, OpenCacheState::On)
        }
        Err(e) => {
            tracing::warn!(
                "open-decision cache off (every open is judged in full, which is slower): {e:#}"
            );
            let reason = format!("{e:#}");
            (
                DecisionCacheConfig::default(),
                OpenCacheState::Off { reason },
            )
        }
    }
}

/// Loads and attaches the programs of the backends `probe` found, or explains why nothing can
/// confine processes here.
pub fn load(btf_path: &Path, probe: &Probe, pins: &PinDir) -> Result<Loaded, LoaderError> {
    let backends = probe.backends();
    if !probe.caps.tp_btf {
        return Err(LoaderError::NoBackend {
            reasons: probe.summary(),
        });
    }
    let mut offsets = read_offsets(btf_path)?;
    offsets.lsm_connect = u32::from(probe.caps.lsm);
    // The cgroup programs are attached exactly when the probe found them working (below): a
    // failed attach fails the whole load, so the LSM never leaves connects to absent programs.
    offsets.inet_by_cgroup = u32::from(probe.caps.sock_addr);
    offsets.kill_observer = u32::from(!probe.caps.lsm);
    let (cache, open_cache) = if probe.caps.lsm {
        open_decision_cache(btf_path)
    } else {
        (DecisionCacheConfig::default(), OpenCacheState::NotUsed)
    };
    let adopted = pins.prepare()?;
    let (btf, mut ebpf) = load_object(btf_path, &offsets, &cache, Some(pins))?;
    let mut plan: Vec<HookSpec> = TAGGING_HOOKS.to_vec();
    if probe.caps.lsm {
        plan.extend(LSM_HOOKS);
    } else {
        plan.extend(KILL_HOOKS);
    }
    let cgroup_root = if probe.caps.sock_addr {
        plan.extend(SOCK_ADDR_HOOKS);
        Some(cgroup::cgroup2_root()?)
    } else {
        None
    };
    // New programs first, old ones (an earlier daemon's) detached after: no gap.
    let mut new_links = Vec::with_capacity(plan.len());
    for spec in &plan {
        let started = std::time::Instant::now();
        let link = attach(&mut ebpf, &btf, *spec, cgroup_root.as_deref())?;
        if tracing::enabled!(tracing::Level::DEBUG) {
            // One `BPF_OBJ_GET_INFO_BY_FD` per program, only when the line is logged.
            let info = ebpf.program(spec.program).and_then(|p| p.info().ok());
            tracing::debug!(
                program = spec.program,
                hook = spec.hook,
                ms = started.elapsed().as_millis(),
                verified_insns = info
                    .as_ref()
                    .and_then(aya::programs::ProgramInfo::verified_instruction_count),
                translated_bytes = info
                    .as_ref()
                    .and_then(aya::programs::ProgramInfo::size_translated),
                "loaded and attached"
            );
        }
        new_links.push((spec.program, link));
    }
    let old_links = pins.take_old_links();
    let mut links = Vec::with_capacity(new_links.len());
    for (program, link) in new_links {
        links.push(pins.pin_link(program, link)?);
    }
    if adopted || !old_links.is_empty() {
        tracing::info!(
            pin_dir = %pins.path().display(),
            replaced_links = old_links.len(),
            "adopted the pinned state of an earlier daemon"
        );
    }
    drop(old_links);
    // The parsed kernel BTF is the bulk of the loading peak: freed and handed back before the
    // event ring buffer (mapped by `RuleMaps::take`, 2 × `EVENTS_RING_BYTES` resident) adds
    // to the resident size.
    drop(btf);
    heap::release_freed();
    let (maps, events) = RuleMaps::take(&mut ebpf)?;
    // The earlier generation's programs are detached: every tag from here on is marked by ours
    // (attached above) or by the daemon, so the processes tagged so far are all that is left.
    let marked = maps.complete_tagged()?;
    tracing::debug!(marked, "untagged fast path on");
    let selectors = SelectorMaps::take(&mut ebpf)?;
    let instances = InstanceMaps::take(&mut ebpf)?;
    let settings = SettingsMap::take(&mut ebpf)?;
    let dns = DnsMaps::take(&mut ebpf)?;
    Ok(Loaded {
        instances,
        settings,
        dns,
        ebpf,
        links,
        adopted,
        maps,
        selectors,
        events,
        backends,
        attached: plan,
        open_cache,
    })
}

fn attach(
    ebpf: &mut Ebpf,
    btf: &Btf,
    spec: HookSpec,
    cgroup_root: Option<&Path>,
) -> Result<FdLink, LoaderError> {
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
    let link_err = |e: &dyn std::fmt::Display| LoaderError::Link {
        program,
        reason: e.to_string(),
    };
    let link = match kind {
        HookKind::Lsm => {
            let p: &mut Lsm = prog.try_into().map_err(type_err)?;
            p.load(hook, btf).map_err(load_err)?;
            let id = p.attach().map_err(attach_err)?;
            let link = p.take_link(id).map_err(|e| link_err(&e))?;
            FdLink::from(link)
        }
        HookKind::BtfTracepoint => {
            let p: &mut BtfTracePoint = prog.try_into().map_err(type_err)?;
            p.load(hook, btf).map_err(load_err)?;
            let id = p.attach().map_err(attach_err)?;
            let link = p.take_link(id).map_err(|e| link_err(&e))?;
            FdLink::from(link)
        }
        HookKind::CgroupSockAddr => {
            let root = cgroup_root.ok_or(LoaderError::NoCgroupRoot { program })?;
            let cgroup = cgroup::open(root)?;
            let p: &mut CgroupSockAddr = prog.try_into().map_err(type_err)?;
            p.load().map_err(load_err)?;
            // On kernels with BPF links (≥ 5.7, all we support) aya attaches through a link, and
            // cgroup links always behave as multi-attach: other tools' programs keep running,
            // and a program attached lower in the tree runs in addition to ours, never instead.
            // The link API refuses the explicit ALLOW_MULTI flag, hence `Single`.
            let id = p
                .attach(&cgroup, CgroupAttachMode::Single)
                .map_err(attach_err)?;
            let link = p.take_link(id).map_err(|e| link_err(&e))?;
            FdLink::try_from(link).map_err(|e| link_err(&e))?
        }
    };
    Ok(link)
}

fn is_eperm(err: &ProgramError) -> bool {
    match err {
        ProgramError::LoadError { io_error, .. } => io_error.raw_os_error() == Some(libc::EPERM),
        ProgramError::SyscallError(e) => e.io_error.raw_os_error() == Some(libc::EPERM),
        _ => false,
    }
}
