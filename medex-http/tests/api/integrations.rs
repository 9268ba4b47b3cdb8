//! A pharmacy's API keys (acting as its account, across tenants, after revocation and
//! deactivation), its webhook endpoints as registered, and `Idempotency-Key` on order writes.

use axum::body::Body;
use axum::http::Request;
use serde_json::{Value, json};

use crate::helpers::*;

async fn new_key(w: &World, vendor: &Pharmacy, token: &str) -> Value {
    let r = w
        .app
        .post(
            &format!("/api/vendors/{}/api-keys", vendor.id),
            Some(token),
            json!({"name": "shop backend"}),
        )
        .await;
    r.expect(201);
    r.json.clone()
}

#[tokio::test]
async fn an_api_key_acts_as_its_pharmacy_and_nothing_more() {
    let w = World::new().await;
    let made = new_key(&w, &w.vendor, &w.vendor.owner.token).await;
    let key = made["key"].as_str().unwrap().to_owned();
    assert!(key.starts_with("mdx_") && key.len() >= 40, "{key}");
    assert_eq!(made["prefix"].as_str().unwrap(), &key[..12]);

    // The key reads what the pharmacy's account reads…
    w.app
        .get(&format!("/api/vendors/{}/orders", w.vendor.id), &key)
        .await
        .expect(200);
    let me = w.app.get("/api/auth/me", &key).await;
    me.expect(200);
    assert_eq!(me.json["id"], w.vendor.owner.user_id.as_str());
    // …and not another pharmacy's things, which look absent.
    w.app
        .get(&format!("/api/vendors/{}/orders", w.other_vendor.id), &key)
        .await
        .expect(404);
    w.app
        .get(
            &format!("/api/vendors/{}/api-keys", w.other_vendor.id),
            &key,
        )
        .await
        .expect(404);
    // Customers and drivers may not manage keys at all.
    w.app
        .get(
            &format!("/api/vendors/{}/api-keys", w.vendor.id),
            &w.customer.token,
        )
        .await
        .expect(403);

    // The listing shows the prefix and the last use, never the key or its hash.
    let listed = w
        .app
        .get(&format!("/api/vendors/{}/api-keys", w.vendor.id), &key)
        .await;
    listed.expect(200);
    assert_eq!(listed.json.as_array().unwrap().len(), 1);
    assert!(!listed.text.contains(&key[12..]), "{}", listed.text);
    assert!(
        listed.json[0]["last_used_at"].is_string(),
        "{}",
        listed.text
    );
    assert!(listed.json[0].get("hash").is_none());

    // Another pharmacy cannot revoke it; its owner can, and it stops at once.
    let kid = made["id"].as_str().unwrap();
    let own_key = format!("/api/vendors/{}/api-keys/{kid}", w.vendor.id);
    w.app
        .delete(
            &format!("/api/vendors/{}/api-keys/{kid}", w.other_vendor.id),
            &w.other_vendor.owner.token,
        )
        .await
        .expect(404);
    w.app
        .delete(&own_key, &w.vendor.owner.token)
        .await
        .expect(204);
    w.app.get("/api/auth/me", &key).await.expect(401);
    w.app
        .delete(&own_key, &w.vendor.owner.token)
        .await
        .expect(404);
    // A made-up key of the right shape is refused like any bad token.
    w.app
        .get(
            "/api/auth/me",
            "mdx_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA",
        )
        .await
        .expect(401);
}

