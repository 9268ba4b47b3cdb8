//! Making writes durable: group commit, the fix flush timer, and the gate that lets background
//! work touch the database only while the store is open.

use std::sync::atomic::{AtomicBool, AtomicU64, Ordering::SeqCst};
use std::sync::{Arc, PoisonError, RwLock, Weak};
use std::time::Duration;

use medex_core::store::StoreError;

use crate::inner::{Inner, sled_error};

/// How long appended fixes may wait for their flush: well inside the one second the `Store`
/// contract allows, while a steady stream of fixes costs at most two fsyncs a second.
pub(crate) const FIX_FLUSH_DELAY: Duration = Duration::from_millis(500);

/// State shared by the store handle and its background tasks. It holds the database only weakly:
/// dropping the [`crate::SledStore`] closes the database (and releases its directory lock) even
/// while a timer or the retention task is still scheduled.
pub(crate) struct Shared {
    inner: Weak<Inner>,
    /// `false` once the store is dropped. Background work holds the read side while it uses the
    /// database; the drop takes the write side, so it waits for that work and no new work starts.
    open: RwLock<bool>,
    /// Tickets handed to writes that need a flush, in the order their writes completed.
    written: AtomicU64,
    /// Every ticket up to this one is on disk.
    durable: AtomicU64,
    /// Held by the one committer that flushes for everyone waiting behind it.
    flusher: tokio::sync::Mutex<()>,
    /// A fix flush is scheduled and has not started yet.
    fix_flush_scheduled: AtomicBool,
    /// Flushes done, for tests of group commit.
    flushes: AtomicU64,
}

fn closed() -> StoreError {
    StoreError::Unavailable("the store is closed".into())
}

impl Shared {
    pub(crate) fn new(inner: Weak<Inner>) -> Self {
        Self {
            inner,
            open: RwLock::new(true),
            written: AtomicU64::new(0),
            durable: AtomicU64::new(0),
            flusher: tokio::sync::Mutex::new(()),
            fix_flush_scheduled: AtomicBool::new(false),
            flushes: AtomicU64::new(0),
        }
    }

    /// Marks the store closed, after any background work that is using the database.
    pub(crate) fn close(&self) {
        *self.open.write().unwrap_or_else(PoisonError::into_inner) = false;
    }

    /// Whether the store is still open.
    pub(crate) fn is_open(&self) -> bool {
        *self.open.read().unwrap_or_else(PoisonError::into_inner)
    }

    /// Runs `f` on the database if the store is still open. Blocking.
    pub(crate) fn with_inner<T>(
        &self,
        f: impl FnOnce(&Inner) -> Result<T, StoreError>,
    ) -> Result<T, StoreError> {
        let open = self.open.read().unwrap_or_else(PoisonError::into_inner);
        if !*open {
            return Err(closed());
        }
        let inner = self.inner.upgrade().ok_or_else(closed)?;
        let result = f(&inner);
        drop(inner);
        drop(open);
        result
    }

