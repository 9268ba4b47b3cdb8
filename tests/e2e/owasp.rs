//! Adversarial tests organised by the OWASP API Security Top 10 (2023), against the composed
//! server over real sockets. Each refused request is checked for its exact status and for
//! storage being exactly as before (records, configuration, uploaded files).
//!
//! Categories without a module here: API6 (sensitive business flows: MedEx has no flow worth
//! automating against the business beyond what the throttles and limits of API2/API4 bound),
//! API9 (inventory: medex-http's `openapi` tests prove every served route is documented and
//! nothing else is routed) and API10 (unsafe consumption: the one consumed API, WooCommerce's
//! webhook, is signature-checked and its hostile payloads are medex-http's `webhooks` tests; its
//! URLs are covered by API7 here).

mod api1_object_authorization;
mod api2_authentication;
mod api3_property_authorization;
mod api4_resource_consumption;
mod api5_function_authorization;
mod api7_ssrf;
mod api8_misconfiguration;
mod attack_round;

use serde_json::json;

use crate::support::*;

/// A world with orders in the states the attacks need.
pub(crate) struct Scene {
    pub(crate) w: World,
    /// The customer's order at the main pharmacy, picked up by `w.driver`, with a proof photo.
    pub(crate) work: String,
    /// Its tracking token.
    pub(crate) work_token: String,
    /// The stored name of its proof photo.
    pub(crate) work_upload: String,
    /// A pending order of the customer at the main pharmacy.
    pub(crate) pending: String,
    /// An accepted order of the customer at the main pharmacy.
    pub(crate) accepted: String,
    /// The other customer's order at the other pharmacy, picked up by its driver, with a photo.
    pub(crate) foreign: String,
    /// The stored name of that photo.
    pub(crate) foreign_upload: String,
}

impl Scene {
    pub(crate) async fn new() -> Self {
        Self::on(TestServer::start().await).await
    }

    pub(crate) async fn on(server: TestServer) -> Self {
        let w = World::on(server).await;
        let s = &w.server;
        let (work, work_token) = w.order_in("picked_up", &w.driver).await;
        let work_upload = upload_name(
            &s.send(
                "POST",
                "/api/uploads/proof",
                Some(&w.driver.who.token),
                upload_body(&work, PNG),
            )
            .await,
        );
        let (pending, _) = w.order().await;
        let (accepted, _) = w.order_in("accepted", &w.driver).await;

        let mut body = w.order_body();
        body["vendor_id"] = json!(w.other_vendor.id);
        let r = s
            .post("/api/orders", Some(&w.other_customer.token), body)
            .await;
        r.expect(201);
        let foreign = r.str("id");
        let other = &w.other_vendor.owner.token;
        s.patch(
            &format!("/api/orders/{foreign}"),
            other,
            json!({"status": "accepted"}),
        )
        .await
        .expect(200);
        s.available(&w.other_driver).await;
        s.post(
            &format!("/api/orders/{foreign}/assign-driver"),
            Some(other),
            json!({"driver_id": w.other_driver.id}),
        )
        .await
        .expect(200);
        s.patch(
            &format!("/api/orders/{foreign}"),
            &w.other_driver.who.token,
            json!({"status": "picked_up"}),
        )
        .await
        .expect(200);
        let foreign_upload = upload_name(
            &s.send(
                "POST",
                "/api/uploads/proof",
                Some(&w.other_driver.who.token),
                upload_body(&foreign, PNG),
            )
            .await,
        );
        Self {
            w,
            work,
            work_token,
            work_upload,
            pending,
            accepted,
            foreign,
            foreign_upload,
        }
    }
}

fn upload_name(reply: &Reply) -> String {
    reply.expect(201);
    reply
        .str("url")
        .strip_prefix("/api/uploads/")
        .expect("uploads are served under /api/uploads/")
        .to_owned()
}

/// Strings no error answer may contain: storage internals, panics, paths, traces.
pub(crate) const INTERNALS: &[&str] = &[
    "sled",
    "panicked",
    "panic",
    "backtrace",
    "stack",
    "RUST_",
    "thread '",
    ".rs:",
    "src/",
    "/tmp",
    "/work",
    "/home",
    "/root",
    "/var/",
    "jwt-secret",
    "os error",
    "Io(",
    "Corrupt",
];

/// Asserts that a response body leaks none of [`INTERNALS`] nor the data directory.
#[track_caller]
pub(crate) fn assert_no_internals(case: &str, text: &str, data_dir: &str) {
    for needle in INTERNALS.iter().copied().chain([data_dir]) {
        assert!(
            !text.contains(needle),
            "{case}: the answer contains {needle:?}: {text}"
        );
    }
}
