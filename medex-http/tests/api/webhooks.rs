//! The WooCommerce webhook: signatures, ping, idempotent intake, hostile payloads.

use base64::Engine;
use hmac::{Hmac, Mac};
use serde_json::{Value, json};
use sha2::Sha256;

use crate::helpers::*;

pub(crate) const SECRET: &str = "wc-shared-secret-0123456789";
const FIXTURE: &str = include_str!("../fixtures/woocommerce-order.json");

pub(crate) fn sign(secret: &str, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).unwrap();
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

impl World {
    pub(crate) async fn with_secret(&self) {
        self.app
            .patch(
                &format!("/api/vendors/{}", self.vendor.id),
                &self.vendor.owner.token,
                json!({"woocommerce_webhook_secret": SECRET}),
            )
            .await
            .expect(200);
    }

    async fn deliver(&self, body: &[u8], signature: Option<&str>) -> Reply {
        let mut request = axum::http::Request::post(format!(
            "/api/webhooks/wc/order-created?vendor_id={}",
            self.vendor.id
        ))
        .header("content-type", "application/json")
        .header("x-wc-webhook-topic", "order.created")
        .header("x-wc-webhook-source", "https://shop.example/");
        if let Some(signature) = signature {
            request = request.header("x-wc-webhook-signature", signature);
        }
        self.app
            .send(request.body(axum::body::Body::from(body.to_vec())).unwrap())
            .await
    }

    /// A signed delivery to `url` (which names the pharmacy) with any content type.
    pub(crate) async fn deliver_to(
        &self,
        url: &str,
        content_type: Option<&str>,
        body: &[u8],
        signature: &str,
    ) -> Reply {
        let mut request =
            axum::http::Request::post(url).header("x-wc-webhook-signature", signature);
        if let Some(content_type) = content_type {
            request = request.header("content-type", content_type);
        }
        self.app
            .send(request.body(axum::body::Body::from(body.to_vec())).unwrap())
            .await
    }

    /// An unsigned POST of `body`, as `content_type`, to `url`.
    async fn post_unsigned(&self, url: &str, content_type: &str, body: &'static str) -> Reply {
        self.app
            .raw("POST", url, None, Some(content_type), body)
            .await
    }

    async fn vendor_orders(&self) -> Vec<Value> {
        let r = self
            .app
            .get(
                &format!("/api/vendors/{}/orders", self.vendor.id),
                &self.vendor.owner.token,
            )
            .await;
        r.json.as_array().unwrap().clone()
    }
}

#[tokio::test]
async fn a_signed_order_is_taken_in_once() {
    let w = World::new().await;
    w.with_secret().await;
    let body = FIXTURE.as_bytes();
    let r = w.deliver(body, Some(&sign(SECRET, body))).await;
    r.expect(201);
    assert_eq!(r.json["status"], "pending");
    assert_eq!(r.json["customer_name"], "Jane Doe");
    assert_eq!(r.json["customer_phone"], "(555) 555-5555");
    assert_eq!(
        r.json["delivery_address"],
        "Torstrasse 12, 2nd floor, 10119 Berlin, DE"
    );
    assert_eq!(r.json["notes"], "Please ring the bell twice.");
    assert_eq!(r.json["items"][0]["name"], "Ibuprofen 400mg, 20 tablets");
    assert_eq!(r.json["items"][0]["quantity"], 2);
    assert_eq!(r.json["items"].as_array().unwrap().len(), 2);
    assert_eq!(r.json["delivery_latitude"], Value::Null);
    assert_eq!(r.json["external_ref"]["id"], "727");
    let id = r.json["id"].as_str().unwrap().to_owned();

    // A replay (WooCommerce retries) creates nothing new.
    let r = w.deliver(body, Some(&sign(SECRET, body))).await;
    r.expect(200);
    assert_eq!(r.json["id"], id.as_str());
    assert_eq!(w.vendor_orders().await.len(), 1);

    // Without coordinates the pharmacy sets them before accepting.
    let r = w.set_status(&id, &w.vendor.owner.token, "accepted").await;
    r.expect(409);
    assert_eq!(r.code(), "location_missing");
    w.app
        .patch(
            &format!("/api/orders/{id}"),
            &w.vendor.owner.token,
            json!({"delivery_latitude": 52.529, "delivery_longitude": 13.401}),
        )
        .await
        .expect(200);
    w.set_status(&id, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);
}

