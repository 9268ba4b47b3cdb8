//! The shared test world with the Hub as its bus, served by a tiny hyper server on
//! 127.0.0.1:0, and clients.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use medex_core::prelude::*;
pub(crate) use medex_core::testkit::{self, Who};
use medex_ws::{Hub, WsConfig, WsServer};
use serde_json::Value;
use tokio::net::{TcpListener, TcpStream};
use tokio_tungstenite::tungstenite::client::IntoClientRequest;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::tungstenite::{Error as WsError, Message};
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// How long a test waits for something that must happen before calling it a hang. Not a
/// performance bound: on a healthy machine everything arrives in milliseconds.
pub(crate) const HANG: Duration = Duration::from_secs(20);

/// How long "nothing arrives" is watched for.
pub(crate) const QUIET: Duration = Duration::from_millis(300);

pub(crate) type Client = WebSocketStream<MaybeTlsStream<TcpStream>>;

pub(crate) use medex_core::testkit::PASSWORD;

/// A pharmacy of the shared world with its owner and one of its drivers, signed in.
pub(crate) struct Pharmacy {
    pub(crate) vendor: Vendor,
    pub(crate) owner: Actor,
    pub(crate) owner_token: String,
    pub(crate) driver: Driver,
    pub(crate) driver_actor: Actor,
    pub(crate) driver_token: String,
}

/// The shared test world (`medex_core::testkit`) with the Hub as its bus, served over a real
/// socket. `pharmacy` is the world's pharmacy A with driver 0, `other` pharmacy B with driver 2.
pub(crate) struct World {
    pub(crate) kit: testkit::World,
    pub(crate) medex: Arc<MedEx>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) server: WsServer,
    pub(crate) addr: SocketAddr,
    pub(crate) pharmacy: Pharmacy,
    pub(crate) other: Pharmacy,
    pub(crate) customer_token: String,
}

/// Settings that keep tests quick: every fix is recorded.
pub(crate) fn test_config() -> WsConfig {
    WsConfig {
        min_fix_interval: Duration::ZERO,
        ..WsConfig::default()
    }
}

impl World {
    /// The latitudes of `driver`'s trail of the last hour, oldest first, once every accepted fix
    /// is written (the trail is written behind the fan-out).
    pub(crate) async fn recent_latitudes(&self, driver: medex_core::model::DriverId) -> Vec<f64> {
        let store = self.medex.store();
        store.flush().await.unwrap();
        let now = chrono::Utc::now();
        let hour = chrono::Duration::hours(1);
        let query = medex_core::store::TrailQuery::new(driver, now - hour, now + hour, 100);
        let trail = store.trail(query).await.unwrap();
        trail.iter().map(|f| f.latitude).collect()
    }

    pub(crate) async fn start() -> World {
        World::with(test_config()).await
    }

    pub(crate) async fn with(config: WsConfig) -> World {
        let hub = Arc::new(Hub::new());
        let kit = testkit::World::with(testkit::Options {
            bus: Some(hub.clone()),
            live_clock: true,
            ..testkit::Options::default()
        })
        .await;
        let medex = kit.medex.clone();
        // Fixes are written behind the fan-out, as the server does.
        if let Some(writer) = medex
            .fix_queue()
            .writer(Duration::from_millis(50), tokio::time::sleep)
        {
            tokio::spawn(writer);
        }
        let server = WsServer::new(medex.clone(), hub.clone(), config);
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let serving = server.clone();
        tokio::spawn(async move {
            while let Ok((stream, _)) = listener.accept().await {
                let server = serving.clone();
                tokio::spawn(async move {
                    let service = service_fn(move |req| {
                        let server = server.clone();
                        async move { Ok::<_, Infallible>(server.handle(req).await) }
                    });
                    let _ = http1::Builder::new()
                        .serve_connection(TokioIo::new(stream), service)
                        .with_upgrades()
                        .await;
                });
            }
        });
        let pharmacy = Self::pharmacy(&kit, Who::VendorA, 0).await;
        let other = Self::pharmacy(&kit, Who::VendorB, 2).await;
        World {
            customer_token: Self::token_of(&kit, Who::Customer(0)).await,
            medex,
            hub,
            server,
            addr,
            pharmacy,
            other,
            kit,
        }
    }

    async fn token_of(kit: &testkit::World, who: Who) -> String {
        let session = kit.medex.login(&kit.email(who), PASSWORD).await;
        session.expect("the world's accounts sign in").access_token
    }

    async fn pharmacy(kit: &testkit::World, owner: Who, driver: usize) -> Pharmacy {
        let admin = &kit.admin;
        let (driver_actor, driver_id) = kit.drivers[driver];
        let driver_record = kit.medex.get_driver(admin, driver_id).await.unwrap();
        Pharmacy {
            vendor: kit
                .medex
                .get_vendor(admin, driver_record.vendor_id)
                .await
                .unwrap(),
            owner: kit.actor(owner),
            owner_token: Self::token_of(kit, owner).await,
            driver: driver_record,
            driver_actor,
            driver_token: Self::token_of(kit, Who::Driver(driver)).await,
        }
    }

