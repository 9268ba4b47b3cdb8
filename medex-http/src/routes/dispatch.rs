//! `/api/drivers/{id}/run`: the stops of a driver's run in the order to drive them, and the
//! order a pharmacy fixes by hand; `/api/orders/{id}/driver-suggestions`: the drivers who could
//! take an order, fewest added minutes first (DESIGN §14).

use axum::Json;
use axum::extract::State;
use chrono::{DateTime, Utc};
use medex_core::model::{DriverId, DriverStatus, OrderId};
use medex_core::sequencing::StopKind;
use medex_core::service::{DriverSuggestion, RunPlan};
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, Auth};

/// What a stop is for.
#[derive(Debug, Clone, Copy, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum StopKindView {
    /// Collect the parcel at the pharmacy.
    Pickup,
    /// Hand it over.
    Dropoff,
}

/// When a drop-off should happen.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct WindowView {
    deliver_after: Option<DateTime<Utc>>,
    deliver_before: Option<DateTime<Utc>>,
}

/// One stop, per order (a pickup at the pharmacy serving several orders is listed once for
/// each, with the same ETA).
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct StopView {
    #[schema(value_type = uuid::Uuid)]
    order_id: OrderId,
    kind: StopKindView,
    latitude: f64,
    longitude: f64,
    /// When the driver gets there (after any wait for the window's start).
    eta: DateTime<Utc>,
    /// Minutes from now to then.
    eta_minutes: f64,
    /// The drop-off's window, if it has one.
    #[serde(skip_serializing_if = "Option::is_none")]
    window: Option<WindowView>,
    /// The ETA falls after the window's end.
    late: bool,
}

/// A driver's run, sequenced.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct RunView {
    #[schema(value_type = uuid::Uuid)]
    driver_id: DriverId,
    stops: Vec<StopView>,
    /// Kilometres of the whole run.
    total_km: f64,
    /// Minutes of the whole run, waits included.
    total_minutes: f64,
    /// Whether the pharmacy fixed the drop-off order by hand.
    manual: bool,
}

fn round(x: f64, places: i32) -> f64 {
    let f = 10f64.powi(places);
    (x * f).round() / f
}

impl From<RunPlan> for RunView {
    fn from(run: RunPlan) -> Self {
        Self {
            driver_id: run.driver_id,
            stops: run
                .plan
                .stops
                .into_iter()
                .map(|s| StopView {
                    order_id: s.order_id,
                    kind: match s.kind {
                        StopKind::Pickup => StopKindView::Pickup,
                        StopKind::Dropoff => StopKindView::Dropoff,
                    },
                    latitude: s.at.latitude(),
                    longitude: s.at.longitude(),
                    eta: s.eta,
                    eta_minutes: round(s.minutes, 1),
                    window: s.window.map(|w| WindowView {
                        deliver_after: w.after,
                        deliver_before: w.before,
                    }),
                    late: s.late,
                })
                .collect(),
            total_km: round(run.plan.total_km, 3),
            total_minutes: round(run.plan.total_minutes, 1),
            manual: run.manual,
        }
    }
}

/// The drop-off order wanted: each order of the run exactly once.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ArrangeRunRequest {
    #[schema(value_type = Vec<uuid::Uuid>, max_items = 30)]
    order_ids: Vec<OrderId>,
}

/// The stops of the driver's run, pickups before their drop-offs, in the order that takes the
/// least time (exact up to ten drop-offs), or as the pharmacy fixed it.
#[utoipa::path(get, path = "/api/drivers/{id}/run", tag = "drivers", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Driver id")),
    responses(
        (status = 200, description = "The run", body = RunView),
        (status = 403, description = "Customers see no runs", body = ErrorBody),
        (status = 404, description = "No such driver, or not yours", body = ErrorBody),
    ))]
pub(crate) async fn get_run(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<DriverId>,
) -> ApiResult<Json<RunView>> {
    Ok(Json(state.medex.driver_run(&actor, id).await?.into()))
}

