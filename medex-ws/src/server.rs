//! The `/ws/` endpoints: the handshake over hyper's upgrade, who may connect, and what the first
//! message is.

use std::borrow::Cow;
use std::sync::Arc;

use bytes::Bytes;
use chrono::Utc;
use http::header::{
    ALLOW, AUTHORIZATION, CONNECTION, CONTENT_TYPE, ORIGIN, SEC_WEBSOCKET_ACCEPT,
    SEC_WEBSOCKET_KEY, SEC_WEBSOCKET_PROTOCOL, SEC_WEBSOCKET_VERSION, UPGRADE, WWW_AUTHENTICATE,
};
use http::{HeaderMap, HeaderValue, Method, Request, Response, StatusCode, Version};
use http_body_util::Full;
use hyper::upgrade::OnUpgrade;
use hyper_util::rt::TokioIo;
use medex_core::MedEx;
use medex_core::error::Error;
use medex_core::events::Topic;
use medex_core::model::VendorId;
use medex_core::permissions::{self, Actor, Permission, access};
use tokio_tungstenite::WebSocketStream;
use tokio_tungstenite::tungstenite::Utf8Bytes;
use tokio_tungstenite::tungstenite::handshake::derive_accept_key;
use tokio_tungstenite::tungstenite::protocol::Role as WsRole;

use crate::config::WsConfig;
use crate::connection::{self, Connection, Peer};
use crate::hub::{Hub, Subscription};
use crate::messages;
use crate::open::{Cap, Connections, OpenConnection, Owner};

/// Tracking tokens are 22 characters; longer ones cannot exist and are refused before any work.
const MAX_TRACKING_TOKEN: usize = 64;

/// The WebSocket endpoints, to be called for every request whose path starts with `/ws/`:
/// `/ws/driver`, `/ws/vendor/{id}` and `/ws/tracking/{token}`.
///
/// Cheap to clone: clones share the service, the hub, the configuration and the shutdown state.
#[derive(Clone)]
pub struct WsServer {
    medex: Arc<MedEx>,
    hub: Arc<Hub>,
    config: Arc<WsConfig>,
    connections: Arc<Connections>,
}

impl std::fmt::Debug for WsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WsServer")
            .field("hub", &self.hub)
            .field("config", &self.config)
            .field("open_connections", &self.open_connections())
            .finish_non_exhaustive()
    }
}

/// Which endpoint a path names.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Route {
    Driver,
    Vendor(VendorId),
    Tracking(String),
}

impl Route {
    fn parse(path: &str) -> Option<Route> {
        let rest = path.strip_prefix("/ws/")?;
        if rest == "driver" {
            return Some(Route::Driver);
        }
        if let Some(id) = rest.strip_prefix("vendor/") {
            return id.parse().ok().map(Route::Vendor);
        }
        let token = rest.strip_prefix("tracking/")?;
        (!token.is_empty() && token.len() <= MAX_TRACKING_TOKEN && !token.contains('/'))
            .then(|| Route::Tracking(token.to_owned()))
    }
}

/// What the handshake needs from a request; the request (and its body) is gone after this.
struct Head {
    method: Method,
    version: Version,
    path: String,
    query: Option<String>,
    headers: HeaderMap,
    on_upgrade: Option<OnUpgrade>,
    peer: Option<std::net::IpAddr>,
}

impl Head {
    fn of<B>(mut req: Request<B>) -> Head {
        let on_upgrade = req.extensions_mut().remove::<OnUpgrade>();
        let peer = req.extensions().get::<crate::PeerAddr>().map(|p| p.0.ip());
        let (parts, _body) = req.into_parts();
        Head {
            method: parts.method,
            version: parts.version,
            path: parts.uri.path().to_owned(),
            query: parts.uri.query().map(str::to_owned),
            headers: parts.headers,
            on_upgrade,
            peer,
        }
    }

    fn header(&self, name: http::header::HeaderName) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    fn header_has_token(&self, name: http::header::HeaderName, token: &str) -> bool {
        self.headers.get_all(name).iter().any(|v| {
            v.to_str().is_ok_and(|v| {
                v.split(',')
                    .any(|part| part.trim().eq_ignore_ascii_case(token))
            })
        })
    }

