//! Several instances behind one address: what the server shares with the others when
//! `MEDEX_DATABASE_URL` and `MEDEX_REDIS_URL` are set, and the upkeep every instance runs.
//!
//! - Live updates: the WebSocket hub behind a [`RedisBus`], or alone (in-process).
//! - The login throttle's counts in Redis, under keys hashed with a key derived from the JWT
//!   secret (which every instance shares), else in this process (and in this process too while
//!   Redis cannot answer).
//! - Uploaded proofs in PostgreSQL when it is the store, else in the upload directory.
//! - Upkeep: the sweeps (trail retention, expired refresh sessions) under a lease, so one
//!   instance at a time runs them; with PostgreSQL, the configuration another instance saved
//!   taken in within half a second; the first admin created by one instance only.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use async_trait::async_trait;
use hmac::{Hmac, Mac};
use medex_core::MedEx;
use medex_core::error::{Conflict, Error};
use medex_core::events::EventBus;
use medex_core::files::FileStore;
use medex_core::model::User;
use medex_http::{CountsUnavailable, FailureCounts, MemoryCounts};
use medex_redis::{RedisBus, RedisCounts, RedisOptions};
use medex_ws::Hub;
use sha2::Sha256;
use tokio::sync::watch;

use crate::settings::{Settings, SettingsError};

/// How often an instance on a shared database looks for a configuration another one saved.
pub(crate) const CONFIG_REFRESH: Duration = Duration::from_millis(500);
/// How often the sweeps are due.
pub(crate) const SWEEP_EVERY: Duration = Duration::from_secs(3600);

/// The fan-out of this instance and the bus the use cases publish to.
pub(crate) struct LiveUpdates {
    pub(crate) hub: Arc<Hub>,
    pub(crate) bus: Arc<dyn EventBus>,
}

impl LiveUpdates {
    /// The hub alone: events stay in this process.
    pub(crate) fn in_process() -> Self {
        let hub = Arc::new(Hub::new());
        Self {
            bus: hub.clone(),
            hub,
        }
    }

    /// The hub behind the Redis bus when `MEDEX_REDIS_URL` is set. The bus connects in the
    /// background: an instance starts, and serves its own subscribers, while Redis is down.
    pub(crate) fn from_settings(s: &Settings) -> Result<Self, SettingsError> {
        let Some(url) = &s.redis_url else {
            return Ok(Self::in_process());
        };
        let builder =
            RedisBus::builder(redis_options(s, url.as_str())).map_err(|e| SettingsError {
                variable: "MEDEX_REDIS_URL",
                problem: e.to_string(),
            })?;
        let hub = Arc::new(Hub::with_interest(builder.interest()));
        let bus = builder.start(hub.clone());
        tracing::info!(prefix = %s.redis_prefix, "live updates between instances: Redis");
        Ok(Self { hub, bus })
    }
}

fn redis_options(s: &Settings, url: &str) -> RedisOptions {
    RedisOptions::new(url, s.redis_prefix.clone())
}

/// The throttling counts in Redis, for the HTTP layer; while Redis cannot answer, counts of
/// this instance alone, so that guessing is still throttled (per instance) meanwhile.
struct SharedCounts {
    redis: RedisCounts,
    local: MemoryCounts,
    /// Whether the last call fell back to the local counts (to log the change once).
    falling_back: AtomicBool,
}

impl SharedCounts {
    fn fell_back(&self, error: &medex_redis::Unavailable) {
        if !self.falling_back.swap(true, Ordering::Relaxed) {
            tracing::warn!(%error, "throttle counts unreachable in Redis: counting on this instance meanwhile");
        }
    }

    fn answered(&self) {
        if self.falling_back.swap(false, Ordering::Relaxed) {
            tracing::info!("throttle counts in Redis again");
        }
    }
}

#[async_trait]
impl FailureCounts for SharedCounts {
    async fn get(&self, key: &str) -> Result<Option<(u32, Duration)>, CountsUnavailable> {
        match self.redis.get(key).await {
            Ok(count) => {
                self.answered();
                Ok(count)
            }
            Err(error) => {
                self.fell_back(&error);
                self.local.get(key).await
            }
        }
    }

    async fn add(&self, key: &str, window: Duration) -> Result<u32, CountsUnavailable> {
        match self.redis.add(key, window).await {
            Ok(count) => {
                self.answered();
                Ok(count)
            }
            Err(error) => {
                self.fell_back(&error);
                self.local.add(key, window).await
            }
        }
    }

    async fn clear(&self, key: &str) -> Result<(), CountsUnavailable> {
        self.local.clear(key).await?;
        self.redis
            .clear(key)
            .await
            .map_err(|e| CountsUnavailable(e.to_string()))
    }
}

