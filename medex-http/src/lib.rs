//! The MedEx HTTP API: an axum [`Router`] over the [`MedEx`] use cases, with its OpenAPI
//! document generated from the same handlers (so routes and document cannot drift), a Swagger UI
//! at `/docs`, and the API's error format on every error answer.
//!
//! The router is a plain tower service: mount it in your own server, call it in tests with
//! `tower::ServiceExt::oneshot`, or run it with [`serve`].
//!
//! ```
//! use std::sync::Arc;
//! use axum::body::Body;
//! use axum::http::{Request, StatusCode};
//! use medex_core::prelude::*;
//! use tower::ServiceExt;
//!
//! # tokio::runtime::Builder::new_current_thread().enable_all().build().unwrap().block_on(async {
//! let medex = MedEx::new(Ports {
//!     store: Arc::new(MemoryStore::new()),
//!     bus: Arc::new(NullBus),
//!     clock: Arc::new(SystemClock),
//!     entropy: Arc::new(OsEntropy),
//!     hasher: Arc::new(Argon2Hasher::insecure_fast()),
//!     tokens: TokenKeys::new(&[7; 32], TokenLifetimes::default()).unwrap(),
//!     custody: CustodyKeys::from_seed([8; 32]),
//! }, SystemConfig::default()).await.unwrap();
//! let app = medex_http::router(Arc::new(medex), medex_http::HttpConfig::default());
//!
//! let response = app
//!     .oneshot(Request::get("/api/health").body(Body::empty()).unwrap())
//!     .await
//!     .unwrap();
//! assert_eq!(response.status(), StatusCode::OK);
//! # });
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use axum::Router;
use axum::body::Body;
use axum::extract::{DefaultBodyLimit, MatchedPath};
use axum::http::{HeaderName, HeaderValue, Method, Request, header};
use axum::response::{IntoResponse, Response};
use medex_core::MedEx;
use medex_core::files::FileStore;
use tower_http::catch_panic::CatchPanicLayer;
use tower_http::cors::{AllowOrigin, CorsLayer};
use tower_http::request_id::{MakeRequestUuid, PropagateRequestIdLayer, SetRequestIdLayer};
use tower_http::trace::{DefaultOnResponse, TraceLayer};
use utoipa::OpenApi;
use utoipa_axum::router::OpenApiRouter;
use utoipa_axum::router::UtoipaMethodRouterExt;
use utoipa_axum::routes;
use utoipa_swagger_ui::SwaggerUi;

mod error;
mod extract;
mod files;
mod idempotency;
pub mod metrics;
mod openapi;
mod page;
mod routes;
mod schemas;
mod throttle;
mod tracking_reads;
mod views;

pub use error::{ErrorBody, FieldErrorBody};
pub use files::DirectoryFiles;
pub use ipnet::IpNet;
pub use throttle::{CountsUnavailable, FailureCounts, LoginThrottle, MemoryCounts};
pub use tracking_reads::TrackingReads;

/// The request id header: set on every request that lacks one, echoed on every answer.
pub(crate) const REQUEST_ID: &str = "x-request-id";

use crate::error::ApiError;
use crate::routes::{
    admin, auth, custody, dispatch, drivers, integrations, meta, orders, reports, uploads, vendors,
    webhooks,
};
use crate::throttle::Throttle;

/// How the HTTP layer behaves. `Default` gives the documented defaults.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpConfig {
    /// Origins allowed by CORS (`*` for any). Empty: no CORS headers (same-origin only).
    pub cors_origins: Vec<String>,
    /// Largest JSON request body, bytes (default 64 KiB; larger is 413).
    pub max_body_bytes: usize,
    /// Deepest nesting of arrays and objects in a JSON body (default 32; deeper is 400).
    pub max_json_depth: usize,
    /// Failed-login throttling.
    pub login_throttle: LoginThrottle,
    /// Where uploaded proofs are stored (default `./medex-uploads`) unless the router is given
    /// a file store of its own ([`router_with`]).
    pub upload_dir: PathBuf,
    /// Largest upload, bytes (default 5 MiB; larger is 413).
    pub max_upload_bytes: usize,
    /// The externally visible base URL (`https://api.example.com`), used in `Link` headers;
    /// relative links when unset.
    pub public_base_url: Option<String>,
    /// Proxies (load balancers) whose `X-Forwarded-For` names the client: a request from one
    /// of these counts for throttling as coming from the address they forwarded. Empty
    /// (default): the header is ignored and the peer is the client, since anyone can send it.
    pub trusted_proxies: Vec<IpNet>,
}

