//! Judging a file by its identity (device and inode) as well as its path: a hard link made by an
//! unconfined process to a `files.deny` file, in a directory the task may read, would otherwise
//! open the denied file through an allowed path.

use agent_common::DeniedInodeKey;
use aya_ebpf::helpers::bpf_probe_read_kernel;

use crate::maps::{DENIED_INODES, offsets};

/// Whether `file` (a `struct file *`) is, by device and inode, one a deny rule of rule set
/// `rules` covers. Files with a single link skip the look-up: their one path was judged already.
/// An unreadable inode is not a denial here (the path decision stands; the kernel's own pointers
/// are not expected to fault).
#[inline(always)]
pub fn identity_denied(rules: u32, file: *const u8) -> bool {
    let off = offsets();
    // SAFETY: fault-tolerant probe reads of the file's inode and super block at BTF offsets.
    let key = unsafe {
        let Ok(inode) =
            bpf_probe_read_kernel(file.add(off.file_f_inode as usize).cast::<*const u8>())
        else {
            return false;
        };
        let Ok(nlink) = bpf_probe_read_kernel(inode.add(off.inode_i_nlink as usize).cast::<u32>())
        else {
            return false;
        };
        if nlink <= 1 {
            return false;
        }
        let (Ok(sb), Ok(ino)) = (
            bpf_probe_read_kernel(inode.add(off.inode_i_sb as usize).cast::<*const u8>()),
            bpf_probe_read_kernel(inode.add(off.inode_i_ino as usize).cast::<u64>()),
        ) else {
            return false;
        };
        let Ok(dev) = bpf_probe_read_kernel(sb.add(off.sb_s_dev as usize).cast::<u32>()) else {
            return false;
        };
        DeniedInodeKey {
            rules_id: rules,
            dev,
            ino,
        }
    };
    // SAFETY: the value is only tested for presence.
    unsafe { DENIED_INODES.get(&key) }.is_some_and(|v| *v != 0)
}
