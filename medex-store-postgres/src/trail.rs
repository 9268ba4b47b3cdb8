//! Driver fixes: one appender task per store writes them in batches, with asynchronous commit;
//! trail reads; retention by whole daily partitions.
//!
//! Thousands of drivers each send a fix every few seconds. A transaction per fix, each waiting
//! for its own WAL flush, would cost an fsync per fix. Instead every `append_fixes` hands its
//! fixes to the appender and waits; the appender takes everything queued and writes it as one
//! multi-row insert into the trail and one upsert of the moved positions, in one transaction with
//! `synchronous_commit = off`. Under load the batches grow by themselves; alone, a fix is its own
//! batch. An append returns once its batch is committed, so a read after it sees it.
//!
//! Asynchronous commit means a crash of the database can lose the last batches: PostgreSQL's WAL
//! writer flushes them within three `wal_writer_delay`s (600 ms by default), and the appender
//! makes sure of a bound of its own: [`SYNC_AFTER`] after the first unflushed batch it commits a
//! small write synchronously, which flushes the WAL up to it and so every batch before it. Fixes
//! at risk: at most about half a second. Every other write of the store (orders, accounts,
//! sessions) commits synchronously; only the appender's transactions set `synchronous_commit`.

use std::collections::{HashMap, HashSet};
use std::sync::{Arc, Weak};
use std::time::Duration;

use chrono::{DateTime, NaiveDate, Utc};
use deadpool_postgres::Pool;
use medex_core::model::{DriverId, LocationFix};
use medex_core::store::{StoreError, TrailQuery};
use tokio::sync::{mpsc, oneshot};
use tokio::time::Instant;
use tokio_postgres::error::SqlState;
use tokio_postgres::types::ToSql;
use uuid::Uuid;

use crate::codec::{join_time, limit, split_bound, split_time};
use crate::errors::from_pg;
use crate::records::client;

/// How long a committed batch may wait for a durable point.
pub(crate) const SYNC_AFTER: Duration = Duration::from_millis(500);

/// The most fixes one batch takes; the rest wait for the next one.
const MAX_BATCH: usize = 5_000;

/// The advisory lock of partition changes (the same key as in `medex_trail_partition`).
const PARTITION_LOCK: i64 = 7_262_730_600_000_000_002;

type Reply = oneshot::Sender<Result<(), StoreError>>;

enum Job {
    Append(Vec<LocationFix>, Reply),
    /// Answered once every fix appended before it is durable.
    Flush(Reply),
}

/// The handle of the appender task. Dropping it lets the task write what is queued, make it
/// durable, and end.
pub(crate) struct Appender {
    jobs: mpsc::UnboundedSender<Job>,
    /// Held while the store lives; background tasks keep a weak reference to know when to stop.
    alive: Arc<()>,
}

impl Appender {
    pub(crate) fn spawn(pool: Pool) -> Self {
        let (jobs, queue) = mpsc::unbounded_channel();
        tokio::spawn(run(pool, queue));
        Self {
            jobs,
            alive: Arc::new(()),
        }
    }

    pub(crate) fn alive(&self) -> Weak<()> {
        Arc::downgrade(&self.alive)
    }

    pub(crate) async fn append(&self, fixes: &[LocationFix]) -> Result<(), StoreError> {
        if fixes.is_empty() {
            return Ok(());
        }
        self.ask(|reply| Job::Append(fixes.to_vec(), reply)).await
    }

    pub(crate) async fn flush(&self) -> Result<(), StoreError> {
        self.ask(Job::Flush).await
    }

    async fn ask(&self, job: impl FnOnce(Reply) -> Job) -> Result<(), StoreError> {
        let (reply, answer) = oneshot::channel();
        let gone = || StoreError::Unavailable("the fix appender has stopped".into());
        self.jobs.send(job(reply)).map_err(|_| gone())?;
        answer.await.map_err(|_| gone())?
    }
}

