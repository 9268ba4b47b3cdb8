//! Throttling of logins and registrations, aimed at the abuser rather than at the victim.
//!
//! Failed logins are counted three ways within a window: per account *and* client address, per
//! client address, and per account. The first two refuse further attempts (429 with
//! `Retry-After`) before any password is hashed: a guesser is stopped at its own address, and
//! one address cannot try many accounts. The per-account count never locks the account — the
//! owner logging in from elsewhere still gets in — it only slows every attempt on it down (a
//! delay growing with the failures, capped), which makes a guessing campaign spread over many
//! addresses slow too. Registrations are counted per address (each costs a password hash).
//!
//! The counts live behind [`FailureCounts`]: in this process by default ([`MemoryCounts`]), or
//! in a store shared by several instances. Keys are keyed hashes of the e-mail and address, so
//! no store of counts holds either in clear.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use sha2::Sha256;

/// How many failed logins and registrations are tolerated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LoginThrottle {
    /// Failures for one account from one address within `window` before that address is refused
    /// for that account for the rest of it.
    pub max_failures_per_account_and_address: u32,
    /// Failures from one address within `window`, whatever the accounts, before the address is
    /// refused (address only known with connect info).
    pub max_failures_per_address: u32,
    /// Failures for one account within `window`, from anywhere, after which every attempt on it
    /// waits: 250 ms for the first failure past this, doubling with each, up to `max_delay`.
    pub slow_down_after_account_failures: u32,
    /// The longest such wait.
    pub max_delay: Duration,
    /// The counting window of failures.
    pub window: Duration,
    /// Registrations (customer and pharmacy) from one address per hour.
    pub max_registrations_per_address_per_hour: u32,
}

impl Default for LoginThrottle {
    /// 5 per account and address, 20 per address, slowing an account down after 5, per 15
    /// minutes; 20 registrations per address per hour.
    fn default() -> Self {
        Self {
            max_failures_per_account_and_address: 5,
            max_failures_per_address: 20,
            slow_down_after_account_failures: 5,
            max_delay: Duration::from_secs(4),
            window: Duration::from_secs(15 * 60),
            max_registrations_per_address_per_hour: 20,
        }
    }
}

/// The store of counts could not be reached; throttling then lets requests through (and says
/// so in the log) rather than refusing every login.
#[derive(Debug, Clone, thiserror::Error)]
#[error("failure counts unavailable: {0}")]
pub struct CountsUnavailable(pub String);

/// Where throttling counts live. Each key counts within a window that starts with its first
/// event and lasts `window`; then the key starts again from zero.
#[async_trait]
pub trait FailureCounts: Send + Sync + 'static {
    /// The count under `key` in its current window and how long that window still runs, or
    /// `None` when there is none.
    async fn get(&self, key: &str) -> Result<Option<(u32, Duration)>, CountsUnavailable>;
    /// Counts one event under `key` (opening a window of `window` if none runs); the new count.
    async fn add(&self, key: &str, window: Duration) -> Result<u32, CountsUnavailable>;
    /// Forgets `key`.
    async fn clear(&self, key: &str) -> Result<(), CountsUnavailable>;
}

#[derive(Debug, Clone, Copy)]
struct Window {
    ends: Instant,
    count: u32,
}

/// Above this many tracked keys, expired ones are dropped; a flood of distinct keys beyond it
/// evicts everything rather than growing without bound.
const MAX_KEYS: usize = 100_000;

/// Counts in this process's memory: for one instance.
pub struct MemoryCounts {
    windows: Mutex<HashMap<String, Window>>,
    now: Box<dyn Fn() -> Instant + Send + Sync>,
}

impl Default for MemoryCounts {
    fn default() -> Self {
        Self::with_clock(Instant::now)
    }
}

impl MemoryCounts {
    /// Counts timed by `now` (tests move it).
    pub fn with_clock(now: impl Fn() -> Instant + Send + Sync + 'static) -> Self {
        Self {
            windows: Mutex::new(HashMap::new()),
            now: Box::new(now),
        }
    }
}

#[async_trait]
impl FailureCounts for MemoryCounts {
    async fn get(&self, key: &str) -> Result<Option<(u32, Duration)>, CountsUnavailable> {
        let now = (self.now)();
        let windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        Ok(windows
            .get(key)
            .filter(|w| w.ends > now)
            .map(|w| (w.count, w.ends - now)))
    }

    async fn add(&self, key: &str, window: Duration) -> Result<u32, CountsUnavailable> {
        let now = (self.now)();
        let mut windows = self.windows.lock().unwrap_or_else(|e| e.into_inner());
        if windows.len() >= MAX_KEYS {
            windows.retain(|_, w| w.ends > now);
            if windows.len() >= MAX_KEYS {
                windows.clear();
            }
        }
        let w = windows.entry(key.to_owned()).or_insert(Window {
            ends: now + window,
            count: 0,
        });
        if w.ends <= now {
            *w = Window {
                ends: now + window,
                count: 0,
            };
        }
        w.count = w.count.saturating_add(1);
        Ok(w.count)
    }

