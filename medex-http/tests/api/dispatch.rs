//! Dispatch (DESIGN §14): runs of several orders per driver, up to the pharmacy's
//! `max_active_orders`.

use serde_json::json;

use crate::helpers::*;

async fn set_limit(w: &World, limit: serde_json::Value) -> Reply {
    w.app
        .patch(
            &format!("/api/vendors/{}", w.vendor.id),
            &w.vendor.owner.token,
            json!({"max_active_orders": limit}),
        )
        .await
}

#[tokio::test]
async fn a_pharmacy_sets_how_many_orders_a_driver_holds_within_bounds() {
    let w = World::new().await;
    let vendor = format!("/api/vendors/{}", w.vendor.id);
    let own = w.app.get(&vendor, &w.vendor.owner.token).await;
    own.expect(200);
    assert_eq!(own.json["max_active_orders"], 1, "one at a time by default");
    let public = w.app.get(&vendor, &w.customer.token).await;
    assert!(public.json.get("max_active_orders").is_none(), "private");
    for bad in [json!(0), json!(31), json!(-1), json!(2.5), json!("two")] {
        let r = set_limit(&w, bad.clone()).await;
        r.expect(422);
        r.assert_error_format();
        assert_eq!(r.code(), "validation_failed", "{bad}");
    }
    set_limit(&w, json!(30)).await.expect(200);
    let r = set_limit(&w, json!(4)).await;
    r.expect(200);
    assert_eq!(r.json["max_active_orders"], 4);
    let other = w
        .app
        .patch(
            &format!("/api/vendors/{}", w.other_vendor.id),
            &w.vendor.owner.token,
            json!({"max_active_orders": 2}),
        )
        .await;
    other.expect(404);
    other.assert_error_format();
    let by_driver = w
        .app
        .patch(
            &vendor,
            &w.driver.who.token,
            json!({"max_active_orders": 2}),
        )
        .await;
    by_driver.expect(403);
    by_driver.assert_error_format();
}

#[tokio::test]
async fn a_driver_holds_a_run_and_is_free_after_its_last_order() {
    let w = World::new().await;
    let first = w.order_in("driver_assigned").await;
    let second = w.order_in("accepted").await;
    let third = w.order_in("accepted").await;
    let refused = w.assign(&second, &w.driver).await;
    refused.expect(409);
    assert_eq!(
        refused.code(),
        "driver_not_available",
        "one at a time by default"
    );

    set_limit(&w, json!(2)).await.expect(200);
    w.assign(&second, &w.driver).await.expect(200);
    let full = w.assign(&third, &w.driver).await;
    full.expect(409);
    assert_eq!(full.code(), "driver_not_available", "the run is full");
    let driver = format!("/api/drivers/{}", w.driver.id);
    let r = w.app.get(&driver, &w.vendor.owner.token).await;
    assert_eq!(r.json["status"], "busy");
    assert_eq!(r.json["active_order_id"], first.as_str());
    assert_eq!(r.json["active_order_ids"], json!([first, second]));

    for order in [&first, &second] {
        for step in ["picked_up", "out_for_delivery"] {
            w.set_status(order, &w.driver.who.token, step)
                .await
                .expect(200);
        }
    }
    w.set_status(&first, &w.driver.who.token, "delivered")
        .await
        .expect(200);
    let r = w.app.get(&driver, &w.vendor.owner.token).await;
    assert_eq!(r.json["status"], "busy", "one order is still on the way");
    assert_eq!(r.json["active_order_ids"], json!([second]));
    let offline = w
        .app
        .patch(
            &format!("{driver}/status"),
            &w.driver.who.token,
            json!({"status": "offline"}),
        )
        .await;
    offline.expect(409);
    w.set_status(&second, &w.driver.who.token, "delivered")
        .await
        .expect(200);
    let r = w.app.get(&driver, &w.vendor.owner.token).await;
    assert_eq!(r.json["status"], "available");
    assert_eq!(r.json["active_order_ids"], json!([]));
    assert!(r.json["active_order_id"].is_null());
    assert_eq!(r.json["total_deliveries"], 2);
}

