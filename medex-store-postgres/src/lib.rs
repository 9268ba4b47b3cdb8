//! The MedEx [`Store`](medex_core::store::Store) on PostgreSQL, for operators who run several
//! MedEx instances behind one database, or need the database to outlive the machine running
//! MedEx.
//!
//! Records are rows of JSONB next to the key columns the contract filters, sorts and keeps unique;
//! a commit is one transaction whose updates check the stored version; unique constraints become
//! [`StoreError::Duplicate`](medex_core::store::StoreError::Duplicate). Driver fixes go through
//! one appender task per store that writes them in batches with asynchronous commit (at most about
//! half a second of fixes at risk, never orders). The schema is created and migrated at
//! [`PgStore::connect`]. See the crate's README for the tables and the durability rules.
//!
//! The store runs inside a Tokio runtime (the pool, the appender and the retention sweep are
//! Tokio tasks).
//!
//! ```no_run
//! use medex_core::store::{Page, Store, UserQuery};
//! use medex_store_postgres::PgStore;
//!
//! # async fn run() -> Result<(), Box<dyn std::error::Error>> {
//! let store = PgStore::connect("postgres://medex@db.internal/medex").await?;
//! store.check().await?;
//! let users = store.users(&UserQuery::default(), Page::first(50)).await?;
//! # Ok(())
//! # }
//! ```

mod codec;
mod errors;
mod instances;
mod migrate;
mod records;
mod store;
mod trail;

#[cfg(feature = "testing")]
pub mod testing;

use std::str::FromStr;
use std::time::Duration;

use deadpool_postgres::{Manager, ManagerConfig, Pool, RecyclingMethod, Runtime};
use tokio_postgres::NoTls;

use crate::trail::Appender;

/// How long driver fixes are kept by default: the retention to pass to
/// [`PgStore::spawn_retention`] when the operator set none.
pub const DEFAULT_TRAIL_RETENTION: chrono::Duration = chrono::Duration::days(30);

/// Why the store could not be opened.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum OpenError {
    /// The connection URL does not parse.
    #[error("invalid database URL: {0}")]
    InvalidUrl(#[source] tokio_postgres::Error),
    /// No connection could be made (server down, wrong host, authentication refused).
    #[error("cannot connect to the database: {0}")]
    Unreachable(String),
    /// A step of the schema migration failed; nothing of it was kept.
    #[error("cannot {step}: {source}")]
    Migration {
        /// What was being done.
        step: &'static str,
        /// What PostgreSQL said.
        #[source]
        source: tokio_postgres::Error,
    },
    /// The database was migrated by a newer MedEx whose schema this build does not know.
    #[error(
        "the database has schema version {found} but this build knows only up to {supported}: \
         run a newer MedEx (nothing was changed)"
    )]
    NewerSchema {
        /// The newest migration recorded in the database.
        found: i32,
        /// The newest this build has.
        supported: i32,
    },
    /// The database holds migrations this build never had: not a MedEx database, or a damaged one.
    #[error("the database is not a MedEx database this build can use: {0}")]
    ForeignSchema(String),
}

/// Tuning of [`PgStore::connect_with`].
#[derive(Debug, Clone)]
pub struct PgOptions {
    /// Connections in the pool (default 16). Each is a PostgreSQL backend process; the sum over
    /// every instance must stay under the server's `max_connections`.
    pub pool_size: usize,
    /// How long a request waits for a free connection, or for a new one to open, before it fails
    /// with `StoreError::Unavailable` (default 5 s).
    pub connect_timeout: Duration,
}

impl Default for PgOptions {
    fn default() -> Self {
        Self {
            pool_size: 16,
            connect_timeout: Duration::from_secs(5),
        }
    }
}

/// The PostgreSQL implementation of [`medex_core::store::Store`].
///
/// Share it behind an `Arc`. Dropping it ends its appender, which writes the fixes it holds,
/// makes them durable, then closes the pool's connections.
pub struct PgStore {
    pool: Pool,
    appender: Appender,
}

impl std::fmt::Debug for PgStore {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("PgStore").finish_non_exhaustive()
    }
}

impl PgStore {
    /// Connects to the database at `url` (`postgres://user:password@host:port/database`, or
    /// key=value form) with the default [`PgOptions`], and migrates its schema.
    pub async fn connect(url: &str) -> Result<Self, OpenError> {
        Self::connect_with(url, PgOptions::default()).await
    }

    /// [`PgStore::connect`] with tuning.
    pub async fn connect_with(url: &str, options: PgOptions) -> Result<Self, OpenError> {
        let mut config = tokio_postgres::Config::from_str(url).map_err(OpenError::InvalidUrl)?;
        config
            .application_name("medex")
            .connect_timeout(options.connect_timeout);
        let manager = Manager::from_config(
            config,
            NoTls,
            // A connection whose socket closed (server restarted) is replaced on checkout; one
            // that broke silently fails its next statement with `Unavailable` and is then closed.
            ManagerConfig {
                recycling_method: RecyclingMethod::Fast,
            },
        );
        let pool = Pool::builder(manager)
            .max_size(options.pool_size.max(2))
            .runtime(Runtime::Tokio1)
            .wait_timeout(Some(options.connect_timeout))
            .create_timeout(Some(options.connect_timeout))
            .recycle_timeout(Some(options.connect_timeout))
            .build()
            .map_err(|e| OpenError::Unreachable(e.to_string()))?;
        let mut client = pool
            .get()
            .await
            .map_err(|e| OpenError::Unreachable(e.to_string()))?;
        let applied = migrate::run(&mut client).await?;
        if !applied.is_empty() {
            tracing::info!(?applied, "database schema migrated");
        }
        drop(client);
        let appender = Appender::spawn(pool.clone());
        Ok(Self { pool, appender })
    }

    /// Starts a task that deletes driver fixes older than `retention` now and then every `every`
    /// (use [`DEFAULT_TRAIL_RETENTION`] unless told otherwise). Safe to run on every instance at
    /// once. It ends when the store is dropped; abort the handle to stop it sooner.
    ///
    /// # Panics
    ///
    /// Outside a Tokio runtime, like [`tokio::spawn`].
    pub fn spawn_retention(
        &self,
        retention: chrono::Duration,
        every: Duration,
    ) -> tokio::task::JoinHandle<()> {
        let pool = self.pool.clone();
        let alive = self.appender.alive();
        tokio::spawn(async move {
            let mut ticks = tokio::time::interval(every);
            ticks.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            loop {
                ticks.tick().await;
                if alive.upgrade().is_none() {
                    break;
                }
                let before = chrono::Utc::now() - retention;
                match trail::prune(&pool, before).await {
                    Ok(n) => tracing::debug!(pruned = n, "trail retention"),
                    // The next sweep tries again; nothing is lost meanwhile.
                    Err(error) => tracing::warn!(%error, "trail retention failed"),
                }
            }
        })
    }
}
