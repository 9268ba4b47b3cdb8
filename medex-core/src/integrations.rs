//! Integrations of a pharmacy with its own systems: API keys, outgoing webhooks with their
//! delivery log (the transactional outbox), and remembered `Idempotency-Key`s. The records and the
//! pure rules about them; the use cases live in [`crate::service::integrations`], the sending in
//! the program that runs a dispatcher.

use core::net::IpAddr;

use chrono::{DateTime, Duration, Utc};
use hmac::{Hmac, Mac};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};
use uuid::Uuid;

use crate::model::{
    ApiKeyId, DeliveryId, IdempotencyId, Order, OrderId, OrderStatus, UserId, VendorId, WebhookId,
};

/// Every API key starts with this, so that a leaked one is recognisable (secret scanners) and
/// the server tells it from a JWT without trying both.
pub const API_KEY_PREFIX: &str = "mdx_";
/// How many characters of a key its listing shows (`mdx_` and eight more).
pub const API_KEY_SHOWN: usize = 12;
/// How long a remembered `Idempotency-Key` replays its answer.
pub const IDEMPOTENCY_TTL: Duration = Duration::hours(24);
/// How long a request holds its key while it runs; a key held longer is taken over (its request
/// died with its instance).
pub const IDEMPOTENCY_HOLD: Duration = Duration::seconds(60);
/// How long a delivery is retried after its event.
pub const DELIVERY_WINDOW: Duration = Duration::hours(24);
/// How many attempts the delivery log keeps per delivery (the newest).
pub const DELIVERY_LOG: usize = 20;

/// A pharmacy's API key. The key itself is never stored: only its SHA-256.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ApiKey {
    /// Identity.
    pub id: ApiKeyId,
    /// Whose.
    pub vendor_id: VendorId,
    /// The account whose rights the key carries (the pharmacy's owner account).
    pub user_id: UserId,
    /// A label chosen by the pharmacy.
    pub name: String,
    /// The first [`API_KEY_SHOWN`] characters of the key.
    pub prefix: String,
    /// Hex SHA-256 of the key (unique).
    pub hash: String,
    /// When made.
    pub created_at: DateTime<Utc>,
    /// When it last authenticated a request (written at most once a minute).
    pub last_used_at: Option<DateTime<Utc>>,
    /// When revoked; a revoked key authenticates nothing and is listed no more.
    pub revoked_at: Option<DateTime<Utc>>,
    /// Optimistic concurrency version.
    pub version: u64,
}

/// Hex SHA-256 of an API key: what is stored and looked up.
pub fn api_key_hash(key: &str) -> String {
    hex(&Sha256::digest(key.as_bytes()))
}

/// Lower-case hexadecimal.
pub fn hex(bytes: &[u8]) -> String {
    use std::fmt::Write as _;
    let mut out = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(out, "{b:02x}");
    }
    out
}

/// What happened to an order, as a webhook event type.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub enum WebhookEvent {
    /// `order.created`.
    #[serde(rename = "order.created")]
    OrderCreated,
    /// `order.status_changed`: every change of status.
    #[serde(rename = "order.status_changed")]
    StatusChanged,
    /// `order.driver_assigned` (also a re-assignment).
    #[serde(rename = "order.driver_assigned")]
    DriverAssigned,
    /// `order.delivered`.
    #[serde(rename = "order.delivered")]
    Delivered,
    /// `order.failed`: a failed delivery attempt.
    #[serde(rename = "order.failed")]
    Failed,
    /// `order.late_risk`: the drop-off is now expected after its `deliver_before` (once).
    #[serde(rename = "order.late_risk")]
    LateRisk,
    /// `order.driver_arriving`: the driver is about to reach the drop-off (once).
    #[serde(rename = "order.driver_arriving")]
    DriverArriving,
    /// `order.driver_arrived`: the driver has been at the drop-off for a while (once).
    #[serde(rename = "order.driver_arrived")]
    DriverArrived,
}