/// Fixes the drop-off order of the driver's run by hand (its pharmacy, admins); kept until an
/// order joins or leaves the run.
#[utoipa::path(put, path = "/api/drivers/{id}/run", tag = "drivers", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Driver id")),
    request_body = ArrangeRunRequest,
    responses(
        (status = 200, description = "The run in the order given", body = RunView),
        (status = 403, description = "Only the pharmacy and admins arrange runs", body = ErrorBody),
        (status = 404, description = "No such driver, or not yours", body = ErrorBody),
        (status = 409, description = "The driver changed meanwhile (`concurrent_update`)", body = ErrorBody),
        (status = 422, description = "Not exactly the orders of the run", body = ErrorBody),
    ))]
pub(crate) async fn arrange_run(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<DriverId>,
    ApiJson(body): ApiJson<ArrangeRunRequest>,
) -> ApiResult<Json<RunView>> {
    Ok(Json(
        state
            .medex
            .arrange_run(&actor, id, body.order_ids)
            .await?
            .into(),
    ))
}

/// A driver who could take the order, and what the order would do to its run.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SuggestionView {
    #[schema(value_type = uuid::Uuid)]
    driver_id: DriverId,
    full_name: String,
    /// `available` (no run yet) or `busy` (room left in its run).
    #[schema(value_type = crate::views::DriverStatusDoc)]
    status: DriverStatus,
    /// Orders its run holds now.
    #[schema(minimum = 0)]
    run_size: u32,
    /// Minutes the order adds to the driver's whole run, as sequenced with and without it.
    #[schema(minimum = 0)]
    added_minutes: f64,
    /// Minutes from now to the order's drop-off, through the stops before it in the run with
    /// it.
    #[schema(minimum = 0)]
    eta_minutes: f64,
    /// Kilometres from the driver (the pharmacy when its position is unknown) to the order's
    /// drop-off, through the stops before it.
    #[schema(minimum = 0)]
    distance_km: f64,
}

/// The drivers who could take the order, best first.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SuggestionsView {
    suggestions: Vec<SuggestionView>,
}

impl From<DriverSuggestion> for SuggestionView {
    fn from(s: DriverSuggestion) -> Self {
        Self {
            driver_id: s.driver_id,
            full_name: s.full_name,
            status: s.status,
            run_size: u32::try_from(s.run_size).unwrap_or(u32::MAX),
            added_minutes: round(s.added_minutes, 1),
            eta_minutes: round(s.eta_minutes, 1),
            distance_km: round(s.distance_km, 3),
        }
    }
}

/// The pharmacy's drivers who could take the order now — available, or busy with room left in
/// their run (`max_active_orders`); offline, on a break, full or deactivated drivers are left
/// out, and so is the order's own driver — fewest minutes added to their run first (ties by
/// driver id), with the ETA and distance to the order's drop-off in the run with it. A driver
/// without a known position starts from the pharmacy. Only for orders that can be assigned
/// now (`accepted`, or `driver_assigned` before pickup).
#[utoipa::path(get, path = "/api/orders/{id}/driver-suggestions", tag = "orders", security(("bearer" = [])),
    params(("id" = uuid::Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The drivers, best first (an empty list when nobody fits)", body = SuggestionsView),
        (status = 403, description = "Only the pharmacy and admins: the order's customer and driver may not ask", body = ErrorBody),
        (status = 404, description = "No such order, or not yours", body = ErrorBody),
        (status = 409, description = "The order cannot be assigned now (`invalid_transition`: pending, picked up or finished), or is scheduled for later (`not_yet_scheduled`)", body = ErrorBody),
    ))]
pub(crate) async fn driver_suggestions(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<SuggestionsView>> {
    let suggestions = state.medex.driver_suggestions(&actor, id).await?;
    Ok(Json(SuggestionsView {
        suggestions: suggestions.into_iter().map(Into::into).collect(),
    }))
}
