//! The sled trees and every operation on them, synchronous. [`crate::SledStore`] decides which of
//! these run inline and which go to the blocking pool, and when to flush.

use std::any::Any;
use std::collections::HashMap;
use std::ops::Bound;
use std::path::PathBuf;
use std::sync::{Arc, Mutex, MutexGuard, PoisonError};

use chrono::{DateTime, Utc};
use medex_core::config::SystemConfig;
use medex_core::integrations::{ApiKey, Delivery, IdempotencyRecord, Webhook};
use medex_core::model::{
    Driver, DriverId, LocationFix, Order, OrderId, User, UserId, Vendor, VendorId,
};
use medex_core::store::{
    DriverQuery, LeaseClaim, OrderQuery, Page, RefreshSession, ShopOrder, StoreError, StoredConfig,
    TrailQuery, UniqueKey, UserQuery, Write,
};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use sled::transaction::{
    ConflictableTransactionError, TransactionError, Transactional, TransactionalTree,
};
use sled::{IVec, Tree};

use crate::codec::{
    ID_LEN, TIME_LEN, decode, encode, external_ref_key, id_at, key, successor, time_key, trail_key,
};
use crate::records::{Prepared, Record, Tx};

/// Maps a sled error: IO and misuse make the store unavailable, detected corruption is `Corrupt`.
pub(crate) fn sled_error(error: sled::Error) -> StoreError {
    match error {
        sled::Error::Corruption { .. } => StoreError::Corrupt(error.to_string()),
        other => StoreError::Unavailable(other.to_string()),
    }
}

/// Why a commit's transaction stopped.
#[derive(Debug)]
enum Abort {
    Conflict,
    Duplicate(UniqueKey),
    Corrupt(String),
}

impl From<Abort> for StoreError {
    fn from(abort: Abort) -> Self {
        match abort {
            Abort::Conflict => StoreError::Conflict,
            Abort::Duplicate(key) => StoreError::Duplicate(key),
            Abort::Corrupt(detail) => StoreError::Corrupt(detail),
        }
    }
}

/// Where the meta tree keeps the schema version of the store.
pub(crate) const SCHEMA_KEY: &[u8] = b"schema_version";
const PROBE_KEY: &[u8] = b"health_probe";
const CONFIG_KEY: &[u8] = b"system";
/// The version of the configuration under [`CONFIG_KEY`] (absent with a configuration saved
/// before versions were kept: version 1).
const CONFIG_VERSION_KEY: &[u8] = b"system_version";
/// Trail deletions are applied in batches of this many keys.
const PRUNE_BATCH: usize = 1024;

/// Shards of the [`Decoded`] memo (locks held only for a lookup or an insert).
const DECODED_SHARDS: usize = 16;
/// Records remembered per shard: 32k in all, enough for the records a busy fleet touches.
const DECODED_PER_SHARD: usize = 2048;

/// A record's tree (its position in [`Tx::ALL`]) and id.
type RecordKey = (usize, [u8; ID_LEN]);
/// A decoded record and the stored bytes it came from.
type DecodedEntry = (IVec, Arc<dyn Any + Send + Sync>);

/// Records already decoded, by the exact bytes they were decoded from.
///
/// Reads of hot records (the order and driver of every fix, the order of every tracking read,
/// the account of every authenticated request) would otherwise parse the same JSON again each
/// time. A read still fetches the bytes from sled; only when they equal the remembered bytes is
/// the remembered record cloned instead of parsed. The stored bytes stay the only truth, so a
/// write needs no invalidation: a changed record has other bytes and is decoded afresh.
struct Decoded {
    shards: Vec<Mutex<HashMap<RecordKey, DecodedEntry>>>,
}

