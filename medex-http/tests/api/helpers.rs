//! A MedEx service on the in-memory store, its router, and a populated world of actors.

use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::http::{HeaderMap, Method, Request, StatusCode, header};
pub(crate) use medex_core::prelude::*;
use medex_http::HttpConfig;
use serde_json::{Value, json};
use tower::ServiceExt;

pub(crate) use medex_core::testkit::{self, FlakyStore};

/// A response, body parsed as JSON when it is JSON.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
    pub(crate) bytes: Vec<u8>,
    pub(crate) json: Value,
}

impl Reply {
    /// Asserts the status, and for errors the JSON error format.
    #[track_caller]
    pub(crate) fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        if status >= 400 {
            self.assert_error_format();
        }
        self
    }

    #[track_caller]
    pub(crate) fn assert_error_format(&self) {
        assert!(
            self.headers
                .get(header::CONTENT_TYPE)
                .is_some_and(|v| v.to_str().unwrap().starts_with("application/json")),
            "error without JSON content type: {:?} {}",
            self.headers,
            self.text
        );
        assert!(self.json["detail"].is_string(), "no detail: {}", self.text);
        assert!(self.json["code"].is_string(), "no code: {}", self.text);
    }

    pub(crate) fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).map(|v| v.to_str().unwrap())
    }
}

/// A request builder for `method` on `path`, with `token` as its bearer if there is one.
fn request(method: &str, path: &str, token: Option<&str>) -> axum::http::request::Builder {
    let request = Request::builder()
        .method(Method::from_bytes(method.as_bytes()).unwrap())
        .uri(path);
    match token {
        Some(token) => request.header(header::AUTHORIZATION, format!("Bearer {token}")),
        None => request,
    }
}

/// A test server: the router over a fresh in-memory service.
#[derive(Clone)]
pub(crate) struct App {
    pub(crate) router: Router,
    pub(crate) medex: Arc<MedEx>,
    pub(crate) store: Arc<FlakyStore>,
    /// Where uploads go: a fresh directory per app, removed with it.
    pub(crate) uploads: Arc<tempfile::TempDir>,
}

impl App {
    pub(crate) async fn new() -> Self {
        Self::with_config(HttpConfig::default()).await
    }

    pub(crate) async fn with_config(mut config: HttpConfig) -> Self {
        let uploads = Arc::new(tempfile::tempdir().unwrap());
        config.upload_dir = uploads.path().join("files");
        let store = Arc::new(FlakyStore::default());
        let medex = testkit::Service::with(testkit::Options {
            store: Some(store.clone()),
            live_clock: true,
            ..testkit::Options::default()
        })
        .await;
        Self {
            router: medex_http::router(medex.clone(), config),
            medex,
            store,
            uploads,
        }
    }

    pub(crate) async fn send(&self, request: Request<Body>) -> Reply {
        let response = self.router.clone().oneshot(request).await.unwrap();
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = axum::body::to_bytes(response.into_body(), usize::MAX)
            .await
            .unwrap();
        let text = String::from_utf8_lossy(&bytes).into_owned();
        let json = serde_json::from_slice(&bytes).unwrap_or(Value::Null);
        Reply {
            status,
            headers,
            text,
            bytes: bytes.to_vec(),
            json,
        }
    }

    /// A JSON request (`body: None` sends no body).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        let request = request(method, path, token);
        let request = match body {
            Some(body) => request
                .header(header::CONTENT_TYPE, "application/json")
                .body(Body::from(body.to_string())),
            None => request.body(Body::empty()),
        };
        self.send(request.unwrap()).await
    }

    /// A request with a raw body and content type.
    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        content_type: Option<&str>,
        body: impl Into<Body>,
    ) -> Reply {
        let mut request = request(method, path, token);
        if let Some(ct) = content_type {
            request = request.header(header::CONTENT_TYPE, ct);
        }
        self.send(request.body(body.into()).unwrap()).await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None).await
    }

    /// A GET without a token.
    pub(crate) async fn public(&self, path: &str) -> Reply {
        self.call("GET", path, None, None).await
    }

    /// A DELETE with `token` and no body.
    pub(crate) async fn delete(&self, path: &str, token: &str) -> Reply {
        self.call("DELETE", path, Some(token), None).await
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call("POST", path, token, Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(token), Some(body)).await
    }

    pub(crate) async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }
}

pub(crate) const PASSWORD: &str = "s3cret-pass";

/// One signed-in account.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub(crate) token: String,
    pub(crate) refresh: String,
    pub(crate) user_id: String,
    pub(crate) email: String,
}

/// A pharmacy with its owner signed in.
#[derive(Debug, Clone)]
pub(crate) struct Pharmacy {
    pub(crate) owner: Who,
    pub(crate) id: String,
}

