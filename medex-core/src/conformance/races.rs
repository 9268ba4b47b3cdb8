//! Racing writers: of sixteen writers of one version, one session, one e-mail, one configuration
//! version, one lease or the last place of one driver's run, exactly one wins.
//!
//! The kit has no runtime of its own: the store's test passes a [`Spawn`] that starts each racer
//! as a task (on a multi-threaded runtime, so that they really run at once), and waits for it.

use std::future::Future;
use std::pin::Pin;
use std::sync::{Arc, Mutex, PoisonError};

use chrono::Duration;

use super::fixtures::t0;
use super::numbered::{driver, order, user, vendor};
use crate::config::SystemConfig;
use crate::model::{Driver, DriverStatus, Order, OrderStatus};
use crate::store::{LeaseClaim, RefreshSession, Store, StoreError, Write};

const RACERS: usize = 16;

/// A racer, as a task to start.
pub type Racer = Pin<Box<dyn Future<Output = ()> + Send + 'static>>;

/// Starts a racer at once and returns a future that ends when it has; e.g. on Tokio
/// `|racer| Box::pin(async { tokio::spawn(racer).await.unwrap() })`.
pub type Spawn<'a> = &'a (dyn Fn(Racer) -> Racer + Sync);

/// Starts `n` racers at once (`racer(i)` makes the `i`-th), waits for all, and answers what
/// each returned, by index.
async fn race<T, F>(spawn: Spawn<'_>, n: usize, racer: impl Fn(usize) -> F) -> Vec<T>
where
    F: Future<Output = T> + Send + 'static,
    T: Send + 'static,
{
    let outcomes = Arc::new(Mutex::new(Vec::with_capacity(n)));
    let started: Vec<Racer> = (0..n)
        .map(|i| {
            let outcomes = Arc::clone(&outcomes);
            let run = racer(i);
            spawn(Box::pin(async move {
                let outcome = run.await;
                lock(&outcomes).push((i, outcome));
            }))
        })
        .collect();
    for racer in started {
        racer.await;
    }
    let mut outcomes = std::mem::take(&mut *lock(&outcomes));
    outcomes.sort_by_key(|(i, _)| *i);
    outcomes.into_iter().map(|(_, outcome)| outcome).collect()
}

/// The racers whose write went through; every other must have been refused as `lost` says.
fn winners(
    outcomes: Vec<Result<(), StoreError>>,
    lost: fn(&StoreError) -> bool,
    what: &str,
) -> Vec<usize> {
    let mut winners = Vec::new();
    for (i, outcome) in outcomes.into_iter().enumerate() {
        match outcome {
            Ok(()) => winners.push(i),
            Err(e) if lost(&e) => {}
            Err(other) => panic!("{what} failed with {other:?}"),
        }
    }
    winners
}

fn conflict(e: &StoreError) -> bool {
    matches!(e, StoreError::Conflict)
}

/// Every race, on `store` (which may hold data of other checks: these use records of their own).
pub async fn run(store: Arc<dyn Store>, spawn: Spawn<'_>) {
    of_racing_commits_of_one_version_exactly_one_wins(&store, spawn).await;
    of_racing_takers_of_one_refresh_session_exactly_one_gets_it(&store, spawn).await;
    racing_inserts_of_one_e_mail_leave_exactly_one_account(&store, spawn).await;
    crossed_commits_of_two_records_leave_exactly_one_winner(&store, spawn).await;
    of_racing_configuration_saves_of_one_version_exactly_one_wins(&store, spawn).await;
    of_racing_holders_of_one_lease_exactly_one_gets_it(&store, spawn).await;
    of_racing_assignments_to_the_last_place_of_a_run_exactly_one_wins(&store, spawn).await;
    a_stop_completed_while_another_is_declined_leaves_one_winner(&store, spawn).await;
}

async fn of_racing_commits_of_one_version_exactly_one_wins(
    store: &Arc<dyn Store>,
    spawn: Spawn<'_>,
) {
    let owner = user(70_001, "race@example.com");
    let v = vendor(70_001, owner.id);
    let o = order(70_001, v.id, owner.id);
    store
        .commit(vec![
            Write::User(owner),
            Write::Vendor(v),
            Write::Order(o.clone()),
        ])
        .await
        .unwrap();

    for round in 2..6u64 {
        let outcomes = race(spawn, RACERS, |i| {
            let store = Arc::clone(store);
            let mut next = o.clone();
            next.version = round;
            next.notes = Some(format!("racer {i}"));
            next.status = OrderStatus::Accepted;
            async move { store.commit(vec![Write::Order(next)]).await }
        })
        .await;
        let winners = winners(outcomes, conflict, "a racing commit");
        assert_eq!(
            winners.len(),
            1,
            "round {round}: exactly one racing commit wins, not {winners:?}"
        );
        let stored = store.order(o.id).await.unwrap().unwrap();
        assert_eq!(stored.version, round);
        assert_eq!(stored.notes, Some(format!("racer {}", winners[0])));
    }
}

async fn of_racing_takers_of_one_refresh_session_exactly_one_gets_it(
    store: &Arc<dyn Store>,
    spawn: Spawn<'_>,
) {
    for round in 0..4 {
        let session = RefreshSession {
            id: format!("race-jti-{round}"),
            user_id: user(70_002, "a@example.com").id,
            expires_at: t0() + Duration::days(7),
        };
        store.put_refresh_session(session.clone()).await.unwrap();
        let got: Vec<RefreshSession> = race(spawn, RACERS, |_| {
            let store = Arc::clone(store);
            let id = session.id.clone();
            async move { store.take_refresh_session(&id).await.unwrap() }
        })
        .await
        .into_iter()
        .flatten()
        .collect();
        assert_eq!(
            got,
            vec![session],
            "exactly one racing taker gets the session"
        );
    }
}

async fn racing_inserts_of_one_e_mail_leave_exactly_one_account(
    store: &Arc<dyn Store>,
    spawn: Spawn<'_>,
) {
    let outcomes = race(spawn, RACERS, |n| {
        let store = Arc::clone(store);
        let account = user(70_100 + n as u64, "contested@example.com");
        async move { store.commit(vec![Write::User(account)]).await }
    })
    .await;
    let duplicate = |e: &StoreError| matches!(e, StoreError::Duplicate(_));
    let created = winners(outcomes, duplicate, "a racing insert").len();
    assert_eq!(created, 1, "exactly one account takes a contested e-mail");
    assert!(
        store
            .user_by_email("contested@example.com")
            .await
            .unwrap()
            .is_some()
    );
}

/// Two commits of one order and one driver, listing them in opposite orders (a database that
/// locks rows as it writes them can deadlock on this): one wins, the other is a `Conflict`.
async fn crossed_commits_of_two_records_leave_exactly_one_winner(
    store: &Arc<dyn Store>,
    spawn: Spawn<'_>,
) {
    let owner = user(70_200, "crossed@example.com");
    let v = vendor(70_200, owner.id);
    let d = driver(70_200, v.id, owner.id);
    let o = order(70_200, v.id, owner.id);
    store
        .commit(vec![
            Write::User(owner),
            Write::Vendor(v),
            Write::Driver(d.clone()),
            Write::Order(o.clone()),
        ])
        .await
        .unwrap();
    for round in 2..5u64 {
        let outcomes = race(spawn, 2, |i| {
            let crossed = i == 1;
            let store = Arc::clone(store);
            let mut next_order = o.clone();
            next_order.version = round;
            next_order.notes = Some(format!("crossed {crossed}"));
            let mut next_driver = d.clone();
            next_driver.version = round;
            next_driver.status = if crossed {
                DriverStatus::OnBreak
            } else {
                DriverStatus::Offline
            };
            let mut writes = vec![Write::Order(next_order), Write::Driver(next_driver)];
            if crossed {
                writes.reverse();
            }
            async move { store.commit(writes).await }
        })
        .await;
        let winners: Vec<bool> = winners(outcomes, conflict, "a crossed commit")
            .into_iter()
            .map(|i| i == 1)
            .collect();
        assert_eq!(winners.len(), 1, "round {round}: one crossed commit wins");
        let (stored_order, stored_driver) = (
            store.order(o.id).await.unwrap().unwrap(),
            store.driver(d.id).await.unwrap().unwrap(),
        );
        assert_eq!(
            (stored_order.version, stored_driver.version),
            (round, round)
        );
        assert_eq!(
            stored_order.notes,
            Some(format!("crossed {}", winners[0])),
            "both records come from the winner"
        );
        assert_eq!(stored_driver.status == DriverStatus::OnBreak, winners[0]);
    }
}

/// Instances changing the configuration at once, each from the version it read: one change is
/// saved, the others are told to start again.
async fn of_racing_configuration_saves_of_one_version_exactly_one_wins(
    store: &Arc<dyn Store>,
    spawn: Spawn<'_>,
) {
    for _ in 0..3 {
        let read = store
            .system_config()
            .await
            .unwrap()
            .map_or(0, |s| s.version);
        let outcomes = race(spawn, RACERS, |i| {
            let store = Arc::clone(store);
            let config = SystemConfig {
                road_factor: 1.0 + i as f64 / 10.0,
                ..SystemConfig::default()
            };
            async move { store.save_system_config(&config, read + 1).await }
        })
        .await;
        let winners = winners(outcomes, conflict, "a racing configuration save");
        assert_eq!(
            winners.len(),
            1,
            "exactly one racing save wins: {winners:?}"
        );
        let stored = store.system_config().await.unwrap().unwrap();
        assert_eq!(stored.version, read + 1);
        assert_eq!(stored.config.road_factor, 1.0 + winners[0] as f64 / 10.0);
    }
}

async fn of_racing_holders_of_one_lease_exactly_one_gets_it(
    store: &Arc<dyn Store>,
    spawn: Spawn<'_>,
) {
    for round in 0..4 {
        let name = format!("race-lease-{round}");
        let granted = race(spawn, RACERS, |i| {
            let store = Arc::clone(store);
            let name = name.clone();
            async move {
                let holder = format!("instance-{i}");
                let now = t0();
                store
                    .acquire_lease(LeaseClaim::new(
                        &name,
                        &holder,
                        now,
                        now + Duration::minutes(1),
                    ))
                    .await
                    .unwrap()
            }
        })
        .await;
        let holders: Vec<usize> = (0..RACERS).filter(|&i| granted[i]).collect();
        assert_eq!(
            holders.len(),
            1,
            "exactly one racing holder gets a free lease: {holders:?}"
        );
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

/// A driver on a run with one place left, and several orders of its pharmacy being assigned to
/// it at once: each assignment writes its order and the driver (its run one longer) from the
/// version it read; one goes through, the others are `Conflict`s, and the run holds the winner.
async fn of_racing_assignments_to_the_last_place_of_a_run_exactly_one_wins(
    store: &Arc<dyn Store>,
    spawn: Spawn<'_>,
) {
    let owner = user(70_300, "run-race@example.com");
    let v = vendor(70_300, owner.id);
    let mut d = driver(70_300, v.id, owner.id);
    let on_run = order(70_300, v.id, owner.id);
    d.join_run(on_run.id);
    let candidates: Vec<Order> = (1..=RACERS as u64)
        .map(|n| Order {
            status: OrderStatus::Accepted,
            ..order(70_300 + n, v.id, owner.id)
        })
        .collect();
    let mut writes = vec![
        Write::User(owner),
        Write::Vendor(v),
        Write::Driver(d.clone()),
        Write::Order(on_run.clone()),
    ];
    writes.extend(candidates.iter().cloned().map(Write::Order));
    store.commit(writes).await.unwrap();

    let outcomes = race(spawn, RACERS, |i| {
        let store = Arc::clone(store);
        let mut assigned = candidates[i].clone();
        assigned.status = OrderStatus::DriverAssigned;
        assigned.driver_id = Some(d.id);
        assigned.version += 1;
        let mut busier = d.clone();
        busier.join_run(assigned.id);
        busier.version += 1;
        async move {
            store
                .commit(vec![Write::Order(assigned), Write::Driver(busier)])
                .await
        }
    })
    .await;
    let winners = winners(outcomes, conflict, "a racing assignment");
    assert_eq!(
        winners.len(),
        1,
        "one assignment takes the last place: {winners:?}"
    );
    let won = candidates[winners[0]].id;
    let stored: Driver = store.driver(d.id).await.unwrap().unwrap();
    assert_eq!(
        stored.run(),
        vec![on_run.id, won],
        "the run holds the winner"
    );
    assert_eq!(stored.active_order_id, Some(on_run.id));
    for (i, candidate) in candidates.iter().enumerate() {
        let stored = store.order(candidate.id).await.unwrap().unwrap();
        let expected = if i == winners[0] {
            OrderStatus::DriverAssigned
        } else {
            OrderStatus::Accepted
        };
        assert_eq!(stored.status, expected, "candidate {i}");
    }
}

/// A driver with two orders: it completes one while it declines the other, each write carrying
/// the driver's run without its own order. One wins; the driver keeps the other order and stays
/// busy, so no order is ever dropped from a run it is still on.
async fn a_stop_completed_while_another_is_declined_leaves_one_winner(
    store: &Arc<dyn Store>,
    spawn: Spawn<'_>,
) {
    let owner = user(70_400, "run-cross@example.com");
    let v = vendor(70_400, owner.id);
    let mut d = driver(70_400, v.id, owner.id);
    let delivered = Order {
        status: OrderStatus::OutForDelivery,
        driver_id: Some(d.id),
        ..order(70_400, v.id, owner.id)
    };
    let declined = Order {
        status: OrderStatus::DriverAssigned,
        driver_id: Some(d.id),
        ..order(70_401, v.id, owner.id)
    };
    d.join_run(delivered.id);
    d.join_run(declined.id);
    store
        .commit(vec![
            Write::User(owner),
            Write::Vendor(v),
            Write::Driver(d.clone()),
            Write::Order(delivered.clone()),
            Write::Order(declined.clone()),
        ])
        .await
        .unwrap();
    let outcomes = race(spawn, 2, |i| {
        let store = Arc::clone(store);
        let (mut moved, next_status) = if i == 0 {
            (delivered.clone(), OrderStatus::Delivered)
        } else {
            (declined.clone(), OrderStatus::Accepted)
        };
        moved.status = next_status;
        if i == 1 {
            moved.driver_id = None;
        }
        moved.version += 1;
        let mut freed = d.clone();
        freed.leave_run(moved.id);
        freed.version += 1;
        async move {
            store
                .commit(vec![Write::Driver(freed), Write::Order(moved)])
                .await
        }
    })
    .await;
    let winners = winners(outcomes, conflict, "a racing stop");
    assert_eq!(winners.len(), 1, "one of the two stops wins: {winners:?}");
    let kept = if winners[0] == 0 {
        declined.id
    } else {
        delivered.id
    };
    let stored = store.driver(d.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.run(), stored.status),
        (vec![kept], DriverStatus::Busy),
        "the driver keeps the order whose write lost"
    );
    let untouched = if winners[0] == 0 {
        &declined
    } else {
        &delivered
    };
    assert_eq!(
        store.order(untouched.id).await.unwrap().unwrap().status,
        untouched.status
    );
}
