//! Keys and values of the eBPF maps, and the read-only globals the daemon fills in at load.

/// Longest path `bpf_d_path` can return, including the NUL. Longer paths make it fail with
/// `-ENAMETOOLONG`, which the hooks treat as a miss (deny), never as a truncated match.
pub const PATH_MAX: usize = 4096;

/// Bytes of path in a file-rule key. LPM trie keys are at most 256 data bytes and 4 of them hold
/// the task id, so rule paths are at most `RULE_PATH_MAX - 1` bytes (exact rules keep their NUL in
/// the key). Longer rule paths are rejected when a policy is compiled.
///
/// Looking up a longer path with only its first `RULE_PATH_MAX` bytes is still exact: a prefix
/// rule matches when the path starts with it, and an exact rule (which ends in NUL) can only match
/// a path of its own length.
pub const RULE_PATH_MAX: usize = 252;

/// Rule flag: the path may be opened for reading.
pub const RULE_READ: u32 = 1;
/// Rule flag: the path may be opened for writing.
pub const RULE_WRITE: u32 = 1 << 1;
/// Rule flag: the path may be executed (and exec-opened).
pub const RULE_EXEC: u32 = 1 << 2;
/// Rule flag: the path is denied whatever else matches (beats read, write and exec).
pub const RULE_DENY: u32 = 1 << 3;
/// Rule flag: a `files.deny` rule lies beneath this directory (set on the exact entry of every
/// ancestor directory of a deny rule). Renaming or exchanging that directory would carry the
/// denied path to a new name, so a rename is refused at either end carrying it. Opens ignore it.
pub const RULE_DENY_BENEATH: u32 = 1 << 4;

/// `PRIVILEGES` bit: `SOCK_RAW` and ICMP datagram ("ping") sockets of `AF_INET`/`AF_INET6` may
/// be created.
pub const PRIV_RAW_SOCKETS: u32 = 1;
/// `PRIVILEGES` bit: `AF_PACKET` sockets may be created.
pub const PRIV_PACKET_SOCKETS: u32 = 1 << 1;
/// `PRIVILEGES` bit: `AF_NETLINK` sockets may be created.
pub const PRIV_NETLINK: u32 = 1 << 2;
/// `PRIVILEGES` bit: `perf_event_open` may be called.
pub const PRIV_PERF_EVENTS: u32 = 1 << 3;
/// `PRIVILEGES` bit: a userfaultfd may be created.
pub const PRIV_USERFAULTFD: u32 = 1 << 4;
/// `PRIVILEGES` bit: sockets whose traffic no Corral hook judges may be created: every family
/// but `AF_UNIX`, `AF_INET`, `AF_INET6` (and the packet and netlink families, which have their
/// own bits), and inet sockets other than TCP, MPTCP, UDP and UDP-Lite (SCTP, DCCP, ...).
pub const PRIV_OTHER_SOCKETS: u32 = 1 << 5;
/// `PRIVILEGES` bit: an `io_uring` instance may be created where the fallback backends cannot
/// judge its operations (without BPF LSM; with it, every operation is judged and this bit is
/// not consulted).
pub const PRIV_IO_URING: u32 = 1 << 6;
/// Bound of `PRIVILEGES`: a current and a new rule set per task (during a reload).
pub const PRIVILEGES_MAX: u32 = 2 * TASKS_MAX;

/// Longest `sun_path` of an `AF_UNIX` address.
pub const UNIX_PATH_MAX: usize = 108;

/// Port ranges one network rule entry can hold (after the compiler merged the ranges of every
/// rule whose CIDR contains the entry's CIDR). More are rejected when a policy is compiled.
pub const PORT_RANGES_MAX: usize = 16;

