//! Request metrics: every answer counted by method, route template and status, with its latency
//! (`medex_http_requests_total`, `medex_http_request_duration_seconds`), through the `metrics`
//! facade. The program that serves the API installs a recorder and renders it (the example
//! server exposes Prometheus text at `/metrics`); without one, counting costs next to nothing.
//!
//! Labels come from small closed sets (route templates, standard methods, status codes) and are
//! interned, so a client cannot mint new time series and counting a request allocates nothing.

use std::collections::HashSet;
use std::sync::{LazyLock, PoisonError, RwLock};
use std::time::Instant;

use axum::extract::{MatchedPath, Request};
use axum::http::{Method, StatusCode};
use axum::middleware::Next;
use axum::response::Response;

/// Middleware counting every request that passes through it, by its matched route: put it
/// outside the routes to be counted (`router.layer(axum::middleware::from_fn(track_requests))`).
pub async fn track_requests(request: Request, next: Next) -> Response {
    let started = Instant::now();
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("unmatched", |p| interned(p.as_str()));
    let method = method_label(request.method());
    let response = next.run(request).await;
    count_request(method, route, response.status(), started);
    response
}

/// Counts one answered request, started at `started`.
pub(crate) fn count_request(
    method: &'static str,
    route: &'static str,
    status: StatusCode,
    started: Instant,
) {
    let status = interned(status.as_str());
    let labels = [("method", method), ("route", route), ("status", status)];
    ::metrics::counter!("medex_http_requests_total", &labels).increment(1);
    ::metrics::histogram!("medex_http_request_duration_seconds", &labels[..2])
        .record(started.elapsed().as_secs_f64());
}

/// The method as a metric label; methods outside the standard ones share one label.
pub(crate) fn method_label(method: &Method) -> &'static str {
    match *method {
        Method::GET => "GET",
        Method::POST => "POST",
        Method::PUT => "PUT",
        Method::PATCH => "PATCH",
        Method::DELETE => "DELETE",
        Method::HEAD => "HEAD",
        Method::OPTIONS => "OPTIONS",
        _ => "other",
    }
}

/// One `'static` copy of each label value from a small closed set.
fn interned(value: &str) -> &'static str {
    static SEEN: LazyLock<RwLock<HashSet<&'static str>>> = LazyLock::new(Default::default);
    if let Some(seen) = SEEN
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .get(value)
    {
        return seen;
    }
    let mut all = SEEN.write().unwrap_or_else(PoisonError::into_inner);
    if let Some(seen) = all.get(value) {
        return seen;
    }
    let kept: &'static str = Box::leak(value.into());
    all.insert(kept);
    kept
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn labels_are_interned_once() {
        let a = interned("/api/orders/{id}");
        let b = interned(&String::from("/api/orders/{id}"));
        assert!(std::ptr::eq(a, b));
        assert_eq!(method_label(&Method::from_bytes(b"BREW").unwrap()), "other");
    }
}
