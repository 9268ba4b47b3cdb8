//! API7:2023 Server Side Request Forgery. Finding: the server fetches only what a pharmacy
//! registered as its outgoing webhook endpoint, and never a private address. WooCommerce pushes
//! to MedEx (a signed webhook); proof files are uploaded, never fetched by address; map tiles
//! (`MEDEX_TILE_URL`) are an operator setting fetched by the customer's browser. The one URL the
//! server sends to is `url` of `POST /api/vendors/{id}/webhooks`: `https://` only, refused at
//! registration when it is a literal private address, and checked again after DNS resolution at
//! every attempt (tests/e2e/webhooks.rs sends to names and literals that resolve to loopback,
//! and follows no redirect).
//!
//! Two checks keep it so. The served OpenAPI document is scanned for URL-like properties and
//! parameters: the request-side matches are `woocommerce_webhook_secret`, an HMAC key that is
//! stored and never returned, and the webhook registration's `url`; the response-side matches
//! are paths the server generates (`proof_photo_url`, `signature_url`, an upload's `url`) and
//! the registered endpoint's own `url`. And a canary listener's address is put into every string
//! field of every kind of write, the webhook registration included: nothing ever connects to it.

use std::collections::BTreeSet;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use serde_json::{Value, json};

use super::Scene;
use crate::support::*;

fn url_like(name: &str) -> bool {
    let name = name.to_ascii_lowercase();
    [
        "url", "uri", "href", "callback", "webhook", "link", "redirect", "endpoint",
    ]
    .iter()
    .any(|word| name.contains(word))
}

/// Every schema name reachable from `value` through `$ref`s, transitively.
fn referenced(doc: &Value, value: &Value, found: &mut BTreeSet<String>) {
    match value {
        Value::Object(map) => {
            if let Some(Value::String(target)) = map.get("$ref") {
                let name = target.rsplit('/').next().unwrap().to_owned();
                if found.insert(name.clone()) {
                    referenced(doc, &doc["components"]["schemas"][&name], found);
                }
            }
            for v in map.values() {
                referenced(doc, v, found);
            }
        }
        Value::Array(items) => items.iter().for_each(|v| referenced(doc, v, found)),
        _ => {}
    }
}