/// Value of `TAGS` (key: u32 tgid). A process with an entry is confined by `task_id`.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskTag {
    /// Task id, the key of `TASKS`. A task id with no `TASKS` entry denies everything.
    pub task_id: u32,
    /// `TAG_*` bits: how the process joined and what else confines it. Inherited at fork.
    pub flags: u32,
    /// The task instance (one per `corral run`, a key of `INSTANCES`); 0 for processes that
    /// joined through a selector. Inherited at fork.
    pub instance: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Value of `INSTANCES` (key: u32 instance): one `corral run` of a task.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct InstanceInfo {
    /// `CLOCK_BOOTTIME` nanoseconds after which the instance's processes are denied everything
    /// (`--ttl`); 0 for no expiry.
    pub expires_ns: u64,
    /// Its task.
    pub task_id: u32,
    /// The instance that started it (`corral run` from inside another task); 0 for none.
    pub parent: u32,
}

/// Value of `SETTINGS` (key: u32 0, the only entry): run-time settings of the kernel programs,
/// written by the daemon at start and on every configuration reload (`SIGHUP`). Pinned, so a
/// killed daemon's last settings stay in force. A missing entry means the defaults (all zero).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct Settings {
    /// An `AllowedEvents` code: which allowed decisions of tagged processes become events.
    pub allowed_events: u32,
    /// With `AllowedEvents::Sampled`: one allowed decision in this many (on average, chosen with
    /// `bpf_get_prandom_u32`) becomes an event; 0 and 1 mean every one. At most
    /// `ALLOWED_SAMPLE_MAX`.
    pub allowed_sample: u32,
}

/// Bound of `SETTINGS`: one entry (key 0).
pub const SETTINGS_MAX: u32 = 1;
/// Largest `Settings::allowed_sample` (`events.allowed_sample`).
pub const ALLOWED_SAMPLE_MAX: u32 = 1 << 20;

/// Bound of `INSTANCES`.
pub const INSTANCES_MAX: u32 = 65_536;

/// `TaskTag::flags`: `corral run` applied the task's Landlock ruleset before it exec'd the agent,
/// so Landlock refuses exec and open (the after-the-fact kill observer leaves such processes alone
/// and only reports Landlock's refusals).
pub const TAG_LANDLOCK: u32 = 1;
/// `TaskTag::flags`: the process joined its task through a policy selector (executable or
/// cgroup), not through `corral run`.
pub const TAG_SELECTED: u32 = 1 << 1;
/// `TaskTag::flags`: the process's instance never expires, so the hooks skip its `INSTANCES`
/// look-up. Set by the daemon only for an instance created without a time limit; a tag without
/// it (an older daemon's) has its instance looked up.
pub const TAG_NO_EXPIRY: u32 = 1 << 2;

/// Key of `EXEC_SELECTORS`: the identity of an executable file, as the kernel sees it.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct InodeKey {
    /// `inode::i_ino`.
    pub ino: u64,
    /// `super_block::s_dev`, the kernel's `dev_t` encoding: `major << 20 | minor`.
    pub dev: u32,
    /// Reserved, zero.
    pub reserved: u32,
}

/// Bytes of a cgroup selector path, NUL included: the data of an LPM key is at most 256 bytes.
pub const CGROUP_PATH_MAX: usize = 256;

/// Data part of a `CGROUP_SELECTORS` LPM key: a cgroup v2 path relative to the hierarchy's root
/// (`/system.slice/x.service`). Each selector has two entries: the path with its NUL (the cgroup
/// itself) and the path with a `/` appended (every cgroup below it).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct CgroupPathData {
    pub path: [u8; CGROUP_PATH_MAX],
}

/// Bound of `EXEC_SELECTORS`.
pub const EXEC_SELECTORS_MAX: u32 = 1024;
/// Bound of `CGROUP_SELECTORS` (two entries per selector).
pub const CGROUP_SELECTORS_MAX: u32 = 2048;

/// Value of `TASKS` (key: u32 task id).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TaskConfig {
    /// A `Mode` code.
    pub mode: u32,
    /// The id the task's current rules are keyed by in `FILE_RULES`, `NET_V4_RULES`,
    /// `NET_V6_RULES` and `UNIX_RULES` (their `task_id` field). A reload writes the new rules
    /// under a fresh id, then switches this one value, so a hook sees either the old rule set or
    /// the new one, never a mix.
    pub rules_id: u32,
}

