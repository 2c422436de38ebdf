//! Kernel struct field offsets, read from the running kernel's BTF.
//!
//! aya-ebpf has no CO-RE field relocations, so the hooks take the offsets they need from a
//! read-only global (`KernelOffsets`) that the loader fills in here before load. One object then
//! runs on 6.1, 6.12 and 6.18, whose `struct file` layouts differ (6.18 moves `f_path` into an
//! anonymous union, which is why the search descends into anonymous members).

use std::path::{Path, PathBuf};

use super::btf_members::{BtfReadError, MemberLookup, RawBtf};
use agent_common::KernelOffsets;

/// Default location of the running kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot read kernel BTF {}: {source} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)", path.display())]
    Read { path: PathBuf, source: BtfReadError },
    #[error("kernel BTF {}: no struct `{name}`", path.display())]
    NoStruct { path: PathBuf, name: &'static str },
    #[error("kernel BTF {}: struct `{name}` has no field `{field}`", path.display())]
    NoField {
        path: PathBuf,
        name: &'static str,
        field: &'static str,
    },
    #[error("kernel BTF {}: struct `{name}` field `{field}`: {source}", path.display())]
    Btf {
        path: PathBuf,
        name: &'static str,
        field: &'static str,
        source: BtfReadError,
    },
}

/// Reads every offset the hooks need from the BTF at `path`.
pub fn read_offsets(path: &Path) -> Result<KernelOffsets, OffsetError> {
    let btf = RawBtf::read(path).map_err(|source| OffsetError::Read {
        path: path.to_owned(),
        source,
    })?;
    let find = |name: &'static str, field: &'static str| field_offset(&btf, path, name, field);
    Ok(KernelOffsets {
        file_f_path: find("file", "f_path")?,
        file_f_mode: find("file", "f_mode")?,
        file_f_flags: find("file", "f_flags")?,
        binprm_file: find("linux_binprm", "file")?,
        socket_type: find("socket", "type")?,
        task_pid: find("task_struct", "pid")?,
        task_tgid: find("task_struct", "tgid")?,
        task_real_parent: find("task_struct", "real_parent")?,
        task_signal: find("task_struct", "signal")?,
        signal_live: find("signal_struct", "live")?,
        valid: 1,
        lsm_connect: 0,
        file_f_inode: find("file", "f_inode")?,
        inode_i_ino: find("inode", "i_ino")?,
        inode_i_sb: find("inode", "i_sb")?,
        sb_s_dev: find("super_block", "s_dev")?,
        task_cgroups: find("task_struct", "cgroups")?,
        css_set_dfl_cgrp: find("css_set", "dfl_cgrp")?,
        cgroup_kn: find("cgroup", "kn")?,
        cgroup_root: find("cgroup", "root")?,
        cgroup_root_hierarchy_id: find("cgroup_root", "hierarchy_id")?,
        // Renamed `__parent` in 6.15, when it became RCU-protected.
        kernfs_node_parent: find("kernfs_node", "__parent")
            .or_else(|_| find("kernfs_node", "parent"))?,
        kernfs_node_name: find("kernfs_node", "name")?,
        path_mnt: find("path", "mnt")?,
        path_dentry: find("path", "dentry")?,
        dentry_d_parent: find("dentry", "d_parent")?,
        dentry_name_len: find("dentry", "d_name")? + find("qstr", "len")?,
        dentry_name_ptr: find("dentry", "d_name")? + find("qstr", "name")?,
        mount_mnt: find("mount", "mnt")?,
        mount_mnt_parent: find("mount", "mnt_parent")?,
        mount_mnt_mountpoint: find("mount", "mnt_mountpoint")?,
        vfsmount_mnt_root: find("vfsmount", "mnt_root")?,
        task_files: find("task_struct", "files")?,
        files_fdt: find("files_struct", "fdt")?,
        fdtable_fd: find("fdtable", "fd")?,
        fdtable_max_fds: find("fdtable", "max_fds")?,
        regs_orig_ax: find("pt_regs", "orig_ax")?,
        regs_di: find("pt_regs", "di")?,
        regs_si: find("pt_regs", "si")?,
        regs_dx: find("pt_regs", "dx")?,
        kill_observer: 0,
        vma_vm_file: find("vm_area_struct", "vm_file")?,
        vma_vm_flags: find("vm_area_struct", "vm_flags")?,
        dentry_d_name: find("dentry", "d_name")?,
        // In an anonymous union with its const alias `i_nlink`.
        inode_i_nlink: find("inode", "__i_nlink")?,
        msghdr_msg_name: find("msghdr", "msg_name")?,
        msghdr_msg_namelen: find("msghdr", "msg_namelen")?,
        mount_mnt_ns: find("mount", "mnt_ns")?,
        task_nsproxy: find("task_struct", "nsproxy")?,
        nsproxy_mnt_ns: find("nsproxy", "mnt_ns")?,
        inode_i_generation: find("inode", "i_generation")?,
        sb_s_magic: find("super_block", "s_magic")?,
        task_fs: find("task_struct", "fs")?,
        fs_struct_root: find("fs_struct", "root")?,
        inet_by_cgroup: 0,
        socket_sk: find("socket", "sk")?,
        sock_sk_protocol: find("sock", "sk_protocol")?,
        sock_family: find("sock", "__sk_common")? + find("sock_common", "skc_family")?,
        regs_bx: find("pt_regs", "bx")?,
        regs_cx: find("pt_regs", "cx")?,
        task_ti_status: find("task_struct", "thread_info")? + find("thread_info", "status")?,
        reserved: 0,
    })
}

