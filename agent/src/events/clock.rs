//! Kernel event times (`bpf_ktime_get_boot_ns`, `CLOCK_BOOTTIME`) → wall-clock RFC 3339.

use std::{
    cell::Cell,
    time::{Duration, SystemTime, UNIX_EPOCH},
};

/// `YYYY-MM-DDTHH:MM:SS`.
const SECONDS_LEN: usize = 19;

thread_local! {
    /// The last second `write_rfc3339` formatted, and its text (a zero first byte: none yet).
    static SECOND: Cell<(u64, [u8; SECONDS_LEN])> = const { Cell::new((0, [0; SECONDS_LEN])) };
}

/// The wall-clock instant at which `CLOCK_BOOTTIME` was zero, sampled once at start.
#[derive(Debug, Clone, Copy)]
pub struct BootClock {
    boot_epoch_ns: u128,
}

impl BootClock {
    #[must_use]
    pub fn now() -> Self {
        let mut ts = libc::timespec {
            tv_sec: 0,
            tv_nsec: 0,
        };
        // SAFETY: valid clock id and out pointer.
        unsafe { libc::clock_gettime(libc::CLOCK_BOOTTIME, &raw mut ts) };
        let boot_ns = ts.tv_sec as u128 * 1_000_000_000 + ts.tv_nsec as u128;
        let wall_ns = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map_or(0, |d| d.as_nanos());
        Self {
            boot_epoch_ns: wall_ns.saturating_sub(boot_ns),
        }
    }

    /// A clock whose boot happened at `boot_epoch_ns` after the Unix epoch (for tests).
    #[must_use]
    pub const fn fixed(boot_epoch_ns: u128) -> Self {
        Self { boot_epoch_ns }
    }

    /// The current wall-clock time, formatted as `rfc3339` does.
    #[must_use]
    pub fn now_rfc3339(&self) -> String {
        humantime::format_rfc3339_micros(SystemTime::now()).to_string()
    }

    /// Formats a boot-time timestamp as `2026-11-26T06:30:00.123456Z`.
    #[must_use]
    pub fn rfc3339(&self, boot_ns: u64) -> String {
        humantime::format_rfc3339_micros(self.wall_time(boot_ns)).to_string()
    }

    /// Appends `rfc3339(boot_ns)`. The text up to the seconds is formatted once per second
    /// (per thread) and copied after that.
    pub fn write_rfc3339(&self, boot_ns: u64, out: &mut Vec<u8>) {
        let ns = self.boot_epoch_ns + u128::from(boot_ns);
        let secs = (ns / 1_000_000_000) as u64;
        let micros = ((ns % 1_000_000_000) / 1000) as u32;
        let prefix = SECOND.with(|cached| {
            let (at, prefix) = cached.get();
            if at == secs && prefix[0] != 0 {
                return prefix;
            }
            let text = humantime::format_rfc3339_seconds(UNIX_EPOCH + Duration::from_secs(secs))
                .to_string();
            let mut prefix = [0; SECONDS_LEN];
            // `YYYY-MM-DDTHH:MM:SS` then `Z`; a year past 9999 would not fit: left unformatted.
            if let Some(head) = text.as_bytes().get(..SECONDS_LEN) {
                prefix.copy_from_slice(head);
                cached.set((secs, prefix));
            }
            prefix
        });
        if prefix[0] == 0 {
            out.extend_from_slice(self.rfc3339(boot_ns).as_bytes());
            return;
        }
        out.extend_from_slice(&prefix);
        out.push(b'.');
        // Six digits, zero padded: `1xxxxxx` without its `1`.
        let mut digits = itoa::Buffer::new();
        out.extend_from_slice(&digits.format(1_000_000 + micros).as_bytes()[1..]);
        out.push(b'Z');
    }

    /// The wall-clock instant of a boot-time timestamp (arithmetic only, no clock read).
    #[must_use]
    pub fn wall_time(&self, boot_ns: u64) -> SystemTime {
        let ns = self.boot_epoch_ns + u128::from(boot_ns);
        let secs = (ns / 1_000_000_000) as u64;
        let sub = (ns % 1_000_000_000) as u32;
        UNIX_EPOCH + Duration::new(secs, sub)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn written_times_match_rfc3339_across_seconds_and_clocks() {
        for clock in [
            BootClock::fixed(0),
            BootClock::fixed(1_795_000_000_999_999_999),
        ] {
            for boot_ns in [
                0,
                999,
                1_000,
                999_999_999,
                1_000_000_000,
                86_400_000_001_000,
                5,
            ] {
                let mut out = b"x".to_vec();
                clock.write_rfc3339(boot_ns, &mut out);
                assert_eq!(
                    String::from_utf8_lossy(&out[1..]),
                    clock.rfc3339(boot_ns),
                    "expected the cached text to equal humantime's at {boot_ns}"
                );
            }
        }
    }
}