/// An order of the customer to `(lat, lon)`, accepted and assigned to the world's driver.
async fn assigned_to(w: &World, lat: f64, lon: f64) -> String {
    let mut body = w.order_body();
    body["delivery_latitude"] = json!(lat);
    body["delivery_longitude"] = json!(lon);
    let r = w
        .app
        .post("/api/orders", Some(&w.customer.token), body)
        .await;
    r.expect(201);
    let id = r.json["id"].as_str().unwrap().to_owned();
    w.set_status(&id, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);
    w.assign(&id, &w.driver).await.expect(200);
    id
}

fn dropoffs(run: &serde_json::Value) -> Vec<String> {
    run["stops"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|s| s["kind"] == "dropoff")
        .map(|s| s["order_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn a_run_is_sequenced_and_a_pharmacy_may_fix_its_order_until_it_changes() {
    let w = World::new().await;
    set_limit(&w, json!(3)).await.expect(200);
    w.available(&w.driver).await;
    let path = format!("/api/drivers/{}/run", w.driver.id);
    let empty = w.app.get(&path, &w.driver.who.token).await;
    empty.expect(200);
    assert_eq!(empty.json["stops"], json!([]));
    assert_eq!(empty.json["total_km"], 0.0);

    // The pharmacy is where the registration helper puts it; the far order first, then the near.
    let far = assigned_to(&w, 52.56, 13.41).await;
    let near = assigned_to(&w, 52.53, 13.41).await;
    let r = w.app.get(&path, &w.driver.who.token).await;
    r.expect(200);
    let stops = r.json["stops"].as_array().unwrap();
    assert_eq!(stops.len(), 4, "{}", r.text);
    assert_eq!(stops[0]["kind"], "pickup");
    assert_eq!(stops[1]["kind"], "pickup");
    assert_eq!(
        dropoffs(&r.json),
        vec![near.clone(), far.clone()],
        "near first"
    );
    assert!(r.json["total_km"].as_f64().unwrap() > 0.0);
    assert!(r.json["total_minutes"].as_f64().unwrap() > 0.0);
    assert_eq!(r.json["manual"], false);
    for who in [&w.vendor.owner.token, &w.admin.token] {
        w.app.get(&path, who).await.expect(200);
    }

    // By hand: the far one first.
    let by_hand = json!({"order_ids": [far, near]});
    let r = w
        .app
        .call(
            "PUT",
            &path,
            Some(&w.vendor.owner.token),
            Some(by_hand.clone()),
        )
        .await;
    r.expect(200);
    assert_eq!(dropoffs(&r.json), vec![far.clone(), near.clone()]);
    assert_eq!(r.json["manual"], true);
    let r = w.app.get(&path, &w.driver.who.token).await;
    assert_eq!(dropoffs(&r.json), vec![far.clone(), near.clone()], "kept");
    // A stop done keeps the order; a new order in the run forgets it.
    w.set_status(&near, &w.driver.who.token, "picked_up")
        .await
        .expect(200);
    let r = w.app.get(&path, &w.driver.who.token).await;
    assert_eq!(r.json["manual"], true);
    let third = assigned_to(&w, 52.54, 13.41).await;
    let r = w.app.get(&path, &w.driver.who.token).await;
    assert_eq!(r.json["manual"], false);
    assert_eq!(dropoffs(&r.json).len(), 3);

    // Not exactly the run: 422.
    for body in [
        json!({"order_ids": [far, near]}),
        json!({"order_ids": [far, near, third, third]}),
        json!({"order_ids": [far, near, w.order().await]}),
        json!({"order_ids": []}),
        json!({"order_ids": ["not-a-uuid"]}),
        json!({"order_ids": "all"}),
        json!({}),
    ] {
        let r = w
            .app
            .call(
                "PUT",
                &path,
                Some(&w.vendor.owner.token),
                Some(body.clone()),
            )
            .await;
        r.expect(422);
        assert_eq!(r.code(), "validation_failed", "{body}");
    }
    // Who may: the driver reads but does not arrange; strangers see nothing.
    let all = json!({"order_ids": [third, far, near]});
    let r = w
        .app
        .call("PUT", &path, Some(&w.driver.who.token), Some(all.clone()))
        .await;
    r.expect(403);
    for (token, status) in [
        (&w.other_vendor.owner.token, 404),
        (&w.other_driver.who.token, 404),
        (&w.customer.token, 403),
    ] {
        w.app.get(&path, token).await.expect(status);
        w.app
            .call("PUT", &path, Some(token), Some(all.clone()))
            .await
            .expect(status);
    }
    let unknown = format!("/api/drivers/{}/run", uuid::Uuid::nil());
    w.app.get(&unknown, &w.admin.token).await.expect(404);
    w.app
        .get("/api/drivers/x/run", &w.admin.token)
        .await
        .expect(422);
    let r = w.app.call("GET", &path, None, None).await;
    r.expect(401);
    w.app
        .call("PUT", &path, Some(&w.admin.token), Some(all))
        .await
        .expect(200);
}

#[tokio::test]
async fn an_order_carries_its_window_and_bad_windows_are_422() {
    let w = World::new().await;
    let now = chrono::Utc::now();
    let rfc = |minutes: i64| (now + chrono::Duration::minutes(minutes)).to_rfc3339();
    let w = &w;
    let place = |extra: serde_json::Value| {
        let mut body = w.order_body();
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        async move {
            w.app
                .post("/api/orders", Some(&w.customer.token), body)
                .await
        }
    };
    for (bad, field) in [
        (
            json!({"deliver_after": rfc(90), "deliver_before": rfc(30)}),
            "deliver_before",
        ),
        (json!({"deliver_before": rfc(-10)}), "deliver_before"),
        (json!({"scheduled_for": rfc(60 * 24 * 40)}), "scheduled_for"),
        (json!({"deliver_before": "tomorrow"}), "deliver_before"),
        (json!({"deliver_after": 12}), "deliver_after"),
    ] {
        let r = place(bad.clone()).await;
        r.expect(422);
        assert_eq!(r.code(), "validation_failed", "{bad}");
        assert!(
            r.json["errors"]
                .as_array()
                .unwrap()
                .iter()
                .any(|e| e["field"] == field),
            "{bad}: {}",
            r.text
        );
    }
    let r = place(
        json!({"deliver_after": rfc(30), "deliver_before": rfc(90), "scheduled_for": rfc(20)}),
    )
    .await;
    r.expect(201);
    for key in ["deliver_after", "deliver_before", "scheduled_for"] {
        assert!(r.json[key].is_string(), "{key}: {}", r.text);
    }
    let id = r.json["id"].as_str().unwrap().to_owned();
    w.set_status(&id, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);
    w.available(&w.driver).await;
    let early = w.assign(&id, &w.driver).await;
    early.expect(409);
    assert_eq!(early.code(), "not_yet_scheduled");
    let plain = w.order().await;
    let r = w
        .app
        .get(&format!("/api/orders/{plain}"), &w.customer.token)
        .await;
    assert!(r.json["deliver_before"].is_null());
}

/// `courier` on duty at `lat`, 13.40 (the pharmacy is at 52.52, 13.40).
async fn on_duty_at(w: &World, courier: &Courier, lat: f64) {
    w.available(courier).await;
    w.app
        .post(
            &format!("/api/drivers/{}/location", courier.id),
            Some(&courier.who.token),
            json!({"latitude": lat, "longitude": 13.40}),
        )
        .await
        .expect(200);
}

fn suggestions_of(order: &str) -> String {
    format!("/api/orders/{order}/driver-suggestions")
}

fn suggested(r: &Reply) -> Vec<String> {
    r.json["suggestions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|s| s["driver_id"].as_str().unwrap().to_owned())
        .collect()
}

#[tokio::test]
async fn suggestions_rank_the_pharmacys_free_drivers_by_the_minutes_the_order_adds() {
    let w = World::new().await;
    on_duty_at(&w, &w.second_driver, 52.60).await;
    on_duty_at(&w, &w.driver, 52.521).await;
    let order = w.order_in("accepted").await;
    let url = suggestions_of(&order);
    let r = w.app.get(&url, &w.vendor.owner.token).await;
    r.expect(200);
    assert_eq!(
        suggested(&r),
        vec![w.driver.id.clone(), w.second_driver.id.clone()]
    );
    let (near, far) = (&r.json["suggestions"][0], &r.json["suggestions"][1]);
    assert_eq!(near["full_name"], "Dee Driver");
    assert_eq!(near["status"], "available");
    assert_eq!(near["run_size"], 0);
    for key in ["added_minutes", "eta_minutes", "distance_km"] {
        assert!(near[key].as_f64().unwrap() > 0.0, "{key}: {near}");
        assert!(
            far[key].as_f64().unwrap() > near[key].as_f64().unwrap(),
            "{key}: {far} after {near}"
        );
    }
    // The admin sees the same; the driver on a full run drops out once it takes the order.
    let by_admin = w.app.get(&url, &w.admin.token).await;
    by_admin.expect(200);
    assert_eq!(suggested(&by_admin), suggested(&r));
    let other = w.order_in("accepted").await;
    w.assign(&other, &w.driver).await.expect(200);
    let r = w.app.get(&url, &w.vendor.owner.token).await;
    r.expect(200);
    assert_eq!(suggested(&r), vec![w.second_driver.id.clone()]);
    // Nobody free: an empty list, not an error.
    w.app
        .patch(
            &format!("/api/drivers/{}/status", w.second_driver.id),
            &w.second_driver.who.token,
            json!({"status": "on_break"}),
        )
        .await
        .expect(200);
    let r = w.app.get(&url, &w.vendor.owner.token).await;
    r.expect(200);
    assert_eq!(r.json, json!({"suggestions": []}));
}

#[tokio::test]
async fn suggestions_refuse_strangers_and_orders_that_cannot_be_assigned_with_json_errors() {
    let w = World::new().await;
    let order = w.order_in("accepted").await;
    let url = suggestions_of(&order);
    let check = |r: Reply, status: u16, code: &str| {
        r.expect(status);
        r.assert_error_format();
        assert_eq!(r.code(), code, "{}", r.text);
    };
    check(w.app.public(&url).await, 401, "unauthenticated");
    check(w.app.get(&url, "not-a-token").await, 401, "unauthenticated");
    // The customer and the driver of the order know it exists; others must not learn it.
    check(w.app.get(&url, &w.customer.token).await, 403, "forbidden");
    for stranger in [
        &w.other_customer.token,
        &w.other_vendor.owner.token,
        &w.other_driver.who.token,
    ] {
        check(w.app.get(&url, stranger).await, 404, "not_found");
    }
    let unknown = suggestions_of("0190a0c4-0000-7000-8000-000000000000");
    check(
        w.app.get(&unknown, &w.vendor.owner.token).await,
        404,
        "not_found",
    );
    let r = w
        .app
        .get(&suggestions_of("not-a-uuid"), &w.vendor.owner.token)
        .await;
    r.expect(422);
    r.assert_error_format();
    // Its driver delivered it: a party, but not one who may ask.
    let delivered = w.order_in("delivered").await;
    check(
        w.app
            .get(&suggestions_of(&delivered), &w.driver.who.token)
            .await,
        403,
        "forbidden",
    );
    // Orders the pharmacy cannot assign now (the driver's one place is taken last).
    let mut not_now = vec![delivered];
    for status in ["pending", "cancelled", "picked_up"] {
        not_now.push(w.order_in(status).await);
    }
    for other in not_now {
        check(
            w.app
                .get(&suggestions_of(&other), &w.vendor.owner.token)
                .await,
            409,
            "invalid_transition",
        );
    }
}

#[tokio::test]
async fn a_pharmacy_that_assigns_automatically_has_accepted_orders_go_to_the_best_driver() {
    let w = World::new().await;
    let vendor = format!("/api/vendors/{}", w.vendor.id);
    let own = w.app.get(&vendor, &w.vendor.owner.token).await;
    assert_eq!(own.json["auto_assign"], false, "off by default");
    let public = w.app.get(&vendor, &w.customer.token).await;
    assert!(public.json.get("auto_assign").is_none(), "private");
    for bad in [json!("yes"), json!(1)] {
        let r = w
            .app
            .patch(&vendor, &w.vendor.owner.token, json!({"auto_assign": bad}))
            .await;
        r.expect(422);
        r.assert_error_format();
    }
    let r = w
        .app
        .patch(&vendor, &w.driver.who.token, json!({"auto_assign": true}))
        .await;
    r.expect(403);
    r.assert_error_format();
    let r = w
        .app
        .patch(
            &format!("/api/vendors/{}", w.other_vendor.id),
            &w.vendor.owner.token,
            json!({"auto_assign": true}),
        )
        .await;
    r.expect(404);
    r.assert_error_format();
    let r = w
        .app
        .patch(&vendor, &w.vendor.owner.token, json!({"auto_assign": true}))
        .await;
    r.expect(200);
    assert_eq!(r.json["auto_assign"], true);

    // Nobody on duty: the order stays accepted, and the acceptance answers 200.
    let waiting = w.order().await;
    let r = w
        .set_status(&waiting, &w.vendor.owner.token, "accepted")
        .await;
    r.expect(200);
    assert_eq!(r.json["status"], "accepted");
    assert!(r.json["driver_id"].is_null());

    on_duty_at(&w, &w.driver, 52.521).await;
    on_duty_at(&w, &w.second_driver, 52.60).await;
    let order = w.order().await;
    let r = w
        .set_status(&order, &w.vendor.owner.token, "accepted")
        .await;
    r.expect(200);
    assert_eq!(r.json["status"], "driver_assigned");
    assert_eq!(r.json["driver_id"], w.driver.id.as_str());
    // The driver still answers.
    w.app
        .post(
            &format!("/api/orders/{order}/assignment"),
            Some(&w.driver.who.token),
            json!({"action": "accept"}),
        )
        .await
        .expect(200);
    let stored = w.stored_order(&order).await;
    assert!(stored.driver_accepted_at.is_some());
}

#[test]
fn the_suggestions_are_documented_with_every_status_they_answer() {
    let doc = serde_json::to_value(medex_http::openapi()).unwrap();
    let op = &doc["paths"]["/api/orders/{id}/driver-suggestions"]["get"];
    let mut statuses: Vec<&str> = op["responses"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    statuses.sort();
    assert_eq!(
        statuses,
        ["200", "401", "403", "404", "409", "422", "503"],
        "{op}"
    );
    let id = &op["parameters"][0];
    assert_eq!(
        (id["in"].as_str(), id["required"].as_bool()),
        (Some("path"), Some(true))
    );
    assert_eq!(id["schema"]["format"], "uuid");
    let schema = &doc["components"]["schemas"]["SuggestionView"];
    for field in [
        "driver_id",
        "full_name",
        "status",
        "run_size",
        "added_minutes",
        "eta_minutes",
        "distance_km",
    ] {
        assert!(
            schema["required"]
                .as_array()
                .unwrap()
                .iter()
                .any(|f| f == field),
            "{field}: {schema}"
        );
    }
}
