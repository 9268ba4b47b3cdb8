//! The public tracking read, `GET /api/tracking/{token}`, answered before the router.
//!
//! It is the one route anyone may call and the one a busy fleet's customers call most. Through the
//! router every call pays for matching, cloning the boxed route with its layers, and a boxed
//! future per layer. [`TrackingReads`] answers a plain read (`GET`, no query string, no `Origin`)
//! with the route's own handler ([`crate::routes::meta::tracking_answer`]) and gives it what the
//! layers give every answer: the request span with the route template and request id, the
//! `x-request-id` header (the client's, or a new one), `Cache-Control: no-store`, the JSON error
//! format and the request metrics. Every outcome is answered here, an unknown token included,
//! so nothing is looked up twice. With CORS configured it is not used (the CORS layer varies
//! every answer by origin).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;
use std::time::Instant;

use axum::body::Body;
use axum::http::{HeaderValue, Method, Request, Response, StatusCode, header};
use axum::response::IntoResponse;
use futures_util::FutureExt as _;
use medex_core::MedEx;
use tracing::Instrument as _;

use crate::error::ApiError;
use crate::metrics::count_request;
use crate::{HttpConfig, REQUEST_ID, request_span};

const PREFIX: &str = "/api/tracking/";
/// The route as the router names it in metrics and logs.
const ROUTE: &str = "/api/tracking/{token}";

/// Answers plain tracking reads; see the module documentation.
#[derive(Clone)]
pub struct TrackingReads {
    medex: Arc<MedEx>,
}

impl TrackingReads {
    /// The short path for an API served with `config`, or `None` when it must not be used
    /// (CORS is configured).
    pub fn new(medex: Arc<MedEx>, config: &HttpConfig) -> Option<Self> {
        config.cors_origins.is_empty().then_some(Self { medex })
    }

    /// The token of a request this path answers: `GET`, no query, no `Origin`, and a last path
    /// segment of token characters only (anything percent-encoded is left to the router).
    pub fn token<B>(request: &Request<B>) -> Option<&str> {
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

    /// The answer to a read of `token` (a token [`TrackingReads::token`] took from `request`).
    pub async fn answer<B>(&self, token: &str, request: &Request<B>) -> Response<Body> {
        let started = Instant::now();
        let request_id = match request.headers().get(REQUEST_ID) {
            Some(id) => id.clone(),
            None => HeaderValue::try_from(uuid::Uuid::new_v4().to_string())
                .expect("a UUID is a valid header value"),
        };
        let span = request_span(request.method(), ROUTE, request_id.to_str().unwrap_or(""));
        let read = crate::routes::meta::tracking_answer(&self.medex, token, false);
        let mut response = match AssertUnwindSafe(read.instrument(span.clone()))
            .catch_unwind()
            .await
        {
            Ok(answer) => answer.into_response(),
            Err(_) => ApiError::new(
                StatusCode::INTERNAL_SERVER_ERROR,
                "internal_error",
                "internal error",
            )
            .into_response(),
        };
        let headers = response.headers_mut();
        headers.insert(header::CACHE_CONTROL, HeaderValue::from_static("no-store"));
        headers.insert(
            header::X_CONTENT_TYPE_OPTIONS,
            HeaderValue::from_static("nosniff"),
        );
        headers.insert(header::X_FRAME_OPTIONS, HeaderValue::from_static("DENY"));
        headers.insert(REQUEST_ID, request_id);
        count_request("GET", ROUTE, response.status(), started);
        span.in_scope(|| {
            tracing::info!(
                status = response.status().as_u16(),
                latency_us = started.elapsed().as_micros() as u64,
                "finished processing request"
            );
        });
        response
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
