//! Fixes on their way to the trail: accepted fixes are queued in memory and written to the store
//! in batches by a background task, so that fan-out to subscribers never waits for the disk.
//!
//! [`FixQueue`] wraps a [`Store`]: every call passes through to it except
//! - [`Store::append_fixes`], which queues the fixes and returns at once;
//! - [`Store::driver`] and [`Store::drivers`], whose positions are the newer of the store's and
//!   the newest queued fix (so a driver's current position moves as soon as its fix is taken);
//! - [`Store::trail`], which adds the fixes still queued (or being written) in its window;
//! - [`Store::flush`], which first writes everything queued before it was called, then flushes
//!   the store: graceful shutdown and tests that read the trail await it.
//!
//! The promise is the store's own for fixes: at most about one second of accepted fixes is at
//! risk in a crash (the queue drains continuously; under sustained load its depth is what the
//! store falls behind by). Back-pressure: the queue holds at most `capacity` fixes; when it is
//! full the OLDEST queued trail points are dropped and counted ([`FixQueue::stats`]), because
//! the newest positions matter most to everyone watching. Memory never grows past the bound.
//!
//! The core spawns nothing: until the program runs the writer ([`FixQueue::writer`], which the
//! server spawns on its runtime), each append writes the queue through before returning, as
//! the store alone would.

use std::collections::{HashMap, VecDeque};
use std::future::Future;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, Weak};

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use futures::StreamExt;
use futures::channel::mpsc;

use crate::config::SystemConfig;
use crate::integrations::{ApiKey, Delivery, IdempotencyRecord, Webhook};
use crate::model::{
    ApiKeyId, DeliveryId, Driver, DriverId, IdempotencyId, LocationFix, Order, OrderId, User,
    UserId, Vendor, VendorId, WebhookId,
};
use crate::store::{
    DriverQuery, LeaseClaim, OrderQuery, Page, RefreshSession, ShopOrder, Store, StoreError,
    StoredConfig, TrailQuery, UserQuery, Write,
};

/// Default bound of the queue: three seconds of 20,000 fixes/s (~2.5 MB).
pub const DEFAULT_CAPACITY: usize = 60_000;
/// Most fixes written in one call to the store.
const BATCH: usize = 5_000;

/// What the queue reports for metrics.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct FixQueueStats {
    /// Fixes waiting to be written now.
    pub depth: usize,
    /// Trail points dropped since start because the queue was full (their positions were
    /// still published).
    pub dropped: u64,
    /// Batches the store refused (they are retried).
    pub failed_batches: u64,
}

#[derive(Default)]
struct State {
    queue: VecDeque<LocationFix>,
    /// The batch being written now (still read by `trail` until it is in the store).
    writing: Vec<LocationFix>,
    /// The newest queued fix of each driver whose newest fix is not written yet.
    newest: HashMap<DriverId, LocationFix>,
    dropped: u64,
    failed_batches: u64,
}

/// A store whose fix appends are queued and written in the background.
pub struct FixQueue {
    inner: Arc<dyn Store>,
    capacity: usize,
    state: Mutex<State>,
    /// Held by whoever writes queued fixes, so a flush waits for a batch in flight.
    writing: futures::lock::Mutex<()>,
    /// Wakes the writer; one pending wake is enough, so the channel holds one.
    wake: Mutex<mpsc::Sender<()>>,
    /// Taken by [`FixQueue::writer`].
    woken: Mutex<Option<mpsc::Receiver<()>>>,
    /// Whether a writer runs: appends then only queue.
    background: AtomicBool,
}

impl FixQueue {
    /// Wraps `inner` with a queue of at most `capacity` fixes; appends write through until
    /// [`FixQueue::writer`] is running.
    pub fn new(inner: Arc<dyn Store>, capacity: usize) -> Arc<Self> {
        let (wake, woken) = mpsc::channel(0);
        Arc::new(Self {
            inner,
            capacity: capacity.max(1),
            state: Mutex::new(State::default()),
            writing: futures::lock::Mutex::new(()),
            wake: Mutex::new(wake),
            woken: Mutex::new(Some(woken)),
            background: AtomicBool::new(false),
        })
    }

