//! The versioned records and the index entries each one owns.

use medex_core::integrations::{ApiKey, Delivery, DeliveryState, IdempotencyRecord, Webhook};
use medex_core::model::{Driver, Order, User, Vendor};
use medex_core::store::{StoreError, UniqueKey, Write};
use serde::Serialize;
use serde::de::DeserializeOwned;

use crate::codec::{self, ID_LEN, external_ref_key, key, time_key};

/// The trees a commit writes, in the order of [`Tx::ALL`]; a commit's transaction spans all of
/// them so that records and their indexes change together.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Tx {
    Users,
    Vendors,
    Drivers,
    Orders,
    /// email → user id (unique).
    UserEmail,
    /// tracking token → order id (unique).
    OrderTrackingToken,
    /// order number → order id (unique).
    OrderNumber,
    /// vendor ++ len(source) ++ source ++ external id → order id (unique).
    OrderExternalRef,
    /// vendor ++ order id.
    OrdersByVendor,
    /// user ++ order id.
    OrdersByUser,
    /// driver ++ order id.
    OrdersByDriver,
    /// vendor ++ created_at ++ order id.
    OrdersByVendorCreated,
    /// vendor ++ driver id.
    DriversByVendor,
    ApiKeys,
    Webhooks,
    Deliveries,
    Idempotency,
    /// key hash → api key id (unique).
    ApiKeyHash,
    /// vendor ++ api key id.
    ApiKeysByVendor,
    /// vendor ++ webhook id.
    WebhooksByVendor,
    /// webhook ++ delivery id.
    DeliveriesByWebhook,
    /// delivery id, while the delivery is pending.
    PendingDeliveries,
}

impl Tx {
    /// Every transactional tree, in index order.
    pub(crate) const ALL: [Tx; 22] = [
        Tx::Users,
        Tx::Vendors,
        Tx::Drivers,
        Tx::Orders,
        Tx::UserEmail,
        Tx::OrderTrackingToken,
        Tx::OrderNumber,
        Tx::OrderExternalRef,
        Tx::OrdersByVendor,
        Tx::OrdersByUser,
        Tx::OrdersByDriver,
        Tx::OrdersByVendorCreated,
        Tx::DriversByVendor,
        Tx::ApiKeys,
        Tx::Webhooks,
        Tx::Deliveries,
        Tx::Idempotency,
        Tx::ApiKeyHash,
        Tx::ApiKeysByVendor,
        Tx::WebhooksByVendor,
        Tx::DeliveriesByWebhook,
        Tx::PendingDeliveries,
    ];

    /// The sled tree name.
    pub(crate) fn name(self) -> &'static str {
        match self {
            Tx::Users => "users",
            Tx::Vendors => "vendors",
            Tx::Drivers => "drivers",
            Tx::Orders => "orders",
            Tx::UserEmail => "idx_user_email",
            Tx::OrderTrackingToken => "idx_order_tracking_token",
            Tx::OrderNumber => "idx_order_number",
            Tx::OrderExternalRef => "idx_order_external_ref",
            Tx::OrdersByVendor => "idx_orders_by_vendor",
            Tx::OrdersByUser => "idx_orders_by_user",
            Tx::OrdersByDriver => "idx_orders_by_driver",
            Tx::OrdersByVendorCreated => "idx_orders_by_vendor_created",
            Tx::DriversByVendor => "idx_drivers_by_vendor",
            Tx::ApiKeys => "api_keys",
            Tx::Webhooks => "webhooks",
            Tx::Deliveries => "webhook_deliveries",
            Tx::Idempotency => "idempotency_keys",
            Tx::ApiKeyHash => "idx_api_key_hash",
            Tx::ApiKeysByVendor => "idx_api_keys_by_vendor",
            Tx::WebhooksByVendor => "idx_webhooks_by_vendor",
            Tx::DeliveriesByWebhook => "idx_deliveries_by_webhook",
            Tx::PendingDeliveries => "idx_pending_deliveries",
        }
    }

    /// Position in [`Tx::ALL`].
    pub(crate) fn at(self) -> usize {
        self as usize
    }
}