    /// The offered subprotocols, in order.
    fn subprotocols(&self) -> Vec<&str> {
        self.headers
            .get_all(SEC_WEBSOCKET_PROTOCOL)
            .iter()
            .filter_map(|v| v.to_str().ok())
            .flat_map(|v| v.split(','))
            .map(str::trim)
            .filter(|p| !p.is_empty())
            .collect()
    }

    /// Whether the client offered the `bearer` subprotocol (it must then be answered).
    fn offers_bearer(&self) -> bool {
        self.subprotocols()
            .iter()
            .any(|p| p.eq_ignore_ascii_case("bearer"))
    }

    /// The access token: `?token=`, then `Authorization: Bearer`, then
    /// `Sec-WebSocket-Protocol: bearer, <token>`.
    fn token(&self) -> Option<String> {
        if let Some(query) = &self.query
            && let Some((_, token)) = form_urlencoded::parse(query.as_bytes())
                .find(|(k, v)| k == "token" && !v.is_empty())
        {
            return Some(token.into_owned());
        }
        if let Some(value) = self.header(AUTHORIZATION)
            && let Some((scheme, token)) = value.trim().split_once(' ')
            && scheme.eq_ignore_ascii_case("bearer")
            && !token.trim().is_empty()
        {
            return Some(token.trim().to_owned());
        }
        let protocols = self.subprotocols();
        let at = protocols
            .iter()
            .position(|p| p.eq_ignore_ascii_case("bearer"))?;
        protocols.get(at + 1).map(|t| (*t).to_owned())
    }
}

/// A handshake refused before the upgrade.
struct Refusal {
    status: StatusCode,
    code: &'static str,
    detail: Cow<'static, str>,
}

fn refuse(status: StatusCode, code: &'static str, detail: &'static str) -> Refusal {
    Refusal {
        status,
        code,
        detail: detail.into(),
    }
}

/// Use case errors answer a handshake as they answer an HTTP request: the status, code and
/// detail come from medex-core's one table.
impl From<Error> for Refusal {
    fn from(e: Error) -> Self {
        if let Error::Storage(source) = &e {
            tracing::warn!(error = %source, "storage failed during a WebSocket handshake");
        }
        Refusal {
            status: StatusCode::from_u16(e.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE),
            code: e.code(),
            detail: e.public_detail(),
        }
    }
}

fn json_response(status: StatusCode, code: &str, detail: &str) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(messages::refusal_body(code, detail))));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static("application/json"));
    response
}

impl Refusal {
    fn into_response(self) -> Response<Full<Bytes>> {
        let mut response = json_response(self.status, self.code, &self.detail);
        let headers = response.headers_mut();
        match self.status {
            StatusCode::UNAUTHORIZED => {
                headers.insert(WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
            }
            StatusCode::UPGRADE_REQUIRED => {
                headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
                headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
                headers.insert(SEC_WEBSOCKET_VERSION, HeaderValue::from_static("13"));
            }
            StatusCode::METHOD_NOT_ALLOWED => {
                headers.insert(ALLOW, HeaderValue::from_static("GET"));
            }
            _ => {}
        }
        response
    }
}

/// What an accepted handshake hands to the connection task.
struct Accepted {
    peer: Peer,
    subscription: Subscription,
    first: Vec<Utf8Bytes>,
    finished: bool,
}

impl WsServer {
    /// The endpoints over `medex`, fanning out through `hub` — the same hub `medex` publishes to.
    pub fn new(medex: Arc<MedEx>, hub: Arc<Hub>, config: WsConfig) -> Self {
        let connections = Connections::new(config.max_per_account, config.max_per_address);
        Self {
            medex,
            hub,
            config: Arc::new(config),
            connections,
        }
    }

    /// The hub connections subscribe to.
    pub fn hub(&self) -> &Arc<Hub> {
        &self.hub
    }

    /// The limits in force.
    pub fn config(&self) -> &WsConfig {
        &self.config
    }

    /// Upgraded connections still open.
    pub fn open_connections(&self) -> usize {
        self.connections.count()
    }