    async fn clear(&self, key: &str) -> Result<(), CountsUnavailable> {
        self.windows
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .remove(key);
        Ok(())
    }
}

/// What the throttle says before a login is tried.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Verdict {
    /// Go ahead, after waiting this long (zero unless the account is under attack).
    Proceed(Duration),
    /// Refused: seconds until the client may try again.
    Refuse(u64),
}

/// The throttling policy over a store of counts.
pub(crate) struct Throttle {
    limits: LoginThrottle,
    counts: Arc<dyn FailureCounts>,
    /// Keys are HMACs under this key: the counts hold no e-mail or address, and nobody can aim
    /// a collision at someone else's account.
    key: [u8; 32],
}

fn seconds(left: Duration) -> u64 {
    (left.as_secs() + u64::from(left.subsec_nanos() > 0)).max(1)
}

impl Throttle {
    pub(crate) fn new(
        limits: LoginThrottle,
        counts: Arc<dyn FailureCounts>,
        key: [u8; 32],
    ) -> Self {
        Self {
            limits,
            counts,
            key,
        }
    }

    fn hashed(&self, kind: &str, parts: &[&[u8]]) -> String {
        let mut mac = Hmac::<Sha256>::new_from_slice(&self.key).expect("any key length");
        mac.update(kind.as_bytes());
        for part in parts {
            mac.update(&(part.len() as u64).to_be_bytes());
            mac.update(part);
        }
        let tag = mac.finalize().into_bytes();
        let hex: String = tag[..16].iter().map(|b| format!("{b:02x}")).collect();
        format!("{kind}:{hex}")
    }

    fn account(&self, email: &str) -> String {
        self.hashed("account", &[email.trim().to_lowercase().as_bytes()])
    }

    fn pair(&self, email: &str, ip: Option<IpAddr>) -> String {
        let ip = ip.map(|ip| ip.to_string()).unwrap_or_default();
        self.hashed(
            "account-address",
            &[email.trim().to_lowercase().as_bytes(), ip.as_bytes()],
        )
    }

    fn address(&self, kind: &str, ip: IpAddr) -> String {
        self.hashed(kind, &[ip.to_string().as_bytes()])
    }

    async fn count(&self, key: &str) -> Option<(u32, Duration)> {
        match self.counts.get(key).await {
            Ok(count) => count,
            Err(e) => {
                tracing::warn!(error = %e, "throttle counts unavailable; not throttling");
                None
            }
        }
    }

    async fn add(&self, key: &str, window: Duration) -> u32 {
        self.counts.add(key, window).await.unwrap_or_else(|e| {
            tracing::warn!(error = %e, "throttle counts unavailable; not counting");
            0
        })
    }

    /// Before a login for `email` from `ip` is tried.
    pub(crate) async fn before_login(&self, email: &str, ip: Option<IpAddr>) -> Verdict {
        let mut refusals = Vec::new();
        if let Some((n, left)) = self.count(&self.pair(email, ip)).await
            && n >= self.limits.max_failures_per_account_and_address
        {
            refusals.push(left);
        }
        if let Some(ip) = ip
            && let Some((n, left)) = self.count(&self.address("address", ip)).await
            && n >= self.limits.max_failures_per_address
        {
            refusals.push(left);
        }
        if let Some(longest) = refusals.into_iter().max() {
            return Verdict::Refuse(seconds(longest));
        }
        let delay = match self.count(&self.account(email)).await {
            Some((n, _)) if n >= self.limits.slow_down_after_account_failures => {
                let past = n - self.limits.slow_down_after_account_failures;
                Duration::from_millis(250)
                    .saturating_mul(2u32.saturating_pow(past.min(16)))
                    .min(self.limits.max_delay)
            }
            _ => Duration::ZERO,
        };
        Verdict::Proceed(delay)
    }

    /// Counts a failed login of `email` from `ip`.
    pub(crate) async fn login_failed(&self, email: &str, ip: Option<IpAddr>) {
        let window = self.limits.window;
        self.add(&self.pair(email, ip), window).await;
        self.add(&self.account(email), window).await;
        if let Some(ip) = ip {
            self.add(&self.address("address", ip), window).await;
        }
    }

    /// A successful login clears the account's counts (not the address's).
    pub(crate) async fn login_succeeded(&self, email: &str, ip: Option<IpAddr>) {
        for key in [self.pair(email, ip), self.account(email)] {
            if let Err(e) = self.counts.clear(&key).await {
                tracing::warn!(error = %e, "throttle counts unavailable; not cleared");
            }
        }
    }