#[tokio::test]
async fn coordinates_in_meta_data_are_used() {
    let w = World::new().await;
    w.with_secret().await;
    let mut order: Value = serde_json::from_str(FIXTURE).unwrap();
    order["id"] = json!(728);
    order["meta_data"].as_array_mut().unwrap().extend([
        json!({"id": 1, "key": "_shipping_latitude", "value": "52.53"}),
        json!({"id": 2, "key": "_shipping_longitude", "value": "13.41"}),
    ]);
    let body = serde_json::to_vec(&order).unwrap();
    let r = w.deliver(&body, Some(&sign(SECRET, &body))).await;
    r.expect(201);
    assert_eq!(r.json["delivery_latitude"], 52.53);
    assert!(r.json["delivery_fee"].as_f64().unwrap() > 0.0);
}

#[tokio::test]
async fn a_delivery_date_from_the_shop_becomes_the_window_in_the_shops_time_zone() {
    let w = World::new().await;
    w.with_secret().await;
    // The fixture was placed at 16:28 in the shop, 19:28 UTC: the shop is at UTC−3.
    let tomorrow = (chrono::Utc::now() + chrono::Duration::days(1)).date_naive();
    let take_in = |id: u64, meta: Vec<Value>| {
        let mut order: Value = serde_json::from_str(FIXTURE).unwrap();
        order["id"] = json!(id);
        order["meta_data"].as_array_mut().unwrap().extend(meta);
        let body = serde_json::to_vec(&order).unwrap();
        let w = &w;
        async move {
            let r = w.deliver(&body, Some(&sign(SECRET, &body))).await;
            r.expect(201);
            (
                r.json["deliver_after"].clone(),
                r.json["deliver_before"].clone(),
            )
        }
    };
    let at = |hour: u32| json!(format!("{tomorrow}T{hour:02}:00:00Z"));
    let day = json!({"id": 9, "key": "_delivery_date", "value": tomorrow.to_string()});
    let slot = |value: &str| json!({"id": 10, "key": "_delivery_time_slot", "value": value});

    assert_eq!(
        take_in(801, vec![day.clone(), slot("10:00 - 12:00")]).await,
        (at(13), at(15))
    );
    // A whole day when the slot is missing or cannot be read.
    let next_day = (tomorrow + chrono::Duration::days(1)).to_string();
    let whole_day = (at(3), json!(format!("{next_day}T03:00:00Z")));
    assert_eq!(take_in(802, vec![day.clone()]).await, whole_day);
    assert_eq!(
        take_in(803, vec![day.clone(), slot("noon-ish")]).await,
        whole_day
    );
    // A day already past, or a date that is not one, is dropped: the order still comes in.
    let past = json!({"id": 9, "key": "delivery_date", "value": "2020-01-02"});
    assert_eq!(take_in(804, vec![past]).await, (Value::Null, Value::Null));
    let garbage = json!({"id": 9, "key": "_delivery_date", "value": "next tuesday"});
    assert_eq!(
        take_in(805, vec![garbage]).await,
        (Value::Null, Value::Null)
    );
}

#[tokio::test]
async fn bad_signatures_are_401_and_create_nothing() {
    let w = World::new().await;
    let body = FIXTURE.as_bytes();
    // No secret configured yet: answered as a wrong signature is.
    let r = w.deliver(body, Some(&sign(SECRET, body))).await;
    r.expect(401);
    let no_secret = r.text.clone();
    w.with_secret().await;
    let good = sign(SECRET, body);
    let mut changed = body.to_vec();
    let at = FIXTURE.find("Ibuprofen").unwrap();
    changed[at] = b'X';
    let cases: Vec<(Vec<u8>, Option<String>)> = vec![
        (changed, Some(good.clone())),
        (body.to_vec(), None),
        (body.to_vec(), Some(String::new())),
        (body.to_vec(), Some("not base64 at all!".into())),
        (body.to_vec(), Some(sign("another-secret-entirely", body))),
        (body.to_vec(), Some(good[..good.len() - 2].to_owned())),
        (format!("{FIXTURE} ").into_bytes(), Some(good.clone())),
    ];
    for (body, signature) in cases {
        let r = w.deliver(&body, signature.as_deref()).await;
        r.expect(401);
        assert_eq!(r.code(), "invalid_signature");
    }
    assert!(w.vendor_orders().await.is_empty());
    // An unknown pharmacy is answered as a wrong signature is, so that pharmacies cannot be
    // enumerated; a malformed id is a malformed request.
    let r = w
        .post_unsigned(
            "/api/webhooks/wc/order-created?vendor_id=01890000-0000-7000-8000-000000000000",
            "application/json",
            FIXTURE,
        )
        .await;
    r.expect(401);
    assert_eq!(r.text, no_secret);
    let r = w
        .post_unsigned(
            "/api/webhooks/wc/order-created?vendor_id=7",
            "application/json",
            FIXTURE,
        )
        .await;
    r.expect(422);
    let r = w
        .post_unsigned(
            "/api/webhooks/wc/order-created",
            "application/json",
            FIXTURE,
        )
        .await;
    r.expect(422);
}