    /// Refuses new handshakes (503) and closes every open connection with 1001 ("going away"),
    /// then waits until all have finished. Bound the wait with a timeout if clients may be
    /// unresponsive: each connection gives up on its close handshake after
    /// [`WsConfig::close_timeout`], or after [`WsConfig::write_timeout`] if blocked writing.
    pub async fn shutdown(&self) {
        self.connections.close_all().await;
    }

    /// Answers a request for a path under `/ws/`: `101 Switching Protocols` and a spawned
    /// connection task, or a refusal with a JSON body `{"detail", "code"}`: 404 for an unknown
    /// path, vendor or tracking token; 405 for a method other than GET; 426 without an
    /// `Upgrade: websocket` handshake (400 when it is malformed); 403 for a disallowed `Origin`
    /// or a role that may not use the endpoint; 401 for a missing or bad token; 503 while
    /// shutting down or when storage fails.
    ///
    /// Only the method, the URI, the headers and hyper's upgrade extension are used; the body
    /// is dropped unread. The server must serve connections with upgrades enabled (hyper's
    /// `serve_connection(..).with_upgrades()`).
    pub async fn handle<B>(&self, req: Request<B>) -> Response<Full<Bytes>> {
        let head = Head::of(req);
        match self.accept(head).await {
            Ok(response) => response,
            Err(refusal) => refusal.into_response(),
        }
    }

    async fn accept(&self, head: Head) -> Result<Response<Full<Bytes>>, Refusal> {
        let route = Route::parse(&head.path)
            .ok_or_else(|| refuse(StatusCode::NOT_FOUND, "not_found", "not found"))?;
        let key = check_handshake(&head)?;
        if !self.config.origin_allowed(head.header(ORIGIN)) {
            return Err(refuse(
                StatusCode::FORBIDDEN,
                "origin_not_allowed",
                "origin not allowed",
            ));
        }
        if self.connections.closing() {
            return Err(refuse(
                StatusCode::SERVICE_UNAVAILABLE,
                "shutting_down",
                "the server is shutting down",
            ));
        }
        let offers_bearer = head.offers_bearer();
        let accepted = match route {
            Route::Driver => self.accept_driver(&head).await?,
            Route::Vendor(vendor) => self.accept_vendor(&head, vendor).await?,
            Route::Tracking(token) => self.accept_tracker(token).await?,
        };
        let owner = Owner {
            account: accepted.peer.actor().map(|a| a.user_id),
            address: head.peer,
        };
        let open = self.connections.open(owner).map_err(|cap| {
            metrics::counter!("medex_ws_refused_total", "cap" => match cap {
                Cap::Account => "account",
                Cap::Address => "address",
            })
            .increment(1);
            refuse(
                StatusCode::TOO_MANY_REQUESTS,
                "too_many_connections",
                match cap {
                    Cap::Account => "this account has as many live connections as it may",
                    Cap::Address => "this address has as many live connections as it may",
                },
            )
        })?;
        let Some(on_upgrade) = head.on_upgrade else {
            tracing::error!("no upgrade extension: serve connections with upgrades enabled");
            return Err(refuse(
                StatusCode::INTERNAL_SERVER_ERROR,
                "upgrade_unavailable",
                "this server cannot upgrade connections",
            ));
        };
        self.spawn(on_upgrade, accepted, open);

        let mut response = Response::new(Full::new(Bytes::new()));
        *response.status_mut() = StatusCode::SWITCHING_PROTOCOLS;
        let headers = response.headers_mut();
        headers.insert(CONNECTION, HeaderValue::from_static("Upgrade"));
        headers.insert(UPGRADE, HeaderValue::from_static("websocket"));
        if let Ok(accept) = HeaderValue::from_str(&derive_accept_key(key.as_bytes())) {
            headers.insert(SEC_WEBSOCKET_ACCEPT, accept);
        }
        if offers_bearer {
            headers.insert(SEC_WEBSOCKET_PROTOCOL, HeaderValue::from_static("bearer"));
        }
        Ok(response)
    }

    async fn actor(&self, head: &Head) -> Result<Actor, Refusal> {
        let token = head.token().ok_or(refuse(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "missing access token",
        ))?;
        Ok(self.medex.authenticate(&token).await?)
    }

