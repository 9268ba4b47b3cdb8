//! The storage port: everything the use cases need from a database, with the contract every
//! implementation must keep. [`crate::memory::MemoryStore`] is the reference implementation; the
//! `conformance` feature holds the suite that checks any other against this contract.
//!
//! Writes go through [`Store::commit`]: a set of records written all-or-nothing, each guarded by
//! its version (optimistic concurrency). Use cases compute the new records with pure code, then
//! commit; two writers racing on one record cannot both succeed.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use serde::{Deserialize, Serialize};

use crate::config::SystemConfig;
use crate::integrations::{ApiKey, Delivery, IdempotencyRecord, Webhook};
use crate::model::{
    ApiKeyId, DeliveryId, Driver, DriverId, DriverStatus, IdempotencyId, LocationFix, Order,
    OrderId, OrderStatus, Role, User, UserId, Vendor, VendorId, WebhookId,
};

/// A unique key that a commit would have duplicated.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum UniqueKey {
    /// `users.email`.
    Email,
    /// `orders.order_number`.
    OrderNumber,
    /// `orders.tracking_token`.
    TrackingToken,
    /// `(orders.vendor_id, external_ref.source, external_ref.id)`.
    ExternalOrder,
    /// `api_keys.hash`.
    ApiKeyHash,
}

/// What can go wrong in a store.
#[derive(Debug, Clone, thiserror::Error)]
#[non_exhaustive]
pub enum StoreError {
    /// A record in the commit was changed since it was read (its stored version is not
    /// `version - 1`), or an insert (version 1) found the record already there. Nothing was written.
    #[error("concurrent update")]
    Conflict,
    /// The commit would give two records the same unique key. Nothing was written.
    #[error("duplicate {0:?}")]
    Duplicate(UniqueKey),
    /// The store cannot serve now (IO error, closed, disk full). The write may or may not have
    /// reached the disk: a retry with the same versions then answers `Conflict` if it did.
    #[error("storage unavailable: {0}")]
    Unavailable(String),
    /// Stored data cannot be read back (corruption, or written by an unknown schema version).
    #[error("stored data unreadable: {0}")]
    Corrupt(String),
}

/// One record of a [`Store::commit`]. The record carries its new `version`: the store accepts it
/// only if the stored version is `version - 1` (absent counts as 0, so version 1 is an insert).
// Records are moved into a commit once and consumed there; boxing them would only add allocations.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone, PartialEq)]
pub enum Write {
    /// An account.
    User(User),
    /// A pharmacy.
    Vendor(Vendor),
    /// A driver profile. Its `current_*` position fields are not stored: positions come from fixes.
    Driver(Driver),
    /// An order.
    Order(Order),
    /// An API key (revoked ones stay, marked).
    ApiKey(ApiKey),
    /// A webhook endpoint (removed ones stay, marked, for their delivery log).
    Webhook(Webhook),
    /// An outbox row: one event for one endpoint.
    Delivery(Delivery),
    /// A remembered `Idempotency-Key`.
    Idempotency(IdempotencyRecord),
}

impl Write {
    /// The version the record is written with (1: an insert).
    pub fn version(&self) -> u64 {
        match self {
            Write::User(r) => r.version,
            Write::Vendor(r) => r.version,
            Write::Driver(r) => r.version,
            Write::Order(r) => r.version,
            Write::ApiKey(r) => r.version,
            Write::Webhook(r) => r.version,
            Write::Delivery(r) => r.version,
            Write::Idempotency(r) => r.version,
        }
    }
}

/// A page request. Lists are newest first (descending id; ids are time-ordered UUIDv7) and a page
/// holds the items strictly after the cursor in that order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Page<C> {
    /// At most this many items.
    pub limit: usize,
    /// The id of the last item of the previous page.
    pub after: Option<C>,
}

impl<C> Page<C> {
    /// The first page of `limit` items.
    pub fn first(limit: usize) -> Self {
        Self { limit, after: None }
    }
}

/// Which orders to list. Every given field must match.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct OrderQuery {
    /// Of this pharmacy.
    pub vendor_id: Option<VendorId>,
    /// Placed by this account.
    pub user_id: Option<UserId>,
    /// Assigned to this driver.
    pub driver_id: Option<DriverId>,
    /// In this status.
    pub status: Option<OrderStatus>,
    /// Created at or after.
    pub created_from: Option<DateTime<Utc>>,
    /// Created strictly before.
    pub created_before: Option<DateTime<Utc>>,
}

impl OrderQuery {
    /// Whether `order` matches every given field.
    pub fn matches(&self, order: &Order) -> bool {
        self.vendor_id.is_none_or(|v| order.vendor_id == v)
            && self.user_id.is_none_or(|u| order.user_id == u)
            && self.driver_id.is_none_or(|d| order.driver_id == Some(d))
            && self.status.is_none_or(|s| order.status == s)
            && self.created_from.is_none_or(|t| order.created_at >= t)
            && self.created_before.is_none_or(|t| order.created_at < t)
    }
}

