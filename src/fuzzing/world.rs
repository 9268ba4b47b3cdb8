//! The prepared world of the HTTP-level targets: a service on the in-memory store with a manual
//! clock and seeded ids, its router, and accounts and orders in every state to aim at.

use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{Request, header};
use base64::Engine;
use chrono::{TimeZone, Utc};
use hmac::{Hmac, Mac};
use medex_core::prelude::*;
use serde_json::Value;
use sha2::Sha256;
use tower::ServiceExt;

use super::{MULTIPART_BOUNDARY, WEBHOOK_SECRET};

const PASSWORD: &str = "fuzz-password-1";

/// Largest request head the parser takes, in headers.
const MAX_HEADERS: usize = 64;

pub(super) struct World {
    pub(super) medex: Arc<MedEx>,
    router: Router,
    uploads: PathBuf,
    /// `$word` → text, longest words first so that `$driver_id` is not read as `$driver`.
    placeholders: Vec<(String, String)>,
    admin: Actor,
    driver: (Actor, DriverId),
    vendor_id: VendorId,
    pub(super) on_the_way: OrderId,
    tracking: String,
    driver_token: String,
}

/// An answer, read to the end.
pub(super) struct Reply {
    pub(super) status: u16,
    content_type: String,
    body: Vec<u8>,
    pub(super) json: Value,
    what: String,
}

impl Reply {
    pub(super) fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    /// The rules every answer keeps: no 5xx but 503 (storage unavailable), and errors in the
    /// API's format.
    pub(super) fn check(&self) {
        assert!(
            self.status < 500 || self.status == 503,
            "{} answered {}: {}",
            self.what,
            self.status,
            self.text()
        );
        // Answers to HEAD have no body to check.
        if self.status >= 400 && !self.what.starts_with("HEAD ") {
            assert!(
                self.content_type.starts_with("application/json")
                    && self.json["detail"].is_string()
                    && self.json["code"].is_string(),
                "{} answered {} outside the error format ({}): {}",
                self.what,
                self.status,
                self.content_type,
                self.text()
            );
        }
    }
}

/// A raw HTTP/1.1 request as the server's parser would hand it to the router, or `None` where
/// that parser (or `http`'s types) would refuse it. The body is whatever follows the head; the
/// framing headers are set from it, as the server does after reading a body.
pub(super) fn parse_request(raw: &[u8]) -> Option<Request<Body>> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let mut parsed = httparse::Request::new(&mut headers);
    let httparse::Status::Complete(head) = parsed.parse(raw).ok()? else {
        return None;
    };
    let mut request = Request::builder().method(parsed.method?).uri(parsed.path?);
    for h in parsed.headers.iter() {
        if h.name.eq_ignore_ascii_case("content-length")
            || h.name.eq_ignore_ascii_case("transfer-encoding")
        {
            continue;
        }
        request = request.header(h.name, h.value);
    }
    let body = &raw[head..];
    if !body.is_empty() {
        request = request.header(header::CONTENT_LENGTH, body.len());
    }
    request.body(Body::from(body.to_vec())).ok()
}

fn sign(body: &[u8]) -> String {
    let mut mac =
        Hmac::<Sha256>::new_from_slice(WEBHOOK_SECRET.as_bytes()).expect("any key length");
    mac.update(body);
    base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes())
}

fn new_order(vendor: VendorId) -> NewOrder {
    NewOrder {
        vendor_id: vendor,
        delivery_address: "9 Elm St".into(),
        delivery_latitude: 52.53,
        delivery_longitude: 13.41,
        customer_name: "Ann Patient".into(),
        customer_phone: "+49 30 1234".into(),
        items: vec![NewItem {
            name: "Insulin pen".into(),
            quantity: 2,
            notes: Some("keep cold".into()),
        }],
        notes: None,
        requirements: Default::default(),
        schedule: Default::default(),
    }
}