impl WebhookEvent {
    /// Every event type.
    pub const ALL: [WebhookEvent; 8] = [
        WebhookEvent::OrderCreated,
        WebhookEvent::StatusChanged,
        WebhookEvent::DriverAssigned,
        WebhookEvent::Delivered,
        WebhookEvent::Failed,
        WebhookEvent::LateRisk,
        WebhookEvent::DriverArriving,
        WebhookEvent::DriverArrived,
    ];

    /// The wire name.
    pub fn as_str(self) -> &'static str {
        match self {
            WebhookEvent::OrderCreated => "order.created",
            WebhookEvent::StatusChanged => "order.status_changed",
            WebhookEvent::DriverAssigned => "order.driver_assigned",
            WebhookEvent::Delivered => "order.delivered",
            WebhookEvent::Failed => "order.failed",
            WebhookEvent::LateRisk => "order.late_risk",
            WebhookEvent::DriverArriving => "order.driver_arriving",
            WebhookEvent::DriverArrived => "order.driver_arrived",
        }
    }

    /// The event named `name`.
    pub fn parse(name: &str) -> Option<Self> {
        Self::ALL.into_iter().find(|e| e.as_str() == name)
    }
}

/// The events an order change causes: `before` is the stored order (none for a new one).
pub fn events_of(before: Option<&Order>, after: &Order) -> Vec<WebhookEvent> {
    let Some(before) = before else {
        return vec![WebhookEvent::OrderCreated];
    };
    // Marks set once, without a change of status.
    let marked =
        |mark: fn(&Order) -> Option<DateTime<Utc>>| mark(before).is_none() && mark(after).is_some();
    let marks: Vec<WebhookEvent> = [
        (marked(|o| o.late_risk_at), WebhookEvent::LateRisk),
        (
            marked(|o| o.driver_arriving_at),
            WebhookEvent::DriverArriving,
        ),
        (marked(|o| o.driver_arrived_at), WebhookEvent::DriverArrived),
    ]
    .into_iter()
    .filter_map(|(set, event)| set.then_some(event))
    .collect();
    if !marks.is_empty() {
        return marks;
    }
    let reassigned =
        after.status == OrderStatus::DriverAssigned && before.driver_id != after.driver_id;
    if before.status == after.status && !reassigned {
        return Vec::new();
    }
    let mut events = vec![WebhookEvent::StatusChanged];
    match after.status {
        OrderStatus::DriverAssigned => events.push(WebhookEvent::DriverAssigned),
        OrderStatus::Delivered => events.push(WebhookEvent::Delivered),
        OrderStatus::Failed => events.push(WebhookEvent::Failed),
        _ => {}
    }
    events
}

/// A pharmacy's outgoing webhook endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Webhook {
    /// Identity.
    pub id: WebhookId,
    /// Whose.
    pub vendor_id: VendorId,
    /// Where events go.
    pub url: String,
    /// The event types it wants; empty with `all`.
    pub events: Vec<WebhookEvent>,
    /// Every event type (`["*"]`), today's and future ones.
    pub all: bool,
    /// The signing secret.
    pub secret: String,
    /// When made.
    pub created_at: DateTime<Utc>,
    /// When the secret last changed.
    pub secret_rotated_at: Option<DateTime<Utc>>,
    /// When removed: a removed endpoint gets nothing more and is listed no more.
    pub deleted_at: Option<DateTime<Utc>>,
    /// Optimistic concurrency version.
    pub version: u64,
}

impl Webhook {
    /// Whether the endpoint wants `event`.
    pub fn wants(&self, event: WebhookEvent) -> bool {
        self.deleted_at.is_none() && (self.all || self.events.contains(&event))
    }
}

/// Where a delivery stands.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum DeliveryState {
    /// Waiting for its next attempt.
    Pending,
    /// A 2xx answer came back.
    Delivered,
    /// Given up after [`DELIVERY_WINDOW`], or its endpoint was removed.
    Failed,
}