/// A driver signed in.
#[derive(Debug, Clone)]
pub(crate) struct Courier {
    pub(crate) who: Who,
    pub(crate) id: String,
}

/// Everyone the tests need.
pub(crate) struct World {
    pub(crate) app: App,
    pub(crate) admin: Who,
    pub(crate) customer: Who,
    pub(crate) other_customer: Who,
    pub(crate) vendor: Pharmacy,
    pub(crate) other_vendor: Pharmacy,
    pub(crate) driver: Courier,
    pub(crate) second_driver: Courier,
    pub(crate) other_driver: Courier,
}

fn who(reply: &Reply) -> Who {
    Who {
        token: reply.json["access_token"].as_str().unwrap().to_owned(),
        refresh: reply.json["refresh_token"].as_str().unwrap().to_owned(),
        user_id: reply.json["user"]["id"].as_str().unwrap().to_owned(),
        email: reply.json["user"]["email"].as_str().unwrap().to_owned(),
    }
}

impl App {
    pub(crate) async fn customer(&self, email: &str) -> Who {
        let r = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "full_name": "Ann Customer"}),
            )
            .await;
        r.expect(201);
        who(&r)
    }

    pub(crate) async fn signed_in(&self, email: &str) -> Who {
        let r = self.login(email, PASSWORD).await;
        r.expect(200);
        who(&r)
    }

    pub(crate) async fn pharmacy(&self, email: &str, name: &str) -> Pharmacy {
        let r = self
            .post(
                "/api/vendors/register",
                None,
                json!({"email": email, "password": PASSWORD, "business_name": name,
                       "address": "1 Main St", "latitude": 52.52, "longitude": 13.40}),
            )
            .await;
        r.expect(201);
        let id = r.json["vendor_id"].as_str().unwrap().to_owned();
        Pharmacy {
            owner: self.signed_in(email).await,
            id,
        }
    }

    pub(crate) async fn courier(&self, vendor: &Pharmacy, email: &str, name: &str) -> Courier {
        let r = self
            .post(
                "/api/drivers/register",
                Some(&vendor.owner.token),
                json!({"email": email, "password": PASSWORD, "full_name": name,
                       "vehicle_type": "bike"}),
            )
            .await;
        r.expect(201);
        let id = r.json["driver_id"].as_str().unwrap().to_owned();
        Courier {
            who: self.signed_in(email).await,
            id,
        }
    }

    pub(crate) async fn admin(&self) -> Who {
        self.medex
            .create_admin("root@medex.test", PASSWORD, "Root")
            .await
            .unwrap();
        self.signed_in("root@medex.test").await
    }
}

impl World {
    pub(crate) async fn new() -> Self {
        Self::with_app(App::new().await).await
    }

    pub(crate) async fn with_app(app: App) -> Self {
        let admin = app.admin().await;
        let customer = app.customer("ann@example.test").await;
        let other_customer = app.customer("bob@example.test").await;
        let vendor = app.pharmacy("owner@corner.test", "Corner Pharmacy").await;
        let other_vendor = app.pharmacy("owner@other.test", "Other Pharmacy").await;
        let driver = app.courier(&vendor, "dee@corner.test", "Dee Driver").await;
        let second_driver = app.courier(&vendor, "sam@corner.test", "Sam Second").await;
        let other_driver = app
            .courier(&other_vendor, "oz@other.test", "Oz Other")
            .await;
        Self {
            app,
            admin,
            customer,
            other_customer,
            vendor,
            other_vendor,
            driver,
            second_driver,
            other_driver,
        }
    }

    pub(crate) fn order_body(&self) -> Value {
        json!({
            "vendor_id": self.vendor.id,
            "delivery_address": "9 Elm St",
            "delivery_latitude": 52.53,
            "delivery_longitude": 13.41,
            "customer_name": "Ann",
            "customer_phone": "+49 30 1234",
            "items": [{"name": "Amoxicillin 500mg", "quantity": 1}],
            "notes": "ring twice"
        })
    }

    /// A pending order placed by the customer; returns its id.
    pub(crate) async fn order(&self) -> String {
        let r = self
            .app
            .post("/api/orders", Some(&self.customer.token), self.order_body())
            .await;
        r.expect(201);
        r.json["id"].as_str().unwrap().to_owned()
    }

    pub(crate) async fn set_status(&self, order: &str, token: &str, status: &str) -> Reply {
        self.app
            .patch(
                &format!("/api/orders/{order}"),
                token,
                json!({"status": status, "reason": "because"}),
            )
            .await
    }

