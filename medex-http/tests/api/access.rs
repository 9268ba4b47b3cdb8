//! Who may call what: no token → 401 on every authenticated endpoint (walked from the OpenAPI
//! document, so no endpoint is forgotten); wrong role → 403; someone else's record → 404.

use serde_json::{Value, json};

use crate::helpers::*;

/// Fills a documented path with ids of records that exist.
pub(crate) fn concrete(path: &str, w: &World, order: &str, token: &str) -> String {
    let id = if path.starts_with("/api/orders") {
        order.to_owned()
    } else if path.starts_with("/api/drivers") {
        w.driver.id.clone()
    } else if path.starts_with("/api/vendors") || path.starts_with("/api/reports") {
        w.vendor.id.clone()
    } else if path.starts_with("/api/admin/users") {
        w.customer.user_id.clone()
    } else {
        "00000000-0000-0000-0000-000000000000".to_owned()
    };
    path.replace("{id}", &id)
        .replace("{token}", token)
        .replace("{name}", "x.png")
}

#[tokio::test]
async fn every_secured_operation_refuses_a_missing_or_bad_token() {
    let w = World::new().await;
    let order = w.order().await;
    let doc = serde_json::to_value(medex_http::openapi()).unwrap();
    let mut checked = 0;
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            let secured = op.get("security").is_some();
            let url = concrete(path, &w, &order, "no-such-token");
            for token in [None, Some("not-a-jwt"), Some(w.customer.refresh.as_str())] {
                let r = w
                    .app
                    .call(&method.to_uppercase(), &url, token, Some(json!({})))
                    .await;
                if secured {
                    assert_eq!(
                        r.status.as_u16(),
                        401,
                        "{method} {path} with {token:?}: {}",
                        r.text
                    );
                    r.assert_error_format();
                    assert_eq!(r.header("www-authenticate"), Some("Bearer"));
                } else {
                    assert_ne!(
                        r.status.as_u16(),
                        401,
                        "{method} {path} is public: {}",
                        r.text
                    );
                }
            }
            checked += 1;
        }
    }
    assert!(checked >= 30, "only {checked} operations documented");
}

