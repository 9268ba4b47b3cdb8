//! Failures answer `Unavailable` (never a panic), and the store recovers by itself.

use std::time::Duration;

use medex_core::store::{Store, StoreError};
use medex_store_postgres::{OpenError, PgOptions, PgStore};
use tokio_postgres::NoTls;

use crate::fresh;

#[tokio::test]
async fn an_unreachable_server_is_refused_at_open() {
    // Port 9 (discard) on loopback: nothing listens there.
    let options = PgOptions {
        connect_timeout: Duration::from_secs(2),
        ..PgOptions::default()
    };
    let refused = PgStore::connect_with("postgres://medex@127.0.0.1:9/medex", options)
        .await
        .unwrap_err();
    assert!(matches!(refused, OpenError::Unreachable(_)), "{refused:?}");
    let invalid = PgStore::connect("postgres://[::1").await.unwrap_err();
    assert!(matches!(invalid, OpenError::InvalidUrl(_)), "{invalid:?}");
}

/// Every connection of the pool killed by the server (as a restart does): calls answer
/// `Unavailable` or succeed, and within one round of the pool they all succeed again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn killed_connections_are_unavailable_then_replaced() {
    let Some((db, store)) = fresh("killed").await else {
        return;
    };
    // Open several pooled connections.
    let store = std::sync::Arc::new(store);
    let checks: Vec<_> = (0..8)
        .map(|_| {
            let store = store.clone();
            tokio::spawn(async move { store.check().await })
        })
        .collect();
    for check in checks {
        check.await.unwrap().unwrap();
    }
    let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    let killed: i64 = client
        .query_one(
            "SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity
             WHERE datname = current_database() AND pid <> pg_backend_pid()) AS t",
            &[],
        )
        .await
        .unwrap()
        .get(0);
    assert!(killed >= 1, "the pool's connections were there to kill");

    let mut failures = 0;
    loop {
        match store.check().await {
            Ok(()) => break,
            Err(StoreError::Unavailable(_)) => failures += 1,
            Err(other) => panic!("a killed connection must be Unavailable, not {other:?}"),
        }
        assert!(failures <= 8, "the pool replaces its dead connections");
    }
    // Fixes too: the appender's connection comes from the same pool.
    for _ in 0..=8 {
        if store
            .append_fixes(&[medex_core::conformance::numbered::fix(1, 0, 1.0)])
            .await
            .is_ok()
        {
            return;
        }
    }
    panic!("appends never recovered");
}
