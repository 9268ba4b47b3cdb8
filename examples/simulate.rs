//! A day at a pharmacy, simulated against a running server: `cargo run --example simulate`.
//!
//! It registers a pharmacy with three drivers and a customer, then places orders one after the
//! other; the pharmacy accepts each and assigns a free driver, who rides to the pharmacy, picks
//! up, rides to the customer and delivers, streaming its position over the WebSocket every
//! second. Open the printed tracking links in a browser to watch. Loopback servers only.
//!
//! Usage: `simulate [BASE_URL] [--orders N] [--speed KMH]` (defaults: http://127.0.0.1:8000,
//! 6 orders, 60 km/h so a ride takes seconds, not minutes). The server should run with
//! `MEDEX_WS_MIN_FIX_INTERVAL_MS=0` or at least accept one fix per second (the default does).

use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail, ensure};
use futures::SinkExt as _;
use serde_json::{Value, json};
use tokio::sync::Mutex;
use tokio_tungstenite::tungstenite::Message;

const PHARMACY: (f64, f64) = (52.5219, 13.4132);
/// Where the customers live: a few streets around the pharmacy.
const HOMES: [(f64, f64); 6] = [
    (52.5290, 13.4010),
    (52.5150, 13.4250),
    (52.5330, 13.4290),
    (52.5120, 13.3980),
    (52.5260, 13.4400),
    (52.5180, 13.4060),
];

struct Api {
    http: reqwest::Client,
    base: String,
}

impl Api {
    async fn call(
        &self,
        method: reqwest::Method,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> anyhow::Result<Value> {
        let mut request = self
            .http
            .request(method.clone(), format!("{}/api{path}", self.base));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        if let Some(body) = body {
            request = request.json(&body);
        }
        let response = request
            .send()
            .await
            .with_context(|| format!("{method} {path}"))?;
        let status = response.status();
        let value: Value = response.json().await.unwrap_or(Value::Null);
        ensure!(
            status.is_success(),
            "{method} {path} answered {status}: {value}"
        );
        Ok(value)
    }

    async fn post(&self, path: &str, token: Option<&str>, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::POST, path, token, Some(body))
            .await
    }

    async fn patch(&self, path: &str, token: &str, body: Value) -> anyhow::Result<Value> {
        self.call(reqwest::Method::PATCH, path, Some(token), Some(body))
            .await
    }

    async fn login(&self, email: &str, password: &str) -> anyhow::Result<String> {
        let session = self
            .post(
                "/auth/login",
                None,
                json!({"email": email, "password": password}),
            )
            .await?;
        Ok(session["access_token"]
            .as_str()
            .context("no access token")?
            .to_owned())
    }
}

struct Driver {
    id: String,
    token: String,
    name: String,
    at: (f64, f64),
    socket: tokio_tungstenite::WebSocketStream<
        tokio_tungstenite::MaybeTlsStream<tokio::net::TcpStream>,
    >,
}

impl Driver {
    /// Rides in a straight line to `to`, sending a fix every second.
    async fn ride(&mut self, to: (f64, f64), speed_kmh: f64) -> anyhow::Result<()> {
        let km = haversine_km(self.at, to);
        let steps = ((km / speed_kmh * 3600.0).ceil() as usize).clamp(1, 600);
        let from = self.at;
        for step in 1..=steps {
            let t = step as f64 / steps as f64;
            self.at = (from.0 + (to.0 - from.0) * t, from.1 + (to.1 - from.1) * t);
            let fix = json!({"type": "location", "latitude": self.at.0, "longitude": self.at.1,
                             "speed": speed_kmh, "accuracy": 5.0});
            self.socket
                .send(Message::text(fix.to_string()))
                .await
                .context("sending a fix")?;
            tokio::time::sleep(Duration::from_secs(1)).await;
        }
        Ok(())
    }
}

fn haversine_km(a: (f64, f64), b: (f64, f64)) -> f64 {
    let (la1, lo1, la2, lo2) = (
        a.0.to_radians(),
        a.1.to_radians(),
        b.0.to_radians(),
        b.1.to_radians(),
    );
    let h = ((la2 - la1) / 2.0).sin().powi(2)
        + la1.cos() * la2.cos() * ((lo2 - lo1) / 2.0).sin().powi(2);
    2.0 * 6371.0 * h.sqrt().asin()
}

