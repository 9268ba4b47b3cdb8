//! The use cases: every operation of the API, as methods of [`MedEx`] taking the acting identity.
//!
//! Each write follows one pattern: read what is needed, decide with pure code (permissions,
//! lifecycle, pricing), commit all changed records at once guarded by their versions, then
//! publish events. Transports only translate requests into these calls and results back.
//!
//! This module holds the service itself, its ports and what every use case shares; each
//! aggregate's use cases, with their input types, live in a module of their own: [`accounts`],
//! [`vendors`], [`drivers`], [`integrations`], [`orders`], [`delivery`], [`dispatch`], [`custody`], [`tracking`], [`reporting`],
//! [`admin`], [`upkeep`].
//! Their types are re-exported here, so `medex_core::service::NewOrder` names the same type as
//! `medex_core::service::orders::NewOrder`.

use std::sync::{Arc, RwLock};

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, Utc};

use crate::auth::{PasswordHasher, Subject, TokenKeys, TokenType};
use crate::clock::{Clock, Entropy};
use crate::config::SystemConfig;
use crate::custody::CustodyKeys;
use crate::error::{AuthFailure, Conflict, Error, HandoverRefusal, Result};
use crate::events::{DriverLocation, Event, EventBus};
use crate::fields::FieldErrors;
use crate::lifecycle::{self, Action, Move, Signature, Verdict};
use crate::model::*;
use crate::permissions::{self, Access, Actor, Party, Permission, access, parties};
use crate::remembered::Remembered;
use crate::reports::{self, Earnings, VendorDailyReport};
use crate::routing;
use crate::store::{
    DriverQuery, LeaseClaim, OrderQuery, Page, RefreshSession, ShopOrder, Store, StoreError,
    TrailQuery, UniqueKey, UserQuery, Write,
};
use crate::tracking::TrackingView;

pub mod accounts;
pub mod admin;
mod arrivals;
pub mod custody;
pub mod delivery;
pub mod dispatch;
pub mod drivers;
pub mod integrations;
pub mod orders;
pub mod reporting;
pub mod tracking;
pub mod upkeep;
pub mod vendors;

pub use crate::suggestions::DriverSuggestion;
pub use accounts::{NewAccount, Session};
pub use delivery::{AssignmentResponse, ProofKind, Transition};
pub use dispatch::RunPlan;
pub use drivers::{DriverPatch, NewDriver};
pub use integrations::{Idempotent, NewApiKey, NewWebhook};
pub use orders::{ExternalOrder, NewItem, NewOrder, Requirements, Schedule};
pub use tracking::{FixInput, MAX_FIX_BATCH};
pub use upkeep::Swept;
pub use vendors::{LiveFleet, NewVendor, VendorPatch};

/// Longest page a list returns.
pub const MAX_PAGE: usize = 200;
/// Page length when none is asked for.
pub const DEFAULT_PAGE: usize = 50;
/// How many pages a use case reads at most when it needs "all" of something (reports, exports):
/// a bound on work per request.
const MAX_SCAN_PAGES: usize = 500;

/// Where the service's dependencies come from.
pub struct Ports {
    /// The database.
    pub store: Arc<dyn Store>,
    /// Where events go.
    pub bus: Arc<dyn EventBus>,
    /// Time.
    pub clock: Arc<dyn Clock>,
    /// Ids, tokens and order numbers.
    pub entropy: Arc<dyn Entropy>,
    /// Password hashing.
    pub hasher: Arc<dyn PasswordHasher>,
    /// Token signing.
    pub tokens: TokenKeys,
    /// Signing of the chain of custody (and the former keys whose signatures still count).
    pub custody: CustodyKeys,
}

/// The MedEx application service.
pub struct MedEx {
    store: Arc<dyn Store>,
    bus: Arc<dyn EventBus>,
    clock: Arc<dyn Clock>,
    entropy: Arc<dyn Entropy>,
    hasher: Arc<dyn PasswordHasher>,
    tokens: TokenKeys,
    custody: CustodyKeys,
    /// The configuration in force and its stored version (0: none saved yet).
    config: RwLock<(Arc<SystemConfig>, u64)>,
    /// A real hash of a random password, verified against when an e-mail is unknown so that
    /// login takes as long for unknown accounts as for wrong passwords.
    decoy_hash: String,
    /// The pace of each driver's fixes, whatever transport they come by.
    fix_pace: tracking::FixPace,
    /// Webhook URLs may point to private addresses (development and tests).
    private_webhooks: bool,
    /// Accepted fixes on their way to the trail (the same object as `store`).
    fix_queue: Arc<crate::fix_queue::FixQueue>,
    /// What each reporting driver's fixes need (its record, its active order), kept between
    /// fixes and dropped whenever a commit touches them.
    fix_contexts: tracking::FixContexts,
    /// Public tracking views as their JSON answers, forgotten whenever a commit, a fix or the
    /// configuration may change them.
    tracking_views: tracking::TrackingViews,
    /// Travel times between the stops of runs.
    router: Arc<dyn crate::router::Router>,
    /// Each reporting driver's approach to its next drop-off.
    approaches: arrivals::Approaches,
}

fn clamp_page<C>(page: Page<C>) -> Page<C> {
    Page {
        limit: page.limit.clamp(1, MAX_PAGE),
        after: page.after,
    }
}

