//! Every map of the object: key, value, bound, and why it exists.

use agent_common::{AllowedEvents, SETTINGS_MAX, Settings};
use agent_common::{
    CGROUP_SELECTORS_MAX, CgroupPathData, EXEC_SELECTORS_MAX, INSTANCES_MAX, InodeKey, InstanceInfo,
};
use agent_common::{
    CONNECT_SEEN_MAX, COUNTER_SLOTS, ConnectSeen, EVENTS_RING_BYTES, EXES_MAX, ExePath,
    FILE_RULES_MAX, FileRuleData, FileRuleKeyScratch, KernelOffsets, NET_RULES_MAX, NetV4Data,
    NetV6Data, PortSet, TAGS_MAX, TASKS_MAX, TaskConfig, TaskTag, UNIX_RULES_MAX, UnixRuleKey,
};
use agent_common::{
    DENIED_INODES_MAX, DNS_LEARN_MAX, DNS_ORIGINS_MAX, DNS_PROXY_MAX, DeniedInodeKey, DnsOrigin,
    DnsProxy,
};
use agent_common::{DecisionCacheConfig, OPEN_DECISIONS_MAX, OpenDecisionKey, OpenDecisionStamp};
use aya_ebpf::{
    bindings::BPF_F_MMAPABLE,
    helpers::bpf_get_prandom_u32,
    macros::map,
    maps::{Array, HashMap, LpmTrie, LruHashMap, PerCpuArray, RingBuf},
};

/// Kernel struct field offsets, written by the daemon from the running kernel's BTF before load.
/// `.rodata` is frozen at load, so the verifier sees each field as a constant.
#[unsafe(no_mangle)]
pub static OFFSETS: KernelOffsets = KernelOffsets {
    file_f_path: 0,
    file_f_mode: 0,
    file_f_flags: 0,
    binprm_file: 0,
    socket_type: 0,
    task_pid: 0,
    task_tgid: 0,
    task_real_parent: 0,
    task_signal: 0,
    signal_live: 0,
    valid: 0,
    lsm_connect: 0,
    file_f_inode: 0,
    inode_i_ino: 0,
    inode_i_sb: 0,
    sb_s_dev: 0,
    task_cgroups: 0,
    css_set_dfl_cgrp: 0,
    cgroup_kn: 0,
    cgroup_root: 0,
    cgroup_root_hierarchy_id: 0,
    kernfs_node_parent: 0,
    kernfs_node_name: 0,
    path_mnt: 0,
    path_dentry: 0,
    dentry_d_parent: 0,
    dentry_name_len: 0,
    dentry_name_ptr: 0,
    mount_mnt: 0,
    mount_mnt_parent: 0,
    mount_mnt_mountpoint: 0,
    vfsmount_mnt_root: 0,
    task_files: 0,
    files_fdt: 0,
    fdtable_fd: 0,
    fdtable_max_fds: 0,
    regs_orig_ax: 0,
    regs_di: 0,
    regs_si: 0,
    regs_dx: 0,
    kill_observer: 0,
    vma_vm_file: 0,
    vma_vm_flags: 0,
    dentry_d_name: 0,
    inode_i_nlink: 0,
    msghdr_msg_name: 0,
    msghdr_msg_namelen: 0,
    mount_mnt_ns: 0,
    task_nsproxy: 0,
    nsproxy_mnt_ns: 0,
    inode_i_generation: 0,
    sb_s_magic: 0,
    task_fs: 0,
    fs_struct_root: 0,
    inet_by_cgroup: 0,
    socket_sk: 0,
    sock_sk_protocol: 0,
    sock_family: 0,
    regs_bx: 0,
    regs_cx: 0,
    task_ti_status: 0,
    reserved: 0,
};

/// Where the kernel's `rename_lock` and `mount_lock` are (see `DecisionCacheConfig`), written by
/// the daemon before load; zeros keep the open-decision cache off.
#[unsafe(no_mangle)]
pub static DECISION_CACHE: DecisionCacheConfig = DecisionCacheConfig {
    rename_lock: 0,
    mount_lock: 0,
};

