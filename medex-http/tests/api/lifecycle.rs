//! Every row of the lifecycle table (DESIGN §2), played through HTTP by the roles it names.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn a_whole_delivery_by_each_role() {
    let w = World::new().await;
    let order = w.order().await;
    let path = format!("/api/orders/{order}");

    // The customer sees its pending order with a computed fee and a first history entry.
    let r = w.app.get(&path, &w.customer.token).await;
    r.expect(200);
    assert_eq!(r.json["status"], "pending");
    assert!(r.json["delivery_fee"].as_f64().unwrap() > 0.0);
    assert!(r.json["order_number"].as_str().unwrap().starts_with("ORD-"));
    assert_eq!(r.json["status_history"].as_array().unwrap().len(), 1);

    // pending → accepted by the vendor, sets accepted_at.
    let r = w
        .set_status(&order, &w.vendor.owner.token, "accepted")
        .await;
    r.expect(200);
    assert!(r.json["accepted_at"].is_string());

    // accepted → driver_assigned: the driver must be available; it becomes busy.
    w.assign(&order, &w.driver).await.expect(409);
    w.available(&w.driver).await;
    let r = w.assign(&order, &w.driver).await;
    r.expect(200);
    assert_eq!(r.json["status"], "driver_assigned");
    assert_eq!(r.json["driver_id"], w.driver.id.as_str());
    assert_eq!(w.stored_driver(&w.driver).await.status, DriverStatus::Busy);

    // The assigned driver acknowledges.
    let r = w
        .app
        .post(
            &format!("{path}/assignment"),
            Some(&w.driver.who.token),
            json!({"action": "accept"}),
        )
        .await;
    r.expect(200);
    assert!(r.json["driver_accepted_at"].is_string());

    // Another driver of the same fleet is no party: the order looks absent.
    w.set_status(&order, &w.second_driver.who.token, "picked_up")
        .await
        .expect(404);
    // The customer may not move it.
    w.set_status(&order, &w.customer.token, "picked_up")
        .await
        .expect(403);

    for (status, stamp) in [
        ("picked_up", "picked_up_at"),
        ("out_for_delivery", "out_for_delivery_at"),
        ("delivered", "delivered_at"),
    ] {
        let r = w.set_status(&order, &w.driver.who.token, status).await;
        r.expect(200);
        assert_eq!(r.json["status"], status);
        assert!(r.json[stamp].is_string(), "{stamp}");
    }

    // Earnings credited exactly once; the driver is available again.
    let stored = w.stored_order(&order).await;
    let driver = w.stored_driver(&w.driver).await;
    assert_eq!(driver.total_earnings, stored.delivery_fee);
    assert_eq!(driver.total_deliveries, 1);
    assert_eq!(driver.status, DriverStatus::Available);
    let r = w.set_status(&order, &w.driver.who.token, "delivered").await;
    r.expect(409);
    assert_eq!(w.stored_driver(&w.driver).await.total_deliveries, 1);

    // The chain of custody names each actor and role.
    let r = w.app.get(&path, &w.admin.token).await;
    let roles: Vec<_> = r.json["status_history"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            format!(
                "{}:{}",
                c["status"].as_str().unwrap(),
                c["actor_role"].as_str().unwrap()
            )
        })
        .collect();
    assert_eq!(
        roles,
        [
            "pending:user",
            "accepted:vendor",
            "driver_assigned:vendor",
            "picked_up:driver",
            "out_for_delivery:driver",
            "delivered:driver"
        ]
    );

    // Terminal: nothing leaves delivered.
    for (token, status) in [
        (&w.vendor.owner.token, "cancelled"),
        (&w.admin.token, "cancelled"),
        (&w.vendor.owner.token, "accepted"),
    ] {
        let r = w.set_status(&order, token, status).await;
        r.expect(409);
        assert_eq!(r.code(), "invalid_transition");
    }

    // The driver still sees it among its deliveries.
    let r = w
        .app
        .get(
            &format!("/api/drivers/{}/deliveries", w.driver.id),
            &w.driver.who.token,
        )
        .await;
    r.expect(200);
    assert_eq!(r.json.as_array().unwrap().len(), 1);
}

#[tokio::test]
async fn admin_accepts_and_assigns_too() {
    let w = World::new().await;
    let order = w.order().await;
    w.set_status(&order, &w.admin.token, "accepted")
        .await
        .expect(200);
    w.available(&w.driver).await;
    w.app
        .post(
            &format!("/api/orders/{order}/assign-driver"),
            Some(&w.admin.token),
            json!({"driver_id": w.driver.id}),
        )
        .await
        .expect(200);
    // A driver of another fleet cannot be assigned.
    let other = w.order_in("accepted").await;
    w.available(&w.other_driver).await;
    let r = w
        .app
        .post(
            &format!("/api/orders/{other}/assign-driver"),
            Some(&w.admin.token),
            json!({"driver_id": w.other_driver.id}),
        )
        .await;
    r.expect(422);
}

