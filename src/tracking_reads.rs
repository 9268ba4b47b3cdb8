//! The public tracking read, `GET /api/tracking/{token}`, answered without the router.
//!
//! It is the one route anyone may call and the one a busy fleet's customers call most. Through the
//! router every call pays for matching, a clone of the boxed route with its layers, the body
//! limit, panic catching, error mapping, tracing and request-id layers and the metrics middleware.
//! Here a plain successful read gets the same body and headers (`content-type`, `cache-control`,
//! `x-request-id`, kept when the client sent one) and is counted in the same metrics, for a fraction of that.
//! Anything else (a query string, an `Origin` header, a token that is unknown or malformed, a
//! store error, a panic) goes on to the router, which answers it as it answers every other route.
//! With CORS configured the server does not use this path at all (the CORS layer varies every
//! answer by origin).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use futures_util::FutureExt as _;
use medex_core::service::MedEx;

const PREFIX: &str = "/api/tracking/";
/// The route as the router names it in metrics and logs.
const ROUTE: &str = "/api/tracking/{token}";
const REQUEST_ID: &str = "x-request-id";

/// Answers plain tracking reads; see the module documentation.
#[derive(Clone)]
pub(crate) struct TrackingReads {
    medex: Arc<MedEx>,
}

impl TrackingReads {
    pub(crate) fn new(medex: Arc<MedEx>) -> Self {
        Self { medex }
    }

    /// The token of a request this path may answer: `GET`, no query, no `Origin`, and a last path
    /// segment of token characters only (anything percent-encoded is left to the router).
    pub(crate) fn token<B>(request: &Request<B>) -> Option<&str> {
        if request.method() != Method::GET
            || request.uri().query().is_some()
            || request.headers().contains_key(header::ORIGIN)
        {
            return None;
        }
        let token = request.uri().path().strip_prefix(PREFIX)?;
        let plain = !token.is_empty()
            && token
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_');
        plain.then_some(token)
    }

    /// The answer to a successful read of `token`, or `None` to leave the request to the router.
    pub(crate) async fn answer<B>(
        &self,
        token: &str,
        request: &Request<B>,
    ) -> Option<Response<Body>> {
        let started = Instant::now();
        let read = AssertUnwindSafe(self.medex.tracking_view(token, false))
            .catch_unwind()
            .await;
        let body = serde_json::to_vec(&read.ok()?.ok()?).ok()?;
        let request_id = match request.headers().get(REQUEST_ID) {
            Some(id) => id.clone(),
            None => HeaderValue::try_from(uuid::Uuid::new_v4().to_string()).ok()?,
        };
        let response = Response::builder()
            .status(StatusCode::OK)
            .header(
                header::CONTENT_TYPE,
                HeaderValue::from_static("application/json"),
            )
            .header(header::CACHE_CONTROL, HeaderValue::from_static("no-store"))
            .header(REQUEST_ID, request_id)
            .body(Body::from(body))
            .ok()?;
        crate::server::count_request("GET", ROUTE, "200", started);
        tracing::info!(
            method = "GET",
            route = ROUTE,
            status = 200,
            latency_us = started.elapsed().as_micros() as u64,
            "finished processing request"
        );
        Some(response)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn get(uri: &str) -> Request<()> {
        Request::get(uri).body(()).unwrap()
    }

    #[test]
    fn only_plain_reads_take_the_short_path() {
        assert_eq!(
            TrackingReads::token(&get("/api/tracking/AbC-12_x")),
            Some("AbC-12_x")
        );
        for uri in [
            "/api/tracking/",
            "/api/tracking/abc?trail=true",
            "/api/tracking/abc/more",
            "/api/tracking/a%62c",
            "/api/trackingabc",
            "/api/orders/abc",
        ] {
            assert_eq!(TrackingReads::token(&get(uri)), None, "{uri}");
        }
        let post = Request::post("/api/tracking/abc").body(()).unwrap();
        assert_eq!(TrackingReads::token(&post), None);
        let cross_origin = Request::get("/api/tracking/abc")
            .header("origin", "https://shop.example")
            .body(())
            .unwrap();
        assert_eq!(TrackingReads::token(&cross_origin), None);
    }
}
