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

use std::convert::Infallible;
use std::sync::Arc;
use std::time::Duration;

use futures_util::StreamExt;
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
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
    let medex = Arc::new(
        MedEx::new(
            Ports {
                store: Arc::new(MemoryStore::new()),
                bus: hub.clone(),
                clock: Arc::new(SystemClock),
                entropy: Arc::new(OsEntropy),
                hasher: Arc::new(Argon2Hasher::insecure_fast()),
                tokens: TokenKeys::new(&[7; 32], TokenLifetimes::default()).unwrap(),
                custody: CustodyKeys::from_seed([8; 32]),
            },
            SystemConfig::default(),
        )
        .await
        .unwrap(),
    );
    let (vendor, owner) = medex
        .register_vendor(NewVendor {
            email: "owner@pharmacy.test".into(),
            password: "s3cret-pass".into(),
            business_name: "Corner Pharmacy".into(),
            address: "1 Main St".into(),
            latitude: 52.52,
            longitude: 13.40,
            ..Default::default()
        })
        .await
        .unwrap();
    let owner = Actor::of(&owner);
    let (driver, driver_user) = medex
        .register_driver(
            &owner,
            NewDriver {
                vendor_id: None,
                email: "dee@pharmacy.test".into(),
                password: "s3cret-pass".into(),
                full_name: "Dee Driver".into(),
                phone: None,
                vehicle_type: VehicleType::Bike,
                vehicle_number: None,
                license_number: None,
            },
        )
        .await
        .unwrap();
    let driver_actor = Actor::of(&driver_user);
    let customer = medex
        .register_customer(NewAccount {
            email: "ann@example.test".into(),
            password: "s3cret-pass".into(),
            full_name: "Ann".into(),
            phone: None,
        })
        .await
        .unwrap();
    let customer = medex.authenticate(&customer.access_token).await.unwrap();
    let order = medex
        .create_order(
            &customer,
            NewOrder {
                vendor_id: vendor.id,
                delivery_address: "9 Elm St".into(),
                delivery_latitude: 52.53,
                delivery_longitude: 13.41,
                customer_name: "Ann".into(),
                customer_phone: "+49 30 1234".into(),
                items: vec![NewItem {
                    name: "Amoxicillin 500mg".into(),
                    quantity: 1,
                    notes: None,
                }],
                notes: None,
                requirements: Default::default(),
            },
        )
        .await
        .unwrap();
    medex
        .change_status(&owner, order.id, OrderStatus::Accepted, None)
        .await
        .unwrap();
    medex
        .set_driver_status(&driver_actor, driver.id, DriverStatus::Available)
        .await
        .unwrap();
    medex
        .assign_driver(&owner, order.id, driver.id)
        .await
        .unwrap();
    for i in 0..200 {
        let step = f64::from(i) / 10_000.0;
        medex
            .record_location(
                &driver_actor,
                driver.id,
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
    while let Ok((stream, _)) = listener.accept().await {
        let ws = ws.clone();
        tokio::spawn(async move {
            let service = service_fn(move |req| {
                let ws = ws.clone();
                async move { Ok::<_, Infallible>(ws.handle(req).await) }
            });
            let _ = http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .with_upgrades()
                .await;
        });
    }
}

async fn clients(addr: &str, token: &str, count: usize) {
    let url = format!("ws://{addr}/ws/tracking/{token}");
    let mut opened = 0;
    for _ in 0..count {
        match connect(&url).await {
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

/// A client with small buffers: thousands of them share this process.
async fn connect(
    url: &str,
) -> Result<
    (
        tokio_tungstenite::WebSocketStream<
            tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
        >,
        tokio_tungstenite::tungstenite::handshake::client::Response,
    ),
    tokio_tungstenite::tungstenite::Error,
> {
    let config = tokio_tungstenite::tungstenite::protocol::WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    tokio_tungstenite::connect_async_with_config(url, Some(config), false).await
}