/// `schema.property` for every URL-like property of the named schemas (and schemas inline in
/// `extra`).
fn url_properties(doc: &Value, schemas: &BTreeSet<String>) -> BTreeSet<String> {
    fn walk(owner: &str, value: &Value, out: &mut BTreeSet<String>) {
        match value {
            Value::Object(map) => {
                if let Some(Value::Object(properties)) = map.get("properties") {
                    for (name, schema) in properties {
                        if url_like(name) && schema.to_string().contains("string") {
                            out.insert(format!("{owner}.{name}"));
                        }
                    }
                }
                for v in map.values() {
                    walk(owner, v, out);
                }
            }
            Value::Array(items) => items.iter().for_each(|v| walk(owner, v, out)),
            _ => {}
        }
    }
    let mut out = BTreeSet::new();
    for name in schemas {
        walk(name, &doc["components"]["schemas"][name], &mut out);
    }
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_only_url_the_api_takes_to_fetch_is_a_registered_webhook() {
    let s = TestServer::start().await;
    let doc = s.public("/api/openapi.json").await;
    doc.expect(200);
    let doc = doc.json;

    let mut request_schemas = BTreeSet::new();
    let mut response_schemas = BTreeSet::new();
    let mut parameters = BTreeSet::new();
    let mut inline_request = Vec::new();
    for (path, item) in doc["paths"].as_object().unwrap() {
        for (method, op) in item.as_object().unwrap() {
            referenced(&doc, &op["requestBody"], &mut request_schemas);
            referenced(&doc, &op["responses"], &mut response_schemas);
            inline_request.push(op["requestBody"].clone());
            for parameter in op["parameters"].as_array().into_iter().flatten() {
                let name = parameter["name"].as_str().unwrap_or_default();
                if url_like(name) {
                    parameters.insert(format!("{method} {path} {name}"));
                }
            }
        }
    }
    let mut request_side = url_properties(&doc, &request_schemas);
    let mut inline = BTreeSet::new();
    for body in &inline_request {
        let mut found = BTreeSet::new();
        let wrapped = json!({"components": {"schemas": {"(inline)": body}}});
        found.insert("(inline)".to_owned());
        inline.extend(url_properties(&wrapped, &found));
    }
    request_side.extend(inline);
    let response_side = url_properties(&doc, &response_schemas);

    // What a client sends: one secret (an HMAC key, compared, never fetched), and the
    // webhook's signature header.
    let names = |set: &BTreeSet<String>| -> BTreeSet<String> {
        set.iter()
            .map(|s| s.rsplit(['.', ' ']).next().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        names(&request_side),
        BTreeSet::from(["woocommerce_webhook_secret".to_owned(), "url".to_owned()]),
        "URL-like request fields: {request_side:?}"
    );
    // The one URL a client gives is the webhook endpoint's.
    assert_eq!(
        request_side
            .iter()
            .filter(|s| s.ends_with(".url"))
            .cloned()
            .collect::<BTreeSet<_>>(),
        BTreeSet::from(["NewWebhookRequest.url".to_owned()]),
        "URL-like request fields: {request_side:?}"
    );
    assert_eq!(
        names(&parameters),
        // A signature header, and the id (a UUID) of a registered endpoint in paths.
        BTreeSet::from(["X-WC-Webhook-Signature".to_owned(), "webhook_id".to_owned()]),
        "URL-like parameters: {parameters:?}"
    );
    // What the server sends back: paths it generated itself.
    assert!(
        names(&response_side).is_subset(&BTreeSet::from(
            ["proof_photo_url", "signature_url", "url"].map(str::to_owned)
        )),
        "URL-like response fields: {response_side:?}"
    );
    // The secret is write-only: no response schema has it.
    let shown: BTreeSet<String> = response_schemas
        .iter()
        .flat_map(|name| {
            doc["components"]["schemas"][name]["properties"]
                .as_object()
                .map(|p| p.keys().cloned().collect::<Vec<_>>())
                .unwrap_or_default()
        })
        .collect();
    assert!(shown.contains("has_woocommerce_webhook_secret"));
    assert!(!shown.contains("woocommerce_webhook_secret"));
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn urls_in_every_field_are_stored_inert_and_never_fetched() {
    // A listener that counts whoever connects to it.
    let canary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = canary.local_addr().unwrap().port();
    let hits = Arc::new(AtomicUsize::new(0));
    let counter = hits.clone();
    let watcher = tokio::spawn(async move {
        while canary.accept().await.is_ok() {
            counter.fetch_add(1, Ordering::SeqCst);
        }
    });
    let url = format!("http://127.0.0.1:{port}/canary");

    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let extra = json!({
        "callback_url": url, "webhook_url": url, "image_url": url, "avatar_url": url,
        "proof_photo_url": url, "signature_url": url, "href": url, "redirect_uri": url,
    });
    let with_urls = |mut body: Value| {
        for (k, v) in extra.as_object().unwrap() {
            body[k] = v.clone();
        }
        body
    };
    let r = s
        .post(
            "/api/orders",
            Some(&w.customer.token),
            with_urls(json!({
                "vendor_id": w.vendor.id, "delivery_address": url,
                "delivery_latitude": 52.53, "delivery_longitude": 13.40,
                "customer_name": url, "customer_phone": "+49 1",
                "items": [{"name": url, "quantity": 1, "notes": url}], "notes": url,
            })),
        )
        .await;
    r.expect(201);
    let order = r.str("id");
    let stored = s.stored_order(&order).await;
    assert_eq!(stored.notes.as_deref(), Some(url.as_str()));
    assert_eq!((stored.proof_photo_url, stored.signature_url), (None, None));

    s.patch(
        &format!("/api/vendors/{}", w.vendor.id),
        &w.vendor.owner.token,
        with_urls(json!({"business_name": url, "address": url,
                         "woocommerce_webhook_secret": url})),
    )
    .await
    .expect(200);
    s.patch(
        &format!("/api/drivers/{}", w.driver.id),
        &w.driver.who.token,
        with_urls(json!({"full_name": url, "vehicle_number": url, "license_number": url})),
    )
    .await
    .expect(200);
    s.post(
        "/api/auth/register",
        None,
        with_urls(json!({"email": "url@example.test", "password": PASSWORD, "full_name": url})),
    )
    .await
    .expect(201);
    s.patch(
        &format!("/api/orders/{}", scene.pending),
        &w.vendor.owner.token,
        with_urls(json!({"status": "rejected", "reason": url})),
    )
    .await
    .expect(200);
    s.post(
        &format!("/api/drivers/{}/location", w.driver.id),
        Some(&w.driver.who.token),
        with_urls(json!({"latitude": 52.52, "longitude": 13.41})),
    )
    .await
    .expect(200);
    s.patch(
        "/api/admin/config",
        &w.admin.token,
        json!({"tile_url": url, "webhook_url": url}),
    )
    .await;
    // A signed WooCommerce order full of links (its `_links`, product images, meta data, the
    // addresses and the note) is taken in; none is followed.
    let secret = "wc-shared-secret-0123456789";
    s.webhook_secret(&w.vendor, secret).await;
    let mut wc: Value = serde_json::from_str(WC_ORDER).unwrap();
    wc["id"] = json!(4242);
    wc["customer_note"] = json!(url);
    wc["shipping"]["address_1"] = json!(url);
    wc["billing"]["company"] = json!(url);
    wc["_links"] = json!({"self": [{"href": url}], "collection": [{"href": url}]});
    wc["meta_data"] = json!([{"id": 1, "key": "image_url", "value": url},
                             {"id": 2, "key": "_shipping_latitude", "value": url}]);
    for item in wc["line_items"].as_array_mut().unwrap() {
        item["image"] = json!({"id": 1, "src": url});
        item["name"] = json!(url);
    }
    let r = s
        .webhook(&w.vendor.id, secret, wc.to_string().as_bytes())
        .await;
    assert!(
        r.status.as_u16() == 201,
        "a WooCommerce order with links: {}",
        r.text
    );
    // Names and tokens that are URLs are not found, and not followed.
    let encoded = url.replace(':', "%3A").replace('/', "%2F");
    s.get(&format!("/api/uploads/{encoded}"), &w.admin.token)
        .await
        .expect(404);
    s.public(&format!("/api/tracking/{encoded}"))
        .await
        .expect(404);
    let mut app = Socket::connect(&w.driver_url(&w.driver), "driver").await;
    app.expect("connected").await;
    app.send_json(with_urls(
        json!({"type": "location", "latitude": 52.52, "longitude": 13.41}),
    ))
    .await;
    app.send_json(json!({"type": "ping"})).await;
    app.expect("pong").await;
    app.close().await;
    // The canary as a webhook endpoint: refused (plain http to a loopback address).
    w.register_webhook(&url).await.expect(422);
    // Everything above has been answered; one more round trip for anything queued behind.
    s.public("/api/health").await.expect(200);
    assert_eq!(
        hits.load(Ordering::SeqCst),
        0,
        "the server connected to {url}"
    );
    watcher.abort();
    scene.w.server.stop().await;
}
