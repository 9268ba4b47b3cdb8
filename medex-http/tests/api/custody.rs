//! DESIGN §10 through HTTP: failed attempts and returns by the roles the table names, with the
//! right 4xx for everyone else; the handover code, shown to whom it belongs and checked at the
//! door; per-order requirements; the custody record and its keys.

use serde_json::{Value, json};

use crate::helpers::*;

/// `PATCH /api/orders/{id}` with `body` by `token`: the status and error code (`ok` for 2xx).
async fn patch(w: &World, order: &str, token: &str, body: Value) -> (u16, String) {
    let r = w
        .app
        .patch(&format!("/api/orders/{order}"), token, body)
        .await;
    if r.status.as_u16() >= 400 {
        r.assert_error_format();
        (r.status.as_u16(), r.code().to_owned())
    } else {
        (r.status.as_u16(), "ok".to_owned())
    }
}

fn fields(r: &Reply) -> Vec<String> {
    r.json["errors"]
        .as_array()
        .map(|e| {
            e.iter()
                .map(|f| f["field"].as_str().unwrap().to_owned())
                .collect()
        })
        .unwrap_or_default()
}

#[tokio::test]
async fn a_failed_attempt_by_each_role_and_with_each_kind_of_bad_input() {
    let w = World::new().await;
    let order = w.order_in("out_for_delivery").await;
    let path = format!("/api/orders/{order}");
    let driver = w.driver.who.token.as_str();
    for (body, field) in [
        (json!({"status": "failed"}), "reason"),
        (
            json!({"status": "failed", "reason": "dog ate it"}),
            "reason",
        ),
        (json!({"status": "failed", "reason": "other"}), "note"),
        (
            json!({"status": "failed", "reason": "other", "note": " \t "}),
            "note",
        ),
        (
            json!({"status": "failed", "reason": "refused", "note": "x".repeat(501)}),
            "note",
        ),
    ] {
        let r = w.app.patch(&path, driver, body.clone()).await;
        r.expect(422);
        assert_eq!(r.code(), "validation_failed", "{body}");
        assert_eq!(fields(&r), [field], "{body}");
    }
    let r = w
        .app
        .patch(&path, driver, json!({"status": "failed", "reason": 7}))
        .await;
    assert!(r.status.is_client_error(), "{}", r.text);
    r.assert_error_format();
    let absent = json!({"status": "failed", "reason": "recipient_absent"});
    for (who, status, code) in [
        (&w.customer.token, 403, "forbidden"),
        (&w.vendor.owner.token, 403, "forbidden"),
        (&w.admin.token, 403, "forbidden"),
        (&w.second_driver.who.token, 404, "not_found"),
        (&w.other_driver.who.token, 404, "not_found"),
        (&w.other_vendor.owner.token, 404, "not_found"),
    ] {
        assert_eq!(
            patch(&w, &order, who, absent.clone()).await,
            (status, code.to_owned())
        );
    }
    assert_eq!(w.stored_order(&order).await.status_history.len(), 5);

    let r = w.app.patch(&path, driver, absent.clone()).await;
    r.expect(200);
    assert_eq!(r.json["status"], "failed");
    assert_eq!(r.json["failure_reason"], "recipient_absent");
    let entry = r.json["status_history"].as_array().unwrap().last().cloned();
    assert_eq!(entry.unwrap()["reason"], "recipient_absent");
    assert_eq!(
        patch(&w, &order, driver, absent).await,
        (409, "invalid_transition".to_owned())
    );
    assert_eq!(
        w.stored_driver(&w.driver).await.status,
        DriverStatus::Busy,
        "it still holds the parcel"
    );
    // The parcel must come back before anything else happens to the order.
    for (who, body, status, code) in [
        (driver, json!({"status": "returned"}), 403, "forbidden"),
        (
            w.customer.token.as_str(),
            json!({"status": "returned"}),
            403,
            "forbidden",
        ),
        (
            w.other_vendor.owner.token.as_str(),
            json!({"status": "returned"}),
            404,
            "not_found",
        ),
        (
            w.admin.token.as_str(),
            json!({"status": "cancelled"}),
            409,
            "invalid_transition",
        ),
        (
            w.vendor.owner.token.as_str(),
            json!({"status": "accepted"}),
            409,
            "invalid_transition",
        ),
    ] {
        assert_eq!(
            patch(&w, &order, who, body.clone()).await,
            (status, code.to_owned()),
            "{body}"
        );
    }
    let r = w.app.delete(&path, &w.admin.token).await;
    r.expect(409);

    // A second try on the same run, and a second failure.
    assert_eq!(
        patch(&w, &order, driver, json!({"status": "out_for_delivery"})).await,
        (200, "ok".to_owned())
    );
    assert_eq!(
        patch(
            &w,
            &order,
            driver,
            json!({"status": "failed", "reason": "other", "note": "Gate locked"})
        )
        .await,
        (200, "ok".to_owned())
    );

    // The pharmacy confirms the return: the driver is free and paid nothing.
    let r = w
        .set_status(&order, &w.vendor.owner.token, "returned")
        .await;
    r.expect(200);
    assert_eq!(r.json["driver_id"], w.driver.id.as_str());
    let freed = w.stored_driver(&w.driver).await;
    assert_eq!(
        (
            freed.status,
            freed.total_deliveries,
            freed.total_earnings.cents()
        ),
        (DriverStatus::Available, 0, 0)
    );
    assert_eq!(
        patch(&w, &order, driver, json!({"status": "out_for_delivery"})).await,
        (403, "forbidden".to_owned())
    );
    // A new attempt: attempt 2, no driver, assign again.
    let r = w
        .set_status(&order, &w.vendor.owner.token, "accepted")
        .await;
    r.expect(200);
    assert_eq!(
        (&r.json["attempt"], &r.json["driver_id"]),
        (&json!(2), &Value::Null)
    );
    w.assign(&order, &w.second_driver).await.expect(409);
    w.available(&w.second_driver).await;
    let r = w.assign(&order, &w.second_driver).await;
    r.expect(200);
    assert_eq!(r.json["driver_id"], w.second_driver.id.as_str());
    w.app.get(&path, &w.driver.who.token).await.expect(404);
}

