//! Message size, invalid input, abuse, fix rate and idle connections.

use std::time::Duration;

use medex_ws::WsConfig;
use serde_json::json;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_oversized_message_closes_with_1009() {
    let world = World::start().await;
    let mut driver = connect_greeted(&world.driver_url(&world.pharmacy), "connected").await;
    let padding = "x".repeat(5000);
    send_json(
        &mut driver,
        json!({"type": "location", "latitude": 1, "longitude": 2, "pad": padding}),
    )
    .await;
    let (code, _) = close_code(&mut driver).await;
    assert_eq!(code, CloseCode::Size);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn invalid_messages_get_an_error_and_the_connection_stays() {
    let world = World::start().await;
    let order = world.assigned_order().await;
    let p = &world.pharmacy;
    let mut vendor = connect_greeted(&world.vendor_url(p), "initial_state").await;
    let mut driver = connect_greeted(&world.driver_url(p), "connected").await;

    let check = async |driver: &mut Client, text: &str, code: &str| {
        send_text(driver, text).await;
        let error = next_json(driver).await;
        assert_eq!(error["type"], "error", "{text}");
        assert_eq!(error["code"], code, "{text}: {error}");
        assert!(error["detail"].is_string());
        error
    };
    check(&mut driver, "{not json", "invalid_message").await;
    check(&mut driver, r#"{"type":"teleport"}"#, "invalid_message").await;
    check(
        &mut driver,
        r#"{"type":"location","latitude":"north","longitude":1}"#,
        "invalid_message",
    )
    .await;
    let error = check(
        &mut driver,
        r#"{"type":"location","latitude":91,"longitude":1}"#,
        "validation_failed",
    )
    .await;
    assert_eq!(error["errors"][0]["field"], "latitude");
    let error = check(
        &mut driver,
        r#"{"type":"location","latitude":52.5,"longitude":13.4,"speed":9000}"#,
        "validation_failed",
    )
    .await;
    assert_eq!(error["errors"][0]["field"], "speed");

    // Still connected and working.
    send_json(&mut driver, json!({"type": "ping"})).await;
    assert_eq!(next_json(&mut driver).await["type"], "pong");
    send_json(&mut driver, fix(52.525, 13.405)).await;
    let seen = next_of(&mut vendor, "driver_location").await;
    assert_eq!(seen["latitude"], 52.525);
    assert_eq!(seen["order_id"], order.id.to_string());

    // Trackers and dashboards do not send locations.
    let mut tracker = connect_greeted(&world.tracking_url(&order), "initial_state").await;
    check(
        &mut tracker,
        &fix(1.0, 2.0).to_string(),
        "unexpected_message",
    )
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn persistent_abuse_closes_with_1008() {
    let world = World::start().await;
    let mut driver = connect_greeted(&world.driver_url(&world.pharmacy), "connected").await;
    for _ in 0..10 {
        send_text(&mut driver, "garbage").await;
    }
    let (code, seen) = close_code(&mut driver).await;
    assert_eq!(code, CloseCode::Policy);
    assert_eq!(seen.len(), 10, "each invalid message was answered");
    assert!(seen.iter().all(|m| m["type"] == "error"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn fixes_faster_than_the_minimum_interval_coalesce_to_the_latest() {
    let world = World::with(WsConfig {
        min_fix_interval: Duration::from_secs(2),
        ..test_config()
    })
    .await;
    let p = &world.pharmacy;
    let mut vendor = connect_greeted(&world.vendor_url(p), "initial_state").await;
    let mut driver = connect(&world.driver_url(p)).await;
    let connected = next_json(&mut driver).await;
    assert_eq!(connected["min_fix_interval_ms"], 2000);

    send_json(&mut driver, fix(52.0, 13.0)).await;
    send_json(&mut driver, fix(52.1, 13.1)).await;
    send_json(&mut driver, fix(52.2, 13.2)).await;
    assert_eq!(
        next_of(&mut vendor, "driver_location").await["latitude"],
        52.0
    );
    // The one in between is never recorded; the latest is, once the interval has passed.
    assert_eq!(
        next_of(&mut vendor, "driver_location").await["latitude"],
        52.2
    );
    // The trail is written behind the fan-out: a flush writes what was accepted.
    let recorded = world.recent_latitudes(p.driver.id).await;
    assert_eq!(recorded, [52.0, 52.2]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_silent_client_is_pinged_then_closed_when_idle() {
    let world = World::with(pinging_config()).await;
    let order = world.pending_order().await;
    let mut tracker = connect(&world.tracking_url(&order)).await;
    // Not reading means not answering pings: to the server the client is gone.
    tokio::time::sleep(Duration::from_millis(1000)).await;
    let (code, seen) = close_code(&mut tracker).await;
    assert_eq!(code, CloseCode::Away);
    assert_eq!(seen[0]["type"], "initial_state");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_answering_pings_stays_connected() {
    let world = World::with(pinging_config()).await;
    let order = world.pending_order().await;
    let mut tracker = connect_greeted(&world.tracking_url(&order), "initial_state").await;
    // Reading answers pings; over several idle timeouts nothing but pings arrives.
    for _ in 0..4 {
        assert_eq!(quiet(&mut tracker).await, Ok(()));
    }
    world
        .medex
        .change_status(
            &world.pharmacy.owner,
            order.id,
            medex_core::model::OrderStatus::Accepted,
            None,
        )
        .await
        .unwrap();
    assert_eq!(next_json(&mut tracker).await["status"], "accepted");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn shutdown_closes_every_connection_with_1001_and_refuses_new_ones() {
    let world = World::start().await;
    let order = world.pending_order().await;
    let mut vendor = connect(&world.vendor_url(&world.pharmacy)).await;
    let mut tracker = connect(&world.tracking_url(&order)).await;
    assert_eq!(world.server.open_connections(), 2);

    let server = world.server.clone();
    let shutdown = tokio::spawn(async move { server.shutdown().await });
    for client in [&mut vendor, &mut tracker] {
        let (code, seen) = close_code(client).await;
        assert_eq!(code, CloseCode::Away);
        assert_eq!(seen[0]["type"], "initial_state");
    }
    tokio::time::timeout(HANG, shutdown).await.unwrap().unwrap();
    assert_eq!(world.server.open_connections(), 0);
    assert_eq!(world.hub.subscriber_count(), 0);

    let (status, body) = refused(&world.tracking_url(&order), &[]).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (503, Some("shutting_down"))
    );
}

/// Settings that ping every 100 ms and drop a client that has not answered for 400 ms.
fn pinging_config() -> WsConfig {
    WsConfig {
        ping_interval: Duration::from_millis(100),
        idle_timeout: Duration::from_millis(400),
        ..test_config()
    }
}
