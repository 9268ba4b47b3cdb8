//! An in-memory [`Store`]: the reference implementation of the storage contract, used by core's
//! own tests, by model tests of other stores, and by programs that need no persistence.

use std::collections::{BTreeMap, HashMap};
use std::sync::Mutex;

use async_trait::async_trait;
use chrono::{DateTime, Utc};

use crate::config::SystemConfig;
use crate::integrations::{ApiKey, Delivery, DeliveryState, IdempotencyRecord, Webhook};
use crate::model::{
    ApiKeyId, DeliveryId, Driver, DriverId, IdempotencyId, LocationFix, Order, OrderId, User,
    UserId, Vendor, VendorId, WebhookId,
};
use crate::store::{
    DriverQuery, LeaseClaim, OrderQuery, Page, RefreshSession, ShopOrder, Store, StoreError,
    StoredConfig, TrailQuery, UniqueKey, UserQuery, Write,
};

#[derive(Default)]
struct State {
    users: BTreeMap<UserId, User>,
    vendors: BTreeMap<VendorId, Vendor>,
    drivers: BTreeMap<DriverId, Driver>,
    orders: BTreeMap<OrderId, Order>,
    trails: HashMap<DriverId, Vec<LocationFix>>,
    positions: HashMap<DriverId, LocationFix>,
    sessions: HashMap<String, RefreshSession>,
    config: Option<StoredConfig>,
    /// Lease name → (holder, until).
    leases: HashMap<String, (String, DateTime<Utc>)>,
    api_keys: BTreeMap<ApiKeyId, ApiKey>,
    webhooks: BTreeMap<WebhookId, Webhook>,
    deliveries: BTreeMap<DeliveryId, Delivery>,
    idempotency: BTreeMap<IdempotencyId, IdempotencyRecord>,
}

/// Everything in a mutex. Not durable: a dropped store is gone.
#[derive(Default)]
pub struct MemoryStore {
    state: Mutex<State>,
}

impl MemoryStore {
    /// An empty store.
    pub fn new() -> Self {
        Self::default()
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(|e| e.into_inner())
    }
}

fn check_version(stored: Option<u64>, new: u64) -> Result<(), StoreError> {
    if stored.unwrap_or(0) + 1 == new {
        Ok(())
    } else {
        Err(StoreError::Conflict)
    }
}

fn as_user(w: &Write) -> Option<&User> {
    if let Write::User(r) = w {
        Some(r)
    } else {
        None
    }
}
fn as_vendor(w: &Write) -> Option<&Vendor> {
    if let Write::Vendor(r) = w {
        Some(r)
    } else {
        None
    }
}
fn as_driver(w: &Write) -> Option<&Driver> {
    if let Write::Driver(r) = w {
        Some(r)
    } else {
        None
    }
}
fn as_order(w: &Write) -> Option<&Order> {
    if let Write::Order(r) = w {
        Some(r)
    } else {
        None
    }
}

/// The version a record of `batch` or `stored` has as the commit sees it so far.
fn latest_version<K: Ord + Copy, T>(
    earlier: &[Write],
    stored: &BTreeMap<K, T>,
    id: K,
    of: impl Fn(&Write) -> Option<(K, u64)>,
    version: impl Fn(&T) -> u64,
) -> Option<u64> {
    earlier
        .iter()
        .rev()
        .filter_map(&of)
        .find(|(k, _)| *k == id)
        .map(|(_, v)| v)
        .or_else(|| stored.get(&id).map(version))
}

/// The version of record `id` as the commit sees it so far: its last write in the batch, else
/// the stored one.
fn latest<K: Ord + Copy, T>(
    batch: &[&T],
    stored: &BTreeMap<K, T>,
    id: K,
    key: impl Fn(&T) -> K,
    version: impl Fn(&T) -> u64,
) -> Option<u64> {
    batch
        .iter()
        .rev()
        .find(|r| key(r) == id)
        .map(|r| version(r))
        .or_else(|| stored.get(&id).map(version))
}

/// Every record as the commit sees it so far: stored ones not rewritten in the batch, then the
/// batch's (a record written twice appears twice; both carry the same id).
fn visible<'a, K: Ord + Copy, T>(
    batch: &'a [&'a T],
    stored: &'a BTreeMap<K, T>,
    key: impl Fn(&T) -> K + Copy + 'a,
) -> impl Iterator<Item = &'a T> + 'a {
    stored
        .values()
        .filter(move |s| !batch.iter().any(|b| key(b) == key(s)))
        .chain(batch.iter().copied())
}