/// The appender: batches, then durable points.
async fn run(pool: Pool, mut queue: mpsc::UnboundedReceiver<Job>) {
    let mut partitions = HashSet::new();
    // When the oldest batch not yet known durable was committed.
    let mut unsynced: Option<Instant> = None;
    loop {
        let first = match unsynced {
            Some(since) => tokio::select! {
                // The deadline first: a steady stream of jobs must not put off the durable point.
                biased;
                () = tokio::time::sleep_until(since + SYNC_AFTER) => {
                    unsynced = match sync(&pool).await {
                        Ok(()) => None,
                        // Tried again a moment later (not in a tight loop while the database is
                        // away); PostgreSQL's own WAL writer flushes meanwhile.
                        Err(_) => Some(Instant::now()),
                    };
                    continue;
                }
                job = queue.recv() => job,
            },
            None => queue.recv().await,
        };
        let Some(first) = first else {
            // The store was dropped: make what was written durable, then close the pool (a
            // retention sweep holding it fails its next round and ends).
            if unsynced.is_some() {
                let _ = sync(&pool).await;
            }
            pool.close();
            return;
        };
        let mut fixes = Vec::new();
        let mut appended = Vec::new();
        let mut flushes = Vec::new();
        let mut next = Some(first);
        while let Some(job) = next.take() {
            match job {
                Job::Append(batch, reply) => {
                    fixes.extend(batch);
                    appended.push(reply);
                }
                Job::Flush(reply) => flushes.push(reply),
            }
            if fixes.len() < MAX_BATCH {
                next = queue.try_recv().ok();
            }
        }
        if !fixes.is_empty() {
            let result = write(&pool, &mut partitions, &fixes).await;
            if result.is_ok() && unsynced.is_none() {
                unsynced = Some(Instant::now());
            }
            for reply in appended {
                let _ = reply.send(result.clone());
            }
        }
        if !flushes.is_empty() {
            let result = match unsynced {
                Some(_) => sync(&pool).await,
                None => Ok(()),
            };
            if result.is_ok() {
                unsynced = None;
            }
            for reply in flushes {
                let _ = reply.send(result.clone());
            }
        }
    }
}

/// Commits a small write synchronously: PostgreSQL flushes the WAL up to its commit record, so
/// every asynchronously committed batch before it is durable too.
async fn sync(pool: &Pool) -> Result<(), StoreError> {
    let client = client(pool).await?;
    let statement = client
        .prepare_cached(
            "INSERT INTO medex_meta (key, value) VALUES ('trail_synced_at', now()::text)
             ON CONFLICT (key) DO UPDATE SET value = EXCLUDED.value",
        )
        .await
        .map_err(from_pg)?;
    client.execute(&statement, &[]).await.map_err(from_pg)?;
    Ok(())
}

/// Writes one batch; creates missing daily partitions first. A partition dropped meanwhile by a
/// retention sweep (here or on another instance) is created again, once.
async fn write(
    pool: &Pool,
    partitions: &mut HashSet<NaiveDate>,
    fixes: &[LocationFix],
) -> Result<(), StoreError> {
    match write_once(pool, partitions, fixes).await {
        Err(Retry::MissingPartition) => {
            partitions.clear();
            match write_once(pool, partitions, fixes).await {
                Ok(()) => Ok(()),
                Err(Retry::MissingPartition) => Err(StoreError::Unavailable(
                    "a trail partition vanished twice while writing".into(),
                )),
                Err(Retry::Failed(e)) => Err(e),
            }
        }
        Err(Retry::Failed(e)) => Err(e),
        Ok(()) => Ok(()),
    }
}

enum Retry {
    MissingPartition,
    Failed(StoreError),
}

impl From<StoreError> for Retry {
    fn from(e: StoreError) -> Self {
        Retry::Failed(e)
    }
}