/// Data part of a `FILE_RULES` LPM key: the task id, then the path bytes.
///
/// Prefix rules (directory entries ending in `/`) use the prefix length of their bytes; exact
/// rules include their terminating NUL, so they only match the exact path.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FileRuleData {
    pub task_id: u32,
    pub path: [u8; RULE_PATH_MAX],
}

/// The per-CPU scratch a hook resolves a path into. Its first bytes are laid out exactly like an
/// `aya` LPM key of `FileRuleData` (`prefix_len`, `task_id`, path), so the buffer `bpf_d_path`
/// fills is the trie lookup key without a copy.
///
/// BPF LSM programs run with migration disabled but may be preempted (`preempt=full`), and a
/// program of another task on the same CPU may then reuse the buffer. Every user writes its
/// thread id to `owner` before anything else and checks it is still there after the look-up; a
/// changed owner means the decision may rest on someone else's path, and it becomes a miss.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct FileRuleKeyScratch {
    pub prefix_len: u32,
    pub task_id: u32,
    pub path: [u8; PATH_MAX],
    /// `bpf_get_current_pid_tgid()` of the program using the buffer.
    pub owner: u64,
}

/// Longest executable path kept per process for events (longer ones are cut and flagged).
pub const EXE_PATH_MAX: usize = 256;

/// Value of `EXES` (key: u32 tgid): the executable a confined process last exec'd.
#[repr(C)]
#[derive(Clone, Copy)]
pub struct ExePath {
    /// Full length of the path; more than `EXE_PATH_MAX` means `path` holds only its start.
    pub len: u32,
    /// Reserved, zero.
    pub reserved: u32,
    pub path: [u8; EXE_PATH_MAX],
}

/// Value of `CONNECT_SEEN` (key: u32 thread id): a destination the LSM connect hook judged.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ConnectSeen {
    /// Destination port, host byte order.
    pub port: u32,
    /// Destination address as in `Event::addr`.
    pub addr: [u8; 16],
}

/// Bound of `CONNECT_SEEN` (an LRU map).
pub const CONNECT_SEEN_MAX: u32 = 4096;

/// Bound of `EXES` (an LRU map: the oldest entries make room).
pub const EXES_MAX: u32 = 16_384;

/// Data part of a `NET_V4_RULES` LPM key.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetV4Data {
    pub task_id: u32,
    /// Address in network byte order.
    pub addr: [u8; 4],
}

/// Data part of a `NET_V6_RULES` LPM key.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct NetV6Data {
    pub task_id: u32,
    /// Address in network byte order.
    pub addr: [u8; 16],
}

/// An inclusive port range, host byte order.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct PortRange {
    pub lo: u16,
    pub hi: u16,
}

impl PortRange {
    /// A range no port falls in, for unused slots.
    pub const EMPTY: Self = Self { lo: 1, hi: 0 };
}

/// Value of the network LPM tries: the ports allowed to the addresses under the entry's CIDR.
/// The kernel checks all `PORT_RANGES_MAX` slots; slots past `count` must hold the empty range
/// `PortRange::EMPTY` (`RuleMaps::install_task` guarantees it).
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PortSet {
    /// Valid entries at the start of `ranges` (at most `PORT_RANGES_MAX`).
    pub count: u32,
    pub ranges: [PortRange; PORT_RANGES_MAX],
}

/// Key of `UNIX_RULES`: a task and a `sun_path`, zero padded. Pathname sockets hold the path
/// (no NUL); abstract sockets hold a leading NUL then the name.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnixRuleKey {
    pub task_id: u32,
    /// Bytes of `path` that are part of the address.
    pub len: u32,
    pub path: [u8; UNIX_PATH_MAX],
}

