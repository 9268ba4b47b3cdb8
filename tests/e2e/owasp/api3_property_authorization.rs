//! API3:2023 Broken Object Property Level Authorization: fields a client must not set (mass
//! assignment) on every create and patch body, and fields a reader must not see (the public
//! tracking view and tracking socket, other pharmacies' views, accounts).
//!
//! Each write is checked against storage: exactly the fields the request may change changed.

use std::collections::BTreeMap;

use serde_json::{Value, json};

use super::Scene;
use crate::support::*;

/// Fields no create or patch body may set, with hostile values.
fn hostile(w: &World, scene: &Scene) -> Value {
    json!({
        "id": "01890000-0000-7000-8000-000000000001",
        "user_id": w.other_customer.user_id,
        "vendor_id": w.other_vendor.id,
        "driver_id": w.other_driver.id,
        "status": "delivered",
        "delivery_fee": 0.01,
        "estimated_distance_km": 0.01,
        "tracking_token": "chosen-by-the-client",
        "order_number": "ORD-MINE0001",
        "role": "admin",
        "is_active": false,
        "version": 99,
        "created_at": "2000-01-01T00:00:00Z",
        "updated_at": "2000-01-01T00:00:00Z",
        "password_hash": "$argon2id$v=19$m=8,t=1,p=1$forged",
        "total_earnings": 100000.0,
        "total_deliveries": 99,
        "active_order_id": scene.foreign,
        "driver_ids": [w.other_driver.id],
        "proof_photo_url": "/api/uploads/forged.png",
        "signature_url": "http://127.0.0.1:9/forged.png",
        "status_history": [],
        "proofs": [{"kind": "photo", "url": "/api/uploads/forged.png",
                    "sha256": "00".repeat(32), "uploaded_at": "2000-01-01T00:00:00Z"}],
        "handover_code": "123456",
        "handover_failures": 99,
        "attempt": 7,
        "failure_reason": "refused",
        "custody_seal": {"key_id": "forged", "signature": "Zm9yZ2Vk"},
        "external_ref": {"source": "woocommerce", "id": "1"},
        "has_woocommerce_webhook_secret": true,
        "email": "eve@evil.test",
    })
}

/// `body` with every hostile field it does not name itself.
fn with_hostile(body: Value, w: &World, scene: &Scene, keep_out: &[&str]) -> Value {
    let mut body = body;
    for (key, value) in hostile(w, scene).as_object().unwrap() {
        if body.get(key).is_none() && !keep_out.contains(&key.as_str()) {
            body[key] = value.clone();
        }
    }
    body
}

/// Which top-level fields of which records changed between two snapshots; a created record
/// reads `["<created>"]`.
fn changes(before: &Snapshot, after: &Snapshot) -> BTreeMap<String, Vec<String>> {
    after
        .changed_since(before)
        .into_iter()
        .map(|(key, old, new)| {
            let fields = match old {
                None => vec!["<created>".to_owned()],
                Some(old) => {
                    let mut fields: Vec<String> = new
                        .as_object()
                        .unwrap()
                        .iter()
                        .filter(|(k, v)| old.get(k.as_str()) != Some(v))
                        .map(|(k, _)| k.clone())
                        .collect();
                    fields.sort();
                    fields
                }
            };
            (key, fields)
        })
        .collect()
}

