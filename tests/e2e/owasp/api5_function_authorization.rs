//! API5:2023 Broken Function Level Authorization: every documented operation, and every
//! WebSocket endpoint, called by every role — anonymous, customer, pharmacy, driver, admin —
//! on records that role could see, with the exact answer each gets. A 403 means the role may
//! never do this; it must change nothing. The table must cover the OpenAPI document exactly,
//! so a new endpoint cannot be added without deciding who may call it.

use std::collections::BTreeSet;

use serde_json::json;

use super::Scene;
use crate::support::*;

/// The answer for: anonymous, customer, pharmacy, driver, admin.
type Expect = [u16; 5];

/// A 101 for a WebSocket endpoint means the connection was accepted.
const UPGRADED: u16 = 101;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_operation_by_every_role() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let order = format!("/api/orders/{}", scene.work);
    let d = format!("/api/drivers/{}", w.driver.id);
    let v = format!("/api/vendors/{}", w.vendor.id);
    let rv = format!("/api/reports/vendors/{}", w.vendor.id);
    let json_body = |value: serde_json::Value| Body::Json(value);
    let none = || Body::Empty;

    // (documented path, concrete path, method, body, expected)
    let rows: Vec<(&str, String, &str, Body, Expect)> = vec![
        ("/", "/".into(), "GET", none(), [200; 5]),
        ("/api/health", "/api/health".into(), "GET", none(), [200; 5]),
        (
            "/api/tracking/{token}",
            format!("/api/tracking/{}", scene.work_token),
            "GET",
            none(),
            [200; 5],
        ),
        (
            "/api/auth/register",
            "/api/auth/register".into(),
            "POST",
            json_body(json!({"email": "new@example.test", "password": "short", "full_name": "N"})),
            [422; 5],
        ),
        (
            "/api/auth/login",
            "/api/auth/login".into(),
            "POST",
            json_body(json!({"email": w.customer.email, "password": PASSWORD})),
            [200; 5],
        ),
        (
            "/api/auth/refresh",
            "/api/auth/refresh".into(),
            "POST",
            json_body(json!({"refresh_token": "garbage"})),
            [401; 5],
        ),
        (
            "/api/auth/logout",
            "/api/auth/logout".into(),
            "POST",
            json_body(json!({"refresh_token": "garbage"})),
            [401; 5],
        ),
        (
            "/api/auth/me",
            "/api/auth/me".into(),
            "GET",
            none(),
            [401, 200, 200, 200, 200],
        ),
        (
            "/api/auth/password",
            "/api/auth/password".into(),
            "POST",
            json_body(
                json!({"current_password": "not-the-password", "new_password": "a new password"}),
            ),
            [401, 422, 422, 422, 422],
        ),
        (
            "/api/orders",
            "/api/orders".into(),
            "POST",
            json_body({
                let mut body = w.order_body();
                body["items"] = json!([]);
                body
            }),
            [401, 422, 403, 403, 422],
        ),
        (
            "/api/orders",
            "/api/orders".into(),
            "GET",
            none(),
            [401, 200, 200, 200, 200],
        ),
        (
            "/api/orders/{id}",
            order.clone(),
            "GET",
            none(),
            [401, 200, 200, 200, 200],
        ),
        (
            "/api/orders/{id}",
            order.clone(),
            "PATCH",
            json_body(json!({"status": "rejected", "reason": "no"})),
            [401, 403, 409, 403, 409],
        ),
        (
            "/api/orders/{id}/custody",
            format!("{order}/custody"),
            "GET",
            none(),
            [401, 200, 200, 200, 200],
        ),
        (
            "/api/custody/keys",
            "/api/custody/keys".into(),
            "GET",
            none(),
            [200; 5],
        ),
        (
            "/api/orders/{id}/assign-driver",
            format!("{order}/assign-driver"),
            "POST",
            json_body(json!({"driver_id": w.second_driver.id})),
            [401, 403, 409, 403, 409],
        ),
        // Suggestions: the work order is past pickup (409 for who may ask); the accepted one
        // is not its driver's (404) and is the customer's own (403).
        (
            "/api/orders/{id}/driver-suggestions",
            format!("{order}/driver-suggestions"),
            "GET",
            none(),
            [401, 403, 409, 403, 409],
        ),
        (
            "/api/orders/{id}/driver-suggestions",
            format!("/api/orders/{}/driver-suggestions", scene.accepted),
            "GET",
            none(),
            [401, 403, 200, 404, 200],
        ),
        (
            "/api/orders/{id}/assignment",
            format!("{order}/assignment"),
            "POST",
            json_body(json!({"action": "decline"})),
            [401, 403, 403, 409, 403],
        ),
        (
            "/api/drivers/register",
            "/api/drivers/register".into(),
            "POST",
            json_body(json!({"vendor_id": w.vendor.id, "email": "new@corner.test",
                             "password": "short", "full_name": "N", "vehicle_type": "car"})),
            [401, 403, 422, 403, 422],
        ),
        (
            "/api/drivers",
            "/api/drivers".into(),
            "GET",
            none(),
            [401, 403, 200, 403, 200],
        ),
        (
            "/api/drivers/{id}",
            d.clone(),
            "GET",
            none(),
            [401, 403, 200, 200, 200],
        ),
        (
            "/api/drivers/{id}",
            d.clone(),
            "PATCH",
            json_body(json!({"vehicle_number": "B-MX 1"})),
            [401, 403, 200, 200, 200],
        ),
        (
            "/api/drivers/{id}/status",
            format!("{d}/status"),
            "PATCH",
            json_body(json!({"status": "available"})),
            [401, 403, 409, 409, 409],
        ),
        (
            "/api/drivers/{id}/location",
            format!("{d}/location"),
            "POST",
            json_body(json!({"latitude": 52.52, "longitude": 13.40})),
            [401, 403, 403, 200, 200],
        ),
        (
            "/api/drivers/{id}/earnings",
            format!("{d}/earnings"),
            "GET",
            none(),
            [401, 403, 200, 200, 200],
        ),
        (
            "/api/drivers/{id}/deliveries",
            format!("{d}/deliveries"),
            "GET",
            none(),
            [401, 403, 200, 200, 200],
        ),
        (
            "/api/drivers/{id}/run",
            format!("{d}/run"),
            "GET",
            none(),
            [401, 403, 200, 200, 200],
        ),
        // Not the driver's run: the parties who may arrange it hear why (422).
        (
            "/api/drivers/{id}/run",
            format!("{d}/run"),
            "PUT",
            json_body(json!({"order_ids": [scene.work, scene.work]})),
            [401, 403, 422, 403, 422],
        ),
        (
            "/api/vendors/register",
            "/api/vendors/register".into(),
            "POST",
            json_body(json!({"email": "x@pharmacy.test", "password": "short",
                             "business_name": "X", "address": "Y", "latitude": 1.0,
                             "longitude": 1.0})),
            [422; 5],
        ),
        (
            "/api/vendors",
            "/api/vendors".into(),
            "GET",
            none(),
            [401, 200, 200, 200, 200],
        ),
        (
            "/api/vendors/{id}",
            v.clone(),
            "GET",
            none(),
            [401, 200, 200, 200, 200],
        ),
        (
            "/api/vendors/{id}",
            v.clone(),
            "PATCH",
            json_body(json!({"phone": VENDOR_PHONE})),
            [401, 403, 200, 403, 200],
        ),
        (
            "/api/vendors/{id}/orders",
            format!("{v}/orders"),
            "GET",
            none(),
            [401, 403, 200, 403, 200],
        ),
        (
            "/api/vendors/{id}/export-csv",
            format!("{v}/export-csv"),
            "POST",
            json_body(json!({})),
            [401, 403, 200, 403, 200],
        ),
        (
            "/api/vendors/{id}/api-keys",
            format!("{v}/api-keys"),
            "POST",
            json_body(json!({"name": "shop"})),
            [401, 403, 201, 403, 201],
        ),
        (
            "/api/vendors/{id}/api-keys",
            format!("{v}/api-keys"),
            "GET",
            none(),
            [401, 403, 200, 403, 200],
        ),
        (
            "/api/vendors/{id}/api-keys/{key_id}",
            format!("{v}/api-keys/{}", uuid::Uuid::now_v7()),
            "DELETE",
            none(),
            [401, 403, 404, 403, 404],
        ),
        (
            "/api/vendors/{id}/webhooks",
            format!("{v}/webhooks"),
            "POST",
            json_body(json!({"url": "https://shop.example.com/medex", "events": ["*"]})),
            [401, 403, 201, 403, 201],
        ),
        (
            "/api/vendors/{id}/webhooks",
            format!("{v}/webhooks"),
            "GET",
            none(),
            [401, 403, 200, 403, 200],
        ),
        (
            "/api/vendors/{id}/webhooks/{webhook_id}",
            format!("{v}/webhooks/{}", uuid::Uuid::now_v7()),
            "DELETE",
            none(),
            [401, 403, 404, 403, 404],
        ),
        (
            "/api/vendors/{id}/webhooks/{webhook_id}/rotate-secret",
            format!("{v}/webhooks/{}/rotate-secret", uuid::Uuid::now_v7()),
            "POST",
            none(),
            [401, 403, 404, 403, 404],
        ),
        (
            "/api/vendors/{id}/webhooks/{webhook_id}/deliveries",
            format!("{v}/webhooks/{}/deliveries", uuid::Uuid::now_v7()),
            "GET",
            none(),
            [401, 403, 404, 403, 404],
        ),
        (
            "/api/reports/vendors/{id}",
            rv.clone(),
            "GET",
            none(),
            [401, 403, 200, 403, 200],
        ),
        (
            "/api/reports/vendors/{id}/drivers",
            format!("{rv}/drivers"),
            "GET",
            none(),
            [401, 403, 200, 403, 200],
        ),
        (
            "/api/admin/users",
            "/api/admin/users".into(),
            "GET",
            none(),
            [401, 403, 403, 403, 200],
        ),
        (
            "/api/admin/users/{id}",
            format!("/api/admin/users/{}", w.customer.user_id),
            "PATCH",
            json_body(json!({"is_active": true})),
            [401, 403, 403, 403, 200],
        ),
        (
            "/api/admin/config",
            "/api/admin/config".into(),
            "GET",
            none(),
            [401, 403, 403, 403, 200],
        ),
        (
            "/api/admin/config",
            "/api/admin/config".into(),
            "PATCH",
            json_body(json!({"road_factor": 1.3})),
            [401, 403, 403, 403, 200],
        ),
        (
            "/api/uploads/proof",
            "/api/uploads/proof".into(),
            "POST",
            upload_body(&scene.work, PNG),
            [401, 403, 201, 201, 201],
        ),
        (
            "/api/uploads/signature",
            "/api/uploads/signature".into(),
            "POST",
            upload_body(&scene.work, PNG),
            [401, 403, 201, 201, 201],
        ),
        (
            "/api/uploads/{name}",
            format!("/api/uploads/{}", scene.work_upload),
            "GET",
            none(),
            [401, 200, 200, 200, 200],
        ),
        (
            "/api/webhooks/wc/order-created",
            format!("/api/webhooks/wc/order-created?vendor_id={}", w.vendor.id),
            "POST",
            json_body(json!({"id": 1})),
            [401; 5],
        ),
        // Last: the admin's cancellation ends the order the rows above use…
        (
            "/api/orders/{id}",
            order.clone(),
            "DELETE",
            none(),
            [401, 409, 409, 403, 200],
        ),
        // …and logging out everywhere ends every role's tokens.
        (
            "/api/auth/logout-all",
            "/api/auth/logout-all".into(),
            "POST",
            none(),
            [401, 204, 204, 204, 204],
        ),
    ];

    // The table covers the served document exactly.
    let doc = s.public("/api/openapi.json").await;
    doc.expect(200);
    let mut documented = BTreeSet::new();
    for (path, item) in doc.json["paths"].as_object().unwrap() {
        for method in item.as_object().unwrap().keys() {
            documented.insert((method.to_uppercase(), path.clone()));
        }
    }
    let tabled: BTreeSet<(String, String)> = rows
        .iter()
        .map(|(path, _, method, _, _)| ((*method).to_owned(), (*path).to_owned()))
        .collect();
    assert_eq!(
        tabled, documented,
        "the table and the OpenAPI document differ"
    );

    let roles: [(&str, Option<&str>); 5] = [
        ("anonymous", None),
        ("customer", Some(&w.customer.token)),
        ("pharmacy", Some(&w.vendor.owner.token)),
        ("driver", Some(&w.driver.who.token)),
        ("admin", Some(&w.admin.token)),
    ];
    // The sockets first: the table's last row ends every role's tokens.
    let sockets: [(String, Expect); 3] = [
        ("/ws/driver".into(), [401, 403, 403, UPGRADED, 403]),
        (
            format!("/ws/vendor/{}", w.vendor.id),
            [401, 403, UPGRADED, 403, UPGRADED],
        ),
        (format!("/ws/tracking/{}", scene.work_token), [UPGRADED; 5]),
    ];
    for (path, expected) in sockets {
        for ((role, token), status) in roles.iter().zip(expected) {
            let url = match token {
                Some(token) => s.ws_url(&format!("{path}?token={token}")),
                None => s.ws_url(&path),
            };
            if status == UPGRADED {
                Socket::connect(&url, role).await.close().await;
            } else {
                let (got, body) = ws_refused(&url).await;
                assert_eq!(got, status, "{role}: {path}: {body}");
                assert!(body["code"].is_string(), "{role}: {path}: {body}");
            }
        }
    }
    let mut refusals = 0;
    for (documented, path, method, body, expected) in &rows {
        for ((role, token), status) in roles.iter().zip(expected) {
            let case = format!("{role}: {method} {documented}");
            if *status == 401 || *status == 403 {
                let r = s
                    .refused(&case, method, path, *token, body.clone(), *status)
                    .await;
                if *status == 403 {
                    assert_eq!(r.code(), "forbidden", "{case}");
                    refusals += 1;
                }
            } else {
                let r = s.send(method, path, *token, body.clone()).await;
                assert_eq!(r.status.as_u16(), *status, "{case}: {}", r.text);
            }
        }
    }
    assert!(refusals >= 40, "{refusals} role refusals");

    // The WebSocket endpoints, by the same roles.
    scene.w.server.stop().await;
}
