//! The MedEx [`Store`](medex_core::store::Store) on [sled] 0.34: durable, concurrent and indexed.
//!
//! Records are kept in one tree per kind, next to index trees that a commit updates in the same
//! multi-tree transaction, so lists seek straight to their page instead of scanning. A write is
//! acknowledged only once it is on disk; concurrent commits share their fsyncs (group commit).
//! Driver fixes are the exception the `Store` contract allows: they reach the disk within about
//! half a second. See the crate's README for the trees, the durability rules and the schema
//! version.
//!
//! The store expects to run inside a Tokio runtime: flushes go to Tokio's blocking pool and fix
//! flushes and the retention sweep are Tokio tasks.
//!
//! ```
//! use medex_core::store::{Page, Store, UserQuery};
//! use medex_store_sled::SledStore;
//!
//! # #[tokio::main(flavor = "current_thread")]
//! # async fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let store = SledStore::temporary()?;
//! store.check().await?;
//! assert!(store.users(&UserQuery::default(), Page::first(50)).await?.is_empty());
//! store.flush().await?;
//! # Ok(())
//! # }
//! ```

mod codec;
mod durable;
mod fixes;
mod inner;
mod records;
mod store;

use std::fmt;
use std::io;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};

use crate::codec::SCHEMA_VERSION;
use crate::durable::Shared;
use crate::fixes::FixBatches;
use crate::inner::{Inner, SCHEMA_KEY};

/// How long driver fixes are kept by default: the retention to pass to
/// [`SledStore::spawn_retention`] when the operator set none.
pub const DEFAULT_TRAIL_RETENTION: chrono::Duration = chrono::Duration::days(30);

/// Why a store directory could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// Another process has the directory open (sled holds an exclusive lock on it).
    #[error(
        "the store at {path} is locked by another process (is another MedEx server running on it?)"
    )]
    Locked {
        /// The store directory.
        path: PathBuf,
    },
    /// The directory cannot be created, read or written (permissions, not a directory, ...).
    #[error("cannot open the store at {path}: {source}")]
    Unreadable {
        /// The store directory.
        path: PathBuf,
        /// What the operating system said.
        #[source]
        source: io::Error,
    },
    /// The files are damaged or are not a MedEx store.
    #[error("the store at {path} is corrupt: {detail}")]
    Corrupt {
        /// The store directory.
        path: PathBuf,
        /// What was found wrong.
        detail: String,
    },
    /// The store was written by a newer MedEx whose layout this build cannot read.
    #[error(
        "the store at {path} has schema version {found} but this build reads only up to \
         {supported}: run a newer MedEx (nothing was changed)"
    )]
    NewerSchema {
        /// The store directory.
        path: PathBuf,
        /// The schema version recorded in the store.
        found: u8,
        /// The newest schema version this build reads.
        supported: u8,
    },
}

/// sled's own default page cache: 1 GiB.
pub const DEFAULT_CACHE_BYTES: u64 = 1 << 30;

/// The sled implementation of [`medex_core::store::Store`].
///
/// Dropping it closes the database and releases the directory lock (within moments: see
/// [`SledStore::open`]); background tasks it started (fix flushes, [`SledStore::spawn_retention`])
/// stop by themselves.
pub struct SledStore {
    inner: Arc<Inner>,
    shared: Arc<Shared>,
    fix_batches: Arc<FixBatches>,
}

impl SledStore {
    /// Opens (or creates) the store in directory `path`.
    ///
    /// A new store is marked with the current schema version; an existing one is refused with
    /// [`OpenError::NewerSchema`] when a newer build wrote it. A directory that stays locked for
    /// two seconds is refused with [`OpenError::Locked`].
    pub fn open(path: impl AsRef<Path>) -> Result<Self, OpenError> {
        Self::open_with_cache(path, DEFAULT_CACHE_BYTES)
    }

    /// As [`SledStore::open`], with a page cache of `cache_bytes` (sled's `cache_capacity`; the
    /// default is 1 GiB, which a large database fills).
    pub fn open_with_cache(path: impl AsRef<Path>, cache_bytes: u64) -> Result<Self, OpenError> {
        let path = path.as_ref();
        // sled releases the directory's lock when the last handle on its file closes, and jobs it
        // queued on its own thread pool (writing a log buffer, truncating a segment) keep such
        // handles for a moment after a database drops: a directory just closed in this process
        // is free again within moments; another process's lock is not.
        let deadline = Instant::now() + LOCKED_RETRY;
        loop {
            let config = sled::Config::new().path(path).cache_capacity(cache_bytes);
            match Self::with_config(config, path.to_path_buf()) {
                Err(OpenError::Locked { .. }) if Instant::now() < deadline => {
                    thread::sleep(Duration::from_millis(10));
                }
                opened => return opened,
            }
        }
    }

