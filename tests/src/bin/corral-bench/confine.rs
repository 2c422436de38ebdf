//! What the loops process does to itself before measuring: pin to one CPU, drop root, and the
//! reference confinements R1 (Landlock, the same paths as the allow policy) and R2 (a one-rule
//! seccomp filter).
use std::path::Path;

pub fn pin(cpu: usize) -> Result<(), String> {
    // SAFETY: a zeroed cpu_set_t is the empty set; CPU_SET writes within it.
    let rc = unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        libc::CPU_SET(cpu, &mut set);
        libc::sched_setaffinity(0, size_of::<libc::cpu_set_t>(), &raw const set)
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(format!(
            "pinning to CPU {cpu}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// Drops every group and becomes `uid` (gid = uid).
pub fn drop_to(uid: u32) -> Result<(), String> {
    // SAFETY: plain credential syscalls; failures are checked.
    let ok = unsafe {
        libc::setgroups(0, std::ptr::null()) == 0
            && libc::setgid(uid) == 0
            && libc::setuid(uid) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(format!(
            "dropping to uid {uid}: {}",
            std::io::Error::last_os_error()
        ))
    }
}

/// R1: Corral's own Landlock backend (what `corral run` applies) with `policy`'s paths.
pub fn landlock(policy: &Path) -> Result<(), String> {
    let policy = agent::policy::load_policy_file(policy).map_err(|e| format!("{e}"))?;
    let spec = agent::landlock::spec_for(&policy);
    agent::landlock::apply(&spec)
        .map(|_| ())
        .map_err(|e| format!("landlock: {e}"))
}

/// R2: `no_new_privs` and a filter with one rule (ptrace → EPERM, everything else allowed).
pub fn seccomp() -> Result<(), String> {
    const LD_W_ABS: u16 = 0x20; // BPF_LD | BPF_W | BPF_ABS
    const JEQ_K: u16 = 0x15; // BPF_JMP | BPF_JEQ | BPF_K
    const RET_K: u16 = 0x06; // BPF_RET | BPF_K
    let insn = |code, jt, jf, k| libc::sock_filter { code, jt, jf, k };
    let filter = [
        insn(LD_W_ABS, 0, 0, 0), // seccomp_data.nr
        insn(JEQ_K, 0, 1, libc::SYS_ptrace as u32),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ERRNO | libc::EPERM as u32),
        insn(RET_K, 0, 0, libc::SECCOMP_RET_ALLOW),
    ];
    let prog = libc::sock_fprog {
        len: filter.len() as u16,
        filter: filter.as_ptr().cast_mut(),
    };
    // SAFETY: `prog` points at `filter`, both alive across the calls.
    let ok = unsafe {
        libc::prctl(libc::PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0) == 0
            && libc::prctl(
                libc::PR_SET_SECCOMP,
                libc::SECCOMP_MODE_FILTER,
                &raw const prog,
            ) == 0
    };
    if ok {
        Ok(())
    } else {
        Err(format!("seccomp: {}", std::io::Error::last_os_error()))
    }
}