/// Reads a store listing page by page from `from`, keeping what `keep` accepts, until `want`
/// are kept, the listing ends or [`MAX_SCAN_PAGES`] pages were read. `id` is a record's cursor.
async fn scan<T, C: Copy, F>(
    from: Page<C>,
    want: usize,
    mut read: impl FnMut(Page<C>) -> F,
    id: impl Fn(&T) -> C,
    keep: impl Fn(&T) -> bool,
) -> Result<Vec<T>>
where
    F: std::future::Future<Output = std::result::Result<Vec<T>, StoreError>>,
{
    let mut found = Vec::new();
    let mut after = from.after;
    for _ in 0..MAX_SCAN_PAGES {
        let batch = read(Page {
            limit: from.limit,
            after,
        })
        .await?;
        let exhausted = batch.len() < from.limit;
        after = batch.last().map(&id);
        found.extend(batch.into_iter().filter(|r| keep(r)));
        if exhausted || found.len() >= want {
            break;
        }
    }
    found.truncate(want);
    Ok(found)
}

/// The first page of a whole listing, as [`scan`] reads it to the end.
fn whole<C>() -> Page<C> {
    Page {
        limit: MAX_PAGE,
        after: None,
    }
}

fn bump<T>(record: &mut T, version: impl FnOnce(&mut T) -> &mut u64) {
    *version(record) += 1;
}

fn is_active_order(order: &Order) -> bool {
    !order.status.is_terminal()
}

impl MedEx {
    /// Builds the service and loads the persisted system configuration, falling back to
    /// `initial_config` (from the environment) on first start.
    pub async fn new(ports: Ports, initial_config: SystemConfig) -> Result<Self> {
        initial_config.validate()?;
        let config = match ports.store.system_config().await? {
            Some(saved) => (saved.config, saved.version),
            None => (initial_config, 0),
        };
        let mut decoy = [0u8; 16];
        ports.entropy.fill(&mut decoy);
        let decoy_hash = ports.hasher.hash(format!("{decoy:?}")).await;
        let fix_queue =
            crate::fix_queue::FixQueue::new(ports.store, crate::fix_queue::DEFAULT_CAPACITY);
        Ok(Self {
            store: fix_queue.clone(),
            fix_queue,
            // Other instances on the same store may change drivers and orders: their changes
            // show in fixes within a second (see `with_private_store`).
            fix_contexts: tracking::FixContexts::new(Duration::seconds(1), 65_536),
            tracking_views: tracking::TrackingViews::new(Duration::seconds(1)),
            bus: ports.bus,
            clock: ports.clock,
            entropy: ports.entropy,
            hasher: ports.hasher,
            tokens: ports.tokens,
            custody: ports.custody,
            config: RwLock::new((Arc::new(config.0), config.1)),
            decoy_hash,
            fix_pace: tracking::FixPace::default(),
            private_webhooks: false,
            router: Arc::new(crate::router::GreatCircle),
            approaches: Default::default(),
        })
    }

    /// Accepts at most one fix per driver per `interval` (by any socket or request; more are
    /// [`Error::RateLimited`]). Zero, the default, accepts every fix.
    pub fn with_min_fix_interval(mut self, interval: std::time::Duration) -> Self {
        self.fix_pace = tracking::FixPace::new(interval);
        self
    }

    /// Says that no other process writes this store (sled locks its directory): this instance's
    /// own commits then keep each driver's fix context fresh, and it is read again only after a
    /// minute instead of a second.
    pub fn with_private_store(mut self) -> Self {
        self.fix_contexts = tracking::FixContexts::new(Duration::seconds(60), 65_536);
        self.tracking_views = tracking::TrackingViews::new(Duration::seconds(60));
        self
    }

    /// The store, for health checks and shutdown: fix appends through it are queued (see
    /// [`crate::fix_queue`]) and its `flush` writes the queue first.
    pub fn store(&self) -> &Arc<dyn Store> {
        &self.store
    }

    /// The queue of fixes on their way to the trail: its stats for metrics, and its writer for
    /// the program to spawn (until it runs, fixes are written through before they are
    /// published).
    pub fn fix_queue(&self) -> &Arc<crate::fix_queue::FixQueue> {
        &self.fix_queue
    }

    /// The clock in use.
    pub fn now(&self) -> DateTime<Utc> {
        self.clock.now()
    }

    /// The configuration in force.
    pub fn config(&self) -> Arc<SystemConfig> {
        self.config
            .read()
            .unwrap_or_else(|e| e.into_inner())
            .0
            .clone()
    }

    fn new_id(&self) -> uuid::Uuid {
        self.entropy.uuid(self.clock.now())
    }

    async fn commit(&self, writes: Vec<Write>) -> Result<()> {
        let touched = tracking::drivers_touched(&writes);
        let views = tracking::views_touched(&writes);
        let result = self.store.commit(writes).await;
        // Whether or not it went through, what these drivers' fixes and these orders' public
        // views rely on may have changed.
        for driver in &touched {
            self.fix_contexts.forget(driver);
        }
        self.tracking_views.forget(&views);
        Ok(result?)
    }

    // -----------------------------------------------------------------------------------------
    // Authentication
}

#[cfg(test)]
mod tests;