fn retry(e: tokio_postgres::Error) -> Retry {
    // "no partition of relation found for row"
    if e.code() == Some(&SqlState::CHECK_VIOLATION) {
        Retry::MissingPartition
    } else {
        Retry::Failed(from_pg(e))
    }
}

async fn write_once(
    pool: &Pool,
    partitions: &mut HashSet<NaiveDate>,
    fixes: &[LocationFix],
) -> Result<(), Retry> {
    let mut client = client(pool).await?;
    let mut days: Vec<NaiveDate> = fixes
        .iter()
        .map(|f| f.recorded_at.date_naive())
        .filter(|d| !partitions.contains(d))
        .collect();
    days.sort_unstable();
    days.dedup();
    for day in days {
        client
            .execute("SELECT medex_trail_partition($1)", &[&day])
            .await
            .map_err(|e| Retry::Failed(from_pg(e)))?;
        partitions.insert(day);
    }

    let n = fixes.len();
    let mut drivers = Vec::with_capacity(n);
    let mut times = Vec::with_capacity(n);
    let mut nanos = Vec::with_capacity(n);
    let (mut lats, mut lons) = (Vec::with_capacity(n), Vec::with_capacity(n));
    let (mut speeds, mut headings, mut accuracies) = (
        Vec::with_capacity(n),
        Vec::with_capacity(n),
        Vec::with_capacity(n),
    );
    for fix in fixes {
        let (at, ns) = split_time(fix.recorded_at);
        drivers.push(*fix.driver_id.as_uuid());
        times.push(at);
        nanos.push(ns);
        lats.push(fix.latitude);
        lons.push(fix.longitude);
        speeds.push(fix.speed);
        headings.push(fix.heading);
        accuracies.push(fix.accuracy);
    }
    let newest = newest_per_driver(fixes);

    let tx = client
        .transaction()
        .await
        .map_err(|e| Retry::Failed(from_pg(e)))?;
    let insert = tx
        .prepare_cached(
            "INSERT INTO trail (driver_id, recorded_at, recorded_ns, latitude, longitude, speed,
                 heading, accuracy)
             SELECT d, t, ns, la, lo, sp, he, ac
             FROM unnest($1::uuid[], $2::timestamptz[], $3::int2[], $4::float8[], $5::float8[],
                 $6::float8[], $7::float8[], $8::float8[])
                 WITH ORDINALITY AS f(d, t, ns, la, lo, sp, he, ac, n)
             ORDER BY n",
        )
        .await
        .map_err(retry)?;
    let upsert = tx
        .prepare_cached(
            "INSERT INTO positions (driver_id, latitude, longitude, recorded_at, recorded_ns)
             SELECT * FROM unnest($1::uuid[], $2::float8[], $3::float8[], $4::timestamptz[],
                 $5::int2[])
             ON CONFLICT (driver_id) DO UPDATE SET latitude = EXCLUDED.latitude,
                 longitude = EXCLUDED.longitude, recorded_at = EXCLUDED.recorded_at,
                 recorded_ns = EXCLUDED.recorded_ns
             WHERE (positions.recorded_at, positions.recorded_ns)
                 <= (EXCLUDED.recorded_at, EXCLUDED.recorded_ns)",
        )
        .await
        .map_err(retry)?;
    let (p_drivers, p_lats, p_lons, p_times, p_nanos) = newest;
    let trail_params: [&(dyn ToSql + Sync); 8] = [
        &drivers,
        &times,
        &nanos,
        &lats,
        &lons,
        &speeds,
        &headings,
        &accuracies,
    ];
    let position_params: [&(dyn ToSql + Sync); 5] =
        [&p_drivers, &p_lats, &p_lons, &p_times, &p_nanos];
    // One round trip: the three statements are pipelined, in this order.
    let (set, inserted, moved) = tokio::join!(
        tx.batch_execute("SET LOCAL synchronous_commit = off"),
        tx.execute(&insert, &trail_params),
        tx.execute(&upsert, &position_params),
    );
    set.map_err(retry)?;
    inserted.map_err(retry)?;
    moved.map_err(retry)?;
    tx.commit().await.map_err(retry)?;
    Ok(())
}