    pub(crate) async fn available(&self, courier: &Courier) {
        self.app
            .patch(
                &format!("/api/drivers/{}/status", courier.id),
                &courier.who.token,
                json!({"status": "available"}),
            )
            .await
            .expect(200);
    }

    pub(crate) async fn assign(&self, order: &str, courier: &Courier) -> Reply {
        self.app
            .post(
                &format!("/api/orders/{order}/assign-driver"),
                Some(&self.vendor.owner.token),
                json!({"driver_id": courier.id}),
            )
            .await
    }

    /// The main pharmacy asks for a proof photo and a signature before a delivery counts.
    pub(crate) async fn require_proofs(&self) {
        self.app
            .patch(
                &format!("/api/vendors/{}", self.vendor.id),
                &self.vendor.owner.token,
                json!({"require_proof_photo": true, "require_signature": true}),
            )
            .await
            .expect(200);
    }

    /// The main driver reports `body` as where it is: one position or a batch of fixes.
    pub(crate) async fn report_location(&self, body: Value) -> Reply {
        self.app
            .post(
                &format!("/api/drivers/{}/location", self.driver.id),
                Some(&self.driver.who.token),
                body,
            )
            .await
    }

    /// The main driver's record, as its pharmacy reads it.
    pub(crate) async fn driver_record(&self) -> Reply {
        self.app
            .get(
                &format!("/api/drivers/{}", self.driver.id),
                &self.vendor.owner.token,
            )
            .await
    }

    /// An order brought to `status` along the happy path, with `self.driver` where one is needed.
    pub(crate) async fn order_in(&self, status: &str) -> String {
        let order = self.order().await;
        let steps: &[&str] = match status {
            "pending" => &[],
            "accepted" => &["accepted"],
            "driver_assigned" => &["accepted", "assign"],
            "picked_up" => &["accepted", "assign", "picked_up"],
            "out_for_delivery" => &["accepted", "assign", "picked_up", "out_for_delivery"],
            "delivered" => &[
                "accepted",
                "assign",
                "picked_up",
                "out_for_delivery",
                "delivered",
            ],
            "rejected" => &["rejected"],
            "cancelled" => &["cancelled"],
            "failed" => &[
                "accepted",
                "assign",
                "picked_up",
                "out_for_delivery",
                "failed",
            ],
            "returned" => &[
                "accepted",
                "assign",
                "picked_up",
                "out_for_delivery",
                "failed",
                "returned",
            ],
            other => panic!("no path to {other}"),
        };
        for step in steps {
            match *step {
                "accepted" | "rejected" | "cancelled" | "returned" => {
                    self.set_status(&order, &self.vendor.owner.token, step)
                        .await
                        .expect(200);
                }
                "failed" => {
                    self.app
                        .patch(
                            &format!("/api/orders/{order}"),
                            &self.driver.who.token,
                            json!({"status": "failed", "reason": "recipient_absent"}),
                        )
                        .await
                        .expect(200);
                }
                "assign" => {
                    self.available(&self.driver).await;
                    self.assign(&order, &self.driver).await.expect(200);
                }
                _ => {
                    self.set_status(&order, &self.driver.who.token, step)
                        .await
                        .expect(200);
                }
            }
        }
        order
    }

    pub(crate) async fn stored_order(&self, id: &str) -> Order {
        self.app
            .store
            .order(id.parse().unwrap())
            .await
            .unwrap()
            .unwrap()
    }

    pub(crate) async fn stored_driver(&self, courier: &Courier) -> Driver {
        self.app
            .store
            .driver(courier.id.parse().unwrap())
            .await
            .unwrap()
            .unwrap()
    }
}

/// A multipart/form-data body: `(name, file name, content type, bytes)` per part. Returns the
/// content type (with boundary) and the body.
/// One part: name, file name, content type, bytes.
pub(crate) type Part<'a> = (&'a str, Option<&'a str>, Option<&'a str>, &'a [u8]);

pub(crate) fn multipart(parts: &[Part<'_>]) -> (String, Vec<u8>) {
    let boundary = "medex-test-boundary-7MA4YWxkTrZu0gW";
    let mut body = Vec::new();
    for (name, file_name, content_type, bytes) in parts {
        body.extend_from_slice(format!("--{boundary}\r\n").as_bytes());
        let mut disposition = format!("Content-Disposition: form-data; name=\"{name}\"");
        if let Some(file_name) = file_name {
            disposition.push_str(&format!("; filename=\"{file_name}\""));
        }
        body.extend_from_slice(disposition.as_bytes());
        body.extend_from_slice(b"\r\n");
        if let Some(ct) = content_type {
            body.extend_from_slice(format!("Content-Type: {ct}\r\n").as_bytes());
        }
        body.extend_from_slice(b"\r\n");
        body.extend_from_slice(bytes);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}
