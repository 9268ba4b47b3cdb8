//! `Idempotency-Key` on `POST /api/orders` and `PATCH /api/orders/{id}`: a layer around those
//! handlers that replays the first answer to a repeated request.
//!
//! The key is reserved in the store (an insert that only one request can make) before the
//! handler runs, and the answer is stored after; the rules (same account, same request, 24 hours,
//! a key in use) are decided by [`medex_core::MedEx::begin_idempotent`]. A request arriving while
//! the first one with its key still runs gets 409 `idempotency_key_in_use` at once; retrying it
//! then replays the answer.

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::middleware::Next;
use axum::response::{IntoResponse, Response};
use medex_core::integrations::hex;
use medex_core::service::Idempotent;
use sha2::{Digest, Sha256};

use crate::AppState;
use crate::error::ApiError;
use crate::extract::bearer_token;

/// The request header.
pub(crate) const IDEMPOTENCY_KEY: HeaderName = HeaderName::from_static("idempotency-key");
/// The header of a replayed answer.
pub(crate) const REPLAYED: HeaderName = HeaderName::from_static("idempotent-replayed");
/// Answers larger than this are not remembered (order answers are a few KiB).
const MAX_REMEMBERED: usize = 1024 * 1024;

/// A key is 1 to 255 visible ASCII characters (a UUID is the usual choice).
fn valid_key(value: &HeaderValue) -> Option<&str> {
    let key = value.to_str().ok()?;
    (!key.is_empty() && key.len() <= 255 && key.bytes().all(|b| b.is_ascii_graphic()))
        .then_some(key)
}

/// The layer's body: see the module documentation.
pub(crate) async fn idempotent(
    State(state): State<AppState>,
    request: Request,
    next: Next,
) -> Response {
    if !matches!(*request.method(), Method::POST | Method::PATCH) {
        return next.run(request).await;
    }
    let Some(value) = request.headers().get(&IDEMPOTENCY_KEY) else {
        return next.run(request).await;
    };
    let key = valid_key(value).map(str::to_owned);
    // Without a valid caller the handler answers (401) and nothing is remembered.
    let Some(token) = bearer_token(request.headers()).map(str::to_owned) else {
        return next.run(request).await;
    };
    let actor = match state.medex.authenticate(&token).await {
        Ok(actor) => actor,
        Err(_) => return next.run(request).await,
    };
    let Some(key) = key else {
        return ApiError::invalid(
            "Idempotency-Key",
            "must be 1 to 255 visible ASCII characters",
        )
        .into_response();
    };
    let (parts, body) = request.into_parts();
    let bytes = match axum::body::to_bytes(body, state.config.max_body_bytes).await {
        Ok(bytes) => bytes,
        Err(_) => {
            return ApiError::new(
                StatusCode::PAYLOAD_TOO_LARGE,
                "payload_too_large",
                "request body too large",
            )
            .into_response();
        }
    };
    let mut hash = Sha256::new();
    hash.update(parts.method.as_str());
    hash.update(b" ");
    hash.update(parts.uri.path());
    hash.update(b"\n");
    hash.update(&bytes);
    let fingerprint = hex(&hash.finalize());
    let held = match state
        .medex
        .begin_idempotent(&actor, &key, &fingerprint)
        .await
    {
        Ok(Idempotent::Run(held)) => held,
        Ok(Idempotent::Replay {
            status,
            content_type,
            body,
        }) => return replay(status, &content_type, body),
        Err(e) => return ApiError::from(e).into_response(),
    };
    let response = next
        .run(Request::from_parts(parts, Body::from(bytes)))
        .await;
    let (parts, body) = response.into_parts();
    let body = match axum::body::to_bytes(body, MAX_REMEMBERED).await {
        Ok(body) => body,
        Err(_) => Bytes::new(),
    };
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("application/json")
        .to_owned();
    let text = String::from_utf8_lossy(&body);
    if let Err(e) = state
        .medex
        .finish_idempotent(held, parts.status.as_u16(), &content_type, &text)
        .await
    {
        // The answer stands; the key stays held until its hold ends, then may be used again.
        tracing::warn!(error = %e, "could not remember an idempotent answer");
    }
    Response::from_parts(parts, Body::from(body))
}

fn replay(status: u16, content_type: &str, body: String) -> Response {
    let status = StatusCode::from_u16(status).unwrap_or(StatusCode::OK);
    let mut response = (status, body).into_response();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(content_type) {
        headers.insert(header::CONTENT_TYPE, value);
    }
    headers.insert(REPLAYED, HeaderValue::from_static("true"));
    response
}