fn page<K: Ord + Copy, V: Clone>(
    map: &BTreeMap<K, V>,
    page: Page<K>,
    keep: impl Fn(&V) -> bool,
) -> Vec<V> {
    let range = match page.after {
        Some(after) => map.range(..after),
        None => map.range(..),
    };
    range
        .rev()
        .map(|(_, v)| v)
        .filter(|v| keep(v))
        .take(page.limit)
        .cloned()
        .collect()
}

impl State {
    /// Checks a commit as if its writes were applied one after the other: a record written
    /// twice is checked against its own earlier write, and unique keys against the batch too.
    fn validate(&self, writes: &[Write]) -> Result<(), StoreError> {
        for (i, write) in writes.iter().enumerate() {
            let earlier = &writes[..i];
            match write {
                Write::User(u) => {
                    let batch: Vec<&User> = earlier.iter().filter_map(|w| as_user(w)).collect();
                    check_version(
                        latest(&batch, &self.users, u.id, |r| r.id, |r| r.version),
                        u.version,
                    )?;
                    if visible(&batch, &self.users, |r| r.id)
                        .any(|o| o.id != u.id && o.email == u.email)
                    {
                        return Err(StoreError::Duplicate(UniqueKey::Email));
                    }
                }
                Write::Vendor(v) => {
                    let batch: Vec<&Vendor> = earlier.iter().filter_map(|w| as_vendor(w)).collect();
                    check_version(
                        latest(&batch, &self.vendors, v.id, |r| r.id, |r| r.version),
                        v.version,
                    )?;
                }
                Write::Driver(d) => {
                    let batch: Vec<&Driver> = earlier.iter().filter_map(|w| as_driver(w)).collect();
                    check_version(
                        latest(&batch, &self.drivers, d.id, |r| r.id, |r| r.version),
                        d.version,
                    )?;
                }
                Write::Order(o) => {
                    let batch: Vec<&Order> = earlier.iter().filter_map(|w| as_order(w)).collect();
                    check_version(
                        latest(&batch, &self.orders, o.id, |r| r.id, |r| r.version),
                        o.version,
                    )?;
                    for other in
                        visible(&batch, &self.orders, |r| r.id).filter(|other| other.id != o.id)
                    {
                        if other.order_number == o.order_number {
                            return Err(StoreError::Duplicate(UniqueKey::OrderNumber));
                        }
                        if other.tracking_token == o.tracking_token {
                            return Err(StoreError::Duplicate(UniqueKey::TrackingToken));
                        }
                        if o.external_ref.is_some()
                            && other.vendor_id == o.vendor_id
                            && other.external_ref == o.external_ref
                        {
                            return Err(StoreError::Duplicate(UniqueKey::ExternalOrder));
                        }
                    }
                }
                Write::ApiKey(k) => {
                    let of = |w: &Write| match w {
                        Write::ApiKey(r) => Some((r.id, r.version)),
                        _ => None,
                    };
                    check_version(
                        latest_version(earlier, &self.api_keys, k.id, of, |r| r.version),
                        k.version,
                    )?;
                    let taken = self
                        .api_keys
                        .values()
                        .chain(earlier.iter().filter_map(|w| match w {
                            Write::ApiKey(r) => Some(r),
                            _ => None,
                        }))
                        .any(|o| o.id != k.id && o.hash == k.hash);
                    if taken {
                        return Err(StoreError::Duplicate(UniqueKey::ApiKeyHash));
                    }
                }
                Write::Webhook(h) => {
                    let of = |w: &Write| match w {
                        Write::Webhook(r) => Some((r.id, r.version)),
                        _ => None,
                    };
                    check_version(
                        latest_version(earlier, &self.webhooks, h.id, of, |r| r.version),
                        h.version,
                    )?;
                }
                Write::Delivery(d) => {
                    let of = |w: &Write| match w {
                        Write::Delivery(r) => Some((r.id, r.version)),
                        _ => None,
                    };
                    check_version(
                        latest_version(earlier, &self.deliveries, d.id, of, |r| r.version),
                        d.version,
                    )?;
                }
                Write::Idempotency(i) => {
                    let of = |w: &Write| match w {
                        Write::Idempotency(r) => Some((r.id, r.version)),
                        _ => None,
                    };
                    check_version(
                        latest_version(earlier, &self.idempotency, i.id, of, |r| r.version),
                        i.version,
                    )?;
                }
            }
        }
        Ok(())
    }