/// Struct field offsets of the running kernel, read from its BTF by the daemon and written into
/// the object's read-only `OFFSETS` global before load. Frozen `.rodata` lets the verifier treat
/// them as constants, which `bpf_d_path` and BTF pointer loads need.
#[repr(C)]
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct KernelOffsets {
    /// `struct file::f_path`.
    pub file_f_path: u32,
    /// `struct file::f_mode`.
    pub file_f_mode: u32,
    /// `struct file::f_flags`.
    pub file_f_flags: u32,
    /// `struct linux_binprm::file`.
    pub binprm_file: u32,
    /// `struct socket::type`.
    pub socket_type: u32,
    /// `struct task_struct::pid`.
    pub task_pid: u32,
    /// `struct task_struct::tgid`.
    pub task_tgid: u32,
    /// `struct task_struct::real_parent`.
    pub task_real_parent: u32,
    /// `struct task_struct::signal`.
    pub task_signal: u32,
    /// `struct signal_struct::live`.
    pub signal_live: u32,
    /// Non-zero once filled in; the hooks deny everything for tagged processes while it is zero.
    pub valid: u32,
    /// Non-zero when the LSM `socket_connect` hook is attached. It judges the inet connects of
    /// sockets the cgroup connect programs do not see (`inet_by_cgroup`); the cgroup programs
    /// then do not count again what it allowed.
    pub lsm_connect: u32,
    /// `struct file::f_inode`.
    pub file_f_inode: u32,
    /// `struct inode::i_ino`.
    pub inode_i_ino: u32,
    /// `struct inode::i_sb`.
    pub inode_i_sb: u32,
    /// `struct super_block::s_dev`.
    pub sb_s_dev: u32,
    /// `struct task_struct::cgroups` (the `css_set`).
    pub task_cgroups: u32,
    /// `struct css_set::dfl_cgrp` (the task's cgroup v2).
    pub css_set_dfl_cgrp: u32,
    /// `struct cgroup::kn`.
    pub cgroup_kn: u32,
    /// `struct cgroup::root`.
    pub cgroup_root: u32,
    /// `struct cgroup_root::hierarchy_id` (0 is the cgroup v2 hierarchy).
    pub cgroup_root_hierarchy_id: u32,
    /// `struct kernfs_node::parent` (`__parent` since 6.15).
    pub kernfs_node_parent: u32,
    /// `struct kernfs_node::name`.
    pub kernfs_node_name: u32,
    /// `struct vm_area_struct::vm_file`.
    pub vma_vm_file: u32,
    /// `struct vm_area_struct::vm_flags`.
    pub vma_vm_flags: u32,
    /// `struct path::mnt`.
    pub path_mnt: u32,
    /// `struct path::dentry`.
    pub path_dentry: u32,
    /// `struct dentry::d_parent`.
    pub dentry_d_parent: u32,
    /// `struct dentry::d_name` + `struct qstr::len`.
    pub dentry_name_len: u32,
    /// `struct dentry::d_name` + `struct qstr::name`.
    pub dentry_name_ptr: u32,
    /// `struct mount::mnt` (the embedded `vfsmount`).
    /// `struct dentry::d_name` (a `struct qstr`: `len` at +4, `name` at +8).
    pub dentry_d_name: u32,
    /// `struct mount::mnt` (the embedded `vfsmount`).
    pub mount_mnt: u32,
    /// `struct mount::mnt_parent`.
    pub mount_mnt_parent: u32,
    /// `struct mount::mnt_mountpoint`.
    pub mount_mnt_mountpoint: u32,
    /// `struct vfsmount::mnt_root`.
    pub vfsmount_mnt_root: u32,
    /// `struct task_struct::files`.
    pub task_files: u32,
    /// `struct files_struct::fdt`.
    pub files_fdt: u32,
    /// `struct fdtable::fd`.
    pub fdtable_fd: u32,
    /// `struct fdtable::max_fds`.
    pub fdtable_max_fds: u32,
    /// `struct pt_regs::orig_ax` (x86-64: the syscall number at `sys_exit`).
    pub regs_orig_ax: u32,
    /// `struct pt_regs::di` (first syscall argument).
    pub regs_di: u32,
    /// `struct pt_regs::si` (second syscall argument).
    pub regs_si: u32,
    /// `struct pt_regs::dx` (third syscall argument).
    pub regs_dx: u32,
    /// Non-zero when the kill observer is attached (no BPF LSM): tagged processes that Landlock
    /// does not confine are judged just after their exec and opens, and killed on a miss.
    pub kill_observer: u32,
    /// `struct inode::__i_nlink` (the link count; `i_nlink` is its const alias in a union).
    pub inode_i_nlink: u32,
    /// `struct msghdr::msg_name` (the kernel's copy of a `sendmsg` destination).
    pub msghdr_msg_name: u32,
    /// `struct msghdr::msg_namelen`.
    pub msghdr_msg_namelen: u32,
    /// `struct mount::mnt_ns`.
    pub mount_mnt_ns: u32,
    /// `struct task_struct::nsproxy`.
    pub task_nsproxy: u32,
    /// `struct nsproxy::mnt_ns`.
    pub nsproxy_mnt_ns: u32,
    /// `struct inode::i_generation`.
    pub inode_i_generation: u32,
    /// `struct super_block::s_magic`.
    pub sb_s_magic: u32,
    /// `struct task_struct::fs` (the `fs_struct`: root and working directory).
    pub task_fs: u32,
    /// `struct fs_struct::root` (a `struct path`: the root `d_path` names paths from).
    pub fs_struct_root: u32,
    /// Non-zero when the cgroup `connect4/6` programs are attached: the inet connects of TCP
    /// stream and UDP datagram sockets (whose protocols run them, TCP Fast Open included) are
    /// judged there, once, on the destination as it leaves (after any other cgroup program
    /// rewrote it), and the LSM `socket_connect` hook leaves them to them.
    pub inet_by_cgroup: u32,
    /// `struct socket::sk`.
    pub socket_sk: u32,
    /// `struct sock::sk_protocol`.
    pub sock_sk_protocol: u32,
    /// `struct sock::__sk_common` + `struct sock_common::skc_family`.
    pub sock_family: u32,
    /// `struct pt_regs::bx` (first argument of an ia32 system call).
    pub regs_bx: u32,
    /// `struct pt_regs::cx` (second argument of an ia32 system call).
    pub regs_cx: u32,
    /// `struct task_struct::thread_info` + `struct thread_info::status` (x86: `TS_COMPAT` while
    /// an ia32 system call is under way).
    pub task_ti_status: u32,
    /// Explicit padding: the size stays a multiple of 8.
    pub reserved: u32,
}