    /// Counts a registration from `ip`; `Err(seconds)` when the address has registered too many
    /// accounts this hour.
    pub(crate) async fn registration(&self, ip: Option<IpAddr>) -> Result<(), u64> {
        let Some(ip) = ip else {
            return Ok(());
        };
        let key = self.address("registrations", ip);
        if let Some((n, left)) = self.count(&key).await
            && n >= self.limits.max_registrations_per_address_per_hour
        {
            return Err(seconds(left));
        }
        self.add(&key, Duration::from_secs(3600)).await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicU64, Ordering};

    use super::*;

    /// A throttle whose clock moves by hand (milliseconds past `start`).
    fn throttle(limits: LoginThrottle) -> (Throttle, Arc<AtomicU64>) {
        let start = Instant::now();
        let offset = Arc::new(AtomicU64::new(0));
        let clock = offset.clone();
        let counts = MemoryCounts::with_clock(move || {
            start + Duration::from_millis(clock.load(Ordering::SeqCst))
        });
        (Throttle::new(limits, Arc::new(counts), [7; 32]), offset)
    }

    fn ip(text: &str) -> Option<IpAddr> {
        Some(text.parse().unwrap())
    }

    fn limits() -> LoginThrottle {
        LoginThrottle {
            max_failures_per_account_and_address: 3,
            max_failures_per_address: 10,
            slow_down_after_account_failures: 3,
            max_delay: Duration::from_secs(2),
            window: Duration::from_secs(60),
            max_registrations_per_address_per_hour: 2,
        }
    }

    #[tokio::test]
    async fn the_guessing_address_is_refused_and_the_owner_elsewhere_is_only_slowed() {
        let (t, clock) = throttle(limits());
        let attacker = ip("10.0.0.1");
        for _ in 0..3 {
            assert_eq!(
                t.before_login("a@x.io", attacker).await,
                Verdict::Proceed(Duration::ZERO)
            );
            t.login_failed("a@x.io", attacker).await;
        }
        assert_eq!(
            t.before_login("A@X.io ", attacker).await,
            Verdict::Refuse(60)
        );
        clock.store(45_000, Ordering::SeqCst);
        assert_eq!(
            t.before_login("a@x.io", attacker).await,
            Verdict::Refuse(15)
        );
        // The owner, from its own address: not refused, only slowed down.
        assert_eq!(
            t.before_login("a@x.io", ip("10.9.9.9")).await,
            Verdict::Proceed(Duration::from_millis(250))
        );
        t.login_succeeded("a@x.io", ip("10.9.9.9")).await;
        assert_eq!(
            t.before_login("a@x.io", ip("10.9.9.9")).await,
            Verdict::Proceed(Duration::ZERO)
        );
        // The window ends.
        clock.store(60_000, Ordering::SeqCst);
        assert_eq!(
            t.before_login("a@x.io", attacker).await,
            Verdict::Proceed(Duration::ZERO)
        );
    }

    #[tokio::test]
    async fn a_campaign_from_many_addresses_slows_the_account_more_and_more() {
        let (t, _) = throttle(limits());
        for n in 0..8u8 {
            t.login_failed("a@x.io", ip(&format!("10.0.0.{n}"))).await;
        }
        // 8 failures, 3 tolerated: 250 ms doubled four times, capped at 2 s.
        assert_eq!(
            t.before_login("a@x.io", ip("10.0.1.1")).await,
            Verdict::Proceed(Duration::from_secs(2))
        );
        assert_eq!(
            t.before_login("b@x.io", ip("10.0.1.1")).await,
            Verdict::Proceed(Duration::ZERO)
        );
    }

    #[tokio::test]
    async fn one_address_cannot_try_many_accounts() {
        let (t, _) = throttle(limits());
        let attacker = ip("10.1.2.3");
        for n in 0..10 {
            t.login_failed(&format!("user{n}@x.io"), attacker).await;
        }
        assert!(matches!(
            t.before_login("fresh@x.io", attacker).await,
            Verdict::Refuse(_)
        ));
        assert!(matches!(
            t.before_login("fresh@x.io", ip("10.1.2.4")).await,
            Verdict::Proceed(_)
        ));
    }

    #[tokio::test]
    async fn registrations_are_counted_per_address_per_hour() {
        let (t, clock) = throttle(limits());
        let home = ip("10.0.0.7");
        assert_eq!(t.registration(home).await, Ok(()));
        assert_eq!(t.registration(home).await, Ok(()));
        assert_eq!(t.registration(home).await, Err(3600));
        assert_eq!(t.registration(ip("10.0.0.8")).await, Ok(()));
        clock.store(3_600_000, Ordering::SeqCst);
        assert_eq!(t.registration(home).await, Ok(()));
    }

    #[tokio::test]
    async fn keys_hold_neither_addresses_nor_e_mails() {
        let (t, _) = throttle(limits());
        for key in [
            t.account("ann@example.com"),
            t.pair("ann@example.com", ip("10.0.0.1")),
            t.address("address", "10.0.0.1".parse().unwrap()),
        ] {
            assert!(!key.contains("ann") && !key.contains("10.0"), "{key}");
        }
    }
}