/// One index entry of a record. Unique entries map the key to the record's id; the others are
/// keys with an empty value whose last 16 bytes are the record's id.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Entry {
    pub(crate) tree: Tx,
    pub(crate) key: Vec<u8>,
    pub(crate) unique: Option<UniqueKey>,
}

impl Entry {
    /// An entry of a unique index: a second record with the same key is `Duplicate(kind)`.
    fn unique(tree: Tx, key: Vec<u8>, kind: UniqueKey) -> Self {
        Self {
            tree,
            key,
            unique: Some(kind),
        }
    }

    /// An entry of a plain index.
    fn index(tree: Tx, key: Vec<u8>) -> Self {
        Self {
            tree,
            key,
            unique: None,
        }
    }
}

/// What every [`Record`] implementation spells alike: where it lives, its name in errors, and
/// its `id` and `version` fields as the key and the version.
macro_rules! kept_as {
    ($tree:expr, $what:literal) => {
        const TREE: Tx = $tree;
        const WHAT: &'static str = $what;
        fn id_bytes(&self) -> [u8; ID_LEN] {
            self.id.to_bytes()
        }
        fn version(&self) -> u64 {
            self.version
        }
    };
}

/// A record kept under its id with a version.
pub(crate) trait Record:
    Serialize + DeserializeOwned + Clone + Send + Sync + 'static
{
    /// Where it lives.
    const TREE: Tx;
    /// What it is called in errors.
    const WHAT: &'static str;
    /// Its key.
    fn id_bytes(&self) -> [u8; ID_LEN];
    /// Its optimistic concurrency version.
    fn version(&self) -> u64;
    /// The index entries it owns.
    fn entries(&self) -> Vec<Entry>;
}

impl Record for User {
    kept_as!(Tx::Users, "user");
    fn entries(&self) -> Vec<Entry> {
        vec![Entry::unique(
            Tx::UserEmail,
            self.email.as_str().as_bytes().to_vec(),
            UniqueKey::Email,
        )]
    }
}

impl Record for Vendor {
    kept_as!(Tx::Vendors, "vendor");
    fn entries(&self) -> Vec<Entry> {
        Vec::new()
    }
}

impl Record for Driver {
    kept_as!(Tx::Drivers, "driver");
    fn entries(&self) -> Vec<Entry> {
        vec![Entry::index(
            Tx::DriversByVendor,
            key(&[&self.vendor_id.to_bytes(), &self.id.to_bytes()]),
        )]
    }
}

impl Record for Order {
    kept_as!(Tx::Orders, "order");
    fn entries(&self) -> Vec<Entry> {
        let id = self.id.to_bytes();
        let vendor = self.vendor_id.to_bytes();
        let mut entries = vec![
            Entry::unique(
                Tx::OrderNumber,
                self.order_number.as_bytes().to_vec(),
                UniqueKey::OrderNumber,
            ),
            Entry::unique(
                Tx::OrderTrackingToken,
                self.tracking_token.as_bytes().to_vec(),
                UniqueKey::TrackingToken,
            ),
            Entry::index(Tx::OrdersByVendor, key(&[&vendor, &id])),
            Entry::index(Tx::OrdersByUser, key(&[&self.user_id.to_bytes(), &id])),
            Entry::index(
                Tx::OrdersByVendorCreated,
                key(&[&vendor, &time_key(self.created_at), &id]),
            ),
        ];
        if let Some(external) = &self.external_ref {
            entries.push(Entry::unique(
                Tx::OrderExternalRef,
                external_ref_key(self.vendor_id, &external.source, &external.id),
                UniqueKey::ExternalOrder,
            ));
        }
        if let Some(driver) = self.driver_id {
            entries.push(Entry::index(
                Tx::OrdersByDriver,
                key(&[&driver.to_bytes(), &id]),
            ));
        }
        entries
    }
}

