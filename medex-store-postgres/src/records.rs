//! Records: commits with optimistic versions, point reads and pages.

use chrono::{DateTime, Utc};
use deadpool_postgres::{Client, Pool};
use medex_core::integrations::{ApiKey, Delivery, DeliveryState, IdempotencyRecord, Webhook};
use medex_core::model::{
    ApiKeyId, DeliveryId, Driver, DriverId, IdempotencyId, Order, OrderId, User, UserId, Vendor,
    VendorId, WebhookId,
};
use medex_core::store::{DriverQuery, OrderQuery, Page, ShopOrder, StoreError, UserQuery, Write};
use serde::de::DeserializeOwned;
use tokio_postgres::Row;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::codec::{JsonText, decode, encode, join_time, limit, protect, split_bound, split_time};
use crate::errors::{from_pg, from_pool};

pub(crate) async fn client(pool: &Pool) -> Result<Client, StoreError> {
    pool.get().await.map_err(from_pool)
}

/// One write as SQL: an insert for version 1 (which must find no row), else an update of the row
/// holding `version - 1`. Either touching no row is a `Conflict`.
struct Statement {
    sql: &'static str,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

fn statement(write: &Write) -> Result<Statement, StoreError> {
    fn boxed<T: ToSql + Sync + Send + 'static>(value: T) -> Box<dyn ToSql + Sync + Send> {
        Box::new(value)
    }
    let (sql, params): (&'static str, Vec<Box<dyn ToSql + Sync + Send>>) = match write {
        Write::User(u) => {
            let insert = u.version == 1;
            (
                if insert {
                    "INSERT INTO users (id, version, email, role, is_active, record)
                     VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (id) DO NOTHING"
                } else {
                    "UPDATE users SET version = $2, email = $3, role = $4, is_active = $5,
                     record = $6 WHERE id = $1 AND version = $2::bigint - 1"
                },
                vec![
                    boxed(*u.id.as_uuid()),
                    boxed(version(u.version)?),
                    boxed(protect(u.email.as_str()).into_owned()),
                    boxed(u.role.as_str()),
                    boxed(u.is_active),
                    boxed(encode("user", u)?),
                ],
            )
        }
        Write::Vendor(v) => (
            if v.version == 1 {
                "INSERT INTO vendors (id, version, record) VALUES ($1, $2, $3)
                 ON CONFLICT (id) DO NOTHING"
            } else {
                "UPDATE vendors SET version = $2, record = $3 WHERE id = $1 AND version = $2::bigint - 1"
            },
            vec![
                boxed(*v.id.as_uuid()),
                boxed(version(v.version)?),
                boxed(encode("vendor", v)?),
            ],
        ),
        Write::Driver(d) => {
            // Positions come from fixes only: the stored record has none.
            let mut record = d.clone();
            record.current_latitude = None;
            record.current_longitude = None;
            record.last_location_update = None;
            (
                if d.version == 1 {
                    "INSERT INTO drivers (id, version, vendor_id, status, record)
                     VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING"
                } else {
                    "UPDATE drivers SET version = $2, vendor_id = $3, status = $4, record = $5
                     WHERE id = $1 AND version = $2::bigint - 1"
                },
                vec![
                    boxed(*d.id.as_uuid()),
                    boxed(version(d.version)?),
                    boxed(*d.vendor_id.as_uuid()),
                    boxed(d.status.as_str()),
                    boxed(encode("driver", &record)?),
                ],
            )
        }
        Write::Order(o) => {
            let (created_at, created_ns) = split_time(o.created_at);
            let external = o.external_ref.as_ref();
            (
                if o.version == 1 {
                    "INSERT INTO orders (id, version, order_number, tracking_token, vendor_id,
                         user_id, driver_id, status, created_at, created_ns, external_source,
                         external_id, record)
                     VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13)
                     ON CONFLICT (id) DO NOTHING"
                } else {
                    "UPDATE orders SET version = $2, order_number = $3, tracking_token = $4,
                         vendor_id = $5, user_id = $6, driver_id = $7, status = $8,
                         created_at = $9, created_ns = $10, external_source = $11,
                         external_id = $12, record = $13
                     WHERE id = $1 AND version = $2::bigint - 1"
                },
                vec![
                    boxed(*o.id.as_uuid()),
                    boxed(version(o.version)?),
                    boxed(protect(&o.order_number).into_owned()),
                    boxed(protect(&o.tracking_token).into_owned()),
                    boxed(*o.vendor_id.as_uuid()),
                    boxed(*o.user_id.as_uuid()),
                    boxed(o.driver_id.map(|d| *d.as_uuid())),
                    boxed(o.status.as_str()),
                    boxed(created_at),
                    boxed(created_ns),
                    boxed(external.map(|r| protect(&r.source).into_owned())),
                    boxed(external.map(|r| protect(&r.id).into_owned())),
                    boxed(encode("order", o)?),
                ],
            )
        }
        Write::ApiKey(k) => (
            if k.version == 1 {
                "INSERT INTO api_keys (id, version, vendor_id, hash, record)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING"
            } else {
                "UPDATE api_keys SET version = $2, vendor_id = $3, hash = $4, record = $5
                 WHERE id = $1 AND version = $2::bigint - 1"
            },
            vec![
                boxed(*k.id.as_uuid()),
                boxed(version(k.version)?),
                boxed(*k.vendor_id.as_uuid()),
                boxed(protect(&k.hash).into_owned()),
                boxed(encode("api key", k)?),
            ],
        ),
        Write::Webhook(h) => (
            if h.version == 1 {
                "INSERT INTO webhooks (id, version, vendor_id, record)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING"
            } else {
                "UPDATE webhooks SET version = $2, vendor_id = $3, record = $4
                 WHERE id = $1 AND version = $2::bigint - 1"
            },
            vec![
                boxed(*h.id.as_uuid()),
                boxed(version(h.version)?),
                boxed(*h.vendor_id.as_uuid()),
                boxed(encode("webhook", h)?),
            ],
        ),
        Write::Delivery(d) => (
            if d.version == 1 {
                "INSERT INTO webhook_deliveries (id, version, webhook_id, pending, record)
                 VALUES ($1, $2, $3, $4, $5) ON CONFLICT (id) DO NOTHING"
            } else {
                "UPDATE webhook_deliveries SET version = $2, webhook_id = $3, pending = $4,
                     record = $5
                 WHERE id = $1 AND version = $2::bigint - 1"
            },
            vec![
                boxed(*d.id.as_uuid()),
                boxed(version(d.version)?),
                boxed(*d.webhook_id.as_uuid()),
                boxed(d.state == DeliveryState::Pending),
                boxed(encode("delivery", d)?),
            ],
        ),
        Write::Idempotency(i) => (
            if i.version == 1 {
                "INSERT INTO idempotency_keys (id, version, expires_at, record)
                 VALUES ($1, $2, $3, $4) ON CONFLICT (id) DO NOTHING"
            } else {
                "UPDATE idempotency_keys SET version = $2, expires_at = $3, record = $4
                 WHERE id = $1 AND version = $2::bigint - 1"
            },
            vec![
                boxed(*i.id.as_uuid()),
                boxed(version(i.version)?),
                boxed(i.expires_at),
                boxed(encode("idempotency key", i)?),
            ],
        ),
        #[allow(unreachable_patterns)]
        _ => return Err(StoreError::Unavailable("unknown record type".into())),
    };
    Ok(Statement { sql, params })
}

