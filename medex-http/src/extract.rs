//! Extractors that answer in the API's error format: JSON bodies (content type, size, depth,
//! syntax vs. values), query strings, path parameters, the bearer token and the client's
//! address.

use std::net::{IpAddr, SocketAddr};

use axum::body::Bytes;
use axum::extract::{ConnectInfo, FromRequest, FromRequestParts, Path, Request};
use axum::http::request::Parts;
use axum::http::{HeaderMap, StatusCode, header};
use ipnet::IpNet;
use medex_core::permissions::Actor;
use serde::de::DeserializeOwned;

use crate::AppState;
use crate::error::ApiError;

/// A JSON request body, checked before it is deserialized: `Content-Type` must be JSON (415),
/// the body within the size limit (413), nested at most `max_json_depth` deep (400) and
/// well-formed (400); values of the wrong type or range are 422 naming the field.
pub(crate) struct ApiJson<T>(pub(crate) T);

pub(crate) fn is_json_content_type(headers: &HeaderMap) -> bool {
    let Some(value) = headers
        .get(header::CONTENT_TYPE)
        .and_then(|v| v.to_str().ok())
    else {
        return false;
    };
    let essence = value
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    essence == "application/json"
        || (essence.starts_with("application/") && essence.ends_with("+json"))
}

/// Reads the whole body within the configured limit.
pub(crate) async fn body_bytes(req: Request, state: &AppState) -> Result<Bytes, ApiError> {
    Bytes::from_request(req, state).await.map_err(|rejection| {
        if rejection.status() == StatusCode::PAYLOAD_TOO_LARGE {
            ApiError::too_large(state.config.max_body_bytes)
        } else {
            ApiError::malformed("the request body could not be read")
        }
    })
}

impl<T: DeserializeOwned> FromRequest<AppState> for ApiJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        if !is_json_content_type(req.headers()) {
            return Err(ApiError::unsupported_media_type("application/json"));
        }
        let bytes = body_bytes(req, state).await?;
        parse_json(&bytes, state.config.max_json_depth).map(ApiJson)
    }
}

/// A JSON body that may be absent (empty body, any or no content type); when present it is
/// checked like [`ApiJson`].
pub(crate) struct OptionalJson<T>(pub(crate) Option<T>);

impl<T: DeserializeOwned> FromRequest<AppState> for OptionalJson<T> {
    type Rejection = ApiError;

    async fn from_request(req: Request, state: &AppState) -> Result<Self, ApiError> {
        let json = is_json_content_type(req.headers());
        let bytes = body_bytes(req, state).await?;
        if bytes.iter().all(u8::is_ascii_whitespace) {
            return Ok(OptionalJson(None));
        }
        if !json {
            return Err(ApiError::unsupported_media_type("application/json"));
        }
        parse_json(&bytes, state.config.max_json_depth).map(|v| OptionalJson(Some(v)))
    }
}

/// How deeply arrays and objects nest in `json`, counting only brackets outside strings.
/// Malformed input gets some number; the parser reports it afterwards.
pub(crate) fn json_depth(json: &[u8]) -> usize {
    let (mut depth, mut deepest, mut in_string, mut escaped) = (0usize, 0usize, false, false);
    for &byte in json {
        if in_string {
            match byte {
                _ if escaped => escaped = false,
                b'\\' => escaped = true,
                b'"' => in_string = false,
                _ => {}
            }
            continue;
        }
        match byte {
            b'"' => in_string = true,
            b'[' | b'{' => {
                depth += 1;
                deepest = deepest.max(depth);
            }
            b']' | b'}' => depth = depth.saturating_sub(1),
            _ => {}
        }
    }
    deepest
}

/// Parses a JSON object: too deep or malformed → 400; not an object, or wrong values → 422
/// naming the field.
pub(crate) fn parse_json<T: DeserializeOwned>(
    bytes: &[u8],
    max_depth: usize,
) -> Result<T, ApiError> {
    if json_depth(bytes) > max_depth {
        return Err(ApiError::new(
            StatusCode::BAD_REQUEST,
            "json_too_deep",
            format!("JSON nests deeper than {max_depth} levels"),
        ));
    }
    // Two steps: syntax first (400), then values (422). Parsing straight into `T` would report
    // some wrong types (a number where an enum belongs) as syntax errors.
    let value: serde_json::Value = serde_json::from_slice(bytes)
        .map_err(|e| ApiError::malformed(format!("malformed JSON: {e}")))?;
    // Every body of the API is an object. serde would also read a struct from an array, field
    // by field in declaration order, so `[null, null]` would pass for an empty patch.
    if !value.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    from_value(value)
}

