//! The one error format of the API and the one mapping from use case errors to HTTP statuses.
//!
//! Every error answer is `{"detail": "...", "code": "..."}`, plus `"errors": [{"field",
//! "message"}]` for validation failures (422). The status of each [`medex_core::error::Error`]
//! variant is decided by medex-core's one table (`Error::status`), shared with the WebSocket
//! handshake; this module adds what is HTTP's own: `WWW-Authenticate: Bearer` on 401,
//! `Retry-After` on 429, and the errors that never reach a use case (400 malformed body, 413, 415).

use std::borrow::Cow;

use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medex_core::error::{Error, FieldError};
use serde::Serialize;
use utoipa::ToSchema;

/// One invalid field of a request.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct FieldErrorBody {
    /// The field as the client named it (`items[0].quantity`).
    pub field: String,
    /// What is wrong with it.
    pub message: String,
}

/// The body of every error answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, ToSchema)]
pub struct ErrorBody {
    /// For people.
    pub detail: String,
    /// For programs: stable, snake_case.
    pub code: String,
    /// The invalid fields, for validation failures (422).
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub errors: Vec<FieldErrorBody>,
}

/// An error answer being built: status, body and the few headers errors carry.
#[derive(Debug, Clone)]
pub(crate) struct ApiError {
    status: StatusCode,
    code: Cow<'static, str>,
    detail: Cow<'static, str>,
    errors: Vec<FieldErrorBody>,
    retry_after: Option<u64>,
}

impl ApiError {
    pub(crate) fn new(
        status: StatusCode,
        code: &'static str,
        detail: impl Into<Cow<'static, str>>,
    ) -> Self {
        Self {
            status,
            code: Cow::Borrowed(code),
            detail: detail.into(),
            errors: Vec::new(),
            retry_after: None,
        }
    }

    /// 422 naming one field.
    pub(crate) fn invalid(field: impl Into<String>, message: impl Into<String>) -> Self {
        Self::from(Error::Invalid(vec![FieldError::new(field, message)]))
    }

    /// 400: the body is not JSON (or not well-formed).
    pub(crate) fn malformed(detail: impl Into<Cow<'static, str>>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "malformed_body", detail)
    }

    /// 401 without a token.
    pub(crate) fn unauthenticated() -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "unauthenticated",
            "authentication required: send Authorization: Bearer <access token>",
        )
    }

    /// 413.
    pub(crate) fn too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "payload_too_large",
            format!("request body is larger than {limit} bytes"),
        )
    }

    /// 415.
    pub(crate) fn unsupported_media_type(expected: &'static str) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "unsupported_media_type",
            format!("expected Content-Type: {expected}"),
        )
    }

    /// 429 with `Retry-After`.
    pub(crate) fn too_many_attempts(retry_after_secs: u64) -> Self {
        let mut e = Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "too_many_attempts",
            "too many failed attempts; try again later",
        );
        e.retry_after = Some(retry_after_secs.max(1));
        e
    }

    /// The status this error answers with.
    #[cfg(test)]
    pub(crate) fn status(&self) -> StatusCode {
        self.status
    }

    /// The machine-readable code.
    #[cfg(test)]
    pub(crate) fn code(&self) -> &str {
        &self.code
    }
}

impl From<Error> for ApiError {
    /// The one mapping of use case errors to answers: status and detail come from
    /// [`Error::status`] and [`Error::public_detail`], the table the WebSocket handshake uses too.
    fn from(error: Error) -> Self {
        if let Error::Storage(source) = &error {
            tracing::error!(error = %source, "storage failure");
        }
        let status =
            StatusCode::from_u16(error.status()).unwrap_or(StatusCode::SERVICE_UNAVAILABLE);
        let mut e = Self::new(status, error.code(), error.public_detail());
        if let Error::RateLimited { retry_after_ms } = error {
            e.retry_after = Some(retry_after_ms.div_ceil(1000));
        }
        if let Error::Invalid(fields) = error {
            e.errors = fields
                .into_iter()
                .map(|f| FieldErrorBody {
                    field: f.field,
                    message: f.message,
                })
                .collect();
        }
        e
    }
}

impl IntoResponse for ApiError {
    fn into_response(self) -> Response {
        let body = ErrorBody {
            detail: self.detail.into_owned(),
            code: self.code.into_owned(),
            errors: self.errors,
        };
        let mut response = (self.status, axum::Json(body)).into_response();
        let headers = response.headers_mut();
        if self.status == StatusCode::UNAUTHORIZED {
            headers.insert(header::WWW_AUTHENTICATE, HeaderValue::from_static("Bearer"));
        }
        if let Some(secs) = self.retry_after {
            headers.insert(header::RETRY_AFTER, HeaderValue::from(secs));
        }
        response
    }
}

/// Shorthand for handler results.
pub(crate) type ApiResult<T> = Result<T, ApiError>;

/// The safety net: any error answer not produced by [`ApiError`] (a layer's plain-text 413, a
/// panic caught, …) is rewritten into the JSON error format, keeping its status and headers.
pub(crate) fn json_errors(response: Response) -> Response {
    let status = response.status();
    let is_json = response
        .headers()
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
        .is_some_and(|v| v.starts_with("application/json"));
    if !(status.is_client_error() || status.is_server_error()) || is_json {
        return response;
    }
    let (code, detail) = match status {
        StatusCode::NOT_FOUND => ("route_not_found", "no such route"),
        StatusCode::METHOD_NOT_ALLOWED => ("method_not_allowed", "method not allowed here"),
        StatusCode::PAYLOAD_TOO_LARGE => ("payload_too_large", "request body too large"),
        StatusCode::UNSUPPORTED_MEDIA_TYPE => ("unsupported_media_type", "wrong content type"),
        StatusCode::REQUEST_TIMEOUT => ("timeout", "request timed out"),
        s if s.is_client_error() => ("bad_request", "bad request"),
        _ => ("internal_error", "internal error"),
    };
    let (mut parts, _) = response.into_parts();
    parts.headers.remove(header::CONTENT_LENGTH);
    let rebuilt = ApiError::new(status, code, detail).into_response();
    let (new_parts, body) = rebuilt.into_parts();
    for (name, value) in &new_parts.headers {
        parts.headers.insert(name, value.clone());
    }
    Response::from_parts(parts, body)
}

#[cfg(test)]
mod tests {
    use medex_core::error::{AuthFailure, Conflict};
    use medex_core::store::StoreError;

    use super::*;

    #[test]
    fn answers_take_status_and_code_from_the_core_table() {
        // The table itself is tested in medex-core; here only that it is the one used.
        for error in [
            Error::invalid("email", "bad"),
            Error::Unauthenticated(AuthFailure::Expired),
            Error::Forbidden,
            Error::NotFound,
            Conflict::EmailTaken.into(),
            Conflict::ProofMissing(vec!["proof_photo"]).into(),
            Error::Storage(StoreError::Unavailable("disk full".into())),
        ] {
            let (status, code) = (error.status(), error.code());
            let answer = ApiError::from(error);
            assert_eq!((answer.status().as_u16(), answer.code()), (status, code));
        }
    }

    #[test]
    fn storage_messages_stay_out_of_the_body() {
        let e = ApiError::from(Error::Storage(StoreError::Unavailable(
            "disk /var/secret full".into(),
        )));
        assert!(!e.detail.contains("secret"));
    }
}