#[tokio::test]
async fn a_returned_order_is_cancelled_by_its_pharmacy() {
    let w = World::new().await;
    let order = w.order_in("returned").await;
    let path = format!("/api/orders/{order}");
    let r = w.app.delete(&path, &w.customer.token).await;
    r.expect(409);
    let r = w
        .app
        .delete(
            &format!("{path}?reason=moved%20away"),
            &w.vendor.owner.token,
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["status"], "cancelled");
    assert_eq!(r.json["cancel_reason"], "moved away");
}

#[tokio::test]
async fn the_handover_code_is_shown_to_its_owner_and_checked_at_the_door() {
    let w = World::new().await;
    let mut body = w.order_body();
    body["require_handover_code"] = json!(true);
    body["require_signature"] = json!(false);
    let placed = w
        .app
        .post("/api/orders", Some(&w.customer.token), body)
        .await;
    placed.expect(201);
    let order = placed.json["id"].as_str().unwrap().to_owned();
    let code = placed.json["handover_code"].as_str().unwrap().to_owned();
    assert_eq!(placed.json["require_handover_code"], true);
    let path = format!("/api/orders/{order}");
    for who in [&w.customer, &w.admin] {
        let r = w.app.get(&path, &who.token).await;
        r.expect(200);
        assert_eq!(r.json["handover_code"], code.as_str());
        let list = w.app.get("/api/orders", &who.token).await;
        assert_eq!(list.json[0]["handover_code"], code.as_str());
    }
    w.set_status(&order, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);
    w.available(&w.driver).await;
    w.assign(&order, &w.driver).await.expect(200);
    let mut answers = vec![];
    for step in ["picked_up", "out_for_delivery"] {
        let r = w.set_status(&order, &w.driver.who.token, step).await;
        r.expect(200);
        answers.push(r.text.clone());
    }
    for (who, reads) in [
        (
            &w.vendor.owner,
            vec![
                path.clone(),
                "/api/orders".into(),
                format!("/api/vendors/{}/orders", w.vendor.id),
            ],
        ),
        (&w.driver.who, vec![path.clone(), "/api/orders".into()]),
    ] {
        for read in reads {
            let r = w.app.get(&read, &who.token).await;
            r.expect(200);
            answers.push(r.text.clone());
        }
    }
    for text in &answers {
        assert!(!text.contains("handover_code\":\""), "{text}");
        assert!(!text.contains(&format!("\"{code}\"")), "{text}");
    }

    let driver = w.driver.who.token.as_str();
    for malformed in ["12345", "1234567", "12a456", "", "١٢٣٤٥٦"] {
        let r = w
            .app
            .patch(
                &path,
                driver,
                json!({"status": "delivered", "handover_code": malformed}),
            )
            .await;
        r.expect(422);
        assert_eq!(fields(&r), ["handover_code"], "{malformed:?}");
    }
    let r = w
        .app
        .patch(&path, driver, json!({"status": "delivered"}))
        .await;
    r.expect(422);
    assert_eq!(r.code(), "handover_code_required");
    let wrong = format!("{:06}", (code.parse::<u32>().unwrap() + 1) % 1_000_000);
    let r = w
        .app
        .patch(
            &path,
            driver,
            json!({"status": "delivered", "handover_code": wrong}),
        )
        .await;
    r.expect(422);
    assert_eq!(r.code(), "handover_code_invalid");
    assert!(r.json["detail"].as_str().unwrap().contains("4 tries left"));
    assert_eq!(w.stored_order(&order).await.handover_failures, 1);
    let r = w
        .app
        .patch(
            &path,
            driver,
            json!({"status": "delivered", "handover_code": code}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["status"], "delivered");
    assert!(r.json.get("handover_code").is_none(), "not for the driver");
}

#[tokio::test]
async fn requirements_follow_the_pharmacy_and_are_raised_never_lowered() {
    let w = World::new().await;
    let vendor = format!("/api/vendors/{}", w.vendor.id);
    let r = w
        .app
        .patch(
            &vendor,
            &w.vendor.owner.token,
            json!({"require_handover_code": true}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["require_handover_code"], true);
    let public = w.app.get(&vendor, &w.customer.token).await;
    assert!(public.json.get("require_handover_code").is_none());
    let mut body = w.order_body();
    body["require_handover_code"] = json!(false);
    body["require_proof_photo"] = json!(true);
    let placed = w
        .app
        .post("/api/orders", Some(&w.customer.token), body)
        .await;
    placed.expect(201);
    assert_eq!(
        (
            &placed.json["require_handover_code"],
            &placed.json["require_proof_photo"],
            &placed.json["require_signature"]
        ),
        (&json!(true), &json!(true), &json!(false))
    );
    let r = w
        .app
        .patch(
            &vendor,
            &w.vendor.owner.token,
            json!({"require_handover_code": "yes"}),
        )
        .await;
    r.expect(422);
}

#[tokio::test]
async fn the_custody_record_is_served_to_the_parties_and_the_keys_to_anyone() {
    let w = World::new().await;
    let order = w.order_in("failed").await;
    let path = format!("/api/orders/{order}/custody");
    for who in [&w.customer, &w.vendor.owner, &w.driver.who, &w.admin] {
        let r = w.app.get(&path, &who.token).await;
        r.expect(200);
        assert_eq!(r.json["verified"], true, "{}", r.text);
        assert_eq!(r.json["order_id"], order.as_str());
        let entries = r.json["entries"].as_array().unwrap();
        assert_eq!(entries.len(), 6);
        assert_eq!(r.json["head_hash"], entries[5]["hash"]);
        assert_eq!(entries[0]["prev_hash"], order.as_str());
        for entry in entries {
            assert_eq!(
                keys(entry),
                [
                    "actor_id",
                    "actor_role",
                    "at",
                    "hash",
                    "location",
                    "note",
                    "prev_hash",
                    "proof_sha256",
                    "reason",
                    "status"
                ]
            );
        }
    }
    for who in [
        &w.other_customer,
        &w.other_vendor.owner,
        &w.second_driver.who,
    ] {
        w.app.get(&path, &who.token).await.expect(404);
    }
    w.app
        .get("/api/orders/nope/custody", &w.customer.token)
        .await
        .expect(422);
    let keys = w.app.public("/api/custody/keys").await;
    keys.expect(200);
    let listed = keys.json.as_array().unwrap();
    assert_eq!(listed.len(), 1);
    assert_eq!(
        listed[0]["key_id"],
        w.app.get(&path, &w.admin.token).await.json["key_id"]
    );
    assert_eq!(listed[0]["public_key"].as_str().unwrap().len(), 44);
}

#[tokio::test]
async fn the_daily_report_counts_failed_attempts_and_returns_in_json_and_csv() {
    let w = World::new().await;
    w.order_in("returned").await;
    let day = chrono::Utc::now().date_naive();
    let report = format!(
        "/api/reports/vendors/{}?date={day}&tz=%2B00:00",
        w.vendor.id
    );
    let r = w.app.get(&report, &w.vendor.owner.token).await;
    r.expect(200);
    assert_eq!(
        (&r.json["failed_attempts"], &r.json["returns"]),
        (&json!(1), &json!(1))
    );
    let csv = w
        .app
        .get(&format!("{report}&format=csv"), &w.vendor.owner.token)
        .await;
    csv.expect(200);
    let mut lines = csv.text.lines();
    let header = lines.next().unwrap();
    let summary = lines.next().unwrap();
    let at = |name: &str| {
        header
            .split(',')
            .position(|h| h.trim_matches('"') == name)
            .unwrap()
    };
    let cells: Vec<&str> = summary.split(',').map(|c| c.trim_matches('"')).collect();
    assert_eq!(
        (cells[at("failed_attempts")], cells[at("returns")]),
        ("1", "1")
    );
    let stats = w
        .app
        .get(
            &format!(
                "/api/reports/vendors/{}/drivers?from={day}&to={day}&tz=%2B00:00",
                w.vendor.id
            ),
            &w.vendor.owner.token,
        )
        .await;
    stats.expect(200);
    let mine = stats
        .json
        .as_array()
        .unwrap()
        .iter()
        .find(|d| d["driver_id"] == w.driver.id.as_str())
        .cloned()
        .unwrap();
    assert_eq!(
        (&mine["failed_attempts"], &mine["returns"]),
        (&json!(1), &json!(1))
    );
}

fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value.as_object().unwrap().keys().cloned().collect();
    keys.sort();
    keys
}