fn field_offset(
    btf: &RawBtf,
    path: &Path,
    name: &'static str,
    field: &'static str,
) -> Result<u32, OffsetError> {
    match btf.member_offset(name, field) {
        Ok(MemberLookup::Found(offset)) => Ok(offset),
        Ok(MemberLookup::NoField) => Err(OffsetError::NoField {
            path: path.to_owned(),
            name,
            field,
        }),
        Ok(MemberLookup::NoStruct) => Err(OffsetError::NoStruct {
            path: path.to_owned(),
            name,
        }),
        Err(source) => Err(OffsetError::Btf {
            path: path.to_owned(),
            name,
            field,
            source,
        }),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the offsets of the kernel this test runs on. Every Linux we support has BTF; a
    /// machine without it cannot run Corral at all, so its absence is a failure, not a skip.
    /// Every offset the loader asks for, as the general `btf-rs` parser finds it (the reader
    /// that `read_offsets` used before `RawBtf`).
    fn btf_rs_offset(btf: &btf_rs::Btf, name: &str, field: &str) -> Option<u32> {
        fn strip(btf: &btf_rs::Btf, mut ty: btf_rs::Type) -> btf_rs::Type {
            loop {
                let chained = |r: Result<btf_rs::Type, btf_rs::Error>| {
                    r.unwrap_or_else(|e| panic!("expected a chained type: {e}"))
                };
                ty = match &ty {
                    btf_rs::Type::Typedef(t) => chained(btf.resolve_chained_type(t)),
                    btf_rs::Type::Volatile(t)
                    | btf_rs::Type::Const(t)
                    | btf_rs::Type::Restrict(t) => chained(btf.resolve_chained_type(t)),
                    _ => return ty,
                };
            }
        }
        fn find(btf: &btf_rs::Btf, st: &btf_rs::Struct, field: &str) -> Option<u32> {
            for m in &st.members {
                let n = btf.resolve_name(m).unwrap_or_default();
                if n == field {
                    return Some(m.bit_offset());
                }
                if n.is_empty() {
                    let inner = btf.resolve_chained_type(m).ok().map(|t| strip(btf, t));
                    if let Some(btf_rs::Type::Struct(i) | btf_rs::Type::Union(i)) = inner {
                        if let Some(bits) = find(btf, &i, field) {
                            return Some(m.bit_offset() + bits);
                        }
                    }
                }
            }
            None
        }
        btf.resolve_types_by_name(name)
            .ok()?
            .into_iter()
            .find_map(|t| match t {
                btf_rs::Type::Struct(st) => find(btf, &st, field),
                _ => None,
            })
            .map(|bits| bits / 8)
    }

    #[test]
    fn raw_reader_agrees_with_btf_rs_on_the_running_kernel() {
        let path = Path::new(VMLINUX_BTF);
        let raw = RawBtf::read(path).unwrap_or_else(|e| panic!("expected {VMLINUX_BTF}: {e}"));
        let full = btf_rs::Btf::from_file(path)
            .unwrap_or_else(|e| panic!("expected btf-rs to parse {VMLINUX_BTF}: {e}"));
        let asked = [
            ("file", "f_path"),
            ("file", "f_mode"),
            ("file", "f_flags"),
            ("file", "f_inode"),
            ("linux_binprm", "file"),
            ("socket", "type"),
            ("task_struct", "pid"),
            ("task_struct", "tgid"),
            ("task_struct", "real_parent"),
            ("task_struct", "signal"),
            ("task_struct", "cgroups"),
            ("task_struct", "files"),
            ("signal_struct", "live"),
            ("inode", "i_ino"),
            ("inode", "i_sb"),
            ("inode", "__i_nlink"),
            ("super_block", "s_dev"),
            ("css_set", "dfl_cgrp"),
            ("cgroup", "kn"),
            ("cgroup", "root"),
            ("cgroup_root", "hierarchy_id"),
            ("kernfs_node", "__parent"),
            ("kernfs_node", "parent"),
            ("kernfs_node", "name"),
            ("path", "mnt"),
            ("path", "dentry"),
            ("dentry", "d_parent"),
            ("dentry", "d_name"),
            ("qstr", "len"),
            ("qstr", "name"),
            ("mount", "mnt"),
            ("mount", "mnt_parent"),
            ("mount", "mnt_mountpoint"),
            ("vfsmount", "mnt_root"),
            ("files_struct", "fdt"),
            ("fdtable", "fd"),
            ("fdtable", "max_fds"),
            ("pt_regs", "orig_ax"),
            ("pt_regs", "di"),
            ("vm_area_struct", "vm_file"),
            ("vm_area_struct", "vm_flags"),
            ("inode", "i_generation"),
            ("super_block", "s_magic"),
            ("task_struct", "fs"),
            ("fs_struct", "root"),
            ("socket", "sk"),
            ("sock", "sk_protocol"),
            ("sock", "__sk_common"),
            ("sock_common", "skc_family"),
            ("task_struct", "no_such_field"),
        ];
        for (name, field) in asked {
            let ours = match raw.member_offset(name, field) {
                Ok(MemberLookup::Found(off)) => Some(off),
                Ok(_) => None,
                Err(e) => panic!("expected {name}.{field} looked up: {e}"),
            };
            assert_eq!(
                ours,
                btf_rs_offset(&full, name, field),
                "expected the same offset of {name}.{field} from both readers"
            );
        }
    }

    #[test]
    fn offsets_of_running_kernel_are_plausible() {
        let off = read_offsets(Path::new(VMLINUX_BTF))
            .unwrap_or_else(|e| panic!("expected to read offsets from {VMLINUX_BTF}: {e}"));
        assert_eq!(off.valid, 1, "offsets must be marked valid");
        assert!(
            off.file_f_path > 0,
            "f_path is never the first field of struct file"
        );
        assert_ne!(
            off.task_pid, off.task_tgid,
            "pid and tgid are distinct fields"
        );
        assert_eq!(
            off.task_tgid,
            off.task_pid + 4,
            "tgid follows pid in task_struct"
        );
    }
}