impl Decoded {
    fn new() -> Self {
        Self {
            shards: (0..DECODED_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn record<R: Record>(&self, id: [u8; ID_LEN], bytes: IVec) -> Result<R, StoreError> {
        let key = (R::TREE.at(), id);
        // The last bytes of a UUIDv7 are random: they spread ids over the shards.
        let shard = &self.shards[usize::from(id[ID_LEN - 1]) % DECODED_SHARDS];
        let remembered = shard
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .get(&key)
            .filter(|(seen, _)| *seen == bytes)
            .map(|(_, value)| value.clone());
        if let Some(record) = remembered.as_deref().and_then(|v| v.downcast_ref::<R>()) {
            return Ok(record.clone());
        }
        let record: R = decode(R::WHAT, &bytes)?;
        let mut map = shard.lock().unwrap_or_else(PoisonError::into_inner);
        if map.len() >= DECODED_PER_SHARD
            && !map.contains_key(&key)
            && let Some(evicted) = map.keys().next().copied()
        {
            map.remove(&evicted);
        }
        map.insert(key, (bytes, Arc::new(record.clone())));
        Ok(record)
    }
}

/// Shards of the [`Positions`] mirror.
const POSITION_SHARDS: usize = 16;

/// The newest fix of each driver that has one, as the `positions` tree holds it.
///
/// Under a fleet's stream of fixes that tree is rewritten thousands of times a second, and sled
/// rebuilds a page from its deltas on every read of it: reading a driver's position (for every
/// fix, tracking read and driver read) and the newest-wins check of every batch were a large part
/// of ingesting fixes. Only [`Inner::append_fixes`] writes the tree, one batch at a time, and it
/// updates the mirror after each commit; a driver not yet mirrored (after a restart) is read from
/// the tree once.
struct Positions {
    shards: Vec<Mutex<HashMap<[u8; ID_LEN], LocationFix>>>,
}

impl Positions {
    fn new() -> Self {
        Self {
            shards: (0..POSITION_SHARDS).map(|_| Mutex::default()).collect(),
        }
    }

    fn shard(&self, driver: &[u8; ID_LEN]) -> MutexGuard<'_, HashMap<[u8; ID_LEN], LocationFix>> {
        self.shards[usize::from(driver[ID_LEN - 1]) % POSITION_SHARDS]
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
    }

    fn get(&self, driver: &[u8; ID_LEN]) -> Option<LocationFix> {
        self.shard(driver).get(driver).copied()
    }

    /// A position read from the tree, unless a newer one was mirrored meanwhile.
    fn read_from_tree(&self, driver: [u8; ID_LEN], fix: LocationFix) {
        self.shard(&driver).entry(driver).or_insert(fix);
    }

    /// A position just committed to the tree.
    fn written(&self, driver: [u8; ID_LEN], fix: LocationFix) {
        self.shard(&driver).insert(driver, fix);
    }
}

/// The open database.
pub(crate) struct Inner {
    pub(crate) path: PathBuf,
    pub(crate) db: sled::Db,
    /// The trees a commit spans, in [`Tx::ALL`] order.
    tx: Vec<Tree>,
    /// driver id → the newest fix.
    positions: Tree,
    /// driver ++ time ++ sequence → fix.
    trail: Tree,
    /// jti → refresh session.
    sessions: Tree,
    config: Tree,
    /// lease name → [`Lease`].
    leases: Tree,
    pub(crate) meta: Tree,
    decoded: Decoded,
    latest: Positions,
}

impl Inner {
    pub(crate) fn new(path: PathBuf, db: sled::Db) -> Result<Self, sled::Error> {
        let tx = Tx::ALL
            .iter()
            .map(|t| db.open_tree(t.name()))
            .collect::<Result<_, _>>()?;
        Ok(Self {
            path,
            tx,
            positions: db.open_tree("positions")?,
            trail: db.open_tree("trail")?,
            sessions: db.open_tree("refresh_sessions")?,
            config: db.open_tree("config")?,
            leases: db.open_tree("leases")?,
            meta: db.open_tree("meta")?,
            decoded: Decoded::new(),
            latest: Positions::new(),
            db,
        })
    }

    fn tree(&self, t: Tx) -> &Tree {
        &self.tx[t.at()]
    }

    /// Whether any tree other than `meta` holds data.
    pub(crate) fn holds_data(&self) -> bool {
        self.tx
            .iter()
            .chain([&self.positions, &self.trail, &self.sessions, &self.config])
            .any(|t| !t.is_empty())
    }

    // ---- commit ----

    /// Applies `writes` in one transaction over every record and index tree: version checks,
    /// unique checks, records and index entries all or nothing.
    pub(crate) fn commit(&self, writes: &[Write]) -> Result<(), StoreError> {
        let prepared = writes
            .iter()
            .map(Prepared::new)
            .collect::<Result<Vec<_>, _>>()?;
        let trees: Vec<&Tree> = self.tx.iter().collect();
        trees
            .as_slice()
            .transaction(|tx| apply(tx, &prepared))
            .map_err(|e| match e {
                TransactionError::Abort(abort) => abort.into(),
                TransactionError::Storage(e) => sled_error(e),
            })
    }

    // ---- reads ----

    fn record<R: DeserializeOwned>(
        &self,
        tree: &Tree,
        what: &str,
        id: &[u8],
    ) -> Result<Option<R>, StoreError> {
        match tree.get(id).map_err(sled_error)? {
            Some(bytes) => decode(what, &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn get<R: Record>(&self, id: [u8; ID_LEN]) -> Result<Option<R>, StoreError> {
        match self.tree(R::TREE).get(id).map_err(sled_error)? {
            Some(bytes) => self.decoded.record(id, bytes).map(Some),
            None => Ok(None),
        }
    }

    /// The record a unique index points at. An entry without its record means the index and the
    /// records disagree, which atomic commits rule out: that is corruption.
    fn by_unique<R: Record>(&self, index: Tx, key: &[u8]) -> Result<Option<R>, StoreError> {
        let Some(id) = self.tree(index).get(key).map_err(sled_error)? else {
            return Ok(None);
        };
        let id = id_at(&id, 0)?;
        self.get(id)?.map(Some).ok_or_else(|| dangling(index))
    }

    pub(crate) fn user_by_email(&self, email: &str) -> Result<Option<User>, StoreError> {
        self.by_unique(Tx::UserEmail, email.as_bytes())
    }

    pub(crate) fn order_by_tracking_token(&self, token: &str) -> Result<Option<Order>, StoreError> {
        self.by_unique(Tx::OrderTrackingToken, token.as_bytes())
    }

    pub(crate) fn order_by_external_ref(
        &self,
        key: ShopOrder<'_>,
    ) -> Result<Option<Order>, StoreError> {
        self.by_unique(
            Tx::OrderExternalRef,
            &external_ref_key(key.vendor, key.source, key.id),
        )
    }

    /// A driver's newest fix: from the mirror, or read from the tree once and mirrored.
    fn position(&self, driver: [u8; ID_LEN]) -> Result<Option<LocationFix>, StoreError> {
        if let Some(fix) = self.latest.get(&driver) {
            return Ok(Some(fix));
        }
        let stored: Option<LocationFix> = self.record(&self.positions, "position", &driver)?;
        if let Some(fix) = stored {
            self.latest.read_from_tree(driver, fix);
        }
        Ok(stored)
    }

    /// Fills the position fields from the newest fix.
    pub(crate) fn with_position(&self, mut driver: Driver) -> Result<Driver, StoreError> {
        if let Some(fix) = self.position(driver.id.to_bytes())? {
            driver.current_latitude = Some(fix.latitude);
            driver.current_longitude = Some(fix.longitude);
            driver.last_location_update = Some(fix.recorded_at);
        }
        Ok(driver)
    }

    // ---- lists ----

    /// One page of a record tree, newest first, seeking to the cursor.
    fn page_of_records<R: Record>(
        &self,
        after: Option<[u8; ID_LEN]>,
        limit: usize,
        keep: impl Fn(&R) -> bool,
    ) -> Result<Vec<R>, StoreError> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        for item in range(
            self.tree(R::TREE),
            &[],
            None,
            after.as_ref().map(|a| &a[..]),
        )
        .rev()
        {
            let (_, bytes) = item.map_err(sled_error)?;
            let record: R = decode(R::WHAT, &bytes)?;
            if keep(&record) {
                found.push(record);
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// Fetches the records of `ids` (newest first) until `limit` of them pass `keep`.
    fn page_of_ids<R: Record>(
        &self,
        index: Tx,
        ids: impl Iterator<Item = Result<[u8; ID_LEN], StoreError>>,
        limit: usize,
        keep: impl Fn(&R) -> bool,
    ) -> Result<Vec<R>, StoreError> {
        let mut found = Vec::new();
        if limit == 0 {
            return Ok(found);
        }
        for id in ids {
            let record: R = self.get(id?)?.ok_or_else(|| dangling(index))?;
            if keep(&record) {
                found.push(record);
                if found.len() == limit {
                    break;
                }
            }
        }
        Ok(found)
    }

    /// The ids under `owner` in an `owner ++ id` index, newest first, strictly before `after`.
    fn owned_ids<'a>(
        &'a self,
        index: Tx,
        owner: [u8; ID_LEN],
        after: Option<[u8; ID_LEN]>,
    ) -> impl Iterator<Item = Result<[u8; ID_LEN], StoreError>> + 'a {
        range(
            self.tree(index),
            &owner,
            None,
            after.as_ref().map(|a| &a[..]),
        )
        .rev()
        .map(|item| {
            let (key, _) = item.map_err(sled_error)?;
            id_at(&key, ID_LEN)
        })
    }

    pub(crate) fn users(
        &self,
        query: &UserQuery,
        page: Page<UserId>,
    ) -> Result<Vec<User>, StoreError> {
        self.page_of_records(page.after.map(|a| a.to_bytes()), page.limit, |u| {
            query.matches(u)
        })
    }

    pub(crate) fn vendors(&self, page: Page<VendorId>) -> Result<Vec<Vendor>, StoreError> {
        self.page_of_records(page.after.map(|a| a.to_bytes()), page.limit, |_| true)
    }

    pub(crate) fn drivers(
        &self,
        query: &DriverQuery,
        page: Page<DriverId>,
    ) -> Result<Vec<Driver>, StoreError> {
        let after = page.after.map(|a| a.to_bytes());
        let keep = |d: &Driver| query.matches(d);
        let drivers = match query.vendor_id {
            Some(vendor) => self.page_of_ids(
                Tx::DriversByVendor,
                self.owned_ids(Tx::DriversByVendor, vendor.to_bytes(), after),
                page.limit,
                keep,
            )?,
            None => self.page_of_records(after, page.limit, keep)?,
        };
        drivers.into_iter().map(|d| self.with_position(d)).collect()
    }

    /// Orders through the most selective index the query allows: driver, then user, then vendor
    /// (by creation time when the query bounds it), then all orders.
    pub(crate) fn orders(
        &self,
        query: &OrderQuery,
        page: Page<OrderId>,
    ) -> Result<Vec<Order>, StoreError> {
        let after = page.after.map(|a| a.to_bytes());
        let keep = |o: &Order| query.matches(o);
        if let Some(driver) = query.driver_id {
            let ids = self.owned_ids(Tx::OrdersByDriver, driver.to_bytes(), after);
            return self.page_of_ids(Tx::OrdersByDriver, ids, page.limit, keep);
        }
        if let Some(user) = query.user_id {
            let ids = self.owned_ids(Tx::OrdersByUser, user.to_bytes(), after);
            return self.page_of_ids(Tx::OrdersByUser, ids, page.limit, keep);
        }
        if let Some(vendor) = query.vendor_id {
            if query.created_from.is_some() || query.created_before.is_some() {
                let ids = self.created_ids(vendor, query, after)?;
                return self.page_of_ids(
                    Tx::OrdersByVendorCreated,
                    ids.into_iter().map(Ok),
                    page.limit,
                    keep,
                );
            }
            let ids = self.owned_ids(Tx::OrdersByVendor, vendor.to_bytes(), after);
            return self.page_of_ids(Tx::OrdersByVendor, ids, page.limit, keep);
        }
        self.page_of_records(after, page.limit, keep)
    }

    /// The ids of a vendor's orders created in the query's time range, strictly before `after`,
    /// newest (highest id) first. The range index orders by creation time but pages go by id, so
    /// this reads the keys of the range (never the records) and sorts them.
    fn created_ids(
        &self,
        vendor: VendorId,
        query: &OrderQuery,
        after: Option<[u8; ID_LEN]>,
    ) -> Result<Vec<[u8; ID_LEN]>, StoreError> {
        let from = query.created_from.map(time_key);
        let before = query.created_before.map(time_key);
        let mut ids = Vec::new();
        for item in range(
            self.tree(Tx::OrdersByVendorCreated),
            &vendor.to_bytes(),
            from.as_ref().map(|f| &f[..]),
            before.as_ref().map(|b| &b[..]),
        ) {
            let (key, _) = item.map_err(sled_error)?;
            let id = id_at(&key, ID_LEN + TIME_LEN)?;
            if after.is_none_or(|after| id < after) {
                ids.push(id);
            }
        }
        ids.sort_unstable_by(|a, b| b.cmp(a));
        Ok(ids)
    }

    // ---- fixes ----

    /// Appends fixes to the trail and moves each driver's position to its newest fix (by
    /// `recorded_at`; of equal times the later appended wins).
    ///
    /// Only one append runs at a time ([`crate::fixes::FixBatches`]), and nothing else writes
    /// these two trees, so no transaction is needed to compare and move positions; each tree's
    /// batch is applied atomically, the trail's first. (A sled transaction reads every key it
    /// writes, which on these constantly rewritten trees was most of the cost of a batch.) A
    /// crash between the two leaves positions one batch behind the trail, within the fixes a
    /// crash may lose anyway; the next fix of each driver moves it on.
    pub(crate) fn append_fixes(&self, fixes: &[LocationFix]) -> Result<(), StoreError> {
        let mut trail = sled::Batch::default();
        let mut newest: HashMap<DriverId, &LocationFix> = HashMap::new();
        for fix in fixes {
            let seq = self.db.generate_id().map_err(sled_error)?;
            trail.insert(
                &trail_key(fix.driver_id, fix.recorded_at, seq)[..],
                encode("fix", fix)?,
            );
            newest
                .entry(fix.driver_id)
                .and_modify(|n| {
                    if n.recorded_at <= fix.recorded_at {
                        *n = fix;
                    }
                })
                .or_insert(fix);
        }
        let mut positions = sled::Batch::default();
        let mut moved = Vec::with_capacity(newest.len());
        for fix in newest.into_values() {
            let driver = fix.driver_id.to_bytes();
            let stored_at = match self.position(driver) {
                Ok(stored) => stored.map(|old| old.recorded_at),
                // An undecodable stored position is replaced: it is derived data.
                Err(StoreError::Corrupt(_)) => None,
                Err(other) => return Err(other),
            };
            if stored_at.is_none_or(|stored| stored <= fix.recorded_at) {
                positions.insert(&driver[..], encode("position", fix)?);
                moved.push((driver, *fix));
            }
        }
        self.trail.apply_batch(trail).map_err(sled_error)?;
        self.positions.apply_batch(positions).map_err(sled_error)?;
        for (driver, fix) in moved {
            self.latest.written(driver, fix);
        }
        Ok(())
    }

    pub(crate) fn trail(&self, query: TrailQuery) -> Result<Vec<LocationFix>, StoreError> {
        let (from, to) = (time_key(query.from), time_key(query.to));
        range(
            &self.trail,
            &query.driver.to_bytes(),
            Some(&from),
            Some(&to),
        )
        .take(query.limit)
        .map(|item| {
            let (_, bytes) = item.map_err(sled_error)?;
            decode("fix", &bytes)
        })
        .collect()
    }

    /// Deletes fixes recorded before `before`, driver by driver (seeking from one driver's prefix
    /// to the next), in batches.
    pub(crate) fn prune_trail(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let before = time_key(before);
        let mut removed = 0;
        let mut cursor = Vec::new();
        loop {
            let Some(first) = self
                .trail
                .range(cursor.as_slice()..)
                .keys()
                .next()
                .transpose()
                .map_err(sled_error)?
            else {
                break;
            };
            let driver = id_at(&first, 0)?;
            let mut batch = sled::Batch::default();
            let mut in_batch = 0;
            for old in range(&self.trail, &driver, None, Some(&before)).keys() {
                batch.remove(old.map_err(sled_error)?);
                in_batch += 1;
                removed += 1;
                if in_batch == PRUNE_BATCH {
                    self.trail
                        .apply_batch(std::mem::take(&mut batch))
                        .map_err(sled_error)?;
                    in_batch = 0;
                }
            }
            self.trail.apply_batch(batch).map_err(sled_error)?;
            match successor(&driver) {
                Some(next) => cursor = next,
                None => break,
            }
        }
        Ok(removed)
    }

    // ---- sessions, config, probe ----

    pub(crate) fn put_refresh_session(&self, session: &RefreshSession) -> Result<(), StoreError> {
        let bytes = encode("refresh session", session)?;
        self.sessions
            .insert(session.id.as_bytes(), bytes)
            .map_err(sled_error)?;
        Ok(())
    }

    /// sled's `remove` is atomic: of two concurrent takers only one gets the old value.
    pub(crate) fn take_refresh_session(
        &self,
        id: &str,
    ) -> Result<Option<RefreshSession>, StoreError> {
        match self.sessions.remove(id.as_bytes()).map_err(sled_error)? {
            Some(bytes) => decode("refresh session", &bytes).map(Some),
            None => Ok(None),
        }
    }

    pub(crate) fn system_config(&self) -> Result<Option<StoredConfig>, StoreError> {
        let Some(config) =
            self.record::<SystemConfig>(&self.config, "system config", CONFIG_KEY)?
        else {
            return Ok(None);
        };
        let version = match self.config.get(CONFIG_VERSION_KEY).map_err(sled_error)? {
            Some(bytes) => decode("system config version", &bytes)?,
            None => 1,
        };
        Ok(Some(StoredConfig { config, version }))
    }

    /// Saves the configuration as `version` if the stored one is `version - 1`, in one
    /// transaction of the config tree.
    pub(crate) fn save_system_config(
        &self,
        config: &SystemConfig,
        version: u64,
    ) -> Result<(), StoreError> {
        let bytes = encode("system config", config)?;
        let version_bytes = encode("system config version", &version)?;
        let outcome = self.config.transaction(|t| {
            let stored: u64 = match (t.get(CONFIG_KEY)?, t.get(CONFIG_VERSION_KEY)?) {
                (None, _) => 0,
                (Some(_), None) => 1,
                (Some(_), Some(v)) => decode("system config version", &v).map_err(|e| {
                    ConflictableTransactionError::Abort(Abort::Corrupt(e.to_string()))
                })?,
            };
            if stored + 1 != version {
                return Err(ConflictableTransactionError::Abort(Abort::Conflict));
            }
            t.insert(CONFIG_KEY, bytes.clone())?;
            t.insert(CONFIG_VERSION_KEY, version_bytes.clone())?;
            Ok(())
        });
        transaction_outcome(outcome)
    }

    /// Grants the lease unless another holder has it at `now`, in one transaction of the
    /// lease tree.
    pub(crate) fn acquire_lease(&self, claim: LeaseClaim<'_>) -> Result<bool, StoreError> {
        let lease = encode(
            "lease",
            &Lease {
                holder: claim.holder.to_owned(),
                until: claim.until,
            },
        )?;
        let outcome = self.leases.transaction(|t| {
            if let Some(bytes) = t.get(claim.name.as_bytes())? {
                let current: Lease = decode("lease", &bytes).map_err(|e| {
                    ConflictableTransactionError::Abort(Abort::Corrupt(e.to_string()))
                })?;
                if claim.is_blocked_by(&current.holder, current.until) {
                    return Ok(false);
                }
            }
            t.insert(claim.name.as_bytes(), lease.clone())?;
            Ok(true)
        });
        match outcome {
            Ok(granted) => Ok(granted),
            Err(TransactionError::Abort(abort)) => Err(abort.into()),
            Err(TransactionError::Storage(e)) => Err(sled_error(e)),
        }
    }

    /// Removes the lease if `holder` has it (a compare-and-swap on its stored bytes).
    pub(crate) fn release_lease(&self, name: &str, holder: &str) -> Result<(), StoreError> {
        let Some(bytes) = self.leases.get(name.as_bytes()).map_err(sled_error)? else {
            return Ok(());
        };
        let current: Lease = decode("lease", &bytes)?;
        if current.holder == holder {
            // Lost to a newer grant meanwhile: then it is not ours to release.
            let _ = self
                .leases
                .compare_and_swap(name.as_bytes(), Some(bytes), None::<IVec>)
                .map_err(sled_error)?;
        }
        Ok(())
    }

    /// Removes every session that expired before `before`; one that was taken meanwhile is not
    /// counted.
    pub(crate) fn prune_refresh_sessions(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let mut removed = 0;
        for entry in self.sessions.iter() {
            let (key, bytes) = entry.map_err(sled_error)?;
            let session: RefreshSession = decode("refresh session", &bytes)?;
            if session.expires_at < before
                && self
                    .sessions
                    .compare_and_swap(&key, Some(bytes), None::<IVec>)
                    .map_err(sled_error)?
                    .is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    // ---- integrations ----

    pub(crate) fn api_key_by_hash(&self, hash: &str) -> Result<Option<ApiKey>, StoreError> {
        self.by_unique(Tx::ApiKeyHash, hash.as_bytes())
    }

    pub(crate) fn api_keys(
        &self,
        vendor: VendorId,
        page: Page<medex_core::model::ApiKeyId>,
    ) -> Result<Vec<ApiKey>, StoreError> {
        let ids = self.owned_ids(
            Tx::ApiKeysByVendor,
            vendor.to_bytes(),
            page.after.map(|a| a.to_bytes()),
        );
        self.page_of_ids(Tx::ApiKeysByVendor, ids, page.limit, |_| true)
    }

    pub(crate) fn webhooks(
        &self,
        vendor: VendorId,
        page: Page<medex_core::model::WebhookId>,
    ) -> Result<Vec<Webhook>, StoreError> {
        let ids = self.owned_ids(
            Tx::WebhooksByVendor,
            vendor.to_bytes(),
            page.after.map(|a| a.to_bytes()),
        );
        self.page_of_ids(Tx::WebhooksByVendor, ids, page.limit, |_| true)
    }

    pub(crate) fn deliveries(
        &self,
        webhook: medex_core::model::WebhookId,
        page: Page<medex_core::model::DeliveryId>,
    ) -> Result<Vec<Delivery>, StoreError> {
        let ids = self.owned_ids(
            Tx::DeliveriesByWebhook,
            webhook.to_bytes(),
            page.after.map(|a| a.to_bytes()),
        );
        self.page_of_ids(Tx::DeliveriesByWebhook, ids, page.limit, |_| true)
    }

    /// Pending deliveries, oldest first, through their index.
    pub(crate) fn pending_deliveries(&self, limit: usize) -> Result<Vec<Delivery>, StoreError> {
        let ids = self.tree(Tx::PendingDeliveries).iter().map(|item| {
            let (key, _) = item.map_err(sled_error)?;
            id_at(&key, 0)
        });
        self.page_of_ids(Tx::PendingDeliveries, ids, limit, |_| true)
    }

    /// Removes expired keys (a compare-and-swap each, so a key renewed meanwhile stays).
    pub(crate) fn prune_idempotency(&self, before: DateTime<Utc>) -> Result<u64, StoreError> {
        let tree = self.tree(Tx::Idempotency);
        let mut removed = 0;
        for entry in tree.iter() {
            let (key, bytes) = entry.map_err(sled_error)?;
            let record: IdempotencyRecord = decode("idempotency key", &bytes)?;
            if record.expires_at < before
                && tree
                    .compare_and_swap(&key, Some(bytes), None::<IVec>)
                    .map_err(sled_error)?
                    .is_ok()
            {
                removed += 1;
            }
        }
        Ok(removed)
    }

    /// Writes a fresh value under a probe key and reads it back.
    pub(crate) fn probe(&self) -> Result<(), StoreError> {
        let value = self.db.generate_id().map_err(sled_error)?.to_be_bytes();
        self.meta.insert(PROBE_KEY, &value).map_err(sled_error)?;
        match self.meta.get(PROBE_KEY).map_err(sled_error)? {
            Some(read) if read == value => Ok(()),
            _ => Err(StoreError::Unavailable(
                "health probe did not read back what it wrote".into(),
            )),
        }
    }
}

/// A lease as the lease tree keeps it.
#[derive(Debug, Serialize, Deserialize)]
struct Lease {
    holder: String,
    until: DateTime<Utc>,
}

fn transaction_outcome(outcome: Result<(), TransactionError<Abort>>) -> Result<(), StoreError> {
    match outcome {
        Ok(()) => Ok(()),
        Err(TransactionError::Abort(abort)) => Err(abort.into()),
        Err(TransactionError::Storage(e)) => Err(sled_error(e)),
    }
}

fn dangling(index: Tx) -> StoreError {
    StoreError::Corrupt(format!("{} points at a missing record", index.name()))
}

/// Keys starting with `prefix`, from `prefix ++ lo` (inclusive) to `prefix ++ hi` (exclusive),
/// each bound defaulting to the whole prefix.
fn range(tree: &Tree, prefix: &[u8], lo: Option<&[u8]>, hi: Option<&[u8]>) -> sled::Iter {
    let start = key(&[prefix, lo.unwrap_or_default()]);
    let end = match hi {
        Some(hi) => Bound::Excluded(key(&[prefix, hi])),
        None => successor(prefix).map_or(Bound::Unbounded, Bound::Excluded),
    };
    if let Bound::Excluded(end) = &end
        && *end <= start
    {
        // An empty range (sled expects start <= end).
        return tree.range(start.clone()..start);
    }
    tree.range::<Vec<u8>, _>((Bound::Included(start), end))
}

/// The body of a commit's transaction. It only reads and writes the trees: sled may run it again.
fn apply(
    tx: &[TransactionalTree],
    writes: &[Prepared],
) -> Result<(), ConflictableTransactionError<Abort>> {
    let at = |t: Tx| &tx[t.at()];
    for write in writes {
        let records = at(write.tree);
        let (stored_version, stored_entries) = match records.get(write.id)? {
            Some(old) => (write.stored)(&old).map_err(|e| {
                let detail = match e {
                    StoreError::Corrupt(detail) => detail,
                    other => other.to_string(),
                };
                ConflictableTransactionError::Abort(Abort::Corrupt(detail))
            })?,
            None => (0, Vec::new()),
        };
        if stored_version.checked_add(1) != Some(write.version) {
            return Err(ConflictableTransactionError::Abort(Abort::Conflict));
        }
        for old in stored_entries.iter().filter(|e| !write.entries.contains(e)) {
            at(old.tree).remove(old.key.as_slice())?;
        }
        for new in write.entries.iter().filter(|e| !stored_entries.contains(e)) {
            let index = at(new.tree);
            let value: &[u8] = match new.unique {
                Some(kind) => {
                    let owner: Option<IVec> = index.get(new.key.as_slice())?;
                    if owner.is_some_and(|owner| owner != write.id[..]) {
                        return Err(ConflictableTransactionError::Abort(Abort::Duplicate(kind)));
                    }
                    &write.id
                }
                None => &[],
            };
            index.insert(new.key.as_slice(), value)?;
        }
        records.insert(&write.id[..], write.bytes.as_slice())?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use chrono::TimeZone;
    use medex_core::model::{Email, Role};

    use super::*;

    fn user(version: u64, full_name: &str) -> User {
        let at = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
        User {
            id: UserId::from_uuid(uuid::Uuid::from_u128(
                0x0193_0000_0000_7000_8000_0000_0000_0042,
            )),
            email: Email::parse("ann@example.test").unwrap(),
            full_name: full_name.into(),
            phone: None,
            role: Role::User,
            is_active: true,
            password_hash: "$argon2id$test".into(),
            vendor_id: None,
            driver_id: None,
            sessions: Default::default(),
            created_at: at,
            updated_at: at,
            version,
        }
    }

    /// The memo of decoded records never serves a record older than the stored one: every read
    /// after a commit sees the commit, by id and through a unique index.
    #[test]
    fn reads_after_writes_see_the_writes_despite_the_decoded_memo() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Inner::new(dir.path().into(), sled::open(dir.path()).unwrap()).unwrap();
        let id = user(1, "").id.to_bytes();
        for version in 1..=5 {
            let name = format!("Ann {version}");
            inner.commit(&[Write::User(user(version, &name))]).unwrap();
            for _ in 0..2 {
                let by_id: User = inner.get(id).unwrap().unwrap();
                assert_eq!((by_id.version, by_id.full_name.as_str()), (version, &*name));
                let by_email = inner.user_by_email("ann@example.test").unwrap().unwrap();
                assert_eq!(by_email, by_id);
            }
        }
    }

    #[test]
    fn the_decoded_memo_stays_bounded() {
        let decoded = Decoded::new();
        let bytes = IVec::from(encode("user", &user(1, "Ann")).unwrap());
        for n in 0..(DECODED_SHARDS * DECODED_PER_SHARD * 2) as u128 {
            let id = n.to_be_bytes();
            let read: User = decoded.record(id, bytes.clone()).unwrap();
            assert_eq!(read.full_name, "Ann");
        }
        for shard in &decoded.shards {
            assert!(shard.lock().unwrap().len() <= DECODED_PER_SHARD);
        }
    }

    /// A directory whose configuration was saved before versions were kept holds it without a
    /// version: it reads as version 1, and the next save must be version 2.
    #[test]
    fn a_configuration_saved_without_a_version_is_version_1() {
        let dir = tempfile::tempdir().unwrap();
        let inner = Inner::new(dir.path().into(), sled::open(dir.path()).unwrap()).unwrap();
        let config = SystemConfig {
            road_factor: 1.4,
            ..Default::default()
        };
        inner
            .config
            .insert(CONFIG_KEY, encode("system config", &config).unwrap())
            .unwrap();
        assert_eq!(
            inner.system_config().unwrap(),
            Some(StoredConfig {
                config: config.clone(),
                version: 1
            })
        );
        assert!(matches!(
            inner.save_system_config(&config, 1),
            Err(StoreError::Conflict)
        ));
        inner.save_system_config(&config, 2).unwrap();
        assert_eq!(inner.system_config().unwrap().unwrap().version, 2);
    }
}
