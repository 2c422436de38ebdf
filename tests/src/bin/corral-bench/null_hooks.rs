//! Configuration C1, the floor: a program that returns at once (`r0 = verdict; exit`) on every
//! hook the daemon attaches on this kernel (its plan in `agent::loader::load`: the tagging
//! tracepoints, the BPF LSM hooks where the kernel runs them and else the kill observer, the
//! cgroup `sock_addr` programs), loaded with raw `bpf(2)` calls so the daemon's object and
//! attach path stay untouched. Held until stdin closes; links close (and
//! the programs detach) when this process exits.
use std::io::Read as _;
use std::os::fd::{FromRawFd as _, OwnedFd};

use agent::loader::{HookKind, HookSpec, KILL_HOOKS, LSM_HOOKS, SOCK_ADDR_HOOKS, TAGGING_HOOKS};
use aya::Btf;
use aya_obj::btf::BtfKind;

const BPF_PROG_LOAD: libc::c_long = 5;
const BPF_RAW_TRACEPOINT_OPEN: libc::c_long = 17;
const BPF_LINK_CREATE: libc::c_long = 28;
const PROG_TYPE_CGROUP_SOCK_ADDR: u32 = 18;
const PROG_TYPE_TRACING: u32 = 26;
const PROG_TYPE_LSM: u32 = 29;
const ATTACH_TRACE_RAW_TP: u32 = 23;
const ATTACH_LSM_MAC: u32 = 27;

/// The prefix of `union bpf_attr` for `BPF_PROG_LOAD`, up to `attach_btf_id` (kernel ABI).
#[repr(C)]
#[derive(Default)]
struct ProgLoad {
    prog_type: u32,
    insn_cnt: u32,
    insns: u64,
    license: u64,
    log_level: u32,
    log_size: u32,
    log_buf: u64,
    kern_version: u32,
    prog_flags: u32,
    prog_name: [u8; 16],
    prog_ifindex: u32,
    expected_attach_type: u32,
    prog_btf_fd: u32,
    func_info_rec_size: u32,
    func_info: u64,
    func_info_cnt: u32,
    line_info_rec_size: u32,
    line_info: u64,
    line_info_cnt: u32,
    attach_btf_id: u32,
    attach_prog_fd: u32,
    pad: u32,
}

fn bpf<T>(cmd: libc::c_long, attr: &T, what: &str) -> Result<OwnedFd, String> {
    // SAFETY: `attr` is a properly laid out, zero-padded bpf_attr prefix of the size given.
    let fd = unsafe {
        libc::syscall(
            libc::SYS_bpf,
            cmd,
            std::ptr::from_ref(attr),
            size_of::<T>() as libc::c_uint,
        )
    };
    if fd < 0 {
        return Err(format!("{what}: {}", std::io::Error::last_os_error()));
    }
    // SAFETY: the kernel returned a new descriptor that we own.
    Ok(unsafe { OwnedFd::from_raw_fd(fd as i32) })
}

/// `cgroup_sock_addr` attach types by the daemon's hook names.
fn cgroup_attach_type(hook: &str) -> Option<u32> {
    match hook {
        "connect4" => Some(10),
        "connect6" => Some(11),
        "sendmsg4" => Some(14),
        "sendmsg6" => Some(15),
        "recvmsg4" => Some(19),
        "recvmsg6" => Some(20),
        _ => None,
    }
}

/// The cgroup v2 mount (`/sys/fs/cgroup` or, in the hybrid layout, `/sys/fs/cgroup/unified`).
fn cgroup2_root() -> Result<String, String> {
    let mounts = std::fs::read_to_string("/proc/self/mounts")
        .map_err(|e| format!("/proc/self/mounts: {e}"))?;
    mounts
        .lines()
        .find_map(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, kind) = (f.next(), f.next()?, f.next()?);
            (kind == "cgroup2").then(|| dir.to_owned())
        })
        .ok_or_else(|| "no cgroup2 mount in /proc/self/mounts".to_owned())
}

