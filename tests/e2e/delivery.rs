//! One delivery through the composed server, over real HTTP and WebSocket connections: every
//! party sees every message meant for it, in order, and nothing meant for others. The first
//! attempt fails at the door, the parcel comes back to the pharmacy, and a second attempt
//! delivers it against the recipient's handover code.

use serde_json::{Value, json};
use sha2::Digest as _;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

/// What the driver writes about the failed attempt: it names people, so it must never reach the
/// public.
const NOTE: &str = "Mrs Miller next door says Ann is at St. Hedwig hospital";

fn location(latitude: f64, longitude: f64) -> Value {
    json!({"type": "location", "latitude": latitude, "longitude": longitude,
           "speed": 18.5, "heading": 300.0, "accuracy": 8.0})
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn one_delivery_seen_by_every_party_and_by_nobody_else() {
    let w = World::new().await;
    let s = &w.server;
    let vendor_path = |id: &str, token: &str| s.ws_url(&format!("/ws/vendor/{id}?token={token}"));

    // The pharmacy's dashboard, an admin watching the same pharmacy, another pharmacy's
    // dashboard and the driver's app connect before anything happens.
    let mut dashboard = Socket::connect(
        &vendor_path(&w.vendor.id, &w.vendor.owner.token),
        "vendor dashboard",
    )
    .await;
    let initial = dashboard.expect("initial_state").await;
    assert_eq!(initial["vendor_id"], w.vendor.id.as_str());
    assert_eq!(initial["drivers"].as_array().map(Vec::len), Some(2));
    assert_eq!(initial["active_orders"], json!([]));
    let mut admin = Socket::connect(&vendor_path(&w.vendor.id, &w.admin.token), "admin").await;
    admin.expect("initial_state").await;
    let mut stranger = Socket::connect(
        &vendor_path(&w.other_vendor.id, &w.other_vendor.owner.token),
        "other pharmacy's dashboard",
    )
    .await;
    let initial = stranger.expect("initial_state").await;
    assert_eq!(initial["drivers"].as_array().map(Vec::len), Some(1));
    let mut app = Socket::connect(
        &s.ws_url(&format!("/ws/driver?token={}", w.driver.who.token)),
        "driver app",
    )
    .await;
    let connected = app.expect("connected").await;
    assert_eq!(connected["driver_id"], w.driver.id.as_str());
    assert_eq!(connected["vendor_id"], w.vendor.id.as_str());
    assert_eq!(connected["status"], "offline");
    assert_eq!(connected["active_order"], Value::Null);

    // 1. The driver goes on duty.
    s.available(&w.driver).await;
    for socket in [&mut dashboard, &mut admin] {
        let status = socket.expect("driver_status").await;
        assert_eq!(status["driver_id"], w.driver.id.as_str());
        assert_eq!(status["status"], "available");
    }

    // 2. The customer orders, asking for a handover code at the door.
    let mut body = w.order_body();
    body["require_handover_code"] = json!(true);
    let r = s.post("/api/orders", Some(&w.customer.token), body).await;
    r.expect(201);
    assert_eq!(r.json["require_handover_code"], true);
    assert_eq!(r.json["attempt"], 1);
    let handover = r.str("handover_code");
    assert!(
        handover.len() == 6 && handover.bytes().all(|b| b.is_ascii_digit()),
        "{handover}"
    );
    let order = r.str("id");
    let token = r.str("tracking_token");
    let number = r.str("order_number");
    assert!(
        number.len() == 12
            && number.starts_with("ORD-")
            && number[4..]
                .chars()
                .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit()),
        "{number}"
    );
    assert!(token.len() >= 22, "{token}");
    assert_eq!(r.json["status"], "pending");
    let fee = r.json["delivery_fee"].as_f64().unwrap();
    let km = r.json["estimated_distance_km"].as_f64().unwrap();
    assert!(km > 0.5 && km < 2.0, "{km}");
    assert!(
        (fee - (km * 2.5 * 100.0).round() / 100.0).abs() < 0.011,
        "{fee} for {km} km"
    );
    for socket in [&mut dashboard, &mut admin] {
        let created = socket.expect("order_created").await;
        assert_eq!(created["order"]["id"], order.as_str());
        assert_eq!(created["order"]["status"], "pending");
        // The pharmacy needs the recipient's number; the public never gets it (below).
        assert_eq!(created["order"]["customer_phone"], RECIPIENT_PHONE);
        assert!(created["order"].get("handover_code").is_none(), "{created}");
    }

    // 3. The customer opens the tracking link.
    let mut tracker = Socket::connect(
        &s.ws_url(&format!("/ws/tracking/{token}")),
        "public tracker",
    )
    .await;
    let initial = tracker.expect("initial_state").await;
    assert_eq!(initial["order_number"], number.as_str());
    assert_eq!(initial["status"], "pending");
    assert_eq!(initial["vendor_name"], "Corner Pharmacy");
    assert_eq!(initial["driver"], Value::Null);

    // 4. The pharmacy accepts.
    w.set_status(&order, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);
    for socket in [&mut dashboard, &mut admin] {
        let status = socket.expect("order_status").await;
        assert_eq!(status["order_id"], order.as_str());
        assert_eq!(status["status"], "accepted");
        assert_eq!(status["previous_status"], "pending");
    }
    let status = tracker.expect("order_status").await;
    assert_eq!(status["status"], "accepted");
    assert!(status["accepted_at"].is_string());

    // 5. It assigns the driver, whose app is told.
    w.assign(&order, &w.driver).await.expect(200);
    for socket in [&mut dashboard, &mut admin] {
        let status = socket.expect("order_status").await;
        assert_eq!(status["status"], "driver_assigned");
        assert_eq!(status["driver_id"], w.driver.id.as_str());
        let busy = socket.expect("driver_status").await;
        assert_eq!(
            (busy["driver_id"].as_str(), busy["status"].as_str()),
            (Some(w.driver.id.as_str()), Some("busy"))
        );
    }
    let assignment = app.expect("assignment").await;
    assert_eq!(assignment["order_id"], order.as_str());
    assert_eq!(
        assignment["order"]["delivery_address"],
        "Torstrasse 1, Berlin"
    );
    assert_eq!(
        tracker.expect("order_status").await["status"],
        "driver_assigned"
    );

    // 6. The driver takes it and picks the parcel up.
    w.accept_assignment(&order, &w.driver).await.expect(200);
    w.set_status(&order, &w.driver.who.token, "picked_up")
        .await
        .expect(200);
    for socket in [&mut dashboard, &mut admin, &mut app] {
        let status = socket.expect("order_status").await;
        assert_eq!(status["status"], "picked_up");
        assert_eq!(status["previous_status"], "driver_assigned");
    }
    assert_eq!(tracker.expect("order_status").await["status"], "picked_up");

    // 7. Positions stream in over the driver's socket, with an ETA for pharmacy and customer.
    app.send_json(location(52.5250, 13.4080)).await;
    let mut first_eta = 0.0;
    for socket in [&mut dashboard, &mut admin] {
        let fix = socket.expect("driver_location").await;
        assert_eq!(fix["driver_id"], w.driver.id.as_str());
        assert_eq!(fix["order_id"], order.as_str());
        assert_eq!(fix["order_status"], "picked_up");
        assert_eq!(
            (fix["latitude"].as_f64(), fix["speed"].as_f64()),
            (Some(52.525), Some(18.5))
        );
        first_eta = fix["eta_minutes"].as_f64().expect("an ETA");
        assert!(first_eta > 0.0);
    }
    let public = tracker.expect("driver_location").await;
    assert_eq!(keys(&public), PUBLIC_FIX_FIELDS);
    assert_eq!(public["eta_minutes"].as_f64(), Some(first_eta));

    // 8. Out for delivery; closer, so a shorter ETA.
    w.set_status(&order, &w.driver.who.token, "out_for_delivery")
        .await
        .expect(200);
    for socket in [&mut dashboard, &mut admin, &mut app] {
        assert_eq!(
            socket.expect("order_status").await["status"],
            "out_for_delivery"
        );
    }
    assert_eq!(
        tracker.expect("order_status").await["status"],
        "out_for_delivery"
    );
    app.send_json(location(52.5280, 13.4030)).await;
    for socket in [&mut dashboard, &mut admin] {
        // Under two minutes out: the driver is arriving, told once.
        let (fix, arriving) = socket.expect_fix_and_arriving().await;
        assert_eq!(fix["order_status"], "out_for_delivery");
        assert!(fix["eta_minutes"].as_f64().unwrap() < first_eta, "{fix}");
        assert_eq!(arriving["order_id"], order.as_str());
        assert_eq!(arriving["driver_id"], w.driver.id.as_str());
        assert_eq!(arriving["eta_minutes"], fix["eta_minutes"]);
    }
    let (public, arriving) = tracker.expect_fix_and_arriving().await;
    assert!(public["eta_minutes"].as_f64().unwrap() < first_eta);
    assert_eq!(keys(&arriving), ["eta_minutes", "sent_at", "type"]);
    assert_eq!(arriving["eta_minutes"], public["eta_minutes"]);
    let view = s.public(&format!("/api/tracking/{token}")).await;
    view.expect(200);
    assert_eq!(view.json["status"], "out_for_delivery");
    assert_eq!(view.json["driver"]["first_name"], "Dee");
    assert_eq!(view.json["driver"]["vehicle_type"], "bike");
    assert_eq!(view.json["driver"]["location"]["latitude"], 52.528);
    assert_eq!(view.json["eta_minutes"], public["eta_minutes"]);
    let mut public_texts = vec![view.text.clone()];
    // A plain read is served without the router; one with a query string goes through it. Both
    // answer alike, carry a request id (the client's own when it sent one) and are counted.
    let routed = s
        .public(&format!("/api/tracking/{token}?trail=false"))
        .await;
    routed.expect(200);
    assert_eq!(routed.text, view.text);
    let traced = s
        .raw(
            "GET",
            &format!("/api/tracking/{token}"),
            None,
            &[("x-request-id", "trace-me-42")],
            None,
        )
        .await;
    assert_eq!(traced.text, view.text);
    assert_eq!(traced.header("x-request-id"), Some("trace-me-42"));
    for reply in [&view, &routed] {
        assert_eq!(reply.header("content-type"), Some("application/json"));
        assert_eq!(reply.header("cache-control"), Some("no-store"));
        assert!(
            reply
                .header("x-request-id")
                .is_some_and(|id| id.len() >= 32)
        );
    }
    assert_tracking_counted(s, "200").await;

    // An unknown token is answered on the same path, in the API's error format, and counted.
    let unknown = s.public("/api/tracking/NoSuchToken00000000000").await;
    unknown.expect(404);
    assert_eq!(unknown.json["code"], "not_found");
    assert_eq!(unknown.header("cache-control"), Some("no-store"));
    assert!(unknown.header("x-request-id").is_some());
    assert_tracking_counted(s, "404").await;

    // 8a. At the door the recipient's code is asked for: a wrong one is refused and counted,
    // and nobody hears of it (each socket's next message below is a later one).
    let wrong = format!("{:06}", (handover.parse::<u32>().unwrap() + 1) % 1_000_000);
    let deliver = |code: &str| json!({"status": "delivered", "handover_code": code});
    let refused = s
        .patch(
            &format!("/api/orders/{order}"),
            &w.driver.who.token,
            deliver(&wrong),
        )
        .await;
    refused.expect(422);
    assert_eq!(refused.code(), "handover_code_invalid");
    let without = s
        .patch(
            &format!("/api/orders/{order}"),
            &w.driver.who.token,
            json!({"status": "delivered"}),
        )
        .await;
    without.expect(422);
    assert_eq!(without.code(), "handover_code_required");
    assert_eq!(s.stored_order(&order).await.handover_failures, 1);

    // 8b. Nobody is home: the driver reports the attempt failed, with a note naming people.
    let r = s
        .patch(
            &format!("/api/orders/{order}"),
            &w.driver.who.token,
            json!({"status": "failed", "reason": "other", "note": NOTE}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["status"], "failed");
    assert_eq!(r.json["failure_reason"], "other");
    assert!(r.json.get("handover_code").is_none(), "not for the driver");
    let mut driver_answers = vec![r.text.clone()];
    for socket in [&mut dashboard, &mut admin] {
        let status = socket.expect("order_status").await;
        assert_eq!(status["status"], "failed");
        assert_eq!(status["previous_status"], "out_for_delivery");
        assert_eq!(status["order"]["failure_reason"], "other");
        let entry = status["order"]["status_history"]
            .as_array()
            .unwrap()
            .last()
            .cloned();
        assert_eq!(entry.as_ref().map(|e| e["note"].clone()), Some(json!(NOTE)));
    }
    assert_eq!(app.expect("order_status").await["status"], "failed");
    let public = tracker.expect("order_status").await;
    assert_eq!(
        (
            &public["status"],
            &public["attempt_failed"],
            &public["attempt"]
        ),
        (&json!("failed"), &json!(true), &json!(1))
    );
    let view = s.public(&format!("/api/tracking/{token}")).await;
    view.expect(200);
    assert_eq!(view.json["status"], "failed");
    assert_eq!(view.json["attempt_failed"], true);
    assert_eq!(
        (&view.json["driver"], &view.json["eta_minutes"]),
        (&Value::Null, &Value::Null),
        "the public does not follow a driver on its way back"
    );
    public_texts.push(view.text.clone());
    // The driver still holds the parcel: still busy, still a party. Its position reaches the
    // pharmacy, not the public.
    assert_eq!(s.stored_driver(&w.driver.id).await.status.as_str(), "busy");
    app.send_json(location(52.5270, 13.4050)).await;
    for socket in [&mut dashboard, &mut admin] {
        let fix = socket.expect("driver_location").await;
        assert_eq!(fix["order_status"], "failed");
    }

    // 8c. The pharmacy confirms the parcel is back: the driver is free and paid nothing.
    w.set_status(&order, &w.vendor.owner.token, "returned")
        .await
        .expect(200);
    for socket in [&mut dashboard, &mut admin] {
        socket.expect_status_change("failed", "returned").await;
        let free = socket.expect("driver_status").await;
        assert_eq!(
            (free["driver_id"].as_str(), free["status"].as_str()),
            (Some(w.driver.id.as_str()), Some("available"))
        );
    }
    assert_eq!(app.expect("order_status").await["status"], "returned");
    let public = tracker.expect("order_status").await;
    assert_eq!(
        (&public["status"], &public["attempt_failed"]),
        (&json!("returned"), &json!(true))
    );
    let back = s.stored_driver(&w.driver.id).await;
    assert_eq!(
        (
            back.total_deliveries,
            back.active_order_id,
            back.status.as_str()
        ),
        (0, None, "available")
    );
    assert_eq!(back.total_earnings.to_decimal(), 0.0);

    // 8d. A second attempt: accepted again, assigned again, on its way again.
    let r = w
        .set_status(&order, &w.vendor.owner.token, "accepted")
        .await;
    r.expect(200);
    assert_eq!(
        (&r.json["attempt"], &r.json["driver_id"]),
        (&json!(2), &Value::Null)
    );
    for socket in [&mut dashboard, &mut admin] {
        let status = socket.expect_status_change("returned", "accepted").await;
        assert_eq!(status["order"]["attempt"], 2);
    }
    let public = tracker.expect("order_status").await;
    assert_eq!(
        (
            &public["status"],
            &public["attempt"],
            &public["attempt_failed"]
        ),
        (&json!("accepted"), &json!(2), &json!(false))
    );
    w.assign(&order, &w.driver).await.expect(200);
    for socket in [&mut dashboard, &mut admin] {
        assert_eq!(
            socket.expect("order_status").await["status"],
            "driver_assigned"
        );
        assert_eq!(socket.expect("driver_status").await["status"], "busy");
    }
    // The driver was no party between the return and the new assignment: nothing came.
    let assignment = app.expect("assignment").await;
    assert_eq!(assignment["order"]["attempt"], 2);
    assert!(assignment["order"].get("handover_code").is_none());
    assert_eq!(
        tracker.expect("order_status").await["status"],
        "driver_assigned"
    );
    w.accept_assignment(&order, &w.driver).await.expect(200);
    for (step, (latitude, longitude)) in [
        ("picked_up", (52.5260, 13.4070)),
        ("out_for_delivery", (52.5285, 13.4020)),
    ] {
        let r = w.set_status(&order, &w.driver.who.token, step).await;
        r.expect(200);
        driver_answers.push(r.text.clone());
        for socket in [&mut dashboard, &mut admin, &mut app] {
            assert_eq!(socket.expect("order_status").await["status"], step);
        }
        assert_eq!(tracker.expect("order_status").await["status"], step);
        app.send_json(location(latitude, longitude)).await;
        // A new attempt is a new approach to the door: arriving is told again, at the door.
        let at_the_door = step == "out_for_delivery";
        let mut fixes = Vec::new();
        for socket in [&mut dashboard, &mut admin, &mut tracker] {
            fixes.push(if at_the_door {
                socket.expect_fix_and_arriving().await.0
            } else {
                socket.expect("driver_location").await
            });
        }
        assert_eq!(
            (&fixes[0]["order_status"], &fixes[1]["order_status"]),
            (&json!(step), &json!(step))
        );
        assert!(
            fixes[2]["eta_minutes"].is_number(),
            "the public follows the driver again"
        );
    }
    // A photo at the door, kept with its digest.
    let photo = s
        .send(
            "POST",
            "/api/uploads/proof",
            Some(&w.driver.who.token),
            upload_body(&order, PNG),
        )
        .await;
    photo.expect(201);
    let photo_sha256 = hex(&sha2::Sha256::digest(PNG));
    assert_eq!(photo.str("sha256"), photo_sha256);

    // 9. Delivered against the code: everyone hears it, the tracker is closed normally.
    let r = s
        .patch(
            &format!("/api/orders/{order}"),
            &w.driver.who.token,
            deliver(&handover),
        )
        .await;
    r.expect(200);
    driver_answers.push(r.text.clone());
    assert_eq!(r.json["attempt"], 2);
    assert_eq!(r.json["proofs"][0]["sha256"], photo_sha256.as_str());
    assert!(r.json["delivered_at"].is_string());
    // Summed from the trail since pickup; these fixes came milliseconds apart, implying speeds
    // the summing ignores, so the sum is zero. What matters here is that it was computed.
    assert!(
        r.json["actual_distance_km"]
            .as_f64()
            .is_some_and(|km| km >= 0.0),
        "{}",
        r.text
    );
    for socket in [&mut dashboard, &mut admin] {
        assert_eq!(socket.expect("order_status").await["status"], "delivered");
        let free = socket.expect("driver_status").await;
        assert_eq!(free["status"], "available");
    }
    assert_eq!(app.expect("order_status").await["status"], "delivered");
    let (code, last) = tracker.closed().await;
    assert_eq!(code, CloseCode::Normal);
    assert_eq!(last.len(), 1, "{last:?}");
    assert_eq!(last[0]["type"], "order_status");
    assert_eq!(last[0]["status"], "delivered");
    assert!(last[0]["delivered_at"].is_string());

    // 10. Afterwards the link shows the final state without the driver, and a new tracker gets
    // it once and is closed.
    let view = s.public(&format!("/api/tracking/{token}")).await;
    view.expect(200);
    assert_eq!(view.json["status"], "delivered");
    assert_eq!(
        (&view.json["driver"], &view.json["eta_minutes"]),
        (&Value::Null, &Value::Null)
    );
    public_texts.push(view.text.clone());
    let mut late =
        Socket::connect(&s.ws_url(&format!("/ws/tracking/{token}")), "late tracker").await;
    assert_eq!(late.expect("initial_state").await["status"], "delivered");
    assert_eq!(late.closed().await.0, CloseCode::Normal);

    // 11. The customer reads the chain of custody.
    let mine = s
        .get(&format!("/api/orders/{order}"), &w.customer.token)
        .await;
    mine.expect(200);
    let custody: Vec<(String, String)> = mine.json["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            (
                c["status"].as_str().unwrap().to_owned(),
                c["actor_role"].as_str().unwrap().to_owned(),
            )
        })
        .collect();
    let expected = [
        ("pending", "user"),
        ("accepted", "vendor"),
        ("driver_assigned", "vendor"),
        ("picked_up", "driver"),
        ("out_for_delivery", "driver"),
        ("failed", "driver"),
        ("returned", "vendor"),
        ("accepted", "vendor"),
        ("driver_assigned", "vendor"),
        ("picked_up", "driver"),
        ("out_for_delivery", "driver"),
        ("delivered", "driver"),
    ]
    .map(|(a, b)| (a.to_owned(), b.to_owned()));
    assert_eq!(custody, expected);
    assert_eq!(
        mine.json["handover_code"],
        handover.as_str(),
        "the customer's code"
    );
    // The signed record checks out with nothing but its JSON and the published keys.
    let record = s
        .get(&format!("/api/orders/{order}/custody"), &w.customer.token)
        .await;
    record.expect(200);
    assert_eq!(record.json["verified"], true);
    assert_eq!(record.json["entries"], mine.json["status_history"]);
    let keys = s.public("/api/custody/keys").await;
    keys.expect(200);
    verify_custody(&record.json, &keys.json).expect("an independent check of the record");
    let entries = record.json["entries"].as_array().unwrap();
    let failed = &entries[5];
    assert_eq!(
        (&failed["reason"], &failed["note"]),
        (&json!("other"), &json!(NOTE))
    );
    assert_eq!(
        (
            &failed["location"]["latitude"],
            &failed["location"]["longitude"]
        ),
        (&json!("52.528000"), &json!("13.403000")),
        "where the driver last was"
    );
    assert_eq!(entries[6]["location"], Value::Null, "the pharmacy acted");
    assert_eq!(entries[11]["proof_sha256"], json!([photo_sha256]));
    let list = s.get("/api/orders", &w.customer.token).await;
    list.expect(200);
    assert_eq!(list.json[0]["id"], order.as_str());

    // 12. The driver is credited once; the pharmacy's report and the admin agree.
    let earnings = w.driver_earnings().await;
    earnings.expect(200);
    assert_eq!(earnings.json["total_deliveries"], 1);
    assert_eq!(earnings.json["total_earnings"].as_f64(), Some(fee));
    let deliveries = s
        .get(
            &format!("/api/drivers/{}/deliveries", w.driver.id),
            &w.driver.who.token,
        )
        .await;
    deliveries.expect(200);
    assert_eq!(deliveries.json.as_array().map(Vec::len), Some(1));
    let stored = s.stored_driver(&w.driver.id).await;
    assert_eq!((stored.total_deliveries, stored.active_order_id), (1, None));
    assert_eq!(stored.total_earnings.to_decimal(), fee);
    let day = &mine.json["delivered_at"].as_str().unwrap()[..10];
    let report = s
        .get(
            &format!(
                "/api/reports/vendors/{}?date={day}&tz=%2B00:00",
                w.vendor.id
            ),
            &w.vendor.owner.token,
        )
        .await;
    report.expect(200);
    assert_eq!(report.json["orders_delivered"], 1);
    assert_eq!(report.json["revenue"].as_f64(), Some(fee));
    assert_eq!(
        (&report.json["failed_attempts"], &report.json["returns"]),
        (&json!(1), &json!(1))
    );
    let mine_in_report = report.json["drivers"]
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["driver_id"] == w.driver.id.as_str())
        .cloned()
        .expect("the driver's figures");
    assert_eq!(
        (
            &mine_in_report["deliveries"],
            &mine_in_report["failed_attempts"],
            &mine_in_report["returns"]
        ),
        (&json!(1), &json!(1), &json!(1))
    );
    let csv = s
        .get(
            &format!(
                "/api/reports/vendors/{}?date={day}&tz=%2B00:00&format=csv",
                w.vendor.id
            ),
            &w.vendor.owner.token,
        )
        .await;
    csv.expect(200);
    assert!(
        csv.text
            .lines()
            .next()
            .is_some_and(|header| header.contains(r#""failed_attempts","returns""#)),
        "{}",
        csv.text
    );
    // The pharmacy reads the order, but never the code.
    let theirs = s
        .get(&format!("/api/orders/{order}"), &w.vendor.owner.token)
        .await;
    theirs.expect(200);
    assert!(theirs.json.get("handover_code").is_none());
    let seen_by_admin = s.get(&format!("/api/orders/{order}"), &w.admin.token).await;
    seen_by_admin.expect(200);
    assert_eq!(seen_by_admin.json, mine.json);

    // 13. Nothing else reached anyone: the next message on each socket is one caused now.
    s.available(&w.other_driver).await;
    let status = stranger.expect("driver_status").await;
    assert_eq!(status["driver_id"], w.other_driver.id.as_str());
    assert_eq!(
        stranger.seen.len(),
        2,
        "the other pharmacy heard: {:?}",
        stranger.seen
    );
    s.available(&w.second_driver).await;
    for socket in [&mut dashboard, &mut admin] {
        let status = socket.expect("driver_status").await;
        assert_eq!(status["driver_id"], w.second_driver.id.as_str());
    }
    app.send_json(json!({"type": "ping"})).await;
    app.expect("pong").await;

    // 14. The public saw no phone number, account id, e-mail, customer name, driver surname,
    // failure reason or note; no socket and no answer to the driver or the pharmacy carried the
    // handover code.
    for transcript in [
        dashboard.transcript(),
        admin.transcript(),
        stranger.transcript(),
        app.transcript(),
        tracker.transcript(),
        late.transcript(),
        theirs.text.clone(),
    ]
    .iter()
    .chain(&driver_answers)
    {
        assert!(
            !transcript.contains(&format!("\"{handover}\"")),
            "the handover code reached {transcript}"
        );
    }
    public_texts.push(tracker.transcript());
    public_texts.push(late.transcript());
    let secrets = [
        "B-MX 1",
        &w.customer.user_id,
        &w.customer.email,
        &w.driver.who.user_id,
        &w.driver.who.email,
        &w.driver.id,
        &w.vendor.owner.user_id,
        &w.vendor.owner.email,
        &w.vendor.id,
        &order,
        "phone",
        "user_id",
        "email",
        NOTE,
        "Miller",
        "hospital",
        "\"other\"",
        "reason",
        "note",
        &handover,
    ];
    for text in &public_texts {
        for secret in FIXED_PERSONAL_DETAILS.into_iter().chain(secrets) {
            assert!(
                !text.contains(secret),
                "the public saw {secret:?} in {text}"
            );
        }
    }
    // The same check on the pharmacy's own socket finds them: the assertion can fail.
    let private = dashboard.transcript();
    assert!(private.contains(RECIPIENT_PHONE) && private.contains(&w.customer.user_id));

    for socket in [dashboard, admin, stranger, app] {
        socket.close().await;
    }
    w.server.stop().await;
}

/// Asserts that /metrics counts a request to the tracking route answered `status`.
async fn assert_tracking_counted(s: &TestServer, status: &str) {
    let metrics = s.public("/metrics").await;
    let answered = format!(r#"status="{status}""#);
    assert!(
        metrics
            .text
            .lines()
            .any(|line| line.starts_with("medex_http_requests_total")
                && line.contains(r#"route="/api/tracking/{token}""#)
                && line.contains(&answered)),
        "{}",
        metrics.text
    );
}
