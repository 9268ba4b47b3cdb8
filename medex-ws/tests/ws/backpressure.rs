//! A subscriber that stops reading costs only itself.

use std::sync::Arc;
use std::time::Duration;

use chrono::Utc;
use futures_util::StreamExt;
use medex_core::events::{DriverLocation, Event, EventBus};
use medex_core::prelude::*;
use medex_ws::WsConfig;
use tokio::net::TcpSocket;
use tokio::sync::mpsc;
use tokio_tungstenite::MaybeTlsStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

/// Status events per round: the healthy reader gets them all before the next round.
const ROUND: usize = 8;
/// An upper bound on rounds, far beyond what fills any socket buffer (4 KiB events).
const MAX_ROUNDS: usize = 20_000;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_subscriber_does_not_delay_a_healthy_one_and_is_closed_with_1013() {
    let world = World::with(WsConfig {
        status_queue: 32,
        // The stalled client reads in the end: the server must still be waiting to write then.
        write_timeout: Duration::from_secs(600),
        ..test_config()
    })
    .await;
    let p = &world.pharmacy;
    let url = world.vendor_url(p);

    // A client that never reads, with a small receive buffer so it fills quickly.
    let mut stalled = connect_small_buffered(&world, &url).await;

    // A healthy client that reads everything and reports what it saw.
    let healthy = connect(&url).await;
    let (seen_tx, mut seen) = mpsc::unbounded_channel::<serde_json::Value>();
    tokio::spawn(async move {
        let mut healthy = healthy;
        while let Some(Ok(message)) = healthy.next().await {
            if let Message::Text(text) = message {
                let _ = seen_tx.send(serde_json::from_str(&text).unwrap());
            }
        }
    });
    assert_eq!(
        recv(&mut seen).await["type"],
        "initial_state",
        "healthy client"
    );
    assert_eq!(world.hub.subscriber_count(), 2);

    let order = world.pending_order().await;
    assert_eq!(recv(&mut seen).await["type"], "order_created");
    let mut big = order.clone();
    let padding = "p".repeat(4000);

    let mut sequence = 0u64;
    let mut rounds = 0;
    while world.hub.subscriber_count() == 2 {
        rounds += 1;
        assert!(
            rounds <= MAX_ROUNDS,
            "the stalled subscriber was never dropped"
        );
        for _ in 0..ROUND {
            sequence += 1;
            big.notes = Some(format!("{sequence} {padding}"));
            world.hub.publish(Event::OrderStatusChanged {
                order: Arc::new(big.clone()),
                previous: OrderStatus::Pending,
            });
            world
                .hub
                .publish(Event::DriverLocation(location(p, sequence as f64 / 1e6)));
        }
        // The healthy client gets every status event of the round, in order, while the
        // other one is stuck: fan-out does not wait for it.
        let mut expected = sequence - ROUND as u64 + 1;
        while expected <= sequence {
            let message = recv(&mut seen).await;
            match message["type"].as_str() {
                Some("order_status") => {
                    let notes = message["order"]["notes"].as_str().unwrap();
                    assert_eq!(notes.split(' ').next(), Some(expected.to_string().as_str()));
                    expected += 1;
                }
                Some("driver_location") => {}
                other => panic!("unexpected {other:?}"),
            }
        }
    }
    assert_eq!(world.hub.subscriber_count(), 1, "only the stalled one left");

    // The healthy one still receives locations, coalesced to the newest.
    world.hub.publish(Event::DriverLocation(location(p, 0.5)));
    loop {
        let message = recv(&mut seen).await;
        if message["type"] == "driver_location" && message["latitude"] == 52.5 {
            break;
        }
    }

    // When the stalled client finally reads, it finds what fitted in the socket, then 1013:
    // it resyncs from initial_state on reconnect.
    let (code, messages) = close_code(&mut stalled).await;
    assert_eq!(code, CloseCode::Again);
    assert_eq!(messages[0]["type"], "initial_state");
    let statuses = messages
        .iter()
        .filter(|m| m["type"] == "order_status")
        .count() as u64;
    assert!(statuses < sequence, "it could not have received everything");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_stalled_tracker_sees_only_the_latest_position() {
    let world = World::with(WsConfig {
        write_timeout: Duration::from_secs(600),
        ..test_config()
    })
    .await;
    let order = world.assigned_order().await;
    let p = &world.pharmacy;
    let url = world.tracking_url(&order);
    let mut stalled = connect_small_buffered(&world, &url).await;
    let mut healthy = connect(&url).await;
    assert_eq!(next_json(&mut healthy).await["type"], "initial_state");

    let mut driver = connect(&world.driver_url(p)).await;
    assert_eq!(next_json(&mut driver).await["type"], "connected");
    let fixes = 2000;
    for i in 1..=fixes {
        let latitude = 52.0 + f64::from(i) / 1e5;
        send_json(&mut driver, fix(latitude, 13.4)).await;
        // Every so often, wait for the healthy tracker to catch up: it is never behind the
        // driver by more than what coalescing allows.
        if i % 100 == 0 {
            loop {
                let seen = next_of(&mut healthy, "driver_location").await;
                if seen["latitude"] == latitude {
                    break;
                }
            }
        }
    }
    // The stalled tracker: whatever it finally reads ends with the newest position, and it is
    // still subscribed (locations never overflow a connection).
    assert_eq!(world.hub.subscriber_count(), 3);
    let newest = 52.0 + f64::from(fixes) / 1e5;
    let mut last = None;
    let mut count = 0;
    while last != Some(newest) {
        let seen = next_json(&mut stalled).await;
        if seen["type"] == "driver_location" {
            count += 1;
            last = seen["latitude"].as_f64();
        }
    }
    assert!(
        count < fixes,
        "locations coalesced while it did not read: {count}"
    );
}

fn location(p: &Pharmacy, offset: f64) -> Arc<DriverLocation> {
    Arc::new(DriverLocation {
        driver_id: p.driver.id,
        vendor_id: p.vendor.id,
        fix: LocationFix {
            driver_id: p.driver.id,
            latitude: 52.0 + offset,
            longitude: 13.4,
            speed: None,
            heading: None,
            accuracy: None,
            recorded_at: Utc::now(),
        },
        order_id: None,
        tracking_token: None,
        order_status: None,
        eta_minutes: None,
        run: Vec::new(),
    })
}

async fn recv(seen: &mut mpsc::UnboundedReceiver<serde_json::Value>) -> serde_json::Value {
    tokio::time::timeout(HANG, seen.recv())
        .await
        .expect("the healthy subscriber was delayed past the hang guard")
        .expect("the healthy subscriber's connection ended")
}

/// Connects to `url` with a small receive buffer, so that a client that does not read fills
/// it quickly.
async fn connect_small_buffered(world: &World, url: &str) -> Client {
    let socket = TcpSocket::new_v4().unwrap();
    socket.set_recv_buffer_size(4096).unwrap();
    let stream = socket.connect(world.addr).await.unwrap();
    let (client, _) = tokio_tungstenite::client_async(url, MaybeTlsStream::Plain(stream))
        .await
        .unwrap();
    client
}