impl Default for HttpConfig {
    fn default() -> Self {
        Self {
            cors_origins: Vec::new(),
            max_body_bytes: 64 * 1024,
            max_json_depth: 32,
            login_throttle: LoginThrottle::default(),
            upload_dir: PathBuf::from("medex-uploads"),
            max_upload_bytes: 5 * 1024 * 1024,
            public_base_url: None,
            trusted_proxies: Vec::new(),
        }
    }
}

/// What every handler gets.
#[derive(Clone)]
pub(crate) struct AppState {
    pub(crate) medex: Arc<MedEx>,
    pub(crate) config: Arc<HttpConfig>,
    pub(crate) throttle: Arc<Throttle>,
    /// Where uploaded proofs are kept.
    pub(crate) files: Arc<dyn FileStore>,
    /// A random secret the webhook checks signatures against when a pharmacy has none (or does
    /// not exist), so that those answers take as long as a wrong signature's.
    pub(crate) webhook_decoy: Arc<str>,
}

/// Room for the multipart framing around an upload's file.
const MULTIPART_OVERHEAD: usize = 64 * 1024;

/// Every documented route. Handlers are registered only here, through `routes!`, which takes
/// each route's path and method from the handler's `#[utoipa::path]`.
/// Routes that honour `Idempotency-Key` (on their POST and PATCH); the layer needs the state, and
/// the document alone is built without one.
fn idempotent(
    routes: utoipa_axum::router::UtoipaMethodRouter<AppState>,
    state: &Option<AppState>,
) -> utoipa_axum::router::UtoipaMethodRouter<AppState> {
    match state {
        Some(state) => routes.layer(axum::middleware::from_fn_with_state(
            state.clone(),
            idempotency::idempotent,
        )),
        None => routes,
    }
}

fn api(max_upload_bytes: usize, state: Option<AppState>) -> OpenApiRouter<AppState> {
    let upload_limit = DefaultBodyLimit::max(max_upload_bytes.saturating_add(MULTIPART_OVERHEAD));
    OpenApiRouter::with_openapi(openapi::ApiDoc::openapi())
        .routes(routes!(meta::index))
        .routes(routes!(meta::health))
        .routes(routes!(meta::tracking))
        .routes(routes!(auth::register))
        .routes(routes!(auth::login))
        .routes(routes!(auth::refresh))
        .routes(routes!(auth::logout))
        .routes(routes!(auth::logout_all))
        .routes(routes!(auth::change_password))
        .routes(routes!(auth::me))
        .routes(idempotent(
            routes!(orders::create_order, orders::list_orders),
            &state,
        ))
        .routes(idempotent(
            routes!(orders::get_order, orders::patch_order, orders::cancel_order),
            &state,
        ))
        .routes(routes!(orders::assign_driver))
        .routes(routes!(orders::respond_to_assignment))
        .routes(routes!(custody::custody_record))
        .routes(routes!(custody::custody_keys))
        .routes(routes!(drivers::register_driver))
        .routes(routes!(drivers::list_drivers))
        .routes(routes!(drivers::get_driver, drivers::patch_driver))
        .routes(routes!(drivers::set_driver_status))
        .routes(routes!(drivers::record_location))
        .routes(routes!(drivers::earnings))
        .routes(routes!(drivers::deliveries))
        .routes(routes!(dispatch::get_run, dispatch::arrange_run))
        .routes(routes!(dispatch::driver_suggestions))
        .routes(routes!(vendors::register_vendor))
        .routes(routes!(vendors::list_vendors))
        .routes(routes!(vendors::get_vendor, vendors::patch_vendor))
        .routes(routes!(vendors::vendor_orders))
        .routes(routes!(vendors::export_csv))
        .routes(routes!(
            integrations::create_api_key,
            integrations::list_api_keys
        ))
        .routes(routes!(integrations::revoke_api_key))
        .routes(routes!(
            integrations::create_webhook,
            integrations::list_webhooks
        ))
        .routes(routes!(integrations::delete_webhook))
        .routes(routes!(integrations::rotate_webhook_secret))
        .routes(routes!(integrations::list_deliveries))
        .routes(routes!(reports::vendor_daily))
        .routes(routes!(reports::driver_statistics))
        .routes(routes!(admin::list_users))
        .routes(routes!(admin::patch_user))
        .routes(routes!(admin::get_config, admin::patch_config))
        .routes(routes!(uploads::upload_proof).layer(upload_limit))
        .routes(routes!(uploads::upload_signature).layer(upload_limit))
        .routes(routes!(uploads::get_upload))
        .routes(routes!(webhooks::woocommerce_order_created))
}

