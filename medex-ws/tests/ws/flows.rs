//! Live updates reach the sockets that may see them, and only those.

use medex_core::prelude::*;
use serde_json::Value;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn driver_fixes_reach_the_vendor_and_the_tracker_with_eta_and_nobody_else() {
    let world = World::start().await;
    let order = world.assigned_order().await;
    let p = &world.pharmacy;

    let mut vendor = connect(&world.vendor_url(p)).await;
    let initial = next_json(&mut vendor).await;
    assert_eq!(initial["type"], "initial_state");
    // Newest first, and drivers made within one millisecond sort by their random bits.
    let ours = initial["drivers"]
        .as_array()
        .and_then(|all| all.iter().find(|d| d["id"] == p.driver.id.to_string()))
        .unwrap_or_else(|| panic!("our driver is in the fleet: {initial}"));
    assert_eq!(ours["status"], "busy");
    assert_eq!(
        initial["drivers"].as_array().map(Vec::len),
        Some(2),
        "{initial}"
    );
    assert_eq!(initial["active_orders"][0]["id"], order.id.to_string());

    let mut tracker = connect(&world.tracking_url(&order)).await;
    let initial = next_json(&mut tracker).await;
    assert_eq!(initial["type"], "initial_state");
    assert_eq!(initial["order_number"], order.order_number);
    assert_eq!(initial["status"], "driver_assigned");
    assert_eq!(initial["vendor_name"], "Pharmacy 1");

    let mut stranger = connect_greeted(&world.vendor_url(&world.other), "initial_state").await;

    let mut driver = connect(&world.driver_url(p)).await;
    let connected = next_json(&mut driver).await;
    assert_eq!(connected["type"], "connected");
    assert_eq!(connected["driver_id"], p.driver.id.to_string());
    assert_eq!(connected["active_order"]["id"], order.id.to_string());

    send_json(&mut driver, fix(52.521, 13.401)).await;

    let seen = next_of(&mut vendor, "driver_location").await;
    assert_eq!(seen["driver_id"], p.driver.id.to_string());
    assert_eq!(seen["order_id"], order.id.to_string());
    assert_eq!(seen["latitude"], 52.521);
    assert_eq!(seen["longitude"], 13.401);
    assert_eq!(seen["speed"], 18.5);
    assert_eq!(seen["heading"], 90.0);
    assert!(
        seen["eta_minutes"].as_f64().is_some_and(|m| m > 0.0),
        "{seen}"
    );
    assert!(seen["recorded_at"].is_string() && seen["sent_at"].is_string());

    let public = next_of(&mut tracker, "driver_location").await;
    assert_eq!(
        keys(&public),
        [
            "eta_minutes",
            "latitude",
            "longitude",
            "recorded_at",
            "sent_at",
            "type"
        ],
        "a tracker sees nothing the tracking view would not show: {public}"
    );
    assert_eq!(public["latitude"], 52.521);
    assert_eq!(public["eta_minutes"], seen["eta_minutes"]);

    // The same pipeline as the HTTP fallback: the position is stored.
    let stored = world.medex.get_driver(&p.owner, p.driver.id).await.unwrap();
    assert_eq!(stored.current_latitude, Some(52.521));

    assert_eq!(
        quiet(&mut stranger).await,
        Ok(()),
        "another pharmacy's socket"
    );
    assert_eq!(quiet(&mut driver).await, Ok(()), "a driver gets no echo");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn use_case_changes_arrive_on_the_right_sockets() {
    let world = World::start().await;
    let medex = &world.medex;
    let p = &world.pharmacy;

    let mut vendor = connect_greeted(&world.vendor_url(p), "initial_state").await;
    let mut stranger = connect_greeted(&world.vendor_url(&world.other), "initial_state").await;
    let mut driver = connect(&world.driver_url(p)).await;
    let connected = next_json(&mut driver).await;
    assert_eq!(connected["active_order"], Value::Null);

    let order = world.pending_order().await;
    let created = next_of(&mut vendor, "order_created").await;
    assert_eq!(created["order"]["id"], order.id.to_string());
    assert_eq!(created["order"]["status"], "pending");
    assert_eq!(created["order"]["customer_phone"], "+49 30 1234");
    // The recipient gives the handover code at the door: no socket carries it.
    assert!(created["order"].get("handover_code").is_none(), "{created}");
    assert!(order.handover_code.is_some());

    let mut tracker = connect(&world.tracking_url(&order)).await;
    assert_eq!(next_json(&mut tracker).await["status"], "pending");

    medex
        .change_status(&p.owner, order.id, OrderStatus::Accepted, None)
        .await
        .unwrap();
    let status = next_of(&mut vendor, "order_status").await;
    assert_eq!(status["status"], "accepted");
    assert_eq!(status["previous_status"], "pending");
    assert_eq!(status["order"]["id"], order.id.to_string());
    let public = next_of(&mut tracker, "order_status").await;
    assert_eq!(public["status"], "accepted");
    assert!(public["accepted_at"].is_string());
    assert_eq!(public["timeline"].as_array().map(Vec::len), Some(2));
    assert_eq!(
        keys(&public),
        [
            "accepted_at",
            "attempt",
            "attempt_failed",
            "cancelled_at",
            "delivered_at",
            "out_for_delivery_at",
            "picked_up_at",
            "sent_at",
            "status",
            "timeline",
            "type"
        ],
        "only public fields: {public}"
    );
    assert_eq!(keys(&public["timeline"][0]), ["at", "status"]);

    medex
        .set_driver_status(&p.driver_actor, p.driver.id, DriverStatus::Available)
        .await
        .unwrap();
    let status = next_of(&mut vendor, "driver_status").await;
    assert_eq!(status["driver_id"], p.driver.id.to_string());
    assert_eq!(status["status"], "available");

    medex
        .assign_driver(&p.owner, order.id, p.driver.id)
        .await
        .unwrap();
    let assignment = next_json(&mut driver).await;
    assert_eq!(assignment["type"], "assignment");
    assert_eq!(assignment["order"]["id"], order.id.to_string());
    assert_eq!(assignment["order"]["delivery_address"], "9 Elm St");
    assert_eq!(
        next_of(&mut vendor, "order_status").await["status"],
        "driver_assigned"
    );
    assert_eq!(
        next_of(&mut vendor, "driver_status").await["status"],
        "busy"
    );
    assert_eq!(
        next_of(&mut tracker, "order_status").await["status"],
        "driver_assigned"
    );

    let steps = [
        OrderStatus::PickedUp,
        OrderStatus::OutForDelivery,
        OrderStatus::Delivered,
    ];
    for step in steps {
        medex
            .change_status(&p.driver_actor, order.id, step, None)
            .await
            .unwrap();
        let status = next_of(&mut driver, "order_status").await;
        assert_eq!(status["status"], step.as_str());
        assert_eq!(
            next_of(&mut vendor, "order_status").await["status"],
            step.as_str()
        );
    }
    // The tracker gets the final status, then a normal close.
    let (code, seen) = close_code(&mut tracker).await;
    assert_eq!(code, CloseCode::Normal);
    let statuses: Vec<&Value> = seen.iter().map(|m| &m["status"]).collect();
    assert_eq!(statuses, ["picked_up", "out_for_delivery", "delivered"]);
    assert!(seen[2]["delivered_at"].is_string());

    // A tracker opening a finished order sees its final state and is closed normally.
    let mut late = connect(&world.tracking_url(&order)).await;
    let (code, seen) = close_code(&mut late).await;
    assert_eq!(code, CloseCode::Normal);
    assert_eq!(seen.len(), 1);
    assert_eq!(seen[0]["type"], "initial_state");
    assert_eq!(seen[0]["status"], "delivered");
    assert_eq!(
        seen[0]["driver"],
        Value::Null,
        "no driver position after delivery"
    );

    assert_eq!(
        quiet(&mut stranger).await,
        Ok(()),
        "another pharmacy's socket"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_reassigned_driver_learns_it_is_relieved() {
    let world = World::start().await;
    let medex = &world.medex;
    let p = &world.pharmacy;
    let order = world.assigned_order().await;
    let (second_user, second) = world.kit.drivers[1];
    medex
        .set_driver_status(&second_user, second, DriverStatus::Available)
        .await
        .unwrap();
    let second_token = world.token(Who::Driver(1)).await;

    let mut first = connect_greeted(&world.driver_url(p), "connected").await;
    let mut other = connect(&world.url(&format!("/ws/driver?token={second_token}"))).await;
    assert_eq!(next_json(&mut other).await["active_order"], Value::Null);

    medex
        .assign_driver(&p.owner, order.id, second)
        .await
        .unwrap();
    let assignment = next_json(&mut other).await;
    assert_eq!(assignment["type"], "assignment");
    assert_eq!(assignment["order_id"], order.id.to_string());
    let relieved = next_json(&mut first).await;
    assert_eq!(relieved["type"], "unassigned");
    assert_eq!(relieved["order_id"], order.id.to_string());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_fixes_join_the_trail_and_subscribers_see_only_the_newest() {
    let world = World::start().await;
    let order = world.assigned_order().await;
    let p = &world.pharmacy;
    let mut vendor = connect_greeted(&world.vendor_url(p), "initial_state").await;
    let mut driver = connect_greeted(&world.driver_url(p), "connected").await;
    let at = |minutes_ago: i64| {
        (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let batch = |fixes: &[(f64, i64)]| {
        let fixes: Vec<Value> = fixes
            .iter()
            .map(|(lat, ago)| serde_json::json!({"latitude": lat, "longitude": 13.4, "recorded_at": at(*ago)}))
            .collect();
        serde_json::json!({"type": "locations", "fixes": fixes})
    };

    send_json(&mut driver, batch(&[(52.52, 5), (52.53, 1), (52.51, 10)])).await;
    let seen = next_of(&mut vendor, "driver_location").await;
    assert_eq!(seen["latitude"], 52.53);
    assert_eq!(seen["order_id"], order.id.to_string());
    // Older than the position: stored, not shown.
    send_json(&mut driver, batch(&[(52.515, 7)])).await;
    // Refused batches are explained field by field.
    send_json(&mut driver, batch(&[(52.5, 1), (52.5, 25 * 60)])).await;
    let refused = next_of(&mut driver, "error").await;
    assert_eq!(refused["code"], "validation_failed");
    assert_eq!(refused["errors"][0]["field"], "fixes[1].recorded_at");
    assert_eq!(quiet(&mut vendor).await, Ok(()));

    let recorded = world.recent_latitudes(p.driver.id).await;
    assert_eq!(recorded, [52.51, 52.515, 52.52, 52.53]);
    let stored = world.medex.get_driver(&p.owner, p.driver.id).await.unwrap();
    assert_eq!(stored.current_latitude, Some(52.53));
}

/// A run of two orders (DESIGN §14): each tracker gets its own ETA through the stops before its
/// customer's and the count of those stops, and nothing of the other order.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn each_tracker_of_a_run_hears_its_own_eta_and_stops_before() {
    let world = World::start().await;
    let p = &world.pharmacy;
    world
        .medex
        .update_vendor(
            &p.owner,
            p.vendor.id,
            medex_core::service::VendorPatch {
                max_active_orders: Some(2),
                ..Default::default()
            },
        )
        .await
        .unwrap();
    let first = world.kit.order_in(OrderStatus::OutForDelivery).await;
    let second = world.kit.order_in(OrderStatus::OutForDelivery).await;
    let mut trackers = Vec::new();
    for order in [&first, &second] {
        let mut tracker = connect(&world.tracking_url(order)).await;
        assert_eq!(next_json(&mut tracker).await["type"], "initial_state");
        trackers.push(tracker);
    }
    let mut driver = connect(&world.driver_url(p)).await;
    assert_eq!(next_json(&mut driver).await["type"], "connected");
    send_json(&mut driver, fix(52.521, 13.401)).await;
    let mut before = Vec::new();
    for (tracker, other) in trackers.iter_mut().zip([&second, &first]) {
        let seen = next_of(tracker, "driver_location").await;
        assert_eq!(
            keys(&seen),
            [
                "eta_minutes",
                "latitude",
                "longitude",
                "recorded_at",
                "sent_at",
                "stops_before",
                "type"
            ],
            "{seen}"
        );
        assert!(!seen.to_string().contains(&other.tracking_token));
        before.push((
            seen["stops_before"].as_u64().unwrap(),
            seen["eta_minutes"].as_f64().unwrap(),
        ));
    }
    // Both go to the same address: one is first, the other one stop later, not sooner.
    before.sort_by_key(|(n, _)| *n);
    assert_eq!((before[0].0, before[1].0), (0, 1), "{before:?}");
    assert!(before[0].1 <= before[1].1, "{before:?}");
}

/// Every text message until the socket stays quiet.
async fn drain(client: &mut Client) -> Vec<Value> {
    let mut seen = Vec::new();
    while let Err(message) = quiet(client).await {
        seen.push(message);
    }
    seen
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn arrivals_reach_the_pharmacy_and_only_arriving_reaches_the_customer() {
    let world = World::start().await;
    let p = &world.pharmacy;
    let order = world.kit.order_in(OrderStatus::OutForDelivery).await;
    let door = order.delivery_location().unwrap();
    let mut vendor = connect_greeted(&world.vendor_url(p), "initial_state").await;
    let mut tracker = connect_greeted(&world.tracking_url(&order), "initial_state").await;
    let mut driver = connect_greeted(&world.driver_url(p), "connected").await;

    // Half a minute parked at the door, as the device recorded it, then off 300 m north.
    let now = chrono::Utc::now();
    for (seconds_ago, north_m) in [(30, 10.0), (20, -15.0), (10, 20.0), (0, 5.0)] {
        let mut at = fix(door.latitude() + north_m / 111_320.0, door.longitude());
        at["recorded_at"] = (now - chrono::Duration::seconds(seconds_ago))
            .to_rfc3339()
            .into();
        send_json(&mut driver, at).await;
    }
    let arriving = next_of(&mut vendor, "driver_arriving").await;
    assert_eq!(arriving["order_id"], order.id.to_string());
    assert_eq!(arriving["order_number"], order.order_number);
    assert_eq!(arriving["driver_id"], p.driver.id.to_string());
    let arrived = next_of(&mut vendor, "driver_arrived").await;
    assert_eq!(arrived["order_id"], order.id.to_string());
    send_json(
        &mut driver,
        fix(door.latitude() + 300.0 / 111_320.0, door.longitude()),
    )
    .await;
    let departed = next_of(&mut vendor, "driver_departed").await;
    assert_eq!(departed["order_id"], order.id.to_string());

    let heard: Vec<Value> = drain(&mut tracker)
        .await
        .into_iter()
        .filter(|m| m["type"] != "driver_location")
        .collect();
    assert_eq!(
        heard.len(),
        1,
        "the customer hears arriving only: {heard:?}"
    );
    assert_eq!(heard[0]["type"], "driver_arriving");
    assert_eq!(
        keys(&heard[0]),
        ["eta_minutes", "sent_at", "type"],
        "nothing of the driver or of other stops: {}",
        heard[0]
    );
    let stored = world.medex.get_order(&p.owner, order.id).await.unwrap();
    assert!(stored.driver_arriving_at.is_some() && stored.driver_arrived_at.is_some());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn late_risk_reaches_the_pharmacy_once_and_not_the_customer() {
    let world = World::start().await;
    let p = &world.pharmacy;
    let placed = world
        .medex
        .create_order(
            &world.kit.customers[0],
            NewOrder {
                schedule: Schedule {
                    deliver_before: Some(chrono::Utc::now() + chrono::Duration::minutes(10)),
                    ..Schedule::default()
                },
                ..medex_core::testkit::new_order(world.kit.vendor_a_id)
            },
        )
        .await
        .unwrap();
    let order = world
        .kit
        .move_to(placed.id, OrderStatus::OutForDelivery, 0)
        .await;
    let mut vendor = connect_greeted(&world.vendor_url(p), "initial_state").await;
    let mut tracker = connect_greeted(&world.tracking_url(&order), "initial_state").await;
    let mut driver = connect_greeted(&world.driver_url(p), "connected").await;

    // 40 km out: not there within ten minutes, however often it says so.
    send_json(&mut driver, fix(52.88, 13.42)).await;
    send_json(&mut driver, fix(52.881, 13.42)).await;
    let late = next_of(&mut vendor, "late_risk").await;
    assert_eq!(late["order_id"], order.id.to_string());
    assert!(late["late_risk_at"].is_string(), "{late}");
    let again: Vec<Value> = drain(&mut vendor)
        .await
        .into_iter()
        .filter(|m| m["type"] == "late_risk")
        .collect();
    assert_eq!(again, Vec::<Value>::new(), "raised once");
    let heard: Vec<Value> = drain(&mut tracker)
        .await
        .into_iter()
        .filter(|m| m["type"] != "driver_location")
        .collect();
    assert_eq!(heard, Vec::<Value>::new(), "the customer is not told");
}
