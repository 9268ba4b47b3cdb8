//! Bad input never reaches the use cases, never causes a 5xx: malformed JSON 400, wrong content
//! type 415, too large 413, too deep 400, wrong types or ranges 422. Mass assignment is ignored.

use serde_json::{Value, json};

use crate::access::concrete;
use crate::helpers::*;

/// Operations taking a JSON body, from the OpenAPI document.
fn json_operations() -> Vec<(String, String)> {
    let doc = serde_json::to_value(medex_http::openapi()).unwrap();
    let mut ops = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            // Webhooks check the signature of the raw body before reading it as JSON.
            if op["requestBody"]["content"]["application/json"].is_object()
                && !path.starts_with("/api/webhooks/")
            {
                ops.push((method.to_uppercase(), path.clone()));
            }
        }
    }
    ops
}

#[tokio::test]
async fn every_json_body_is_checked_before_use() {
    let w = World::new().await;
    let order = w.order().await;
    let ops = json_operations();
    assert!(ops.len() >= 17, "{} {ops:?}", ops.len());
    let oversized = format!("{{\"x\": \"{}\"}}", "a".repeat(70 * 1024));
    let deep = format!("{}{}", "[".repeat(40), "]".repeat(40));
    for (method, path) in &ops {
        let url = concrete(path, &w, &order, "t");
        let token = Some(w.admin.token.as_str());
        let cases: [(&str, Option<&str>, String, u16); 7] = [
            (
                "malformed",
                Some("application/json"),
                "{\"email\": ".into(),
                400,
            ),
            (
                "trailing garbage",
                Some("application/json"),
                "{} {}".into(),
                400,
            ),
            ("too deep", Some("application/json"), deep.clone(), 400),
            // serde reads a struct from an array too; a body must be an object.
            (
                "an array",
                Some("application/json"),
                "[null, null]".into(),
                422,
            ),
            ("text/plain", Some("text/plain"), "{\"a\": 1}".into(), 415),
            (
                "form",
                Some("application/x-www-form-urlencoded"),
                "a=1".into(),
                415,
            ),
            (
                "oversized",
                Some("application/json"),
                oversized.clone(),
                413,
            ),
        ];
        for (name, content_type, body, expected) in cases {
            let r = w.app.raw(method, &url, token, content_type, body).await;
            assert_eq!(
                r.status.as_u16(),
                expected,
                "{name}: {method} {path}: {}",
                r.text
            );
            r.assert_error_format();
        }
        // A missing content type with a body is 415 too.
        let r = w.app.raw(method, &url, token, None, "{\"a\": 1}").await;
        assert_eq!(
            r.status.as_u16(),
            415,
            "no content type: {method} {path}: {}",
            r.text
        );
    }
}

