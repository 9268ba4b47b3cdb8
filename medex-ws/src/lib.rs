//! MedEx live tracking over WebSocket: a fan-out [`Hub`] that never stalls, and the `/ws/`
//! endpoints ([`WsServer`]) on the same port as the HTTP API.
//!
//! The [`Hub`] is the [`EventBus`](medex_core::events::EventBus) the use cases publish to. It
//! serializes each event once per topic (a pharmacy, a tracking token, a driver) and hands it to
//! every subscriber's bounded outbox without waiting: location updates coalesce to the latest per
//! driver, and a subscriber that cannot keep up with status events is closed with 1013 and
//! resyncs from `initial_state` when it reconnects.
//!
//! [`WsServer::handle`] answers any request under `/ws/`: `/ws/driver`, `/ws/vendor/{id}` and
//! `/ws/tracking/{token}`. The protocol, limits and backpressure rules are in the crate's
//! README.
//!
//! Wiring: one `Arc<Hub>` is both the service's bus and the server's hub.
//!
//! ```
//! use std::sync::Arc;
//! use medex_core::prelude::*;
//! use medex_ws::{Hub, WsConfig, WsServer};
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let hub = Arc::new(Hub::new());
//! let medex = Arc::new(MedEx::new(Ports {
//!     store: Arc::new(MemoryStore::new()),
//!     bus: hub.clone(),
//!     clock: Arc::new(SystemClock),
//!     entropy: Arc::new(OsEntropy),
//!     hasher: Arc::new(Argon2Hasher::insecure_fast()),
//!     tokens: TokenKeys::new(&[7; 32], TokenLifetimes::default()).unwrap(),
//!     custody: CustodyKeys::from_seed([8; 32]),
//! }, SystemConfig::default()).await?);
//! let ws = WsServer::new(medex, hub, WsConfig::default());
//!
//! // In the HTTP service: requests whose path starts with "/ws/" go to `ws.handle(req)`.
//! // A plain GET is not a WebSocket handshake:
//! let req = http::Request::get("/ws/driver").body(()).unwrap();
//! let response = ws.handle(req).await;
//! assert_eq!(response.status(), http::StatusCode::UPGRADE_REQUIRED);
//! # Ok::<(), medex_core::error::Error>(())
//! # }).unwrap();
//! ```

mod config;
mod connection;
mod hub;
mod messages;
mod open;
mod server;

pub use config::WsConfig;
pub use hub::Hub;
pub use server::WsServer;

/// The client's address, as the serving program puts it in the request's extensions before
/// calling [`WsServer::handle`]: connections are capped per address
/// ([`WsConfig::max_per_address`]) when it is there.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PeerAddr(pub std::net::SocketAddr);

/// The path prefix [`WsServer::handle`] answers.
pub const PATH_PREFIX: &str = "/ws/";

/// Reads one client text frame as a connection does: `Ok(None)` for a `ping` or a `locations`
/// batch, `Ok(Some(fix))` for a `location` (its values not yet validated), `Err` with the
/// description sent back to the client otherwise.
///
/// Public only so that fuzz targets outside this crate reach the parser; not part of the API.
#[doc(hidden)]
pub fn parse_client_text(text: &str) -> Result<Option<medex_core::service::FixInput>, String> {
    Ok(match messages::ClientMessage::parse(text)? {
        messages::ClientMessage::Ping | messages::ClientMessage::Locations { .. } => None,
        messages::ClientMessage::Location(fix) => Some(fix.into()),
    })
}