/// One attempt of a delivery.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct DeliveryAttempt {
    /// When it started.
    pub at: DateTime<Utc>,
    /// The HTTP status of the answer, if one came.
    pub status: Option<u16>,
    /// Why it did not succeed (timeout, connection refused, ...), without secrets.
    pub error: Option<String>,
    /// The address rule refused the destination: nothing was sent.
    pub blocked: bool,
    /// How long it took, in milliseconds.
    pub duration_ms: u64,
}

/// One event for one endpoint: a row of the outbox, written in the same commit as the order
/// change that caused it, then sent (and retried) by a dispatcher.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Delivery {
    /// Identity, sent as `X-MedEx-Delivery` on every attempt.
    pub id: DeliveryId,
    /// The event's id (the body's `id`): shared by the deliveries of one event to several endpoints.
    pub event_id: Uuid,
    /// The event type.
    pub event: WebhookEvent,
    /// To where.
    pub webhook_id: WebhookId,
    /// Whose.
    pub vendor_id: VendorId,
    /// About which order.
    pub order_id: OrderId,
    /// The order as it was committed with this event (its `version` orders the deliveries of one
    /// order to one endpoint; `sequence` orders events of one commit).
    pub order: Order,
    /// Position among the events of one commit.
    pub sequence: u32,
    /// When the event happened.
    pub created_at: DateTime<Utc>,
    /// Where it stands.
    pub state: DeliveryState,
    /// Attempts so far.
    pub attempts: u32,
    /// Not to be tried before.
    pub next_attempt_at: DateTime<Utc>,
    /// While an instance is sending it: until when (others leave it alone until then).
    pub leased_until: Option<DateTime<Utc>>,
    /// The newest attempts, oldest first (at most [`DELIVERY_LOG`]).
    pub log: Vec<DeliveryAttempt>,
    /// Optimistic concurrency version.
    pub version: u64,
}

impl Delivery {
    /// The key that orders the deliveries of one order to one endpoint.
    pub fn order_key(&self) -> (WebhookId, OrderId, u64, u32) {
        (
            self.webhook_id,
            self.order_id,
            self.order.version,
            self.sequence,
        )
    }

    /// Whether it may be attempted at `now`: pending, due, and not leased by anyone.
    pub fn is_due(&self, now: DateTime<Utc>) -> bool {
        self.state == DeliveryState::Pending
            && self.next_attempt_at <= now
            && self.leased_until.is_none_or(|until| until <= now)
    }

    /// Records an attempt and decides what comes next: delivered on a 2xx, else a retry after
    /// [`retry_delay`] (`base` [`RETRY_BASE`] but in tests, `jitter` in 0..1) while within
    /// [`DELIVERY_WINDOW`] of the event, else failed.
    pub fn record(&mut self, attempt: DeliveryAttempt, base: Duration, jitter: f64) {
        let ok = attempt.status.is_some_and(|s| (200..300).contains(&s));
        let at = attempt.at;
        self.attempts += 1;
        self.log.push(attempt);
        if self.log.len() > DELIVERY_LOG {
            let extra = self.log.len() - DELIVERY_LOG;
            self.log.drain(..extra);
        }
        self.leased_until = None;
        if ok {
            self.state = DeliveryState::Delivered;
            return;
        }
        let next = at + retry_delay(self.attempts, base, jitter);
        if next > self.created_at + DELIVERY_WINDOW {
            self.state = DeliveryState::Failed;
        } else {
            self.next_attempt_at = next;
        }
    }
}

/// The first wait before a retry, before jitter.
pub const RETRY_BASE: Duration = Duration::seconds(10);

