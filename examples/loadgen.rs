//! The MedEx load generator: drivers streaming fixes over WebSocket, public trackers and vendor
//! dashboards subscribed, and a mix of HTTP calls, against a running server on this machine.
//!
//! ```text
//! MEDEX_WS_MIN_FIX_INTERVAL_MS=0 MEDEX_HASH_CONCURRENCY=2 MEDEX_LOG=warn \
//!     cargo run --release --example server
//! cargo run --release --example loadgen -- --drivers 1000 --fix-interval-ms 500 --duration 30s
//! ```
//!
//! It sets up its own data through the API (pharmacies register themselves, each registers its
//! drivers, one customer places an order per driver which the pharmacy accepts and assigns and
//! the driver takes out for delivery) and keeps the accounts, tokens and orders in `--state`, so
//! the next run only refreshes tokens and creates what is missing. Then it connects everything,
//! runs for `--duration` printing a progress line every second, and reports throughput, errors
//! and latency percentiles. Only loopback targets are accepted. See BENCHMARKS.md.

use std::collections::{BTreeMap, VecDeque};
use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use anyhow::{Context as _, anyhow, bail, ensure};
use bytes::Bytes;
use chrono::{DateTime, Utc};
use clap::Parser;
use futures_util::{SinkExt as _, StreamExt as _};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt as _, Full};
use hyper::client::conn::http1::SendRequest;
use hyper::{Method, Request, StatusCode};
use hyper_util::rt::TokioIo;
use serde::{Deserialize, Serialize};
use serde_json::json;
use tokio::net::{TcpSocket, TcpStream};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// The longest run allowed: load runs stop by themselves.
const MAX_DURATION: Duration = Duration::from_secs(600);
/// The password of every account the generator creates.
const PASSWORD: &str = "loadgen-pass-1";
/// Give up on one HTTP call after this long (counted as an error).
const CALL_TIMEOUT: Duration = Duration::from_secs(10);
/// Connections opened at once while connecting (the server's accept backlog is ~1024).
const CONNECT_CONCURRENCY: usize = 256;
/// Loopback addresses the setup's registrations come from, in turn.
const REGISTRATION_SOURCES: usize = 32;
/// Connections per source address when `--source-addrs` is not given (an address has ~28k
/// ephemeral ports towards one server port; leave room for sockets in TIME_WAIT).
const CONNECTIONS_PER_SOURCE: usize = 4000;

#[derive(Debug, Parser)]
#[command(
    name = "loadgen",
    about = "Load generator for a MedEx server on this machine (loopback only)",
    after_help = "Rates are requests per second, 0 (off) or `max` (as fast as the \
                  --http-connections workers of that kind go). Start the server with \
                  MEDEX_WS_MIN_FIX_INTERVAL_MS=0 when --fix-interval-ms is under 1000, and \
                  MEDEX_REGISTRATIONS_PER_HOUR above 1 + --vendors (the customer and the \
                  pharmacies register from up to 32 loopback addresses in turn, drivers are \
                  registered by their pharmacy) and MEDEX_WS_MAX_PER_ADDRESS above the sockets \
                  per source address. \
                  See BENCHMARKS.md for the runs behind each performance target."
)]
struct Args {
    /// The MedEx server, HOST:PORT; must be a loopback address. Setup, drivers and the HTTP mix
    /// go here.
    #[arg(long, env = "LOADGEN_TARGET", default_value = "127.0.0.1:8000")]
    target: String,
    /// Where dashboards and trackers connect: one or more instances, comma-separated HOST:PORT
    /// (loopback only), the subscribers spread over them in turn and their latencies reported
    /// per instance [default: --target]. With several instances behind one database and Redis,
    /// `--target A --subscribers-at A,B` measures the in-process path (A) beside the path
    /// between instances (B) in one run.
    #[arg(long, env = "LOADGEN_SUBSCRIBERS_AT")]
    subscribers_at: Option<String>,
    /// Where the created accounts, tokens and orders are kept between runs.
    #[arg(long, env = "LOADGEN_STATE", default_value = "loadgen-state.json")]
    state: PathBuf,
    /// Pharmacies to use (created when missing).
    #[arg(long, default_value_t = 10)]
    vendors: usize,
    /// Drivers to connect over WebSocket, each a distinct account on its own order.
    #[arg(long, default_value_t = 100)]
    drivers: usize,
    /// Milliseconds between two fixes of one driver; 0 connects the drivers but sends nothing.
    #[arg(long, default_value_t = 1000)]
    fix_interval_ms: u64,
    /// Public trackers (`/ws/tracking/{token}`), spread over the drivers' orders.
    #[arg(long, default_value_t = 100)]
    trackers: usize,
    /// Vendor dashboards (`/ws/vendor/{id}`), spread over the pharmacies [default: --vendors].
    #[arg(long)]
    dashboards: Option<usize>,
    /// Orders placed per second (`POST /api/orders`).
    #[arg(long, default_value = "5")]
    order_rate: Rate,
    /// Public tracking reads per second (`GET /api/tracking/{token}`).
    #[arg(long, default_value = "50")]
    tracking_rate: Rate,
    /// Status changes per second on the orders placed during the run (accept, then cancel).
    #[arg(long, default_value = "5")]
    status_rate: Rate,
    /// Logins per second with the drivers' accounts (each costs the server a password hash).
    #[arg(long, default_value = "0")]
    login_rate: Rate,
    /// HTTP connections (workers) per kind of call.
    #[arg(long, default_value_t = 8)]
    http_connections: usize,
    /// How long to measure once everything is connected, e.g. `30s` or `2m` (at most 10 min).
    #[arg(long, default_value = "30s", value_parser = parse_duration)]
    duration: Duration,
    /// Source addresses 127.0.0.1..=127.0.0.N the connections are spread over
    /// [default: one per 4,000 connections].
    #[arg(long)]
    source_addrs: Option<u8>,
    /// The server's process id, to report its resident memory and CPU use.
    #[arg(long)]
    server_pid: Option<u32>,
    /// HTTP calls in flight while creating accounts and orders.
    #[arg(long, default_value_t = 16)]
    setup_concurrency: usize,
    /// Set up (or refresh) the data in --state, then exit without generating load.
    #[arg(long)]
    setup_only: bool,
}

/// Requests per second for one kind of call.
#[derive(Debug, Clone, Copy, PartialEq)]
enum Rate {
    Off,
    PerSecond(f64),
    Max,
}

impl FromStr for Rate {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "max" => Ok(Rate::Max),
            _ => match s.parse::<f64>() {
                Ok(0.0) => Ok(Rate::Off),
                Ok(r) if r.is_finite() && r > 0.0 => Ok(Rate::PerSecond(r)),
                _ => Err(format!("`{s}` is not a rate: a number ≥ 0 or `max`")),
            },
        }
    }
}

fn parse_duration(s: &str) -> Result<Duration, String> {
    let (number, unit) = match s.find(|c: char| !c.is_ascii_digit() && c != '.') {
        Some(i) => s.split_at(i),
        None => (s, "s"),
    };
    let value: f64 = number
        .parse()
        .map_err(|_| format!("`{s}` is not a duration like 30s or 2m"))?;
    let seconds = match unit {
        "s" => value,
        "m" => value * 60.0,
        "ms" => value / 1000.0,
        _ => return Err(format!("unknown unit in `{s}`: use ms, s or m")),
    };
    let duration = Duration::from_secs_f64(seconds);
    if duration.is_zero() || duration > MAX_DURATION {
        return Err(format!(
            "the duration must be between 0 and {MAX_DURATION:?}"
        ));
    }
    Ok(duration)
}

// ---------------------------------------------------------------------------------------------
// Sockets

/// Resolves the target and refuses anything but loopback.
async fn loopback_target(target: &str) -> anyhow::Result<SocketAddr> {
    let addrs: Vec<SocketAddr> = tokio::net::lookup_host(target)
        .await
        .with_context(|| format!("cannot resolve {target}"))?
        .collect();
    ensure!(!addrs.is_empty(), "{target} resolves to nothing");
    if let Some(outside) = addrs.iter().find(|a| !a.ip().is_loopback()) {
        bail!(
            "refusing {target}: {outside} is not a loopback address; load runs stay on this machine"
        );
    }
    Ok(addrs
        .iter()
        .find(|a| a.is_ipv4())
        .copied()
        .unwrap_or(addrs[0]))
}