/// Loads and attaches one null program; returns its link (and the program) to hold.
fn attach(spec: HookSpec, btf: &Btf, cgroup: Option<&OwnedFd>) -> Result<Vec<OwnedFd>, String> {
    use std::os::fd::AsRawFd as _;
    let what = format!("{} {}", spec.kind.as_str(), spec.hook);
    let (prog_type, attach_type, btf_id, verdict) = match spec.kind {
        HookKind::Lsm => {
            let name = format!("bpf_lsm_{}", spec.hook);
            let id = btf
                .id_by_type_name_kind(&name, BtfKind::Func)
                .map_err(|e| format!("{what}: BTF {name}: {e}"))?;
            (PROG_TYPE_LSM, ATTACH_LSM_MAC, id, 0)
        }
        HookKind::BtfTracepoint => {
            let name = format!("btf_trace_{}", spec.hook);
            let id = btf
                .id_by_type_name_kind(&name, BtfKind::Typedef)
                .map_err(|e| format!("{what}: BTF {name}: {e}"))?;
            (PROG_TYPE_TRACING, ATTACH_TRACE_RAW_TP, id, 0)
        }
        HookKind::CgroupSockAddr => {
            let kind = cgroup_attach_type(spec.hook)
                .ok_or_else(|| format!("{what}: unknown cgroup attach type"))?;
            (PROG_TYPE_CGROUP_SOCK_ADDR, kind, 0, 1u32)
        }
    };
    // r0 = verdict; exit
    let insns: [u64; 2] = [0xb7 | (u64::from(verdict) << 32), 0x95];
    let license = c"GPL";
    // `null_<hook>`, cut to the kernel's 15 characters, so BPF statistics can tell them apart.
    let mut name = [0u8; 16];
    let full = format!("null_{}", spec.hook);
    let len = full.len().min(15);
    name[..len].copy_from_slice(&full.as_bytes()[..len]);
    let load = ProgLoad {
        prog_type,
        insn_cnt: 2,
        insns: insns.as_ptr() as u64,
        license: license.as_ptr() as u64,
        prog_name: name,
        expected_attach_type: attach_type,
        attach_btf_id: btf_id,
        ..ProgLoad::default()
    };
    let prog = bpf(BPF_PROG_LOAD, &load, &format!("{what}: load"))?;
    let link = if let Some(cgroup) = cgroup.filter(|_| spec.kind == HookKind::CgroupSockAddr) {
        // struct { prog_fd, target_fd, attach_type, flags } of BPF_LINK_CREATE.
        let attr: [u32; 4] = [
            prog.as_raw_fd() as u32,
            cgroup.as_raw_fd() as u32,
            attach_type,
            0,
        ];
        bpf(BPF_LINK_CREATE, &attr, &format!("{what}: link"))?
    } else {
        // struct { name (NULL: the program's attach_btf_id), prog_fd } of RAW_TRACEPOINT_OPEN.
        let attr: [u64; 2] = [0, prog.as_raw_fd() as u64];
        bpf(BPF_RAW_TRACEPOINT_OPEN, &attr, &format!("{what}: attach"))?
    };
    Ok(vec![prog, link])
}

/// Attaches a null program to every hook the daemon attaches on this kernel (where the kernel
/// refuses the LSM hooks, the kill observer instead, exactly as the daemon falls back), prints
/// `ready N`, and holds them until stdin reaches end of file.
pub fn hold() -> Result<(), String> {
    let btf = Btf::from_sys_fs().map_err(|e| format!("vmlinux BTF: {e}"))?;
    let root = cgroup2_root()?;
    let cgroup = std::fs::File::open(&root).map_err(|e| format!("{root}: {e}"))?;
    let cgroup = OwnedFd::from(cgroup);
    let mut held = Vec::new();
    let mut attached = Vec::new();
    let mut refused = Vec::new();
    let mut lsm_attached = 0;
    for spec in TAGGING_HOOKS
        .into_iter()
        .chain(LSM_HOOKS)
        .chain(SOCK_ADDR_HOOKS)
    {
        match attach(spec, &btf, Some(&cgroup)) {
            Ok(fds) => {
                held.extend(fds);
                attached.push(spec.hook);
                lsm_attached += usize::from(spec.kind == HookKind::Lsm);
            }
            Err(e) if spec.kind == HookKind::Lsm => refused.push(e),
            Err(e) => return Err(e),
        }
    }
    // The daemon attaches the kill observer only where BPF LSM does not run.
    if lsm_attached == 0 {
        for spec in KILL_HOOKS {
            held.extend(attach(spec, &btf, Some(&cgroup))?);
            attached.push(spec.hook);
        }
    }
    println!(
        "{}",
        serde_json::json!({"ready": attached.len(), "attached": attached, "refused": refused})
    );
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    drop(held);
    Ok(())
}