/// The wait before retry number `attempts` (1 after the first failure): `base` (10 s) doubling
/// up to an hour, times 0.5..1.5 by `jitter` (0..1), so the first retry comes within 15 s and
/// endpoints that failed together do not retry together.
pub fn retry_delay(attempts: u32, base: Duration, jitter: f64) -> Duration {
    let base = base.num_milliseconds() as f64 / 1000.0;
    let grown = base * 2f64.powi(attempts.saturating_sub(1).min(16) as i32);
    let capped = grown.min(3600.0);
    let factor = 0.5 + jitter.clamp(0.0, 1.0);
    Duration::milliseconds((capped * factor * 1000.0) as i64)
}

/// The `X-MedEx-Signature` value of `body` sent at `t` (unix seconds):
/// `t=<t>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>`.
pub fn signature(secret: &str, t: i64, body: &[u8]) -> String {
    let mut mac = Hmac::<Sha256>::new_from_slice(secret.as_bytes()).expect("any key length");
    mac.update(t.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    format!("t={t},v1={}", hex(&mac.finalize().into_bytes()))
}

/// Whether `ip` is a public unicast address: not private, loopback, link-local, CGNAT, ULA,
/// multicast, broadcast, documentation, benchmarking or unspecified, also in IPv4-mapped,
/// IPv4-compatible, NAT64 and 6to4 forms.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, c, _] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_broadcast()
                || v4.is_documentation()
                || v4.is_unspecified()
                || v4.is_multicast()
                || a == 0
                || (a == 100 && (64..128).contains(&b))
                || (a == 192 && b == 0 && c == 0)
                || (a == 198 && (18..20).contains(&b))
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let s = v6.segments();
            // IPv4-compatible (::a.b.c.d), NAT64 (64:ff9b::/96) and 6to4 (2002::/16) embed an
            // IPv4 address that may be a private one.
            if s[..6] == [0, 0, 0, 0, 0, 0] || s[..6] == [0x64, 0xff9b, 0, 0, 0, 0] {
                let v4 = core::net::Ipv4Addr::new(
                    (s[6] >> 8) as u8,
                    s[6] as u8,
                    (s[7] >> 8) as u8,
                    s[7] as u8,
                );
                return !v6.is_unspecified() && !v6.is_loopback() && is_public(IpAddr::V4(v4));
            }
            if s[0] == 0x2002 {
                let v4 = core::net::Ipv4Addr::new(
                    (s[1] >> 8) as u8,
                    s[1] as u8,
                    (s[2] >> 8) as u8,
                    s[2] as u8,
                );
                return is_public(IpAddr::V4(v4));
            }
            !(v6.is_unspecified()
                || v6.is_loopback()
                || v6.is_multicast()
                || (s[0] & 0xfe00) == 0xfc00
                || (s[0] & 0xffc0) == 0xfe80
                || (s[0] & 0xffc0) == 0xfec0
                || (s[0] == 0x2001 && s[1] == 0x0db8)
                || (s[0] == 0x0100 && s[1..4] == [0, 0, 0]))
        }
    }
}

/// Why a webhook URL is refused at registration.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
pub enum TargetRefusal {
    /// Not an absolute http(s) URL with a host, or longer than 2,000 characters.
    #[error("must be an absolute https:// URL")]
    Malformed,
    /// `http://` while private destinations are not allowed.
    #[error("must use https://")]
    NotHttps,
    /// A literal private, loopback or otherwise non-public address, or a name for the local host.
    #[error("must point to a public address")]
    Private,
    /// User name or password in the URL.
    #[error("must not contain credentials")]
    Credentials,
}

