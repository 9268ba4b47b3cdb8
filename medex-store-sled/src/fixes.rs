//! Fix appends in batches, off the async worker threads.
//!
//! Every driver sends a fix every few seconds; with thousands of drivers, one sled transaction
//! per fix on the async workers kept both busy in sled and starved the HTTP and WebSocket work
//! queued behind them. Here an append queues its fixes and waits; one appender at a time (the
//! writer) takes everything queued and writes it in one batch on the blocking pool, for
//! all of them. Under load the batches grow by themselves; alone, a fix is its own batch. An
//! append still returns only once its fixes are written (and its batch's error, if any), so a
//! read after an append sees it, as before.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, OnceLock, PoisonError};

use medex_core::model::LocationFix;
use medex_core::store::StoreError;

use crate::durable::Shared;

/// What happened to one batch, for everyone whose fixes were in it.
type Outcome = Arc<OnceLock<Result<(), StoreError>>>;

/// The queue of fixes waiting for the next batch.
pub(crate) struct FixBatches {
    /// Fixes not yet taken, and the outcome their batch will have.
    queue: Mutex<(Vec<LocationFix>, Outcome)>,
    /// Held by the appender writing a batch.
    writer: tokio::sync::Mutex<()>,
    /// Batches written, for tests.
    batches: AtomicU64,
}

impl FixBatches {
    pub(crate) fn new() -> Self {
        Self {
            queue: Mutex::new((Vec::new(), Outcome::default())),
            writer: tokio::sync::Mutex::new(()),
            batches: AtomicU64::new(0),
        }
    }

    /// Appends `fixes` with whatever else is queued; returns once they are written.
    pub(crate) async fn append(
        self: &Arc<Self>,
        shared: &Arc<Shared>,
        fixes: &[LocationFix],
    ) -> Result<(), StoreError> {
        let outcome = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            queue.0.extend_from_slice(fixes);
            Arc::clone(&queue.1)
        };
        if let Some(result) = outcome.get() {
            return result.clone();
        }
        let _writer = self.writer.lock().await;
        if let Some(result) = outcome.get() {
            return result.clone();
        }
        // Our batch has not been written, so it is still the queued one (only a writer replaces
        // it, and sets its outcome before letting go): write it, for everyone in it.
        let (batch, done) = {
            let mut queue = self.queue.lock().unwrap_or_else(PoisonError::into_inner);
            (std::mem::take(&mut queue.0), std::mem::take(&mut queue.1))
        };
        debug_assert!(Arc::ptr_eq(&done, &outcome));
        // The outcome is set inside the blocking task, so it is set even if this future is
        // dropped while the task runs.
        let set_by_task = Arc::clone(&done);
        let batches = Arc::clone(self);
        let written = shared
            .blocking(move |inner| {
                let result = inner.append_fixes(&batch);
                batches.batches.fetch_add(1, Ordering::Relaxed);
                let reply = result.clone();
                let _ = set_by_task.set(result);
                reply
            })
            .await;
        // The task did not run (closed store) or did not finish (panic): tell the others too.
        if done.get().is_none() {
            let _ = done.set(written.clone());
        }
        written
    }

    /// Batches written so far.
    #[cfg(test)]
    pub(crate) fn batches(&self) -> u64 {
        self.batches.load(Ordering::Relaxed)
    }
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone, Utc};
    use medex_core::model::DriverId;
    use medex_core::store::{Store, TrailQuery};

    use crate::SledStore;

    use super::*;

    /// Many drivers appending at once: every fix lands, in fewer transactions than appends, and
    /// each appender can read its fix back as soon as its append returns.
    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn concurrent_appends_share_batches_and_all_land() {
        let store = Arc::new(SledStore::temporary().unwrap());
        let at = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
        const DRIVERS: u128 = 200;
        let tasks: Vec<_> = (1..=DRIVERS)
            .map(|n| {
                let store = Arc::clone(&store);
                tokio::spawn(async move {
                    let driver = DriverId::from_uuid(uuid::Uuid::from_u128(n));
                    let fix = LocationFix {
                        driver_id: driver,
                        latitude: 52.5,
                        longitude: 13.4,
                        speed: None,
                        heading: None,
                        accuracy: Some(5.0),
                        recorded_at: at + Duration::seconds(n as i64),
                    };
                    store.append_fixes(&[fix]).await.unwrap();
                    let trail = store
                        .trail(TrailQuery::new(driver, at, at + Duration::hours(1), 10))
                        .await
                        .unwrap();
                    assert_eq!(trail, vec![fix]);
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
        let batches = store.fix_batches.batches();
        assert!((1..=DRIVERS as u64).contains(&batches), "{batches} batches");
    }
}
