//! `GET /`, `GET /api/health` and the public `GET /api/tracking/{token}`.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use medex_core::MedEx;
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery};
use crate::views::{BusHealth, Health, HealthView, IndexView, StorageHealth, TrackingDoc};

const VERSION: &str = env!("CARGO_PKG_VERSION");

/// What this server is and where its documentation lives.
#[utoipa::path(get, path = "/", tag = "meta",
    responses((status = 200, description = "Name, version and links", body = IndexView)))]
pub(crate) async fn index() -> Json<IndexView> {
    Json(IndexView {
        name: "medex",
        version: VERSION,
        docs: "/docs",
        openapi: "/api/openapi.json",
        health: "/api/health",
    })
}

/// Whether the server, its storage and (where configured) the bus between instances work.
#[utoipa::path(get, path = "/api/health", tag = "meta",
    responses(
        (status = 200, description = "`healthy`: all well", body = HealthView),
        (status = 503, description = "`unhealthy`: the storage fails, or the configured bus is unreachable", body = HealthView),
    ))]
pub(crate) async fn health(State(state): State<AppState>) -> (StatusCode, Json<HealthView>) {
    let storage = match state.medex.health().await {
        Ok(()) => StorageHealth::Ok,
        Err(error) => {
            tracing::error!(%error, "health check: storage failing");
            StorageHealth::Unavailable
        }
    };
    let bus = match state.medex.bus_health() {
        medex_core::events::BusHealth::Connected => BusHealth::Ok,
        medex_core::events::BusHealth::InProcess => BusHealth::InProcess,
        medex_core::events::BusHealth::Disconnected => {
            tracing::warn!("health check: the bus between instances is unreachable");
            BusHealth::Unavailable
        }
    };
    let healthy = storage == StorageHealth::Ok && bus != BusHealth::Unavailable;
    (
        if healthy {
            StatusCode::OK
        } else {
            StatusCode::SERVICE_UNAVAILABLE
        },
        Json(HealthView {
            status: if healthy {
                Health::Healthy
            } else {
                Health::Unhealthy
            },
            storage,
            bus,
            version: VERSION,
        }),
    )
}

/// Options of the tracking view.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct TrackingQuery {
    /// Add the driver's recent path while the order is on its way.
    #[serde(default)]
    #[param(default = false)]
    trail: bool,
}

/// The public view of an order, for anyone holding its tracking token: no phone numbers, no
/// account ids; the driver's first name, vehicle, position and ETA only while on its way.
#[utoipa::path(get, path = "/api/tracking/{token}", tag = "tracking",
    params(("token" = String, Path, description = "The order's tracking token"), TrackingQuery),
    responses(
        (status = 200, description = "The tracking view", body = TrackingDoc),
        (status = 404, description = "No such token", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn tracking(
    State(state): State<AppState>,
    ApiPath(token): ApiPath<String>,
    ApiQuery(q): ApiQuery<TrackingQuery>,
) -> ApiResult<Response> {
    tracking_answer(&state.medex, &token, q.trail).await
}

/// The tracking route's answer, shared with the short path for plain reads
/// ([`crate::TrackingReads`]). A plain read, the one a busy fleet's customers make most, answers
/// the view core keeps encoded between reads.
pub(crate) async fn tracking_answer(
    medex: &MedEx,
    token: &str,
    trail: bool,
) -> ApiResult<Response> {
    if trail {
        return Ok(Json(medex.tracking_view(token, true).await?).into_response());
    }
    let json = medex.tracking_json(token).await?;
    Ok((
        [(
            header::CONTENT_TYPE,
            HeaderValue::from_static("application/json"),
        )],
        json,
    )
        .into_response())
}
