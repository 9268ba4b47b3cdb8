//! API2:2023 Broken Authentication: expired, tampered, unsigned, wrongly signed and misused
//! tokens; deactivated accounts; login throttling. Tokens are forged here with the secret the
//! server generated in its data directory, so a refusal is the server's judgement, not a
//! malformed test token (a correctly forged token is shown to work first).

use base64::Engine as _;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;
use jsonwebtoken::{Algorithm, EncodingKey, Header};
use serde_json::{Value, json};

use super::Scene;
use crate::support::*;

fn sign(claims: &Value, algorithm: Algorithm, secret: &[u8]) -> String {
    jsonwebtoken::encode(
        &Header::new(algorithm),
        claims,
        &EncodingKey::from_secret(secret),
    )
    .expect("signing")
}

fn b64(value: &Value) -> String {
    URL_SAFE_NO_PAD.encode(value.to_string())
}

/// The token with its payload replaced by `change(payload)`, signature kept.
fn tampered(token: &str, change: impl FnOnce(&mut Value)) -> String {
    let parts: Vec<&str> = token.split('.').collect();
    let mut payload: Value =
        serde_json::from_slice(&URL_SAFE_NO_PAD.decode(parts[1]).unwrap()).unwrap();
    change(&mut payload);
    format!("{}.{}.{}", parts[0], b64(&payload), parts[2])
}

