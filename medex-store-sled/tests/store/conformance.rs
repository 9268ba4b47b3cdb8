//! The conformance kit: the Store contract on a temporary store and on a store in a directory
//! that is closed and reopened in between, order pages against the reference, racing writers.

use std::sync::Arc;

use medex_core::conformance::{self, lists, races};
use medex_core::store::{OrderQuery, Page, Store};
use medex_store_sled::SledStore;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_store_keeps_the_store_contract() {
    let store = SledStore::temporary().unwrap();
    medex_core::conformance::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sled_store_pages_orders_like_the_reference() {
    lists::order_pages_match_the_reference(&SledStore::temporary().unwrap()).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_sled_writers_exactly_one_wins() {
    let store = Arc::new(SledStore::temporary().unwrap());
    races::run(store, &|racer| {
        Box::pin(async { tokio::spawn(racer).await.unwrap() })
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reopened_store_keeps_the_contract_and_its_data() {
    let dir = tempfile::tempdir().unwrap();
    let store = SledStore::open(dir.path()).unwrap();
    medex_core::conformance::run(&store).await;
    let everything = store
        .orders(&OrderQuery::default(), Page::first(1000))
        .await
        .unwrap();
    drop(store);

    let store = SledStore::open(dir.path()).unwrap();
    let again = store
        .orders(&OrderQuery::default(), Page::first(1000))
        .await
        .unwrap();
    assert_eq!(again, everything);
    conformance::writes_go_on_after_reopening(&store).await;
}
