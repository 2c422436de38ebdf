//! The kernel/user contract of Corral: every type that crosses the boundary between the eBPF
//! programs (`agent-ebpf`) and the daemon (`agent`), defined once.
//!
//! Rules for this crate: `#[repr(C)]` + `Copy`, explicit padding fields, no `bool` and no
//! data-carrying enums across the boundary (u32 codes with `TryFrom` instead), const size asserts.
//! With the `user` feature every type implements `aya::Pod` so the daemon can read and write maps.
#![no_std]

mod codes;
mod decision_cache;
mod dns;
mod event;
mod identity;
mod maps;

pub use codes::AllowedEvents;
pub use codes::{Access, Backend, Decision, Mode, Op, Proto, Reason, UnknownCode};
pub use decision_cache::{
    DECISION_CACHE_MAGICS, DECISION_TTL_NS, DecisionCacheConfig, OPEN_DECISIONS_MAX,
    OpenDecisionKey, OpenDecisionStamp,
};
pub use dns::{DNS_LEARN_MAX, DNS_ORIGINS_MAX, DNS_PORT, DNS_PROXY_MAX, DnsOrigin, DnsProxy};
pub use event::{
    COMM_LEN, EVENT_HEAD_SIZE, EVENT_SIZE, Event, PATH_CLASS_SHORT, PATH_CLASS_UNIX, record_size,
};
pub use identity::{DENIED_INODES_MAX, DeniedInodeKey, IDENTITY_DENIED, kernel_dev};
pub use maps::{ALLOWED_SAMPLE_MAX, SETTINGS_MAX, Settings};
pub use maps::{
    CGROUP_PATH_MAX, CGROUP_SELECTORS_MAX, CgroupPathData, EXEC_SELECTORS_MAX, INSTANCES_MAX,
    InodeKey, InstanceInfo, TAG_LANDLOCK, TAG_NO_EXPIRY, TAG_SELECTED,
};
pub use maps::{
    CONNECT_SEEN_MAX, COUNTER_EVENTS_DROPPED, COUNTER_OPEN_CACHE_HITS, COUNTER_SLOTS,
    COUNTER_TAG_INSERT_FAILED, ConnectSeen, EVENTS_RING_BYTES, EXE_PATH_MAX, EXES_MAX, ExePath,
    FILE_RULES_MAX, FileRuleData, FileRuleKeyScratch, KernelOffsets, NET_RULES_MAX, NetV4Data,
    NetV6Data, OP_CODE_MAX, PATH_MAX, PORT_RANGES_MAX, PortRange, PortSet, RULE_DENY,
    RULE_DENY_BENEATH, RULE_EXEC, RULE_PATH_MAX, RULE_READ, RULE_WRITE, TAGS_MAX, TASKS_MAX,
    TaskConfig, TaskTag, UNIX_PATH_MAX, UNIX_RULES_MAX, UnixRuleKey, counter_index,
};
pub use maps::{
    PRIV_IO_URING, PRIV_NETLINK, PRIV_OTHER_SOCKETS, PRIV_PACKET_SOCKETS, PRIV_PERF_EVENTS,
    PRIV_RAW_SOCKETS, PRIV_USERFAULTFD, PRIVILEGES_MAX,
};
pub use maps::{TAGGED_HEADER_BYTES, TAGGED_TGIDS_MAX};

