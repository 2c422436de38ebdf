//! The open-decision cache: a confined process re-opening a file it was just allowed to open is
//! allowed again without resolving and looking up the path, while nothing the decision depends
//! on has changed. What it depends on, and what ends it, is written down once, on
//! `agent_common::DecisionCacheConfig`'s module.
//!
//! Only allowed decisions are remembered (a miss is judged in full each time: its event needs the
//! path), and only when no allowed-decision events are asked for (they need the path too).

use agent_common::{DECISION_CACHE_MAGICS, DECISION_TTL_NS, OpenDecisionKey, OpenDecisionStamp};
use aya_ebpf::helpers::{bpf_ktime_get_boot_ns, bpf_probe_read_kernel};

use crate::{
    context::{Caller, btf_load, caller_root},
    maps::{OPEN_DECISIONS, allowed_events_off, decision_cache_config, offsets},
};

/// An open that may be remembered: its key, and the two sequence counts as they were before its
/// path is resolved.
pub struct Cacheable {
    key: OpenDecisionKey,
    rename_seq: u32,
    mount_seq: u32,
}

/// What the cache needs of an open of `file` (the hook's `struct file *`) with `access` by `who`;
/// `None` when its decision may not be remembered: the cache is off (no lock addresses), the
/// caller is forced to a miss, allowed events are wanted, the file has other than one link or
/// lies on a file system not in `DECISION_CACHE_MAGICS`, or a field cannot be read.
#[inline(always)]
pub fn cacheable(who: &Caller, file: *const u8, access: u32) -> Option<Cacheable> {
    let cfg = decision_cache_config();
    if cfg.rename_lock == 0
        || cfg.mount_lock == 0
        || who.forced_miss.is_some()
        || !allowed_events_off()
    {
        return None;
    }
    let off = offsets();
    // SAFETY: `file` is the hook's `struct file *` (a BTF pointer) and every offset a constant
    // to the verifier (`OFFSETS` is frozen `.rodata`), so each `btf_load` below is checked
    // against the kernel's BTF and compiled to an inline load that the kernel fixes up if it
    // faults (yielding 0), like a probe read without the helper call. The two sequence counts
    // are at addresses from kallsyms: probe reads.
    unsafe {
        let inode: *const u8 = btf_load(file, off.file_f_inode);
        if btf_load::<u32>(inode, off.inode_i_nlink) != 1 {
            return None;
        }
        let sb: *const u8 = btf_load(inode, off.inode_i_sb);
        if !DECISION_CACHE_MAGICS.contains(&btf_load::<u64>(sb, off.sb_s_magic)) {
            return None;
        }
        let f_path = file.wrapping_add(off.file_f_path as usize);
        let (root_mnt, root_dentry) = caller_root()?;
        let key = OpenDecisionKey {
            rules_id: who.rules,
            access,
            dentry: btf_load(f_path, off.path_dentry),
            mnt: btf_load(f_path, off.path_mnt),
            inode: inode as u64,
            ino: btf_load(inode, off.inode_i_ino),
            root_dentry,
            root_mnt,
            generation: btf_load(inode, off.inode_i_generation),
            reserved: 0,
        };
        let rename_seq: u32 = bpf_probe_read_kernel(cfg.rename_lock as *const u32).ok()?;
        let mount_seq: u32 = bpf_probe_read_kernel(cfg.mount_lock as *const u32).ok()?;
        Some(Cacheable {
            key,
            rename_seq,
            mount_seq,
        })
    }
}

impl Cacheable {
    /// Whether this open was allowed before and nothing its path depends on changed since: the
    /// same key, both sequence counts unchanged (a count changed, or odd now: a rename or mount
    /// change happened or is under way), not expired.
    #[inline(always)]
    pub fn hit(&self) -> bool {
        // SAFETY: the value is copied out at once.
        let Some(stamp) = (unsafe { OPEN_DECISIONS.get(&self.key) }).copied() else {
            return false;
        };
        stamp.rename_seq == self.rename_seq
            && stamp.mount_seq == self.mount_seq
            // SAFETY: reads the boot clock.
            && unsafe { bpf_ktime_get_boot_ns() } < stamp.expires_ns
    }

    /// Remembers that this open was allowed, by the path resolved after the counts were read.
    /// An odd count (a rename or mount change was under way) is not remembered. A full map
    /// evicts its least recently used entry; a failed insert only costs a later full judgement.
    #[inline(always)]
    pub fn remember(&self) {
        if self.rename_seq & 1 != 0 || self.mount_seq & 1 != 0 {
            return;
        }
        let stamp = OpenDecisionStamp {
            rename_seq: self.rename_seq,
            mount_seq: self.mount_seq,
            // SAFETY: reads the boot clock.
            expires_ns: unsafe { bpf_ktime_get_boot_ns() } + DECISION_TTL_NS,
        };
        let _ = OPEN_DECISIONS.insert(&self.key, &stamp, 0);
    }
}