#[tokio::test]
async fn the_body_limit_is_exact() {
    let app = App::with_config(medex_http::HttpConfig {
        max_body_bytes: 1000,
        ..Default::default()
    })
    .await;
    let body = |size: usize| {
        let base = r#"{"email": "a@b.io", "password": "x", "pad": ""}"#;
        let pad = "p".repeat(size - base.len());
        format!(r#"{{"email": "a@b.io", "password": "x", "pad": "{pad}"}}"#)
    };
    assert_eq!(body(1000).len(), 1000);
    let r = sign_in_with(&app, body(1000)).await;
    r.expect(401);
    let r = sign_in_with(&app, body(1001)).await;
    r.expect(413);
}

#[tokio::test]
async fn wrong_types_and_ranges_are_422_naming_the_field() {
    let w = World::new().await;
    let order = w.order().await;
    let o = format!("/api/orders/{order}");
    let d = format!("/api/drivers/{}", w.driver.id);
    let v = format!("/api/vendors/{}", w.vendor.id);
    let admin = w.admin.token.as_str();
    let customer = w.customer.token.as_str();
    let vendor = w.vendor.owner.token.as_str();
    let driver = w.driver.who.token.as_str();
    let with = |patch: Value| {
        let mut body = w.order_body();
        for (k, v) in patch.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let reg =
        json!({"email": "new@x.io", "password": PASSWORD, "full_name": "N", "vehicle_type": "car"});
    // Most rows are one of three requests: a new order with one field changed, a call without
    // a token, a change of the configuration.
    let new_order = |patch: Value, field: &'static str| {
        (
            "POST",
            "/api/orders".into(),
            Some(customer),
            with(patch),
            field,
        )
    };
    let anonymous =
        |path: &str, body: Value, field: &'static str| ("POST", path.into(), None, body, field);
    let config_change = |body: Value, field: &'static str| {
        (
            "PATCH",
            "/api/admin/config".into(),
            Some(admin),
            body,
            field,
        )
    };
    let table: Vec<(&str, String, Option<&str>, Value, &str)> = vec![
        anonymous(
            "/api/auth/register",
            json!({"email": 5, "password": PASSWORD, "full_name": "A"}),
            "email",
        ),
        anonymous(
            "/api/auth/register",
            json!({"email": "a@b.io", "password": "short", "full_name": "A"}),
            "password",
        ),
        anonymous(
            "/api/auth/register",
            json!({"email": "not-an-email", "password": PASSWORD, "full_name": "A"}),
            "email",
        ),
        anonymous(
            "/api/auth/register",
            json!({"email": "a@b.io", "password": PASSWORD}),
            "body",
        ),
        anonymous(
            "/api/auth/login",
            json!({"email": [], "password": "x"}),
            "email",
        ),
        anonymous(
            "/api/auth/refresh",
            json!({"refresh_token": 1}),
            "refresh_token",
        ),
        anonymous(
            "/api/auth/logout",
            json!({"refresh_token": null}),
            "refresh_token",
        ),
        new_order(
            json!({"items": [{"name": "A", "quantity": "many"}]}),
            "items[0].quantity",
        ),
        new_order(
            json!({"items": [{"name": "A", "quantity": -1}]}),
            "items[0].quantity",
        ),
        new_order(
            json!({"items": [{"name": "A", "quantity": 1001}]}),
            "items[0].quantity",
        ),
        new_order(
            json!({"items": [{"name": "A", "quantity": 1.5}]}),
            "items[0].quantity",
        ),
        new_order(
            json!({"items": [{"name": "x".repeat(201), "quantity": 1}]}),
            "items[0].name",
        ),
        new_order(json!({"items": []}), "items"),
        new_order(json!({"delivery_latitude": 200.0}), "delivery_latitude"),
        new_order(json!({"delivery_longitude": "east"}), "delivery_longitude"),
        new_order(json!({"vendor_id": "nope"}), "vendor_id"),
        new_order(
            json!({"vendor_id": "01890000-0000-7000-8000-000000000000"}),
            "vendor_id",
        ),
        new_order(json!({"customer_name": "  "}), "customer_name"),
        new_order(json!({"customer_phone": "1\u{0}2"}), "customer_phone"),
        (
            "PATCH",
            o.clone(),
            Some(vendor),
            json!({"status": "flying"}),
            "status",
        ),
        (
            "PATCH",
            o.clone(),
            Some(vendor),
            json!({"status": "driver_assigned"}),
            "status",
        ),
        ("PATCH", o.clone(), Some(vendor), json!({}), "status"),
        (
            "POST",
            format!("{o}/assign-driver"),
            Some(vendor),
            json!({"driver_id": 7}),
            "driver_id",
        ),
        (
            "POST",
            format!("{o}/assignment"),
            Some(driver),
            json!({"action": "maybe"}),
            "action",
        ),
        (
            "POST",
            "/api/drivers/register".into(),
            Some(vendor),
            json!({"email": "n@x.io", "password": PASSWORD, "full_name": "N", "vehicle_type": "rocket"}),
            "vehicle_type",
        ),
        (
            "POST",
            "/api/drivers/register".into(),
            Some(admin),
            reg.clone(),
            "vendor_id",
        ),
        (
            "PATCH",
            d.clone(),
            Some(vendor),
            json!({"vehicle_type": 3}),
            "vehicle_type",
        ),
        (
            "PATCH",
            d.clone(),
            Some(vendor),
            json!({"full_name": ""}),
            "full_name",
        ),
        (
            "PATCH",
            format!("{d}/status"),
            Some(driver),
            json!({"status": "busy"}),
            "status",
        ),
        (
            "PATCH",
            format!("{d}/status"),
            Some(driver),
            json!({"status": "sleeping"}),
            "status",
        ),
        (
            "POST",
            format!("{d}/location"),
            Some(driver),
            json!({"latitude": "north", "longitude": 1.0}),
            "latitude",
        ),
        (
            "POST",
            format!("{d}/location"),
            Some(driver),
            json!({"latitude": 1.0, "longitude": 1.0, "speed": -5.0}),
            "speed",
        ),
        (
            "POST",
            format!("{d}/location"),
            Some(driver),
            json!({"latitude": 1.0, "longitude": 181.0}),
            "longitude",
        ),
        (
            "POST",
            format!("{d}/location"),
            Some(driver),
            json!({"latitude": 1.0, "longitude": 1.0, "recorded_at": "noon"}),
            "recorded_at",
        ),
        (
            "POST",
            "/api/vendors/register".into(),
            None,
            json!({"email": "p@x.io", "password": PASSWORD, "business_name": "P", "address": "A", "latitude": 100.0, "longitude": 1.0}),
            "latitude",
        ),
        (
            "PATCH",
            v.clone(),
            Some(vendor),
            json!({"require_signature": "yes"}),
            "require_signature",
        ),
        (
            "PATCH",
            v.clone(),
            Some(vendor),
            json!({"woocommerce_webhook_secret": "short"}),
            "woocommerce_webhook_secret",
        ),
        (
            "PATCH",
            v.clone(),
            Some(vendor),
            json!({"latitude": 1.0}),
            "latitude",
        ),
        (
            "POST",
            format!("{v}/export-csv"),
            Some(vendor),
            json!({"from": "yesterday"}),
            "from",
        ),
        (
            "POST",
            format!("{v}/export-csv"),
            Some(vendor),
            json!({"from": "2026-02-01", "to": "2026-01-01"}),
            "to",
        ),
        (
            "PATCH",
            format!("/api/admin/users/{}", w.customer.user_id),
            Some(admin),
            json!({"is_active": "no"}),
            "is_active",
        ),
        config_change(json!({"road_factor": 0.5}), "road_factor"),
        config_change(json!({"tariff": {"per_km": "x"}}), "tariff.per_km"),
        config_change(json!({"tariff": {"per_km": 1.234}}), "tariff.per_km"),
        config_change(json!([1]), "body"),
    ];
    for (method, path, token, body, field) in table {
        let r = w.app.call(method, &path, token, Some(body.clone())).await;
        assert_eq!(r.status.as_u16(), 422, "{method} {path} {body}: {}", r.text);
        r.assert_error_format();
        let fields: Vec<_> = r.json["errors"]
            .as_array()
            .unwrap_or_else(|| panic!("no errors: {}", r.text))
            .iter()
            .map(|e| e["field"].as_str().unwrap().to_owned())
            .collect();
        assert!(
            fields.iter().any(|f| f == field),
            "{method} {path} {body}: expected {field} in {fields:?}"
        );
    }
    // Nothing above was stored.
    assert_eq!(w.stored_order(&order).await.status, OrderStatus::Pending);
    assert_eq!(w.app.medex.config().road_factor, 1.3);
}

