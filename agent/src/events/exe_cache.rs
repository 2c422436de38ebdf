//! The executables (and parents) of recently seen processes, so a burst of events from one
//! process costs one look-up in /proc, not one per event.

use std::{
    collections::HashMap,
    time::{Duration, Instant},
};

/// How long a looked-up executable is reused (a pid reused within it could be misnamed; the
/// kernel's own record, `EXES`, is asked first and is never cached here).
const FRESH_FOR: Duration = Duration::from_secs(1);
/// Entries kept at most; the cache is emptied when full.
const CAPACITY: usize = 4096;

/// tgid → executable (or `None`: the process had gone), with the time it was looked up.
#[derive(Default)]
pub struct ExeCache {
    entries: HashMap<u32, (Instant, Option<String>)>,
    /// tgid → parent tgid, for records whose program could not read it (cgroup programs).
    parents: HashMap<u32, (Instant, Option<u32>)>,
}

impl ExeCache {
    /// The executable of `tgid`: from the cache while fresh, else from `look_up`.
    pub fn get(
        &mut self,
        tgid: u32,
        look_up: impl FnOnce(u32) -> Option<String>,
    ) -> Option<String> {
        cached(&mut self.entries, tgid, look_up)
    }

    /// The parent of `tgid`: from the cache while fresh, else from `look_up`.
    pub fn parent(&mut self, tgid: u32, look_up: impl FnOnce(u32) -> Option<u32>) -> Option<u32> {
        cached(&mut self.parents, tgid, look_up)
    }
}

fn cached<T: Clone>(
    entries: &mut HashMap<u32, (Instant, Option<T>)>,
    tgid: u32,
    look_up: impl FnOnce(u32) -> Option<T>,
) -> Option<T> {
    let now = Instant::now();
    if let Some((at, value)) = entries.get(&tgid) {
        if now.duration_since(*at) < FRESH_FOR {
            return value.clone();
        }
    }
    if entries.len() >= CAPACITY {
        entries.clear();
    }
    let value = look_up(tgid);
    entries.insert(tgid, (now, value.clone()));
    value
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_fresh_entry_is_reused_and_a_stale_one_looked_up_again() {
        let mut cache = ExeCache::default();
        let calls = std::cell::Cell::new(0);
        let look = |_: u32| {
            calls.set(calls.get() + 1);
            Some("/usr/bin/cat".to_owned())
        };
        assert_eq!(cache.get(7, look).as_deref(), Some("/usr/bin/cat"));
        assert_eq!(cache.get(7, look).as_deref(), Some("/usr/bin/cat"));
        assert_eq!(
            calls.get(),
            1,
            "the second event of the same process is served from the cache"
        );
        cache.entries.insert(
            7,
            (
                Instant::now()
                    .checked_sub(FRESH_FOR * 2)
                    .unwrap_or_else(Instant::now),
                None,
            ),
        );
        assert_eq!(cache.get(7, look).as_deref(), Some("/usr/bin/cat"));
        assert_eq!(calls.get(), 2, "a stale entry is looked up again");
    }

    #[test]
    fn a_parent_is_looked_up_once_while_fresh() {
        let mut cache = ExeCache::default();
        let calls = std::cell::Cell::new(0);
        let look = |_: u32| {
            calls.set(calls.get() + 1);
            Some(41)
        };
        assert_eq!(cache.parent(42, look), Some(41));
        assert_eq!(cache.parent(42, look), Some(41));
        assert_eq!(
            calls.get(),
            1,
            "expected the second look-up served from the cache"
        );
        assert_eq!(cache.parent(43, look), Some(41));
        assert_eq!(calls.get(), 2, "expected another process looked up");
    }
}