#[tokio::test]
async fn rejecting_needs_a_reason_and_is_terminal() {
    let w = World::new().await;
    let order = w.order().await;
    let r = w
        .app
        .patch(
            &format!("/api/orders/{order}"),
            &w.vendor.owner.token,
            json!({"status": "rejected"}),
        )
        .await;
    r.expect(409);
    assert_eq!(r.code(), "reason_required");
    let r = w
        .app
        .patch(
            &format!("/api/orders/{order}"),
            &w.vendor.owner.token,
            json!({"status": "rejected", "reason": "out of stock"}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["reject_reason"], "out of stock");
    w.set_status(&order, &w.vendor.owner.token, "accepted")
        .await
        .expect(409);

    let order = w.order().await;
    w.set_status(&order, &w.admin.token, "rejected")
        .await
        .expect(200);
    // The customer and other vendors may not reject.
    let order = w.order().await;
    w.set_status(&order, &w.customer.token, "rejected")
        .await
        .expect(403);
    w.set_status(&order, &w.other_vendor.owner.token, "rejected")
        .await
        .expect(404);
}

#[tokio::test]
async fn decline_returns_the_order_and_frees_the_driver() {
    let w = World::new().await;
    let order = w.order_in("driver_assigned").await;
    let r = w
        .app
        .post(
            &format!("/api/orders/{order}/assignment"),
            Some(&w.driver.who.token),
            json!({"action": "decline", "reason": "flat tyre"}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["status"], "accepted");
    assert_eq!(
        w.stored_driver(&w.driver).await.status,
        DriverStatus::Available
    );
    // Declining again: no longer assigned, so the order is out of the driver's reach.
    let r = w
        .app
        .post(
            &format!("/api/orders/{order}/assignment"),
            Some(&w.driver.who.token),
            json!({"action": "decline"}),
        )
        .await;
    assert!(matches!(r.status.as_u16(), 404 | 409), "{}", r.text);
    r.assert_error_format();
}

#[tokio::test]
async fn reassigning_before_pickup_frees_the_old_driver() {
    let w = World::new().await;
    let order = w.order_in("driver_assigned").await;
    w.available(&w.second_driver).await;
    let r = w.assign(&order, &w.second_driver).await;
    r.expect(200);
    assert_eq!(r.json["driver_id"], w.second_driver.id.as_str());
    assert_eq!(
        w.stored_driver(&w.driver).await.status,
        DriverStatus::Available
    );
    assert_eq!(
        w.stored_driver(&w.second_driver).await.status,
        DriverStatus::Busy
    );
    // The old driver no longer sees it.
    w.app
        .get(&format!("/api/orders/{order}"), &w.driver.who.token)
        .await
        .expect(404);

    // After pickup, no re-assignment.
    w.set_status(&order, &w.second_driver.who.token, "picked_up")
        .await
        .expect(200);
    w.available(&w.driver).await;
    w.assign(&order, &w.driver).await.expect(409);
}

#[tokio::test]
async fn busy_drivers_cannot_be_assigned_nor_go_offline() {
    let w = World::new().await;
    let first = w.order_in("driver_assigned").await;
    let second = w.order_in("accepted").await;
    let r = w.assign(&second, &w.driver).await;
    r.expect(409);
    assert_eq!(r.code(), "driver_not_available");
    let r = w
        .app
        .patch(
            &format!("/api/drivers/{}/status", w.driver.id),
            &w.driver.who.token,
            json!({"status": "offline"}),
        )
        .await;
    r.expect(409);
    assert_eq!(r.code(), "driver_has_active_order");
    let _ = first;
}

#[tokio::test]
async fn cancellation_by_each_party_at_each_status() {
    let w = World::new().await;
    // (status, who, expected status code)
    let table: &[(&str, &str, u16)] = &[
        ("pending", "customer", 200),
        ("accepted", "customer", 200),
        ("driver_assigned", "customer", 409),
        ("picked_up", "customer", 409),
        ("out_for_delivery", "customer", 409),
        ("pending", "vendor", 200),
        ("accepted", "vendor", 200),
        ("driver_assigned", "vendor", 200),
        ("picked_up", "vendor", 409),
        ("out_for_delivery", "vendor", 409),
        ("pending", "admin", 200),
        ("driver_assigned", "admin", 200),
        ("picked_up", "admin", 200),
        ("out_for_delivery", "admin", 200),
        ("delivered", "admin", 409),
        ("rejected", "vendor", 409),
        ("cancelled", "customer", 409),
        ("pending", "other_customer", 404),
        ("pending", "other_vendor", 404),
        ("picked_up", "driver", 403),
    ];
    for &(status, who, expected) in table {
        let order = w.order_in(status).await;
        let token = match who {
            "customer" => &w.customer.token,
            "other_customer" => &w.other_customer.token,
            "vendor" => &w.vendor.owner.token,
            "other_vendor" => &w.other_vendor.owner.token,
            "admin" => &w.admin.token,
            "driver" => &w.driver.who.token,
            _ => unreachable!(),
        };
        let r = w
            .app
            .delete(
                &format!("/api/orders/{order}?reason=changed%20my%20mind"),
                token,
            )
            .await;
        assert_eq!(
            r.status.as_u16(),
            expected,
            "{who} cancelling at {status}: {}",
            r.text
        );
        if expected == 200 {
            assert_eq!(r.json["status"], "cancelled");
            assert_eq!(r.json["cancel_reason"], "changed my mind");
            // Any driver on it is free again.
            let driver = w.stored_driver(&w.driver).await;
            assert_ne!(driver.status, DriverStatus::Busy, "{who} at {status}");
        } else {
            r.assert_error_format();
            // A refused cancel leaves the order as it was.
            assert_eq!(w.stored_order(&order).await.status.as_str(), status);
        }
        // Free the driver for the next row.
        if let Ok(o) = w.app.store.order(order.parse().unwrap()).await
            && let Some(o) = o
            && !o.status.is_terminal()
        {
            w.app
                .delete(&format!("/api/orders/{order}"), &w.admin.token)
                .await
                .expect(200);
        }
    }
}

#[tokio::test]
async fn proof_policy_blocks_delivery_until_met() {
    let w = World::new().await;
    w.require_proofs().await;
    let order = w.order_in("out_for_delivery").await;
    let r = w.set_status(&order, &w.driver.who.token, "delivered").await;
    r.expect(409);
    assert_eq!(r.code(), "proof_missing");
    let detail = r.json["detail"].as_str().unwrap();
    assert!(
        detail.contains("proof_photo") && detail.contains("signature"),
        "{detail}"
    );
    // Nothing was credited.
    assert_eq!(w.stored_driver(&w.driver).await.total_deliveries, 0);
}

#[tokio::test]
async fn vendor_fixes_the_location_of_a_pending_order() {
    let w = World::new().await;
    // An order from the shop that arrived without a destination.
    w.with_secret().await;
    let body = include_bytes!("../fixtures/woocommerce-order.json");
    let taken = w
        .deliver_to(
            &format!("/api/webhooks/wc/order-created?vendor_id={}", w.vendor.id),
            Some("application/json"),
            body,
            &crate::webhooks::sign(crate::webhooks::SECRET, body),
        )
        .await;
    taken.expect(201);
    assert!(taken.json["delivery_latitude"].is_null());
    let order = taken.json["id"].as_str().unwrap().to_owned();
    let path = format!("/api/orders/{order}");
    // Both at once, half a location, one out of range or beyond the delivery radius: refused.
    for bad in [
        json!({"status": "accepted", "delivery_latitude": 1.0, "delivery_longitude": 1.0}),
        json!({"delivery_latitude": 1.0}),
        json!({"delivery_latitude": 91.0, "delivery_longitude": 1.0}),
        json!({"delivery_latitude": 1.0, "delivery_longitude": 1.0}),
    ] {
        w.app
            .patch(&path, &w.vendor.owner.token, bad)
            .await
            .expect(422);
    }
    // Other parties may not: a customer of its own order is refused, a stranger finds nothing.
    let own = w.order().await;
    w.app
        .patch(
            &format!("/api/orders/{own}"),
            &w.customer.token,
            json!({"delivery_latitude": 1.0, "delivery_longitude": 1.0}),
        )
        .await
        .expect(403);
    for stranger in [&w.customer.token, &w.other_vendor.owner.token] {
        w.app
            .patch(
                &path,
                stranger,
                json!({"delivery_latitude": 52.6, "delivery_longitude": 13.5}),
            )
            .await
            .expect(404);
    }
    let r = w
        .app
        .patch(
            &path,
            &w.vendor.owner.token,
            json!({"delivery_address": "10 Oak St", "delivery_latitude": 52.6, "delivery_longitude": 13.5}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["delivery_address"], "10 Oak St");
    assert_eq!(r.json["delivery_latitude"], 52.6);
    // Given once, it stays: the pharmacy cannot move it.
    let again = w
        .app
        .patch(
            &path,
            &w.vendor.owner.token,
            json!({"delivery_latitude": 52.61, "delivery_longitude": 13.5}),
        )
        .await;
    again.expect(409);
    assert_eq!(again.code(), "destination_already_set");
    // Once accepted, no more edits at all.
    w.set_status(&order, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);
    let r = w
        .app
        .patch(
            &path,
            &w.vendor.owner.token,
            json!({"delivery_latitude": 52.0, "delivery_longitude": 13.0}),
        )
        .await;
    r.expect(409);
    assert_eq!(r.code(), "not_editable");
}