    async fn accept_driver(&self, head: &Head) -> Result<Accepted, Refusal> {
        let actor = self.actor(head).await?;
        let driver_id = permissions::own_driver(&actor).map_err(Error::from)?;
        // Subscribe before reading the state the first message shows: nothing published in
        // between is lost (a duplicate is possible, a gap is not).
        let mut subscription = self.hub.subscribe(
            Topic::Driver(driver_id),
            self.config.status_queue,
            Some(&actor),
        );
        subscription.ready().await;
        // Signed out between the first check and the subscription: the hub would not close it.
        self.actor(head).await?;
        let driver = self.medex.get_driver(&actor, driver_id).await?;
        let active_order = match driver.active_order_id {
            Some(order) => match self.medex.get_order(&actor, order).await {
                Ok(order) => Some(order),
                Err(Error::NotFound) => None,
                Err(e) => return Err(e.into()),
            },
            None => None,
        };
        let interval = u64::try_from(self.config.min_fix_interval.as_millis()).unwrap_or(u64::MAX);
        let first = messages::connected(&driver, active_order.as_ref(), interval, Utc::now());
        Ok(Accepted {
            peer: Peer::Driver { actor, driver_id },
            subscription,
            first: vec![first],
            finished: false,
        })
    }

    async fn accept_vendor(&self, head: &Head, vendor: VendorId) -> Result<Accepted, Refusal> {
        let actor = self.actor(head).await?;
        // As the HTTP API: another pharmacy looks absent, other roles are refused.
        access(&actor, Permission::ManageVendor(vendor))
            .require()
            .map_err(Error::from)?;
        let mut subscription = self.hub.subscribe(
            Topic::Vendor(vendor),
            self.config.status_queue,
            Some(&actor),
        );
        subscription.ready().await;
        self.actor(head).await?;
        let fleet = self.medex.vendor_live_state(&actor, vendor).await?;
        let first = messages::vendor_initial_state(vendor, &fleet, Utc::now());
        Ok(Accepted {
            peer: Peer::Vendor { actor },
            subscription,
            first: vec![first],
            finished: false,
        })
    }

    async fn accept_tracker(&self, token: String) -> Result<Accepted, Refusal> {
        let mut subscription = self.hub.subscribe(
            Topic::Tracking(token.clone()),
            self.config.status_queue,
            None,
        );
        subscription.ready().await;
        let view = self.medex.tracking_view(&token, true).await?;
        let first = messages::tracker_initial_state(&view, Utc::now());
        Ok(Accepted {
            peer: Peer::Tracker,
            subscription,
            first: vec![first],
            // A finished order shows its final state, then the connection closes normally.
            finished: view.status.is_terminal(),
        })
    }

