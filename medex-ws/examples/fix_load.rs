//! A rough check of the fix path (DESIGN §8: ≥ 20,000 fixes/s fanned out with 10,000 drivers
//! connected, p99 driver → subscriber under 50 ms), server and load in two processes:
//!
//! ```text
//! cargo run --release -p medex-ws --example fix_load -- server 127.0.0.1:9200 10000 50 /tmp/load.txt
//! cargo run --release -p medex-ws --example fix_load -- load 127.0.0.1:9200 /tmp/load.txt 2 20 1000
//! ```
//!
//! The server builds an in-memory MedEx with `VENDORS` pharmacies sharing `DRIVERS` drivers, each
//! driver on an order of its own, and writes the tokens to `FILE`. The load connects every driver
//! (sending `RATE` fixes per second each, stamped in `recorded_at`), every vendor dashboard and
//! `TRACKERS` public trackers, for `SECONDS`, then prints fixes sent and the latency from
//! `recorded_at` to arrival at the subscribers. The store is the in-memory one: this measures
//! the transport and the use case, not a disk.

mod support;

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use chrono::{DateTime, Utc};
use futures_util::{SinkExt, StreamExt};
use medex_core::prelude::*;
use medex_core::testkit;
use medex_ws::{Hub, WsConfig, WsServer};
use tokio::net::TcpListener;
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

/// The password of every account the server makes.
const PASSWORD: &str = "s3cret-pass";

/// Signs `email` in with [`PASSWORD`] and returns its access token.
async fn access_token(medex: &MedEx, email: &str) -> String {
    medex.login(email, PASSWORD).await.unwrap().access_token
}