/// Reads `DECISION_CACHE` through a volatile load so the compiler cannot fold the zeros.
#[inline(always)]
pub fn decision_cache_config() -> DecisionCacheConfig {
    // SAFETY: a valid static; the volatile read only stops constant folding.
    unsafe { core::ptr::read_volatile(&raw const DECISION_CACHE) }
}

/// The offsets, through a pointer the compiler cannot see the origin of (`black_box`), so it
/// cannot fold the zero initialiser; each field a hook uses is one load from the frozen map
/// value, which the verifier reads as a constant. (A volatile read of the whole struct cost 54
/// loads at every call, on every hook of a confined process.)
#[inline(always)]
pub fn offsets() -> &'static KernelOffsets {
    // SAFETY: `OFFSETS` is a valid static, written only by the loader before the programs load.
    unsafe { &*core::hint::black_box(&raw const OFFSETS) }
}

/// Key: `OpenDecisionKey`. Value: `OpenDecisionStamp`. Bound: `OPEN_DECISIONS_MAX`, least
/// recently used first out. Why: a confined process re-opening a file it was allowed to open is
/// not judged again while nothing its path depends on changed (see `decision_cache`). Not pinned:
/// each generation of programs starts empty.
#[map(name = "OPEN_DECISIONS")]
pub static OPEN_DECISIONS: LruHashMap<OpenDecisionKey, OpenDecisionStamp> =
    LruHashMap::with_max_entries(OPEN_DECISIONS_MAX, 0);

/// Key: tgid (u32). Value: `TaskTag`. Bound: `TAGS_MAX` processes.
/// Why: the one look-up every hook starts with; a process without an entry is not watched.
/// Written by the daemon (`corral run`) and by the fork hook; entries leave with the last thread.
#[map(name = "TAGS")]
pub static TAGS: HashMap<u32, TaskTag> = HashMap::with_max_entries(TAGS_MAX, 0);

/// Key: entry index (u32): 0 the header, `1 + tgid / 8` the bytes of 8 tgids. Value: u64, one
/// byte per tgid, non-zero when the process may have a `TAGS` entry. Bound: set at load from
/// `pid_max` (at most `TAGGED_TGIDS_MAX / 8 + 1` entries, 4 MiB); mmapable, so the daemon sets a
/// byte with a plain store, never a read-modify-write of a word the programs write too.
/// Why: untagged processes leave every hook after an inlined array look-up instead of a hash
/// look-up (see `tagged`). Not pinned: each generation of programs starts with a zero header
/// and trusts its bytes only once its daemon has marked every tagged process.
#[map(name = "TAGGED")]
pub static TAGGED: Array<u64> = Array::with_max_entries(1, BPF_F_MMAPABLE);

/// Key: task id (u32). Value: `TaskConfig` (mode). Bound: `TASKS_MAX` tasks.
/// Why: the per-task switch between enforce and audit. A tagged process whose task has no entry
/// is denied everything.
#[map(name = "TASKS")]
pub static TASKS: HashMap<u32, TaskConfig> = HashMap::with_max_entries(TASKS_MAX, 0);

/// Key: LPM {task id, path bytes}. Value: u32 `RULE_*` flags, already merged with the flags of
/// every shorter prefix rule of the same task. Bound: `FILE_RULES_MAX` entries.
/// Why: one longest-prefix look-up decides an open or exec, however many rules a task has.
#[map(name = "FILE_RULES")]
pub static FILE_RULES: LpmTrie<FileRuleData, u32> = LpmTrie::with_max_entries(FILE_RULES_MAX, 0);

/// Key: LPM {task id, IPv4 address}. Value: `PortSet` allowed under that CIDR (merged with every
/// containing CIDR's ports). Bound: `NET_RULES_MAX`. Why: connect rules without a loop over rules.
#[map(name = "NET_V4_RULES")]
pub static NET_V4_RULES: LpmTrie<NetV4Data, PortSet> = LpmTrie::with_max_entries(NET_RULES_MAX, 0);

/// As `NET_V4_RULES`, for IPv6 destinations (IPv4-mapped ones are judged by `NET_V4_RULES`).
#[map(name = "NET_V6_RULES")]
pub static NET_V6_RULES: LpmTrie<NetV6Data, PortSet> = LpmTrie::with_max_entries(NET_RULES_MAX, 0);