impl World {
    /// Two pharmacies with a driver each and a second one at the first, two customers, an
    /// admin, and orders of the first pharmacy in every status. Panics when the service cannot
    /// be set up: that is a bug too.
    pub(super) async fn build() -> World {
        let medex = MedEx::new(
            Ports {
                store: Arc::new(MemoryStore::new()),
                bus: Arc::new(NullBus),
                clock: Arc::new(ManualClock::new(
                    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap(),
                )),
                entropy: Arc::new(SeededEntropy::new(7)),
                hasher: Arc::new(Argon2Hasher::insecure_fast()),
                tokens: TokenKeys::new(&[9; 32], TokenLifetimes::default()).unwrap(),
                custody: CustodyKeys::from_seed([8; 32]),
            },
            SystemConfig::default(),
        )
        .await
        .expect("the service starts");
        let m = &medex;
        let login = |email: &'static str| async move {
            m.login(email, PASSWORD).await.expect("fixture login")
        };
        m.create_admin("admin@fuzz.test", PASSWORD, "Admin")
            .await
            .unwrap();
        let admin = login("admin@fuzz.test").await;
        let account = |email: &str| NewAccount {
            email: email.into(),
            password: PASSWORD.into(),
            full_name: "Ann Customer".into(),
            phone: None,
        };
        let customer = m.register_customer(account("ann@fuzz.test")).await.unwrap();
        let other_customer = m.register_customer(account("bob@fuzz.test")).await.unwrap();
        let pharmacy = |email: &str, name: &str| NewVendor {
            email: email.into(),
            password: PASSWORD.into(),
            business_name: name.into(),
            address: "1 Main St".into(),
            latitude: 52.52,
            longitude: 13.40,
            ..Default::default()
        };
        let (vendor, _) = m
            .register_vendor(pharmacy("owner@corner.test", "Corner Pharmacy"))
            .await
            .unwrap();
        let (other_vendor, _) = m
            .register_vendor(pharmacy("owner@other.test", "Other Pharmacy"))
            .await
            .unwrap();
        let vendor_session = login("owner@corner.test").await;
        let other_vendor_session = login("owner@other.test").await;
        let staff = Actor::of(&vendor_session.user);
        let other_staff = Actor::of(&other_vendor_session.user);
        let courier = |email: &str, name: &str| NewDriver {
            vendor_id: None,
            email: email.into(),
            password: PASSWORD.into(),
            full_name: name.into(),
            phone: Some("+1 555".into()),
            vehicle_type: VehicleType::Bike,
            vehicle_number: None,
            license_number: None,
        };
        let (driver, _) = m
            .register_driver(&staff, courier("dee@corner.test", "Dee Driver"))
            .await
            .unwrap();
        let (driver2, _) = m
            .register_driver(&staff, courier("sam@corner.test", "Sam Second"))
            .await
            .unwrap();
        let (other_driver, _) = m
            .register_driver(&other_staff, courier("oz@other.test", "Oz Other"))
            .await
            .unwrap();
        let driver_session = login("dee@corner.test").await;
        let driver2_session = login("sam@corner.test").await;
        let other_driver_session = login("oz@other.test").await;
        let dee = Actor::of(&driver_session.user);
        let sam = Actor::of(&driver2_session.user);
        let oz = Actor::of(&other_driver_session.user);
        for (actor, id) in [(dee, driver.id), (sam, driver2.id), (oz, other_driver.id)] {
            m.set_driver_status(&actor, id, DriverStatus::Available)
                .await
                .unwrap();
        }
        m.update_vendor(
            &staff,
            vendor.id,
            VendorPatch {
                woocommerce_webhook_secret: Some(Some(WEBHOOK_SECRET.into())),
                ..Default::default()
            },
        )
        .await
        .unwrap();