#[tokio::test]
async fn wrong_roles_get_403_and_strangers_get_404() {
    let w = World::new().await;
    let order = w.order().await;
    let o = format!("/api/orders/{order}");
    let d = format!("/api/drivers/{}", w.driver.id);
    let v = format!("/api/vendors/{}", w.vendor.id);
    let rv = format!("/api/reports/vendors/{}", w.vendor.id);
    let user = format!("/api/admin/users/{}", w.customer.user_id);
    let customer = w.customer.token.as_str();
    let other_customer = w.other_customer.token.as_str();
    let vendor = w.vendor.owner.token.as_str();
    let other_vendor = w.other_vendor.owner.token.as_str();
    let driver = w.driver.who.token.as_str();
    let other_driver = w.other_driver.who.token.as_str();
    let status = json!({"status": "accepted"});
    let none = Value::Null;
    let table: Vec<(&str, String, &str, Value, u16)> = vec![
        // orders
        ("POST", "/api/orders".into(), vendor, w.order_body(), 403),
        ("POST", "/api/orders".into(), driver, w.order_body(), 403),
        ("GET", o.clone(), other_customer, none.clone(), 404),
        ("GET", o.clone(), other_vendor, none.clone(), 404),
        ("GET", o.clone(), driver, none.clone(), 404),
        ("PATCH", o.clone(), customer, status.clone(), 403),
        ("PATCH", o.clone(), other_vendor, status.clone(), 404),
        ("PATCH", o.clone(), driver, status.clone(), 404),
        ("DELETE", o.clone(), other_customer, none.clone(), 404),
        ("DELETE", o.clone(), other_vendor, none.clone(), 404),
        (
            "POST",
            format!("{o}/assign-driver"),
            customer,
            json!({"driver_id": w.driver.id}),
            403,
        ),
        (
            "POST",
            format!("{o}/assign-driver"),
            other_vendor,
            json!({"driver_id": w.driver.id}),
            404,
        ),
        (
            "POST",
            format!("{o}/assignment"),
            customer,
            json!({"action": "decline"}),
            403,
        ),
        (
            "POST",
            format!("{o}/assignment"),
            driver,
            json!({"action": "decline"}),
            404,
        ),
        // drivers
        (
            "POST",
            "/api/drivers/register".into(),
            customer,
            json!({"email": "x@y.io", "password": PASSWORD, "full_name": "X", "vehicle_type": "car"}),
            403,
        ),
        (
            "POST",
            "/api/drivers/register".into(),
            driver,
            json!({"email": "x@y.io", "password": PASSWORD, "full_name": "X", "vehicle_type": "car"}),
            403,
        ),
        (
            "POST",
            "/api/drivers/register".into(),
            vendor,
            json!({"vendor_id": w.other_vendor.id, "email": "x@y.io", "password": PASSWORD,
                   "full_name": "X", "vehicle_type": "car"}),
            404,
        ),
        ("GET", "/api/drivers".into(), customer, none.clone(), 403),
        ("GET", "/api/drivers".into(), driver, none.clone(), 403),
        (
            "GET",
            format!("/api/drivers?vendor_id={}", w.other_vendor.id),
            vendor,
            none.clone(),
            404,
        ),
        ("GET", d.clone(), customer, none.clone(), 403),
        ("GET", d.clone(), other_vendor, none.clone(), 404),
        ("GET", d.clone(), other_driver, none.clone(), 404),
        ("PATCH", d.clone(), customer, json!({"full_name": "Z"}), 403),
        (
            "PATCH",
            d.clone(),
            other_vendor,
            json!({"full_name": "Z"}),
            404,
        ),
        (
            "PATCH",
            d.clone(),
            other_driver,
            json!({"full_name": "Z"}),
            404,
        ),
        ("PATCH", d.clone(), driver, json!({"is_active": false}), 403),
        (
            "PATCH",
            format!("{d}/status"),
            customer,
            json!({"status": "available"}),
            403,
        ),
        (
            "PATCH",
            format!("{d}/status"),
            other_driver,
            json!({"status": "available"}),
            404,
        ),
        (
            "PATCH",
            format!("{d}/status"),
            other_vendor,
            json!({"status": "available"}),
            404,
        ),
        (
            "POST",
            format!("{d}/location"),
            customer,
            json!({"latitude": 1.0, "longitude": 1.0}),
            403,
        ),
        (
            "POST",
            format!("{d}/location"),
            vendor,
            json!({"latitude": 1.0, "longitude": 1.0}),
            403,
        ),
        (
            "POST",
            format!("{d}/location"),
            other_vendor,
            json!({"latitude": 1.0, "longitude": 1.0}),
            404,
        ),
        (
            "POST",
            format!("{d}/location"),
            other_driver,
            json!({"latitude": 1.0, "longitude": 1.0}),
            404,
        ),
        ("GET", format!("{d}/earnings"), customer, none.clone(), 403),
        (
            "GET",
            format!("{d}/earnings"),
            other_vendor,
            none.clone(),
            404,
        ),
        (
            "GET",
            format!("{d}/earnings"),
            other_driver,
            none.clone(),
            404,
        ),
        (
            "GET",
            format!("{d}/deliveries"),
            customer,
            none.clone(),
            403,
        ),
        (
            "GET",
            format!("{d}/deliveries"),
            other_driver,
            none.clone(),
            404,
        ),
        // vendors
        ("PATCH", v.clone(), customer, json!({"phone": "1"}), 403),
        ("PATCH", v.clone(), driver, json!({"phone": "1"}), 403),
        ("PATCH", v.clone(), other_vendor, json!({"phone": "1"}), 404),
        ("PATCH", v.clone(), vendor, json!({"is_active": false}), 403),
        ("GET", format!("{v}/orders"), customer, none.clone(), 403),
        ("GET", format!("{v}/orders"), driver, none.clone(), 403),
        (
            "GET",
            format!("{v}/orders"),
            other_vendor,
            none.clone(),
            404,
        ),
        ("POST", format!("{v}/export-csv"), customer, json!({}), 403),
        (
            "POST",
            format!("{v}/export-csv"),
            other_vendor,
            json!({}),
            404,
        ),
        // reports
        ("GET", rv.clone(), customer, none.clone(), 403),
        ("GET", rv.clone(), driver, none.clone(), 403),
        ("GET", rv.clone(), other_vendor, none.clone(), 404),
        ("GET", format!("{rv}/drivers"), customer, none.clone(), 403),
        (
            "GET",
            format!("{rv}/drivers"),
            other_vendor,
            none.clone(),
            404,
        ),
        // admin
        ("GET", "/api/admin/users".into(), vendor, none.clone(), 403),
        (
            "GET",
            "/api/admin/users".into(),
            customer,
            none.clone(),
            403,
        ),
        (
            "PATCH",
            user.clone(),
            vendor,
            json!({"is_active": false}),
            403,
        ),
        (
            "PATCH",
            user.clone(),
            driver,
            json!({"is_active": false}),
            403,
        ),
        ("GET", "/api/admin/config".into(), driver, none.clone(), 403),
        (
            "PATCH",
            "/api/admin/config".into(),
            vendor,
            json!({"road_factor": 2.0}),
            403,
        ),
    ];
    for (method, path, token, body, expected) in table {
        let body = (!body.is_null()).then_some(body);
        let r = w.app.call(method, &path, Some(token), body).await;
        assert_eq!(r.status.as_u16(), expected, "{method} {path}: {}", r.text);
        r.assert_error_format();
    }
    // None of the refused calls changed the order.
    let stored = w.stored_order(&order).await;
    assert_eq!(stored.status, OrderStatus::Pending);
    assert_eq!(stored.driver_id, None);
}

