//! Racing writers: exactly one wins.

use std::sync::Arc;

use chrono::Duration;
use medex_core::model::OrderStatus;
use medex_core::store::{RefreshSession, Store, StoreError, Write};
use medex_store_sled::SledStore;

use crate::fixtures::{order, t0, user, vendor};

const RACERS: usize = 16;

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_commits_of_one_version_exactly_one_wins() {
    let store = Arc::new(SledStore::temporary().unwrap());
    let owner = user(1, "race@example.com");
    let v = vendor(1, owner.id);
    let o = order(1, v.id, owner.id);
    store
        .commit(vec![
            Write::User(owner),
            Write::Vendor(v),
            Write::Order(o.clone()),
        ])
        .await
        .unwrap();

    for round in 2..6u64 {
        let racers: Vec<_> = (0..RACERS)
            .map(|i| {
                let store = Arc::clone(&store);
                let mut next = o.clone();
                next.version = round;
                next.notes = Some(format!("racer {i}"));
                next.status = OrderStatus::Accepted;
                tokio::spawn(async move { (i, store.commit(vec![Write::Order(next)]).await) })
            })
            .collect();
        let mut winners = Vec::new();
        for racer in racers {
            match racer.await.unwrap() {
                (i, Ok(())) => winners.push(i),
                (_, Err(StoreError::Conflict)) => {}
                (_, Err(other)) => panic!("unexpected {other:?}"),
            }
        }
        assert_eq!(winners.len(), 1, "round {round}: winners {winners:?}");
        let stored = store.order(o.id).await.unwrap().unwrap();
        assert_eq!(stored.version, round);
        assert_eq!(stored.notes, Some(format!("racer {}", winners[0])));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn of_racing_takers_of_one_refresh_session_exactly_one_gets_it() {
    let store = Arc::new(SledStore::temporary().unwrap());
    for round in 0..4 {
        let session = RefreshSession {
            id: format!("jti-{round}"),
            user_id: user(1, "a@example.com").id,
            expires_at: t0() + Duration::days(7),
        };
        store.put_refresh_session(session.clone()).await.unwrap();
        let takers: Vec<_> = (0..RACERS)
            .map(|_| {
                let store = Arc::clone(&store);
                let id = session.id.clone();
                tokio::spawn(async move { store.take_refresh_session(&id).await.unwrap() })
            })
            .collect();
        let mut got = Vec::new();
        for taker in takers {
            got.extend(taker.await.unwrap());
        }
        assert_eq!(got, vec![session]);
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn racing_inserts_of_one_e_mail_leave_exactly_one_account() {
    let store = Arc::new(SledStore::temporary().unwrap());
    let racers: Vec<_> = (0..RACERS as u64)
        .map(|n| {
            let store = Arc::clone(&store);
            tokio::spawn(async move {
                store
                    .commit(vec![Write::User(user(n, "contested@example.com"))])
                    .await
            })
        })
        .collect();
    let mut created = 0;
    for racer in racers {
        match racer.await.unwrap() {
            Ok(()) => created += 1,
            Err(StoreError::Duplicate(_)) => {}
            Err(other) => panic!("unexpected {other:?}"),
        }
    }
    assert_eq!(created, 1);
    assert!(
        store
            .user_by_email("contested@example.com")
            .await
            .unwrap()
            .is_some()
    );
}