/// Where connections come from: several loopback addresses, so that more connections than one
/// address has ephemeral ports can be opened.
#[derive(Debug, Clone)]
struct Sources {
    addrs: Vec<IpAddr>,
    next: Arc<AtomicUsize>,
}

impl Sources {
    fn new(target: SocketAddr, count: usize) -> Self {
        let addrs = if target.is_ipv4() {
            (1..=count.clamp(1, 254))
                .map(|i| IpAddr::V4(Ipv4Addr::new(127, 0, 0, i as u8)))
                .collect()
        } else {
            Vec::new()
        };
        Self {
            addrs,
            next: Arc::default(),
        }
    }

    fn pick(&self) -> Option<IpAddr> {
        if self.addrs.is_empty() {
            return None;
        }
        Some(self.addrs[self.next.fetch_add(1, Ordering::Relaxed) % self.addrs.len()])
    }
}

/// A TCP connection to `target` from `source` (bound first, then connected).
async fn tcp(target: SocketAddr, source: Option<IpAddr>) -> std::io::Result<TcpStream> {
    let socket = if target.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = source {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    let stream = socket.connect(target).await?;
    stream.set_nodelay(true)?;
    Ok(stream)
}

type Ws = WebSocketStream<TcpStream>;

/// A WebSocket to `path` (with its query), retried a few times: under a connection storm the
/// server's accept queue overflows now and then.
async fn websocket(target: SocketAddr, sources: &Sources, path: &str) -> anyhow::Result<Ws> {
    let config = WebSocketConfig::default()
        .read_buffer_size(4096)
        .write_buffer_size(0);
    let url = format!("ws://{target}{path}");
    let mut last = None;
    for attempt in 0..4u32 {
        if attempt > 0 {
            tokio::time::sleep(Duration::from_millis(200 << attempt)).await;
        }
        let stream = match tcp(target, sources.pick()).await {
            Ok(stream) => stream,
            Err(e) => {
                last = Some(anyhow!(e).context("connect"));
                continue;
            }
        };
        match tokio_tungstenite::client_async_with_config(url.as_str(), stream, Some(config)).await
        {
            Ok((ws, _)) => return Ok(ws),
            // A refusal (401, 404) will not change on retry.
            Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
                bail!("{path}: refused with {}", response.status())
            }
            Err(e) => last = Some(anyhow!(e).context("handshake")),
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no attempt")))
}

// ---------------------------------------------------------------------------------------------
// HTTP

/// A registration refused with 429: this client address registered its share for the hour.
#[derive(Debug)]
struct Throttled(String);

impl std::fmt::Display for Throttled {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{}: 429 from every one of {REGISTRATION_SOURCES} source addresses: too many \
             registrations per address this hour; start the server with a larger \
             MEDEX_REGISTRATIONS_PER_HOUR (with MEDEX_REDIS_URL the counts live in Redis and \
             outlast a restart for the hour)",
            self.0
        )
    }
}

impl std::error::Error for Throttled {}

/// Runs a registration from one client address after another while the server answers 429:
/// each address has its own hourly share (MEDEX_REGISTRATIONS_PER_HOUR), as separate people
/// would.
async fn registered<T, F, Fut>(
    target: SocketAddr,
    sources: &Sources,
    mut register: F,
) -> anyhow::Result<T>
where
    F: FnMut(Http) -> Fut,
    Fut: std::future::Future<Output = anyhow::Result<T>>,
{
    let mut last = None;
    for _ in 0..REGISTRATION_SOURCES {
        match register(Http::new(target, sources)).await {
            Err(e) if e.downcast_ref::<Throttled>().is_some() => last = Some(e),
            other => return other,
        }
    }
    Err(last.unwrap_or_else(|| anyhow!("no registration attempted")))
}

/// One keep-alive HTTP/1.1 connection, reopened after a failure.
struct Http {
    target: SocketAddr,
    sources: Sources,
    sender: Option<SendRequest<Full<Bytes>>>,
}

/// An answer: status and body.
struct Answer {
    status: StatusCode,
    body: Bytes,
}

impl Answer {
    fn json(&self) -> anyhow::Result<serde_json::Value> {
        serde_json::from_slice(&self.body).context("the answer is not JSON")
    }

    /// The body as JSON when the status is `expected`, else an error naming both.
    fn expect(self, expected: StatusCode, what: &str) -> anyhow::Result<serde_json::Value> {
        if self.status == StatusCode::TOO_MANY_REQUESTS && what.starts_with("register") {
            return Err(anyhow!(Throttled(what.to_owned())));
        }
        if self.status != expected {
            bail!(
                "{what}: {} {}",
                self.status,
                String::from_utf8_lossy(&self.body[..self.body.len().min(300)])
            );
        }
        self.json()
    }
}

impl Http {
    fn new(target: SocketAddr, sources: &Sources) -> Self {
        Self {
            target,
            sources: sources.clone(),
            sender: None,
        }
    }

    async fn sender(&mut self) -> anyhow::Result<&mut SendRequest<Full<Bytes>>> {
        if self.sender.as_ref().is_none_or(|s| s.is_closed()) {
            let stream = tcp(self.target, self.sources.pick()).await?;
            let (sender, connection) =
                hyper::client::conn::http1::handshake(TokioIo::new(stream)).await?;
            tokio::spawn(connection);
            self.sender = Some(sender);
        }
        let sender = self.sender.as_mut().expect("just set");
        sender.ready().await?;
        Ok(sender)
    }

