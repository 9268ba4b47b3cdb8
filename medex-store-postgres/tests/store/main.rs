//! Integration tests of the PostgreSQL store, in one binary: the whole conformance kit, schema
//! migrations, fix batches and retention, and failures. Each test works in a database of its
//! own on the server of `MEDEX_TEST_DATABASE_URL` and drops it at the end; without the variable
//! each prints one line and passes (with `MEDEX_REQUIRE_SERVICES=1` it fails instead).

mod conformance;
mod failures;
mod migrations;
mod model;
mod trail;

use medex_store_postgres::testing::TestDatabase;
use medex_store_postgres::{PgOptions, PgStore};

/// A small pool: many tests run at once against one server.
fn options() -> PgOptions {
    PgOptions {
        pool_size: 4,
        ..PgOptions::default()
    }
}

/// A fresh database and a store on it, or `None` when PostgreSQL tests are skipped.
async fn fresh(test: &str) -> Option<(TestDatabase, PgStore)> {
    let db = TestDatabase::create(test).await?;
    let store = PgStore::connect_with(db.url(), options())
        .await
        .expect("the store opens on a fresh database");
    Some((db, store))
}