    /// Runs blocking database work off the async worker threads (inline when there is no Tokio
    /// runtime, so that the store still works under another executor).
    pub(crate) async fn blocking<T: Send + 'static>(
        self: &Arc<Self>,
        f: impl FnOnce(&Inner) -> Result<T, StoreError> + Send + 'static,
    ) -> Result<T, StoreError> {
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                let shared = Arc::clone(self);
                runtime
                    .spawn_blocking(move || shared.with_inner(f))
                    .await
                    .map_err(|e| StoreError::Unavailable(format!("storage task failed: {e}")))?
            }
            Err(_) => self.with_inner(f),
        }
    }

    /// A ticket for a write that has just completed; pass it to [`Shared::make_durable`].
    pub(crate) fn ticket(&self) -> u64 {
        self.written.fetch_add(1, SeqCst) + 1
    }

    /// Returns once the write that got `ticket` is on disk.
    ///
    /// Group commit: the first waiter takes the flusher lock and flushes everything written so
    /// far; those who queued behind it find their ticket covered and return without a flush of
    /// their own, so N concurrent commits cost about two fsyncs rather than N.
    pub(crate) async fn make_durable(self: &Arc<Self>, ticket: u64) -> Result<(), StoreError> {
        if self.durable.load(SeqCst) >= ticket {
            return Ok(());
        }
        let _leader = self.flusher.lock().await;
        if self.durable.load(SeqCst) >= ticket {
            return Ok(());
        }
        // Every ticket up to `target` belongs to a write that completed before this flush starts,
        // and a sled flush covers everything written before it started.
        let target = self.written.load(SeqCst);
        let started = std::time::Instant::now();
        self.blocking(|inner| inner.db.flush().map(drop).map_err(sled_error))
            .await?;
        // Recorded through the `metrics` facade: a no-op unless the program installs a recorder.
        metrics::histogram!("medex_store_flush_seconds").record(started.elapsed().as_secs_f64());
        self.flushes.fetch_add(1, SeqCst);
        self.durable.fetch_max(target, SeqCst);
        Ok(())
    }

    /// Makes everything written so far durable.
    pub(crate) async fn flush_all(self: &Arc<Self>) -> Result<(), StoreError> {
        let ticket = self.ticket();
        self.make_durable(ticket).await
    }

    /// Ensures a flush within [`FIX_FLUSH_DELAY`] of now, sharing one timer among all appends.
    pub(crate) fn schedule_fix_flush(self: &Arc<Self>) {
        if self.fix_flush_scheduled.swap(true, SeqCst) {
            return;
        }
        let shared = Arc::clone(self);
        match tokio::runtime::Handle::try_current() {
            Ok(runtime) => {
                runtime.spawn(async move {
                    tokio::time::sleep(FIX_FLUSH_DELAY).await;
                    shared.fix_flush_scheduled.store(false, SeqCst);
                    // A failed flush is retried by the next append or commit; a closed store was
                    // flushed by sled when it closed.
                    let _ = shared.flush_all().await;
                });
            }
            Err(_) => {
                shared.fix_flush_scheduled.store(false, SeqCst);
                let _ = shared.with_inner(|inner| inner.db.flush().map(drop).map_err(sled_error));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;
    use std::sync::atomic::Ordering::SeqCst;

    use medex_core::store::{RefreshSession, Store};

    use crate::SledStore;

    fn session(n: u64) -> RefreshSession {
        RefreshSession {
            id: format!("jti-{n}"),
            user_id: medex_core::model::UserId::from_uuid(uuid::Uuid::nil()),
            expires_at: chrono::DateTime::UNIX_EPOCH,
        }
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn waiters_behind_one_flush_share_it() {
        let store = SledStore::temporary().unwrap();
        let shared = Arc::clone(&store.shared);
        // Writes that completed before any flush started: one flush covers them all.
        let mut tickets = Vec::new();
        for n in 0..32 {
            store.inner.put_refresh_session(&session(n)).unwrap();
            tickets.push(shared.ticket());
        }
        let waiters: Vec<_> = tickets
            .into_iter()
            .map(|ticket| {
                let shared = Arc::clone(&shared);
                tokio::spawn(async move { shared.make_durable(ticket).await })
            })
            .collect();
        for waiter in waiters {
            waiter.await.unwrap().unwrap();
        }
        assert_eq!(shared.flushes.load(SeqCst), 1);
        // Once durable, a ticket costs no flush at all.
        shared.make_durable(1).await.unwrap();
        assert_eq!(shared.flushes.load(SeqCst), 1);
        store.flush().await.unwrap();
        assert_eq!(shared.flushes.load(SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn a_closed_store_refuses_background_work() {
        let store = SledStore::temporary().unwrap();
        let shared = Arc::clone(&store.shared);
        drop(store);
        assert!(!shared.is_open());
        assert!(shared.flush_all().await.is_err());
    }
}