    /// A setup call: like [`Http::call`], but a `409 concurrent_update` (two writers of one
    /// record, e.g. two drivers joining one fleet at once) is retried, as the API asks.
    async fn call_retrying(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Answer> {
        let mut attempt = 0;
        loop {
            let answer = self.call(method.clone(), path, token, body).await?;
            let conflict = answer.status == StatusCode::CONFLICT
                && answer
                    .json()
                    .is_ok_and(|e| e["code"] == "concurrent_update");
            if !conflict || attempt == 60 {
                return Ok(answer);
            }
            attempt += 1;
            // Writers to one fleet collide again if they retry in step: back off at random.
            let most = (20 + 20 * attempt).min(1000);
            tokio::time::sleep(Duration::from_millis(rand::random_range(5..most))).await;
        }
    }

    /// One call; `token` goes in `Authorization: Bearer`, `body` as JSON.
    async fn call(
        &mut self,
        method: Method,
        path: &str,
        token: Option<&str>,
        body: Option<&serde_json::Value>,
    ) -> anyhow::Result<Answer> {
        let mut request = Request::builder()
            .method(method)
            .uri(path)
            .header(hyper::header::HOST, self.target.to_string());
        if let Some(token) = token {
            request = request.header(hyper::header::AUTHORIZATION, format!("Bearer {token}"));
        }
        let body = match body {
            Some(json) => {
                request = request.header(hyper::header::CONTENT_TYPE, "application/json");
                Bytes::from(serde_json::to_vec(json)?)
            }
            None => Bytes::new(),
        };
        let request = request.body(Full::new(body))?;
        let result = tokio::time::timeout(CALL_TIMEOUT, async {
            let response = self.sender().await?.send_request(request).await?;
            let status = response.status();
            let body = response.into_body().collect().await?.to_bytes();
            anyhow::Ok(Answer { status, body })
        })
        .await;
        match result {
            Ok(Ok(answer)) => Ok(answer),
            Ok(Err(e)) => {
                self.sender = None;
                Err(e)
            }
            Err(_) => {
                self.sender = None;
                bail!("no answer within {CALL_TIMEOUT:?}")
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// The state kept between runs

/// An account the generator created, with its current tokens.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct Account {
    email: String,
    access_token: String,
    refresh_token: String,
    /// When the access token stops working.
    access_expires_at: DateTime<Utc>,
}

/// A pharmacy and its owner's account.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct VendorState {
    id: String,
    account: Account,
    latitude: f64,
    longitude: f64,
}

/// A driver and the order it is out delivering.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct DriverState {
    id: String,
    /// Index into `State::vendors`.
    vendor: usize,
    account: Account,
    vehicle_type: String,
    order_id: String,
    tracking_token: String,
    /// Pickup (the pharmacy) and destination, `[latitude, longitude]`.
    pickup: [f64; 2],
    destination: [f64; 2],
}

/// Everything created on one server, as written to `--state`.
#[derive(Debug, Clone, Serialize, Deserialize)]
struct State {
    /// The server it was created on.
    target: String,
    /// Part of every e-mail address, so that a new state never collides with an old one.
    tag: String,
    customer: Option<Account>,
    vendors: Vec<VendorState>,
    drivers: Vec<DriverState>,
}

impl State {
    fn new(target: &str) -> Self {
        Self {
            target: target.to_owned(),
            tag: format!("{:08x}", rand::random::<u32>()),
            customer: None,
            vendors: Vec::new(),
            drivers: Vec::new(),
        }
    }

    fn load(path: &Path, target: &str) -> anyhow::Result<Self> {
        match std::fs::read(path) {
            Ok(bytes) => {
                let state: State = serde_json::from_slice(&bytes)
                    .with_context(|| format!("{} is not a loadgen state", path.display()))?;
                if state.target != target {
                    bail!(
                        "{} holds data of {}, not {target}: use another --state",
                        path.display(),
                        state.target
                    );
                }
                Ok(state)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self::new(target)),
            Err(e) => Err(e).with_context(|| format!("cannot read {}", path.display())),
        }
    }

    fn save(&self, path: &Path) -> anyhow::Result<()> {
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, serde_json::to_vec(self)?)
            .with_context(|| format!("cannot write {}", tmp.display()))?;
        std::fs::rename(&tmp, path).with_context(|| format!("cannot write {}", path.display()))
    }
}

// ---------------------------------------------------------------------------------------------
// Setup through the API

/// Reads a session answer (`register`, `login`, `refresh`) into an account.
fn account_from_session(email: &str, session: &serde_json::Value) -> anyhow::Result<Account> {
    let text = |key: &str| {
        session[key]
            .as_str()
            .map(str::to_owned)
            .ok_or_else(|| anyhow!("the session has no {key}"))
    };
    let expires_in = session["expires_in"].as_i64().unwrap_or(0);
    Ok(Account {
        email: email.to_owned(),
        access_token: text("access_token")?,
        refresh_token: text("refresh_token")?,
        access_expires_at: Utc::now() + chrono::Duration::seconds(expires_in),
    })
}

async fn login(http: &mut Http, email: &str) -> anyhow::Result<Account> {
    let session = http
        .call_retrying(
            Method::POST,
            "/api/auth/login",
            None,
            Some(&json!({ "email": email, "password": PASSWORD })),
        )
        .await?
        .expect(StatusCode::OK, "login")?;
    account_from_session(email, &session)
}

/// Whether an account still exists on the server.
enum Fresh {
    Yes,
    /// Neither its refresh token nor its password work: the server's data is not ours.
    Unknown,
}

/// Makes sure the access token lasts at least `needed`: refreshes it (cheap), or logs in again
/// (a password hash) when the refresh token no longer works.
async fn freshen(
    http: &mut Http,
    account: &mut Account,
    needed: Duration,
) -> anyhow::Result<Fresh> {
    let needed = chrono::Duration::from_std(needed)?;
    if account.access_expires_at > Utc::now() + needed {
        return Ok(Fresh::Yes);
    }
    let answer = http
        .call_retrying(
            Method::POST,
            "/api/auth/refresh",
            None,
            Some(&json!({ "refresh_token": account.refresh_token })),
        )
        .await?;
    if answer.status == StatusCode::OK {
        *account = account_from_session(&account.email, &answer.json()?)?;
    } else {
        match login(http, &account.email.clone()).await {
            Ok(fresh) => *account = fresh,
            Err(_) => return Ok(Fresh::Unknown),
        }
    }
    if account.access_expires_at <= Utc::now() + needed {
        bail!(
            "access tokens last less than the run needs ({} s): start the server with a larger \
             MEDEX_ACCESS_TOKEN_MINUTES",
            needed.num_seconds()
        );
    }
    Ok(Fresh::Yes)
}

/// The pharmacies sit around central Berlin, deterministic by index.
fn pharmacy_location(i: usize) -> [f64; 2] {
    let ring = (i / 12) as f64 * 0.015 + 0.01;
    let angle = (i % 12) as f64 * std::f64::consts::TAU / 12.0 + (i / 12) as f64 * 0.3;
    [
        52.52 + ring * angle.sin(),
        13.405 + ring * 1.6 * angle.cos(),
    ]
}

/// A destination 0.5 to 5 km from `from`.
fn destination_near(from: [f64; 2]) -> [f64; 2] {
    let km: f64 = rand::random_range(0.5..5.0);
    let angle: f64 = rand::random_range(0.0..std::f64::consts::TAU);
    let dlat = km * angle.sin() / 111.0;
    let dlon = km * angle.cos() / (111.0 * from[0].to_radians().cos());
    [from[0] + dlat, from[1] + dlon]
}

async fn create_customer(http: &mut Http, tag: &str) -> anyhow::Result<Account> {
    let email = format!("customer-{tag}@loadgen.example");
    let session = http
        .call_retrying(
            Method::POST,
            "/api/auth/register",
            None,
            Some(&json!({ "email": email, "password": PASSWORD, "full_name": "Load Customer" })),
        )
        .await?
        .expect(StatusCode::CREATED, "register customer")?;
    account_from_session(&email, &session)
}

async fn create_vendor(http: &mut Http, tag: &str, i: usize) -> anyhow::Result<VendorState> {
    let email = format!("pharmacy{i}-{tag}@loadgen.example");
    let [latitude, longitude] = pharmacy_location(i);
    let vendor = http
        .call_retrying(
            Method::POST,
            "/api/vendors/register",
            None,
            Some(&json!({
                "email": email, "password": PASSWORD, "business_name": format!("Load Pharmacy {i}"),
                "phone": "+49 30 555 0100", "address": format!("Teststrasse {i}, Berlin"),
                "latitude": latitude, "longitude": longitude,
            })),
        )
        .await?
        .expect(StatusCode::CREATED, "register pharmacy")?;
    let id = vendor["vendor_id"]
        .as_str()
        .or(vendor["id"].as_str())
        .ok_or_else(|| anyhow!("no vendor_id in the registration answer"))?
        .to_owned();
    Ok(VendorState {
        id,
        account: login(http, &email).await?,
        latitude,
        longitude,
    })
}

fn order_body(vendor: &VendorState, to: [f64; 2], n: u64) -> serde_json::Value {
    json!({
        "vendor_id": vendor.id,
        "delivery_address": format!("Lieferweg {n}, Berlin"),
        "delivery_latitude": to[0], "delivery_longitude": to[1],
        "customer_name": "Load Customer", "customer_phone": "+49 30 555 0199",
        "items": [{"name": "Amoxicillin 500 mg", "quantity": 1, "notes": "after meals"},
                  {"name": "Ibuprofen 400 mg", "quantity": 2}],
    })
}

/// A driver of `vendors[v]`, logged in, with an order of its own out for delivery.
async fn create_driver(
    http: &mut Http,
    tag: &str,
    i: usize,
    v: usize,
    vendor: &VendorState,
    customer: &str,
) -> anyhow::Result<DriverState> {
    // A fresh address per attempt: a driver whose setup failed half-way is left behind unused.
    let email = format!(
        "driver{i}-{tag}-{:08x}@loadgen.example",
        rand::random::<u32>()
    );
    let vehicle_type = ["scooter", "bike", "car", "scooter", "van"][i % 5];
    let vendor_token = vendor.account.access_token.as_str();
    let driver = http
        .call_retrying(
            Method::POST,
            "/api/drivers/register",
            Some(vendor_token),
            Some(&json!({
                "email": email, "password": PASSWORD, "full_name": format!("Driver{i} Load"),
                "phone": "+49 30 555 0101", "vehicle_type": vehicle_type,
            })),
        )
        .await?
        .expect(StatusCode::CREATED, "register driver")?;
    let id = driver["driver_id"]
        .as_str()
        .ok_or_else(|| anyhow!("no driver_id in the registration answer"))?
        .to_owned();
    let account = login(http, &email).await?;
    let me = account.access_token.as_str();
    http.call_retrying(
        Method::PATCH,
        &format!("/api/drivers/{id}/status"),
        Some(me),
        Some(&json!({"status": "available"})),
    )
    .await?
    .expect(StatusCode::OK, "driver available")?;
    let pickup = [vendor.latitude, vendor.longitude];
    let destination = destination_near(pickup);
    let order = http
        .call_retrying(
            Method::POST,
            "/api/orders",
            Some(customer),
            Some(&order_body(vendor, destination, i as u64)),
        )
        .await?
        .expect(StatusCode::CREATED, "place order")?;
    let order_id = order["id"].as_str().unwrap_or_default().to_owned();
    let tracking_token = order["tracking_token"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    let path = format!("/api/orders/{order_id}");
    let steps: [(Method, String, &str, serde_json::Value); 5] = [
        (
            Method::PATCH,
            path.clone(),
            vendor_token,
            json!({"status": "accepted"}),
        ),
        (
            Method::POST,
            format!("{path}/assign-driver"),
            vendor_token,
            json!({"driver_id": id}),
        ),
        (
            Method::POST,
            format!("{path}/assignment"),
            me,
            json!({"action": "accept"}),
        ),
        (
            Method::PATCH,
            path.clone(),
            me,
            json!({"status": "picked_up"}),
        ),
        (
            Method::PATCH,
            path.clone(),
            me,
            json!({"status": "out_for_delivery"}),
        ),
    ];
    for (method, path, token, body) in steps {
        http.call_retrying(method, &path, Some(token), Some(&body))
            .await?
            .expect(StatusCode::OK, &path)?;
    }
    Ok(DriverState {
        id,
        vendor: v,
        account,
        vehicle_type: vehicle_type.to_owned(),
        order_id,
        tracking_token,
        pickup,
        destination,
    })
}

/// Prints how far a long setup step is, once a second, until dropped.
struct SetupProgress(tokio::task::JoinHandle<()>);

impl SetupProgress {
    fn start(what: &'static str, done: Arc<AtomicUsize>, total: usize) -> Self {
        let started = Instant::now();
        Self(tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let n = done.load(Ordering::Relaxed);
                let rate = n as f64 / started.elapsed().as_secs_f64();
                let left = (total - n.min(total)) as f64 / rate.max(0.001);
                eprintln!("setup: {what} {n}/{total} ({rate:.0}/s, ~{left:.0} s left)");
            }
        }))
    }
}

