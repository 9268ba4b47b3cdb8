//! `Store` for `SledStore`: reads and single transactions run inline (sled answers them from
//! memory in microseconds); fsyncs and bulk deletions run on the blocking pool.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medex_core::config::SystemConfig;
use medex_core::integrations::{ApiKey, Delivery, IdempotencyRecord, Webhook};
use medex_core::model::{
    ApiKeyId, DeliveryId, Driver, DriverId, IdempotencyId, LocationFix, Order, OrderId, User,
    UserId, Vendor, VendorId, WebhookId,
};
use medex_core::store::{
    DriverQuery, LeaseClaim, OrderQuery, Page, RefreshSession, ShopOrder, Store, StoreError,
    StoredConfig, TrailQuery, UserQuery, Write,
};

use crate::SledStore;

impl SledStore {
    /// Waits until a write that just completed is on disk (sharing the fsync with concurrent
    /// writers).
    async fn durable(&self) -> Result<(), StoreError> {
        let ticket = self.shared.ticket();
        self.shared.make_durable(ticket).await
    }
}

#[async_trait]
impl Store for SledStore {
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        if writes.is_empty() {
            return Ok(());
        }
        self.inner.commit(&writes)?;
        self.durable().await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        self.inner.get(id.to_bytes())
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.inner.user_by_email(email)
    }

    async fn users(&self, query: &UserQuery, page: Page<UserId>) -> Result<Vec<User>, StoreError> {
        self.inner.users(query, page)
    }

    async fn vendor(&self, id: VendorId) -> Result<Option<Vendor>, StoreError> {
        self.inner.get(id.to_bytes())
    }

    async fn vendors(&self, page: Page<VendorId>) -> Result<Vec<Vendor>, StoreError> {
        self.inner.vendors(page)
    }

    async fn driver(&self, id: DriverId) -> Result<Option<Driver>, StoreError> {
        match self.inner.get::<Driver>(id.to_bytes())? {
            Some(driver) => self.inner.with_position(driver).map(Some),
            None => Ok(None),
        }
    }

    async fn drivers(
        &self,
        query: &DriverQuery,
        page: Page<DriverId>,
    ) -> Result<Vec<Driver>, StoreError> {
        self.inner.drivers(query, page)
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        self.inner.get(id.to_bytes())
    }

    async fn order_by_tracking_token(&self, token: &str) -> Result<Option<Order>, StoreError> {
        self.inner.order_by_tracking_token(token)
    }

    async fn order_by_external_ref(&self, key: ShopOrder<'_>) -> Result<Option<Order>, StoreError> {
        self.inner.order_by_external_ref(key)
    }

    async fn orders(
        &self,
        query: &OrderQuery,
        page: Page<OrderId>,
    ) -> Result<Vec<Order>, StoreError> {
        self.inner.orders(query, page)
    }

    async fn append_fixes(&self, fixes: &[LocationFix]) -> Result<(), StoreError> {
        if fixes.is_empty() {
            return Ok(());
        }
        self.fix_batches.append(&self.shared, fixes).await?;
        self.shared.schedule_fix_flush();
        Ok(())
    }

    async fn trail(&self, query: TrailQuery) -> Result<Vec<LocationFix>, StoreError> {
        self.inner.trail(query)
    }

    async fn prune_trail(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let removed = self
            .shared
            .blocking(move |inner| inner.prune_trail(before))
            .await?;
        self.durable().await?;
        Ok(removed)
    }

    async fn put_refresh_session(&self, session: RefreshSession) -> Result<(), StoreError> {
        self.inner.put_refresh_session(&session)?;
        self.durable().await
    }

    async fn take_refresh_session(&self, id: &str) -> Result<Option<RefreshSession>, StoreError> {
        let taken = self.inner.take_refresh_session(id)?;
        if taken.is_some() {
            // A taken (rotated or revoked) token must not come back after a crash.
            self.durable().await?;
        }
        Ok(taken)
    }

    async fn system_config(&self) -> Result<Option<StoredConfig>, StoreError> {
        self.inner.system_config()
    }

    async fn save_system_config(
        &self,
        config: &SystemConfig,
        version: u64,
    ) -> Result<(), StoreError> {
        self.inner.save_system_config(config, version)?;
        self.durable().await
    }

    async fn check(&self) -> Result<(), StoreError> {
        self.inner.probe()?;
        self.durable().await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.shared.flush_all().await
    }

    async fn acquire_lease(&self, claim: LeaseClaim<'_>) -> Result<bool, StoreError> {
        // One process has a sled directory: leases need no durability beyond sled's own.
        self.inner.acquire_lease(claim)
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        self.inner.release_lease(name, holder)
    }

    async fn prune_refresh_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let removed = self
            .shared
            .blocking(move |inner| inner.prune_refresh_sessions(before))
            .await?;
        self.durable().await?;
        Ok(removed)
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        self.inner.get(id.to_bytes())
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.inner.api_key_by_hash(hash)
    }

    async fn api_keys(
        &self,
        vendor: VendorId,
        page: Page<ApiKeyId>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        self.inner.api_keys(vendor, page)
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StoreError> {
        self.inner.get(id.to_bytes())
    }

    async fn webhooks(
        &self,
        vendor: VendorId,
        page: Page<WebhookId>,
    ) -> Result<Vec<Webhook>, StoreError> {
        self.inner.webhooks(vendor, page)
    }

    async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        self.inner.get(id.to_bytes())
    }

    async fn deliveries(
        &self,
        webhook: WebhookId,
        page: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>, StoreError> {
        self.inner.deliveries(webhook, page)
    }

    async fn pending_deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        self.inner.pending_deliveries(limit)
    }

    async fn idempotency(
        &self,
        id: IdempotencyId,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        self.inner.get(id.to_bytes())
    }

    async fn prune_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let removed = self
            .shared
            .blocking(move |inner| inner.prune_idempotency(before))
            .await?;
        self.durable().await?;
        Ok(removed)
    }
}