/// One write: its status, and exactly which fields of which records it changed.
async fn check(
    s: &TestServer,
    case: &str,
    (method, path, token, body): (&str, &str, Option<&str>, Value),
    status: u16,
    expected: &[(String, &[&str])],
) -> Reply {
    let before = s.snapshot().await;
    let r = s.call(method, path, token, Some(body)).await;
    assert_eq!(r.status.as_u16(), status, "{case}: {}", r.text);
    let after = s.snapshot().await;
    let expected: BTreeMap<String, Vec<String>> = expected
        .iter()
        .map(|(k, f)| (k.clone(), f.iter().map(|f| (*f).to_owned()).collect()))
        .collect();
    assert_eq!(changes(&before, &after), expected, "{case}");
    r
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn clients_cannot_set_server_owned_fields() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let customer = Some(w.customer.token.as_str());
    let vendor = Some(w.vendor.owner.token.as_str());
    let order_key = |id: &str| format!("order {id}");
    let driver_key = |id: &str| format!("driver {id}");

    // New order: status, fee, number, token, ids and history are the server's.
    let r = {
        let before = s.snapshot().await;
        let r = s
            .post(
                "/api/orders",
                customer,
                with_hostile(w.order_body(), w, &scene, &[]),
            )
            .await;
        r.expect(201);
        let created = changes(&before, &s.snapshot().await);
        assert_eq!(
            created.keys().collect::<Vec<_>>(),
            [&order_key(&r.str("id"))],
            "creating an order writes the order only"
        );
        r
    };
    let order = s.stored_order(&r.str("id")).await;
    assert_ne!(order.id.to_string(), "01890000-0000-7000-8000-000000000001");
    assert_eq!(order.user_id.to_string(), w.customer.user_id);
    assert_eq!(order.vendor_id.to_string(), w.vendor.id);
    assert_eq!(order.driver_id, None);
    assert_eq!(order.status.as_str(), "pending");
    assert!(
        order.delivery_fee.to_decimal() > 1.0,
        "{:?}",
        order.delivery_fee
    );
    assert!(order.estimated_distance_km.unwrap() > 0.5);
    assert_ne!(order.tracking_token, "chosen-by-the-client");
    assert_ne!(order.order_number, "ORD-MINE0001");
    assert_eq!((order.proof_photo_url, order.signature_url), (None, None));
    assert_eq!((order.status_history.len(), order.version), (1, 1));
    assert!(order.proofs.is_empty() && order.failure_reason.is_none());
    assert_eq!((order.attempt, order.handover_failures), (1, 0));
    let code = order.handover_code.as_ref().expect("a handover code");
    assert_ne!(code.as_str(), "123456", "drawn by the server");
    assert_eq!(
        r.json["handover_code"],
        code.as_str(),
        "shown to the customer"
    );
    assert_ne!(
        order.custody_seal.as_ref().map(|s| s.key_id.as_str()),
        Some("forged")
    );
    assert_eq!(order.external_ref, None);
    assert!(order.created_at.timestamp() > 1_700_000_000);

    // Status change: only the status, its stamp and the history move.
    let path = format!("/api/orders/{}", scene.pending);
    check(
        s,
        "accept",
        (
            "PATCH",
            &path,
            vendor,
            with_hostile(
                json!({"status": "accepted", "reason": "ok"}),
                w,
                &scene,
                &[],
            ),
        ),
        200,
        &[(
            order_key(&scene.pending),
            &[
                "accepted_at",
                "custody_seal",
                "status",
                "status_history",
                "updated_at",
                "version",
            ],
        )],
    )
    .await;

    // Destination of a pending order that arrived without one (from the shop): the fee is
    // recomputed, never taken, and the change is recorded in the chain of custody.
    s.webhook_secret(&w.vendor, "Wq8v3kZ1pT6xN0rL5yB9").await;
    let shop = s
        .webhook(&w.vendor.id, "Wq8v3kZ1pT6xN0rL5yB9", WC_ORDER.as_bytes())
        .await;
    shop.expect(201);
    let fresh = shop.str("id");
    let r = check(
        s,
        "set the destination",
        (
            "PATCH",
            &format!("/api/orders/{fresh}"),
            vendor,
            with_hostile(
                json!({"delivery_address": "Invalidenstrasse 1", "delivery_latitude": 52.531,
                       "delivery_longitude": 13.384}),
                w,
                &scene,
                &["status"],
            ),
        ),
        200,
        &[(
            order_key(&fresh),
            &[
                "custody_seal",
                "delivery_address",
                "delivery_fee",
                "delivery_latitude",
                "delivery_longitude",
                "estimated_distance_km",
                "status_history",
                "updated_at",
                "version",
            ],
        )],
    )
    .await;
    let km = r.json["estimated_distance_km"].as_f64().unwrap();
    assert!(km > 1.0, "{km}");
    assert_eq!(
        r.json["delivery_fee"].as_f64().unwrap(),
        (km * 2.5 * 100.0).round() / 100.0
    );

    // A driver's own status: nothing but the status.
    let second = &w.second_driver;
    check(
        s,
        "driver status",
        (
            "PATCH",
            &format!("/api/drivers/{}/status", second.id),
            Some(&second.who.token),
            with_hostile(json!({"status": "on_break"}), w, &scene, &[]),
        ),
        200,
        &[(driver_key(&second.id), &["status", "updated_at", "version"])],
    )
    .await;
    s.available(second).await;

    // Assignment: the order and the driver, nothing the body adds.
    check(
        s,
        "assign",
        (
            "POST",
            &format!("/api/orders/{}/assign-driver", scene.accepted),
            vendor,
            with_hostile(json!({"driver_id": second.id}), w, &scene, &[]),
        ),
        200,
        &[
            (
                driver_key(&second.id),
                &[
                    "active_order_id",
                    "active_order_ids",
                    "status",
                    "updated_at",
                    "version",
                ],
            ),
            (
                order_key(&scene.accepted),
                &[
                    "custody_seal",
                    "driver_id",
                    "status",
                    "status_history",
                    "updated_at",
                    "version",
                ],
            ),
        ],
    )
    .await;
    check(
        s,
        "driver accepts the assignment",
        (
            "POST",
            &format!("/api/orders/{}/assignment", scene.accepted),
            Some(&second.who.token),
            with_hostile(json!({"action": "accept"}), w, &scene, &[]),
        ),
        200,
        &[(
            order_key(&scene.accepted),
            &["driver_accepted_at", "updated_at", "version"],
        )],
    )
    .await;

    // A driver's own profile: not its fleet, totals, status, account or activity.
    check(
        s,
        "driver profile",
        (
            "PATCH",
            &format!("/api/drivers/{}", w.driver.id),
            Some(&w.driver.who.token),
            with_hostile(
                json!({"phone": "+49 30 555 0111"}),
                w,
                &scene,
                &["is_active"],
            ),
        ),
        200,
        &[(
            driver_key(&w.driver.id),
            &["phone", "updated_at", "version"],
        )],
    )
    .await;
    // Explicitly asking to (de)activate itself is refused, not ignored.
    s.refused(
        "driver deactivates itself",
        "PATCH",
        &format!("/api/drivers/{}", w.driver.id),
        Some(&w.driver.who.token),
        json!({"is_active": false}).into(),
        403,
    )
    .await;

    // A position report is about the reporting driver, whatever the body names.
    let r = check(
        s,
        "location",
        (
            "POST",
            &format!("/api/drivers/{}/location", w.driver.id),
            Some(&w.driver.who.token),
            with_hostile(
                json!({"latitude": 52.5233, "longitude": 13.4101, "order_id": scene.foreign,
                       "eta_minutes": 0.0}),
                w,
                &scene,
                &[],
            ),
        ),
        200,
        // The store reads positions back from the trail: the reporting driver moved.
        &[(
            driver_key(&w.driver.id),
            &[
                "current_latitude",
                "current_longitude",
                "last_location_update",
            ],
        )],
    )
    .await;
    assert_eq!(r.json["driver_id"], w.driver.id.as_str());
    assert_eq!(r.json["order_id"], scene.work.as_str());
    let other = s
        .get(
            &format!("/api/drivers/{}", w.other_driver.id),
            &w.other_vendor.owner.token,
        )
        .await;
    assert_ne!(other.json["current_latitude"], json!(52.5233));

    // A pharmacy's profile: not its account, fleet, activity or e-mail.
    check(
        s,
        "pharmacy profile",
        (
            "PATCH",
            &format!("/api/vendors/{}", w.vendor.id),
            vendor,
            with_hostile(
                json!({"phone": "+49 30 555 0999"}),
                w,
                &scene,
                &["is_active"],
            ),
        ),
        200,
        &[(
            format!("vendor {}", w.vendor.id),
            &["phone", "updated_at", "version"],
        )],
    )
    .await;
    s.refused(
        "pharmacy reactivates or deactivates itself",
        "PATCH",
        &format!("/api/vendors/{}", w.vendor.id),
        vendor,
        json!({"is_active": false}).into(),
        403,
    )
    .await;

    // The webhook secret is write-only: stored, never shown, not even to its owner.
    let secret = "wc-secret-0123456789-abcdef";
    check(
        s,
        "webhook secret",
        (
            "PATCH",
            &format!("/api/vendors/{}", w.vendor.id),
            vendor,
            json!({"woocommerce_webhook_secret": secret}),
        ),
        200,
        &[(
            format!("vendor {}", w.vendor.id),
            &["updated_at", "version", "woocommerce_webhook_secret"],
        )],
    )
    .await;
    for who in [&w.vendor.owner, &w.admin, &w.customer] {
        let r = s
            .get(&format!("/api/vendors/{}", w.vendor.id), &who.token)
            .await;
        r.expect(200);
        assert!(!r.text.contains(secret), "{}", r.text);
        assert!(r.json.get("woocommerce_webhook_secret").is_none());
    }
    let own = s
        .get(
            &format!("/api/vendors/{}", w.vendor.id),
            &w.vendor.owner.token,
        )
        .await;
    assert_eq!(own.json["has_woocommerce_webhook_secret"], true);

    // Registration: a customer, with nothing but a customer's powers.
    let r = s
        .post(
            "/api/auth/register",
            None,
            with_hostile(
                json!({"email": "carl@example.test", "password": PASSWORD, "full_name": "Carl",
                       "role": "user"}),
                w,
                &scene,
                &[],
            ),
        )
        .await;
    r.expect(201);
    let carl = s.stored_user(r.json["user"]["id"].as_str().unwrap()).await;
    assert_ne!(carl.id.to_string(), "01890000-0000-7000-8000-000000000001");
    assert_eq!(carl.role.as_str(), "user");
    assert!(carl.is_active && carl.vendor_id.is_none() && carl.driver_id.is_none());
    assert!(carl.password_hash.starts_with("$argon2id$v=19$m=19456"));
    assert_eq!(carl.version, 1);
    s.refused(
        "register as admin",
        "POST",
        "/api/auth/register",
        None,
        json!({"email": "eve@example.test", "password": PASSWORD, "full_name": "Eve",
               "role": "admin"})
        .into(),
        403,
    )
    .await;

    // A new pharmacy: active, no fleet, the configured proof policy, no webhook secret.
    let r = s
        .post(
            "/api/vendors/register",
            None,
            with_hostile(
                json!({"email": "new@pharmacy.test", "password": PASSWORD,
                       "business_name": "New Pharmacy", "address": "Unter den Linden 1",
                       "latitude": 52.517, "longitude": 13.389,
                       "require_proof_photo": true, "require_signature": true,
                       "woocommerce_webhook_secret": "0123456789abcdef0123"}),
                w,
                &scene,
                &[],
            ),
        )
        .await;
    r.expect(201);
    let pharmacy = s.stored_vendor(&r.str("vendor_id")).await;
    assert!(pharmacy.is_active && pharmacy.driver_ids.is_empty());
    assert!(!pharmacy.require_proof_photo && !pharmacy.require_signature);
    assert_eq!(pharmacy.woocommerce_webhook_secret, None);
    let owner = s.stored_user(&pharmacy.user_id.to_string()).await;
    assert_eq!(owner.role.as_str(), "vendor");

    // A new driver: offline, active, nothing earned, no order, in the registering fleet.
    let r = s
        .post(
            "/api/drivers/register",
            vendor,
            with_hostile(
                json!({"email": "nia@corner.test", "password": PASSWORD,
                       "full_name": "Nia New", "vehicle_type": "car"}),
                w,
                &scene,
                &["vendor_id"],
            ),
        )
        .await;
    r.expect(201);
    let nia = s.stored_driver(&r.str("driver_id")).await;
    assert_eq!(nia.vendor_id.to_string(), w.vendor.id);
    assert_eq!(nia.status.as_str(), "offline");
    assert!(nia.is_active && nia.active_order_id.is_none());
    assert_eq!(
        (nia.total_deliveries, nia.total_earnings.to_decimal()),
        (0, 0.0)
    );
    let account = s.stored_user(&nia.user_id.to_string()).await;
    assert_eq!(account.role.as_str(), "driver");

    // An account, by the admin: only `is_active`.
    let path = format!("/api/admin/users/{}", w.other_customer.user_id);
    check(
        s,
        "admin deactivates an account",
        (
            "PATCH",
            &path,
            Some(&w.admin.token),
            with_hostile(json!({"is_active": false}), w, &scene, &[]),
        ),
        200,
        &[(
            format!("user {}", w.other_customer.user_id),
            // Deactivation also ends the account's sessions (its token generation).
            &["is_active", "sessions", "updated_at", "version"],
        )],
    )
    .await;
    scene.w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_public_and_other_roles_see_only_their_fields() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    s.post(
        &format!("/api/drivers/{}/location", w.driver.id),
        Some(&w.driver.who.token),
        json!({"latitude": 52.5250, "longitude": 13.4080, "accuracy": 5.0}),
    )
    .await
    .expect(200);
    let view_keys = [
        "accepted_at",
        "attempt",
        "attempt_failed",
        "cancelled_at",
        "created_at",
        "delivered_at",
        "destination",
        "driver",
        "eta_minutes",
        "order_number",
        "out_for_delivery_at",
        "picked_up_at",
        "pickup",
        "status",
        "timeline",
        "vendor_name",
    ];
    let public = |extra: &[&str]| {
        let mut keys: Vec<String> = view_keys
            .iter()
            .chain(extra)
            .map(|k| (*k).to_owned())
            .collect();
        keys.sort();
        keys
    };
    let view = s
        .public(&format!("/api/tracking/{}", scene.work_token))
        .await;
    view.expect(200);
    assert_eq!(keys(&view.json), public(&[]));
    assert_eq!(
        keys(&view.json["driver"]),
        [
            "first_name",
            "last_location_update",
            "location",
            "vehicle_type"
        ]
    );
    assert_eq!(view.json["driver"]["first_name"], "Dee");
    for entry in view.json["timeline"].as_array().unwrap() {
        assert_eq!(keys(entry), ["at", "status"]);
    }
    let with_trail = s
        .public(&format!("/api/tracking/{}?trail=true", scene.work_token))
        .await;
    with_trail.expect(200);
    assert_eq!(keys(&with_trail.json), public(&["trail"]));

    let mut tracker = Socket::connect(
        &s.ws_url(&format!("/ws/tracking/{}", scene.work_token)),
        "tracker",
    )
    .await;
    let initial = tracker.expect("initial_state").await;
    let mut expected = public(&["sent_at", "type"]);
    if initial.get("trail").is_some() {
        expected = public(&["sent_at", "trail", "type"]);
    }
    assert_eq!(keys(&initial), expected);
    s.patch(
        &format!("/api/orders/{}", scene.work),
        &w.driver.who.token,
        json!({"status": "out_for_delivery"}),
    )
    .await
    .expect(200);
    let status = tracker.expect("order_status").await;
    assert_eq!(
        keys(&status),
        [
            "accepted_at",
            "attempt",
            "attempt_failed",
            "cancelled_at",
            "delivered_at",
            "out_for_delivery_at",
            "picked_up_at",
            "sent_at",
            "status",
            "timeline",
            "type"
        ]
    );
    s.post(
        &format!("/api/drivers/{}/location", w.driver.id),
        Some(&w.driver.who.token),
        json!({"latitude": 52.5260, "longitude": 13.4060}),
    )
    .await
    .expect(200);
    let fix = tracker.expect("driver_location").await;
    assert_eq!(keys(&fix), PUBLIC_FIX_FIELDS);
    let texts = [
        view.text.clone(),
        with_trail.text.clone(),
        tracker.transcript(),
    ];
    for text in &texts {
        for secret in FIXED_PERSONAL_DETAILS.into_iter().chain([
            w.customer.user_id.as_str(),
            w.driver.who.user_id.as_str(),
            w.driver.id.as_str(),
            w.vendor.id.as_str(),
            w.vendor.owner.user_id.as_str(),
            scene.work.as_str(),
            "ring twice",
            "Amoxicillin",
            "@",
        ]) {
            assert!(!text.contains(secret), "the public sees {secret:?}: {text}");
        }
    }
    tracker.close().await;

    // Another pharmacy, a driver or a customer reading a pharmacy: public fields only.
    let private_vendor_keys = [
        "user_id",
        "email",
        "driver_ids",
        "require_proof_photo",
        "require_signature",
        "require_handover_code",
        "has_woocommerce_webhook_secret",
        "woocommerce_webhook_secret",
    ];
    for (who, own) in [
        (&w.customer, None),
        (&w.other_vendor.owner, Some(&w.other_vendor.id)),
        (&w.driver.who, None),
    ] {
        let one = s
            .get(&format!("/api/vendors/{}", w.vendor.id), &who.token)
            .await;
        one.expect(200);
        let all = s.get("/api/vendors", &who.token).await;
        all.expect(200);
        let others = all
            .json
            .as_array()
            .unwrap()
            .iter()
            .filter(|v| own.is_none_or(|own| v["id"] != own.as_str()));
        for record in std::iter::once(&one.json).chain(others) {
            for key in private_vendor_keys {
                assert!(record.get(key).is_none(), "{key} shown: {record}");
            }
        }
    }
    // The owner sees its own.
    let own = s
        .get(
            &format!("/api/vendors/{}", w.vendor.id),
            &w.vendor.owner.token,
        )
        .await;
    assert!(own.json["driver_ids"].is_array() && own.json["email"].is_string());

    // Accounts never carry password hashes, whoever reads them.
    let users = s.get("/api/admin/users?limit=200", &w.admin.token).await;
    users.expect(200);
    let mut texts = vec![users.text.clone()];
    for who in [&w.admin, &w.customer, &w.vendor.owner, &w.driver.who] {
        let me = s.get("/api/auth/me", &who.token).await;
        me.expect(200);
        texts.push(me.text.clone());
    }
    let fleet = s.get("/api/drivers", &w.vendor.owner.token).await;
    texts.push(fleet.text.clone());
    for text in &texts {
        assert!(
            !text.contains("password") && !text.contains("$argon2"),
            "{text}"
        );
    }
    scene.w.server.stop().await;
}