#[tokio::test]
async fn bad_query_parameters_are_422() {
    let w = World::new().await;
    let v = &w.vendor.id;
    let d = &w.driver.id;
    for path in [
        "/api/orders?status=flying".to_owned(),
        "/api/orders?limit=abc".to_owned(),
        "/api/orders?limit=201".to_owned(),
        "/api/orders?limit=0".to_owned(),
        "/api/orders?limit=-1".to_owned(),
        "/api/orders?cursor=xyz".to_owned(),
        "/api/orders?vendor_id=1".to_owned(),
        "/api/admin/users?role=king".to_owned(),
        "/api/admin/users?is_active=maybe".to_owned(),
        format!("/api/reports/vendors/{v}?tz=Mars"),
        format!("/api/reports/vendors/{v}?date=2026-13-01"),
        format!("/api/reports/vendors/{v}?format=pdf"),
        format!("/api/reports/vendors/{v}/drivers?from=2026-02-01&to=2026-01-01"),
        format!("/api/drivers/{d}/earnings?from=notadate"),
        format!("/api/vendors/{v}/orders?date=yesterday"),
    ] {
        let r = w.app.get(&path, &w.admin.token).await;
        assert_eq!(r.status.as_u16(), 422, "{path}: {}", r.text);
        r.assert_error_format();
    }
}