impl Drop for SetupProgress {
    fn drop(&mut self) {
        self.0.abort();
    }
}

/// Brings `state` to what `args` needs: accounts exist and their tokens last the run.
async fn setup(
    args: &Args,
    target: SocketAddr,
    sources: &Sources,
    state: &mut State,
) -> anyhow::Result<()> {
    let needed = args.duration + Duration::from_secs(300);
    let mut http = Http::new(target, sources);
    // The customer tells whether the state belongs to this server's data at all: asked of the
    // server even while its token is valid, since servers sharing a JWT secret (benchmark
    // scripts, several instances) accept tokens of accounts another database holds.
    let known = match state.customer.as_mut() {
        None => true,
        Some(customer) => {
            let me = http
                .call(
                    Method::GET,
                    "/api/auth/me",
                    Some(&customer.access_token),
                    None,
                )
                .await?;
            me.status == StatusCode::OK
                || matches!(freshen(&mut http, customer, needed).await?, Fresh::Yes)
        }
    };
    if !known {
        eprintln!(
            "setup: {} is from another database (its accounts are unknown here); starting over",
            args.state.display()
        );
        *state = State::new(&state.target);
    }
    // Registrations count per client address on the server (MEDEX_REGISTRATIONS_PER_HOUR, and
    // with Redis across restarts for the hour): the generator's customer and pharmacies register
    // from addresses of their own, as real ones would.
    // (A connection of its own for each, so that each comes from the next address.)
    let registering = Sources::new(target, REGISTRATION_SOURCES);
    if state.customer.is_none() {
        let tag = state.tag.clone();
        let customer = registered(target, &registering, |mut http| {
            let tag = tag.clone();
            async move { create_customer(&mut http, &tag).await }
        })
        .await?;
        state.customer = Some(customer);
    }
    for vendor in state.vendors.iter_mut().take(args.vendors) {
        if let Fresh::Unknown = freshen(&mut http, &mut vendor.account, needed).await? {
            bail!("pharmacy {} is unknown to the server", vendor.account.email);
        }
    }
    while state.vendors.len() < args.vendors {
        let (tag, n) = (state.tag.clone(), state.vendors.len());
        let vendor = registered(target, &registering, |mut http| {
            let tag = tag.clone();
            async move { create_vendor(&mut http, &tag, n).await }
        })
        .await?;
        state.vendors.push(vendor);
    }
    state.save(&args.state)?;

    // Existing drivers: refresh their tokens (no password hash unless the refresh token died).
    let reuse = state.drivers.len().min(args.drivers);
    let stale: Vec<usize> = (0..reuse)
        .filter(|&i| {
            state.drivers[i].account.access_expires_at
                <= Utc::now() + chrono::Duration::from_std(needed).unwrap_or_default()
        })
        .collect();
    if !stale.is_empty() {
        let done = Arc::new(AtomicUsize::new(0));
        let _progress = SetupProgress::start("refreshing drivers", done.clone(), stale.len());
        let refreshed = futures_util::stream::iter(stale.into_iter().map(|i| {
            let mut account = state.drivers[i].account.clone();
            let mut http = Http::new(target, sources);
            let done = done.clone();
            async move {
                let fresh = freshen(&mut http, &mut account, needed).await;
                done.fetch_add(1, Ordering::Relaxed);
                (i, fresh.map(|f| (f, account)))
            }
        }))
        .buffer_unordered(args.setup_concurrency.max(1))
        .collect::<Vec<_>>()
        .await;
        for (i, result) in refreshed {
            match result? {
                (Fresh::Yes, account) => state.drivers[i].account = account,
                (Fresh::Unknown, _) => bail!("driver {i} is unknown to the server"),
            }
        }
        state.save(&args.state)?;
    }

    // Missing drivers, in chunks so that an interrupted setup keeps what it made.
    let missing = args.drivers.saturating_sub(state.drivers.len());
    if missing > 0 {
        eprintln!(
            "setup: creating {missing} drivers (two password hashes each; ~{:.0} s with \
             MEDEX_HASH_CONCURRENCY=2 on two cores)",
            missing as f64 * 0.04
        );
        let done = Arc::new(AtomicUsize::new(0));
        let _progress = SetupProgress::start("creating drivers", done.clone(), missing);
        let customer = state
            .customer
            .as_ref()
            .map(|c| c.access_token.clone())
            .unwrap_or_default();
        while state.drivers.len() < args.drivers {
            let first = state.drivers.len();
            let last = args.drivers.min(first + 500);
            let created = futures_util::stream::iter((first..last).map(|i| {
                let v = i % args.vendors.max(1);
                let vendor = state.vendors[v].clone();
                let tag = state.tag.clone();
                let customer = customer.clone();
                let done = done.clone();
                let mut http = Http::new(target, sources);
                async move {
                    let driver = create_driver(&mut http, &tag, i, v, &vendor, &customer).await;
                    done.fetch_add(1, Ordering::Relaxed);
                    driver
                }
            }))
            .buffered(args.setup_concurrency.max(1))
            .collect::<Vec<_>>()
            .await;
            let mut first_error = None;
            for driver in created {
                match driver {
                    Ok(driver) => state.drivers.push(driver),
                    Err(e) => first_error = first_error.or(Some(e)),
                }
            }
            if let Some(e) = first_error {
                state.save(&args.state)?;
                return Err(e.context("creating a driver"));
            }
            state.save(&args.state)?;
        }
    }
    Ok(())
}

// ---------------------------------------------------------------------------------------------
// Measurements

/// Latencies in microseconds, up to a minute.
fn histogram() -> Histogram<u64> {
    Histogram::new_with_bounds(1, 60_000_000, 3).expect("valid bounds")
}

/// A latency series: the whole run, and the current second for the progress line.
struct Series {
    histograms: Mutex<(Histogram<u64>, Histogram<u64>)>,
}

