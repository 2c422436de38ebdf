//! The probes' file operations that are no open: changes and new entries made without opening
//! anything (`truncate`, `chmod`, `chown`, `mkdir`, `symlink`, `mknod`), and an open through a
//! detached copy of a mount tree (`open_tree(OPEN_TREE_CLONE)`).

use std::ffi::{CStr, OsString};

use super::probe::{Failure, check, cstr};

/// A FIFO and a character device (`/dev/null`'s numbers) for `mknod`.
const FIFO: &str = "fifo";
const CHAR: &str = "char";

/// The operations of this file.
const OPS: [&str; 7] = [
    "truncate",
    "chmod",
    "chown",
    "mkdir",
    "symlink",
    "mknod",
    "tree-open",
];

/// Runs `op` if it is one of this file's; `None` when it is not.
pub(super) fn operate(
    op: &str,
    rest: &[OsString],
) -> Option<Result<Result<libc::c_long, Failure>, String>> {
    OPS.contains(&op).then(|| change(op, rest))
}

fn change(op: &str, rest: &[OsString]) -> Result<Result<libc::c_long, Failure>, String> {
    let arg = |i: usize| cstr(rest.get(i));
    let ran = |ret: libc::c_int, step: &'static str| check(ret.into(), step);
    // SAFETY (every call below): plain system calls on owned, NUL-terminated buffers.
    Ok(match op {
        "truncate" => ran(unsafe { libc::truncate(arg(0)?.as_ptr(), 0) }, "truncate"),
        "chmod" => ran(unsafe { libc::chmod(arg(0)?.as_ptr(), 0o4777) }, "chmod"),
        // To `nobody`: any owner but the present one is a change.
        "chown" => ran(
            unsafe { libc::chown(arg(0)?.as_ptr(), 65534, 65534) },
            "chown",
        ),
        "mkdir" => ran(unsafe { libc::mkdir(arg(0)?.as_ptr(), 0o755) }, "mkdir"),
        "symlink" => ran(
            unsafe { libc::symlink(arg(0)?.as_ptr(), arg(1)?.as_ptr()) },
            "symlink",
        ),
        "mknod" => {
            let kind = rest.get(1).and_then(|k| k.to_str());
            let (mode, dev) = match kind {
                Some(FIFO) => (libc::S_IFIFO, 0),
                Some(CHAR) => (libc::S_IFCHR, libc::makedev(1, 3)),
                _ => return Err(format!("mknod PATH {FIFO}|{CHAR}")),
            };
            ran(
                unsafe { libc::mknod(arg(0)?.as_ptr(), mode | 0o600, dev) },
                "mknod",
            )
        }
        "tree-open" => tree_open(&arg(0)?, &arg(1)?),
        other => return Err(format!("unknown operation {other:?}")),
    })
}

/// `open_tree(DIR, OPEN_TREE_CLONE)`: a detached copy of the mount tree at DIR, then a read
/// open of FILE relative to it, and a read of a byte (the open was not merely let through).
fn tree_open(dir: &CStr, file: &CStr) -> Result<libc::c_long, Failure> {
    let tree = check(
        unsafe {
            libc::syscall(
                libc::SYS_open_tree,
                libc::AT_FDCWD,
                dir.as_ptr(),
                libc::OPEN_TREE_CLONE | libc::OPEN_TREE_CLOEXEC,
            )
        },
        "open_tree(OPEN_TREE_CLONE)",
    )?;
    #[expect(clippy::cast_possible_truncation, reason = "a file descriptor")]
    let tree = tree as libc::c_int;
    let fd = check(
        unsafe { libc::openat(tree, file.as_ptr(), libc::O_RDONLY | libc::O_CLOEXEC) }.into(),
        "openat(the detached tree)",
    )?;
    let mut byte = [0u8; 1];
    #[expect(clippy::cast_possible_truncation, reason = "a file descriptor")]
    let read = unsafe { libc::read(fd as libc::c_int, byte.as_mut_ptr().cast(), 1) };
    check(read as libc::c_long, "read")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_operations_are_left_to_the_caller_and_bad_arguments_are_usage_errors() {
        assert!(
            operate("open", &[]).is_none(),
            "expected open not handled here"
        );
        let usage = operate("mknod", &["/nonexistent/x".into(), "socket".into()]);
        assert!(
            matches!(usage, Some(Err(ref u)) if u.contains("fifo|char")),
            "expected a usage error for an unknown mknod kind"
        );
        let missing = operate("truncate", &[]);
        assert!(
            matches!(missing, Some(Err(ref u)) if u.contains("missing")),
            "expected a usage error for a missing path"
        );
    }

    #[test]
    fn a_change_on_a_missing_file_fails_with_its_errno() {
        let Some(Ok(Err(f))) = operate("truncate", &["/nonexistent/corral-selftest".into()]) else {
            panic!("expected truncate of a missing file to fail");
        };
        assert_eq!(f.errno, libc::ENOENT, "expected ENOENT from {}", f.step);
    }
}