/// Key: `UnixRuleKey` {task id, address}. Value: u32, 1. Bound: `UNIX_RULES_MAX`.
/// Why: `AF_UNIX` connects (docker.sock is root on the host) are allowed only to listed addresses.
#[map(name = "UNIX_RULES")]
pub static UNIX_RULES: HashMap<UnixRuleKey, u32> = HashMap::with_max_entries(UNIX_RULES_MAX, 0);

/// Ring buffer of `Event` records, `EVENTS_RING_BYTES` bytes. Why: every miss reaches userspace;
/// when it is full the loss is counted in `COUNTERS[COUNTER_EVENTS_DROPPED]`, never silent.
#[map(name = "EVENTS")]
pub static EVENTS: RingBuf = RingBuf::with_byte_size(EVENTS_RING_BYTES, 0);

/// Key: slot (see `agent_common::counter_index`). Value: u64 per CPU. Bound: `COUNTER_SLOTS`.
/// Why: decision and drop counters for `corral status` without an event per allowed operation.
#[map(name = "COUNTERS")]
pub static COUNTERS: PerCpuArray<u64> = PerCpuArray::with_max_entries(COUNTER_SLOTS, 0);

/// Key: 0. Value: `FileRuleKeyScratch` (4 KiB path + LPM header), per CPU. Bound: 1.
/// Why: `bpf_d_path` needs a 4096-byte buffer, far beyond the 512-byte BPF stack; the same
/// buffer doubles as the `FILE_RULES` look-up key.
#[map(name = "PATH_SCRATCH")]
pub static PATH_SCRATCH: PerCpuArray<FileRuleKeyScratch> = PerCpuArray::with_max_entries(1, 0);

/// Key: tgid (u32). Value: `ExePath`, the executable a confined process last exec'd (copied to
/// children at fork). Bound: `EXES_MAX`, LRU. Why: events name the executable even when the
/// process has exited before the daemon reads `/proc`. Informational only: no decision reads it.
#[map(name = "EXES")]
pub static EXES: LruHashMap<u32, ExePath> = LruHashMap::with_max_entries(EXES_MAX, 0);

/// Key: 0. Value: `ExePath`, per CPU. Bound: 1. Why: staging for an `EXES` update (a 264-byte
/// value does not fit the BPF stack next to the hook's other locals).
#[map(name = "EXE_SCRATCH")]
pub static EXE_SCRATCH: PerCpuArray<ExePath> = PerCpuArray::with_max_entries(1, 0);

/// Key: thread id (u32). Value: `ConnectSeen`, the destination the LSM connect hook last judged
/// for that thread in audit mode. Bound: `CONNECT_SEEN_MAX`, LRU. Why: the cgroup connect
/// programs see the same connect again and must not report it twice, while still reporting TCP
/// Fast Open connects, which skip the LSM. Only read in audit mode: never a reason to allow.
#[map(name = "CONNECT_SEEN")]
pub static CONNECT_SEEN: LruHashMap<u32, ConnectSeen> =
    LruHashMap::with_max_entries(CONNECT_SEEN_MAX, 0);

/// Key: `InodeKey` {device, inode} of an executable. Value: u32 task id. Bound:
/// `EXEC_SELECTORS_MAX`. Why: an untagged process that execs a selected file joins the task
/// (`selector.executables`); judged by the file's identity, so links and renames cannot dodge it.
#[map(name = "EXEC_SELECTORS")]
pub static EXEC_SELECTORS: HashMap<InodeKey, u32> =
    HashMap::with_max_entries(EXEC_SELECTORS_MAX, 0);

/// Key: LPM {cgroup v2 path}. Value: u32 task id. Bound: `CGROUP_SELECTORS_MAX` (two entries per
/// selector: the cgroup itself and everything below it). Why: processes that enter a selected
/// cgroup, or are created in one, join the task (`selector.cgroups`).
#[map(name = "CGROUP_SELECTORS")]
pub static CGROUP_SELECTORS: LpmTrie<CgroupPathData, u32> =
    LpmTrie::with_max_entries(CGROUP_SELECTORS_MAX, 0);