    /// The background writer, to spawn once: from the call on, appends only queue and it writes
    /// the queue in batches (a refused batch is kept and tried again on the next wake or after
    /// `retry` has passed, as `pause(retry)` says). It ends when the queue is dropped. `None`
    /// when it was taken before.
    pub fn writer<P, F>(
        self: &Arc<Self>,
        retry: std::time::Duration,
        pause: P,
    ) -> Option<impl Future<Output = ()> + Send + 'static + use<P, F>>
    where
        P: Fn(std::time::Duration) -> F + Send + 'static,
        F: Future<Output = ()> + Send + 'static,
    {
        let mut woken = self
            .woken
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .take()?;
        self.background.store(true, Ordering::SeqCst);
        let queue: Weak<FixQueue> = Arc::downgrade(self);
        Some(async move {
            let mut failed = false;
            loop {
                if failed {
                    // Whichever comes first: an append, or the pause.
                    let pause = std::pin::pin!(pause(retry));
                    let woke = futures::future::select(woken.next(), pause).await;
                    if let futures::future::Either::Left((None, _)) = woke {
                        return;
                    }
                } else if woken.next().await.is_none() {
                    return;
                }
                let Some(queue) = queue.upgrade() else {
                    return;
                };
                // A refusal is counted in the stats and its batch kept for the next round.
                failed = queue.write_queued().await.is_err();
            }
        })
    }

