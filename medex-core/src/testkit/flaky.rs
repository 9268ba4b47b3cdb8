//! A store that fails on demand: the in-memory store behind two switches, for the paths a
//! healthy store never takes (503 answers, lost races).

use std::sync::atomic::{AtomicBool, Ordering};

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::SystemConfig;
use crate::integrations::{ApiKey, Delivery, IdempotencyRecord, Webhook};
use crate::memory::MemoryStore;
use crate::model::{
    ApiKeyId, DeliveryId, Driver, DriverId, IdempotencyId, LocationFix, Order, OrderId, User,
    UserId, Vendor, VendorId, WebhookId,
};
use crate::store::{
    DriverQuery, LeaseClaim, OrderQuery, Page, RefreshSession, ShopOrder, Store, StoreError,
    StoredConfig, TrailQuery, UserQuery, Write,
};

/// The in-memory store with a switch that makes every call fail as an unavailable disk would,
/// and one that makes every change to an existing record lose a race (`Conflict`, as if another
/// request had written it first; a new record cannot lose one).
#[derive(Default)]
pub struct FlakyStore {
    inner: MemoryStore,
    down: AtomicBool,
    losing: AtomicBool,
}

impl FlakyStore {
    /// Every call fails with [`StoreError::Unavailable`] while `down`.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    /// Every commit that changes an existing record fails with [`StoreError::Conflict`] while
    /// `losing`.
    pub fn set_losing_races(&self, losing: bool) {
        self.losing.store(losing, Ordering::SeqCst);
    }

    fn up(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::SeqCst) {
            // A detail no answer may pass on: tests check that it never reaches a client.
            Err(StoreError::Unavailable(
                "disk /srv/secret-volume on fire".into(),
            ))
        } else {
            Ok(())
        }
    }
}

/// Implements the store: `commit` and `save_system_config` as written here, every other call by asking
/// [`FlakyStore::up`] first, then the inner store. (The whole impl is generated so that
/// `async_trait` sees the expanded methods.)
macro_rules! flaky_store {
    ($($name:ident($($arg:ident: $ty:ty),*) -> $out:ty;)*) => {
        #[async_trait]
        impl Store for FlakyStore {
            async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
                self.up()?;
                let changes_a_record = writes.iter().any(|w| w.version() > 1);
                if changes_a_record && self.losing.load(Ordering::SeqCst) {
                    return Err(StoreError::Conflict);
                }
                self.inner.commit(writes).await
            }

            async fn save_system_config(
                &self,
                config: &SystemConfig,
                version: u64,
            ) -> Result<(), StoreError> {
                self.up()?;
                // A configuration saved before is an existing record too.
                if version > 1 && self.losing.load(Ordering::SeqCst) {
                    return Err(StoreError::Conflict);
                }
                self.inner.save_system_config(config, version).await
            }

            $(async fn $name(&self, $($arg: $ty),*) -> Result<$out, StoreError> {
                self.up()?;
                self.inner.$name($($arg),*).await
            })*
        }
    };
}

flaky_store! {
    user(id: UserId) -> Option<User>;
    user_by_email(email: &str) -> Option<User>;
    users(q: &UserQuery, p: Page<UserId>) -> Vec<User>;
    vendor(id: VendorId) -> Option<Vendor>;
    vendors(p: Page<VendorId>) -> Vec<Vendor>;
    driver(id: DriverId) -> Option<Driver>;
    drivers(q: &DriverQuery, p: Page<DriverId>) -> Vec<Driver>;
    order(id: OrderId) -> Option<Order>;
    order_by_tracking_token(t: &str) -> Option<Order>;
    order_by_external_ref(key: ShopOrder<'_>) -> Option<Order>;
    orders(q: &OrderQuery, p: Page<OrderId>) -> Vec<Order>;
    append_fixes(f: &[LocationFix]) -> ();
    trail(query: TrailQuery) -> Vec<LocationFix>;
    prune_trail(before: DateTime<Utc>) -> u64;
    put_refresh_session(s: RefreshSession) -> ();
    take_refresh_session(id: &str) -> Option<RefreshSession>;
    system_config() -> Option<StoredConfig>;
    check() -> ();
    flush() -> ();
    acquire_lease(claim: LeaseClaim<'_>) -> bool;
    release_lease(name: &str, holder: &str) -> ();
    prune_refresh_sessions(before: DateTime<Utc>) -> u64;
    api_key(id: ApiKeyId) -> Option<ApiKey>;
    api_key_by_hash(hash: &str) -> Option<ApiKey>;
    api_keys(v: VendorId, p: Page<ApiKeyId>) -> Vec<ApiKey>;
    webhook(id: WebhookId) -> Option<Webhook>;
    webhooks(v: VendorId, p: Page<WebhookId>) -> Vec<Webhook>;
    delivery(id: DeliveryId) -> Option<Delivery>;
    deliveries(w: WebhookId, p: Page<DeliveryId>) -> Vec<Delivery>;
    pending_deliveries(limit: usize) -> Vec<Delivery>;
    idempotency(id: IdempotencyId) -> Option<IdempotencyRecord>;
    prune_idempotency(before: DateTime<Utc>) -> u64;
}