    /// A fresh access token of `who`.
    pub(crate) async fn token(&self, who: Who) -> String {
        Self::token_of(&self.kit, who).await
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    pub(crate) fn vendor_url(&self, p: &Pharmacy) -> String {
        self.url(&format!(
            "/ws/vendor/{}?token={}",
            p.vendor.id, p.owner_token
        ))
    }

    pub(crate) fn driver_url(&self, p: &Pharmacy) -> String {
        self.url(&format!("/ws/driver?token={}", p.driver_token))
    }

    pub(crate) fn tracking_url(&self, order: &Order) -> String {
        self.url(&format!("/ws/tracking/{}", order.tracking_token))
    }

    /// An order of the customer at the main pharmacy, still pending.
    pub(crate) async fn pending_order(&self) -> Order {
        self.kit.order_in(OrderStatus::Pending).await
    }

    /// An order accepted by the pharmacy and assigned to its driver.
    pub(crate) async fn assigned_order(&self) -> Order {
        self.kit.order_in(OrderStatus::DriverAssigned).await
    }
}

pub(crate) async fn connect(url: &str) -> Client {
    let (client, _) = tokio::time::timeout(HANG, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake hangs")
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
    client
}

/// Connects to `url` and reads its first message, which must be of type `greeting`.
pub(crate) async fn connect_greeted(url: &str, greeting: &str) -> Client {
    let mut client = connect(url).await;
    assert_eq!(next_json(&mut client).await["type"], greeting, "{url}");
    client
}

/// Connects with extra request headers; returns the client and the handshake response.
pub(crate) async fn connect_with(
    url: &str,
    headers: &[(&str, &str)],
) -> Result<(Client, http::Response<Option<Vec<u8>>>), WsError> {
    let mut request = url.into_client_request().unwrap();
    for (k, v) in headers {
        request.headers_mut().insert(
            http::HeaderName::from_bytes(k.as_bytes()).unwrap(),
            v.parse().unwrap(),
        );
    }
    tokio::time::timeout(HANG, tokio_tungstenite::connect_async(request))
        .await
        .expect("handshake hangs")
}

/// The status and JSON body of a refused handshake.
pub(crate) async fn refused(url: &str, headers: &[(&str, &str)]) -> (u16, Value) {
    match connect_with(url, headers).await {
        Ok(_) => panic!("{url} was accepted"),
        Err(WsError::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
            (response.status().as_u16(), json)
        }
        Err(e) => panic!("{url}: not an HTTP refusal: {e}"),
    }
}

/// The next text message as JSON, skipping control frames. Panics on close or hang.
/// One deadline for the whole wait: pings alone must not keep it waiting forever.
pub(crate) async fn next_json(client: &mut Client) -> Value {
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        let message = tokio::time::timeout_at(deadline, client.next())
            .await
            .expect("no message arrived")
            .expect("connection ended")
            .expect("connection failed");
        match message {
            Message::Text(text) => return serde_json::from_str(&text).unwrap(),
            Message::Close(frame) => panic!("closed: {frame:?}"),
            _ => {}
        }
    }
}

/// The next message of type `kind`, skipping others (e.g. `driver_status` around assignments).
pub(crate) async fn next_of(client: &mut Client, kind: &str) -> Value {
    loop {
        let json = next_json(client).await;
        if json["type"] == kind {
            return json;
        }
    }
}

/// Whether no text message arrives for a while.
pub(crate) async fn quiet(client: &mut Client) -> Result<(), Value> {
    let deadline = tokio::time::Instant::now() + QUIET;
    loop {
        match tokio::time::timeout_at(deadline, client.next()).await {
            Err(_) => return Ok(()),
            Ok(Some(Ok(Message::Text(text)))) => {
                return Err(serde_json::from_str(&text).unwrap());
            }
            Ok(Some(Ok(_))) => {}
            Ok(other) => panic!("connection ended: {other:?}"),
        }
    }
}

/// Reads until the server's close frame; returns its code and the text messages before it.
pub(crate) async fn close_code(client: &mut Client) -> (CloseCode, Vec<Value>) {
    let mut seen = Vec::new();
    let deadline = tokio::time::Instant::now() + HANG;
    loop {
        let message = tokio::time::timeout_at(deadline, client.next())
            .await
            .expect("no close arrived");
        match message {
            Some(Ok(Message::Text(text))) => seen.push(serde_json::from_str(&text).unwrap()),
            Some(Ok(Message::Close(frame))) => {
                // Polling on sends the client's close reply and sees the server hang up.
                let _ = tokio::time::timeout(HANG, async {
                    while let Some(Ok(_)) = client.next().await {}
                })
                .await;
                return (frame.map(|f| f.code).unwrap_or(CloseCode::Status), seen);
            }
            Some(Ok(_)) => {}
            other => panic!("ended without a close frame: {other:?}; after {seen:?}"),
        }
    }
}

pub(crate) async fn send_json(client: &mut Client, value: Value) {
    client
        .send(Message::Text(value.to_string().into()))
        .await
        .unwrap();
}

pub(crate) async fn send_text(client: &mut Client, text: &str) {
    client.send(Message::Text(text.into())).await.unwrap();
}

/// A `location` message.
pub(crate) fn fix(latitude: f64, longitude: f64) -> Value {
    serde_json::json!({
        "type": "location", "latitude": latitude, "longitude": longitude,
        "speed": 18.5, "heading": 90.0, "accuracy": 8.0,
    })
}

/// The object's keys, sorted.
pub(crate) fn keys(value: &Value) -> Vec<&str> {
    let mut keys: Vec<&str> = value
        .as_object()
        .expect("an object")
        .keys()
        .map(String::as_str)
        .collect();
    keys.sort_unstable();
    keys
}