/// Highest `Op` code the counters have room for (`Op` codes are 1..=`OP_CODE_MAX`).
pub const OP_CODE_MAX: u32 = 31;
/// Counter slots: `Op` (1..=`OP_CODE_MAX`) × `Decision` (1..=3), plus the slots below.
pub const COUNTER_SLOTS: u32 = (OP_CODE_MAX + 1) * 4 + 2;
/// Events lost because the ring buffer was full.
pub const COUNTER_EVENTS_DROPPED: u32 = (OP_CODE_MAX + 1) * 4;
/// Children that could not be tagged at fork because `TAGS` was full (see the fork hook).
pub const COUNTER_TAG_INSERT_FAILED: u32 = COUNTER_EVENTS_DROPPED + 1;

/// Opens of confined processes allowed by a remembered decision (`OPEN_DECISIONS`), also counted
/// as allowed opens. The slot of decision code 0 of `Op::Open`, which no decision uses: the
/// counters map keeps its size, so a daemon upgrade adopts the pinned one.
pub const COUNTER_OPEN_CACHE_HITS: u32 = counter_index(crate::Op::Open as u32, 0);

/// Slot of `COUNTERS` for an `Op` code (1..=`OP_CODE_MAX`) and a `Decision` code (1..=3).
#[must_use]
pub const fn counter_index(op: u32, decision: u32) -> u32 {
    (op & OP_CODE_MAX) * 4 + (decision & 3)
}