/// Reads a parsed body as `T`: wrong values → 422 naming the field.
pub(crate) fn from_value<T: DeserializeOwned>(value: serde_json::Value) -> Result<T, ApiError> {
    serde_path_to_error::deserialize(value).map_err(|e| {
        let path = e.path().to_string();
        let field = if path == "." { "body" } else { path.as_str() };
        ApiError::invalid(field, e.into_inner().to_string())
    })
}

/// A query string; values of the wrong type are 422 naming the parameter.
pub(crate) struct ApiQuery<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned> FromRequestParts<S> for ApiQuery<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, ApiError> {
        parse_query(parts.uri.query().unwrap_or("")).map(ApiQuery)
    }
}

pub(crate) fn parse_query<T: DeserializeOwned>(query: &str) -> Result<T, ApiError> {
    let deserializer =
        serde_urlencoded::Deserializer::new(form_urlencoded::parse(query.as_bytes()));
    serde_path_to_error::deserialize(deserializer).map_err(|e| {
        let field = e.path().to_string();
        let field = if field == "." {
            "query".to_owned()
        } else {
            field
        };
        ApiError::invalid(field, e.into_inner().to_string())
    })
}

/// Path parameters; a malformed id is 422.
pub(crate) struct ApiPath<T>(pub(crate) T);

impl<S: Send + Sync, T: DeserializeOwned + Send> FromRequestParts<S> for ApiPath<T> {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, ApiError> {
        match Path::<T>::from_request_parts(parts, state).await {
            Ok(Path(value)) => Ok(ApiPath(value)),
            Err(_) => Err(ApiError::invalid("path", "not a valid id")),
        }
    }
}

/// The authenticated caller, from `Authorization: Bearer <access token>`.
pub(crate) struct Auth(pub(crate) Actor);

pub(crate) fn bearer_token(headers: &HeaderMap) -> Option<&str> {
    let value = headers.get(header::AUTHORIZATION)?.to_str().ok()?;
    let (scheme, token) = value.trim().split_once(' ')?;
    let token = token.trim();
    (scheme.eq_ignore_ascii_case("bearer") && !token.is_empty()).then_some(token)
}

impl FromRequestParts<AppState> for Auth {
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &AppState) -> Result<Self, ApiError> {
        let token = bearer_token(&parts.headers).ok_or_else(ApiError::unauthenticated)?;
        Ok(Auth(state.medex.authenticate(token).await?))
    }
}

/// The client's address, when the server was started with connect info (tests without a socket
/// have none): the peer, or, when the peer is one of the trusted proxies, the address that
/// proxy forwarded in `X-Forwarded-For` (see [`client_address`]).
pub(crate) struct ClientIp(pub(crate) Option<IpAddr>);

impl FromRequestParts<AppState> for ClientIp {
    type Rejection = std::convert::Infallible;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &AppState,
    ) -> Result<Self, Self::Rejection> {
        let peer = parts
            .extensions
            .get::<ConnectInfo<SocketAddr>>()
            .map(|c| c.0.ip());
        Ok(ClientIp(peer.map(|peer| {
            client_address(peer, &parts.headers, &state.config.trusted_proxies)
        })))
    }
}

