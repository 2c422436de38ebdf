//! `corral-landlock-exec SPEC_JSON CMD [ARGS...]`: restricts itself with Corral's Landlock
//! backend (`agent::landlock::apply`, exactly what `corral run` does after the daemon's answer),
//! then execs CMD (an absolute path). Lets the kernel tests exercise Landlock without a daemon.
//!
//! On success it prints `applied <JSON>` (what was enforced) on stderr and becomes CMD. If the
//! spec cannot be applied it prints `corral-landlock-exec: <error>` and exits 77 without running
//! CMD; if CMD cannot be executed, `exec-error <errno>` and exit 126. Usage errors exit 2.

use std::ffi::{CString, OsString};
use std::os::unix::ffi::OsStrExt;
use std::process::ExitCode;

use agent::landlock::{LandlockSpec, apply};

fn main() -> ExitCode {
    let args: Vec<OsString> = std::env::args_os().skip(1).collect();
    let Some((spec, command)) = args.split_first() else {
        return usage("SPEC_JSON CMD [ARGS...]");
    };
    if command.is_empty() {
        return usage("a command is needed after the spec");
    }
    let spec: LandlockSpec = match serde_json::from_slice(spec.as_bytes()) {
        Ok(spec) => spec,
        Err(e) => return usage(&format!("unreadable spec: {e}")),
    };
    let Ok(c_command) = command
        .iter()
        .map(|a| CString::new(a.as_bytes()))
        .collect::<Result<Vec<_>, _>>()
    else {
        return usage("an argument contains a NUL byte");
    };
    match apply(&spec) {
        Ok(applied) => {
            let report = serde_json::to_string(&applied).unwrap_or_default();
            eprintln!("applied {report}");
        }
        Err(e) => {
            eprintln!("corral-landlock-exec: {e}");
            return ExitCode::from(77);
        }
    }
    let mut ptrs: Vec<*const libc::c_char> = c_command.iter().map(|a| a.as_ptr()).collect();
    ptrs.push(std::ptr::null());
    // SAFETY: NULL-terminated array of valid C strings that outlive the call.
    unsafe { libc::execv(ptrs[0], ptrs.as_ptr()) };
    let errno = std::io::Error::last_os_error();
    eprintln!("exec-error {} ({errno})", errno.raw_os_error().unwrap_or(0));
    ExitCode::from(126)
}

fn usage(message: &str) -> ExitCode {
    eprintln!("corral-landlock-exec: usage: {message}");
    ExitCode::from(2)
}
