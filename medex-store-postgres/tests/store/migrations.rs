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
    assert_eq!(applied, 1, "each migration recorded once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_database_from_a_newer_medex_is_refused_untouched() {
    let Some(db) = TestDatabase::create("newer_schema").await else {
        return;
    };
    drop(PgStore::connect_with(db.url(), options()).await.unwrap());
    let client = sql(&db).await;
    client
        .batch_execute(
            "INSERT INTO medex_migrations (version, name) VALUES (999, 'from_the_future')",
        )
        .await
        .unwrap();
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
    client
        .batch_execute("CREATE TABLE users (id serial PRIMARY KEY, name text)")
        .await
        .unwrap();
    let refused = PgStore::connect_with(db.url(), options())
        .await
        .unwrap_err();
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
    client
        .batch_execute(
            "DROP TABLE users;
             CREATE TABLE medex_migrations (version integer PRIMARY KEY, name text NOT NULL,
                 applied_at timestamptz NOT NULL DEFAULT now());
             INSERT INTO medex_migrations (version, name) VALUES (1, 'not_ours')",
        )
        .await
        .unwrap();
    let refused = PgStore::connect_with(db.url(), options())
        .await
        .unwrap_err();
    assert!(
        matches!(refused, OpenError::ForeignSchema(_)),
        "{refused:?}"
    );
}
