//! Fix batches, daily partitions and exact retention.

use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use medex_core::conformance::numbered::driver_id;
use medex_core::model::LocationFix;
use medex_core::store::{Store, TrailQuery};
use tokio_postgres::NoTls;

use crate::fresh;

fn fix(driver: u64, at: chrono::DateTime<Utc>, latitude: f64) -> LocationFix {
    LocationFix {
        driver_id: driver_id(driver),
        latitude,
        longitude: 13.4,
        speed: Some(4.5),
        heading: Some(90.0),
        accuracy: Some(5.0),
        recorded_at: at,
    }
}

/// Many drivers appending at once: every fix lands, and each appender reads its fix back as soon
/// as its append returns.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_appends_all_land_and_read_back_at_once() {
    let Some((_db, store)) = fresh("appends").await else {
        return;
    };
    let store = Arc::new(store);
    let at = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
    let tasks: Vec<_> = (0..200u64)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                // Nanoseconds survive the round trip too.
                let mine = fix(n, at + Duration::nanoseconds(n as i64 * 1_000_001), 52.5);
                store.append_fixes(&[mine]).await.unwrap();
                let trail = store
                    .trail(TrailQuery::new(
                        mine.driver_id,
                        at,
                        at + Duration::hours(1),
                        10,
                    ))
                    .await
                    .unwrap();
                assert_eq!(trail, vec![mine]);
                store.flush().await.unwrap();
            })
        })
        .collect();
    for task in tasks {
        task.await.unwrap();
    }
}

/// Fixes over four days; pruning in the middle of the third removes exactly the fixes before it:
/// two whole days as partitions, part of the third by rows.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn pruning_is_exact_across_daily_partitions() {
    let Some((db, store)) = fresh("prune").await else {
        return;
    };
    let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 5, d, h, 0, 0).unwrap();
    let mut fixes = vec![
        fix(1, day(1, 8), 1.0),
        fix(1, day(1, 23), 1.1),
        fix(2, day(1, 12), 1.2),
        fix(1, day(2, 0), 2.0),
        fix(2, day(2, 18), 2.1),
        fix(1, day(3, 6), 3.0),
        fix(2, day(3, 11), 3.1),
        fix(1, day(3, 12), 3.2),
        fix(1, day(4, 1), 4.0),
    ];
    // One nanosecond before the cut, and the cut itself (kept).
    let cut = day(3, 12) + Duration::nanoseconds(500);
    fixes.push(fix(2, cut - Duration::nanoseconds(1), 3.3));
    fixes.push(fix(2, cut, 3.4));
    store.append_fixes(&fixes).await.unwrap();
    assert_eq!(partitions(&db).await, 4, "one partition per day");

    assert_eq!(store.prune_trail(cut).await.unwrap(), 9);
    assert_eq!(partitions(&db).await, 2, "whole days went as partitions");
    let left = |driver| {
        let store = &store;
        async move {
            store
                .trail(TrailQuery::new(
                    driver_id(driver),
                    day(1, 0),
                    day(5, 0),
                    100,
                ))
                .await
                .unwrap()
                .iter()
                .map(|f| f.latitude)
                .collect::<Vec<_>>()
        }
    };
    assert_eq!(left(1).await, vec![4.0]);
    assert_eq!(left(2).await, vec![3.4]);
    assert_eq!(
        store.prune_trail(cut).await.unwrap(),
        0,
        "nothing left to prune"
    );

    // A late fix for a pruned day brings its partition back.
    store.append_fixes(&[fix(1, day(1, 9), 1.5)]).await.unwrap();
    assert_eq!(left(1).await, vec![1.5, 4.0]);
    assert_eq!(store.prune_trail(day(4, 12)).await.unwrap(), 3);
    assert_eq!(
        partitions(&db).await,
        1,
        "the day `before` falls in is kept"
    );
}

async fn partitions(db: &medex_store_postgres::testing::TestDatabase) -> i64 {
    let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
        .query_one(
            "SELECT count(*) FROM pg_inherits WHERE inhparent = 'trail'::regclass",
            &[],
        )
        .await
        .unwrap()
        .get(0)
}

/// A sweep interrupted between detaching a day and dropping it leaves the day in
/// `trail_detached`: the next sweep counts its fixes and drops it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_interrupted_sweep_is_finished_by_the_next() {
    let Some((db, store)) = fresh("interrupted_sweep").await else {
        return;
    };
    let day = |d: u32, h: u32| Utc.with_ymd_and_hms(2026, 5, d, h, 0, 0).unwrap();
    store
        .append_fixes(&[
            fix(1, day(1, 8), 1.0),
            fix(1, day(1, 9), 1.1),
            fix(1, day(2, 8), 2.0),
        ])
        .await
        .unwrap();
    let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    // What the first half of a sweep does, with the second half never run.
    client
        .batch_execute(
            "DO $$
             DECLARE partition text;
             BEGIN
                 DELETE FROM trail_partitions WHERE day = '2026-05-01' RETURNING name INTO partition;
                 EXECUTE format('ALTER TABLE trail DETACH PARTITION %I', partition);
                 INSERT INTO trail_detached (name) VALUES (partition);
             END $$",
        )
        .await
        .unwrap();
    assert_eq!(partitions(&db).await, 1);
    // A sweep that prunes nothing attached still counts the detached day's two fixes.
    assert_eq!(store.prune_trail(day(1, 0)).await.unwrap(), 2);
    let left: i64 = client
        .query_one(
            "SELECT (SELECT count(*) FROM trail_detached)
                  + (SELECT count(*) FROM pg_class WHERE relname LIKE 'trail\\_20260501\\_%')",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert_eq!(left, 0, "the detached day is gone");
    let trail = store
        .trail(TrailQuery::new(driver_id(1), day(1, 0), day(3, 0), 10))
        .await
        .unwrap();
    assert_eq!(
        trail.iter().map(|f| f.latitude).collect::<Vec<_>>(),
        vec![2.0]
    );
}
