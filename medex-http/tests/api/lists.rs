//! Lists: JSON arrays, role scoping, filters, `limit`/`cursor` pagination with `Link` headers.

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn pages_follow_their_link_headers() {
    let w = World::new().await;
    let mut ids = Vec::new();
    for _ in 0..5 {
        ids.push(w.order().await);
    }
    // Newest first: ids are time-ordered (within one millisecond the order is the ids').
    ids.sort();
    ids.reverse();
    let mut seen = Vec::new();
    let mut next = Some("/api/orders?status=pending&limit=2".to_owned());
    let mut pages = 0;
    while let Some(url) = next {
        let r = w.app.get(&url, &w.customer.token).await;
        r.expect(200);
        seen.extend(
            r.json
                .as_array()
                .unwrap()
                .iter()
                .map(|o| o["id"].as_str().unwrap().to_owned()),
        );
        next = r.header("link").map(|link| {
            assert!(link.ends_with("; rel=\"next\""), "{link}");
            assert!(link.contains("status=pending"), "{link}");
            link[1..link.find('>').unwrap()].to_owned()
        });
        pages += 1;
        assert!(pages < 10);
    }
    assert_eq!(seen, ids);
    assert_eq!(pages, 3);
    // A short page has no link.
    let r = w.app.get("/api/orders?limit=200", &w.customer.token).await;
    assert!(r.header("link").is_none());
}

#[tokio::test]
async fn lists_are_scoped_by_role() {
    let w = World::new().await;
    let mine = w.order().await;
    let mut body = w.order_body();
    body["vendor_id"] = json!(w.other_vendor.id);
    let theirs = w
        .app
        .post("/api/orders", Some(&w.other_customer.token), body)
        .await
        .json["id"]
        .as_str()
        .unwrap()
        .to_owned();
    let ids = |r: &Reply| -> Vec<String> {
        r.json
            .as_array()
            .unwrap()
            .iter()
            .map(|o| o["id"].as_str().unwrap().to_owned())
            .collect()
    };
    assert_eq!(
        ids(&w.app.get("/api/orders", &w.customer.token).await),
        vec![mine.clone()]
    );
    assert_eq!(
        ids(&w.app.get("/api/orders", &w.vendor.owner.token).await),
        vec![mine.clone()]
    );
    assert_eq!(
        ids(&w.app.get("/api/orders", &w.other_vendor.owner.token).await),
        vec![theirs.clone()]
    );
    assert_eq!(
        ids(&w.app.get("/api/orders", &w.admin.token).await).len(),
        2
    );
    assert!(ids(&w.app.get("/api/orders", &w.driver.who.token).await).is_empty());
    // Asking for another vendor's orders finds none.
    let r = w
        .app
        .get(
            &format!("/api/orders?vendor_id={}", w.other_vendor.id),
            &w.vendor.owner.token,
        )
        .await;
    assert!(ids(&r).is_empty());
    let r = w
        .app
        .get(
            &format!("/api/orders?vendor_id={}", w.other_vendor.id),
            &w.admin.token,
        )
        .await;
    assert_eq!(ids(&r), [theirs]);
    let r = w
        .app
        .get("/api/orders?status=accepted", &w.admin.token)
        .await;
    assert!(ids(&r).is_empty());

    // Drivers: a vendor sees its fleet; admins filter by fleet.
    let r = w.app.get("/api/drivers", &w.vendor.owner.token).await;
    r.expect(200);
    assert_eq!(r.json.as_array().unwrap().len(), 2);
    let r = w
        .app
        .get(
            &format!("/api/drivers?vendor_id={}", w.other_vendor.id),
            &w.admin.token,
        )
        .await;
    assert_eq!(r.json.as_array().unwrap().len(), 1);
    let r = w
        .app
        .get("/api/drivers?status=available", &w.vendor.owner.token)
        .await;
    assert!(r.json.as_array().unwrap().is_empty());

    // Vendor orders with filters.
    let r = w
        .app
        .get(
            &format!("/api/vendors/{}/orders?status=pending", w.vendor.id),
            &w.vendor.owner.token,
        )
        .await;
    assert_eq!(ids(&r), vec![mine.clone()]);
    let today = chrono::Utc::now().date_naive();
    let r = w
        .app
        .get(
            &format!(
                "/api/vendors/{}/orders?date={today}&tz=%2B00:00",
                w.vendor.id
            ),
            &w.admin.token,
        )
        .await;
    assert_eq!(ids(&r), [mine]);
    let r = w
        .app
        .get(
            &format!("/api/vendors/{}/orders?date=2001-01-01", w.vendor.id),
            &w.admin.token,
        )
        .await;
    assert!(ids(&r).is_empty());
}

#[tokio::test]
async fn admins_list_users_with_filters_and_without_hashes() {
    let w = World::new().await;
    let r = w
        .app
        .get("/api/admin/users?role=driver", &w.admin.token)
        .await;
    r.expect(200);
    assert_eq!(r.json.as_array().unwrap().len(), 3);
    assert!(!r.text.contains("password_hash") && !r.text.contains("argon2"));
    let r = w.app.get("/api/admin/users?limit=2", &w.admin.token).await;
    assert_eq!(r.json.as_array().unwrap().len(), 2);
    assert!(r.header("link").unwrap().contains("cursor="));
    let r = w
        .app
        .get("/api/admin/users?is_active=false", &w.admin.token)
        .await;
    assert!(r.json.as_array().unwrap().is_empty());
}

#[tokio::test]
async fn vendors_list_public_fields_to_others() {
    let w = World::new().await;
    w.app
        .patch(
            &format!("/api/vendors/{}", w.vendor.id),
            &w.vendor.owner.token,
            json!({"woocommerce_webhook_secret": "a-very-secret-webhook-key"}),
        )
        .await
        .expect(200);
    let r = w.app.get("/api/vendors", &w.customer.token).await;
    r.expect(200);
    assert_eq!(r.json.as_array().unwrap().len(), 2);
    assert!(!r.text.contains("a-very-secret-webhook-key"));
    for v in r.json.as_array().unwrap() {
        assert!(v.get("email").is_none() && v.get("driver_ids").is_none());
        assert!(v.get("has_woocommerce_webhook_secret").is_none());
        assert!(v["business_name"].is_string());
    }
    let r = w
        .app
        .get(
            &format!("/api/vendors/{}", w.vendor.id),
            &w.vendor.owner.token,
        )
        .await;
    assert_eq!(r.json["has_woocommerce_webhook_secret"], true);
    assert_eq!(r.json["driver_ids"].as_array().unwrap().len(), 2);
    assert!(!r.text.contains("a-very-secret-webhook-key"));
    let r = w
        .app
        .get(&format!("/api/vendors/{}", w.vendor.id), &w.admin.token)
        .await;
    assert!(!r.text.contains("a-very-secret-webhook-key"));
    // Removing it.
    let r = w
        .app
        .patch(
            &format!("/api/vendors/{}", w.vendor.id),
            &w.vendor.owner.token,
            json!({"woocommerce_webhook_secret": null}),
        )
        .await;
    assert_eq!(r.json["has_woocommerce_webhook_secret"], false);
}