/// What the HTTP layer shares: counts in Redis under keys hashed with a key every instance
/// derives alike from the JWT secret, or in memory under a random one; and `files`.
pub(crate) fn http_shared(
    s: &Settings,
    jwt_secret: &[u8],
    files: Arc<dyn FileStore>,
) -> Result<medex_http::Shared, SettingsError> {
    let (counts, throttle_key): (Arc<dyn FailureCounts>, [u8; 32]) = match &s.redis_url {
        Some(url) => {
            let counts =
                RedisCounts::new(&redis_options(s, url.as_str())).map_err(|e| SettingsError {
                    variable: "MEDEX_REDIS_URL",
                    problem: e.to_string(),
                })?;
            let counts = SharedCounts {
                redis: counts,
                local: MemoryCounts::default(),
                falling_back: AtomicBool::new(false),
            };
            (Arc::new(counts), throttle_key(jwt_secret))
        }
        None => {
            let mut key = [0u8; 32];
            medex_core::clock::Entropy::fill(&medex_core::clock::OsEntropy, &mut key);
            (Arc::new(MemoryCounts::default()), key)
        }
    };
    Ok(medex_http::Shared {
        counts,
        throttle_key,
        files,
    })
}

/// The throttle's hashing key, derived from the JWT secret: the same on every instance, and
/// telling nothing of the secret.
fn throttle_key(jwt_secret: &[u8]) -> [u8; 32] {
    let mut mac = Hmac::<Sha256>::new_from_slice(jwt_secret).expect("any key length");
    mac.update(b"medex login throttle keys v1");
    mac.finalize().into_bytes().into()
}

/// Starts the upkeep of this instance (`holder` names it in leases): the sweeps, on every
/// instance and run by the lease holder; with a shared database, the configuration refresh.
/// The tasks end when `stopped` changes (the server shuts down) or the service is gone.
pub(crate) fn spawn_upkeep(
    medex: &Arc<MedEx>,
    s: &Settings,
    holder: String,
    stopped: watch::Receiver<bool>,
) {
    let retention = chrono::Duration::days(i64::from(s.trail_retention_days));
    let every = chrono::Duration::from_std(SWEEP_EVERY).unwrap_or(chrono::Duration::hours(1));
    every_so_often(medex, SWEEP_EVERY, stopped.clone(), move |medex| {
        let holder = holder.clone();
        async move {
            match medex.sweep(&holder, retention, every).await {
                Ok(Some(swept)) => tracing::debug!(
                    fixes = swept.fixes,
                    sessions = swept.sessions,
                    idempotency_keys = swept.idempotency_keys,
                    "swept old fixes and expired sessions"
                ),
                Ok(None) => tracing::debug!("another instance holds the sweeps"),
                // The next tick tries again; nothing is lost meanwhile.
                Err(error) => tracing::warn!(%error, "the sweeps failed"),
            }
        }
    });
    if s.database_url.is_some() {
        every_so_often(medex, CONFIG_REFRESH, stopped, |medex| async move {
            match medex.refresh_config().await {
                Ok(true) => tracing::info!(
                    version = medex.config_version(),
                    "took in the configuration another instance saved"
                ),
                Ok(false) => {}
                Err(error) => tracing::debug!(%error, "configuration refresh failed"),
            }
        });
    }
}

/// Runs `job` now and then every `period` until the server stops. The task holds the service
/// only while a job runs, so that a stopped server lets its store go.
fn every_so_often<F, Fut>(
    medex: &Arc<MedEx>,
    period: Duration,
    mut stopped: watch::Receiver<bool>,
    job: F,
) where
    F: Fn(Arc<MedEx>) -> Fut + Send + 'static,
    Fut: std::future::Future<Output = ()> + Send,
{
    let medex = Arc::downgrade(medex);
    tokio::spawn(async move {
        let mut ticks = tokio::time::interval(period);
        ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
        loop {
            tokio::select! {
                _ = ticks.tick() => {}
                _ = stopped.changed() => return,
            }
            let Some(medex) = medex.upgrade() else {
                return;
            };
            job(medex).await;
        }
    });
}

/// Creates the first admin unless one exists, waiting while another instance starting at the
/// same time is creating it (then finding that one).
pub(crate) async fn first_admin(
    medex: &MedEx,
    email: &str,
    password: &str,
) -> Result<Option<User>, Error> {
    let started = std::time::Instant::now();
    loop {
        match medex.ensure_admin(email, password).await {
            Err(Error::Conflict(Conflict::ConcurrentUpdate))
                if started.elapsed() < Duration::from_secs(120) =>
            {
                tokio::time::sleep(Duration::from_millis(200)).await;
            }
            other => return other,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_sharing_a_secret_hash_throttle_keys_alike() {
        let secret = b"q8Vw3kZ1pT6xN0rL5yB9mC2hJ7dF4gS0aE8uW1iO";
        assert_eq!(throttle_key(secret), throttle_key(secret));
        assert_ne!(
            throttle_key(secret),
            throttle_key(b"another secret, another key....")
        );
        assert!(
            !throttle_key(secret)
                .windows(8)
                .any(|w| secret.windows(8).any(|s| s == w)),
            "the key holds no part of the secret"
        );
    }
}