impl Record for ApiKey {
    kept_as!(Tx::ApiKeys, "api key");
    fn entries(&self) -> Vec<Entry> {
        vec![
            Entry::unique(
                Tx::ApiKeyHash,
                self.hash.as_bytes().to_vec(),
                UniqueKey::ApiKeyHash,
            ),
            Entry::index(
                Tx::ApiKeysByVendor,
                key(&[&self.vendor_id.to_bytes(), &self.id.to_bytes()]),
            ),
        ]
    }
}

impl Record for Webhook {
    kept_as!(Tx::Webhooks, "webhook");
    fn entries(&self) -> Vec<Entry> {
        vec![Entry::index(
            Tx::WebhooksByVendor,
            key(&[&self.vendor_id.to_bytes(), &self.id.to_bytes()]),
        )]
    }
}

impl Record for Delivery {
    kept_as!(Tx::Deliveries, "delivery");
    fn entries(&self) -> Vec<Entry> {
        let mut entries = vec![Entry::index(
            Tx::DeliveriesByWebhook,
            key(&[&self.webhook_id.to_bytes(), &self.id.to_bytes()]),
        )];
        if self.state == DeliveryState::Pending {
            entries.push(Entry::index(
                Tx::PendingDeliveries,
                self.id.to_bytes().to_vec(),
            ));
        }
        entries
    }
}

impl Record for IdempotencyRecord {
    kept_as!(Tx::Idempotency, "idempotency key");
    fn entries(&self) -> Vec<Entry> {
        Vec::new()
    }
}

/// What a stored record of some type says about itself: its version and index entries.
pub(crate) type StoredMeta = (u64, Vec<Entry>);

/// One write of a commit, encoded before the transaction so that the transaction closure (which
/// sled may run more than once) does no more than read and write trees.
#[derive(Debug)]
pub(crate) struct Prepared {
    pub(crate) tree: Tx,
    pub(crate) id: [u8; ID_LEN],
    pub(crate) version: u64,
    pub(crate) bytes: Vec<u8>,
    pub(crate) entries: Vec<Entry>,
    /// Decodes the record this one replaces.
    pub(crate) stored: fn(&[u8]) -> Result<StoredMeta, StoreError>,
}

fn stored_meta<R: Record>(bytes: &[u8]) -> Result<StoredMeta, StoreError> {
    let record: R = codec::decode(R::WHAT, bytes)?;
    Ok((record.version(), record.entries()))
}

fn prepare<R: Record>(record: &R) -> Result<Prepared, StoreError> {
    Ok(Prepared {
        tree: R::TREE,
        id: record.id_bytes(),
        version: record.version(),
        bytes: codec::encode(R::WHAT, record)?,
        entries: record.entries(),
        stored: stored_meta::<R>,
    })
}

impl Prepared {
    /// Encodes one write. Drivers lose their position fields: positions come from fixes.
    pub(crate) fn new(write: &Write) -> Result<Self, StoreError> {
        match write {
            Write::User(user) => prepare(user),
            Write::Vendor(vendor) => prepare(vendor),
            Write::Driver(driver) => prepare(&Driver {
                current_latitude: None,
                current_longitude: None,
                last_location_update: None,
                ..driver.clone()
            }),
            Write::Order(order) => prepare(order),
            Write::ApiKey(k) => prepare(k),
            Write::Webhook(h) => prepare(h),
            Write::Delivery(d) => prepare(d),
            Write::Idempotency(i) => prepare(i),
            // `Write` may grow; a record this store does not know is refused, never dropped.
            #[allow(unreachable_patterns)]
            _ => Err(StoreError::Unavailable("unknown record type".into())),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn each_tree_sits_at_its_own_position() {
        for (i, tree) in Tx::ALL.iter().enumerate() {
            assert_eq!(tree.at(), i, "{tree:?}");
        }
        let mut names: Vec<_> = Tx::ALL.iter().map(|t| t.name()).collect();
        names.sort_unstable();
        names.dedup();
        assert_eq!(names.len(), Tx::ALL.len());
    }
}