impl Series {
    fn new() -> Self {
        Self {
            histograms: Mutex::new((histogram(), histogram())),
        }
    }

    fn record(&self, micros: u64) {
        let mut h = self.histograms.lock().expect("not poisoned");
        h.0.saturating_record(micros.max(1));
        h.1.saturating_record(micros.max(1));
    }

    /// p99 of the last interval in ms (and starts a new interval).
    fn take_interval_p99(&self) -> Option<f64> {
        let mut h = self.histograms.lock().expect("not poisoned");
        let p99 = (!h.1.is_empty()).then(|| h.1.value_at_quantile(0.99) as f64 / 1000.0);
        h.1.reset();
        p99
    }

    fn total(&self) -> Histogram<u64> {
        self.histograms.lock().expect("not poisoned").0.clone()
    }
}

/// The kinds of HTTP call in the mix.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Call {
    CreateOrder,
    TrackingRead,
    StatusChange,
    Login,
}

impl Call {
    const ALL: [Call; 4] = [
        Call::CreateOrder,
        Call::TrackingRead,
        Call::StatusChange,
        Call::Login,
    ];

    fn name(self) -> &'static str {
        match self {
            Call::CreateOrder => "create_order",
            Call::TrackingRead => "tracking_read",
            Call::StatusChange => "status_change",
            Call::Login => "login",
        }
    }

    fn rate(self, args: &Args) -> Rate {
        match self {
            Call::CreateOrder => args.order_rate,
            Call::TrackingRead => args.tracking_rate,
            Call::StatusChange => args.status_rate,
            Call::Login => args.login_rate,
        }
    }
}

/// Counts of one kind of HTTP call.
struct CallStats {
    ok: AtomicU64,
    errors: AtomicU64,
    /// Nothing to do (no order in the right status for a status change).
    idle: AtomicU64,
    latency: Series,
}

/// Everything measured, shared by all tasks.
struct Stats {
    fixes_sent: AtomicU64,
    /// Deliveries the fixes sent should cause (one per subscriber of the driver).
    deliveries_expected: AtomicU64,
    delivered_vendor: AtomicU64,
    delivered_tracker: AtomicU64,
    /// Status events (`order_created`, `order_status`, `driver_status`) at dashboards.
    events_received: AtomicU64,
    /// `error` messages, send failures and unexpected closes on WebSockets.
    ws_errors: AtomicU64,
    vendor_latency: Series,
    tracker_latency: Series,
    /// `recorded_at` → `sent_at`: the part of the latency spent before the server's fan-out.
    publish_latency: Series,
    /// Deliveries and latencies by the instance the subscriber is connected to (in the order of
    /// `--subscribers-at`).
    by_instance: Vec<(AtomicU64, Series)>,
    calls: [CallStats; 4],
    /// Distinct error descriptions and how often each happened.
    error_kinds: Mutex<BTreeMap<String, u64>>,
}

impl Stats {
    fn new(instances: usize) -> Self {
        let call = || CallStats {
            ok: AtomicU64::new(0),
            errors: AtomicU64::new(0),
            idle: AtomicU64::new(0),
            latency: Series::new(),
        };
        Self {
            fixes_sent: AtomicU64::new(0),
            deliveries_expected: AtomicU64::new(0),
            delivered_vendor: AtomicU64::new(0),
            delivered_tracker: AtomicU64::new(0),
            events_received: AtomicU64::new(0),
            ws_errors: AtomicU64::new(0),
            vendor_latency: Series::new(),
            tracker_latency: Series::new(),
            publish_latency: Series::new(),
            by_instance: (0..instances.max(1))
                .map(|_| (AtomicU64::new(0), Series::new()))
                .collect(),
            calls: [call(), call(), call(), call()],
            error_kinds: Mutex::default(),
        }
    }

    fn call(&self, kind: Call) -> &CallStats {
        &self.calls[kind as usize]
    }

    fn error(&self, what: impl Into<String>) {
        let mut what: String = what.into();
        what.truncate(160);
        *self
            .error_kinds
            .lock()
            .expect("not poisoned")
            .entry(what)
            .or_default() += 1;
    }
}

/// The measurement window.
#[derive(Debug, Clone, Copy)]
struct Window {
    start: Instant,
    start_utc: DateTime<Utc>,
    end: Instant,
}

// ---------------------------------------------------------------------------------------------
// WebSocket clients

/// A driver moving back and forth between pickup and destination at its vehicle's speed.
struct Route {
    from: [f64; 2],
    to: [f64; 2],
    /// Hours for one way.
    leg_hours: f64,
    /// Where on the round trip it starts, 0..1.
    phase: f64,
}

impl Route {
    fn new(driver: &DriverState) -> Self {
        let kmh = match driver.vehicle_type.as_str() {
            "bike" => 15.0,
            "car" => 30.0,
            _ => 25.0,
        };
        let dlat = (driver.destination[0] - driver.pickup[0]) * 111.0;
        let dlon = (driver.destination[1] - driver.pickup[1])
            * 111.0
            * driver.pickup[0].to_radians().cos();
        let km = dlat.hypot(dlon).max(0.1);
        Self {
            from: driver.pickup,
            to: driver.destination,
            leg_hours: km / kmh,
            phase: rand::random::<f64>(),
        }
    }

    /// Position, heading (degrees) and speed (km/h) `elapsed` after the start.
    fn at(&self, elapsed: Duration) -> ([f64; 2], f64, f64) {
        let trips = elapsed.as_secs_f64() / 3600.0 / (2.0 * self.leg_hours) + self.phase;
        let t = trips.fract() * 2.0;
        let (f, from, to) = if t < 1.0 {
            (t, self.from, self.to)
        } else {
            (t - 1.0, self.to, self.from)
        };
        let jitter = || rand::random_range(-0.00003..0.00003);
        let here = [
            from[0] + (to[0] - from[0]) * f + jitter(),
            from[1] + (to[1] - from[1]) * f + jitter(),
        ];
        let heading = (to[1] - from[1])
            .atan2(to[0] - from[0])
            .to_degrees()
            .rem_euclid(360.0);
        let speed = (to[0] - from[0]).hypot(to[1] - from[1]) * 111.0 / self.leg_hours;
        (here, heading, speed.min(120.0))
    }
}

/// One driver: sends a fix every `interval` (from a random offset) until the window closes.
async fn drive(
    ws: Ws,
    driver: DriverState,
    subscribers: u64,
    interval: Option<Duration>,
    window: Window,
    stats: Arc<Stats>,
) {
    let (mut sink, mut stream) = ws.split();
    let route = Route::new(&driver);
    let Some(interval) = interval else {
        // Silent: keep reading (answers pings) until the window closes.
        let _ = tokio::time::timeout_at(window.end.into(), async {
            while let Some(Ok(_)) = stream.next().await {}
        })
        .await;
        return;
    };
    let offset = interval.mul_f64(rand::random::<f64>());
    let mut tick = tokio::time::interval_at((window.start + offset).into(), interval);
    tick.set_missed_tick_behavior(tokio::time::MissedTickBehavior::Delay);
    loop {
        tokio::select! {
            at = tick.tick() => {
                let at = at.into_std();
                if at >= window.end {
                    break;
                }
                let ([latitude, longitude], heading, speed) = route.at(at - window.start);
                let now = Utc::now();
                let fix = format!(
                    r#"{{"type":"location","latitude":{latitude:.6},"longitude":{longitude:.6},"speed":{speed:.1},"heading":{heading:.0},"accuracy":{:.0},"recorded_at":"{}"}}"#,
                    5.0 + (now.timestamp_subsec_micros() % 10) as f64,
                    now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true),
                );
                if let Err(e) = sink.send(Message::Text(fix.into())).await {
                    stats.ws_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error(format!("driver send: {e}"));
                    return;
                }
                stats.fixes_sent.fetch_add(1, Ordering::Relaxed);
                stats.deliveries_expected.fetch_add(subscribers, Ordering::Relaxed);
            }
            message = stream.next() => match message {
                Some(Ok(Message::Text(text))) if text.contains(r#""type":"error""#) => {
                    stats.ws_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error(format!("driver got {text}"));
                }
                Some(Ok(_)) => {}
                Some(Err(e)) => {
                    stats.ws_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error(format!("driver socket: {e}"));
                    return;
                }
                None => {
                    stats.ws_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error("driver socket closed by the server");
                    return;
                }
            }
        }
    }
    let _ = sink.close().await;
}