async fn server(addr: &str, drivers: usize, vendors: usize, file: &str) {
    let hub = Arc::new(Hub::new());
    let world = support::world(&hub).await;
    let medex = world.medex.clone();
    let customer = world.customers[0];
    let mut lines = Vec::new();
    let mut owners = Vec::new();
    for v in 0..vendors {
        let email = format!("owner{v}@pharmacy.test");
        let (vendor, owner) = medex
            .register_vendor(NewVendor {
                email: email.clone(),
                password: PASSWORD.into(),
                business_name: format!("Pharmacy {v}"),
                address: "1 Main St".into(),
                latitude: 52.52,
                longitude: 13.40,
                ..Default::default()
            })
            .await
            .unwrap();
        let token = access_token(&medex, &email).await;
        lines.push(format!("vendor {} {token}", vendor.id));
        owners.push((vendor, Actor::of(&owner)));
    }
    for d in 0..drivers {
        let (vendor, owner) = &owners[d % vendors];
        let email = format!("driver{d}@pharmacy.test");
        let (driver, user) = medex
            .register_driver(
                owner,
                NewDriver {
                    vendor_id: None,
                    email: email.clone(),
                    password: PASSWORD.into(),
                    full_name: format!("Driver {d}"),
                    phone: None,
                    vehicle_type: VehicleType::Scooter,
                    vehicle_number: None,
                    license_number: None,
                },
            )
            .await
            .unwrap();
        let order = medex
            .create_order(&customer, testkit::new_order(vendor.id))
            .await
            .unwrap();
        medex
            .change_status(owner, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        medex
            .set_driver_status(&Actor::of(&user), driver.id, DriverStatus::Available)
            .await
            .unwrap();
        medex
            .assign_driver(owner, order.id, driver.id)
            .await
            .unwrap();
        let token = access_token(&medex, &email).await;
        lines.push(format!("driver {token} {}", order.tracking_token));
    }
    std::fs::write(file, lines.join("\n")).unwrap();

    let config = WsConfig {
        min_fix_interval: Duration::ZERO,
        ..WsConfig::default()
    };
    let ws = WsServer::new(medex, hub, config);
    let listener = TcpListener::bind(addr).await.unwrap();
    println!("ready: {drivers} drivers, {vendors} vendors; tokens in {file}");
    support::serve(ws, listener).await;
}

/// Latencies in microseconds.
type Samples = Arc<Mutex<Vec<u32>>>;

async fn subscribe(url: String, samples: Samples, until: Instant) {
    let Ok((mut client, _)) = support::connect(&url).await else {
        eprintln!("cannot connect {url}");
        return;
    };
    let mut local = Vec::new();
    while Instant::now() < until {
        let Ok(Some(Ok(message))) =
            tokio::time::timeout(Duration::from_secs(1), client.next()).await
        else {
            continue;
        };
        let Message::Text(text) = message else {
            continue;
        };
        let now = Utc::now();
        let json: serde_json::Value = match serde_json::from_str(&text) {
            Ok(json) => json,
            Err(_) => continue,
        };
        if json["type"] != "driver_location" {
            continue;
        }
        if let Some(at) = json["recorded_at"]
            .as_str()
            .and_then(|s| s.parse::<DateTime<Utc>>().ok())
        {
            let micros = (now - at).num_microseconds().unwrap_or(i64::MAX);
            local.push(u32::try_from(micros.max(0)).unwrap_or(u32::MAX));
        }
    }
    samples.lock().await.extend(local);
}

async fn load(addr: &str, file: &str, rate: f64, seconds: u64, trackers: usize) {
    let text = std::fs::read_to_string(file).unwrap();
    let mut vendors = Vec::new();
    let mut drivers = Vec::new();
    for line in text.lines() {
        let parts: Vec<&str> = line.split(' ').collect();
        match parts[..] {
            ["vendor", id, token] => {
                vendors.push(format!("ws://{addr}/ws/vendor/{id}?token={token}"))
            }
            ["driver", token, tracking] => drivers.push((
                format!("ws://{addr}/ws/driver?token={token}"),
                format!("ws://{addr}/ws/tracking/{tracking}"),
            )),
            _ => {}
        }
    }
    let warmup = Duration::from_secs(5);
    let start = Instant::now() + warmup + Duration::from_secs(drivers.len() as u64 / 2000);
    let until = start + Duration::from_secs(seconds);
    let vendor_samples: Samples = Arc::default();
    let tracker_samples: Samples = Arc::default();
    for url in vendors {
        tokio::spawn(subscribe(url, vendor_samples.clone(), until));
    }
    for (_, url) in drivers.iter().take(trackers) {
        tokio::spawn(subscribe(url.clone(), tracker_samples.clone(), until));
    }
    let sent = Arc::new(AtomicU64::new(0));
    let period = Duration::from_secs_f64(1.0 / rate);
    let mut connected = 0;
    for (i, (url, _)) in drivers.iter().enumerate() {
        let Ok((client, _)) = support::connect(url).await else {
            eprintln!("driver {i} cannot connect");
            continue;
        };
        connected += 1;
        let sent = sent.clone();
        tokio::spawn(async move {
            // Spread the drivers over the period.
            let offset = period.mul_f64((i % 997) as f64 / 997.0);
            let mut tick = tokio::time::interval_at((start + offset).into(), period);
            tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
            let (mut sink, mut stream) = client.split();
            tokio::spawn(async move { while let Some(Ok(_)) = stream.next().await {} });
            let mut n = 0u64;
            while Instant::now() < until {
                tick.tick().await;
                n += 1;
                let fix = serde_json::json!({
                    "type": "location",
                    "latitude": 52.52 + (n % 100) as f64 / 10_000.0,
                    "longitude": 13.40,
                    "recorded_at": Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Nanos, true),
                });
                if sink
                    .send(Message::Text(fix.to_string().into()))
                    .await
                    .is_err()
                {
                    return;
                }
                if Instant::now() >= start {
                    sent.fetch_add(1, Ordering::Relaxed);
                }
            }
        });
    }
    println!("{connected} drivers connected");
    tokio::time::sleep_until((until + Duration::from_secs(2)).into()).await;
    let sent = sent.load(Ordering::Relaxed);
    println!(
        "sent {sent} fixes in {seconds} s: {:.0}/s",
        sent as f64 / seconds as f64
    );
    for (name, samples) in [("vendor", vendor_samples), ("tracker", tracker_samples)] {
        let mut samples = samples.lock().await.clone();
        samples.sort_unstable();
        if samples.is_empty() {
            println!("{name}: no samples");
            continue;
        }
        let at = |q: f64| f64::from(samples[((samples.len() - 1) as f64 * q) as usize]) / 1000.0;
        println!(
            "{name}: {} received; latency ms p50 {:.1} p99 {:.1} max {:.1}",
            samples.len(),
            at(0.5),
            at(0.99),
            at(1.0)
        );
    }
}

#[tokio::main]
async fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    match args.iter().map(String::as_str).collect::<Vec<_>>()[..] {
        ["server", addr, drivers, vendors, file] => {
            server(
                addr,
                drivers.parse().unwrap(),
                vendors.parse().unwrap(),
                file,
            )
            .await;
        }
        ["load", addr, file, rate, seconds, trackers] => {
            load(
                addr,
                file,
                rate.parse().unwrap(),
                seconds.parse().unwrap(),
                trackers.parse().unwrap(),
            )
            .await;
        }
        _ => eprintln!(
            "usage: fix_load server ADDR DRIVERS VENDORS FILE | \
             fix_load load ADDR FILE RATE SECONDS TRACKERS"
        ),
    }
}
