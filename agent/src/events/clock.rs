//! Kernel event times (`bpf_ktime_get_boot_ns`, `CLOCK_BOOTTIME`) → wall-clock RFC 3339.

use std::time::{Duration, SystemTime, UNIX_EPOCH};

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

    /// The wall-clock instant of a boot-time timestamp (arithmetic only, no clock read).
    #[must_use]
    pub fn wall_time(&self, boot_ns: u64) -> SystemTime {
        let ns = self.boot_epoch_ns + u128::from(boot_ns);
        let secs = (ns / 1_000_000_000) as u64;
        let sub = (ns % 1_000_000_000) as u32;
        UNIX_EPOCH + Duration::new(secs, sub)
    }
}