/// What a subscriber needs from a server message.
#[derive(Deserialize)]
struct Incoming<'a> {
    #[serde(rename = "type")]
    kind: &'a str,
    #[serde(default)]
    recorded_at: Option<&'a str>,
    #[serde(default)]
    sent_at: Option<&'a str>,
}

/// Microseconds from `earlier` to `later`, RFC 3339 texts (negative differences are 0).
fn micros_between(earlier: &str, later: DateTime<Utc>) -> Option<u64> {
    let earlier = DateTime::parse_from_rfc3339(earlier).ok()?;
    let micros = (later - earlier.with_timezone(&Utc)).num_microseconds()?;
    Some(micros.max(0) as u64)
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Subscriber {
    Dashboard,
    Tracker,
}

/// A dashboard or tracker, connected to instance `instance` of `--subscribers-at`: reads until
/// shortly after the window, measuring fix latencies.
async fn subscribe(ws: Ws, kind: Subscriber, instance: usize, window: Window, stats: Arc<Stats>) {
    let (mut sink, mut stream) = ws.split();
    let stop = window.end + Duration::from_secs(2);
    let read = async {
        while let Some(message) = stream.next().await {
            let text = match message {
                Ok(Message::Text(text)) => text,
                Ok(Message::Close(frame)) => {
                    let normal = frame.as_ref().is_some_and(|f| {
                        f.code == tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode::Normal
                    });
                    if !normal {
                        stats.ws_errors.fetch_add(1, Ordering::Relaxed);
                        stats.error(format!("{kind:?} closed by the server: {frame:?}"));
                    }
                    return;
                }
                Ok(_) => continue,
                Err(e) => {
                    stats.ws_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error(format!("{kind:?} socket: {e}"));
                    return;
                }
            };
            let now = Utc::now();
            let Ok(message) = serde_json::from_str::<Incoming<'_>>(&text) else {
                stats.error(format!("{kind:?} got a message that is not JSON"));
                continue;
            };
            match message.kind {
                "driver_location" => {}
                "order_created" | "order_status" | "driver_status" => {
                    stats.events_received.fetch_add(1, Ordering::Relaxed);
                    continue;
                }
                "error" => {
                    stats.ws_errors.fetch_add(1, Ordering::Relaxed);
                    stats.error(format!("{kind:?} got {text}"));
                    continue;
                }
                _ => continue,
            }
            let Some(recorded_at) = message.recorded_at else {
                continue;
            };
            // Only fixes sent within the window count.
            if DateTime::parse_from_rfc3339(recorded_at).is_ok_and(|t| t < window.start_utc)
                || Instant::now() > window.end + Duration::from_millis(500)
            {
                continue;
            }
            let Some(total) = micros_between(recorded_at, now) else {
                continue;
            };
            match kind {
                Subscriber::Dashboard => {
                    stats.delivered_vendor.fetch_add(1, Ordering::Relaxed);
                    stats.vendor_latency.record(total);
                }
                Subscriber::Tracker => {
                    stats.delivered_tracker.fetch_add(1, Ordering::Relaxed);
                    stats.tracker_latency.record(total);
                }
            }
            if let Some((delivered, latency)) = stats.by_instance.get(instance) {
                delivered.fetch_add(1, Ordering::Relaxed);
                latency.record(total);
            }
            if let Some(publish) = message.sent_at.and_then(|sent| {
                micros_between(
                    recorded_at,
                    DateTime::parse_from_rfc3339(sent).ok()?.with_timezone(&Utc),
                )
            }) {
                stats.publish_latency.record(publish);
            }
        }
    };
    let _ = tokio::time::timeout_at(stop.into(), read).await;
    let _ = sink.close().await;
}

// ---------------------------------------------------------------------------------------------
// The HTTP mix

/// Orders placed during the run, waiting for their next status change.
#[derive(Default)]
struct Pipeline {
    pending: Mutex<VecDeque<(String, usize)>>,
    accepted: Mutex<VecDeque<(String, usize)>>,
}

/// What the HTTP workers share.
struct Mix {
    customer: String,
    vendors: Vec<VendorState>,
    tracking_tokens: Vec<String>,
    logins: Vec<String>,
    pipeline: Pipeline,
    counter: AtomicU64,
}

/// One worker of one kind: claims the next slot of the kind's schedule, waits for it, calls.
/// Latency runs from the slot, not from the send, so a server that falls behind shows it.
async fn http_worker(
    kind: Call,
    rate: Rate,
    mut http: Http,
    mix: Arc<Mix>,
    schedule: Arc<AtomicU64>,
    window: Window,
    stats: Arc<Stats>,
) {
    let period_ns = match rate {
        Rate::PerSecond(r) => (1e9 / r) as u64,
        _ => 0,
    };
    loop {
        let slot = if period_ns > 0 {
            let at = window.start
                + Duration::from_nanos(schedule.fetch_add(period_ns, Ordering::Relaxed));
            if at >= window.end {
                return;
            }
            tokio::time::sleep_until(at.into()).await;
            at
        } else {
            let now = Instant::now();
            if now >= window.end {
                return;
            }
            now
        };
        let n = mix.counter.fetch_add(1, Ordering::Relaxed);
        let result = match kind {
            Call::CreateOrder => {
                let v = rand::random_range(0..mix.vendors.len());
                let vendor = &mix.vendors[v];
                let body = order_body(
                    vendor,
                    destination_near([vendor.latitude, vendor.longitude]),
                    n,
                );
                http.call(
                    Method::POST,
                    "/api/orders",
                    Some(&mix.customer),
                    Some(&body),
                )
                .await
                .map(|answer| {
                    if answer.status == StatusCode::CREATED
                        && let Ok(order) = answer.json()
                        && let Some(id) = order["id"].as_str()
                    {
                        let mut pending = mix.pipeline.pending.lock().expect("not poisoned");
                        if pending.len() < 100_000 {
                            pending.push_back((id.to_owned(), v));
                        }
                    }
                    (answer.status, StatusCode::CREATED)
                })
            }
            Call::TrackingRead => {
                let token = &mix.tracking_tokens[rand::random_range(0..mix.tracking_tokens.len())];
                http.call(Method::GET, &format!("/api/tracking/{token}"), None, None)
                    .await
                    .map(|answer| (answer.status, StatusCode::OK))
            }
            Call::StatusChange => {
                // Alternate: cancel an accepted order, accept a pending one.
                let cancel = n.is_multiple_of(2);
                let next = {
                    let take = |queue: &Mutex<VecDeque<(String, usize)>>| {
                        queue.lock().expect("not poisoned").pop_front()
                    };
                    let first = if cancel {
                        &mix.pipeline.accepted
                    } else {
                        &mix.pipeline.pending
                    };
                    let second = if cancel {
                        &mix.pipeline.pending
                    } else {
                        &mix.pipeline.accepted
                    };
                    match take(first) {
                        Some(order) => Some((order, cancel)),
                        None => take(second).map(|order| (order, !cancel)),
                    }
                };
                let Some(((id, v), cancel)) = next else {
                    stats.call(kind).idle.fetch_add(1, Ordering::Relaxed);
                    continue;
                };
                let status = if cancel { "cancelled" } else { "accepted" };
                let token = mix.vendors[v].account.access_token.as_str();
                let result = http
                    .call(
                        Method::PATCH,
                        &format!("/api/orders/{id}"),
                        Some(token),
                        Some(&json!({ "status": status, "reason": "load test" })),
                    )
                    .await;
                if !cancel && result.as_ref().is_ok_and(|a| a.status == StatusCode::OK) {
                    mix.pipeline
                        .accepted
                        .lock()
                        .expect("not poisoned")
                        .push_back((id, v));
                }
                result.map(|answer| (answer.status, StatusCode::OK))
            }
            Call::Login => {
                let email = &mix.logins[rand::random_range(0..mix.logins.len())];
                http.call(
                    Method::POST,
                    "/api/auth/login",
                    None,
                    Some(&json!({ "email": email, "password": PASSWORD })),
                )
                .await
                .map(|answer| (answer.status, StatusCode::OK))
            }
        };
        let done = Instant::now();
        let calls = stats.call(kind);
        match result {
            Ok((status, expected)) if status == expected => {
                calls.ok.fetch_add(1, Ordering::Relaxed);
                calls
                    .latency
                    .record(done.duration_since(slot).as_micros() as u64);
            }
            Ok((status, _)) => {
                calls.errors.fetch_add(1, Ordering::Relaxed);
                stats.error(format!("{}: {status}", kind.name()));
            }
            Err(e) => {
                calls.errors.fetch_add(1, Ordering::Relaxed);
                stats.error(format!("{}: {e:#}", kind.name()));
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Processes

/// Resident memory (MiB) and CPU seconds (user + system) of a process, from /proc.
fn process_usage(pid: &str) -> Option<(f64, f64)> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let rss_kib: f64 = status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))?
        .trim()
        .trim_end_matches("kB")
        .trim()
        .parse()
        .ok()?;
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // Fields after the command name (which may hold spaces) start at state (field 3).
    let rest = &stat[stat.rfind(')')? + 2..];
    let fields: Vec<&str> = rest.split_whitespace().collect();
    let ticks: f64 = fields.get(11)?.parse::<f64>().ok()? + fields.get(12)?.parse::<f64>().ok()?;
    // USER_HZ is 100 on Linux.
    Some((rss_kib / 1024.0, ticks / 100.0))
}

fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|l| l.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".into())
}