/// Checks a webhook URL as registered: absolute, `https://` (or `http://` with `allow_private`),
/// no credentials, and not a literal non-public address unless `allow_private`. Names are checked
/// again after resolution at every delivery. The answer is the URL as HTTP clients read it
/// (`https:/shop.example` is `https://shop.example/`): what is stored, shown and sent to.
pub fn check_target(url: &str, allow_private: bool) -> Result<String, TargetRefusal> {
    if url.len() > 2000 {
        return Err(TargetRefusal::Malformed);
    }
    let parsed = url::Url::parse(url).map_err(|_| TargetRefusal::Malformed)?;
    match parsed.scheme() {
        "https" => {}
        "http" if allow_private => {}
        "http" => return Err(TargetRefusal::NotHttps),
        _ => return Err(TargetRefusal::Malformed),
    }
    if !parsed.username().is_empty() || parsed.password().is_some() {
        return Err(TargetRefusal::Credentials);
    }
    let private = match parsed.host() {
        None => return Err(TargetRefusal::Malformed),
        Some(url::Host::Ipv4(v4)) => !is_public(IpAddr::V4(v4)),
        Some(url::Host::Ipv6(v6)) => !is_public(IpAddr::V6(v6)),
        Some(url::Host::Domain(name)) => {
            let name = name.trim_end_matches('.').to_ascii_lowercase();
            name == "localhost" || name.ends_with(".localhost") || !name.contains('.')
        }
    };
    if private && !allow_private {
        return Err(TargetRefusal::Private);
    }
    Ok(parsed.into())
}

/// A remembered `Idempotency-Key`: held while its first request runs, then its answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct IdempotencyRecord {
    /// Identity: derived from the account and the key ([`idempotency_id`]), so that the first
    /// insert is the reservation and a second one conflicts.
    pub id: IdempotencyId,
    /// Whose.
    pub user_id: UserId,
    /// Hex SHA-256 of the request (method, path and body).
    pub fingerprint: String,
    /// Held or answered.
    pub state: IdempotencyState,
    /// When the first request came.
    pub created_at: DateTime<Utc>,
    /// When forgotten.
    pub expires_at: DateTime<Utc>,
    /// Optimistic concurrency version.
    pub version: u64,
}

/// Where a remembered key stands.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "state")]
pub enum IdempotencyState {
    /// Its first request runs (or ran on an instance that died: taken over after `until`).
    Held {
        /// Until when.
        until: DateTime<Utc>,
    },
    /// The first request's answer.
    Answered {
        /// HTTP status.
        status: u16,
        /// Content type.
        content_type: String,
        /// Body.
        body: String,
    },
    /// The first request failed on the server's side (5xx): the key may be used again.
    Released,
}