#[tokio::test]
async fn deactivating_the_pharmacy_account_disables_its_keys() {
    let w = World::new().await;
    let made = new_key(&w, &w.vendor, &w.vendor.owner.token).await;
    let key = made["key"].as_str().unwrap();
    w.app.get("/api/auth/me", key).await.expect(200);
    w.app
        .patch(
            &format!("/api/admin/users/{}", w.vendor.owner.user_id),
            &w.admin.token,
            json!({"is_active": false}),
        )
        .await
        .expect(200);
    let refused = w.app.get("/api/auth/me", key).await;
    refused.expect(401);
    assert_eq!(refused.code(), "account_inactive");
    w.app
        .patch(
            &format!("/api/admin/users/{}", w.vendor.owner.user_id),
            &w.admin.token,
            json!({"is_active": true}),
        )
        .await
        .expect(200);
    w.app.get("/api/auth/me", key).await.expect(200);
    // Taking the pharmacy itself out of service does the same.
    w.app
        .patch(
            &format!("/api/vendors/{}", w.vendor.id),
            &w.admin.token,
            json!({"is_active": false}),
        )
        .await
        .expect(200);
    w.app.get("/api/auth/me", key).await.expect(401);
}

#[tokio::test]
async fn webhook_registration_refuses_what_the_address_rule_forbids() {
    let w = World::new().await;
    let path = format!("/api/vendors/{}/webhooks", w.vendor.id);
    let token = &w.vendor.owner.token;
    for url in [
        "http://shop.example.com/hook",
        "https://127.0.0.1/hook",
        "https://[::1]/hook",
        "https://10.0.0.7/hook",
        "https://169.254.169.254/latest/meta-data",
        "https://[::ffff:127.0.0.1]/hook",
        "https://localhost/hook",
        "https://user:pw@shop.example.com/hook",
        "file:///etc/passwd",
        "not a url",
    ] {
        let r = w
            .app
            .post(&path, Some(token), json!({"url": url, "events": ["*"]}))
            .await;
        r.expect(422);
        assert_eq!(r.json["errors"][0]["field"], "url", "{url}: {}", r.text);
    }
    for events in [
        json!([]),
        json!(["order.exploded"]),
        json!(["*", "order.created"]),
    ] {
        w.app
            .post(
                &path,
                Some(token),
                json!({"url": "https://shop.example.com/hook", "events": events}),
            )
            .await
            .expect(422);
    }
    let made = w
        .app
        .post(
            &path,
            Some(token),
            json!({"url": "https://shop.example.com/hook", "events": ["order.created", "order.delivered"]}),
        )
        .await;
    made.expect(201);
    let secret = made.json["secret"].as_str().unwrap().to_owned();
    assert!(secret.len() >= 32);
    let listed = w.app.get(&path, token).await;
    listed.expect(200);
    assert_eq!(
        listed.json[0]["events"],
        json!(["order.created", "order.delivered"])
    );
    assert!(!listed.text.contains(&secret), "no secret in listings");
    let wid = made.json["id"].as_str().unwrap();
    let rotated = w
        .app
        .post(
            &format!("{path}/{wid}/rotate-secret"),
            Some(token),
            json!({}),
        )
        .await;
    rotated.expect(200);
    assert_ne!(rotated.json["secret"].as_str().unwrap(), secret);
    // Other pharmacies see none of it.
    let other = &w.other_vendor.owner.token;
    w.app.get(&path, other).await.expect(404);
    w.app
        .get(&format!("{path}/{wid}/deliveries"), other)
        .await
        .expect(404);
    w.app
        .get(
            &format!(
                "/api/vendors/{}/webhooks/{wid}/deliveries",
                w.other_vendor.id
            ),
            other,
        )
        .await
        .expect(404);
    // An order makes one pending delivery for the endpoint, in the same commit.
    w.order().await;
    let log = w.app.get(&format!("{path}/{wid}/deliveries"), token).await;
    log.expect(200);
    assert_eq!(log.json.as_array().unwrap().len(), 1, "{}", log.text);
    assert_eq!(log.json[0]["event"], "order.created");
    assert_eq!(log.json[0]["state"], "pending");
    w.app
        .delete(&format!("{path}/{wid}"), token)
        .await
        .expect(204);
    assert_eq!(w.app.get(&path, token).await.json, json!([]));
}

fn keyed(method: &str, path: &str, token: &str, key: &str, body: &Value) -> Request<Body> {
    Request::builder()
        .method(method)
        .uri(path)
        .header("authorization", format!("Bearer {token}"))
        .header("content-type", "application/json")
        .header("idempotency-key", key)
        .body(Body::from(body.to_string()))
        .unwrap()
}

