//! Who may connect where, decided before the upgrade.

use medex_ws::WsConfig;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_token_may_come_by_query_header_or_subprotocol() {
    let world = World::start().await;
    let p = &world.pharmacy;

    let mut by_query = connect(&world.driver_url(p)).await;
    assert_eq!(next_json(&mut by_query).await["type"], "connected");

    let bearer = format!("Bearer {}", p.driver_token);
    let (mut by_header, _) = connect_with(
        &world.url("/ws/driver"),
        &[("authorization", bearer.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(next_json(&mut by_header).await["type"], "connected");

    let offer = format!("bearer, {}", p.owner_token);
    let (mut by_protocol, response) = connect_with(
        &world.url(&format!("/ws/vendor/{}", p.vendor.id)),
        &[("sec-websocket-protocol", offer.as_str())],
    )
    .await
    .unwrap();
    assert_eq!(
        response.headers()["sec-websocket-protocol"],
        "bearer",
        "the chosen subprotocol is answered, as browsers require"
    );
    assert_eq!(next_json(&mut by_protocol).await["type"], "initial_state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_or_missing_tokens_are_refused_with_401_before_the_upgrade() {
    let world = World::start().await;
    let p = &world.pharmacy;
    let vendor = format!("/ws/vendor/{}", p.vendor.id);
    for (path, headers) in [
        ("/ws/driver".to_owned(), vec![]),
        ("/ws/driver?token=not-a-jwt".to_owned(), vec![]),
        (
            vendor.clone(),
            vec![("authorization", "Bearer forged.token.here")],
        ),
        (
            vendor.clone(),
            vec![("sec-websocket-protocol", "bearer, nope")],
        ),
    ] {
        let (status, body) = refused(&world.url(&path), &headers).await;
        assert_eq!(status, 401, "{path} {headers:?}");
        assert_eq!(body["code"], "unauthenticated", "{body}");
        assert!(body["detail"].is_string(), "{body}");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn roles_and_pharmacies_are_checked_before_the_upgrade() {
    let world = World::start().await;
    let p = &world.pharmacy;
    let mine = format!("/ws/vendor/{}", p.vendor.id);

    // Another pharmacy's dashboard looks absent; other roles are refused.
    let (status, body) = refused(
        &world.url(&format!("{mine}?token={}", world.other.owner_token)),
        &[],
    )
    .await;
    assert_eq!((status, body["code"].as_str()), (404, Some("not_found")));
    let (status, _) = refused(&world.url(&format!("{mine}?token={}", p.driver_token)), &[]).await;
    assert_eq!(status, 403);
    let (status, _) = refused(
        &world.url(&format!("{mine}?token={}", world.customer_token)),
        &[],
    )
    .await;
    assert_eq!(status, 403);
    let (status, _) = refused(
        &world.url(&format!("/ws/driver?token={}", p.owner_token)),
        &[],
    )
    .await;
    assert_eq!(status, 403, "a vendor is not a driver");

    // An admin may watch any pharmacy.
    let admin = world.token(Who::Admin).await;
    let mut watching = connect(&world.url(&format!("{mine}?token={admin}"))).await;
    assert_eq!(next_json(&mut watching).await["type"], "initial_state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_paths_vendors_and_tracking_tokens_are_404() {
    let world = World::start().await;
    let token = &world.pharmacy.owner_token;
    for path in [
        "/ws/tracking/no-such-token".to_owned(),
        "/ws/nothing".to_owned(),
        format!("/ws/vendor/not-an-id?token={token}"),
    ] {
        let (status, body) = refused(&world.url(&path), &[]).await;
        assert_eq!(status, 404, "{path}");
        assert_eq!(body["code"], "not_found");
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_that_are_not_websocket_handshakes_are_refused() {
    let world = World::start().await;
    let plain = http::Request::get(format!("/ws/driver?token={}", world.pharmacy.driver_token))
        .body(())
        .unwrap();
    let response = world.server.handle(plain).await;
    assert_eq!(response.status(), http::StatusCode::UPGRADE_REQUIRED);
    assert_eq!(response.headers()["upgrade"], "websocket");

    let post = http::Request::post("/ws/driver")
        .header("upgrade", "websocket")
        .body(())
        .unwrap();
    assert_eq!(
        world.server.handle(post).await.status(),
        http::StatusCode::METHOD_NOT_ALLOWED
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn origins_outside_the_allowed_list_are_refused() {
    let world = World::with(WsConfig {
        allowed_origins: Some(vec!["https://dispatch.example".into()]),
        ..test_config()
    })
    .await;
    let order = world.pending_order().await;
    let url = world.tracking_url(&order);
    let (status, body) = refused(&url, &[("origin", "https://evil.example")]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (403, Some("origin_not_allowed"))
    );
    let (mut ok, _) = connect_with(&url, &[("origin", "https://dispatch.example")])
        .await
        .unwrap();
    assert_eq!(next_json(&mut ok).await["type"], "initial_state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deactivated_account_is_disconnected_at_the_next_ping() {
    let world = World::with(WsConfig {
        ping_interval: std::time::Duration::from_millis(100),
        ..test_config()
    })
    .await;
    let p = &world.pharmacy;
    let mut driver = connect(&world.driver_url(p)).await;
    assert_eq!(next_json(&mut driver).await["type"], "connected");
    world
        .medex
        .set_user_active(&world.kit.admin, p.driver_actor.user_id, false)
        .await
        .unwrap();
    let (code, _) = close_code(&mut driver).await;
    assert_eq!(
        code,
        tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Policy
    );
}