/// Which accounts to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct UserQuery {
    /// With this role.
    pub role: Option<Role>,
    /// Active or not.
    pub is_active: Option<bool>,
}

impl UserQuery {
    /// Whether `user` matches.
    pub fn matches(&self, user: &User) -> bool {
        self.role.is_none_or(|r| user.role == r)
            && self.is_active.is_none_or(|a| user.is_active == a)
    }
}

/// Which of a driver's fixes to read: those with `from <= recorded_at < to`, oldest first, at
/// most `limit` (none when `to` is not after `from`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrailQuery {
    /// Whose trail.
    pub driver: DriverId,
    /// The first instant included.
    pub from: DateTime<Utc>,
    /// The first instant excluded.
    pub to: DateTime<Utc>,
    /// How many fixes at most.
    pub limit: usize,
}

impl TrailQuery {
    /// At most `limit` of `driver`'s fixes from `from` up to (not including) `to`.
    pub fn new(driver: DriverId, from: DateTime<Utc>, to: DateTime<Utc>, limit: usize) -> Self {
        Self {
            driver,
            from,
            to,
            limit,
        }
    }

    /// Whether `fix` is one this query asks for (the limit aside).
    pub fn includes(&self, fix: &LocationFix) -> bool {
        fix.driver_id == self.driver && fix.recorded_at >= self.from && fix.recorded_at < self.to
    }
}

/// An order as an external shop knows it: the pharmacy that took it in, the shop's name
/// (`source`) and the shop's id of the order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ShopOrder<'a> {
    /// The pharmacy.
    pub vendor: VendorId,
    /// The shop, e.g. `woocommerce`.
    pub source: &'a str,
    /// The shop's id of the order.
    pub id: &'a str,
}

impl<'a> ShopOrder<'a> {
    /// The order `id` of shop `source` at pharmacy `vendor`.
    pub fn new(vendor: VendorId, source: &'a str, id: &'a str) -> Self {
        Self { vendor, source, id }
    }
}

/// A request for the lease `name` on behalf of `holder`, made at `now`, to hold it until `until`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LeaseClaim<'a> {
    /// Which lease.
    pub name: &'a str,
    /// Who asks (an instance's name).
    pub holder: &'a str,
    /// The caller's time.
    pub now: DateTime<Utc>,
    /// When the lease ends if granted.
    pub until: DateTime<Utc>,
}

impl<'a> LeaseClaim<'a> {
    /// Whether a lease held by `holder` until `until` stands in this claim's way: it belongs to
    /// another holder and has not ended.
    pub fn is_blocked_by(&self, holder: &str, until: DateTime<Utc>) -> bool {
        holder != self.holder && until > self.now
    }

    /// `holder`'s claim at `now` on the lease `name`, until `until`.
    pub fn new(name: &'a str, holder: &'a str, now: DateTime<Utc>, until: DateTime<Utc>) -> Self {
        Self {
            name,
            holder,
            now,
            until,
        }
    }
}

/// Which drivers to list.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct DriverQuery {
    /// Of this fleet.
    pub vendor_id: Option<VendorId>,
    /// In this status.
    pub status: Option<DriverStatus>,
}

impl DriverQuery {
    /// Whether `driver` matches.
    pub fn matches(&self, driver: &Driver) -> bool {
        self.vendor_id.is_none_or(|v| driver.vendor_id == v)
            && self.status.is_none_or(|s| driver.status == s)
    }
}

/// A live refresh token (by its `jti`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RefreshSession {
    /// The token's `jti`.
    pub id: String,
    /// Whose.
    pub user_id: UserId,
    /// When it stops working anyway.
    pub expires_at: DateTime<Utc>,
}

/// The system configuration as stored, with the version that guards changes to it (as a
/// record's version does: each save is the stored version + 1).
#[derive(Debug, Clone, PartialEq)]
pub struct StoredConfig {
    /// The configuration.
    pub config: SystemConfig,
    /// Its version, from 1.
    pub version: u64,
}