/// A record version as a `bigint`. No record reaches 2^63 writes; a larger number can only be a
/// version that does not follow the stored one.
fn version(v: u64) -> Result<i64, StoreError> {
    i64::try_from(v).map_err(|_| StoreError::Conflict)
}

/// Writes all records in one transaction, in order.
///
/// The statements go out pipelined (one round trip for all of them), and the first in order that
/// failed or touched no row decides the answer: what came after it in the same transaction is
/// rolled back with it, so it cannot matter.
pub(crate) async fn commit(pool: &Pool, writes: &[Write]) -> Result<(), StoreError> {
    if writes.is_empty() {
        return Ok(());
    }
    let statements = writes
        .iter()
        .map(statement)
        .collect::<Result<Vec<_>, _>>()?;
    let mut client = client(pool).await?;
    let mut prepared = Vec::with_capacity(statements.len());
    for s in &statements {
        prepared.push(client.prepare_cached(s.sql).await.map_err(from_pg)?);
    }
    let tx = client.transaction().await.map_err(from_pg)?;
    let results = futures_join(statements.iter().zip(&prepared).map(|(s, p)| {
        let params: Vec<&(dyn ToSql + Sync)> = s
            .params
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect();
        let tx = &tx;
        async move { tx.execute(p, &params).await }
    }))
    .await;
    for result in results {
        match result {
            Ok(1) => {}
            Ok(_) => return Err(StoreError::Conflict),
            Err(e) => return Err(from_pg(e)),
        }
    }
    tx.commit().await.map_err(from_pg)
}