/// Key: instance (u32). Value: `InstanceInfo`. Bound: `INSTANCES_MAX`. Why: a `corral run`'s
/// expiry (`--ttl`), checked by every hook for the instance's processes, and its parent for
/// events. Written by the daemon only.
#[map(name = "INSTANCES")]
pub static INSTANCES: HashMap<u32, InstanceInfo> = HashMap::with_max_entries(INSTANCES_MAX, 0);

/// Key: 0. Value: `Settings`. Bound: `SETTINGS_MAX` (1). Why: run-time settings the daemon
/// changes without reloading the programs (`events.allowed`, `events.allowed_sample`), written at
/// start and on every configuration reload. Pinned: a killed daemon's settings stay in force.
#[map(name = "SETTINGS")]
pub static SETTINGS: Array<Settings> = Array::with_max_entries(SETTINGS_MAX, 0);

/// Key: `DeniedInodeKey` {rules id, device, inode}. Value: u32, `IDENTITY_DENIED`. Bound:
/// `DENIED_INODES_MAX`. Why: a hard link made by an unconfined process gives a denied file a
/// second path a task may be allowed; the file's identity is denied whatever path reaches it.
/// Looked up only for files with more than one link, after the path was allowed; a missing key
/// allows (the path decision stands). Keyed by rules id, switched with the rest by a reload.
#[map(name = "DENIED_INODES")]
pub static DENIED_INODES: HashMap<DeniedInodeKey, u32> =
    HashMap::with_max_entries(DENIED_INODES_MAX, 0);

/// Whether this allowed decision of a tagged process becomes an event: never with
/// `AllowedEvents::None` (the default, also when the entry cannot be read), always with `All`,
/// with `Sampled` one in `allowed_sample` on average (`bpf_get_prandom_u32`), decided here so the
/// ring buffer never carries what would be dropped. Draws the random number once per call.
#[inline(always)]
pub fn allowed_event_wanted() -> bool {
    let Some(s) = SETTINGS.get(0) else {
        return false;
    };
    if s.allowed_events == AllowedEvents::All as u32 {
        return true;
    }
    if s.allowed_events != AllowedEvents::Sampled as u32 {
        return false;
    }
    let every = s.allowed_sample;
    // SAFETY: the helper only returns a number.
    every <= 1 || unsafe { bpf_get_prandom_u32() } % every == 0
}

/// Whether no allowed decision becomes an event (`AllowedEvents::None`, or no entry): what the
/// open-decision cache needs, since a remembered decision has no path to report.
#[inline(always)]
pub fn allowed_events_off() -> bool {
    SETTINGS
        .get(0)
        .is_none_or(|s| s.allowed_events == AllowedEvents::None as u32)
}

/// Adds one to a counter slot.
#[inline(always)]
pub fn count(slot: u32) {
    if let Some(p) = COUNTERS.get_ptr_mut(slot) {
        // SAFETY: per-CPU slot, no concurrent writer on this CPU.
        unsafe { *p += 1 };
    }
}

/// Key: 0. Value: `DnsProxy`. Bound: one entry.
/// Why: where `connect4/6` and `sendmsg4/6` redirect the DNS of learning tasks; written by the
/// daemon when its proxy listens, zeroed when it stops (DNS of learning tasks then fails closed).
#[map(name = "DNS_PROXY")]
pub static DNS_PROXY: Array<DnsProxy> = Array::with_max_entries(DNS_PROXY_MAX, 0);

/// Key: socket cookie (u64). Value: `DnsOrigin`. Bound: `DNS_ORIGINS_MAX` sockets (LRU).
/// Why: the server a redirected socket meant to ask, for the proxy (to forward) and `recvmsg4/6`
/// (to give the answer the server's source address). Written by the redirecting programs.
#[map(name = "DNS_ORIGINS")]
pub static DNS_ORIGINS: LruHashMap<u64, DnsOrigin> =
    LruHashMap::with_max_entries(DNS_ORIGINS_MAX, 0);

/// Key: task id (u32). Value: 1. Bound: `DNS_LEARN_MAX` tasks.
/// Why: the tasks whose DNS goes through the proxy (those with `host` rules); written by the
/// daemon with each task's policy. Other tasks' DNS is judged and sent as before.
#[map(name = "DNS_LEARN")]
pub static DNS_LEARN: HashMap<u32, u32> = HashMap::with_max_entries(DNS_LEARN_MAX, 0);
