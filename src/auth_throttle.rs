//! Failed logins per client address: after [`MAX_FAILURES`] wrong passwords, client
//! secrets or tokens on the management interfaces within [`WINDOW`], that address is
//! refused (429) until the window ends. Memory is bounded: at most [`MAX_ADDRESSES`]
//! addresses are remembered, expired ones are forgotten first.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// Failures allowed per address and window.
pub const MAX_FAILURES: u32 = 5;
/// How long failures are remembered, counted from an address's first failure.
pub const WINDOW: Duration = Duration::from_secs(60);
/// Most addresses remembered at once.
pub const MAX_ADDRESSES: usize = 10_000;

/// The failure counts of the addresses that failed recently.
#[derive(Debug, Default)]
pub struct AuthThrottle {
    table: Mutex<HashMap<IpAddr, Failures>>,
}

#[derive(Debug, Clone, Copy)]
struct Failures {
    count: u32,
    since: Instant,
}

impl Failures {
    fn expired(&self, now: Instant) -> bool {
        now.saturating_duration_since(self.since) >= WINDOW
    }
}

impl AuthThrottle {
    /// An empty table.
    pub fn new() -> AuthThrottle {
        AuthThrottle::default()
    }

    fn table(&self) -> std::sync::MutexGuard<'_, HashMap<IpAddr, Failures>> {
        self.table.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// How long `addr` must still wait before it may try again (None: it may now).
    pub fn blocked(&self, addr: IpAddr, now: Instant) -> Option<Duration> {
        let mut table = self.table();
        let failures = *table.get(&addr)?;
        if failures.expired(now) {
            table.remove(&addr);
            return None;
        }
        (failures.count >= MAX_FAILURES)
            .then(|| WINDOW.saturating_sub(now.saturating_duration_since(failures.since)))
    }

    /// Counts a failed attempt of `addr`; returns its failures in the current window.
    pub fn failed(&self, addr: IpAddr, now: Instant) -> u32 {
        let mut table = self.table();
        if table.len() >= MAX_ADDRESSES && !table.contains_key(&addr) {
            table.retain(|_, f| !f.expired(now));
            if table.len() >= MAX_ADDRESSES {
                // Still full of live entries (addresses sprayed on purpose): start over
                // rather than grow.
                table.clear();
            }
        }
        let entry = table.entry(addr).or_insert(Failures {
            count: 0,
            since: now,
        });
        if entry.expired(now) {
            *entry = Failures {
                count: 0,
                since: now,
            };
        }
        entry.count = entry.count.saturating_add(1);
        entry.count
    }

    /// Addresses remembered now.
    pub fn len(&self) -> usize {
        self.table().len()
    }

    /// True when no address is remembered.
    pub fn is_empty(&self) -> bool {
        self.len() == 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ip(last: u8) -> IpAddr {
        IpAddr::from([192, 0, 2, last])
    }

    #[test]
    fn an_address_is_blocked_after_max_failures_until_the_window_ends() {
        let throttle = AuthThrottle::new();
        let t0 = Instant::now();
        for n in 1..MAX_FAILURES {
            assert_eq!(throttle.failed(ip(1), t0), n);
            assert_eq!(throttle.blocked(ip(1), t0), None);
        }
        assert_eq!(throttle.failed(ip(1), t0), MAX_FAILURES);
        let later = t0 + Duration::from_secs(20);
        assert_eq!(
            throttle.blocked(ip(1), later),
            Some(Duration::from_secs(40))
        );
        assert_eq!(
            throttle.blocked(ip(2), later),
            None,
            "others are not blocked"
        );
        assert_eq!(throttle.blocked(ip(1), t0 + WINDOW), None);
        assert!(throttle.is_empty(), "an expired entry is forgotten");
        assert_eq!(throttle.failed(ip(1), t0 + WINDOW), 1, "a new window");
    }

    #[test]
    fn memory_is_bounded() {
        let throttle = AuthThrottle::new();
        let t0 = Instant::now();
        for i in 0..MAX_ADDRESSES as u32 + 5 {
            let addr = IpAddr::from(std::net::Ipv6Addr::from(
                (0x2001_0db8_u128 << 96) + u128::from(i),
            ));
            throttle.failed(addr, t0);
            assert!(throttle.len() <= MAX_ADDRESSES);
        }
        // Expired entries make room without forgetting live ones.
        let throttle = AuthThrottle::new();
        for i in 0..MAX_ADDRESSES as u32 {
            throttle.failed(IpAddr::from(std::net::Ipv4Addr::from(u32::MAX - i)), t0);
        }
        let later = t0 + WINDOW;
        for _ in 0..MAX_FAILURES {
            throttle.failed(ip(9), later);
        }
        assert_eq!(throttle.len(), 1);
        assert!(throttle.blocked(ip(9), later).is_some());
    }
}