type Positions = (Vec<Uuid>, Vec<f64>, Vec<f64>, Vec<DateTime<Utc>>, Vec<i16>);

/// The fix each driver's position moves to: its newest by `recorded_at`, the later one of equal
/// times. Sorted by driver, so that concurrent upserts lock positions in one order.
fn newest_per_driver(fixes: &[LocationFix]) -> Positions {
    let mut newest: HashMap<DriverId, &LocationFix> = HashMap::new();
    for fix in fixes {
        newest
            .entry(fix.driver_id)
            .and_modify(|kept| {
                if kept.recorded_at <= fix.recorded_at {
                    *kept = fix;
                }
            })
            .or_insert(fix);
    }
    let mut newest: Vec<_> = newest.into_values().collect();
    newest.sort_unstable_by_key(|f| f.driver_id);
    let mut out: Positions = Default::default();
    for fix in newest {
        let (at, ns) = split_time(fix.recorded_at);
        out.0.push(*fix.driver_id.as_uuid());
        out.1.push(fix.latitude);
        out.2.push(fix.longitude);
        out.3.push(at);
        out.4.push(ns);
    }
    out
}

pub(crate) async fn trail(pool: &Pool, query: TrailQuery) -> Result<Vec<LocationFix>, StoreError> {
    let TrailQuery {
        driver,
        from,
        to,
        limit: n,
    } = query;
    let client = client(pool).await?;
    // The plain range on `recorded_at` prunes partitions; the row comparisons are exact.
    let statement = client
        .prepare_cached(
            "SELECT recorded_at, recorded_ns, latitude, longitude, speed, heading, accuracy
             FROM trail
             WHERE driver_id = $1 AND recorded_at >= $2 AND recorded_at <= $4
                 AND (recorded_at, recorded_ns) >= ($2, $3)
                 AND (recorded_at, recorded_ns) < ($4, $5)
             ORDER BY recorded_at, recorded_ns, seq
             LIMIT $6",
        )
        .await
        .map_err(from_pg)?;
    let (from_at, from_ns) = split_bound(from);
    let (to_at, to_ns) = split_bound(to);
    let rows = client
        .query(
            &statement,
            &[
                driver.as_uuid(),
                &from_at,
                &from_ns,
                &to_at,
                &to_ns,
                &limit(n),
            ],
        )
        .await
        .map_err(from_pg)?;
    rows.iter()
        .map(|row| {
            Ok(LocationFix {
                driver_id: driver,
                recorded_at: join_time(row.try_get(0)?, row.try_get(1)?),
                latitude: row.try_get(2)?,
                longitude: row.try_get(3)?,
                speed: row.try_get(4)?,
                heading: row.try_get(5)?,
                accuracy: row.try_get(6)?,
            })
        })
        .collect::<Result<_, tokio_postgres::Error>>()
        .map_err(|e| StoreError::Corrupt(format!("unreadable fix: {e}")))
}

