//! Sessions: register, login, refresh rotation, logout, deactivation, throttling.

use std::time::Duration;

use serde_json::json;

use crate::helpers::*;

#[tokio::test]
async fn sessions_have_the_documented_shape() {
    let app = App::new().await;
    let r = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "Ann@Example.test", "password": PASSWORD, "full_name": "Ann", "phone": "+49 1"}),
        )
        .await;
    r.expect(201);
    assert_eq!(r.json["token_type"], "bearer");
    assert_eq!(r.json["expires_in"], 900);
    assert_eq!(r.json["user"]["email"], "ann@example.test");
    assert_eq!(r.json["user"]["role"], "user");
    assert!(r.json["user"]["id"].is_string());
    assert!(r.json["user"].get("password_hash").is_none());

    let r = app.login("ann@example.test", PASSWORD).await;
    r.expect(200);
    let me = app
        .get("/api/auth/me", r.json["access_token"].as_str().unwrap())
        .await;
    me.expect(200);
    assert_eq!(me.json["full_name"], "Ann");
    assert_eq!(me.json["phone"], "+49 1");
    assert!(me.json.get("password_hash").is_none());
    assert!(!me.text.contains("argon2"));

    // Same e-mail again: 409.
    let r = app
        .post(
            "/api/auth/register",
            None,
            json!({"email": "ann@example.test", "password": PASSWORD, "full_name": "Ann"}),
        )
        .await;
    r.expect(409);
    assert_eq!(r.code(), "email_taken");
}

#[tokio::test]
async fn vendor_and_driver_logins_carry_their_links() {
    let w = World::new().await;
    let me = w.app.get("/api/auth/me", &w.vendor.owner.token).await;
    assert_eq!(me.json["vendor_id"], w.vendor.id.as_str());
    let r = w.app.login(&w.driver.who.email, PASSWORD).await;
    assert_eq!(r.json["user"]["driver_id"], w.driver.id.as_str());
    assert_eq!(r.json["user"]["role"], "driver");
}

#[tokio::test]
async fn refresh_rotates_and_logout_revokes() {
    let app = App::new().await;
    let first = app.customer("ann@example.test").await;
    let r = refresh(&app, &first.refresh).await;
    r.expect(200);
    let second = r.json["refresh_token"].as_str().unwrap().to_owned();
    assert_ne!(second, first.refresh);
    app.get("/api/auth/me", r.json["access_token"].as_str().unwrap())
        .await
        .expect(200);

    // The old refresh token stopped working.
    refresh(&app, &first.refresh).await.expect(401);
    // An access token is not a refresh token.
    refresh(&app, &first.token).await.expect(401);

    logout(&app, &second).await.expect(204);
    refresh(&app, &second).await.expect(401);
    // Logging out twice is fine.
    logout(&app, &second).await.expect(204);
    logout(&app, "garbage").await.expect(401);
}

#[tokio::test]
async fn deactivation_stops_tokens_at_once() {
    let w = World::new().await;
    w.app
        .get("/api/auth/me", &w.customer.token)
        .await
        .expect(200);
    let r = w
        .app
        .patch(
            &format!("/api/admin/users/{}", w.customer.user_id),
            &w.admin.token,
            json!({"is_active": false}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["is_active"], false);
    let r = w.app.get("/api/auth/me", &w.customer.token).await;
    r.expect(401);
    assert_eq!(r.code(), "account_inactive");
    refresh(&w.app, &w.customer.refresh).await.expect(401);
    w.app.login(&w.customer.email, PASSWORD).await.expect(401);
    // An admin cannot lock itself out.
    let me = w.app.get("/api/auth/me", &w.admin.token).await;
    let r = w
        .app
        .patch(
            &format!("/api/admin/users/{}", me.json["id"].as_str().unwrap()),
            &w.admin.token,
            json!({"is_active": false}),
        )
        .await;
    r.expect(422);
    // Reactivated, it works again.
    w.app
        .patch(
            &format!("/api/admin/users/{}", w.customer.user_id),
            &w.admin.token,
            json!({"is_active": true}),
        )
        .await
        .expect(200);
    w.app.login(&w.customer.email, PASSWORD).await.expect(200);
}

#[tokio::test]
async fn repeated_failures_are_throttled_per_account_and_address() {
    let app = App::new().await;
    app.customer("ann@example.test").await;
    for _ in 0..5 {
        let r = app.login("ann@example.test", "wrong-password").await;
        r.expect(401);
        assert_eq!(r.code(), "bad_credentials");
    }
    // This client is refused for this account now, even with the right password, and whatever
    // the case of the address (the router here sees no peer address: every client is one).
    for email in ["ann@example.test", "ANN@example.test"] {
        let r = app.login(email, PASSWORD).await;
        r.expect(429);
        let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
        assert!(retry > 0 && retry <= 15 * 60, "{retry}");
        assert_eq!(r.code(), "too_many_attempts");
    }
    // Other accounts are not affected.
    app.customer("bob@example.test").await;
    app.login("bob@example.test", PASSWORD).await.expect(200);
}

#[tokio::test]
async fn the_lock_ends_with_its_window() {
    let app = App::with_config(medex_http::HttpConfig {
        login_throttle: medex_http::LoginThrottle {
            max_failures_per_account_and_address: 1,
            max_failures_per_address: 100,
            window: Duration::from_millis(200),
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    app.customer("ann@example.test").await;
    app.login("ann@example.test", "wrong-password")
        .await
        .expect(401);
    app.login("ann@example.test", PASSWORD).await.expect(429);
    // Wait for the window to pass (a condition, polled; no timing is asserted).
    let mut status = 429;
    for _ in 0..100 {
        tokio::time::sleep(Duration::from_millis(50)).await;
        status = app
            .login("ann@example.test", PASSWORD)
            .await
            .status
            .as_u16();
        if status != 429 {
            break;
        }
    }
    assert_eq!(status, 200);
}

/// Asks for new tokens with `refresh_token`.
async fn refresh(app: &App, refresh_token: &str) -> Reply {
    app.post(
        "/api/auth/refresh",
        None,
        json!({ "refresh_token": refresh_token }),
    )
    .await
}

/// Ends the session `refresh_token` belongs to.
async fn logout(app: &App, refresh_token: &str) -> Reply {
    app.post(
        "/api/auth/logout",
        None,
        json!({ "refresh_token": refresh_token }),
    )
    .await
}