#[tokio::test]
async fn an_idempotency_key_replays_the_first_answer() {
    let w = World::new().await;
    let token = &w.customer.token;
    let body = w.order_body();
    let first = w
        .app
        .send(keyed("POST", "/api/orders", token, "order-1", &body))
        .await;
    first.expect(201);
    assert_eq!(first.header("idempotent-replayed"), None);
    let again = w
        .app
        .send(keyed("POST", "/api/orders", token, "order-1", &body))
        .await;
    again.expect(201);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));
    assert_eq!(again.json, first.json, "the same answer, the same order");
    let mine = w.app.get("/api/orders", token).await;
    assert_eq!(mine.json.as_array().unwrap().len(), 1);

    // Another body under the same key is refused; another account's key is its own.
    let mut other = body.clone();
    other["notes"] = json!("leave at the door");
    let reused = w
        .app
        .send(keyed("POST", "/api/orders", token, "order-1", &other))
        .await;
    reused.expect(422);
    assert_eq!(reused.code(), "idempotency_key_reused");
    w.app
        .send(keyed(
            "POST",
            "/api/orders",
            &w.other_customer.token,
            "order-1",
            &body,
        ))
        .await
        .expect(201);

    // PATCH too: a repeated cancellation replays instead of failing as an illegal move.
    let id = first.json["id"].as_str().unwrap();
    let cancel = json!({"status": "cancelled", "reason": "changed my mind"});
    let path = format!("/api/orders/{id}");
    w.app
        .send(keyed("PATCH", &path, token, "cancel-1", &cancel))
        .await
        .expect(200);
    let replayed = w
        .app
        .send(keyed("PATCH", &path, token, "cancel-1", &cancel))
        .await;
    replayed.expect(200);
    assert_eq!(replayed.header("idempotent-replayed"), Some("true"));
    // Without the key the same move is the illegal transition it is.
    w.app.patch(&path, token, cancel).await.expect(409);

    // An error answer is remembered as well (the request would fail the same way again).
    let bad = json!({"status": "delivered"});
    let refused = w
        .app
        .send(keyed("PATCH", &path, token, "bad-1", &bad))
        .await;
    let again = w
        .app
        .send(keyed("PATCH", &path, token, "bad-1", &bad))
        .await;
    assert_eq!(again.status, refused.status);
    assert_eq!(again.header("idempotent-replayed"), Some("true"));

    // A malformed key is 422 before anything runs.
    w.app
        .send(keyed(
            "POST",
            "/api/orders",
            token,
            "bad key with spaces",
            &body,
        ))
        .await
        .expect(422);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 4)]
async fn sixteen_concurrent_requests_with_one_key_make_one_order() {
    let w = World::new().await;
    let body = w.order_body();
    let racers: Vec<_> = (0..16)
        .map(|_| {
            let app = w.app.clone();
            let request = keyed("POST", "/api/orders", &w.customer.token, "race-1", &body);
            tokio::spawn(async move { app.send(request).await })
        })
        .collect();
    let mut created = Vec::new();
    for racer in racers {
        let reply = racer.await.unwrap();
        match reply.status.as_u16() {
            201 => created.push(reply.json["id"].as_str().unwrap().to_owned()),
            409 => assert_eq!(reply.code(), "idempotency_key_in_use"),
            other => panic!("unexpected {other}: {}", reply.text),
        }
    }
    created.dedup();
    assert_eq!(
        created.len(),
        1,
        "every 201 names the one order: {created:?}"
    );
    let mine = w.app.get("/api/orders", &w.customer.token).await;
    assert_eq!(mine.json.as_array().unwrap().len(), 1, "one order was made");
    // Once the first finished, the key replays for everyone who retries.
    let retry = w
        .app
        .send(keyed(
            "POST",
            "/api/orders",
            &w.customer.token,
            "race-1",
            &body,
        ))
        .await;
    retry.expect(201);
    assert_eq!(retry.json["id"], created[0].as_str());
}
