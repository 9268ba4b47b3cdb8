//! Login throttling, in memory: after too many failed logins for one account or from one address
//! within a window, further attempts are refused (429) before any password is hashed.

use std::collections::HashMap;
use std::hash::{BuildHasher, RandomState};
use std::net::IpAddr;
use std::sync::Mutex;
use std::time::{Duration, Instant};

/// How many failed logins are tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures per account e-mail within `window` before it is locked for the rest of it.
    pub max_failures_per_account: u32,
    /// Failures per client address within `window` (address only known with connect info).
    pub max_failures_per_address: u32,
    /// The counting window.
    pub window: Duration,
}

impl Default for LoginThrottle {
    /// 5 per account, 20 per address, per 15 minutes.
    fn default() -> Self {
        Self {
            max_failures_per_account: 5,
            max_failures_per_address: 20,
            window: Duration::from_secs(15 * 60),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Key {
    Account(u64),
    Address(IpAddr),
}

#[derive(Debug, Clone, Copy)]
struct Window {
    started: Instant,
    failures: u32,
}

/// Above this many tracked keys, expired ones are dropped; a flood of distinct keys beyond it
/// evicts everything rather than growing without bound.
const MAX_KEYS: usize = 100_000;

/// The failure counters.
#[derive(Debug)]
pub(crate) struct Throttle {
    limits: LoginThrottle,
    windows: Mutex<HashMap<Key, Window>>,
    /// Accounts are keyed by a randomly keyed hash of the e-mail: the map holds no addresses,
    /// and nobody can aim collisions at someone else's account.
    hasher: RandomState,
}

impl Throttle {
    pub(crate) fn new(limits: LoginThrottle) -> Self {
        Self {
            limits,
            windows: Mutex::new(HashMap::new()),
            hasher: RandomState::new(),
        }
    }

    fn account_key(&self, email: &str) -> Key {
        Key::Account(self.hasher.hash_one(email.trim().to_lowercase()))
    }

    fn keys(&self, email: &str, ip: Option<IpAddr>) -> impl Iterator<Item = Key> + use<> {
        std::iter::once(self.account_key(email)).chain(ip.map(Key::Address))
    }

    fn limit(&self, key: Key) -> u32 {
        match key {
            Key::Account(_) => self.limits.max_failures_per_account,
            Key::Address(_) => self.limits.max_failures_per_address,
        }
    }

    /// `Err(seconds to wait)` when the account or the address is locked now.
    pub(crate) fn check(&self, email: &str, ip: Option<IpAddr>, now: Instant) -> Result<(), u64> {
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        let mut wait = None::<Duration>;
        for key in self.keys(email, ip) {
            if let Some(w) = windows.get(&key) {
                let elapsed = now.saturating_duration_since(w.started);
                if elapsed < self.limits.window && w.failures >= self.limit(key) {
                    let left = self.limits.window - elapsed;
                    wait = Some(wait.map_or(left, |w| w.max(left)));
                }
            }
        }
        match wait {
            Some(left) => Err(left.as_secs() + u64::from(left.subsec_nanos() > 0)),
            None => Ok(()),
        }
    }

    /// Counts a failed login against the account and the address.
    pub(crate) fn failed(&self, email: &str, ip: Option<IpAddr>, now: Instant) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_KEYS {
            let window = self.limits.window;
            windows.retain(|_, w| now.saturating_duration_since(w.started) < window);
            if windows.len() >= MAX_KEYS {
                windows.clear();
            }
        }
        for key in self.keys(email, ip) {
            let w = windows.entry(key).or_insert(Window {
                started: now,
                failures: 0,
            });
            if now.saturating_duration_since(w.started) >= self.limits.window {
                *w = Window {
                    started: now,
                    failures: 0,
                };
            }
            w.failures = w.failures.saturating_add(1);
        }
    }

    /// A successful login clears the account's counter (not the address's).
    pub(crate) fn succeeded(&self, email: &str) {
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        windows.remove(&self.account_key(email));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locks_an_account_after_its_limit_until_the_window_ends() {
        let t = Throttle::new(LoginThrottle {
            max_failures_per_account: 3,
            max_failures_per_address: 100,
            window: Duration::from_secs(60),
        });
        let start = Instant::now();
        for _ in 0..3 {
            assert_eq!(t.check("a@x.io", None, start), Ok(()));
            t.failed("a@x.io", None, start);
        }
        assert_eq!(t.check("A@X.io ", None, start), Err(60));
        assert_eq!(
            t.check("a@x.io", None, start + Duration::from_secs(45)),
            Err(15)
        );
        assert_eq!(t.check("b@x.io", None, start), Ok(()));
        assert_eq!(
            t.check("a@x.io", None, start + Duration::from_secs(60)),
            Ok(())
        );
    }

    #[test]
    fn locks_an_address_across_accounts() {
        let t = Throttle::new(LoginThrottle {
            max_failures_per_account: 100,
            max_failures_per_address: 2,
            window: Duration::from_secs(60),
        });
        let ip: IpAddr = "10.1.2.3".parse().unwrap();
        let now = Instant::now();
        t.failed("a@x.io", Some(ip), now);
        t.failed("b@x.io", Some(ip), now);
        assert!(t.check("c@x.io", Some(ip), now).is_err());
        assert!(t.check("c@x.io", None, now).is_ok());
        assert!(
            t.check("c@x.io", Some("10.1.2.4".parse().unwrap()), now)
                .is_ok()
        );
    }

    #[test]
    fn success_clears_the_account() {
        let t = Throttle::new(LoginThrottle {
            max_failures_per_account: 2,
            ..LoginThrottle::default()
        });
        let now = Instant::now();
        t.failed("a@x.io", None, now);
        t.succeeded("a@x.io");
        t.failed("a@x.io", None, now);
        assert!(t.check("a@x.io", None, now).is_ok());
    }
}