#[tokio::test]
async fn unknown_ids_are_404_and_malformed_ids_are_422() {
    let w = World::new().await;
    let missing = "01890000-0000-7000-8000-000000000000";
    for path in [
        format!("/api/orders/{missing}"),
        format!("/api/drivers/{missing}"),
        format!("/api/vendors/{missing}"),
        format!("/api/reports/vendors/{missing}"),
        "/api/tracking/no-such-token".to_owned(),
    ] {
        let r = w.app.get(&path, &w.admin.token).await;
        r.expect(404);
    }
    for path in ["/api/orders/42", "/api/drivers/x", "/api/vendors/%00"] {
        w.app.get(path, &w.admin.token).await.expect(422);
    }
}

#[tokio::test]
async fn inactive_vendors_are_hidden_from_everyone_but_admins_and_themselves() {
    let w = World::new().await;
    w.app
        .patch(
            &format!("/api/vendors/{}", w.other_vendor.id),
            &w.admin.token,
            json!({"is_active": false}),
        )
        .await
        .expect(200);
    let path = format!("/api/vendors/{}", w.other_vendor.id);
    w.app.get(&path, &w.customer.token).await.expect(404);
    w.app.get(&path, &w.admin.token).await.expect(200);
    w.app
        .get(&path, &w.other_vendor.owner.token)
        .await
        .expect(200);
    let r = w.app.get("/api/vendors", &w.customer.token).await;
    r.expect(200);
    assert_eq!(r.json.as_array().unwrap().len(), 1);
    // Nobody orders from it.
    let mut body = w.order_body();
    body["vendor_id"] = json!(w.other_vendor.id);
    w.app
        .post("/api/orders", Some(&w.customer.token), body)
        .await
        .expect(422);
}