/// Polls all futures at once (so their statements share round trips), answers in order.
async fn futures_join<F: std::future::Future>(futures: impl Iterator<Item = F>) -> Vec<F::Output> {
    let mut pending: Vec<_> = futures.map(Box::pin).collect();
    let mut results: Vec<Option<F::Output>> = pending.iter().map(|_| None).collect();
    std::future::poll_fn(|cx| {
        let mut done = true;
        for (future, result) in pending.iter_mut().zip(results.iter_mut()) {
            if result.is_none() {
                match future.as_mut().poll(cx) {
                    std::task::Poll::Ready(value) => *result = Some(value),
                    std::task::Poll::Pending => done = false,
                }
            }
        }
        if done {
            std::task::Poll::Ready(())
        } else {
            std::task::Poll::Pending
        }
    })
    .await;
    results
        .into_iter()
        .map(|r| r.expect("every future finished"))
        .collect()
}

/// The record in column 0 of `row`.
pub(crate) fn record<T: DeserializeOwned>(what: &str, row: &Row) -> Result<T, StoreError> {
    let json: JsonText<'_> = row
        .try_get(0)
        .map_err(|e| StoreError::Corrupt(format!("unreadable {what}: {e}")))?;
    decode(what, json)
}

/// One record by a query that selects its JSON first.
pub(crate) async fn one<T: DeserializeOwned>(
    pool: &Pool,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Option<T>, StoreError> {
    let client = client(pool).await?;
    let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
    let row = client
        .query_opt(&statement, params)
        .await
        .map_err(from_pg)?;
    row.map(|row| record(what, &row)).transpose()
}

/// Records by a query that selects their JSON first.
async fn many<T: DeserializeOwned>(
    pool: &Pool,
    what: &str,
    sql: &str,
    params: &[&(dyn ToSql + Sync)],
) -> Result<Vec<T>, StoreError> {
    let client = client(pool).await?;
    let statement = client.prepare_cached(sql).await.map_err(from_pg)?;
    let rows = client.query(&statement, params).await.map_err(from_pg)?;
    rows.iter().map(|row| record(what, row)).collect()
}

/// A `WHERE` clause built from the filters a query sets, with its parameters, so that each
/// combination gets its own prepared statement and plan (a generic `$1 IS NULL OR ...` plan
/// could not use the indexes).
#[derive(Default)]
struct Filter {
    clauses: Vec<String>,
    params: Vec<Box<dyn ToSql + Sync + Send>>,
}

impl Filter {
    /// Adds `column <op> $n`.
    fn add<T: ToSql + Sync + Send + 'static>(&mut self, column: &str, op: &str, value: T) {
        self.params.push(Box::new(value));
        self.clauses
            .push(format!("{column} {op} ${}", self.params.len()));
    }

    /// Adds `(at, ns) <op> ($n, $n+1)` for a time kept as microseconds and nanoseconds.
    fn add_time(&mut self, columns: (&str, &str), op: &str, at: DateTime<Utc>) {
        let (cut, below) = split_bound(at);
        self.params.push(Box::new(cut));
        self.params.push(Box::new(below));
        let n = self.params.len();
        self.clauses.push(format!(
            "({}, {}) {op} (${}, ${n})",
            columns.0,
            columns.1,
            n - 1
        ));
    }

    /// `SELECT record FROM table WHERE ... ORDER BY id DESC LIMIT n`.
    fn page_sql(mut self, select: &str, after: Option<Uuid>, n: usize) -> (String, Self) {
        if let Some(after) = after {
            self.add("id", "<", after);
        }
        self.params.push(Box::new(limit(n)));
        let where_ = if self.clauses.is_empty() {
            String::new()
        } else {
            format!(" WHERE {}", self.clauses.join(" AND "))
        };
        let sql = format!(
            "{select}{where_} ORDER BY id DESC LIMIT ${}",
            self.params.len()
        );
        (sql, self)
    }

    fn params(&self) -> Vec<&(dyn ToSql + Sync)> {
        self.params
            .iter()
            .map(|b| b.as_ref() as &(dyn ToSql + Sync))
            .collect()
    }
}

