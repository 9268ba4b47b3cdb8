//! API1:2023 Broken Object Level Authorization: every endpoint that takes an id, called with an
//! id that belongs to someone else. What an actor may not see is answered as not found (404):
//! nobody learns what exists beyond their reach, and nothing changes.

use serde_json::{Value, json};

use super::Scene;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn foreign_ids_are_not_found_and_change_nothing() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let work = format!("/api/orders/{}", scene.work);
    let pending = format!("/api/orders/{}", scene.pending);
    let d = format!("/api/drivers/{}", w.driver.id);
    let v = format!("/api/vendors/{}", w.vendor.id);
    let rv = format!("/api/reports/vendors/{}", w.vendor.id);
    let upload = format!("/api/uploads/{}", scene.work_upload);
    let other_customer = &w.other_customer.token;
    let other_vendor = &w.other_vendor.owner.token;
    let other_driver = &w.other_driver.who.token;
    let second_driver = &w.second_driver.who.token;
    let none = || Body::Empty;
    let fix = || Body::from(json!({"latitude": 52.52, "longitude": 13.40}));
    let new_driver = json!({"vendor_id": w.vendor.id, "email": "mole@other.test",
        "password": PASSWORD, "full_name": "Mole", "vehicle_type": "car"});

    // (case, actor, method, path, body, expected)
    let table: Vec<(&str, &str, &str, String, Body, u16)> = vec![
        // Another customer's order, another pharmacy's order, another driver's order.
        (
            "read: other customer",
            other_customer,
            "GET",
            work.clone(),
            none(),
            404,
        ),
        (
            "read: other pharmacy",
            other_vendor,
            "GET",
            work.clone(),
            none(),
            404,
        ),
        (
            "read: other fleet's driver",
            other_driver,
            "GET",
            work.clone(),
            none(),
            404,
        ),
        (
            "read: same fleet, not assigned",
            second_driver,
            "GET",
            work.clone(),
            none(),
            404,
        ),
        (
            "status: other driver",
            other_driver,
            "PATCH",
            work.clone(),
            json!({"status": "out_for_delivery"}).into(),
            404,
        ),
        (
            "status: same fleet, not assigned",
            second_driver,
            "PATCH",
            work.clone(),
            json!({"status": "out_for_delivery"}).into(),
            404,
        ),
        (
            "status: other pharmacy accepts",
            other_vendor,
            "PATCH",
            pending.clone(),
            json!({"status": "accepted"}).into(),
            404,
        ),
        (
            "status: other customer cancels",
            other_customer,
            "PATCH",
            pending.clone(),
            json!({"status": "cancelled"}).into(),
            404,
        ),
        (
            "location: other pharmacy edits the destination",
            other_vendor,
            "PATCH",
            pending.clone(),
            json!({"delivery_latitude": 52.0, "delivery_longitude": 13.0}).into(),
            404,
        ),
        (
            "cancel: other customer",
            other_customer,
            "DELETE",
            pending.clone(),
            none(),
            404,
        ),
        (
            "cancel: other pharmacy",
            other_vendor,
            "DELETE",
            pending.clone(),
            none(),
            404,
        ),
        (
            "failed attempt: same fleet, not assigned",
            second_driver,
            "PATCH",
            work.clone(),
            json!({"status": "failed", "reason": "refused"}).into(),
            404,
        ),
        (
            "return: other pharmacy",
            other_vendor,
            "PATCH",
            work.clone(),
            json!({"status": "returned"}).into(),
            404,
        ),
        (
            "custody record: other customer",
            other_customer,
            "GET",
            format!("{work}/custody"),
            none(),
            404,
        ),
        (
            "custody record: other pharmacy",
            other_vendor,
            "GET",
            format!("{work}/custody"),
            none(),
            404,
        ),
        (
            "custody record: same fleet, not assigned",
            second_driver,
            "GET",
            format!("{work}/custody"),
            none(),
            404,
        ),
        (
            "cancel: other driver",
            other_driver,
            "DELETE",
            work.clone(),
            none(),
            404,
        ),
        (
            "assign: other pharmacy, its own driver",
            other_vendor,
            "POST",
            format!("/api/orders/{}/assign-driver", scene.accepted),
            json!({"driver_id": w.other_driver.id}).into(),
            404,
        ),
        (
            "assign: own order, another fleet's driver",
            &w.vendor.owner.token,
            "POST",
            format!("/api/orders/{}/assign-driver", scene.accepted),
            json!({"driver_id": w.other_driver.id}).into(),
            422,
        ),
        (
            "assignment: other driver declines",
            other_driver,
            "POST",
            format!("{work}/assignment"),
            json!({"action": "decline"}).into(),
            404,
        ),
        (
            "assignment: same fleet, not assigned",
            second_driver,
            "POST",
            format!("{work}/assignment"),
            json!({"action": "decline"}).into(),
            404,
        ),
        // Another pharmacy's driver, another driver's profile, location, earnings, deliveries.
        (
            "driver: other pharmacy",
            other_vendor,
            "GET",
            d.clone(),
            none(),
            404,
        ),
        (
            "driver: other driver",
            other_driver,
            "GET",
            d.clone(),
            none(),
            404,
        ),
        (
            "driver: colleague",
            second_driver,
            "GET",
            d.clone(),
            none(),
            404,
        ),
        (
            "driver edit: other pharmacy",
            other_vendor,
            "PATCH",
            d.clone(),
            json!({"phone": "+1 555"}).into(),
            404,
        ),
        (
            "driver edit: colleague",
            second_driver,
            "PATCH",
            d.clone(),
            json!({"phone": "+1 555"}).into(),
            404,
        ),
        (
            "driver status: other pharmacy",
            other_vendor,
            "PATCH",
            format!("{d}/status"),
            json!({"status": "offline"}).into(),
            404,
        ),
        (
            "driver status: other driver",
            other_driver,
            "PATCH",
            format!("{d}/status"),
            json!({"status": "offline"}).into(),
            404,
        ),
        (
            "location: other driver",
            other_driver,
            "POST",
            format!("{d}/location"),
            fix(),
            404,
        ),
        (
            "location: colleague",
            second_driver,
            "POST",
            format!("{d}/location"),
            fix(),
            404,
        ),
        (
            "location: other pharmacy",
            other_vendor,
            "POST",
            format!("{d}/location"),
            fix(),
            404,
        ),
        (
            "earnings: other pharmacy",
            other_vendor,
            "GET",
            format!("{d}/earnings"),
            none(),
            404,
        ),
        (
            "earnings: other driver",
            other_driver,
            "GET",
            format!("{d}/earnings"),
            none(),
            404,
        ),
        (
            "earnings: colleague",
            second_driver,
            "GET",
            format!("{d}/earnings"),
            none(),
            404,
        ),
        (
            "deliveries: other pharmacy",
            other_vendor,
            "GET",
            format!("{d}/deliveries"),
            none(),
            404,
        ),
        (
            "deliveries: other driver",
            other_driver,
            "GET",
            format!("{d}/deliveries"),
            none(),
            404,
        ),
        (
            "deliveries: colleague",
            second_driver,
            "GET",
            format!("{d}/deliveries"),
            none(),
            404,
        ),
        (
            "fleet: other pharmacy lists it",
            other_vendor,
            "GET",
            format!("/api/drivers?vendor_id={}", w.vendor.id),
            none(),
            404,
        ),
        (
            "fleet: other pharmacy adds to it",
            other_vendor,
            "POST",
            "/api/drivers/register".into(),
            new_driver.into(),
            404,
        ),
        // Another pharmacy's profile, orders, export and reports.
        (
            "pharmacy edit: other pharmacy",
            other_vendor,
            "PATCH",
            v.clone(),
            json!({"phone": "+1 555"}).into(),
            404,
        ),
        (
            "pharmacy orders: other pharmacy",
            other_vendor,
            "GET",
            format!("{v}/orders"),
            none(),
            404,
        ),
        (
            "export: other pharmacy",
            other_vendor,
            "POST",
            format!("{v}/export-csv"),
            json!({}).into(),
            404,
        ),
        (
            "report: other pharmacy",
            other_vendor,
            "GET",
            rv.clone(),
            none(),
            404,
        ),
        (
            "driver report: other pharmacy",
            other_vendor,
            "GET",
            format!("{rv}/drivers"),
            none(),
            404,
        ),
        // Files of another order: reading them, and uploading onto the order.
        (
            "file: other customer",
            other_customer,
            "GET",
            upload.clone(),
            none(),
            404,
        ),
        (
            "file: other pharmacy",
            other_vendor,
            "GET",
            upload.clone(),
            none(),
            404,
        ),
        (
            "file: other driver",
            other_driver,
            "GET",
            upload.clone(),
            none(),
            404,
        ),
        (
            "file: colleague",
            second_driver,
            "GET",
            upload.clone(),
            none(),
            404,
        ),
        (
            "file: the other pharmacy's own name, by this customer",
            &w.customer.token,
            "GET",
            format!("/api/uploads/{}", scene.foreign_upload),
            none(),
            404,
        ),
        (
            "upload: other driver",
            other_driver,
            "POST",
            "/api/uploads/proof".into(),
            upload_body(&scene.work, PNG),
            404,
        ),
        (
            "upload: colleague",
            second_driver,
            "POST",
            "/api/uploads/signature".into(),
            upload_body(&scene.work, PNG),
            404,
        ),
        (
            "upload: other pharmacy",
            other_vendor,
            "POST",
            "/api/uploads/proof".into(),
            upload_body(&scene.work, PNG),
            404,
        ),
        (
            "upload: other customer",
            other_customer,
            "POST",
            "/api/uploads/proof".into(),
            upload_body(&scene.work, PNG),
            404,
        ),
    ];
    let count = table.len();
    for (case, token, method, path, body, expected) in table {
        let r = s
            .refused(case, method, &path, Some(token), body, expected)
            .await;
        assert_no_leak(case, &r.text, w);
    }
    assert!(count >= 45, "{count} cases");

    // List filters naming someone else's records find nothing, as if they did not exist.
    let lists: [(&str, &str, String); 4] = [
        (
            "orders of another pharmacy",
            other_vendor,
            format!("/api/orders?vendor_id={}", w.vendor.id),
        ),
        (
            "orders of another driver",
            other_driver,
            format!("/api/orders?driver_id={}", w.driver.id),
        ),
        (
            "orders of another pharmacy, as a customer",
            other_customer,
            format!("/api/orders?vendor_id={}", w.vendor.id),
        ),
        (
            "orders of a colleague",
            second_driver,
            format!("/api/orders?driver_id={}", w.driver.id),
        ),
    ];
    for (case, token, path) in lists {
        let r = s.get(&path, token).await;
        r.expect(200);
        assert_eq!(r.json, json!([]), "{case}");
    }

    // The same over WebSocket: another pharmacy's dashboard is not found.
    let (status, body) =
        ws_refused(&s.ws_url(&format!("/ws/vendor/{}?token={other_vendor}", w.vendor.id))).await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));

    // Positive control: the same requests by the owners succeed.
    s.get(&work, &w.customer.token).await.expect(200);
    s.get(&upload, &w.vendor.owner.token).await.expect(200);
    s.get(&format!("{d}/earnings"), &w.driver.who.token)
        .await
        .expect(200);
    scene.w.server.stop().await;
}

/// A refusal names no record: no id, phone or e-mail of the victim's side.
#[track_caller]
fn assert_no_leak(case: &str, text: &str, w: &World) {
    let json: Value = serde_json::from_str(text).unwrap_or(Value::Null);
    assert!(
        keys(&json)
            .iter()
            .all(|k| ["code", "detail", "errors"].contains(&k.as_str())),
        "{case}: only the error format: {text}"
    );
    for secret in [
        w.vendor.id.as_str(),
        w.driver.id.as_str(),
        &w.customer.user_id,
        &w.customer.email,
        RECIPIENT_PHONE,
        DRIVER_PHONE,
    ] {
        assert!(!text.contains(secret), "{case}: {secret} in {text}");
    }
}
