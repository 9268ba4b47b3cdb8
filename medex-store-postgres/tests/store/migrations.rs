//! The schema is migrated once however many instances start at once, and a database this build
//! cannot use is refused with a reason.

use medex_store_postgres::testing::TestDatabase;
use medex_store_postgres::{OpenError, PgStore};
use tokio_postgres::NoTls;

use crate::options;

async fn sql(db: &TestDatabase) -> tokio_postgres::Client {
    let (client, connection) = tokio_postgres::connect(db.url(), NoTls).await.unwrap();
    tokio::spawn(connection);
    client
}

/// Runs `statements` on `client`; they must succeed.
async fn run(client: &tokio_postgres::Client, statements: &str) {
    client.batch_execute(statements).await.unwrap();
}

/// Why a store cannot open `db`: opening it must fail.
async fn refusal(db: &TestDatabase) -> OpenError {
    PgStore::connect_with(db.url(), options())
        .await
        .unwrap_err()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn instances_starting_together_migrate_once() {
    let Some(db) = TestDatabase::create("migrate_together").await else {
        return;
    };
    let starts: Vec<_> = (0..4)
        .map(|_| {
            let url = db.url().to_owned();
            tokio::spawn(async move { PgStore::connect_with(&url, options()).await })
        })
        .collect();
    for start in starts {
        start.await.unwrap().expect("every instance starts");
    }
    let applied: i64 = sql(&db)
        .await
        .query_one("SELECT count(*) FROM medex_migrations", &[])
        .await
        .unwrap()
        .get(0);
    assert_eq!(applied, 3, "each migration recorded once");
}

/// A database of the first schema, with a configuration saved, is brought up to date: the
/// configuration reads back as version 1, and the next save must be version 2.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_the_first_schema_is_migrated_with_its_configuration() {
    let Some(db) = TestDatabase::create("migrate_from_1").await else {
        return;
    };
    let client = sql(&db).await;
    run(
        &client,
        include_str!("../../migrations/0001_records_and_trail.sql"),
    )
    .await;
    let config = medex_core::config::SystemConfig {
        road_factor: 1.9,
        ..Default::default()
    };
    run(
        &client,
        &format!(
            "CREATE TABLE medex_migrations (version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO medex_migrations (version, name) VALUES (1, 'records_and_trail');
             INSERT INTO system_config (id, record) VALUES (1, '{}')",
            serde_json::to_string(&config).unwrap()
        ),
    )
    .await;
    let store = PgStore::connect_with(db.url(), options()).await.unwrap();
    use medex_core::store::Store as _;
    let stored = store.system_config().await.unwrap().unwrap();
    assert_eq!((stored.config, stored.version), (config.clone(), 1));
    assert!(matches!(
        store.save_system_config(&config, 1).await,
        Err(medex_core::store::StoreError::Conflict)
    ));
    store.save_system_config(&config, 2).await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_medex_is_refused_untouched() {
    let Some(db) = TestDatabase::create("newer_schema").await else {
        return;
    };
    drop(PgStore::connect_with(db.url(), options()).await.unwrap());
    let client = sql(&db).await;
    run(
        &client,
        "INSERT INTO medex_migrations (version, name) VALUES (999, 'from_the_future')",
    )
    .await;
    match PgStore::connect_with(db.url(), options()).await {
        Err(OpenError::NewerSchema {
            found: 999,
            supported,
        }) => assert!(supported < 999),
        other => panic!("expected NewerSchema, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_of_another_program_is_refused() {
    let Some(db) = TestDatabase::create("foreign").await else {
        return;
    };
    let client = sql(&db).await;
    run(
        &client,
        "CREATE TABLE users (id serial PRIMARY KEY, name text)",
    )
    .await;
    let refused = refusal(&db).await;
    assert!(
        matches!(refused, OpenError::Migration { .. }),
        "{refused:?}"
    );
    let recorded: Option<i64> = client
        .query_opt("SELECT count(*) FROM medex_migrations", &[])
        .await
        .ok()
        .flatten()
        .map(|row| row.get(0));
    assert_eq!(recorded, None, "nothing of the failed migration was kept");

    // Migrations under a name this build never had.
    run(
        &client,
        "DROP TABLE users;
             CREATE TABLE medex_migrations (version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO medex_migrations (version, name) VALUES (1, 'not_ours')",
    )
    .await;
    let refused = refusal(&db).await;
    assert!(
        matches!(refused, OpenError::ForeignSchema(_)),
        "{refused:?}"
    );
}

/// A pharmacy written before runs and automatic assignment existed (its JSON record without
/// `max_active_orders` and `auto_assign`) reads with their defaults: no migration is needed.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_pharmacy_written_before_its_newer_settings_reads_with_their_defaults() {
    use medex_core::conformance::fixtures;
    use medex_core::model::{Role, UserId, Vendor, VendorId};
    use medex_core::store::{Store as _, Write};
    let Some((db, store)) = crate::fresh("old_vendor_record").await else {
        return;
    };
    let owner = fixtures::user(
        UserId::from_uuid(uuid::Uuid::from_u64_pair(5, 1)),
        "old-pharmacy@example.com",
        Role::Vendor,
    );
    let v = Vendor {
        auto_assign: true,
        max_active_orders: 5,
        ..fixtures::vendor(
            VendorId::from_uuid(uuid::Uuid::from_u64_pair(5, 2)),
            owner.id,
        )
    };
    store
        .commit(vec![Write::User(owner), Write::Vendor(v.clone())])
        .await
        .unwrap();
    assert_eq!(store.vendor(v.id).await.unwrap(), Some(v.clone()));
    run(
        &sql(&db).await,
        "UPDATE vendors SET record = record - 'auto_assign' - 'max_active_orders'",
    )
    .await;
    let read = store.vendor(v.id).await.unwrap().unwrap();
    assert_eq!(
        read,
        Vendor {
            auto_assign: false,
            max_active_orders: 1,
            ..v
        }
    );
}