fn open_files_limit() -> Option<usize> {
    let limits = std::fs::read_to_string("/proc/self/limits").ok()?;
    let line = limits.lines().find(|l| l.starts_with("Max open files"))?;
    line.split_whitespace().nth(3)?.parse().ok()
}

// ---------------------------------------------------------------------------------------------
// The run

fn ms(micros: u64) -> f64 {
    micros as f64 / 1000.0
}

fn percentiles(h: &Histogram<u64>) -> String {
    if h.is_empty() {
        return "no samples".into();
    }
    format!(
        "p50 {:.2}  p90 {:.2}  p99 {:.2}  max {:.2} ms",
        ms(h.value_at_quantile(0.5)),
        ms(h.value_at_quantile(0.9)),
        ms(h.value_at_quantile(0.99)),
        ms(h.max())
    )
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let target = loopback_target(&args.target).await?;
    let dashboards = args.dashboards.unwrap_or(args.vendors);
    ensure!(args.vendors > 0, "--vendors must be at least 1");
    ensure!(
        args.trackers == 0 || args.drivers > 0,
        "trackers follow the drivers' orders: --trackers needs --drivers"
    );
    let http_workers: usize = Call::ALL
        .iter()
        .filter(|c| c.rate(&args) != Rate::Off)
        .count()
        * args.http_connections;
    let connections = args.drivers + args.trackers + dashboards + http_workers;
    if let Some(limit) = open_files_limit() {
        ensure!(
            connections + 64 <= limit,
            "{connections} connections need more than the {limit} open files this process may \
             have (ulimit -n); the server needs as many"
        );
    }
    let sources = Sources::new(
        target,
        args.source_addrs
            .map(usize::from)
            .unwrap_or(connections.div_ceil(CONNECTIONS_PER_SOURCE)),
    );

    let subscriber_targets = match &args.subscribers_at {
        None => vec![target],
        Some(list) => {
            let mut targets = Vec::new();
            for one in list.split(',').map(str::trim).filter(|t| !t.is_empty()) {
                targets.push(loopback_target(one).await?);
            }
            ensure!(!targets.is_empty(), "--subscribers-at names no instance");
            targets
        }
    };

    let mut state = State::load(&args.state, &args.target)?;
    let started = Instant::now();
    setup(&args, target, &sources, &mut state).await?;
    eprintln!(
        "setup: {} pharmacies, {} drivers on their orders, ready in {:.1} s (state in {})",
        state.vendors.len(),
        state.drivers.len(),
        started.elapsed().as_secs_f64(),
        args.state.display()
    );
    if args.setup_only {
        return Ok(());
    }

    let vendors: Vec<VendorState> = state.vendors[..args.vendors].to_vec();
    let drivers: Vec<DriverState> = state.drivers[..args.drivers].to_vec();
    // Who hears about each driver's fixes: its pharmacy's dashboards and its order's trackers.
    let mut dashboards_of_vendor = vec![0u64; vendors.len()];
    for d in 0..dashboards {
        dashboards_of_vendor[d % vendors.len()] += 1;
    }
    let mut subscribers: Vec<u64> = drivers
        .iter()
        .map(|d| dashboards_of_vendor[d.vendor])
        .collect();
    for t in 0..args.trackers {
        subscribers[t % drivers.len()] += 1;
    }

    let instances = subscriber_targets
        .iter()
        .map(SocketAddr::to_string)
        .collect::<Vec<_>>()
        .join(", ");
    eprintln!(
        "connecting {dashboards} dashboards and {} trackers to {instances}, {} drivers to \
         {target}, from {} source address(es)",
        args.trackers,
        args.drivers,
        sources.addrs.len().max(1)
    );
    let connect_started = Instant::now();
    let connected = Arc::new(AtomicUsize::new(0));
    let total = dashboards + args.trackers + args.drivers;
    let progress = SetupProgress::start("connected", connected.clone(), total);
    // Each connection's path and the instance it goes to (an index of `subscriber_targets`, or
    // `None` for the drivers' --target).
    let mut paths: Vec<(String, Option<usize>)> = Vec::with_capacity(total);
    let instance_of = |n: usize| Some(n % subscriber_targets.len());
    for d in 0..dashboards {
        let vendor = &vendors[d % vendors.len()];
        paths.push((
            format!(
                "/ws/vendor/{}?token={}",
                vendor.id, vendor.account.access_token
            ),
            instance_of(d),
        ));
    }
    for t in 0..args.trackers {
        paths.push((
            format!("/ws/tracking/{}", drivers[t % drivers.len()].tracking_token),
            instance_of(dashboards + t),
        ));
    }
    for driver in &drivers {
        paths.push((
            format!("/ws/driver?token={}", driver.account.access_token),
            None,
        ));
    }
    let sockets: Vec<anyhow::Result<Ws>> =
        futures_util::stream::iter(paths.iter().map(|(path, instance)| {
            let sources = sources.clone();
            let connected = connected.clone();
            let to = instance.map_or(target, |i| subscriber_targets[i]);
            async move {
                let ws = websocket(to, &sources, path).await;
                connected.fetch_add(1, Ordering::Relaxed);
                ws
            }
        }))
        .buffered(CONNECT_CONCURRENCY)
        .collect()
        .await;
    drop(progress);
    let failed = sockets.iter().filter(|s| s.is_err()).count();
    if let Some(Err(e)) = sockets.iter().find(|s| s.is_err()) {
        eprintln!("{failed} connections failed, the first: {e:#}");
    }
    eprintln!(
        "connected {} of {total} in {:.1} s",
        total - failed,
        connect_started.elapsed().as_secs_f64()
    );

    let stats = Arc::new(Stats::new(subscriber_targets.len()));
    let start = Instant::now() + Duration::from_millis(500);
    let window = Window {
        start,
        start_utc: Utc::now() + chrono::Duration::milliseconds(500),
        end: start + args.duration,
    };
    let interval = (args.fix_interval_ms > 0).then(|| Duration::from_millis(args.fix_interval_ms));
    let mut tasks = tokio::task::JoinSet::new();
    let mut sockets = sockets
        .into_iter()
        .zip(paths.iter().map(|(_, i)| i.unwrap_or(0)));
    for (ws, instance) in sockets.by_ref().take(dashboards) {
        if let Ok(ws) = ws {
            tasks.spawn(subscribe(
                ws,
                Subscriber::Dashboard,
                instance,
                window,
                stats.clone(),
            ));
        }
    }
    for (ws, instance) in sockets.by_ref().take(args.trackers) {
        if let Ok(ws) = ws {
            tasks.spawn(subscribe(
                ws,
                Subscriber::Tracker,
                instance,
                window,
                stats.clone(),
            ));
        }
    }
    let sockets = sockets.map(|(ws, _)| ws);
    for (i, ws) in sockets.enumerate() {
        if let Ok(ws) = ws {
            tasks.spawn(drive(
                ws,
                drivers[i].clone(),
                subscribers[i],
                interval,
                window,
                stats.clone(),
            ));
        }
    }
    let mix = Arc::new(Mix {
        customer: state
            .customer
            .as_ref()
            .map(|c| c.access_token.clone())
            .unwrap_or_default(),
        tracking_tokens: drivers.iter().map(|d| d.tracking_token.clone()).collect(),
        logins: drivers.iter().map(|d| d.account.email.clone()).collect(),
        vendors: vendors.clone(),
        pipeline: Pipeline::default(),
        counter: AtomicU64::new(0),
    });
    for kind in Call::ALL {
        let rate = kind.rate(&args);
        if rate == Rate::Off {
            continue;
        }
        if matches!(kind, Call::TrackingRead | Call::Login) && drivers.is_empty() {
            eprintln!("{}: no drivers, so nothing to call", kind.name());
            continue;
        }
        let schedule = Arc::new(AtomicU64::new(0));
        for _ in 0..args.http_connections.max(1) {
            tasks.spawn(http_worker(
                kind,
                rate,
                Http::new(target, &sources),
                mix.clone(),
                schedule.clone(),
                window,
                stats.clone(),
            ));
        }
    }

    let server_pid = args.server_pid.map(|p| p.to_string());
    let usage_at_start = (
        server_pid.as_deref().and_then(process_usage),
        process_usage("self"),
    );
    let load_at_start = load_average();
    tokio::time::sleep_until(window.start.into()).await;
    let mut last = (0u64, 0u64, [0u64; 4]);
    let mut peak_rss = 0.0f64;
    let mut ticks = 0u64;
    while Instant::now() < window.end {
        ticks += 1;
        tokio::time::sleep_until(
            (window.start + Duration::from_secs(ticks))
                .min(window.end)
                .into(),
        )
        .await;
        let fixes = stats.fixes_sent.load(Ordering::Relaxed);
        let delivered = stats.delivered_vendor.load(Ordering::Relaxed)
            + stats.delivered_tracker.load(Ordering::Relaxed);
        let calls: [u64; 4] = std::array::from_fn(|i| stats.calls[i].ok.load(Ordering::Relaxed));
        let errors: u64 = stats.ws_errors.load(Ordering::Relaxed)
            + stats
                .calls
                .iter()
                .map(|c| c.errors.load(Ordering::Relaxed))
                .sum::<u64>();
        let p99 = |s: &Series| {
            s.take_interval_p99()
                .map_or("-".into(), |v| format!("{v:.1}"))
        };
        let mut line = format!(
            "[{:>3}s] fixes {:>6}/s  delivered {:>6}/s  p99 ms: vendor {} tracker {}",
            ticks,
            fixes - last.0,
            delivered - last.1,
            p99(&stats.vendor_latency),
            p99(&stats.tracker_latency),
        );
        for kind in Call::ALL {
            if kind.rate(&args) != Rate::Off {
                let i = kind as usize;
                line += &format!(
                    "  {} {}/s p99 {}",
                    kind.name(),
                    calls[i] - last.2[i],
                    p99(&stats.calls[i].latency)
                );
            }
        }
        line += &format!("  errors {errors}");
        if let Some((rss, _)) = server_pid.as_deref().and_then(process_usage) {
            peak_rss = peak_rss.max(rss);
            line += &format!("  server RSS {rss:.0} MiB");
        }
        println!("{line}");
        last = (fixes, delivered, calls);
    }
    let usage_at_end = (
        server_pid.as_deref().and_then(process_usage),
        process_usage("self"),
    );
    let load_at_end = load_average();
    // Let subscribers receive what was in flight, then stop everything.
    let _ = tokio::time::timeout(Duration::from_secs(3), async {
        while tasks.join_next().await.is_some() {}
    })
    .await;
    tasks.abort_all();

    // The report.
    let seconds = args.duration.as_secs_f64();
    println!();
    println!(
        "MedEx load run against {target}: {seconds:.0} s measured; load average {load_at_start} \
         at start, {load_at_end} at end ({} CPUs)",
        std::thread::available_parallelism().map_or(0, usize::from)
    );
    println!(
        "connections: {} drivers ({}), {} trackers, {dashboards} dashboards, {http_workers} HTTP; \
         {failed} failed; {} source address(es)",
        args.drivers,
        match interval {
            Some(i) => format!("a fix every {} ms each", i.as_millis()),
            None => "silent".into(),
        },
        args.trackers,
        sources.addrs.len().max(1)
    );
    let fixes = stats.fixes_sent.load(Ordering::Relaxed);
    let expected = stats.deliveries_expected.load(Ordering::Relaxed);
    let to_vendors = stats.delivered_vendor.load(Ordering::Relaxed);
    let to_trackers = stats.delivered_tracker.load(Ordering::Relaxed);
    println!(
        "fixes sent: {fixes} ({:.0}/s); delivered to subscribers: {} ({:.0}/s, {:.1}% of {expected} \
         expected; locations coalesce per driver when a subscriber lags)",
        fixes as f64 / seconds,
        to_vendors + to_trackers,
        (to_vendors + to_trackers) as f64 / seconds,
        100.0 * (to_vendors + to_trackers) as f64 / expected.max(1) as f64,
    );
    let mut all = stats.vendor_latency.total();
    all.add(stats.tracker_latency.total()).expect("same bounds");
    println!("driver → subscriber latency, all: {}", percentiles(&all));
    println!(
        "  to dashboards ({to_vendors}): {}",
        percentiles(&stats.vendor_latency.total())
    );
    println!(
        "  to trackers ({to_trackers}): {}",
        percentiles(&stats.tracker_latency.total())
    );
    println!(
        "  of which before the server's fan-out (recorded_at → sent_at): {}",
        percentiles(&stats.publish_latency.total())
    );
    if subscriber_targets.len() > 1 || subscriber_targets[0] != target {
        for (instance, (delivered, latency)) in subscriber_targets.iter().zip(&stats.by_instance) {
            let whose = if *instance == target {
                "the drivers' instance"
            } else {
                "another instance"
            };
            println!(
                "  at {instance} ({whose}, {}): {}",
                delivered.load(Ordering::Relaxed),
                percentiles(&latency.total())
            );
        }
    }
    println!(
        "status events at dashboards: {}; WebSocket errors: {}",
        stats.events_received.load(Ordering::Relaxed),
        stats.ws_errors.load(Ordering::Relaxed)
    );
    for kind in Call::ALL {
        let rate = kind.rate(&args);
        if rate == Rate::Off {
            continue;
        }
        let calls = stats.call(kind);
        let ok = calls.ok.load(Ordering::Relaxed);
        let idle = calls.idle.load(Ordering::Relaxed);
        println!(
            "http {:<14} {:>8} ok ({:>7.0}/s, asked {}) errors {:>5}{}  {}",
            kind.name(),
            ok,
            ok as f64 / seconds,
            match rate {
                Rate::PerSecond(r) => format!("{r}/s"),
                _ => "max".into(),
            },
            calls.errors.load(Ordering::Relaxed),
            if idle > 0 {
                format!(" (idle {idle}: no order to move)")
            } else {
                String::new()
            },
            percentiles(&calls.latency.total())
        );
    }
    if let (Some((_, cpu0)), Some((rss, cpu1))) = (usage_at_start.0, usage_at_end.0) {
        println!(
            "server: RSS {rss:.0} MiB at end (peak seen {peak_rss:.0} MiB), CPU {:.0}% of one core",
            100.0 * (cpu1 - cpu0) / seconds
        );
    }
    if let (Some((_, cpu0)), Some((rss, cpu1))) = (usage_at_start.1, usage_at_end.1) {
        println!(
            "loadgen: RSS {rss:.0} MiB, CPU {:.0}% of one core",
            100.0 * (cpu1 - cpu0) / seconds
        );
    }
    let kinds = stats.error_kinds.lock().expect("not poisoned");
    if !kinds.is_empty() {
        println!("errors by kind:");
        let mut kinds: Vec<_> = kinds.iter().collect();
        kinds.sort_by(|a, b| b.1.cmp(a.1));
        for (what, count) in kinds.into_iter().take(10) {
            println!("  {count:>7}  {what}");
        }
    }
    Ok(())
}