const _: () = assert!(core::mem::size_of::<TaskTag>() == 16);
const _: () = assert!(core::mem::size_of::<InstanceInfo>() == 16);
const _: () = assert!(core::mem::size_of::<Settings>() == 8);
const _: () = assert!(core::mem::size_of::<InodeKey>() == 16);
const _: () = assert!(core::mem::size_of::<CgroupPathData>() == CGROUP_PATH_MAX);
const _: () = assert!(core::mem::size_of::<TaskConfig>() == 8);
const _: () = assert!(core::mem::size_of::<FileRuleData>() == 256);
const _: () = assert!(core::mem::size_of::<FileRuleKeyScratch>() == 16 + PATH_MAX);
const _: () = assert!(core::mem::size_of::<ExePath>() == 8 + EXE_PATH_MAX);
const _: () = assert!(core::mem::size_of::<ConnectSeen>() == 20);
const _: () = assert!(core::mem::size_of::<NetV4Data>() == 8);
const _: () = assert!(core::mem::size_of::<NetV6Data>() == 20);
const _: () = assert!(core::mem::size_of::<PortSet>() == 4 + 4 * PORT_RANGES_MAX);
const _: () = assert!(core::mem::size_of::<UnixRuleKey>() == 8 + UNIX_PATH_MAX);
const _: () = assert!(core::mem::size_of::<KernelOffsets>() == 48 + 50 * 4);
const _: () = assert!(counter_index(OP_CODE_MAX, 3) < COUNTER_EVENTS_DROPPED);
const _: () = assert!(COUNTER_TAG_INSERT_FAILED < COUNTER_SLOTS);
const _: () = assert!(
    COUNTER_OPEN_CACHE_HITS.is_multiple_of(4) && COUNTER_OPEN_CACHE_HITS < COUNTER_EVENTS_DROPPED
);
const _: () = assert!((OP_CODE_MAX + 1).is_power_of_two());

#[cfg(feature = "user")]
mod pod {
    // SAFETY: all of these are `#[repr(C)]`, `Copy`, made only of integers and integer arrays,
    // with no implicit padding (checked by the size asserts above), so every bit pattern is valid.
    unsafe impl aya::Pod for super::TaskTag {}
    unsafe impl aya::Pod for super::InstanceInfo {}
    unsafe impl aya::Pod for super::Settings {}
    unsafe impl aya::Pod for super::InodeKey {}
    unsafe impl aya::Pod for super::CgroupPathData {}
    unsafe impl aya::Pod for super::TaskConfig {}
    unsafe impl aya::Pod for super::FileRuleData {}
    unsafe impl aya::Pod for super::NetV4Data {}
    unsafe impl aya::Pod for super::NetV6Data {}
    unsafe impl aya::Pod for super::PortSet {}
    unsafe impl aya::Pod for super::UnixRuleKey {}
    unsafe impl aya::Pod for super::KernelOffsets {}
    unsafe impl aya::Pod for super::ExePath {}
    unsafe impl aya::Pod for super::ConnectSeen {}
    unsafe impl aya::Pod for crate::Event {}
}

/// Bound of `TAGS`: confined processes at once. A fork past it is counted in
/// `COUNTER_TAG_INSERT_FAILED` (the fork tracepoint cannot refuse it).
pub const TAGS_MAX: u32 = 131_072;

/// `TAGGED` starts with this many header bytes (entry 0): non-zero once the daemon has marked
/// every process `TAGS` holds, so the programs may trust a zero byte. The byte of tgid `t` is at
/// `TAGGED_HEADER_BYTES + t` (entry `1 + t / 8`, byte `t % 8`).
pub const TAGGED_HEADER_BYTES: usize = 8;

/// The most tgids `TAGGED` covers (`PID_MAX_LIMIT` on 64-bit kernels): its entries are sized at
/// load from `/proc/sys/kernel/pid_max`, at most this; a tgid past the end takes the slow path.
pub const TAGGED_TGIDS_MAX: u32 = 4_194_304;
/// Bound of `TASKS`: tasks loaded at once.
pub const TASKS_MAX: u32 = 1024;
/// Bound of `FILE_RULES`: file and exec entries of all tasks together.
pub const FILE_RULES_MAX: u32 = 65_536;
/// Bound of each of `NET_V4_RULES` and `NET_V6_RULES`.
pub const NET_RULES_MAX: u32 = 16_384;
/// Bound of `UNIX_RULES`.
pub const UNIX_RULES_MAX: u32 = 4096;
/// Bytes of the `EVENTS` ring buffer (a power of two): about 30 000 records without a path or
/// 10 000 with a short path (`record_size`), 1000 with a `PATH_MAX` one.
pub const EVENTS_RING_BYTES: u32 = 4 << 20;
