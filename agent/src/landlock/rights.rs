//! Which Landlock filesystem rights each policy list grants, and which rights each Landlock ABI
//! can enforce.
//!
//! The table is Corral's own, not `AccessFs::from_all`: a newer `landlock` crate must not change
//! what a policy means without a deliberate edit here.

use landlock::{AccessFs, BitFlags, make_bitflags};

/// One filesystem right Corral handles: its name in reports and the first ABI that has it.
pub(crate) struct Right {
    pub access: AccessFs,
    pub name: &'static str,
    pub since_abi: u32,
}

/// Every filesystem right Corral handles, in the kernel's bit order.
///
/// Not handled on purpose: `resolve_unix` (ABI 9, connecting to pathname unix sockets), which
/// belongs to the connect backend and the policy's `network.unix` list, not to the file lists.
pub(crate) const RIGHTS: &[Right] = &[
    right(AccessFs::Execute, "execute", 1),
    right(AccessFs::WriteFile, "write_file", 1),
    right(AccessFs::ReadFile, "read_file", 1),
    right(AccessFs::ReadDir, "read_dir", 1),
    right(AccessFs::RemoveDir, "remove_dir", 1),
    right(AccessFs::RemoveFile, "remove_file", 1),
    right(AccessFs::MakeChar, "make_char", 1),
    right(AccessFs::MakeDir, "make_dir", 1),
    right(AccessFs::MakeReg, "make_reg", 1),
    right(AccessFs::MakeSock, "make_sock", 1),
    right(AccessFs::MakeFifo, "make_fifo", 1),
    right(AccessFs::MakeBlock, "make_block", 1),
    right(AccessFs::MakeSym, "make_sym", 1),
    right(AccessFs::Refer, "refer", 2),
    right(AccessFs::Truncate, "truncate", 3),
    right(AccessFs::IoctlDev, "ioctl_dev", 5),
];

const fn right(access: AccessFs, name: &'static str, since_abi: u32) -> Right {
    Right {
        access,
        name,
        since_abi,
    }
}

/// Rights that mean something on a file that is not a directory (the kernel refuses the others
/// in a rule on such a file).
pub(crate) const FILE_RIGHTS: BitFlags<AccessFs> =
    make_bitflags!(AccessFs::{Execute | WriteFile | ReadFile | Truncate | IoctlDev});

/// `exec.allow`: execute, and read the file, which the kernel does to load it.
pub(crate) const EXEC: BitFlags<AccessFs> = make_bitflags!(AccessFs::{Execute | ReadFile});

/// `files.read`: read files, list directories. `ioctl_dev` because Corral does not judge ioctls:
/// a device the policy lets the task open keeps its ioctls (terminals, for instance).
pub(crate) const READ: BitFlags<AccessFs> =
    make_bitflags!(AccessFs::{ReadFile | ReadDir | IoctlDev});

/// `files.write`: write and truncate files, and beneath a directory create, remove, rename and
/// link entries of every kind but device nodes. `ioctl_dev` as for `READ`. `make_char` and
/// `make_block` are handled and never granted: a device node made beneath a writable directory
/// would open the device (a disk, and every file on it) under a path the rules allow.
pub(crate) const WRITE: BitFlags<AccessFs> = make_bitflags!(AccessFs::{
    WriteFile | Truncate | IoctlDev | RemoveDir | RemoveFile | MakeDir | MakeReg | MakeSock
        | MakeFifo | MakeSym | Refer
});

/// The rights Corral handles on a kernel with Landlock ABI `abi`.
#[must_use]
pub(crate) fn handled_at(abi: u32) -> BitFlags<AccessFs> {
    RIGHTS
        .iter()
        .filter(|r| r.since_abi <= abi)
        .fold(BitFlags::EMPTY, |all, r| all | r.access)
}

/// The names of the rights in `set`, in table order.
#[must_use]
pub(crate) fn names(set: BitFlags<AccessFs>) -> Vec<&'static str> {
    RIGHTS
        .iter()
        .filter(|r| set.contains(r.access))
        .map(|r| r.name)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_abi_handles_the_rights_it_introduced_and_the_earlier_ones() {
        assert!(handled_at(0).is_empty(), "no ABI, no rights");
        let v1 = handled_at(1);
        assert_eq!(names(v1).len(), 13, "ABI 1 has 13 filesystem rights");
        assert!(!v1.contains(AccessFs::Refer) && !v1.contains(AccessFs::Truncate));
        assert_eq!(handled_at(2), v1 | AccessFs::Refer);
        assert_eq!(handled_at(3), handled_at(2) | AccessFs::Truncate);
        assert_eq!(
            handled_at(4),
            handled_at(3),
            "ABI 4 added only network rights"
        );
        assert_eq!(handled_at(5), handled_at(4) | AccessFs::IoctlDev);
        assert_eq!(handled_at(7), handled_at(5));
        assert!(
            !handled_at(99).contains(AccessFs::ResolveUnix),
            "resolve_unix is left to the connect backend"
        );
    }

    #[test]
    fn list_rights_never_mix_up_reading_and_writing() {
        assert!(!READ.contains(AccessFs::WriteFile) && !READ.contains(AccessFs::Execute));
        assert!(!WRITE.contains(AccessFs::ReadFile) && !WRITE.contains(AccessFs::Execute));
        assert!(!WRITE.contains(AccessFs::ReadDir));
        assert!(!EXEC.contains(AccessFs::WriteFile) && !EXEC.contains(AccessFs::ReadDir));
        assert_eq!(
            names(WRITE & FILE_RIGHTS),
            ["write_file", "truncate", "ioctl_dev"],
            "a write rule on a file grants writing and truncating it"
        );
    }
}