        let buyer = Actor::of(&customer.user);
        let order = || async { m.create_order(&buyer, new_order(vendor.id)).await.unwrap() };
        let step = |actor: Actor, id: OrderId, status: OrderStatus| async move {
            m.change_status(&actor, id, status, Some("fixture".into()))
                .await
                .unwrap();
        };
        let pending = order().await;
        let cancelled = order().await;
        m.cancel_order(&buyer, cancelled.id, None).await.unwrap();
        let accepted = order().await;
        step(staff, accepted.id, OrderStatus::Accepted).await;
        let assigned = order().await;
        step(staff, assigned.id, OrderStatus::Accepted).await;
        m.assign_driver(&staff, assigned.id, driver2.id)
            .await
            .unwrap();
        let delivered = order().await;
        let on_the_way = order().await;
        for (id, last) in [
            (delivered.id, OrderStatus::Delivered),
            (on_the_way.id, OrderStatus::OutForDelivery),
        ] {
            step(staff, id, OrderStatus::Accepted).await;
            m.assign_driver(&staff, id, driver.id).await.unwrap();
            step(dee, id, OrderStatus::PickedUp).await;
            step(dee, id, OrderStatus::OutForDelivery).await;
            if last == OrderStatus::Delivered {
                step(dee, id, OrderStatus::Delivered).await;
            }
        }

        let mut placeholders: Vec<(String, String)> = [
            ("admin", admin.access_token.clone()),
            ("customer", customer.access_token.clone()),
            ("other_customer", other_customer.access_token.clone()),
            ("vendor", vendor_session.access_token.clone()),
            ("other_vendor", other_vendor_session.access_token.clone()),
            ("driver", driver_session.access_token.clone()),
            ("driver2", driver2_session.access_token.clone()),
            ("other_driver", other_driver_session.access_token.clone()),
            ("refresh", customer.refresh_token.clone()),
            ("vendor_id", vendor.id.to_string()),
            ("other_vendor_id", other_vendor.id.to_string()),
            ("driver_id", driver.id.to_string()),
            ("driver2_id", driver2.id.to_string()),
            ("other_driver_id", other_driver.id.to_string()),
            ("customer_id", customer.user.id.to_string()),
            ("pending", pending.id.to_string()),
            ("accepted", accepted.id.to_string()),
            ("assigned", assigned.id.to_string()),
            ("on_the_way", on_the_way.id.to_string()),
            ("delivered", delivered.id.to_string()),
            ("cancelled", cancelled.id.to_string()),
            ("tracking", on_the_way.tracking_token.clone()),
        ]
        .into_iter()
        .map(|(word, text)| (format!("${word}"), text))
        .collect();
        placeholders.sort_by_key(|(word, _)| std::cmp::Reverse(word.len()));