#[tokio::test]
async fn mass_assignment_is_ignored() {
    let w = World::new().await;
    let mut body = w.order_body();
    let sneaky = json!({
        "id": "01890000-0000-7000-8000-000000000001",
        "status": "delivered",
        "delivery_fee": 0.01,
        "driver_id": w.driver.id,
        "user_id": w.other_customer.user_id,
        "tracking_token": "chosen-by-me",
        "order_number": "ORD-MINE0001",
        "role": "admin",
        "proof_photo_url": "/etc/passwd",
        "status_history": [],
    });
    for (k, v) in sneaky.as_object().unwrap() {
        body[k] = v.clone();
    }
    let r = w
        .app
        .post("/api/orders", Some(&w.customer.token), body)
        .await;
    r.expect(201);
    let id = r.json["id"].as_str().unwrap();
    let stored = w.stored_order(id).await;
    assert_ne!(id, "01890000-0000-7000-8000-000000000001");
    assert_eq!(stored.status, OrderStatus::Pending);
    assert_ne!(stored.delivery_fee.cents(), 1);
    assert_eq!(stored.driver_id, None);
    assert_eq!(stored.user_id.to_string(), w.customer.user_id);
    assert_ne!(stored.tracking_token, "chosen-by-me");
    assert!(stored.tracking_token.len() >= 22);
    assert_ne!(stored.order_number, "ORD-MINE0001");
    assert_eq!(stored.proof_photo_url, None);
    assert_eq!(stored.status_history.len(), 1);

    // Registration: role, id and is_active cannot be chosen.
    let r = w
        .app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "eve@x.io", "password": PASSWORD, "full_name": "Eve",
                   "id": "01890000-0000-7000-8000-000000000002", "is_active": false,
                   "vendor_id": w.vendor.id}),
        )
        .await;
    r.expect(201);
    let me = w
        .app
        .get("/api/auth/me", r.json["access_token"].as_str().unwrap())
        .await;
    me.expect(200);
    assert_eq!(me.json["role"], "user");
    assert_eq!(me.json["is_active"], true);
    assert_eq!(me.json["vendor_id"], Value::Null);
    assert_ne!(me.json["id"], "01890000-0000-7000-8000-000000000002");

    // A driver patching its own profile cannot move fleets or credit itself.
    w.app
        .patch(
            &format!("/api/drivers/{}", w.driver.id),
            &w.driver.who.token,
            json!({"vendor_id": w.other_vendor.id, "total_earnings": 1000.0, "status": "busy",
                   "user_id": w.customer.user_id, "phone": "+1 555"}),
        )
        .await
        .expect(200);
    let driver = w.stored_driver(&w.driver).await;
    assert_eq!(driver.vendor_id.to_string(), w.vendor.id);
    assert_eq!(driver.total_earnings.cents(), 0);
    assert_eq!(driver.status, DriverStatus::Offline);
    assert_eq!(driver.phone.as_deref(), Some("+1 555"));
}

#[tokio::test]
async fn registering_another_role_is_refused() {
    let app = App::new().await;
    for (role, expected) in [
        ("admin", 403),
        ("vendor", 403),
        ("driver", 403),
        ("king", 422),
    ] {
        let r = app
            .post(
                "/api/auth/register",
                None,
                json!({"email": format!("{role}@x.io"), "password": PASSWORD, "full_name": "X", "role": role}),
            )
            .await;
        r.expect(expected);
        // Nothing was created.
        app.login(&format!("{role}@x.io"), PASSWORD)
            .await
            .expect(401);
    }
    app.post(
        "/api/auth/register",
        None,
        json!({"email": "u@x.io", "password": PASSWORD, "full_name": "X", "role": "user"}),
    )
    .await
    .expect(201);
}

/// Posts `body`, as JSON text, to the sign-in route.
async fn sign_in_with(app: &App, body: String) -> Reply {
    app.raw(
        "POST",
        "/api/auth/login",
        None,
        Some("application/json"),
        body,
    )
    .await
}