pub(crate) async fn user(pool: &Pool, id: UserId) -> Result<Option<User>, StoreError> {
    one(
        pool,
        "user",
        "SELECT record FROM users WHERE id = $1",
        &[id.as_uuid()],
    )
    .await
}

pub(crate) async fn user_by_email(pool: &Pool, email: &str) -> Result<Option<User>, StoreError> {
    one(
        pool,
        "user",
        "SELECT record FROM users WHERE email = $1",
        &[&protect(email)],
    )
    .await
}

pub(crate) async fn users(
    pool: &Pool,
    query: &UserQuery,
    page: Page<UserId>,
) -> Result<Vec<User>, StoreError> {
    let mut filter = Filter::default();
    if let Some(role) = query.role {
        filter.add("role", "=", role.as_str());
    }
    if let Some(active) = query.is_active {
        filter.add("is_active", "=", active);
    }
    let (sql, filter) = filter.page_sql(
        "SELECT record FROM users",
        page.after.map(|a| *a.as_uuid()),
        page.limit,
    );
    many(pool, "user", &sql, &filter.params()).await
}

pub(crate) async fn vendor(pool: &Pool, id: VendorId) -> Result<Option<Vendor>, StoreError> {
    one(
        pool,
        "vendor",
        "SELECT record FROM vendors WHERE id = $1",
        &[id.as_uuid()],
    )
    .await
}

pub(crate) async fn vendors(pool: &Pool, page: Page<VendorId>) -> Result<Vec<Vendor>, StoreError> {
    let (sql, filter) = Filter::default().page_sql(
        "SELECT record FROM vendors",
        page.after.map(|a| *a.as_uuid()),
        page.limit,
    );
    many(pool, "vendor", &sql, &filter.params()).await
}

/// Drivers joined with their positions.
const DRIVERS: &str = "SELECT d.record, p.latitude, p.longitude, p.recorded_at, p.recorded_ns
     FROM drivers d LEFT JOIN positions p ON p.driver_id = d.id";

fn driver_row(row: &Row) -> Result<Driver, StoreError> {
    let mut driver: Driver = record("driver", row)?;
    let position = (|| -> Result<Option<(f64, f64, DateTime<Utc>)>, tokio_postgres::Error> {
        let latitude: Option<f64> = row.try_get(1)?;
        let longitude: Option<f64> = row.try_get(2)?;
        let at: Option<DateTime<Utc>> = row.try_get(3)?;
        let ns: Option<i16> = row.try_get(4)?;
        Ok(match (latitude, longitude, at, ns) {
            (Some(la), Some(lo), Some(at), Some(ns)) => Some((la, lo, join_time(at, ns))),
            _ => None,
        })
    })()
    .map_err(|e| StoreError::Corrupt(format!("unreadable position: {e}")))?;
    if let Some((latitude, longitude, at)) = position {
        driver.current_latitude = Some(latitude);
        driver.current_longitude = Some(longitude);
        driver.last_location_update = Some(at);
    }
    Ok(driver)
}

pub(crate) async fn driver(pool: &Pool, id: DriverId) -> Result<Option<Driver>, StoreError> {
    let client = client(pool).await?;
    let sql = format!("{DRIVERS} WHERE d.id = $1");
    let statement = client.prepare_cached(&sql).await.map_err(from_pg)?;
    let row = client
        .query_opt(&statement, &[id.as_uuid()])
        .await
        .map_err(from_pg)?;
    row.as_ref().map(driver_row).transpose()
}