    /// Depth and losses, for metrics.
    pub fn stats(&self) -> FixQueueStats {
        let state = self.state();
        FixQueueStats {
            depth: state.queue.len(),
            dropped: state.dropped,
            failed_batches: state.failed_batches,
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }

    fn enqueue(&self, fixes: &[LocationFix]) {
        let mut state = self.state();
        for fix in fixes {
            if state.queue.len() >= self.capacity {
                state.queue.pop_front();
                state.dropped += 1;
            }
            state.queue.push_back(*fix);
            fix.keep_newest(&mut state.newest);
        }
    }

    /// Writes queued fixes until the queue is empty; the first refusal puts its batch back
    /// (oldest first, still within the bound) and is returned.
    async fn write_queued(&self) -> Result<(), StoreError> {
        let _writing = self.writing.lock().await;
        loop {
            let batch: Vec<LocationFix> = {
                let mut state = self.state();
                let n = state.queue.len().min(BATCH);
                let batch: Vec<LocationFix> = state.queue.drain(..n).collect();
                state.writing.clone_from(&batch);
                batch
            };
            if batch.is_empty() {
                return Ok(());
            }
            if let Err(e) = self.inner.append_fixes(&batch).await {
                let mut state = self.state();
                state.writing.clear();
                state.failed_batches += 1;
                let room = self.capacity.saturating_sub(state.queue.len());
                let lost = batch.len().saturating_sub(room);
                state.dropped += lost as u64;
                for fix in batch[lost..].iter().rev() {
                    state.queue.push_front(*fix);
                }
                return Err(e);
            }
            let mut state = self.state();
            state.writing.clear();
            for fix in &batch {
                if state.newest.get(&fix.driver_id) == Some(fix) {
                    state.newest.remove(&fix.driver_id);
                }
            }
        }
    }

    /// `driver` with the newer of its stored position and its newest queued fix.
    fn with_position(&self, mut driver: Driver) -> Driver {
        if let Some(fix) = self.state().newest.get(&driver.id)
            && driver
                .last_location_update
                .is_none_or(|at| at <= fix.recorded_at)
        {
            driver.current_latitude = Some(fix.latitude);
            driver.current_longitude = Some(fix.longitude);
            driver.last_location_update = Some(fix.recorded_at);
        }
        driver
    }
}

#[async_trait]
impl Store for FixQueue {
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        self.inner.commit(writes).await
    }
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.inner.user(id).await
    }
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.inner.user_by_email(email).await
    }
    async fn users(&self, query: &UserQuery, page: Page<UserId>) -> Result<Vec<User>, StoreError> {
        self.inner.users(query, page).await
    }
    async fn vendor(&self, id: VendorId) -> Result<Option<Vendor>, StoreError> {
        self.inner.vendor(id).await
    }
    async fn vendors(&self, page: Page<VendorId>) -> Result<Vec<Vendor>, StoreError> {
        self.inner.vendors(page).await
    }
    async fn driver(&self, id: DriverId) -> Result<Option<Driver>, StoreError> {
        Ok(self.inner.driver(id).await?.map(|d| self.with_position(d)))
    }
    async fn drivers(
        &self,
        query: &DriverQuery,
        page: Page<DriverId>,
    ) -> Result<Vec<Driver>, StoreError> {
        let drivers = self.inner.drivers(query, page).await?;
        Ok(drivers.into_iter().map(|d| self.with_position(d)).collect())
    }
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.inner.order(id).await
    }
    async fn order_by_tracking_token(&self, token: &str) -> Result<Option<Order>, StoreError> {
        self.inner.order_by_tracking_token(token).await
    }
    async fn order_by_external_ref(&self, key: ShopOrder<'_>) -> Result<Option<Order>, StoreError> {
        self.inner.order_by_external_ref(key).await
    }
    async fn orders(
        &self,
        query: &OrderQuery,
        page: Page<OrderId>,
    ) -> Result<Vec<Order>, StoreError> {
        self.inner.orders(query, page).await
    }
    async fn append_fixes(&self, fixes: &[LocationFix]) -> Result<(), StoreError> {
        self.enqueue(fixes);
        if self.background.load(Ordering::SeqCst) {
            // Full means a wake is pending already.
            let _ = self
                .wake
                .lock()
                .unwrap_or_else(|e| e.into_inner())
                .try_send(());
            Ok(())
        } else {
            self.write_queued().await
        }
    }
    async fn trail(&self, query: TrailQuery) -> Result<Vec<LocationFix>, StoreError> {
        let mut trail = self.inner.trail(query).await?;
        let waiting = {
            let state = self.state();
            state
                .writing
                .iter()
                .chain(state.queue.iter())
                .filter(|f| query.includes(f))
                .copied()
                .collect::<Vec<_>>()
        };
        if waiting.is_empty() {
            return Ok(trail);
        }
        // A batch may have reached the store since: the same fix twice is one.
        trail.extend(waiting);
        trail.sort_by_key(|f| f.recorded_at);
        trail.dedup();
        trail.truncate(query.limit);
        Ok(trail)
    }
    async fn prune_trail(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_trail(before).await
    }
    async fn put_refresh_session(&self, session: RefreshSession) -> Result<(), StoreError> {
        self.inner.put_refresh_session(session).await
    }
    async fn take_refresh_session(&self, id: &str) -> Result<Option<RefreshSession>, StoreError> {
        self.inner.take_refresh_session(id).await
    }
    async fn system_config(&self) -> Result<Option<StoredConfig>, StoreError> {
        self.inner.system_config().await
    }
    async fn save_system_config(
        &self,
        config: &SystemConfig,
        version: u64,
    ) -> Result<(), StoreError> {
        self.inner.save_system_config(config, version).await
    }
    async fn check(&self) -> Result<(), StoreError> {
        self.inner.check().await
    }
    async fn flush(&self) -> Result<(), StoreError> {
        self.write_queued().await?;
        self.inner.flush().await
    }
    async fn acquire_lease(&self, claim: LeaseClaim<'_>) -> Result<bool, StoreError> {
        self.inner.acquire_lease(claim).await
    }
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.release_lease(name, holder).await
    }
    async fn prune_refresh_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_refresh_sessions(before).await
    }
    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key(id).await
    }
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key_by_hash(hash).await
    }
    async fn api_keys(
        &self,
        vendor: VendorId,
        page: Page<ApiKeyId>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.api_keys(vendor, page).await
    }
    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StoreError> {
        self.inner.webhook(id).await
    }
    async fn webhooks(
        &self,
        vendor: VendorId,
        page: Page<WebhookId>,
    ) -> Result<Vec<Webhook>, StoreError> {
        self.inner.webhooks(vendor, page).await
    }
    async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.inner.delivery(id).await
    }
    async fn deliveries(
        &self,
        webhook: WebhookId,
        page: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.deliveries(webhook, page).await
    }
    async fn pending_deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.inner.pending_deliveries(limit).await
    }
    async fn idempotency(
        &self,
        id: IdempotencyId,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.idempotency(id).await
    }
    async fn prune_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        self.inner.prune_idempotency(before).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::conformance::{fixtures, numbered};
    use crate::memory::MemoryStore;
    use futures::executor::block_on;

    fn fix(driver: DriverId, second: i64, latitude: f64) -> LocationFix {
        LocationFix {
            driver_id: driver,
            latitude,
            longitude: 13.4,
            speed: None,
            heading: None,
            accuracy: None,
            recorded_at: fixtures::t0() + chrono::Duration::seconds(second),
        }
    }

    #[test]
    fn a_full_queue_drops_its_oldest_points_and_counts_them() {
        let queue = FixQueue::new(Arc::new(MemoryStore::new()), 3);
        let driver = numbered::driver_id(1);
        // No runtime here: appends write through, so fill the state directly.
        queue.enqueue(&[
            fix(driver, 1, 1.0),
            fix(driver, 2, 2.0),
            fix(driver, 3, 3.0),
            fix(driver, 4, 4.0),
            fix(driver, 5, 5.0),
        ]);
        let stats = queue.stats();
        assert_eq!((stats.depth, stats.dropped), (3, 2));
        block_on(queue.flush()).unwrap();
        let trail = block_on(queue.trail(TrailQuery::new(
            driver,
            fixtures::t0(),
            fixtures::t0() + chrono::Duration::hours(1),
            10,
        )))
        .unwrap();
        let kept: Vec<f64> = trail.iter().map(|f| f.latitude).collect();
        assert_eq!(kept, vec![3.0, 4.0, 5.0]);
        assert_eq!(queue.stats().depth, 0);
    }

    #[test]
    fn an_older_queued_fix_never_moves_a_position_back() {
        let queue = FixQueue::new(Arc::new(MemoryStore::new()), 10);
        let driver = numbered::driver_id(1);
        queue.enqueue(&[fix(driver, 5, 5.0), fix(driver, 2, 2.0)]);
        assert_eq!(queue.state().newest[&driver].latitude, 5.0);
        let mut d = numbered::driver(1, numbered::vendor_id(1), numbered::user_id(1));
        d.last_location_update = Some(fixtures::t0() + chrono::Duration::seconds(9));
        d.current_latitude = Some(9.0);
        assert_eq!(queue.with_position(d).current_latitude, Some(9.0));
    }

    #[test]
    fn with_a_writer_appends_only_queue_and_a_flush_writes_them_all() {
        let inner = Arc::new(MemoryStore::new());
        let queue = FixQueue::new(inner.clone(), 100);
        let writer = queue
            .writer(std::time::Duration::from_secs(3600), |_| {
                futures::future::pending::<()>()
            })
            .expect("the first writer");
        assert!(
            queue
                .writer(std::time::Duration::ZERO, |_| futures::future::ready(()))
                .is_none()
        );
        let driver = numbered::driver_id(1);
        let window = |store: Arc<dyn Store>| async move {
            store
                .trail(TrailQuery::new(
                    driver,
                    fixtures::t0(),
                    fixtures::t0() + chrono::Duration::hours(1),
                    100,
                ))
                .await
                .unwrap()
                .len()
        };
        let work = async {
            // The writer has not been polled yet: the append returned with the fix queued.
            queue
                .append_fixes(&[fix(driver, 1, 1.0), fix(driver, 2, 2.0)])
                .await
                .unwrap();
            assert_eq!(queue.stats().depth, 2);
            assert_eq!(window(inner.clone()).await, 0);
            // Trail reads through the queue see them already, in time order.
            assert_eq!(window(queue.clone()).await, 2);
            queue.flush().await.unwrap();
            assert_eq!(window(inner.clone()).await, 2);
            queue.append_fixes(&[fix(driver, 3, 3.0)]).await.unwrap();
            queue.flush().await.unwrap();
            assert_eq!(window(inner.clone()).await, 3);
            assert_eq!(queue.stats(), FixQueueStats::default());
            drop(queue);
        };
        // The writer ends once the queue is gone.
        block_on(futures::future::join(writer, work));
    }
}