/// The storage port.
///
/// Durability: when a write method returns `Ok`, the write is on disk (where the store has one)
/// and survives a crash, except [`Store::append_fixes`], which may be batched for up to one second.
#[async_trait]
pub trait Store: Send + Sync + 'static {
    /// Writes all records or none, as if applied one after the other (a record written twice
    /// builds on its own earlier write). Each record's stored version MUST be `version - 1`
    /// (absent is 0), else `Conflict`; unique keys (user e-mail, order number, tracking token, external order
    /// ref per vendor) MUST stay unique, else `Duplicate`. Indexes follow the records atomically.
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError>;

    /// The account, or `None`.
    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError>;
    /// The account with this (normalised) e-mail, or `None`.
    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError>;
    /// Accounts matching `query`, newest first, one page.
    async fn users(&self, query: &UserQuery, page: Page<UserId>) -> Result<Vec<User>, StoreError>;

    /// The pharmacy, or `None`.
    async fn vendor(&self, id: VendorId) -> Result<Option<Vendor>, StoreError>;
    /// All pharmacies, newest first, one page.
    async fn vendors(&self, page: Page<VendorId>) -> Result<Vec<Vendor>, StoreError>;

    /// The driver with its last position (from the newest fix), or `None`.
    async fn driver(&self, id: DriverId) -> Result<Option<Driver>, StoreError>;
    /// Drivers matching `query` with their last positions, newest first, one page.
    async fn drivers(
        &self,
        query: &DriverQuery,
        page: Page<DriverId>,
    ) -> Result<Vec<Driver>, StoreError>;

    /// The order, or `None`.
    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError>;
    /// The order with this tracking token, or `None`.
    async fn order_by_tracking_token(&self, token: &str) -> Result<Option<Order>, StoreError>;
    /// The order a vendor took in from an external shop, or `None`.
    async fn order_by_external_ref(&self, key: ShopOrder<'_>) -> Result<Option<Order>, StoreError>;
    /// Orders matching `query`, newest first, one page.
    async fn orders(
        &self,
        query: &OrderQuery,
        page: Page<OrderId>,
    ) -> Result<Vec<Order>, StoreError>;

    /// Appends fixes to the drivers' trails and moves their last positions (to the newest fix by
    /// `recorded_at`). May be buffered for at most one second before it is durable.
    async fn append_fixes(&self, fixes: &[LocationFix]) -> Result<(), StoreError>;
    /// A driver's fixes with `from <= recorded_at < to`, oldest first, at most `limit`.
    async fn trail(&self, query: TrailQuery) -> Result<Vec<LocationFix>, StoreError>;
    /// Deletes fixes recorded before `before` (retention); returns how many.
    async fn prune_trail(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    /// Records a refresh token as live.
    async fn put_refresh_session(&self, session: RefreshSession) -> Result<(), StoreError>;
    /// Removes and returns a live refresh token: of two concurrent calls with one id, at most one
    /// gets `Some`.
    async fn take_refresh_session(&self, id: &str) -> Result<Option<RefreshSession>, StoreError>;

    /// The persisted system configuration and its version, if one was saved.
    async fn system_config(&self) -> Result<Option<StoredConfig>, StoreError>;
    /// Persists the system configuration as `version`. The stored version MUST be `version - 1`
    /// (none saved counts as 0), else `Conflict` and nothing is written: of two instances
    /// changing the configuration at once, one wins.
    async fn save_system_config(
        &self,
        config: &SystemConfig,
        version: u64,
    ) -> Result<(), StoreError>;

    /// Proves the store can read and write now (for health checks).
    async fn check(&self) -> Result<(), StoreError>;
    /// Makes everything written so far durable, including buffered fixes.
    async fn flush(&self) -> Result<(), StoreError>;

    // ---- Several instances on one store ----

    /// Grants the lease `name` to `holder` until `until`, unless another holder has it at `now`
    /// (its lease ends after `now`); the holder itself may always extend or shorten its own.
    /// `true` when granted. Of racing callers at most one is granted a free lease. Times come
    /// from the callers' clocks, so instances sharing a store keep their clocks in step (NTP).
    async fn acquire_lease(&self, claim: LeaseClaim<'_>) -> Result<bool, StoreError>;
    /// Ends `holder`'s lease `name` at once; nothing when someone else holds it, or nobody.
    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError>;
    /// Deletes the refresh sessions that expired strictly before `before`; how many.
    async fn prune_refresh_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;

    // ---- Integrations (records written through `commit`) ----

    /// The API key, revoked or not, or `None`.
    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError>;
    /// The API key whose hash is `hash` (unique), or `None`.
    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError>;
    /// A pharmacy's API keys, revoked ones too, newest first, one page.
    async fn api_keys(
        &self,
        vendor: VendorId,
        page: Page<ApiKeyId>,
    ) -> Result<Vec<ApiKey>, StoreError>;
    /// The webhook endpoint, removed or not, or `None`.
    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StoreError>;
    /// A pharmacy's webhook endpoints, removed ones too, newest first, one page.
    async fn webhooks(
        &self,
        vendor: VendorId,
        page: Page<WebhookId>,
    ) -> Result<Vec<Webhook>, StoreError>;
    /// The delivery, or `None`.
    async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError>;
    /// An endpoint's deliveries, newest first, one page.
    async fn deliveries(
        &self,
        webhook: WebhookId,
        page: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>, StoreError>;
    /// Deliveries still `pending` (due or not, leased or not), oldest id first, at most `limit`.
    /// A delivery leaves this list in the commit that marks it delivered or failed.
    async fn pending_deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError>;
    /// The remembered key, expired or not, or `None`.
    async fn idempotency(&self, id: IdempotencyId)
    -> Result<Option<IdempotencyRecord>, StoreError>;
    /// Deletes the remembered keys whose `expires_at` is strictly before `before`; how many.
    async fn prune_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError>;
}
