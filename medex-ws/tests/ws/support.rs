//! A MedEx with the Hub as its bus, served by a tiny hyper server on 127.0.0.1:0, and clients.

use std::convert::Infallible;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use futures_util::{SinkExt, StreamExt};
use hyper::server::conn::http1;
use hyper::service::service_fn;
use hyper_util::rt::TokioIo;
use medex_core::prelude::*;
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

pub(crate) const PASSWORD: &str = "s3cret-pass";

/// A pharmacy with its owner and one driver.
pub(crate) struct Pharmacy {
    pub(crate) vendor: Vendor,
    pub(crate) owner: Actor,
    pub(crate) owner_token: String,
    pub(crate) driver: Driver,
    pub(crate) driver_actor: Actor,
    pub(crate) driver_token: String,
}

pub(crate) struct World {
    pub(crate) medex: Arc<MedEx>,
    pub(crate) hub: Arc<Hub>,
    pub(crate) server: WsServer,
    pub(crate) addr: SocketAddr,
    pub(crate) pharmacy: Pharmacy,
    pub(crate) other: Pharmacy,
    pub(crate) customer: Actor,
    pub(crate) customer_token: String,
}

/// Settings that keep tests quick: every fix is recorded.
pub(crate) fn test_config() -> WsConfig {
    WsConfig {
        min_fix_interval: Duration::ZERO,
        ..WsConfig::default()
    }
}

async fn token(medex: &MedEx, email: &str) -> String {
    medex.login(email, PASSWORD).await.unwrap().access_token
}

async fn pharmacy(medex: &MedEx, name: &str) -> Pharmacy {
    let (vendor, owner) = medex
        .register_vendor(NewVendor {
            email: format!("owner@{name}.test"),
            password: PASSWORD.into(),
            business_name: format!("{name} Pharmacy"),
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
                email: format!("dee@{name}.test"),
                password: PASSWORD.into(),
                full_name: "Dee Driver".into(),
                phone: Some("+49 30 5555".into()),
                vehicle_type: VehicleType::Bike,
                vehicle_number: None,
                license_number: None,
            },
        )
        .await
        .unwrap();
    Pharmacy {
        owner_token: token(medex, &format!("owner@{name}.test")).await,
        driver_token: token(medex, &format!("dee@{name}.test")).await,
        vendor,
        owner,
        driver,
        driver_actor: Actor::of(&driver_user),
    }
}

impl World {
    pub(crate) async fn start() -> World {
        World::with(test_config()).await
    }

    pub(crate) async fn with(config: WsConfig) -> World {
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
        let main = pharmacy(&medex, "corner").await;
        let other = pharmacy(&medex, "elsewhere").await;
        let customer = medex
            .register_customer(NewAccount {
                email: "ann@example.test".into(),
                password: PASSWORD.into(),
                full_name: "Ann Customer".into(),
                phone: None,
            })
            .await
            .unwrap();
        let customer_token = customer.access_token.clone();
        World {
            customer: Actor::of(&customer.user),
            customer_token,
            medex,
            hub,
            server,
            addr,
            pharmacy: main,
            other,
        }
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
        self.medex
            .create_order(
                &self.customer,
                NewOrder {
                    vendor_id: self.pharmacy.vendor.id,
                    delivery_address: "9 Elm St".into(),
                    delivery_latitude: 52.53,
                    delivery_longitude: 13.41,
                    customer_name: "Ann Customer".into(),
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
            .unwrap()
    }

    /// An order accepted by the pharmacy and assigned to its driver.
    pub(crate) async fn assigned_order(&self) -> Order {
        let order = self.pending_order().await;
        let p = &self.pharmacy;
        self.medex
            .change_status(&p.owner, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        self.medex
            .set_driver_status(&p.driver_actor, p.driver.id, DriverStatus::Available)
            .await
            .unwrap();
        self.medex
            .assign_driver(&p.owner, order.id, p.driver.id)
            .await
            .unwrap()
    }
}

pub(crate) async fn connect(url: &str) -> Client {
    let (client, _) = tokio::time::timeout(HANG, tokio_tungstenite::connect_async(url))
        .await
        .expect("handshake hangs")
        .unwrap_or_else(|e| panic!("connecting to {url}: {e}"));
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
pub(crate) async fn next_json(client: &mut Client) -> Value {
    loop {
        let message = tokio::time::timeout(HANG, client.next())
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
    loop {
        let message = tokio::time::timeout(HANG, client.next())
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