/// The routes and their completed document.
fn parts(
    max_upload_bytes: usize,
    state: Option<AppState>,
) -> (Router<AppState>, utoipa::openapi::OpenApi) {
    let (routes, mut doc) = api(max_upload_bytes, state).split_for_parts();
    openapi::complete(&mut doc);
    (routes, doc)
}

/// The body of an outgoing webhook about `delivery`: `{id, type, created_at, data}`, with `data`
/// the order as its pharmacy sees it over the API (and its handover code, which a shop may pass
/// on to its customer). The same bytes on every attempt, so a retried body is the same body.
pub fn webhook_body(delivery: &medex_core::integrations::Delivery) -> Vec<u8> {
    let body = serde_json::json!({
        "id": delivery.event_id,
        "type": delivery.event.as_str(),
        "created_at": delivery.created_at,
        "data": views::OrderView::with(
            medex_core::permissions::OrderFields::WithHandoverCode,
            &delivery.order
        ),
    });
    serde_json::to_vec(&body).unwrap_or_default()
}

/// The OpenAPI document of the API, as served at `/api/openapi.json`.
pub fn openapi() -> utoipa::openapi::OpenApi {
    parts(HttpConfig::default().max_upload_bytes, None).1
}

async fn route_not_found() -> Response {
    ApiError::new(
        axum::http::StatusCode::NOT_FOUND,
        "route_not_found",
        "no such route",
    )
    .into_response()
}

async fn method_not_allowed() -> Response {
    ApiError::new(
        axum::http::StatusCode::METHOD_NOT_ALLOWED,
        "method_not_allowed",
        "this route does not take this method",
    )
    .into_response()
}

fn cors(origins: &[String]) -> CorsLayer {
    let allow = if origins.iter().any(|o| o == "*") {
        AllowOrigin::any()
    } else {
        AllowOrigin::list(
            origins
                .iter()
                .filter_map(|o| HeaderValue::from_str(o.trim().trim_end_matches('/')).ok()),
        )
    };
    CorsLayer::new()
        .allow_origin(allow)
        .allow_methods([
            Method::GET,
            Method::POST,
            Method::PUT,
            Method::PATCH,
            Method::DELETE,
            Method::OPTIONS,
        ])
        .allow_headers([
            header::AUTHORIZATION,
            header::CONTENT_TYPE,
            idempotency::IDEMPOTENCY_KEY,
        ])
        .expose_headers([
            header::LINK,
            header::RETRY_AFTER,
            header::CONTENT_DISPOSITION,
            HeaderName::from_static("x-request-id"),
            idempotency::REPLAYED,
        ])
}

/// What every answer gets on its way out, in one layer: errors as JSON, then the caching and
/// protective headers.
async fn every_answer(response: Response) -> Response {
    protective_headers(no_store_by_default(error::json_errors(response)))
}

/// API answers carry patients' names, phones, addresses and positions: no browser or proxy cache
/// may keep them, unless the route says otherwise (served uploads do).
fn no_store_by_default(mut response: Response) -> Response {
    response
        .headers_mut()
        .entry(header::CACHE_CONTROL)
        .or_insert(HeaderValue::from_static("no-store"));
    response
}

/// Every answer: no browser may guess another type than the one declared (a JSON error read as
/// HTML, an upload as a script), and none may be framed by another site.
fn protective_headers(mut response: Response) -> Response {
    let headers = response.headers_mut();
    headers.insert(
        header::X_CONTENT_TYPE_OPTIONS,
        HeaderValue::from_static("nosniff"),
    );
    headers
        .entry(header::X_FRAME_OPTIONS)
        .or_insert(HeaderValue::from_static("DENY"));
    response
}

/// The Swagger UI at `/docs`: its scripts and styles come from this server only (it sets some
/// styles inline from its own script), it talks to this server only, and nobody frames it.
async fn docs_headers(mut response: Response) -> Response {
    response.headers_mut().insert(
        header::CONTENT_SECURITY_POLICY,
        HeaderValue::from_static(
            "default-src 'none'; script-src 'self'; style-src 'self' 'unsafe-inline'; \
             img-src 'self' data:; font-src 'self' data:; connect-src 'self'; \
             base-uri 'none'; form-action 'none'; frame-ancestors 'none'",
        ),
    );
    response
}

