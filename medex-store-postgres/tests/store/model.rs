//! The kit's model test on PostgreSQL: every case in a database of its own; `Reopen` drops the
//! store (its pool and appender) and connects again.

use std::sync::Arc;

use medex_core::conformance::model::{self, Reopen};
use medex_core::store::Store;
use medex_store_postgres::PgStore;
use medex_store_postgres::testing::{self, TestDatabase};
use proptest::test_runner::{Config, TestRunner};

use crate::options;

struct Reconnect<'a>(&'a TestDatabase);

#[async_trait::async_trait]
impl Reopen for Reconnect<'_> {
    async fn open(&mut self) -> Arc<dyn Store> {
        Arc::new(
            PgStore::connect_with(self.0.url(), options())
                .await
                .unwrap(),
        )
    }
}

#[test]
fn postgres_store_answers_like_the_reference_store() {
    // Asked once, so that a skip is one line rather than one per case.
    if testing::server_url("postgres_store_answers_like_the_reference_store").is_none() {
        return;
    }
    // Each case is a database and a few thousand statements: fewer cases than sled's 64.
    let mut runner = TestRunner::new(Config {
        cases: 24,
        ..Config::default()
    });
    let outcome = runner.run(&model::ops(), |ops| {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(1)
            .enable_all()
            .build()
            .unwrap();
        runtime.block_on(async {
            let db = TestDatabase::create("model")
                .await
                .expect("the server is set");
            model::check(Reconnect(&db), ops).await;
        });
        Ok(())
    });
    if let Err(failure) = outcome {
        panic!("{failure}");
    }
}