    fn with_position(&self, mut driver: Driver) -> Driver {
        if let Some(fix) = self.positions.get(&driver.id) {
            driver.current_latitude = Some(fix.latitude);
            driver.current_longitude = Some(fix.longitude);
            driver.last_location_update = Some(fix.recorded_at);
        }
        driver
    }
}

fn without_position(mut driver: Driver) -> Driver {
    driver.current_latitude = None;
    driver.current_longitude = None;
    driver.last_location_update = None;
    driver
}

#[async_trait]
impl Store for MemoryStore {
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        let mut state = self.state();
        state.validate(&writes)?;
        for write in writes {
            match write {
                Write::User(u) => {
                    state.users.insert(u.id, u);
                }
                Write::Vendor(v) => {
                    state.vendors.insert(v.id, v);
                }
                Write::Driver(d) => {
                    state.drivers.insert(d.id, without_position(d));
                }
                Write::Order(o) => {
                    state.orders.insert(o.id, o);
                }
                Write::ApiKey(k) => {
                    state.api_keys.insert(k.id, k);
                }
                Write::Webhook(h) => {
                    state.webhooks.insert(h.id, h);
                }
                Write::Delivery(d) => {
                    state.deliveries.insert(d.id, d);
                }
                Write::Idempotency(i) => {
                    state.idempotency.insert(i.id, i);
                }
            }
        }
        Ok(())
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        Ok(self.state().users.get(&id).cloned())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        Ok(self
            .state()
            .users
            .values()
            .find(|u| u.email.as_str() == email)
            .cloned())
    }

    async fn users(&self, query: &UserQuery, p: Page<UserId>) -> Result<Vec<User>, StoreError> {
        Ok(page(&self.state().users, p, |u| query.matches(u)))
    }

    async fn vendor(&self, id: VendorId) -> Result<Option<Vendor>, StoreError> {
        Ok(self.state().vendors.get(&id).cloned())
    }

    async fn vendors(&self, p: Page<VendorId>) -> Result<Vec<Vendor>, StoreError> {
        Ok(page(&self.state().vendors, p, |_| true))
    }

    async fn driver(&self, id: DriverId) -> Result<Option<Driver>, StoreError> {
        let state = self.state();
        Ok(state
            .drivers
            .get(&id)
            .cloned()
            .map(|d| state.with_position(d)))
    }

    async fn drivers(
        &self,
        query: &DriverQuery,
        p: Page<DriverId>,
    ) -> Result<Vec<Driver>, StoreError> {
        let state = self.state();
        let found = page(&state.drivers, p, |d| query.matches(d));
        Ok(found.into_iter().map(|d| state.with_position(d)).collect())
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        Ok(self.state().orders.get(&id).cloned())
    }

    async fn order_by_tracking_token(&self, token: &str) -> Result<Option<Order>, StoreError> {
        Ok(self
            .state()
            .orders
            .values()
            .find(|o| o.tracking_token == token)
            .cloned())
    }

    async fn order_by_external_ref(&self, key: ShopOrder<'_>) -> Result<Option<Order>, StoreError> {
        Ok(self
            .state()
            .orders
            .values()
            .find(|o| {
                o.vendor_id == key.vendor
                    && o.external_ref
                        .as_ref()
                        .is_some_and(|r| r.source == key.source && r.id == key.id)
            })
            .cloned())
    }

    async fn orders(&self, query: &OrderQuery, p: Page<OrderId>) -> Result<Vec<Order>, StoreError> {
        Ok(page(&self.state().orders, p, |o| query.matches(o)))
    }

    async fn append_fixes(&self, fixes: &[LocationFix]) -> Result<(), StoreError> {
        let mut state = self.state();
        for fix in fixes {
            let trail = state.trails.entry(fix.driver_id).or_default();
            // Keep the trail sorted by time even when fixes arrive out of order.
            let at = trail.partition_point(|f| f.recorded_at <= fix.recorded_at);
            trail.insert(at, *fix);
            fix.keep_newest(&mut state.positions);
        }
        Ok(())
    }

    async fn trail(&self, query: TrailQuery) -> Result<Vec<LocationFix>, StoreError> {
        let state = self.state();
        let trail = state
            .trails
            .get(&query.driver)
            .map(Vec::as_slice)
            .unwrap_or_default();
        Ok(trail
            .iter()
            .filter(|f| query.includes(f))
            .take(query.limit)
            .copied()
            .collect())
    }

    async fn prune_trail(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.state();
        let mut removed = 0;
        for trail in state.trails.values_mut() {
            let old = trail.partition_point(|f| f.recorded_at < before);
            trail.drain(..old);
            removed += old as u64;
        }
        Ok(removed)
    }

    async fn put_refresh_session(&self, session: RefreshSession) -> Result<(), StoreError> {
        self.state().sessions.insert(session.id.clone(), session);
        Ok(())
    }

    async fn take_refresh_session(&self, id: &str) -> Result<Option<RefreshSession>, StoreError> {
        Ok(self.state().sessions.remove(id))
    }

    async fn system_config(&self) -> Result<Option<StoredConfig>, StoreError> {
        Ok(self.state().config.clone())
    }

    async fn save_system_config(
        &self,
        config: &SystemConfig,
        version: u64,
    ) -> Result<(), StoreError> {
        let mut state = self.state();
        check_version(state.config.as_ref().map(|c| c.version), version)?;
        state.config = Some(StoredConfig {
            config: config.clone(),
            version,
        });
        Ok(())
    }

    async fn check(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn flush(&self) -> Result<(), StoreError> {
        Ok(())
    }

    async fn acquire_lease(&self, claim: LeaseClaim<'_>) -> Result<bool, StoreError> {
        let mut state = self.state();
        let blocked = state
            .leases
            .get(claim.name)
            .is_some_and(|(by, ends)| claim.is_blocked_by(by, *ends));
        if blocked {
            return Ok(false);
        }
        state.leases.insert(
            claim.name.to_owned(),
            (claim.holder.to_owned(), claim.until),
        );
        Ok(true)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let mut state = self.state();
        if state.leases.get(name).is_some_and(|(by, _)| by == holder) {
            state.leases.remove(name);
        }
        Ok(())
    }

    async fn prune_refresh_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.state();
        let count = state.sessions.len();
        state.sessions.retain(|_, s| s.expires_at >= before);
        Ok((count - state.sessions.len()) as u64)
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        Ok(self.state().api_keys.get(&id).cloned())
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        Ok(self
            .state()
            .api_keys
            .values()
            .find(|k| k.hash == hash)
            .cloned())
    }

    async fn api_keys(
        &self,
        vendor: VendorId,
        p: Page<ApiKeyId>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        Ok(page(&self.state().api_keys, p, |k| k.vendor_id == vendor))
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StoreError> {
        Ok(self.state().webhooks.get(&id).cloned())
    }

    async fn webhooks(
        &self,
        vendor: VendorId,
        p: Page<WebhookId>,
    ) -> Result<Vec<Webhook>, StoreError> {
        Ok(page(&self.state().webhooks, p, |h| h.vendor_id == vendor))
    }

    async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        Ok(self.state().deliveries.get(&id).cloned())
    }

    async fn deliveries(
        &self,
        webhook: WebhookId,
        p: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>, StoreError> {
        Ok(page(&self.state().deliveries, p, |d| {
            d.webhook_id == webhook
        }))
    }

    async fn pending_deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        Ok(self
            .state()
            .deliveries
            .values()
            .filter(|d| d.state == DeliveryState::Pending)
            .take(limit)
            .cloned()
            .collect())
    }

    async fn idempotency(
        &self,
        id: IdempotencyId,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        Ok(self.state().idempotency.get(&id).cloned())
    }

    async fn prune_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut state = self.state();
        let count = state.idempotency.len();
        state.idempotency.retain(|_, r| r.expires_at >= before);
        Ok((count - state.idempotency.len()) as u64)
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use crate::conformance::{self, model, races};
    use crate::store::Store;

    use super::MemoryStore;

    #[test]
    fn memory_store_keeps_the_store_contract() {
        futures::executor::block_on(async {
            conformance::run(&MemoryStore::new()).await;
            conformance::lists::order_pages_match_the_reference(&MemoryStore::new()).await;
            // One thread: the racers run one after the other, which a mutex makes no different.
            races::run(Arc::new(MemoryStore::new()), &|racer| racer).await;
        });
    }

    /// Memory is not durable: reopening hands out the same store again.
    struct Reopen(Arc<MemoryStore>);

    #[async_trait::async_trait]
    impl model::Reopen for Reopen {
        async fn open(&mut self) -> Arc<dyn Store> {
            self.0.clone()
        }
    }

    proptest::proptest! {
        #![proptest_config(proptest::prelude::ProptestConfig { cases: 32, ..Default::default() })]

        #[test]
        fn memory_store_answers_like_the_reference_store(ops in model::ops()) {
            futures::executor::block_on(model::check(Reopen(Arc::default()), ops));
        }
    }
}
