//! Directory trees deeper than `PATH_MAX`, built with `mkdirat`/`openat` one level at a time
//! (a single `mkdir -p` cannot reach them).

use std::ffi::CString;

/// Names of path components that, appended to `prefix` (each after a `/`), make a path of
/// exactly `total_len` bytes. Every name is at most 200 bytes (below `NAME_MAX`).
#[must_use]
pub fn components_for(prefix: &str, total_len: usize) -> Vec<String> {
    assert!(
        total_len >= prefix.len() + 2,
        "expected room for at least one component after {prefix:?} in {total_len} bytes"
    );
    let mut remaining = total_len - prefix.len();
    let mut names = Vec::new();
    let mut letter = b'a';
    while remaining > 201 {
        // Leave at least 2 bytes ("/" and one character) for the last component.
        let take = if remaining - 201 >= 2 { 200 } else { 198 };
        names.push(String::from_utf8(vec![letter; take]).unwrap_or_default());
        letter = if letter == b'z' { b'a' } else { letter + 1 };
        remaining -= take + 1;
    }
    names.push("f".repeat(remaining - 1));
    names
}

/// Joins `prefix` and `names` with `/`.
#[must_use]
pub fn join(prefix: &str, names: &[String]) -> String {
    let mut p = prefix.to_owned();
    for n in names {
        p.push('/');
        p.push_str(n);
    }
    p
}

/// Creates the directories `top/names[0]/names[1]/...` (all of them) below the existing `top`,
/// walking with directory descriptors so the depth is not limited by `PATH_MAX`.
pub fn mkdirs(top: &str, names: &[String]) {
    let mut fd = open_dir(libc::AT_FDCWD, top);
    for name in names {
        let c = cstr(name);
        // SAFETY: `fd` is an open directory, `c` a valid C string.
        let ret = unsafe { libc::mkdirat(fd, c.as_ptr(), 0o755) };
        let err = std::io::Error::last_os_error();
        assert!(
            ret == 0 || err.raw_os_error() == Some(libc::EEXIST),
            "expected mkdirat({name:?}) below {top} to work: {err}"
        );
        let next = open_dir(fd, name);
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
        fd = next;
    }
    // SAFETY: closing our own descriptor.
    unsafe { libc::close(fd) };
}

/// Creates the file `top/dirs.../file` with `contents`; the directories must exist.
pub fn write_file(top: &str, dirs: &[String], file: &str, contents: &str) {
    let mut fd = open_dir(libc::AT_FDCWD, top);
    for name in dirs {
        let next = open_dir(fd, name);
        // SAFETY: closing our own descriptor.
        unsafe { libc::close(fd) };
        fd = next;
    }
    let c = cstr(file);
    // SAFETY: `fd` is an open directory, `c` a valid C string.
    let f = unsafe {
        libc::openat(
            fd,
            c.as_ptr(),
            libc::O_WRONLY | libc::O_CREAT | libc::O_TRUNC | libc::O_CLOEXEC,
            0o644 as libc::c_uint,
        )
    };
    assert!(
        f >= 0,
        "expected to create {file:?} deep below {top}: {}",
        std::io::Error::last_os_error()
    );
    // SAFETY: writing our own buffer to our own descriptor, then closing both descriptors.
    unsafe {
        let n = libc::write(f, contents.as_ptr().cast(), contents.len());
        assert!(
            n >= 0,
            "expected to write {file:?}: {}",
            std::io::Error::last_os_error()
        );
        libc::close(f);
        libc::close(fd);
    }
}

fn open_dir(at: libc::c_int, name: &str) -> libc::c_int {
    let c = cstr(name);
    // SAFETY: valid C string; `at` is AT_FDCWD or an open directory.
    let fd = unsafe {
        libc::openat(
            at,
            c.as_ptr(),
            libc::O_RDONLY | libc::O_DIRECTORY | libc::O_CLOEXEC,
        )
    };
    assert!(
        fd >= 0,
        "expected to open directory {name:?}: {}",
        std::io::Error::last_os_error()
    );
    fd
}

fn cstr(s: &str) -> CString {
    CString::new(s).unwrap_or_else(|_| panic!("expected no NUL byte in {s:?}"))
}

#[cfg(test)]
mod tests {
    use super::{components_for, join};

    #[test]
    fn components_make_the_exact_length() {
        for total in [8, 40, 208, 209, 300, 4050, 4200, 9000] {
            let names = components_for("/tmp/x", total);
            let p = join("/tmp/x", &names);
            assert_eq!(
                p.len(),
                total,
                "expected a path of {total} bytes, got {}",
                p.len()
            );
            assert!(
                names.iter().all(|n| !n.is_empty() && n.len() <= 200),
                "expected every component to be 1..=200 bytes"
            );
        }
    }
}
