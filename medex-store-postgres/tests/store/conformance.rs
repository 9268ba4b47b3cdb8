//! The conformance kit on PostgreSQL: the contract on a fresh store and across a reconnect, order
//! pages against the reference, racing writers.

use std::sync::Arc;

use medex_core::conformance::{self, lists, races};
use medex_core::store::{OrderQuery, Page, Store};
use medex_store_postgres::PgStore;

use crate::{fresh, options};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_the_store_contract() {
    let Some((_db, store)) = fresh("contract").await else {
        return;
    };
    conformance::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_keeps_the_file_store_contract() {
    let Some((_db, store)) = fresh("files").await else {
        return;
    };
    conformance::files::run(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reconnected_store_keeps_the_contract_and_its_data() {
    let Some((db, store)) = fresh("reconnect").await else {
        return;
    };
    conformance::run(&store).await;
    let everything = store
        .orders(&OrderQuery::default(), Page::first(1000))
        .await
        .unwrap();
    let driver = everything.iter().find_map(|o| o.driver_id).unwrap();
    let position = store.driver(driver).await.unwrap();
    drop(store);

    let store = PgStore::connect_with(db.url(), options()).await.unwrap();
    let again = store
        .orders(&OrderQuery::default(), Page::first(1000))
        .await
        .unwrap();
    assert_eq!(again, everything);
    assert_eq!(store.driver(driver).await.unwrap(), position);
    conformance::writes_go_on_after_reopening(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn postgres_store_pages_orders_like_the_reference() {
    let Some((_db, store)) = fresh("pages").await else {
        return;
    };
    lists::order_pages_match_the_reference(&store).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_postgres_writers_exactly_one_wins() {
    let Some((_db, store)) = fresh("races").await else {
        return;
    };
    races::run(Arc::new(store), &|racer| {
        Box::pin(async { tokio::spawn(racer).await.unwrap() })
    })
    .await;
}
