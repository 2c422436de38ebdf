//! Kernel struct field offsets, read from the running kernel's BTF.
//!
//! aya-ebpf has no CO-RE field relocations, so the hooks take the offsets they need from a
//! read-only global (`KernelOffsets`) that the loader fills in here before load. One object then
//! runs on 6.1, 6.12 and 6.18, whose `struct file` layouts differ (6.18 moves `f_path` into an
//! anonymous union, which is why the search descends into anonymous members).

use std::path::{Path, PathBuf};

use agent_common::KernelOffsets;
use btf_rs::{Btf, Type};

/// Default location of the running kernel's BTF.
pub const VMLINUX_BTF: &str = "/sys/kernel/btf/vmlinux";

#[derive(Debug, thiserror::Error)]
pub enum OffsetError {
    #[error("cannot read kernel BTF {}: {source} (the kernel needs CONFIG_DEBUG_INFO_BTF=y)", path.display())]
    Read {
        path: PathBuf,
        source: btf_rs::Error,
    },
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
        source: btf_rs::Error,
    },
}

/// Reads every offset the hooks need from the BTF at `path`.
pub fn read_offsets(path: &Path) -> Result<KernelOffsets, OffsetError> {
    let btf = Btf::from_file(path).map_err(|source| OffsetError::Read {
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
    })
}

fn field_offset(
    btf: &Btf,
    path: &Path,
    name: &'static str,
    field: &'static str,
) -> Result<u32, OffsetError> {
    let wrap = |source| OffsetError::Btf {
        path: path.to_owned(),
        name,
        field,
        source,
    };
    let types = btf
        .resolve_types_by_name(name)
        .map_err(|_| OffsetError::NoStruct {
            path: path.to_owned(),
            name,
        })?;
    let mut found_struct = false;
    for ty in types {
        if let Type::Struct(st) = ty {
            found_struct = true;
            if let Some(bits) = find_member(btf, &st, field).map_err(wrap)? {
                return Ok(bits / 8);
            }
        }
    }
    if found_struct {
        Err(OffsetError::NoField {
            path: path.to_owned(),
            name,
            field,
        })
    } else {
        Err(OffsetError::NoStruct {
            path: path.to_owned(),
            name,
        })
    }
}

/// Bit offset of `field` in `st`, looking through anonymous struct and union members.
fn find_member(btf: &Btf, st: &btf_rs::Struct, field: &str) -> Result<Option<u32>, btf_rs::Error> {
    for member in &st.members {
        let member_name = btf.resolve_name(member)?;
        if member_name == field {
            return Ok(Some(member.bit_offset()));
        }
        if member_name.is_empty() {
            let inner = strip_modifiers(btf, btf.resolve_chained_type(member)?)?;
            if let Type::Struct(inner) | Type::Union(inner) = inner {
                if let Some(bits) = find_member(btf, &inner, field)? {
                    return Ok(Some(member.bit_offset() + bits));
                }
            }
        }
    }
    Ok(None)
}

fn strip_modifiers(btf: &Btf, mut ty: Type) -> Result<Type, btf_rs::Error> {
    loop {
        ty = match &ty {
            Type::Typedef(t) => btf.resolve_chained_type(t)?,
            Type::Volatile(t) | Type::Const(t) | Type::Restrict(t) => {
                btf.resolve_chained_type(t)?
            }
            _ => return Ok(ty),
        };
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Reads the offsets of the kernel this test runs on. Every Linux we support has BTF; a
    /// machine without it cannot run Corral at all, so its absence is a failure, not a skip.
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