fn arg_after(args: &[String], flag: &str) -> Option<String> {
    args.iter()
        .position(|a| a == flag)
        .and_then(|i| args.get(i + 1))
        .cloned()
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let base = args
        .iter()
        .find(|a| a.starts_with("http"))
        .cloned()
        .unwrap_or_else(|| "http://127.0.0.1:8000".into());
    let orders: usize = arg_after(&args, "--orders")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(6);
    let speed: f64 = arg_after(&args, "--speed")
        .map(|v| v.parse())
        .transpose()?
        .unwrap_or(60.0);
    let url = reqwest::Url::parse(&base)?;
    let host = url.host_str().unwrap_or("").trim_matches(['[', ']']);
    let loopback = host == "localhost"
        || host
            .parse::<std::net::IpAddr>()
            .is_ok_and(|ip| ip.is_loopback());
    if !loopback {
        bail!(
            "the simulator only drives servers on this machine (127.0.0.1 or localhost), not {base}"
        );
    }
    let api = Arc::new(Api {
        http: reqwest::Client::new(),
        base: base.trim_end_matches('/').to_owned(),
    });
    let run = std::process::id();

    let owner = format!("owner{run}@sim.example");
    api.post(
        "/vendors/register",
        None,
        json!({
        "email": owner, "password": "simulated-pass-1", "business_name": "Simulated Pharmacy",
        "phone": "+49 30 555 0100", "address": "Alexanderplatz 1, Berlin",
        "latitude": PHARMACY.0, "longitude": PHARMACY.1 }),
    )
    .await?;
    let vendor = api.login(&owner, "simulated-pass-1").await?;
    let me = api
        .call(reqwest::Method::GET, "/auth/me", Some(&vendor), None)
        .await?;
    let vendor_id = me["vendor_id"].as_str().context("vendor_id")?.to_owned();
    println!("pharmacy {vendor_id}: watch it live on ws://…/ws/vendor/{vendor_id}");

    let ws_base = api.base.replacen("http", "ws", 1);
    let mut drivers = Vec::new();
    for (n, (name, vehicle)) in [
        ("Dana Fischer", "bike"),
        ("Emre Kaya", "scooter"),
        ("Lena Novak", "car"),
    ]
    .iter()
    .enumerate()
    {
        let email = format!("driver{n}-{run}@sim.example");
        let created = api
            .post(
                "/drivers/register",
                Some(&vendor),
                json!({
            "email": email, "password": "simulated-pass-1", "full_name": name,
            "vehicle_type": vehicle }),
            )
            .await?;
        let id = created["driver_id"]
            .as_str()
            .context("driver_id")?
            .to_owned();
        let token = api.login(&email, "simulated-pass-1").await?;
        api.patch(
            &format!("/drivers/{id}/status"),
            &token,
            json!({"status": "available"}),
        )
        .await?;
        let (socket, _) =
            tokio_tungstenite::connect_async(format!("{ws_base}/ws/driver?token={token}")).await?;
        drivers.push(Arc::new(Mutex::new(Driver {
            id,
            token,
            name: (*name).into(),
            at: PHARMACY,
            socket,
        })));
    }
    let customer_email = format!("customer{run}@sim.example");
    let session = api
        .post(
            "/auth/register",
            None,
            json!({
        "email": customer_email, "password": "simulated-pass-1", "full_name": "Sam Customer" }),
        )
        .await?;
    let customer = session["access_token"]
        .as_str()
        .context("access_token")?
        .to_owned();

    let mut rides = Vec::new();
    for n in 0..orders {
        let home = HOMES[n % HOMES.len()];
        let order = api
            .post(
                "/orders",
                Some(&customer),
                json!({
            "vendor_id": vendor_id, "delivery_address": format!("Customer street {}", n + 1),
            "delivery_latitude": home.0, "delivery_longitude": home.1,
            "customer_name": "Sam Customer", "customer_phone": "+49 30 555 0199",
            "items": [{"name": "Ibuprofen 400 mg", "quantity": 1 + n % 3}] }),
            )
            .await?;
        let order_id = order["id"].as_str().context("id")?.to_owned();
        println!(
            "{} placed: track it at {}/track/{}",
            order["order_number"],
            api.base,
            order["tracking_token"].as_str().unwrap_or("")
        );
        api.patch(
            &format!("/orders/{order_id}"),
            &vendor,
            json!({"status": "accepted"}),
        )
        .await?;

        // The next driver who is free (each driver works one order at a time).
        let driver = loop {
            if let Some(free) = drivers.iter().find_map(|d| d.clone().try_lock_owned().ok()) {
                break free;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        };
        api.post(
            &format!("/orders/{order_id}/assign-driver"),
            Some(&vendor),
            json!({"driver_id": driver.id}),
        )
        .await?;
        let api = api.clone();
        rides.push(tokio::spawn(async move {
            let mut driver = driver;
            let path = format!("/orders/{order_id}");
            api.post(
                &format!("{path}/assignment"),
                Some(&driver.token),
                json!({"action": "accept"}),
            )
            .await?;
            driver.ride(PHARMACY, speed).await?;
            api.patch(&path, &driver.token, json!({"status": "picked_up"}))
                .await?;
            api.patch(&path, &driver.token, json!({"status": "out_for_delivery"}))
                .await?;
            driver.ride(home, speed).await?;
            api.patch(&path, &driver.token, json!({"status": "delivered"}))
                .await?;
            println!("{} delivered order {order_id}", driver.name);
            anyhow::Ok(())
        }));
        tokio::time::sleep(Duration::from_secs(3)).await;
    }
    for ride in rides {
        ride.await??;
    }
    let today = chrono::Utc::now().date_naive();
    let report = api
        .call(
            reqwest::Method::GET,
            &format!("/reports/vendors/{vendor_id}?date={today}"),
            Some(&vendor),
            None,
        )
        .await?;
    println!(
        "the day's report:\n{}",
        serde_json::to_string_pretty(&report)?
    );
    Ok(())
}
