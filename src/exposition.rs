//! `/metrics`: the server's counters in Prometheus text format. Public on the API's port by
//! default (business counters only: no tokens, ids or addresses), optionally behind a bearer
//! token (`MEDEX_METRICS_TOKEN`) or moved to a port of its own (`MEDEX_METRICS_ADDR`, which then
//! takes it off the API's port) that only the monitoring network reaches.

use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};

use axum::Router;
use axum::http::{HeaderMap, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medex_ws::WsServer;
use metrics_exporter_prometheus::{PrometheusBuilder, PrometheusHandle};
use sha2::{Digest, Sha256};

/// The process-wide Prometheus recorder (a recorder can be installed only once per process).
pub(crate) fn handle() -> PrometheusHandle {
    static HANDLE: std::sync::OnceLock<PrometheusHandle> = std::sync::OnceLock::new();
    HANDLE
        .get_or_init(|| {
            let recorder = PrometheusBuilder::new().build_recorder();
            let handle = recorder.handle();
            // Fails only if another recorder is installed; then our handle renders nothing new,
            // which is the embedding program's choice.
            let _ = metrics::set_global_recorder(recorder);
            handle
        })
        .clone()
}

/// What `/metrics` reads besides the recorder.
#[derive(Clone)]
pub(crate) struct Exposition {
    pub(crate) handle: PrometheusHandle,
    pub(crate) ws: Arc<WsServer>,
    /// For the depth and losses of the fix queue.
    pub(crate) medex: Arc<medex_core::MedEx>,
    pub(crate) open_sockets: Arc<AtomicUsize>,
    /// SHA-256 of the bearer token `/metrics` requires, if one is configured.
    pub(crate) token_digest: Option<[u8; 32]>,
}

impl Exposition {
    /// The digest a configured token is kept as: comparing digests takes the same time
    /// whatever the bytes a caller sends.
    pub(crate) fn digest(token: &str) -> [u8; 32] {
        Sha256::digest(token.as_bytes()).into()
    }

    /// The `/metrics` route.
    pub(crate) fn routes(self) -> Router {
        Router::new().route(
            "/metrics",
            axum::routing::get(move |headers: HeaderMap| {
                let exposition = self.clone();
                async move { exposition.render(&headers) }
            }),
        )
    }

    fn render(&self, headers: &HeaderMap) -> Response {
        if let Some(expected) = &self.token_digest {
            let offered = headers
                .get(header::AUTHORIZATION)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.strip_prefix("Bearer "))
                .map(Self::digest);
            if offered.as_ref() != Some(expected) {
                return (
                    StatusCode::UNAUTHORIZED,
                    [
                        (header::WWW_AUTHENTICATE, "Bearer"),
                        (header::CONTENT_TYPE, "application/json"),
                    ],
                    r#"{"detail":"metrics need the configured bearer token","code":"unauthenticated"}"#,
                )
                    .into_response();
            }
        }
        metrics::gauge!("medex_open_connections", "kind" => "tcp")
            .set(self.open_sockets.load(Ordering::Relaxed) as f64);
        metrics::gauge!("medex_open_connections", "kind" => "websocket")
            .set(self.ws.open_connections() as f64);
        let fixes = self.medex.fix_queue().stats();
        metrics::gauge!("medex_fix_queue_depth").set(fixes.depth as f64);
        metrics::counter!("medex_fix_queue_dropped_total").absolute(fixes.dropped);
        metrics::counter!("medex_fix_queue_failed_batches_total").absolute(fixes.failed_batches);
        (
            [
                (header::CONTENT_TYPE, "text/plain; version=0.0.4"),
                (header::CACHE_CONTROL, "no-store"),
            ],
            self.handle.render(),
        )
            .into_response()
    }
}
