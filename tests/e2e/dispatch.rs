//! A pharmacy's round through the composed server: one driver carries three orders, the run is
//! sequenced and shrinks stop by stop, one drop-off fails, and the driver is freed only when the
//! failed parcel is back at the pharmacy.

use serde_json::{Value, json};

use crate::support::*;

/// Three destinations north of the pharmacy's test location, placed far, near, middle.
const DOORS: [(f64, f64); 3] = [(52.545, 13.401), (52.527, 13.401), (52.536, 13.401)];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_round_of_three_orders_with_one_failed_drop_off() {
    let w = World::new().await;
    let s = &w.server;
    let owner = &w.vendor.owner.token;
    let driver = &w.driver.who.token;
    let run_path = format!("/api/drivers/{}/run", w.driver.id);
    s.patch(
        &format!("/api/vendors/{}", w.vendor.id),
        owner,
        json!({"max_active_orders": 3}),
    )
    .await
    .expect(200);
    s.available(&w.driver).await;

    let mut orders = Vec::new();
    for (latitude, longitude) in DOORS {
        let mut body = w.order_body();
        body["delivery_latitude"] = json!(latitude);
        body["delivery_longitude"] = json!(longitude);
        let r = s.post("/api/orders", Some(&w.customer.token), body).await;
        r.expect(201);
        let id = r.str("id");
        w.set_status(&id, owner, "accepted").await.expect(200);
        w.assign(&id, &w.driver).await.expect(200);
        w.accept_assignment(&id, &w.driver).await.expect(200);
        orders.push((id, r.str("tracking_token"), r.json["handover_code"].clone()));
    }
    // A fourth does not fit the run.
    let (fourth, _) = w.order().await;
    w.set_status(&fourth, owner, "accepted").await.expect(200);
    let full = w.assign(&fourth, &w.driver).await;
    full.expect(409);
    full.assert_error_format("a full run");

    // Sequenced near to far: the pickup, then the drop-offs by distance.
    let run = s.get(&run_path, driver).await;
    run.expect(200);
    let dropoffs = |run: &Value| -> Vec<String> {
        run["stops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|s| s["kind"] == "dropoff")
            .map(|s| s["order_id"].as_str().unwrap().to_owned())
            .collect()
    };
    let (far, near, middle) = (&orders[0], &orders[1], &orders[2]);
    assert_eq!(run.json["stops"][0]["kind"], "pickup");
    assert_eq!(
        dropoffs(&run.json),
        [near.0.clone(), middle.0.clone(), far.0.clone()]
    );
    // Each customer sees how many drop-offs come before theirs, and nothing else of them,
    // once the driver's position is known.
    s.post(
        &format!("/api/drivers/{}/location", w.driver.id),
        Some(driver),
        json!({"latitude": 52.5219, "longitude": 13.4132}),
    )
    .await
    .expect(200);
    let stops_before = |token: &str| {
        let path = format!("/api/tracking/{token}");
        async move {
            let view = s.public(&path).await;
            view.expect(200);
            view.json["stops_before"].clone()
        }
    };
    assert_eq!(stops_before(&far.1).await, json!(2));
    assert_eq!(stops_before(&near.1).await, json!(0));

    // Everything collected at the pharmacy; then the nearest door.
    for (id, _, _) in &orders {
        w.set_status(id, driver, "picked_up").await.expect(200);
        w.set_status(id, driver, "out_for_delivery")
            .await
            .expect(200);
    }
    let deliver = |id: &str, code: &Value| {
        let path = format!("/api/orders/{id}");
        let body = json!({"status": "delivered", "handover_code": code});
        async move { s.patch(&path, driver, body).await }
    };
    deliver(&near.0, &near.2).await.expect(200);
    let run = s.get(&run_path, driver).await;
    assert_eq!(dropoffs(&run.json), [middle.0.clone(), far.0.clone()]);
    assert_eq!(stops_before(&far.1).await, json!(1));
    assert_eq!(s.stored_driver(&w.driver.id).await.status.as_str(), "busy");

    // Nobody home at the middle door: that parcel has no stop until it is retried or returned.
    let failed = s
        .patch(
            &format!("/api/orders/{}", middle.0),
            driver,
            json!({"status": "failed", "reason": "recipient_absent"}),
        )
        .await;
    failed.expect(200);
    let run = s.get(&run_path, driver).await;
    assert_eq!(dropoffs(&run.json), std::slice::from_ref(&far.0));
    assert_eq!(stops_before(&far.1).await, json!(0));

    // The last one delivered: the driver still holds the failed parcel, so stays busy…
    deliver(&far.0, &far.2).await.expect(200);
    assert_eq!(s.stored_driver(&w.driver.id).await.status.as_str(), "busy");
    let run = s.get(&run_path, driver).await;
    run.expect(200);
    assert_eq!(dropoffs(&run.json), Vec::<String>::new());
    // …until the pharmacy has it back.
    w.set_status(&middle.0, owner, "returned").await.expect(200);
    let freed = s.stored_driver(&w.driver.id).await;
    assert_eq!(freed.status.as_str(), "available");
    assert!(freed.run().is_empty(), "{:?}", freed.run());
    for (id, status) in [
        (&near.0, "delivered"),
        (&middle.0, "returned"),
        (&far.0, "delivered"),
    ] {
        assert_eq!(s.stored_order(id).await.status.as_str(), status);
    }
    // The fourth now fits.
    w.assign(&fourth, &w.driver).await.expect(200);
}
