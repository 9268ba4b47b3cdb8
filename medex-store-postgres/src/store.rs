//! [`Store`] and [`FileStore`] for [`PgStore`]: each method is one of the queries in `records`,
//! `trail` or `instances`.

use async_trait::async_trait;
use chrono::{DateTime, Utc};
use medex_core::config::SystemConfig;
use medex_core::files::FileStore;
use medex_core::integrations::{ApiKey, Delivery, IdempotencyRecord, Webhook};
use medex_core::model::{
    ApiKeyId, DeliveryId, Driver, DriverId, IdempotencyId, LocationFix, Order, OrderId, User,
    UserId, Vendor, VendorId, WebhookId,
};
use medex_core::store::{
    DriverQuery, LeaseClaim, OrderQuery, Page, RefreshSession, ShopOrder, Store, StoreError,
    StoredConfig, TrailQuery, UserQuery, Write,
};

use crate::{PgStore, instances, records, trail};

#[async_trait]
impl Store for PgStore {
    async fn commit(&self, writes: Vec<Write>) -> Result<(), StoreError> {
        records::commit(&self.pool, &writes).await
    }

    async fn user(&self, id: UserId) -> Result<Option<User>, StoreError> {
        records::user(&self.pool, id).await
    }

    async fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        records::user_by_email(&self.pool, email).await
    }

    async fn users(&self, query: &UserQuery, page: Page<UserId>) -> Result<Vec<User>, StoreError> {
        records::users(&self.pool, query, page).await
    }

    async fn vendor(&self, id: VendorId) -> Result<Option<Vendor>, StoreError> {
        records::vendor(&self.pool, id).await
    }

    async fn vendors(&self, page: Page<VendorId>) -> Result<Vec<Vendor>, StoreError> {
        records::vendors(&self.pool, page).await
    }

    async fn driver(&self, id: DriverId) -> Result<Option<Driver>, StoreError> {
        records::driver(&self.pool, id).await
    }

    async fn drivers(
        &self,
        query: &DriverQuery,
        page: Page<DriverId>,
    ) -> Result<Vec<Driver>, StoreError> {
        records::drivers(&self.pool, query, page).await
    }

    async fn order(&self, id: OrderId) -> Result<Option<Order>, StoreError> {
        records::order(&self.pool, id).await
    }

    async fn order_by_tracking_token(&self, token: &str) -> Result<Option<Order>, StoreError> {
        records::order_by_tracking_token(&self.pool, token).await
    }

    async fn order_by_external_ref(&self, key: ShopOrder<'_>) -> Result<Option<Order>, StoreError> {
        records::order_by_external_ref(&self.pool, key).await
    }

    async fn orders(
        &self,
        query: &OrderQuery,
        page: Page<OrderId>,
    ) -> Result<Vec<Order>, StoreError> {
        records::orders(&self.pool, query, page).await
    }

    async fn append_fixes(&self, fixes: &[LocationFix]) -> Result<(), StoreError> {
        self.appender.append(fixes).await
    }

    async fn trail(&self, query: TrailQuery) -> Result<Vec<LocationFix>, StoreError> {
        trail::trail(&self.pool, query).await
    }

    async fn prune_trail(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        trail::prune(&self.pool, before).await
    }

    async fn put_refresh_session(&self, session: RefreshSession) -> Result<(), StoreError> {
        records::put_refresh_session(&self.pool, &session).await
    }

    async fn take_refresh_session(&self, id: &str) -> Result<Option<RefreshSession>, StoreError> {
        records::take_refresh_session(&self.pool, id).await
    }

    async fn system_config(&self) -> Result<Option<StoredConfig>, StoreError> {
        instances::system_config(&self.pool).await
    }

    async fn save_system_config(
        &self,
        config: &SystemConfig,
        version: u64,
    ) -> Result<(), StoreError> {
        instances::save_system_config(&self.pool, config, version).await
    }

    async fn check(&self) -> Result<(), StoreError> {
        records::check(&self.pool).await
    }

    async fn flush(&self) -> Result<(), StoreError> {
        self.appender.flush().await
    }

    async fn acquire_lease(&self, claim: LeaseClaim<'_>) -> Result<bool, StoreError> {
        instances::acquire_lease(&self.pool, claim).await
    }

    async fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        instances::release_lease(&self.pool, name, holder).await
    }

    async fn prune_refresh_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        instances::prune_refresh_sessions(&self.pool, before).await
    }

    async fn api_key(&self, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
        records::api_key(&self.pool, id).await
    }

    async fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        records::api_key_by_hash(&self.pool, hash).await
    }

    async fn api_keys(
        &self,
        vendor: VendorId,
        page: Page<ApiKeyId>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        records::api_keys(&self.pool, vendor, page).await
    }

    async fn webhook(&self, id: WebhookId) -> Result<Option<Webhook>, StoreError> {
        records::webhook(&self.pool, id).await
    }

    async fn webhooks(
        &self,
        vendor: VendorId,
        page: Page<WebhookId>,
    ) -> Result<Vec<Webhook>, StoreError> {
        records::webhooks(&self.pool, vendor, page).await
    }

    async fn delivery(&self, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
        records::delivery(&self.pool, id).await
    }

    async fn deliveries(
        &self,
        webhook: WebhookId,
        page: Page<DeliveryId>,
    ) -> Result<Vec<Delivery>, StoreError> {
        records::deliveries(&self.pool, webhook, page).await
    }

    async fn pending_deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        records::pending_deliveries(&self.pool, limit).await
    }

    async fn idempotency(
        &self,
        id: IdempotencyId,
    ) -> Result<Option<IdempotencyRecord>, StoreError> {
        records::idempotency(&self.pool, id).await
    }

    async fn prune_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        records::prune_idempotency(&self.pool, before).await
    }
}

/// Uploaded files in the `uploads` table: every instance on the database serves every file.
#[async_trait]
impl FileStore for PgStore {
    async fn put_file(&self, name: &str, bytes: &[u8]) -> Result<(), StoreError> {
        instances::put_file(&self.pool, name, bytes).await
    }

    async fn file(&self, name: &str) -> Result<Option<Vec<u8>>, StoreError> {
        instances::file(&self.pool, name).await
    }

    async fn delete_file(&self, name: &str) -> Result<(), StoreError> {
        instances::delete_file(&self.pool, name).await
    }
}
