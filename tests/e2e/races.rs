//! Concurrency over HTTP: many clients racing on one order, one driver or one token. One wins,
//! the others get 409 (or 401 for tokens); no lost update, no driver on two orders, no
//! earnings credited twice. After every race the stored records are checked against each
//! other (`assert_consistent`).

use std::collections::BTreeMap;

use futures::future::join_all;
use medex_core::model::{DriverStatus, OrderStatus};
use medex_core::store::{DriverQuery, OrderQuery, Page};
use serde_json::json;

use crate::support::*;

/// How many clients race.
const N: usize = 16;

/// Counts of statuses, e.g. `{200: 1, 409: 15}`.
fn tally(replies: &[Reply]) -> BTreeMap<u16, usize> {
    let mut counts = BTreeMap::new();
    for r in replies {
        *counts.entry(r.status.as_u16()).or_default() += 1;
        assert!(
            r.status.as_u16() < 500,
            "a race must never be a server error: {}",
            r.text
        );
        if r.status.as_u16() >= 400 {
            r.assert_error_format("race");
        }
    }
    counts
}

/// Drivers and orders agree: a driver is busy with exactly the one active order that names
/// it, and its totals are the sum of its delivered orders.
async fn assert_consistent(s: &TestServer) {
    let store = s.medex().store();
    let orders = store
        .orders(&OrderQuery::default(), Page::first(200))
        .await
        .unwrap();
    let drivers = store
        .drivers(&DriverQuery::default(), Page::first(200))
        .await
        .unwrap();
    assert!(orders.len() < 200 && drivers.len() < 200);
    for driver in &drivers {
        // An order names its driver from assignment on; the driver works on it until it ends
        // or, after a failed attempt, comes back to the pharmacy.
        let active: Vec<_> = orders
            .iter()
            .filter(|o| o.driver_id == Some(driver.id) && o.status.has_driver_at_work())
            .collect();
        // A run holds exactly the orders that name the driver and are under way.
        let mut run = driver.run();
        run.sort();
        let mut held: Vec<_> = active.iter().map(|o| o.id).collect();
        held.sort();
        assert_eq!(run, held, "driver {}'s run", driver.id);
        assert_eq!(
            driver.active_order_id.is_some(),
            !active.is_empty(),
            "driver {}",
            driver.id
        );
        assert_eq!(
            driver.status == DriverStatus::Busy,
            !active.is_empty(),
            "driver {} is {:?}",
            driver.id,
            driver.status
        );
        let delivered: Vec<_> = orders
            .iter()
            .filter(|o| o.driver_id == Some(driver.id) && o.status == OrderStatus::Delivered)
            .collect();
        assert_eq!(driver.total_deliveries, delivered.len() as u64);
        let earned: i64 = delivered.iter().map(|o| o.delivery_fee.cents()).sum();
        assert_eq!(
            driver.total_earnings.cents(),
            earned,
            "driver {}",
            driver.id
        );
    }
    for order in &orders {
        // The history is a chain: each entry is the status that followed the one before.
        let last = order.status_history.last().expect("a history");
        assert_eq!(last.status, order.status, "order {}", order.id);
        if matches!(order.status, OrderStatus::Pending | OrderStatus::Accepted) {
            assert_eq!(order.driver_id, None, "order {}", order.id);
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_driver_assigned_to_many_orders_at_once_lands_on_exactly_one() {
    let w = World::new().await;
    let s = &w.server;
    let mut orders = Vec::new();
    for _ in 0..N {
        orders.push(w.order_in("accepted", &w.driver).await.0);
    }
    s.available(&w.driver).await;
    let replies = join_all(orders.iter().map(|o| w.assign(o, &w.driver))).await;
    let counts = tally(&replies);
    assert_eq!(
        counts,
        BTreeMap::from([(200, 1), (409, N - 1)]),
        "{replies:#?}"
    );
    for r in replies.iter().filter(|r| r.status.as_u16() == 409) {
        assert!(
            ["driver_not_available", "concurrent_update"].contains(&r.code()),
            "{}",
            r.text
        );
    }
    let winner = replies
        .iter()
        .find(|r| r.status.as_u16() == 200)
        .unwrap()
        .str("id");
    let driver = s.stored_driver(&w.driver.id).await;
    assert_eq!(
        driver.active_order_id.map(|id| id.to_string()),
        Some(winner.clone())
    );
    assert_eq!(driver.status, DriverStatus::Busy);
    for order in &orders {
        let stored = s.stored_order(order).await;
        if *order == winner {
            assert_eq!(stored.status, OrderStatus::DriverAssigned);
        } else {
            assert_eq!(
                (stored.status, stored.driver_id),
                (OrderStatus::Accepted, None)
            );
            assert_eq!(stored.status_history.len(), 2, "a loser's history moved");
        }
    }
    assert_consistent(s).await;
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_last_slot_of_a_run_assigned_at_once_goes_to_exactly_one_order() {
    let w = World::new().await;
    let s = &w.server;
    s.patch(
        &format!("/api/vendors/{}", w.vendor.id),
        &w.vendor.owner.token,
        json!({"max_active_orders": 3}),
    )
    .await
    .expect(200);
    // Two orders on the driver's run already; one slot left.
    let (first, _) = w.order_in("driver_assigned", &w.driver).await;
    let (second, _) = w.order_in("accepted", &w.driver).await;
    w.assign(&second, &w.driver).await.expect(200);
    let mut orders = Vec::new();
    for _ in 0..N {
        orders.push(w.order_in("accepted", &w.driver).await.0);
    }
    let replies = join_all(orders.iter().map(|o| w.assign(o, &w.driver))).await;
    let counts = tally(&replies);
    assert_eq!(
        counts,
        BTreeMap::from([(200, 1), (409, N - 1)]),
        "{replies:#?}"
    );
    for r in replies.iter().filter(|r| r.status.as_u16() == 409) {
        r.assert_error_format("a run already full");
    }
    let winner = replies
        .iter()
        .find(|r| r.status.as_u16() == 200)
        .unwrap()
        .str("id");
    let driver = s.stored_driver(&w.driver.id).await;
    let mut run: Vec<String> = driver.run().iter().map(|id| id.to_string()).collect();
    run.sort();
    let mut want = vec![first, second, winner];
    want.sort();
    assert_eq!(run, want);
    assert_consistent(s).await;
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_stops_of_one_run_done_at_once_both_count() {
    let w = World::new().await;
    let s = &w.server;
    let driver = &w.driver.who.token;
    s.patch(
        &format!("/api/vendors/{}", w.vendor.id),
        &w.vendor.owner.token,
        json!({"max_active_orders": 2}),
    )
    .await
    .expect(200);
    for round in 0..8 {
        // Two parcels on board, handed over at the same moment: each changes the driver's
        // record (its run, its count, its earnings), and neither may be lost.
        let (first, _) = w.order_in("out_for_delivery", &w.driver).await;
        let (second, _) = w.order_in("accepted", &w.driver).await;
        w.assign(&second, &w.driver).await.expect(200);
        for step in ["picked_up", "out_for_delivery"] {
            w.set_status(&second, driver, step).await.expect(200);
        }
        let (a, b) = tokio::join!(
            w.set_status(&first, driver, "delivered"),
            w.set_status(&second, driver, "delivered"),
        );
        a.expect(200);
        b.expect(200);
        let freed = s.stored_driver(&w.driver.id).await;
        assert_eq!(freed.total_deliveries, 2 * (round + 1), "round {round}");
        assert_eq!(freed.status, DriverStatus::Available, "round {round}");
        assert_consistent(s).await;
    }
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn accepting_and_cancelling_one_order_at_once_has_one_effect_each() {
    let w = World::new().await;
    let s = &w.server;
    for round in 0..4 {
        let (order, _) = w.order().await;
        let accept = || w.set_status(&order, &w.vendor.owner.token, "accepted");
        let cancel = || async { w.cancel(&order, &w.customer.token).await };
        // Interleaved so neither side always starts first.
        let (accepts, cancels) = futures::join!(
            join_all((0..N / 2).map(|_| accept())),
            join_all((0..N / 2).map(|_| cancel())),
        );
        let (a, c) = (tally(&accepts), tally(&cancels));
        let accepted = a.get(&200).copied().unwrap_or(0);
        let cancelled = c.get(&200).copied().unwrap_or(0);
        assert!(accepted <= 1, "round {round}: {a:?}");
        assert!(
            cancelled <= 1,
            "round {round}: at most one cancellation: {c:?}"
        );
        // Either side may win the first commit. When an acceptance wins, the cancellations that
        // read the pending order lose (409); one that read the accepted order may still cancel it.
        assert!(
            accepted + cancelled >= 1,
            "round {round}: someone wins: {a:?} {c:?}"
        );
        assert_eq!(
            a.get(&409).copied().unwrap_or(0) + accepted,
            N / 2,
            "round {round}: {a:?}"
        );
        assert_eq!(
            c.get(&409).copied().unwrap_or(0) + cancelled,
            N / 2,
            "round {round}: {c:?}"
        );
        let stored = s.stored_order(&order).await;
        let history: Vec<OrderStatus> = stored.status_history.iter().map(|c| c.status).collect();
        let mut expected = vec![OrderStatus::Pending];
        if accepted == 1 {
            expected.push(OrderStatus::Accepted);
        }
        if cancelled == 1 {
            expected.push(OrderStatus::Cancelled);
        }
        assert_eq!(stored.status, *expected.last().unwrap(), "round {round}");
        assert_eq!(history, expected, "round {round}");
        assert_eq!(stored.version, history.len() as u64);
    }

    // Accept and reject exclude each other: one of all of them wins.
    for round in 0..4 {
        let (order, _) = w.order().await;
        let vendor = &w.vendor.owner.token;
        let (accepts, rejects) = futures::join!(
            join_all((0..N / 2).map(|_| w.set_status(&order, vendor, "accepted"))),
            join_all((0..N / 2).map(|_| w.set_status(&order, vendor, "rejected"))),
        );
        let all: Vec<Reply> = accepts.into_iter().chain(rejects).collect();
        assert_eq!(
            tally(&all),
            BTreeMap::from([(200, 1), (409, N - 1)]),
            "round {round}"
        );
        let winner = all.iter().find(|r| r.status.as_u16() == 200).unwrap();
        let stored = s.stored_order(&order).await;
        assert_eq!(
            stored.status.as_str(),
            winner.json["status"].as_str().unwrap()
        );
        assert_eq!(stored.status_history.len(), 2);
    }
    assert_consistent(s).await;
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn delivering_twice_at_once_credits_the_driver_once() {
    let w = World::new().await;
    let s = &w.server;
    let mut fees = 0;
    for round in 0..3 {
        let (order, _) = w.order_in("out_for_delivery", &w.driver).await;
        let before = s.stored_driver(&w.driver.id).await;
        let replies =
            join_all((0..N).map(|_| w.set_status(&order, &w.driver.who.token, "delivered"))).await;
        assert_eq!(
            tally(&replies),
            BTreeMap::from([(200, 1), (409, N - 1)]),
            "round {round}"
        );
        let stored = s.stored_order(&order).await;
        assert_eq!(stored.status, OrderStatus::Delivered);
        assert_eq!(stored.status_history.len(), 6);
        let after = s.stored_driver(&w.driver.id).await;
        assert_eq!(after.total_deliveries, before.total_deliveries + 1);
        assert_eq!(
            after.total_earnings.cents(),
            before.total_earnings.cents() + stored.delivery_fee.cents()
        );
        assert_eq!(
            (after.status, after.active_order_id),
            (DriverStatus::Available, None)
        );
        fees += stored.delivery_fee.cents();
    }
    let earnings = w.driver_earnings().await;
    earnings.expect(200);
    assert_eq!(earnings.json["total_deliveries"], 3);
    assert_eq!(
        (earnings.json["total_earnings"].as_f64().unwrap() * 100.0).round() as i64,
        fees
    );
    assert_consistent(s).await;
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cancelling_while_the_driver_picks_up_leaves_one_outcome() {
    let w = World::new().await;
    let s = &w.server;
    let mut outcomes = BTreeMap::new();
    for _ in 0..6 {
        let (order, _) = w.order_in("driver_assigned", &w.driver).await;
        let (pickups, cancels) = futures::join!(
            join_all((0..N / 2).map(|_| w.set_status(&order, &w.driver.who.token, "picked_up"))),
            join_all((0..N / 2).map(|_| async { w.cancel(&order, &w.vendor.owner.token).await })),
        );
        let (p, c) = (tally(&pickups), tally(&cancels));
        let stored = s.stored_order(&order).await;
        // Exactly one side won once; the other side never did.
        match stored.status {
            OrderStatus::PickedUp => {
                assert_eq!((p.get(&200), c.get(&200)), (Some(&1), None), "{p:?} {c:?}");
                // Finish it, freeing the driver for the next round.
                for step in ["out_for_delivery", "delivered"] {
                    w.set_status(&order, &w.driver.who.token, step)
                        .await
                        .expect(200);
                }
            }
            OrderStatus::Cancelled => {
                assert_eq!((p.get(&200), c.get(&200)), (None, Some(&1)), "{p:?} {c:?}");
            }
            other => panic!("{other:?} after a race of pickup and cancel"),
        }
        *outcomes.entry(stored.status.as_str()).or_insert(0) += 1;
        assert_eq!(stored.status_history.len(), 4);
        assert_consistent(s).await;
    }
    assert_eq!(outcomes.values().sum::<i32>(), 6, "{outcomes:?}");
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_refresh_token_used_at_once_buys_at_most_one_pair_and_ends_its_session() {
    let s = TestServer::start().await;
    let ann = s
        .customer("ann@example.test", CUSTOMER_NAME, CUSTOMER_PHONE)
        .await;
    let replies = join_all((0..N).map(|_| {
        s.post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": ann.refresh}),
        )
    }))
    .await;
    // At most one pair is bought; the token presented again is taken as stolen, so the whole
    // session ends: whatever pair a winner got, and the session's first access token, stop
    // working, and the customer signs in again.
    let tallied = tally(&replies);
    assert!(tallied.get(&200).copied().unwrap_or(0) <= 1, "{tallied:?}");
    assert_eq!(tallied.values().sum::<usize>(), N);
    for pair in replies.iter().filter(|r| r.status.as_u16() == 200) {
        s.get("/api/auth/me", &pair.str("access_token"))
            .await
            .expect(401);
        s.post(
            "/api/auth/refresh",
            None,
            json!({"refresh_token": pair.str("refresh_token")}),
        )
        .await
        .expect(401);
    }
    s.get("/api/auth/me", &ann.token).await.expect(401);
    s.post(
        "/api/auth/refresh",
        None,
        json!({"refresh_token": ann.refresh}),
    )
    .await
    .expect(401);
    s.signed_in(&ann.email).await;
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_email_registered_at_once_makes_one_account() {
    let s = TestServer::start().await;
    let replies = join_all((0..N).map(|i| {
        s.post(
            "/api/auth/register",
            None,
            json!({"email": "twin@example.test", "password": PASSWORD,
                   "full_name": format!("Twin {i}")}),
        )
    }))
    .await;
    assert_eq!(tally(&replies), BTreeMap::from([(201, 1), (409, N - 1)]));
    for r in replies.iter().filter(|r| r.status.as_u16() == 409) {
        assert_eq!(r.code(), "email_taken");
    }
    let winner = replies.iter().find(|r| r.status.as_u16() == 201).unwrap();
    let me = s.signed_in("twin@example.test").await;
    assert_eq!(me.user_id, winner.json["user"]["id"].as_str().unwrap());
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_configuration_changes_are_all_kept() {
    let s = TestServer::start().await;
    let admin = s.admin().await;
    // Eight admins' changes to eight different settings, at once.
    let changes = [
        json!({"tariff": {"base_fee": 1.25}}),
        json!({"tariff": {"per_km": 3.1}}),
        json!({"tariff": {"min_fee": 2.0}}),
        json!({"vehicle_speeds": {"bike": 16.0}}),
        json!({"vehicle_speeds": {"scooter": 26.0}}),
        json!({"vehicle_speeds": {"car": 31.0}}),
        json!({"vehicle_speeds": {"van": 24.0}}),
        json!({"road_factor": 1.4}),
    ];
    let replies = join_all(
        changes
            .iter()
            .map(|change| s.patch("/api/admin/config", &admin.token, change.clone())),
    )
    .await;
    let counts = tally(&replies);
    let applied = counts.get(&200).copied().unwrap_or(0);
    assert_eq!(
        applied + counts.get(&409).copied().unwrap_or(0),
        changes.len(),
        "{counts:?}"
    );
    // Every change answered 200 is in force, and what is in force is what is stored.
    let config = s.get("/api/admin/config", &admin.token).await;
    config.expect(200);
    let stored = s.medex().store().system_config().await.unwrap();
    assert_eq!(
        serde_json::to_value(stored.map(|s| s.config)).unwrap(),
        config.json,
        "the configuration in force is not the one stored"
    );
    for (change, reply) in changes.iter().zip(&replies) {
        if reply.status.as_u16() != 200 {
            continue;
        }
        let (section, value) = change.as_object().unwrap().iter().next().unwrap();
        let kept = match value {
            serde_json::Value::Object(fields) => fields
                .iter()
                .all(|(field, v)| config.json[section][field] == *v),
            v => config.json[section] == *v,
        };
        assert!(kept, "{change} was answered 200 but lost: {}", config.text);
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn reassigning_cancelling_and_deactivating_at_once_keep_drivers_and_orders_in_step() {
    let w = World::new().await;
    let s = &w.server;
    let vendor = &w.vendor.owner.token;
    for round in 0..4 {
        // The order is with the first driver; the pharmacy hands it to the second while it
        // also cancels it, and the customer cancels too.
        s.available(&w.second_driver).await;
        let (order, _) = w.order_in("driver_assigned", &w.driver).await;
        let path = format!("/api/orders/{order}");
        let (assigns, vendor_cancels, customer_cancels) = futures::join!(
            join_all((0..N / 2).map(|_| w.assign(&order, &w.second_driver))),
            join_all((0..N / 4).map(|_| s.call("DELETE", &path, Some(vendor), None))),
            join_all((0..N / 4).map(|_| s.call("DELETE", &path, Some(&w.customer.token), None))),
        );
        let (a, v) = (tally(&assigns), tally(&vendor_cancels));
        // The customer may not cancel an order a driver has: never.
        assert_eq!(tally(&customer_cancels).get(&200), None, "round {round}");
        let stored = s.stored_order(&order).await;
        match stored.status {
            OrderStatus::Cancelled => assert_eq!(v.get(&200), Some(&1), "round {round}"),
            OrderStatus::DriverAssigned => {
                assert_eq!(stored.driver_id.unwrap().to_string(), w.second_driver.id);
                assert_eq!(v.get(&200), None, "round {round}: {v:?}");
            }
            other => panic!("round {round}: {other:?}"),
        }
        // Assigning the driver an order already has is answered 200 and changes nothing, so
        // several assignments may "succeed"; only 200 and 409 are answers.
        assert!(
            a.keys().all(|s| *s == 200 || *s == 409),
            "round {round}: {a:?}"
        );
        assert_consistent(s).await;
        // Clear the way for the next round.
        if !stored.status.is_terminal() {
            w.cancel(&order, vendor).await.expect(200);
        }
    }

    // Taking a driver out of service while it is being assigned: never both.
    for round in 0..4 {
        let (order, _) = w.order_in("accepted", &w.driver).await;
        s.available(&w.driver).await;
        let path = format!("/api/drivers/{}", w.driver.id);
        let (assigns, deactivations) = futures::join!(
            join_all((0..N / 2).map(|_| w.assign(&order, &w.driver))),
            join_all((0..N / 2).map(|_| s.patch(&path, vendor, json!({"is_active": false})))),
        );
        let (a, d) = (tally(&assigns), tally(&deactivations));
        let driver = s.stored_driver(&w.driver.id).await;
        let stored = s.stored_order(&order).await;
        if driver.is_active {
            assert_eq!(stored.status, OrderStatus::DriverAssigned, "round {round}");
            assert!(a.contains_key(&200), "round {round}: {a:?}");
            assert_eq!(d.get(&200), None, "round {round}: {d:?}");
        } else {
            assert_eq!(
                (stored.status, stored.driver_id),
                (OrderStatus::Accepted, None)
            );
            assert_eq!(a.get(&200), None, "round {round}: {a:?} {d:?}");
            s.patch(&path, vendor, json!({"is_active": true}))
                .await
                .expect(200);
        }
        assert_consistent(s).await;
        w.cancel(&order, vendor).await.expect(200);
    }
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn proofs_uploaded_at_once_leave_no_orphaned_files() {
    let w = World::new().await;
    let s = &w.server;
    let (order, _) = w.order_in("out_for_delivery", &w.driver).await;
    let kinds = ["/api/uploads/proof", "/api/uploads/signature"];
    let replies = join_all((0..N).map(|i| {
        s.send(
            "POST",
            kinds[i % 2],
            Some(&w.driver.who.token),
            upload_body(&order, PNG),
        )
    }))
    .await;
    let counts = tally(&replies);
    let stored = counts.get(&201).copied().unwrap_or(0);
    assert!(stored >= 1, "{counts:?}");
    assert_eq!(
        stored + counts.get(&409).copied().unwrap_or(0),
        N,
        "{counts:?}"
    );
    // Every file stored belongs to an upload that was answered 201; the order names the last
    // of each kind, and it is served.
    assert_eq!(s.uploaded_files().await.len(), stored, "{counts:?}");
    // Which kinds won depends on how the commits interleave: every upload read the same order,
    // and a commit that lost to another upload's is a 409 (its file removed).
    let order_now = s.stored_order(&order).await;
    let named: Vec<&str> = [&order_now.proof_photo_url, &order_now.signature_url]
        .into_iter()
        .filter_map(|url| url.as_deref())
        .collect();
    assert!(!named.is_empty(), "the order names what was uploaded");
    for url in named {
        let served = s.get(url, &w.customer.token).await;
        served.expect(200);
        assert!(served.text.as_bytes().starts_with(b"\x89PNG") || served.text.contains("PNG"));
    }
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_webhook_delivered_many_times_at_once_makes_one_order() {
    let w = World::new().await;
    let s = &w.server;
    let secret = "wc-shared-secret-0123456789";
    s.webhook_secret(&w.vendor, secret).await;
    // WooCommerce retries; proxies duplicate: the same order arrives sixteen times at once.
    let replies =
        join_all((0..N).map(|_| s.webhook(&w.vendor.id, secret, WC_ORDER.as_bytes()))).await;
    let counts = tally(&replies);
    assert_eq!(counts.get(&201), Some(&1), "{counts:?}");
    assert_eq!(counts.get(&200).copied().unwrap_or(0), N - 1, "{counts:?}");
    let ids: std::collections::BTreeSet<&str> = replies
        .iter()
        .map(|r| r.json["id"].as_str().unwrap())
        .collect();
    assert_eq!(ids.len(), 1, "the replays name the order taken in: {ids:?}");
    let listed = s
        .get(
            &format!("/api/vendors/{}/orders", w.vendor.id),
            &w.vendor.owner.token,
        )
        .await;
    listed.expect(200);
    assert_eq!(
        listed.json.as_array().map(Vec::len),
        Some(1),
        "{}",
        listed.text
    );
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn sixteen_wrong_handover_codes_at_once_lock_once_and_never_credit() {
    let w = World::new().await;
    let s = &w.server;
    let mut body = w.order_body();
    body["require_handover_code"] = json!(true);
    let placed = s.post("/api/orders", Some(&w.customer.token), body).await;
    placed.expect(201);
    let order = placed.str("id");
    let code: u32 = placed.str("handover_code").parse().unwrap();
    w.set_status(&order, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);
    s.available(&w.driver).await;
    w.assign(&order, &w.driver).await.expect(200);
    for step in ["picked_up", "out_for_delivery"] {
        w.set_status(&order, &w.driver.who.token, step)
            .await
            .expect(200);
    }
    let path = format!("/api/orders/{order}");
    let deliver = |code: u32| {
        s.patch(
            &path,
            &w.driver.who.token,
            json!({"status": "delivered", "handover_code": format!("{:06}", code % 1_000_000)}),
        )
    };
    let replies = join_all((1..=N as u32).map(|n| deliver(code + n))).await;
    let counts = tally(&replies);
    assert_eq!(
        counts,
        BTreeMap::from([(409, N - 5), (422, 5)]),
        "every wrong code counts once, until the fifth locks: {replies:#?}"
    );
    for r in &replies {
        let expected = if r.status.as_u16() == 422 {
            "handover_code_invalid"
        } else {
            "handover_locked"
        };
        assert_eq!(r.code(), expected, "{}", r.text);
    }
    let stored = s.stored_order(&order).await;
    assert_eq!(
        (stored.status, stored.handover_failures),
        (OrderStatus::OutForDelivery, 5)
    );
    let driver = s.stored_driver(&w.driver.id).await;
    assert_eq!(
        (driver.total_deliveries, driver.total_earnings.cents()),
        (0, 0)
    );
    // Locked: not even the right code delivers; only a failure for the code remains.
    let right = deliver(code).await;
    right.expect(409);
    assert_eq!(right.code(), "handover_locked");
    let other = s
        .patch(
            &path,
            &w.driver.who.token,
            json!({"status": "failed", "reason": "recipient_absent"}),
        )
        .await;
    other.expect(409);
    assert_eq!(other.code(), "handover_locked");
    s.patch(
        &path,
        &w.driver.who.token,
        json!({"status": "failed", "reason": "handover_code_failed"}),
    )
    .await
    .expect(200);
    assert_eq!(s.stored_order(&order).await.handover_failures, 5);
    assert_consistent(s).await;
    w.server.stop().await;
}