    /// A store in a fresh temporary directory, deleted when the store is dropped: for tests.
    pub fn temporary() -> Result<Self, OpenError> {
        Self::with_config(
            sled::Config::new().temporary(true),
            PathBuf::from("(temporary)"),
        )
    }

    fn with_config(config: sled::Config, path: PathBuf) -> Result<Self, OpenError> {
        // sled 0.34 can panic on some damaged files instead of returning an error.
        let db = catch_unwind(AssertUnwindSafe(|| config.open()))
            .map_err(|panic| OpenError::Corrupt {
                path: path.clone(),
                detail: format!("sled failed while recovering: {}", panic_message(&panic)),
            })?
            .map_err(|e| open_error(&path, e))?;
        let inner = Inner::new(path.clone(), db).map_err(|e| open_error(&path, e))?;
        check_schema(&inner)?;
        let inner = Arc::new(inner);
        let shared = Arc::new(Shared::new(Arc::downgrade(&inner)));
        Ok(Self {
            inner,
            shared,
            fix_batches: Arc::new(FixBatches::new()),
        })
    }

    /// Starts a task that deletes driver fixes older than `retention` now and then every `every`
    /// (use [`DEFAULT_TRAIL_RETENTION`] unless told otherwise). It ends by itself once the store
    /// is dropped; abort the handle to stop it sooner.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, like [`tokio::spawn`].
    pub fn spawn_retention(
        &self,
        retention: chrono::Duration,
        every: std::time::Duration,
    ) -> tokio::task::JoinHandle<()> {
        let shared = Arc::clone(&self.shared);
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                let before = chrono::Utc::now() - retention;
                let pruned = shared
                    .blocking(move |inner| inner.prune_trail(before))
                    .await;
                match pruned {
                    Ok(_) => {
                        // The next sweep retries a failed flush; nothing is lost meanwhile.
                        let _ = shared.flush_all().await;
                    }
                    Err(_) if !shared.is_open() => break,
                    // Any other failure: the next sweep tries again.
                    Err(_) => {}
                }
            }
        })
    }
}

impl Drop for SledStore {
    fn drop(&mut self) {
        // Waits for background work that is using the database, and stops any more, so that the
        // database closes (and unlocks its directory) when `inner` drops right after this.
        self.shared.close();
    }
}

/// How long opening a locked directory keeps trying before it reports [`OpenError::Locked`].
const LOCKED_RETRY: Duration = Duration::from_secs(2);

impl fmt::Debug for SledStore {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SledStore")
            .field("path", &self.inner.path)
            .finish_non_exhaustive()
    }
}

fn panic_message(panic: &Box<dyn std::any::Any + Send>) -> String {
    panic
        .downcast_ref::<&str>()
        .map(|s| s.to_string())
        .or_else(|| panic.downcast_ref::<String>().cloned())
        .unwrap_or_else(|| "panic".into())
}

fn open_error(path: &Path, error: sled::Error) -> OpenError {
    let path = path.to_path_buf();
    match error {
        sled::Error::Io(source)
            if source.kind() == io::ErrorKind::WouldBlock
                || source.to_string().contains("could not acquire lock") =>
        {
            OpenError::Locked { path }
        }
        sled::Error::Io(source) => OpenError::Unreadable { path, source },
        other => OpenError::Corrupt {
            path,
            detail: other.to_string(),
        },
    }
}

/// Refuses stores this build cannot read; marks a new one with the current schema version.
fn check_schema(inner: &Inner) -> Result<(), OpenError> {
    let path = inner.path.clone();
    let corrupt = |detail: String| OpenError::Corrupt {
        path: path.clone(),
        detail,
    };
    match inner.meta.get(SCHEMA_KEY) {
        Ok(Some(found)) => match found.as_ref() {
            &[SCHEMA_VERSION] => Ok(()),
            &[found] if found > SCHEMA_VERSION => Err(OpenError::NewerSchema {
                path: path.clone(),
                found,
                supported: SCHEMA_VERSION,
            }),
            &[found] => Err(corrupt(format!(
                "schema version {found} is not one this build can read or migrate"
            ))),
            other => Err(corrupt(format!("malformed schema marker {other:?}"))),
        },
        Ok(None) if inner.holds_data() => Err(corrupt(
            "data without a schema marker: not a MedEx store".into(),
        )),
        Ok(None) => inner
            .meta
            .insert(SCHEMA_KEY, &[SCHEMA_VERSION])
            .and_then(|_| inner.db.flush())
            .map(drop)
            .map_err(|e| open_error(&path, e)),
        Err(e) => Err(open_error(&path, e)),
    }
}