/// An unsigned token (`alg: none`) with `signature` appended.
fn unsigned(claims: &Value, signature: &str) -> String {
    format!(
        "{}.{}.{signature}",
        b64(&json!({"alg": "none", "typ": "JWT"})),
        b64(claims)
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_expired_and_misused_tokens_are_refused_and_change_nothing() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let secret = s.jwt_secret();
    let now = chrono::Utc::now().timestamp();
    let vendor = &w.vendor.owner;
    let claims = |iat: i64, exp: i64| {
        json!({"sub": vendor.user_id, "role": "vendor", "typ": "access",
               "iat": iat, "exp": exp, "jti": "e2e-forged"})
    };
    let without = |key: &str| {
        let mut c = claims(now, now + 600);
        c.as_object_mut().unwrap().remove(key);
        c
    };
    let valid = claims(now, now + 600);
    let signature = vendor.token.rsplit('.').next().unwrap().to_owned();

    // A token forged with the server's own secret works: the forging is faithful, so what
    // follows is refused for what is wrong with it.
    let forged = sign(&valid, Algorithm::HS256, &secret);
    let me = s.get("/api/auth/me", &forged).await;
    me.expect(200);
    assert_eq!(me.json["id"], vendor.user_id.as_str());
    // A role claim is not trusted: the account's role is read from storage.
    let mut as_admin = valid.clone();
    as_admin["role"] = json!("admin");
    s.refused(
        "a vendor's token claiming admin",
        "GET",
        "/api/admin/users",
        Some(&sign(&as_admin, Algorithm::HS256, &secret)),
        Body::Empty,
        403,
    )
    .await;

    let mut refresh_typed = valid.clone();
    refresh_typed["typ"] = json!("refresh");
    let mut stranger = valid.clone();
    stranger["sub"] = json!("01890000-0000-7000-8000-00000000dead");
    let admin_me = s.get("/api/auth/me", &w.admin.token).await;
    let admin_id = admin_me.str("id");
    let cases: Vec<(&str, String, &str)> = vec![
        (
            "expired a minute ago",
            sign(&claims(now - 960, now - 60), Algorithm::HS256, &secret),
            "token_expired",
        ),
        (
            "expired seconds ago (no leeway)",
            sign(&claims(now - 905, now - 5), Algorithm::HS256, &secret),
            "token_expired",
        ),
        (
            "payload tampered: role admin",
            tampered(&vendor.token, |c| c["role"] = json!("admin")),
            "invalid_token",
        ),
        (
            "payload tampered: the admin's account",
            tampered(&vendor.token, |c| c["sub"] = json!(admin_id)),
            "invalid_token",
        ),
        (
            "payload tampered: expiry pushed out",
            tampered(&vendor.token, |c| c["exp"] = json!(now + 86_400 * 365)),
            "invalid_token",
        ),
        (
            "alg none, no signature",
            unsigned(&valid, ""),
            "invalid_token",
        ),
        (
            "alg none, a real signature kept",
            unsigned(&valid, &signature),
            "invalid_token",
        ),
        (
            "signed with another secret",
            sign(
                &valid,
                Algorithm::HS256,
                b"an-attacker-chosen-secret-of-48-bytes-or-so-000",
            ),
            "invalid_token",
        ),
        (
            "HS512 with the server's secret",
            sign(&valid, Algorithm::HS512, &secret),
            "invalid_token",
        ),
        (
            "HS384 with the server's secret",
            sign(&valid, Algorithm::HS384, &secret),
            "invalid_token",
        ),
        (
            "the vendor's refresh token as access",
            vendor.refresh.clone(),
            "invalid_token",
        ),
        (
            "a refresh-typed token, well signed",
            sign(&refresh_typed, Algorithm::HS256, &secret),
            "invalid_token",
        ),
        (
            "no expiry",
            sign(&without("exp"), Algorithm::HS256, &secret),
            "invalid_token",
        ),
        (
            "no type",
            sign(&without("typ"), Algorithm::HS256, &secret),
            "invalid_token",
        ),
        (
            "no subject",
            sign(&without("sub"), Algorithm::HS256, &secret),
            "invalid_token",
        ),
        (
            "an account that does not exist",
            sign(&stranger, Algorithm::HS256, &secret),
            "invalid_token",
        ),
        ("not a JWT", "not-a-jwt".into(), "invalid_token"),
        ("three empty parts", "..".into(), "invalid_token"),
    ];
    let count = cases.len();
    for (case, token, code) in cases {
        // The vendor could cancel this order with a good token.
        let path = format!("/api/orders/{}", scene.pending);
        let r = s
            .refused(case, "DELETE", &path, Some(&token), Body::Empty, 401)
            .await;
        assert_eq!(r.header("www-authenticate"), Some("Bearer"), "{case}");
        // Expired says so; every other failure is one undistinguished answer.
        let expected_codes: &[&str] = if code == "token_expired" {
            &["token_expired"]
        } else {
            &["invalid_token", "unauthenticated", "wrong_token_type"]
        };
        assert!(expected_codes.contains(&r.code()), "{case}: {}", r.text);
        // The WebSocket handshake refuses it too.
        let (status, _) =
            ws_refused(&s.ws_url(&format!("/ws/vendor/{}?token={token}", w.vendor.id))).await;
        assert_eq!(status, 401, "{case} over WebSocket");
    }
    assert!(count >= 18);

    // Authorization headers that are not a bearer token.
    for (case, value) in [
        ("basic credentials", "Basic YWRtaW46YWRtaW4="),
        ("empty bearer", "Bearer "),
        ("scheme only", "Bearer"),
        ("token without scheme", vendor.token.as_str()),
    ] {
        let before = s.snapshot().await;
        let r = s
            .raw(
                "DELETE",
                &format!("/api/orders/{}", scene.pending),
                None,
                &[("authorization", value)],
                None,
            )
            .await;
        assert_eq!(r.status.as_u16(), 401, "{case}: {}", r.text);
        r.assert_error_format(case);
        s.snapshot().await.assert_same(&before, case);
    }
    // An access token is not a refresh token either.
    s.refused(
        "access token used to refresh",
        "POST",
        "/api/auth/refresh",
        None,
        json!({"refresh_token": vendor.token}).into(),
        401,
    )
    .await;
    // Positive control: the vendor's real token still cancels.
    s.call(
        "DELETE",
        &format!("/api/orders/{}", scene.pending),
        Some(&vendor.token),
        None,
    )
    .await
    .expect(200);
    scene.w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_account_is_locked_out_everywhere_at_once() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let vendor = &w.vendor.owner;
    let dashboard = s.ws_url(&format!(
        "/ws/vendor/{}?token={}",
        w.vendor.id, vendor.token
    ));
    Socket::connect(&dashboard, "dashboard before")
        .await
        .close()
        .await;
    s.patch(
        &format!("/api/admin/users/{}", vendor.user_id),
        &w.admin.token,
        json!({"is_active": false}),
    )
    .await
    .expect(200);

    let path = format!("/api/orders/{}", scene.pending);
    let r = s
        .refused(
            "cancel with a deactivated account's token",
            "DELETE",
            &path,
            Some(&vendor.token),
            Body::Empty,
            401,
        )
        .await;
    assert_eq!(r.code(), "account_inactive");
    s.refused(
        "refresh of a deactivated account",
        "POST",
        "/api/auth/refresh",
        None,
        json!({"refresh_token": vendor.refresh}).into(),
        401,
    )
    .await;
    s.refused(
        "login of a deactivated account",
        "POST",
        "/api/auth/login",
        None,
        json!({"email": vendor.email, "password": PASSWORD}).into(),
        401,
    )
    .await;
    assert_eq!(ws_refused(&dashboard).await.0, 401);
    // Its drivers are not affected.
    s.get("/api/auth/me", &w.driver.who.token).await.expect(200);
    scene.w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn repeated_login_failures_are_throttled_with_retry_after() {
    // Its own server: failures count per client address too, and every client here is
    // 127.0.0.1.
    let s = TestServer::start().await;
    let ann = s
        .customer("ann@example.test", CUSTOMER_NAME, CUSTOMER_PHONE)
        .await;
    let before = s.snapshot().await;
    for attempt in 1..=5 {
        let r = s.login(&ann.email, "wrong-password").await;
        assert_eq!(r.status.as_u16(), 401, "attempt {attempt}: {}", r.text);
        assert_eq!(r.code(), "bad_credentials");
    }
    // Locked now, even with the right password, whatever the case of the address.
    for email in [ann.email.as_str(), "ANN@Example.TEST"] {
        let r = s
            .refused(
                "login after five failures",
                "POST",
                "/api/auth/login",
                None,
                json!({"email": email, "password": PASSWORD}).into(),
                429,
            )
            .await;
        assert_eq!(r.code(), "too_many_attempts");
        let retry: u64 = r
            .header("retry-after")
            .and_then(|v| v.parse().ok())
            .expect("a Retry-After in seconds");
        assert!((1..=15 * 60).contains(&retry), "{retry}");
    }
    s.snapshot().await.assert_same(&before, "throttled logins");
    // Other accounts still sign in; the locked one's tokens still work.
    s.customer("bob@example.test", "Bob", "+49 1").await;
    s.signed_in("bob@example.test").await;
    s.get("/api/auth/me", &ann.token).await.expect(200);
    s.stop().await;
}