    fn spawn(&self, on_upgrade: OnUpgrade, accepted: Accepted, open: OpenConnection) {
        let connection = Connection {
            medex: self.medex.clone(),
            config: self.config.clone(),
            peer: accepted.peer,
            subscription: accepted.subscription,
            first: accepted.first,
            finished: accepted.finished,
            open,
        };
        let ws_config = self.config.tungstenite();
        tokio::spawn(async move {
            match on_upgrade.await {
                Ok(upgraded) => {
                    let ws = WebSocketStream::from_raw_socket(
                        TokioIo::new(upgraded),
                        WsRole::Server,
                        Some(ws_config),
                    )
                    .await;
                    connection::run(ws, connection).await;
                }
                Err(e) => tracing::debug!(error = %e, "WebSocket upgrade failed"),
            }
        });
    }
}

/// Checks the opening handshake (RFC 6455 §4.2.1) and returns the client's key.
fn check_handshake(head: &Head) -> Result<String, Refusal> {
    if head.method != Method::GET {
        return Err(refuse(
            StatusCode::METHOD_NOT_ALLOWED,
            "method_not_allowed",
            "WebSocket handshakes use GET",
        ));
    }
    if !head.header_has_token(UPGRADE, "websocket") {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "upgrade_required",
            "this endpoint speaks WebSocket only",
        ));
    }
    if head.header(SEC_WEBSOCKET_VERSION) != Some("13") {
        return Err(refuse(
            StatusCode::UPGRADE_REQUIRED,
            "unsupported_websocket_version",
            "only WebSocket version 13 is supported",
        ));
    }
    if head.version != Version::HTTP_11 || !head.header_has_token(CONNECTION, "upgrade") {
        return Err(refuse(
            StatusCode::BAD_REQUEST,
            "bad_handshake",
            "a WebSocket handshake needs HTTP/1.1 and Connection: Upgrade",
        ));
    }
    match head.header(SEC_WEBSOCKET_KEY) {
        Some(key) if !key.trim().is_empty() => Ok(key.trim().to_owned()),
        _ => Err(refuse(
            StatusCode::BAD_REQUEST,
            "bad_handshake",
            "missing Sec-WebSocket-Key",
        )),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn routes() {
        let id = "0190c0de-0000-7000-8000-000000000001";
        let check = |path: &str, expect: Option<Route>| assert_eq!(Route::parse(path), expect);
        check("/ws/driver", Some(Route::Driver));
        check(
            &format!("/ws/vendor/{id}"),
            Some(Route::Vendor(id.parse().unwrap())),
        );
        check("/ws/vendor/not-an-id", None);
        check("/ws/tracking/abc", Some(Route::Tracking("abc".into())));
        check("/ws/tracking/", None);
        check("/ws/tracking/a/b", None);
        check(&format!("/ws/tracking/{}", "x".repeat(65)), None);
        check("/ws/", None);
        check("/api/ws/driver", None);
    }

    fn head(uri: &str, headers: &[(&str, &str)]) -> Head {
        let mut req = Request::get(uri);
        for (k, v) in headers {
            req = req.header(*k, *v);
        }
        Head::of(req.body(()).unwrap())
    }

    #[test]
    fn tokens_come_from_query_header_or_subprotocol() {
        let check = |h: Head, expect: Option<&str>, bearer: bool| {
            assert_eq!(h.token().as_deref(), expect);
            assert_eq!(h.offers_bearer(), bearer);
        };
        check(head("/ws/driver?token=abc", &[]), Some("abc"), false);
        check(head("/ws/driver?x=1&token=a%2Eb", &[]), Some("a.b"), false);
        check(
            head("/ws/driver", &[("authorization", "Bearer abc")]),
            Some("abc"),
            false,
        );
        check(
            head("/ws/driver", &[("authorization", "bearer  abc ")]),
            Some("abc"),
            false,
        );
        check(
            head("/ws/driver", &[("authorization", "Basic abc")]),
            None,
            false,
        );
        check(
            head("/ws/driver", &[("sec-websocket-protocol", "bearer, abc")]),
            Some("abc"),
            true,
        );
        check(
            head("/ws/driver", &[("sec-websocket-protocol", "bearer")]),
            None,
            true,
        );
        check(head("/ws/driver?token=", &[]), None, false);
        check(head("/ws/driver", &[]), None, false);
    }

    #[test]
    fn handshakes_are_checked() {
        let good = [
            ("upgrade", "websocket"),
            ("connection", "keep-alive, Upgrade"),
            ("sec-websocket-version", "13"),
            ("sec-websocket-key", "dGhlIHNhbXBsZSBub25jZQ=="),
        ];
        assert_eq!(
            check_handshake(&head("/ws/driver", &good)).ok().as_deref(),
            Some("dGhlIHNhbXBsZSBub25jZQ==")
        );
        let status = |headers: &[(&str, &str)]| {
            check_handshake(&head("/ws/driver", headers))
                .err()
                .map(|r| r.status)
        };
        assert_eq!(status(&[]), Some(StatusCode::UPGRADE_REQUIRED));
        assert_eq!(status(&good[..3]), Some(StatusCode::BAD_REQUEST));
        assert_eq!(
            status(&[good[0], good[1], ("sec-websocket-version", "8"), good[3]]),
            Some(StatusCode::UPGRADE_REQUIRED)
        );
        assert_eq!(
            status(&[good[0], ("connection", "close"), good[2], good[3]]),
            Some(StatusCode::BAD_REQUEST)
        );
    }
}
