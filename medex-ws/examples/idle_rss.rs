//! Measures the resident memory of idle WebSocket connections (DESIGN §8: 10,000 idle
//! connections under 200 MB).
//!
//! Run the server, then the clients in another process, and read the server's RSS:
//!
//! ```text
//! cargo run --release -p medex-ws --example idle_rss -- server 127.0.0.1:9100
//! cargo run --release -p medex-ws --example idle_rss -- clients 127.0.0.1:9100 TOKEN 10000
//! ```
//!
//! The server prints a public tracking token to connect with (the order has a trail, so every
//! connection received a multi-kilobyte `initial_state`), then its RSS and subscriber count
//! every five seconds.

mod support;

use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use medex_core::prelude::*;
use medex_ws::{Hub, WsConfig, WsServer};
use tokio::net::TcpListener;

fn rss_mib() -> f64 {
    let statm = std::fs::read_to_string("/proc/self/statm").unwrap_or_default();
    let pages: f64 = statm
        .split_whitespace()
        .nth(1)
        .and_then(|p| p.parse().ok())
        .unwrap_or(0.0);
    pages * 4096.0 / (1024.0 * 1024.0)
}

async fn server(addr: &str) {
    let hub = Arc::new(Hub::new());
    let world = support::world(&hub).await;
    let medex = world.medex.clone();
    let order = world.order_in(OrderStatus::DriverAssigned).await;
    let (driver_actor, driver_id) = world.drivers[0];
    for i in 0..200 {
        let step = f64::from(i) / 10_000.0;
        medex
            .record_location(
                &driver_actor,
                driver_id,
                FixInput {
                    latitude: 52.52 + step,
                    longitude: 13.40 + step,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
    }

    let ws = WsServer::new(medex, hub.clone(), WsConfig::default());
    let listener = TcpListener::bind(addr).await.unwrap();
    println!("tracking token: {}", order.tracking_token);
    println!("baseline RSS: {:.1} MiB", rss_mib());
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(Duration::from_secs(5)).await;
            println!(
                "RSS {:.1} MiB, {} subscribers",
                rss_mib(),
                hub.subscriber_count()
            );
        }
    });
    support::serve(ws, listener).await;
}

async fn clients(addr: &str, token: &str, count: usize) {
    let url = format!("ws://{addr}/ws/tracking/{token}");
    let mut opened = 0;
    for _ in 0..count {
        match support::connect(&url).await {
            Ok((mut client, _)) => {
                opened += 1;
                // Read forever: answers the server's pings, so the connection stays.
                tokio::spawn(async move { while let Some(Ok(_)) = client.next().await {} });
            }
            Err(e) => {
                eprintln!("connection {opened} failed: {e}");
                break;
            }
        }
    }
    println!("{opened} connections open; Ctrl-C to stop");
    std::future::pending::<()>().await;
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", addr] => server(addr).await,
        ["clients", addr, token, count] => {
            clients(addr, token, count.parse().expect("a count")).await;
        }
        _ => eprintln!("usage: idle_rss server ADDR | idle_rss clients ADDR TOKEN COUNT"),
    }
}