/// Deletes fixes recorded before `before` and returns exactly how many.
///
/// Days wholly before `before` go as partitions: detached (a moment's lock of the trail), then
/// counted and dropped while nothing else can reach them. The day `before` falls in loses its
/// older rows by `DELETE`. A sweep interrupted between detaching and dropping leaves the
/// partition in `trail_detached`, and the next sweep counts and drops it.
pub(crate) async fn prune(pool: &Pool, before: DateTime<Utc>) -> Result<u64, StoreError> {
    let mut client = client(pool).await?;
    let (cut, below) = split_bound(before);
    // The partition of day D holds [D, D + 1): it is wholly before `before` when D + 1 is at or
    // before the day `before` falls in.
    let first_kept_day = cut.date_naive();
    {
        let tx = client.transaction().await.map_err(from_pg)?;
        tx.execute("SELECT pg_advisory_xact_lock($1)", &[&PARTITION_LOCK])
            .await
            .map_err(from_pg)?;
        let old: Vec<String> = tx
            .query(
                "DELETE FROM trail_partitions WHERE day < $1 RETURNING name",
                &[&first_kept_day],
            )
            .await
            .map_err(from_pg)?
            .iter()
            .map(|row| row.get(0))
            .collect();
        if !old.is_empty() {
            // The trail first, then its partitions: the order inserts lock them in.
            tx.batch_execute("LOCK TABLE trail IN ACCESS EXCLUSIVE MODE")
                .await
                .map_err(from_pg)?;
            for name in &old {
                tx.batch_execute(&format!(
                    "ALTER TABLE trail DETACH PARTITION {}",
                    quote_ident(name)
                ))
                .await
                .map_err(from_pg)?;
                tx.execute("INSERT INTO trail_detached (name) VALUES ($1)", &[name])
                    .await
                    .map_err(from_pg)?;
            }
        }
        tx.commit().await.map_err(from_pg)?;
    }

    let mut removed = 0u64;
    let detached: Vec<String> = client
        .query("SELECT name FROM trail_detached", &[])
        .await
        .map_err(from_pg)?
        .iter()
        .map(|row| row.get(0))
        .collect();
    for name in detached {
        let tx = client.transaction().await.map_err(from_pg)?;
        // Of racing sweeps, one takes the row and counts the partition.
        let taken = tx
            .execute("DELETE FROM trail_detached WHERE name = $1", &[&name])
            .await
            .map_err(from_pg)?;
        if taken == 1 {
            let table = quote_ident(&name);
            let count: i64 = tx
                .query_one(&format!("SELECT count(*) FROM {table}"), &[])
                .await
                .map_err(from_pg)?
                .get(0);
            tx.batch_execute(&format!("DROP TABLE {table}"))
                .await
                .map_err(from_pg)?;
            removed += count as u64;
        }
        tx.commit().await.map_err(from_pg)?;
    }

    let deleted = client
        .execute(
            "DELETE FROM trail WHERE recorded_at <= $1 AND (recorded_at, recorded_ns) < ($1, $2)",
            &[&cut, &below],
        )
        .await
        .map_err(from_pg)?;
    Ok(removed + deleted)
}

/// `name` as a quoted SQL identifier.
fn quote_ident(name: &str) -> String {
    format!("\"{}\"", name.replace('"', "\"\""))
}

#[cfg(test)]
mod tests {
    use chrono::{Duration, TimeZone};

    use super::*;

    fn fix(driver: u128, seconds: i64, latitude: f64) -> LocationFix {
        LocationFix {
            driver_id: DriverId::from_uuid(Uuid::from_u128(driver)),
            latitude,
            longitude: 13.4,
            speed: None,
            heading: None,
            accuracy: None,
            recorded_at: Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()
                + Duration::seconds(seconds),
        }
    }

    #[test]
    fn positions_move_to_the_newest_fix_and_the_later_of_ties() {
        let fixes = [
            fix(2, 10, 1.0),
            fix(1, 30, 2.0),
            fix(2, 5, 3.0),
            fix(1, 30, 4.0),
            fix(2, 10, 5.0),
        ];
        let (drivers, lats, ..) = newest_per_driver(&fixes);
        assert_eq!(drivers, vec![Uuid::from_u128(1), Uuid::from_u128(2)]);
        assert_eq!(lats, vec![4.0, 5.0]);
    }

    #[test]
    fn identifiers_are_quoted() {
        assert_eq!(quote_ident("trail_20260501_1"), "\"trail_20260501_1\"");
        assert_eq!(quote_ident("a\"b"), "\"a\"\"b\"");
    }
}