#[tokio::test]
async fn the_ping_is_answered_200_and_creates_nothing() {
    let w = World::new().await;
    for secret in [false, true] {
        if secret {
            w.with_secret().await;
        }
        let r = w
            .post_unsigned(
                &format!("/api/webhooks/wc/order-created?vendor_id={}", w.vendor.id),
                "application/x-www-form-urlencoded",
                "webhook_id=15",
            )
            .await;
        r.expect(200);
    }
    assert!(w.vendor_orders().await.is_empty());
    // A form body that is not the ping is not an order either.
    let r = w
        .post_unsigned(
            &format!("/api/webhooks/wc/order-created?vendor_id={}", w.vendor.id),
            "application/x-www-form-urlencoded",
            "webhook_id=15&status=delivered",
        )
        .await;
    r.expect(401);
}

#[tokio::test]
async fn hostile_orders_are_refused_or_stored_inert() {
    let w = World::new().await;
    w.with_secret().await;
    let base: Value = serde_json::from_str(FIXTURE).unwrap();
    let variant = |id: u64, change: &dyn Fn(&mut Value)| {
        let mut order = base.clone();
        order["id"] = json!(id);
        change(&mut order);
        serde_json::to_vec(&order).unwrap()
    };
    let refused: Vec<(&str, Vec<u8>, u16)> = vec![
        (
            "negative quantity",
            variant(801, &|o| o["line_items"][0]["quantity"] = json!(-3)),
            422,
        ),
        (
            "zero quantity",
            variant(802, &|o| o["line_items"][0]["quantity"] = json!(0)),
            422,
        ),
        (
            "huge quantity",
            variant(803, &|o| o["line_items"][0]["quantity"] = json!(1e12)),
            422,
        ),
        (
            "fractional quantity",
            variant(804, &|o| o["line_items"][0]["quantity"] = json!(1.5)),
            422,
        ),
        (
            "huge name",
            variant(805, &|o| {
                o["line_items"][0]["name"] = json!("x".repeat(100_000))
            }),
            413,
        ),
        (
            "long name",
            variant(806, &|o| {
                o["line_items"][0]["name"] = json!("x".repeat(5000))
            }),
            422,
        ),
        (
            "no items",
            variant(807, &|o| o["line_items"] = json!([])),
            422,
        ),
        (
            "no address",
            variant(808, &|o| {
                o["shipping"] = json!({});
                o["billing"] = json!({});
            }),
            422,
        ),
        ("string id", variant(0, &|o| o["id"] = json!("abc")), 422),
        ("negative id", variant(0, &|o| o["id"] = json!(-1)), 422),
        ("not an object", b"[1, 2, 3]".to_vec(), 422),
        ("not json", b"<xml/>".to_vec(), 400),
        (
            "too deep",
            format!("{}{}", "[".repeat(100), "]".repeat(100)).into_bytes(),
            400,
        ),
    ];
    for (name, body, expected) in refused {
        let r = w.deliver(&body, Some(&sign(SECRET, &body))).await;
        assert_eq!(r.status.as_u16(), expected, "{name}: {}", r.text);
        r.assert_error_format();
    }
    assert!(w.vendor_orders().await.is_empty());

    // Script and formula text is data: returned as JSON strings, neutralised in CSV exports.
    let body = variant(900, &|o| {
        o["line_items"][0]["name"] = json!("<script>alert(1)</script>");
        o["shipping"]["first_name"] = json!("=HYPERLINK(\"http://evil\")");
    });
    let r = w.deliver(&body, Some(&sign(SECRET, &body))).await;
    r.expect(201);
    assert_eq!(r.json["items"][0]["name"], "<script>alert(1)</script>");
    assert_eq!(r.header("content-type"), Some("application/json"));
    let csv = w
        .app
        .call(
            "POST",
            &format!("/api/vendors/{}/export-csv", w.vendor.id),
            Some(&w.vendor.owner.token),
            None,
        )
        .await;
    csv.expect(200);
    assert!(csv.text.contains("'=HYPERLINK"), "{}", csv.text);
    assert!(!csv.text.contains(",=HYPERLINK"));
}
