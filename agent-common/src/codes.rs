//! u32 codes that cross the boundary in place of enums. Each has a `TryFrom<u32>` so the daemon
//! rejects a code it does not know instead of guessing.

/// A code the receiving side does not know: names the kind of code and its value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct UnknownCode {
    pub kind: &'static str,
    pub value: u32,
}

impl core::fmt::Display for UnknownCode {
    fn fmt(&self, f: &mut core::fmt::Formatter<'_>) -> core::fmt::Result {
        write!(f, "unknown {} code {}", self.kind, self.value)
    }
}

macro_rules! code_enum {
    ($(#[$meta:meta])* $name:ident, $kind:literal { $($(#[$vmeta:meta])* $variant:ident = $value:literal => $text:literal),+ $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
        #[repr(u32)]
        pub enum $name {
            $($(#[$vmeta])* $variant = $value),+
        }

        impl $name {
            /// The name used in events and on the command line.
            #[must_use]
            pub const fn as_str(self) -> &'static str {
                match self {
                    $(Self::$variant => $text),+
                }
            }
        }

        impl TryFrom<u32> for $name {
            type Error = UnknownCode;
            fn try_from(value: u32) -> Result<Self, UnknownCode> {
                match value {
                    $($value => Ok(Self::$variant),)+
                    _ => Err(UnknownCode { kind: $kind, value }),
                }
            }
        }
    };
}

code_enum! {
    /// The operation a hook judged.
    Op, "op" {
        /// `execve`/`execveat` of a binary or script (LSM `bprm_check_security`).
        Exec = 1 => "exec",
        /// Opening a file (LSM `file_open`).
        Open = 2 => "open",
        /// `connect` of an inet or unix socket (LSM `socket_connect`, or cgroup `connect4/6`).
        Connect = 3 => "connect",
        /// `sendto`/`sendmsg` with a destination on an unconnected UDP socket (cgroup
        /// `sendmsg4/6`).
        Sendmsg = 4 => "sendmsg",
        /// The `bpf()` syscall (LSM `bpf`): a confined process may not touch BPF objects.
        Bpf = 5 => "bpf",
        /// Creating a socket no hook judges the traffic of: raw, packet, netlink, SCTP, vsock, ...
        /// (LSM `socket_create`).
        Socket = 6 => "socket",
        /// Tracing or reading/writing another process's memory (LSM `ptrace_access_check`).
        Ptrace = 7 => "ptrace",
        /// Signalling a process outside the task (LSM `task_kill`).
        Signal = 8 => "signal",
        /// Loading kernel code or data: modules, kexec images, firmware, policies (LSM
        /// `kernel_read_file`, `kernel_load_data`).
        KernelLoad = 9 => "kernel_load",
        /// Mounting, unmounting, moving mounts, `pivot_root`, `chroot` (LSM `sb_mount`,
        /// `sb_umount`, `move_mount`, `sb_pivotroot`, `path_chroot`).
        Mount = 10 => "mount",
        /// Creating a hard link (LSM `inode_link`): a link would give a file a second path,
        /// judged by that path instead of the file's own.
        Link = 11 => "link",
        /// Mapping a file executable (LSM `mmap_file` with `PROT_EXEC`), or adding `PROT_EXEC`
        /// to a file mapping (LSM `file_mprotect`).
        Mmap = 12 => "mmap",
        /// Renaming or moving a file or directory (LSM `path_rename`): judged at the old and the
        /// new path.
        Rename = 13 => "rename",
        /// Removing a file or directory (LSM `path_unlink`, `path_rmdir`).
        Unlink = 14 => "unlink",
        /// `perf_event_open` (LSM `perf_event_open`): a confined process may not monitor
        /// other processes or the kernel.
        Perf = 15 => "perf",
        /// Creating a userfaultfd (`userfaultfd(2)` or `/dev/userfaultfd`; LSM
        /// `inode_init_security_anon` of a `[userfaultfd]` inode): a confined process may not
        /// stall the kernel on page faults of its choosing.
        Userfaultfd = 16 => "userfaultfd",
        /// `setns` into another process's namespaces (it has no LSM hook: the ptrace access
        /// check it makes on the target, LSM `ptrace_access_check` during a `setns` call).
        Setns = 17 => "setns",
        /// Creating a file, directory, symlink, FIFO or socket file (LSM `path_mknod`, also the
        /// creating step of `open(O_CREAT)`, `path_mkdir`, `path_symlink`): judged as a write at
        /// the new path. Device nodes are refused (`forbidden`): opening one reaches the device,
        /// not a path.
        Create = 18 => "create",
        /// Changing a file without opening it: `truncate`, `chmod`, `chown` (LSM
        /// `path_truncate`, `path_chmod`, `path_chown`): judged as a write at the file's path.
        Setattr = 19 => "setattr",
        /// Creating an `io_uring` instance (`io_uring_setup`), without BPF LSM only: the kill
        /// backend sees none of the operations a ring runs (its opens, sockets, connects run in
        /// the kernel without a system call of their own), so a tagged process may not have one
        /// unless `spec.privileges` grants `io_uring`. With BPF LSM every operation a ring runs
        /// reaches the same hooks as its system call would, and rings are not guarded.
        IoUring = 20 => "io_uring",
    }
}

code_enum! {
    /// What the kernel did with a judged operation.
    Decision, "decision" {
        /// Refused with `EPERM` (enforce mode).
        Denied = 1 => "denied",
        /// Not in the allow-list but let through because the task is in audit mode.
        Audited = 2 => "audited",
        /// In the allow-list. Always counted; sent as an event only for tagged processes and only
        /// when `Settings::allowed_events` asks for it (`AllowedEvents`).
        Allowed = 3 => "allowed",
    }
}

code_enum! {
    /// A task's enforcement mode (`TaskConfig::mode`).
    Mode, "mode" {
        /// Misses are refused with `EPERM` and reported.
        Enforce = 0 => "enforce",
        /// Misses are allowed and reported.
        Audit = 1 => "audit",
    }
}

code_enum! {
    /// Transport of a judged `connect` (from `struct socket::type`).
    Proto, "proto" {
        Tcp = 1 => "tcp",
        Udp = 2 => "udp",
        /// `SOCK_SEQPACKET` (unix sockets).
        Seqpacket = 5 => "seqpacket",
        /// Anything else (raw sockets, ...).
        Other = 0 => "other",
    }
}

/// Access bits of an open, as reported in `Event::access` (a bit set, not an enum).
pub struct Access;

impl Access {
    pub const READ: u32 = 1;
    pub const WRITE: u32 = 2;
    /// The file was opened by the kernel to execute or map it as an interpreter (`FMODE_EXEC`).
    pub const EXEC: u32 = 4;
}

code_enum! {
    /// Why an operation was not allowed (`Event::reason`).
    Reason, "reason" {
        /// Nothing missed: the reason of an allowed decision (`Decision::Allowed`).
        None = 0 => "none",
        /// No allow rule of the task covers it.
        NotAllowed = 1 => "not_allowed",
        /// A `files.deny` entry covers it.
        DenyRule = 2 => "deny_rule",
        /// The kernel could not resolve the path (too long, unreachable): fail closed.
        PathUnresolved = 3 => "path_unresolved",
        /// The process is tagged with a task the daemon no longer has: fail closed.
        UnknownTask = 4 => "unknown_task",
        /// An address family that no rule can allow (netlink, packet, ...).
        FamilyNotAllowed = 5 => "family_not_allowed",
        /// A relative `AF_UNIX` path: it cannot be judged by what it reaches, so it is refused.
        RelativeUnixPath = 6 => "relative_unix_path",
        /// The address is shorter than its family needs, or (kill backend) the arguments of a
        /// socket just made through `socketcall` could not be read back: refused rather than
        /// guessed.
        BadAddress = 7 => "bad_address",
        /// The daemon has not filled in the kernel offsets: fail closed.
        NotReady = 8 => "not_ready",
        /// Confined processes may never do this (tampering with the kernel or other processes).
        Forbidden = 9 => "forbidden",
        /// The process's task instance outlived its `--ttl`: everything is denied.
        InstanceExpired = 10 => "instance_expired",
        /// The path was allowed, but the file reached is (by device and inode) one a
        /// `files.deny` rule covers: a hard link to a denied file (`DENIED_INODES`).
        DeniedIdentity = 11 => "denied_identity",
        /// DNS of a task with wildcard hosts while the daemon's DNS proxy is not there: refused
        /// rather than sent unseen.
        NoDnsProxy = 12 => "no_dns_proxy",
    }
}

impl core::error::Error for UnknownCode {}

// Every `Op` code has counter slots (see `counter_index`).
const _: () = assert!((Op::Setns as u32) <= crate::maps::OP_CODE_MAX);

code_enum! {
    /// Which allowed decisions of tagged processes the kernel sends as events
    /// (`Settings::allowed_events`; `events.allowed` in `corral.toml`).
    AllowedEvents, "allowed events" {
        /// None: allowed decisions are only counted.
        None = 0 => "none",
        /// One in `Settings::allowed_sample` on average, chosen at random in the kernel.
        Sampled = 1 => "sampled",
        /// Every one.
        All = 2 => "all",
    }
}

code_enum! {
    /// The kernel mechanism that judged an operation (`Event::backend`).
    Backend, "backend" {
        /// A BPF LSM hook: refuses before the operation happens.
        Lsm = 1 => "lsm",
        /// A cgroup `sock_addr` program on the cgroup v2 root: refuses before the connect or send.
        CgroupSockAddr = 2 => "cgroup_sock_addr",
        /// Landlock, applied by `corral run` before it execs the agent.
        Landlock = 3 => "landlock",
        /// A BTF tracepoint that sees the operation just after it succeeded and kills the process
        /// (`SIGKILL`) before it returns to user space: the last resort where nothing can refuse.
        Kill = 4 => "kill",
    }
}