/// The client's address: `peer`, unless `peer` is a trusted proxy; then the nearest address in
/// `X-Forwarded-For` (read from its end, where each proxy appends the address it saw) that is
/// not itself a trusted proxy. An address the client wrote there itself sits before those its
/// proxies added, so it is never taken while a proxy's entry follows it. A malformed entry
/// stops the walk at the last good one.
pub(crate) fn client_address(peer: IpAddr, headers: &HeaderMap, trusted: &[IpNet]) -> IpAddr {
    let is_trusted = |ip: &IpAddr| trusted.iter().any(|net| net.contains(ip));
    if !is_trusted(&peer) {
        return peer;
    }
    let hops: Vec<&str> = headers
        .get_all("x-forwarded-for")
        .iter()
        .filter_map(|v| v.to_str().ok())
        .flat_map(|v| v.split(','))
        .map(str::trim)
        .collect();
    let mut client = peer;
    for hop in hops.iter().rev() {
        let Ok(ip) = hop.parse::<IpAddr>() else {
            break;
        };
        client = ip;
        if !is_trusted(&ip) {
            break;
        }
    }
    client
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn depth_counts_brackets_outside_strings() {
        let check =
            |json: &str, expect: usize| assert_eq!(json_depth(json.as_bytes()), expect, "{json}");
        check("1", 0);
        check("{}", 1);
        check(r#"{"a":[1,{"b":2}]}"#, 3);
        check(r#"{"a":"[[[[{{{{"}"#, 1);
        check(r#"{"a":"\"[[[["}"#, 1);
        check(r#"[[],[],[]]"#, 2);
        check(&"[".repeat(100), 100);
    }

    /// A body of items with quantities: the shape of an order, for the parser.
    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Body {
        items: Vec<Item>,
    }

    #[derive(Debug, serde::Deserialize)]
    #[allow(dead_code)]
    struct Item {
        quantity: u32,
    }

    #[test]
    fn syntax_is_400_and_values_are_422() {
        let check = |json: &str, status: u16, code: &str| {
            let e = parse_json::<Body>(json.as_bytes(), 4).unwrap_err();
            assert_eq!((e.status().as_u16(), e.code()), (status, code), "{json}");
        };
        check("{", 400, "malformed_body");
        check("", 400, "malformed_body");
        check(r#"{"items": []} x"#, 400, "malformed_body");
        check(r#"{"items": [{"quantity": -1}]}"#, 422, "validation_failed");
        check(r#"{"items": "many"}"#, 422, "validation_failed");
        check(r#"{"items": [[[[[]]]]]}"#, 400, "json_too_deep");
        check(r#"[[{"quantity": 2}]]"#, 422, "validation_failed");
        check("null", 422, "validation_failed");
        assert!(parse_json::<Body>(br#"{"items": [{"quantity": 2}]}"#, 4).is_ok());
    }

    #[test]
    fn field_paths_name_the_bad_value() {
        let e = parse_json::<Body>(br#"{"items": [{"quantity": 1}, {"quantity": "x"}]}"#, 8)
            .unwrap_err();
        assert_eq!(e.status(), StatusCode::UNPROCESSABLE_ENTITY);
        let body = format!("{e:?}");
        assert!(body.contains("items[1].quantity"), "{body}");
    }

    #[test]
    fn bearer_tokens_are_read_case_insensitively() {
        let mut headers = HeaderMap::new();
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "bearer   abc ".parse().unwrap());
        assert_eq!(bearer_token(&headers), Some("abc"));
        headers.insert(header::AUTHORIZATION, "Basic abc".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
        headers.insert(header::AUTHORIZATION, "Bearer ".parse().unwrap());
        assert_eq!(bearer_token(&headers), None);
    }

    #[test]
    fn the_forwarded_client_counts_only_behind_a_trusted_proxy() {
        let nets =
            |list: &[&str]| -> Vec<IpNet> { list.iter().map(|n| n.parse().unwrap()).collect() };
        let check = |peer: &str, forwarded: &[&str], trusted: &[&str], expect: &str| {
            let mut headers = HeaderMap::new();
            for value in forwarded {
                headers.append("x-forwarded-for", value.parse().unwrap());
            }
            assert_eq!(
                client_address(peer.parse().unwrap(), &headers, &nets(trusted)),
                expect.parse::<IpAddr>().unwrap(),
                "peer {peer}, X-Forwarded-For {forwarded:?}, trusted {trusted:?}"
            );
        };
        // Nobody trusted: the header is anyone's to write.
        check("203.0.113.9", &["198.51.100.1"], &[], "203.0.113.9");
        // From an untrusted peer, even with proxies configured.
        check(
            "203.0.113.9",
            &["198.51.100.1"],
            &["10.0.0.0/8"],
            "203.0.113.9",
        );
        // Through the load balancer: the address it saw.
        check(
            "10.0.0.2",
            &["198.51.100.1"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        // A client's own entry comes first; the proxy's last.
        check(
            "10.0.0.2",
            &["6.6.6.6, 198.51.100.1"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        check(
            "10.0.0.2",
            &["6.6.6.6", "198.51.100.1"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        // Two trusted hops.
        check(
            "10.0.0.2",
            &["198.51.100.1, 10.0.0.7"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        // A single address as the list, IPv6, and a proxy that sent nothing.
        check(
            "10.0.0.2",
            &["2001:db8::1"],
            &["10.0.0.2/32"],
            "2001:db8::1",
        );
        check("::1", &["198.51.100.1"], &["::1/128"], "198.51.100.1");
        check("10.0.0.2", &[], &["10.0.0.0/8"], "10.0.0.2");
        // A malformed entry stops the walk at the last good address.
        check(
            "10.0.0.2",
            &["garbage, 198.51.100.1"],
            &["10.0.0.0/8"],
            "198.51.100.1",
        );
        check(
            "10.0.0.2",
            &["198.51.100.1, garbage"],
            &["10.0.0.0/8"],
            "10.0.0.2",
        );
    }
}
