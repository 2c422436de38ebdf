//! A name's addresses, each with the instant its TTL runs out: what both address books (the
//! daemon's own lookups and the learned answers) keep per name.

use std::{collections::BTreeMap, net::IpAddr, time::Instant};

/// Address → when its TTL runs out.
pub type Expiries = BTreeMap<IpAddr, Instant>;

/// Holds `addr` until at least `until` (an address already held keeps the later of its two
/// instants). Returns whether `addr` is new.
pub fn hold(addrs: &mut Expiries, addr: IpAddr, until: Instant) -> bool {
    if let Some(expires) = addrs.get_mut(&addr) {
        *expires = (*expires).max(until);
        false
    } else {
        addrs.insert(addr, until);
        true
    }
}

/// Drops the addresses whose TTL ran out at `now`; returns them.
pub fn take_expired(addrs: &mut Expiries, now: Instant) -> Vec<IpAddr> {
    let mut expired = Vec::new();
    addrs.retain(|addr, until| {
        let keep = *until > now;
        if !keep {
            expired.push(*addr);
        }
        keep
    });
    expired
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;

    #[test]
    fn a_held_address_keeps_its_latest_instant_and_runs_out_then() {
        let t0 = Instant::now();
        let a: IpAddr = [192, 0, 2, 1].into();
        let b: IpAddr = [192, 0, 2, 2].into();
        let mut addrs = Expiries::new();
        assert!(hold(&mut addrs, a, t0 + Duration::from_secs(5)), "a is new");
        assert!(
            !hold(&mut addrs, a, t0 + Duration::from_secs(3)),
            "a is held already"
        );
        assert!(hold(&mut addrs, b, t0 + Duration::from_secs(4)), "b is new");
        assert_eq!(
            take_expired(&mut addrs, t0 + Duration::from_secs(4)),
            vec![b]
        );
        assert!(
            take_expired(&mut addrs, t0 + Duration::from_secs(4)).is_empty(),
            "a was held until 5s, not moved back to 3s"
        );
        assert_eq!(
            take_expired(&mut addrs, t0 + Duration::from_secs(5)),
            vec![a]
        );
        assert!(addrs.is_empty(), "expected nothing left, got {addrs:?}");
    }
}