/// The id under which `user`'s key `key` is remembered.
pub fn idempotency_id(user: UserId, key: &str) -> IdempotencyId {
    let mut hash = Sha256::new();
    hash.update(user.to_bytes());
    hash.update(key.as_bytes());
    let digest = hash.finalize();
    let mut bytes = [0u8; 16];
    bytes.copy_from_slice(&digest[..16]);
    IdempotencyId::from_uuid(Uuid::from_bytes(bytes))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_public_addresses_are_refused_in_every_form() {
        for ip in [
            "127.0.0.1",
            "10.1.2.3",
            "172.16.0.1",
            "192.168.1.1",
            "169.254.169.254",
            "100.64.0.1",
            "0.0.0.0",
            "224.0.0.1",
            "255.255.255.255",
            "::1",
            "::",
            "fc00::1",
            "fd12::1",
            "fe80::1",
            "ff02::1",
            "::ffff:127.0.0.1",
            "::ffff:10.0.0.1",
            "::127.0.0.1",
            "64:ff9b::a00:1",
            "2002:7f00:1::",
        ] {
            assert!(!is_public(ip.parse().unwrap()), "{ip}");
        }
        for ip in [
            "93.184.216.34",
            "8.8.8.8",
            "2606:4700::1111",
            "::ffff:8.8.8.8",
        ] {
            assert!(is_public(ip.parse().unwrap()), "{ip}");
        }
    }

    #[test]
    fn registration_refuses_what_the_rule_forbids() {
        use TargetRefusal::*;
        let check = |url: &str, allow: bool| check_target(url, allow).map(drop);
        assert_eq!(check("https://shop.example.com/hook", false), Ok(()));
        assert_eq!(check("http://shop.example.com/hook", false), Err(NotHttps));
        assert_eq!(check("http://127.0.0.1:9/hook", true), Ok(()));
        assert_eq!(
            check_target("https:/2shop.example.com/medex", false).as_deref(),
            Ok("https://2shop.example.com/medex"),
            "the URL is stored as clients read it"
        );
        assert_eq!(check("https://127.0.0.1/hook", false), Err(Private));
        assert_eq!(check("https://[::1]/hook", false), Err(Private));
        assert_eq!(check("https://localhost/hook", false), Err(Private));
        assert_eq!(check("https://169.254.169.254/", false), Err(Private));
        assert_eq!(
            check("https://u:p@shop.example.com/", false),
            Err(Credentials)
        );
        assert_eq!(check("ftp://shop.example.com/", false), Err(Malformed));
        assert_eq!(check("not a url", false), Err(Malformed));
    }

    #[test]
    fn retries_start_within_thirty_seconds_and_grow() {
        let b = RETRY_BASE;
        assert!(retry_delay(1, b, 1.0) <= Duration::seconds(30));
        assert!(retry_delay(1, b, 0.0) >= Duration::seconds(5));
        assert!(retry_delay(5, b, 0.5) > retry_delay(4, b, 0.5));
        assert!(retry_delay(40, b, 1.0) <= Duration::hours(2));
    }

    #[test]
    fn a_delivery_is_retried_for_a_day_then_failed() {
        let t0 = chrono::Utc::now();
        let order = crate::conformance::fixtures::order(
            crate::model::OrderId::from_uuid(Uuid::nil()),
            crate::model::VendorId::from_uuid(Uuid::nil()),
            UserId::from_uuid(Uuid::nil()),
        );
        let mut d = Delivery {
            id: DeliveryId::from_uuid(Uuid::nil()),
            event_id: Uuid::nil(),
            event: WebhookEvent::OrderCreated,
            webhook_id: WebhookId::from_uuid(Uuid::nil()),
            vendor_id: order.vendor_id,
            order_id: order.id,
            order,
            sequence: 0,
            created_at: t0,
            state: DeliveryState::Pending,
            attempts: 0,
            next_attempt_at: t0,
            leased_until: Some(t0),
            log: vec![],
            version: 1,
        };
        let failed = |at| DeliveryAttempt {
            at,
            status: Some(500),
            error: Some("answered 500".into()),
            blocked: false,
            duration_ms: 1,
        };
        d.record(failed(t0), RETRY_BASE, 0.5);
        assert_eq!(d.state, DeliveryState::Pending);
        assert_eq!(d.leased_until, None);
        assert!(d.next_attempt_at - t0 <= Duration::seconds(30));
        while d.state == DeliveryState::Pending {
            let at = d.next_attempt_at;
            d.record(failed(at), RETRY_BASE, 0.5);
            assert!(d.attempts < 100);
        }
        assert_eq!(d.state, DeliveryState::Failed);
        assert!(d.log.len() <= DELIVERY_LOG);
        let mut ok = d.clone();
        ok.state = DeliveryState::Pending;
        ok.record(
            DeliveryAttempt {
                status: Some(204),
                error: None,
                ..failed(t0)
            },
            RETRY_BASE,
            0.5,
        );
        assert_eq!(ok.state, DeliveryState::Delivered);
    }

    #[test]
    fn signatures_follow_the_documented_scheme() {
        // HMAC-SHA256("secret", "1700000000.{}"), computed independently.
        assert_eq!(
            signature("secret", 1_700_000_000, b"{}"),
            format!(
                "t=1700000000,v1={}",
                "b8569b78799ff9e3cbff0fc2d63a33a2b57f3282abd07c37ae5e8e7d79a5f163"
            )
        );
    }
}
