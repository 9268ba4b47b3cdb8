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