pub(crate) async fn drivers(
    pool: &Pool,
    query: &DriverQuery,
    page: Page<DriverId>,
) -> Result<Vec<Driver>, StoreError> {
    let mut filter = Filter::default();
    if let Some(vendor) = query.vendor_id {
        filter.add("d.vendor_id", "=", *vendor.as_uuid());
    }
    if let Some(status) = query.status {
        filter.add("d.status", "=", status.as_str());
    }
    if let Some(after) = page.after {
        filter.add("d.id", "<", *after.as_uuid());
    }
    filter.params.push(Box::new(limit(page.limit)));
    let where_ = if filter.clauses.is_empty() {
        String::new()
    } else {
        format!(" WHERE {}", filter.clauses.join(" AND "))
    };
    let sql = format!(
        "{DRIVERS}{where_} ORDER BY d.id DESC LIMIT ${}",
        filter.params.len()
    );
    let client = client(pool).await?;
    let statement = client.prepare_cached(&sql).await.map_err(from_pg)?;
    let rows = client
        .query(&statement, &filter.params())
        .await
        .map_err(from_pg)?;
    rows.iter().map(driver_row).collect()
}

pub(crate) async fn order(pool: &Pool, id: OrderId) -> Result<Option<Order>, StoreError> {
    one(
        pool,
        "order",
        "SELECT record FROM orders WHERE id = $1",
        &[id.as_uuid()],
    )
    .await
}

pub(crate) async fn order_by_tracking_token(
    pool: &Pool,
    token: &str,
) -> Result<Option<Order>, StoreError> {
    one(
        pool,
        "order",
        "SELECT record FROM orders WHERE tracking_token = $1",
        &[&protect(token)],
    )
    .await
}

pub(crate) async fn order_by_external_ref(
    pool: &Pool,
    key: ShopOrder<'_>,
) -> Result<Option<Order>, StoreError> {
    one(
        pool,
        "order",
        "SELECT record FROM orders
         WHERE vendor_id = $1 AND external_source = $2 AND external_id = $3",
        &[key.vendor.as_uuid(), &protect(key.source), &protect(key.id)],
    )
    .await
}

pub(crate) async fn orders(
    pool: &Pool,
    query: &OrderQuery,
    page: Page<OrderId>,
) -> Result<Vec<Order>, StoreError> {
    let mut filter = Filter::default();
    if let Some(vendor) = query.vendor_id {
        filter.add("vendor_id", "=", *vendor.as_uuid());
    }
    if let Some(user) = query.user_id {
        filter.add("user_id", "=", *user.as_uuid());
    }
    if let Some(driver) = query.driver_id {
        filter.add("driver_id", "=", *driver.as_uuid());
    }
    if let Some(status) = query.status {
        filter.add("status", "=", status.as_str());
    }
    if let Some(from) = query.created_from {
        filter.add_time(("created_at", "created_ns"), ">=", from);
    }
    if let Some(before) = query.created_before {
        filter.add_time(("created_at", "created_ns"), "<", before);
    }
    let (sql, filter) = filter.page_sql(
        "SELECT record FROM orders",
        page.after.map(|a| *a.as_uuid()),
        page.limit,
    );
    many(pool, "order", &sql, &filter.params()).await
}

pub(crate) async fn put_refresh_session(
    pool: &Pool,
    session: &medex_core::store::RefreshSession,
) -> Result<(), StoreError> {
    let client = client(pool).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO refresh_sessions (id, user_id, expires_at, record) VALUES ($1, $2, $3, $4)
             ON CONFLICT (id) DO UPDATE SET user_id = EXCLUDED.user_id,
                 expires_at = EXCLUDED.expires_at, record = EXCLUDED.record",
        )
        .await
        .map_err(from_pg)?;
    let record = encode("refresh session", session)?;
    client
        .execute(
            &statement,
            &[
                &protect(&session.id),
                session.user_id.as_uuid(),
                &split_time(session.expires_at).0,
                &record,
            ],
        )
        .await
        .map_err(from_pg)?;
    Ok(())
}

/// Deletes and returns the session in one statement: of racing takers, the row lock lets one
/// delete it, and the others find nothing.
pub(crate) async fn take_refresh_session(
    pool: &Pool,
    id: &str,
) -> Result<Option<medex_core::store::RefreshSession>, StoreError> {
    one(
        pool,
        "refresh session",
        "DELETE FROM refresh_sessions WHERE id = $1 RETURNING record",
        &[&protect(id)],
    )
    .await
}