        let uploads = std::env::temp_dir().join("medex-fuzz-uploads");
        let medex = Arc::new(medex);
        let router = medex_http::router(
            medex.clone(),
            medex_http::HttpConfig {
                upload_dir: uploads.clone(),
                ..Default::default()
            },
        );
        World {
            medex,
            router,
            uploads,
            placeholders,
            admin: Actor::of(&admin.user),
            driver: (dee, driver.id),
            vendor_id: vendor.id,
            on_the_way: on_the_way.id,
            tracking: on_the_way.tracking_token,
            driver_token: driver_session.access_token,
        }
    }

    pub(super) fn admin(&self) -> Actor {
        self.admin
    }

    /// The driver of the order on its way.
    pub(super) fn driver(&self) -> (Actor, DriverId) {
        self.driver
    }

    pub(super) fn tracking(&self) -> &str {
        &self.tracking
    }

    /// `data` with every `$word` of the world replaced; unknown words stay as they are.
    pub(super) fn expand(&self, data: &[u8]) -> Vec<u8> {
        let mut out = Vec::with_capacity(data.len());
        let mut rest = data;
        while let Some(at) = rest.iter().position(|&b| b == b'$') {
            out.extend_from_slice(&rest[..at]);
            rest = &rest[at..];
            match self
                .placeholders
                .iter()
                .find(|(word, _)| rest.starts_with(word.as_bytes()))
            {
                Some((word, text)) => {
                    out.extend_from_slice(text.as_bytes());
                    rest = &rest[word.len()..];
                }
                None => {
                    out.push(b'$');
                    rest = &rest[1..];
                }
            }
        }
        out.extend_from_slice(rest);
        out
    }

    /// Calls the router and reads the whole answer. A proof that was stored is removed again:
    /// the fuzzer would fill the disk.
    pub(super) async fn send(&self, request: Request<Body>) -> Reply {
        let what = format!("{} {}", request.method(), request.uri());
        let response = self
            .router
            .clone()
            .oneshot(request)
            .await
            .unwrap_or_else(|never| match never {});
        let status = response.status().as_u16();
        let content_type = response
            .headers()
            .get(header::CONTENT_TYPE)
            .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned())
            .unwrap_or_default();
        let body = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap_or_else(|e| panic!("{what}: the answer's body fails: {e}"))
            .to_vec();
        let json = serde_json::from_slice(&body).unwrap_or(Value::Null);
        if status == 201 {
            let stored = json["url"]
                .as_str()
                .and_then(|u| u.strip_prefix("/api/uploads/"));
            if let Some(name) = stored {
                let _ = std::fs::remove_file(self.uploads.join(name));
            }
        }
        Reply {
            status,
            content_type,
            body,
            json,
            what,
        }
    }

    /// Delivers a WooCommerce webhook for the pharmacy with the secret: signed as JSON, or
    /// unsigned as a form (the shape of WooCommerce's ping).
    pub(super) async fn webhook(&self, body: &[u8], signed: bool) -> Reply {
        let mut request = Request::post(format!(
            "/api/webhooks/wc/order-created?vendor_id={}",
            self.vendor_id
        ))
        .header("x-wc-webhook-topic", "order.created")
        .header("x-wc-webhook-source", "https://shop.example/");
        request = if signed {
            request
                .header(header::CONTENT_TYPE, "application/json")
                .header("x-wc-webhook-signature", sign(body))
        } else {
            request.header(header::CONTENT_TYPE, "application/x-www-form-urlencoded")
        };
        let request = request
            .body(Body::from(body.to_vec()))
            .expect("a valid request");
        self.send(request).await
    }

    /// Posts `body` as JSON to the webhook registration of the world's pharmacy, as its owner.
    pub(super) async fn register_webhook(&self, body: &[u8]) -> Reply {
        let token = self
            .placeholders
            .iter()
            .find(|(word, _)| word == "$vendor")
            .map(|(_, token)| token.clone())
            .expect("the world has a pharmacy owner");
        let request = Request::post(format!("/api/vendors/{}/webhooks", self.vendor_id))
            .header(header::AUTHORIZATION, format!("Bearer {token}"))
            .header(header::CONTENT_TYPE, "application/json")
            .body(Body::from(self.expand(body)))
            .expect("a valid request");
        let reply = self.send(request).await;
        if reply.status == 201
            && let Some(id) = reply.json["id"].as_str()
        {
            // Removed again, so that the pharmacy never runs out of endpoints.
            let remove = Request::delete(format!("/api/vendors/{}/webhooks/{id}", self.vendor_id))
                .header(header::AUTHORIZATION, format!("Bearer {token}"))
                .body(Body::empty())
                .expect("a valid request");
            let removed = self.send(remove).await;
            assert_eq!(removed.status, 204, "removing a registered endpoint");
        }
        reply
    }

    /// Posts a multipart body to the proof upload as the driver of the order on its way.
    pub(super) async fn upload(&self, body: Vec<u8>) -> Reply {
        let request = Request::post("/api/uploads/proof")
            .header(
                header::AUTHORIZATION,
                format!("Bearer {}", self.driver_token),
            )
            .header(
                header::CONTENT_TYPE,
                format!("multipart/form-data; boundary={MULTIPART_BOUNDARY}"),
            )
            .body(Body::from(body))
            .expect("a valid request");
        self.send(request).await
    }
}