/// Names of the maps and programs in the eBPF object, shared so a rename cannot split the two sides.
pub mod names {
    /// `HashMap<u32 tgid, TaskTag>`: which processes are confined, and by which task.
    pub const TAGS: &str = "TAGS";
    /// `Array<u64>`, mmapable: one byte per tgid saying it may have a `TAGS` entry (see
    /// `TAGGED_HEADER_BYTES`); the untagged fast path of every hook.
    pub const TAGGED: &str = "TAGGED";
    /// `HashMap<u32 task id, TaskConfig>`: per-task mode.
    pub const TASKS: &str = "TASKS";
    /// `LpmTrie<FileRuleData, u32 rule flags>`: file and exec rules of every task.
    pub const FILE_RULES: &str = "FILE_RULES";
    /// `LpmTrie<NetV4Data, PortSet>`: IPv4 connect rules.
    pub const NET_V4_RULES: &str = "NET_V4_RULES";
    /// `LpmTrie<NetV6Data, PortSet>`: IPv6 connect rules.
    pub const NET_V6_RULES: &str = "NET_V6_RULES";
    /// `HashMap<UnixRuleKey, u32>`: `AF_UNIX` connect rules.
    pub const UNIX_RULES: &str = "UNIX_RULES";
    /// `RingBuf` of `Event`.
    pub const EVENTS: &str = "EVENTS";
    /// `PerCpuArray<u64>` of decision and drop counters, indexed by `counter_index`.
    pub const COUNTERS: &str = "COUNTERS";
    /// `LruHashMap<u32 tid, ConnectSeen>`: audited connects the LSM hook already reported.
    pub const CONNECT_SEEN: &str = "CONNECT_SEEN";
    /// `LruHashMap<u32 tgid, ExePath>`: the executable of confined processes, for events.
    pub const EXES: &str = "EXES";
    /// The read-only global holding `KernelOffsets`.
    pub const OFFSETS: &str = "OFFSETS";
    /// The read-only global holding `DecisionCacheConfig`.
    pub const DECISION_CACHE: &str = "DECISION_CACHE";
    /// `LruHashMap<OpenDecisionKey, OpenDecisionStamp>`: allowed opens of confined processes,
    /// remembered (see `DecisionCacheConfig`).
    pub const OPEN_DECISIONS: &str = "OPEN_DECISIONS";
    /// `HashMap<InodeKey, u32 task id>`: executables whose exec makes a process join a task.
    pub const EXEC_SELECTORS: &str = "EXEC_SELECTORS";
    /// `LpmTrie<CgroupPathData, u32 task id>`: cgroup v2 paths whose processes join a task.
    pub const CGROUP_SELECTORS: &str = "CGROUP_SELECTORS";
    /// `HashMap<u32 rules id, u32 PRIV_* bits>`: guarded operations a task's policy re-allowed.
    pub const PRIVILEGES: &str = "PRIVILEGES";
    /// `HashMap<u32 instance, InstanceInfo>`: task instances (`corral run`), their parent and
    /// expiry.
    pub const INSTANCES: &str = "INSTANCES";
    /// `Array<Settings>` of one entry (key 0): run-time settings (allowed events, sampling).
    pub const SETTINGS: &str = "SETTINGS";
    /// `HashMap<DeniedInodeKey, u32>`: files `files.deny` covers, by identity (device and inode).
    pub const DENIED_INODES: &str = "DENIED_INODES";
    /// `Array<DnsProxy>` of one entry (key 0): where the daemon's DNS proxy listens.
    pub const DNS_PROXY: &str = "DNS_PROXY";
    /// `LruHashMap<u64 socket cookie, DnsOrigin>`: the intended server of redirected DNS sockets.
    pub const DNS_ORIGINS: &str = "DNS_ORIGINS";
    /// `HashMap<u32 task id, u32>`: the tasks whose DNS goes through the proxy.
    pub const DNS_LEARN: &str = "DNS_LEARN";
    pub const PROG_SCHED_EXEC: &str = "corral_sched_exec";
    pub const PROG_CGROUP_ATTACH: &str = "corral_cgroup_attach";
    pub const PROG_KILL_EXEC: &str = "corral_kill_exec";
    pub const PROG_SYS_EXIT: &str = "corral_sys_exit";

    pub const PROG_EXEC: &str = "corral_bprm_check";
    pub const PROG_OPEN: &str = "corral_file_open";
    pub const PROG_CONNECT: &str = "corral_socket_connect";
    pub const PROG_FORK: &str = "corral_sched_fork";
    pub const PROG_EXIT: &str = "corral_sched_exit";
    pub const PROG_BPF: &str = "corral_bpf";
    pub const PROG_SOCKET_CREATE: &str = "corral_socket_create";
    pub const PROG_SOCKET_SENDMSG: &str = "corral_socket_sendmsg";
    pub const PROG_PATH_MKNOD: &str = "corral_path_mknod";
    pub const PROG_PATH_MKDIR: &str = "corral_path_mkdir";
    pub const PROG_PATH_SYMLINK: &str = "corral_path_symlink";
    pub const PROG_PATH_TRUNCATE: &str = "corral_path_truncate";
    pub const PROG_PATH_CHMOD: &str = "corral_path_chmod";
    pub const PROG_PATH_CHOWN: &str = "corral_path_chown";
    pub const PROG_PTRACE: &str = "corral_ptrace";
    pub const PROG_TASK_KILL: &str = "corral_task_kill";
    pub const PROG_KERNEL_READ_FILE: &str = "corral_kernel_read_file";
    pub const PROG_KERNEL_LOAD_DATA: &str = "corral_kernel_load_data";
    pub const PROG_SB_MOUNT: &str = "corral_sb_mount";
    pub const PROG_SB_UMOUNT: &str = "corral_sb_umount";
    pub const PROG_MOVE_MOUNT: &str = "corral_move_mount";
    pub const PROG_SB_PIVOTROOT: &str = "corral_sb_pivotroot";
    pub const PROG_PATH_CHROOT: &str = "corral_path_chroot";
    pub const PROG_INODE_LINK: &str = "corral_inode_link";
    pub const PROG_MMAP_FILE: &str = "corral_mmap_file";
    pub const PROG_FILE_MPROTECT: &str = "corral_file_mprotect";
    pub const PROG_PATH_RENAME: &str = "corral_path_rename";
    pub const PROG_PATH_UNLINK: &str = "corral_path_unlink";
    pub const PROG_PATH_RMDIR: &str = "corral_path_rmdir";
    pub const PROG_PERF_EVENT_OPEN: &str = "corral_perf_event_open";
    pub const PROG_INODE_INIT_SECURITY_ANON: &str = "corral_inode_init_security_anon";
    pub const PROG_CONNECT4: &str = "corral_connect4";
    pub const PROG_CONNECT6: &str = "corral_connect6";
    pub const PROG_SENDMSG4: &str = "corral_sendmsg4";
    pub const PROG_SENDMSG6: &str = "corral_sendmsg6";
    pub const PROG_RECVMSG4: &str = "corral_recvmsg4";
    pub const PROG_RECVMSG6: &str = "corral_recvmsg6";
    /// Trivial programs `corral doctor` loads and attaches to learn what the kernel allows.
    pub const PROG_PROBE_LSM: &str = "corral_probe_lsm";
    pub const PROG_PROBE_TP_BTF: &str = "corral_probe_tp_btf";
    pub const PROG_PROBE_SOCK_ADDR: &str = "corral_probe_sock_addr";
}