/// The request span: method, route template (not the raw path: tracking tokens and file names
/// are secrets of their links) and request id. Headers are never recorded.
pub(crate) fn request_span(method: &Method, route: &str, request_id: &str) -> tracing::Span {
    tracing::info_span!("request", method = %method, route, request_id)
}

fn span_of(request: &Request<Body>) -> tracing::Span {
    let route = request
        .extensions()
        .get::<MatchedPath>()
        .map_or("<no route>", MatchedPath::as_str);
    let request_id = request
        .headers()
        .get(REQUEST_ID)
        .and_then(|v| v.to_str().ok())
        .unwrap_or("");
    request_span(request.method(), route, request_id)
}

/// The whole API as one axum router (state applied), ready to be served or merged with other
/// routes (the WebSocket routes of the server, for example). Throttling counts are kept in this
/// process; see [`router_with_counts`] for several instances.
pub fn router(medex: Arc<MedEx>, config: HttpConfig) -> Router {
    let mut key = [0u8; 32];
    key[..16].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    key[16..].copy_from_slice(uuid::Uuid::new_v4().as_bytes());
    router_with_counts(medex, config, Arc::new(MemoryCounts::default()), key)
}

/// [`router`] with throttling counts kept in `counts` (shared by several instances, say) under
/// keys hashed with `key` (the same on every instance that shares them).
pub fn router_with_counts(
    medex: Arc<MedEx>,
    config: HttpConfig,
    counts: Arc<dyn FailureCounts>,
    key: [u8; 32],
) -> Router {
    let files = Arc::new(DirectoryFiles::new(config.upload_dir.clone()));
    router_with(
        medex,
        config,
        Shared {
            counts,
            throttle_key: key,
            files,
        },
    )
}

/// What the HTTP layer may share with other instances behind one address.
pub struct Shared {
    /// Throttling counts.
    pub counts: Arc<dyn FailureCounts>,
    /// The key the counts' keys are hashed with: the same on every instance sharing `counts`
    /// (derive it from a secret they share), so that they count alike.
    pub throttle_key: [u8; 32],
    /// Where uploaded proofs are kept, so that any instance serves what another stored.
    pub files: Arc<dyn FileStore>,
}

/// [`router`] with throttling counts and uploaded files kept in `shared`.
pub fn router_with(medex: Arc<MedEx>, config: HttpConfig, shared: Shared) -> Router {
    let throttle = Arc::new(Throttle::new(
        config.login_throttle,
        shared.counts,
        shared.throttle_key,
    ));
    let state = AppState {
        medex,
        config: Arc::new(config),
        throttle,
        files: shared.files,
        webhook_decoy: uuid::Uuid::new_v4().simple().to_string().into(),
    };
    let (routes, doc) = parts(state.config.max_upload_bytes, Some(state.clone()));
    let cors_layer =
        (!state.config.cors_origins.is_empty()).then(|| cors(&state.config.cors_origins));
    let docs: Router<AppState> =
        Router::from(SwaggerUi::new("/docs").url("/api/openapi.json", doc))
            .layer(axum::middleware::map_response(docs_headers));
    routes
        .merge(docs)
        .fallback(route_not_found)
        .method_not_allowed_fallback(method_not_allowed)
        .layer(DefaultBodyLimit::max(state.config.max_body_bytes))
        .layer(CatchPanicLayer::new())
        .layer(axum::middleware::map_response(every_answer))
        .layer(tower::util::option_layer(cors_layer))
        .layer(
            TraceLayer::new_for_http()
                .make_span_with(span_of)
                .on_request(())
                .on_response(
                    DefaultOnResponse::new()
                        .level(tracing::Level::INFO)
                        .latency_unit(tower_http::LatencyUnit::Micros),
                ),
        )
        .layer(PropagateRequestIdLayer::x_request_id())
        .layer(SetRequestIdLayer::x_request_id(MakeRequestUuid))
        .with_state(state)
}

/// Serves `router` on `listener` until `shutdown` completes, then stops accepting and lets the
/// requests in flight finish. Handlers see the peer address (used by login throttling).
pub async fn serve(
    listener: tokio::net::TcpListener,
    router: Router,
    shutdown: impl Future<Output = ()> + Send + 'static,
) -> std::io::Result<()> {
    axum::serve(
        listener,
        router.into_make_service_with_connect_info::<SocketAddr>(),
    )
    .with_graceful_shutdown(shutdown)
    .await
}