/// Writes a row and commits it durably: the database takes writes now.
pub(crate) async fn check(pool: &Pool) -> Result<(), StoreError> {
    let client = client(pool).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO medex_meta (key, value) VALUES ('health_checked_at', now()::text)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .await
        .map_err(from_pg)?;
    client.execute(&statement, &[]).await.map_err(from_pg)?;
    Ok(())
}

pub(crate) async fn api_key(pool: &Pool, id: ApiKeyId) -> Result<Option<ApiKey>, StoreError> {
    one(
        pool,
        "api key",
        "SELECT record FROM api_keys WHERE id = $1",
        &[id.as_uuid()],
    )
    .await
}

pub(crate) async fn api_key_by_hash(pool: &Pool, hash: &str) -> Result<Option<ApiKey>, StoreError> {
    one(
        pool,
        "api key",
        "SELECT record FROM api_keys WHERE hash = $1",
        &[&protect(hash)],
    )
    .await
}

pub(crate) async fn api_keys(
    pool: &Pool,
    vendor: VendorId,
    page: Page<ApiKeyId>,
) -> Result<Vec<ApiKey>, StoreError> {
    let mut filter = Filter::default();
    filter.add("vendor_id", "=", *vendor.as_uuid());
    let (sql, filter) = filter.page_sql(
        "SELECT record FROM api_keys",
        page.after.map(|a| *a.as_uuid()),
        page.limit,
    );
    many(pool, "api key", &sql, &filter.params()).await
}

pub(crate) async fn webhook(pool: &Pool, id: WebhookId) -> Result<Option<Webhook>, StoreError> {
    one(
        pool,
        "webhook",
        "SELECT record FROM webhooks WHERE id = $1",
        &[id.as_uuid()],
    )
    .await
}

pub(crate) async fn webhooks(
    pool: &Pool,
    vendor: VendorId,
    page: Page<WebhookId>,
) -> Result<Vec<Webhook>, StoreError> {
    let mut filter = Filter::default();
    filter.add("vendor_id", "=", *vendor.as_uuid());
    let (sql, filter) = filter.page_sql(
        "SELECT record FROM webhooks",
        page.after.map(|a| *a.as_uuid()),
        page.limit,
    );
    many(pool, "webhook", &sql, &filter.params()).await
}

pub(crate) async fn delivery(pool: &Pool, id: DeliveryId) -> Result<Option<Delivery>, StoreError> {
    one(
        pool,
        "delivery",
        "SELECT record FROM webhook_deliveries WHERE id = $1",
        &[id.as_uuid()],
    )
    .await
}

pub(crate) async fn deliveries(
    pool: &Pool,
    webhook: WebhookId,
    page: Page<DeliveryId>,
) -> Result<Vec<Delivery>, StoreError> {
    let mut filter = Filter::default();
    filter.add("webhook_id", "=", *webhook.as_uuid());
    let (sql, filter) = filter.page_sql(
        "SELECT record FROM webhook_deliveries",
        page.after.map(|a| *a.as_uuid()),
        page.limit,
    );
    many(pool, "delivery", &sql, &filter.params()).await
}

pub(crate) async fn pending_deliveries(pool: &Pool, n: usize) -> Result<Vec<Delivery>, StoreError> {
    many(
        pool,
        "delivery",
        "SELECT record FROM webhook_deliveries WHERE pending ORDER BY id LIMIT $1",
        &[&limit(n)],
    )
    .await
}

pub(crate) async fn idempotency(
    pool: &Pool,
    id: IdempotencyId,
) -> Result<Option<IdempotencyRecord>, StoreError> {
    one(
        pool,
        "idempotency key",
        "SELECT record FROM idempotency_keys WHERE id = $1",
        &[id.as_uuid()],
    )
    .await
}

pub(crate) async fn prune_idempotency(
    pool: &Pool,
    before: DateTime<Utc>,
) -> Result<u64, StoreError> {
    let client = client(pool).await?;
    client
        .execute(
            "DELETE FROM idempotency_keys WHERE expires_at < $1",
            &[&before],
        )
        .await
        .map_err(from_pg)
}
