//! `/api/drivers/*`: fleet registration, profiles, availability, positions, earnings, deliveries.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use medex_core::model::{Driver, DriverId, DriverStatus, OrderId, VendorId};
use medex_core::reports::Earnings;
use medex_core::service::{DriverPatch, FixInput, NewDriver};
use medex_core::store::DriverQuery;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::page::{PageQuery, listed, page};
use crate::routes::dates::{DateRange, parse_offset};
use crate::views::{
    DriverDoc, DriverStatusDoc, DriverStatusRequest, EarningsDoc, LocationReport, LocationView,
    OrderDoc, OrderView, PatchDriverRequest, RegisterDriverRequest, RegisteredDriver,
};

/// Filters and page of `GET /api/drivers`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DriverListQuery {
    /// Only drivers in this status.
    #[param(value_type = Option<DriverStatusDoc>)]
    status: Option<DriverStatus>,
    /// The fleet (admins; a vendor sees only its own).
    vendor_id: Option<Uuid>,
    /// Page length, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The id of the last driver of the previous page.
    cursor: Option<Uuid>,
}

/// Adds a driver with its login account to a fleet: a vendor's own, or the `vendor_id` an admin
/// names.
#[utoipa::path(post, path = "/api/drivers/register", tag = "drivers", security(("bearer" = [])),
    request_body = RegisterDriverRequest,
    responses(
        (status = 201, description = "Driver and account created; `driver_id` and `user_id` keys", body = DriverDoc),
        (status = 403, description = "Only vendors and admins", body = ErrorBody),
        (status = 404, description = "Another vendor's fleet", body = ErrorBody),
        (status = 409, description = "E-mail taken; or changed by another request meanwhile (`concurrent_update`)", body = ErrorBody),
    ))]
pub(crate) async fn register_driver(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(body): ApiJson<RegisterDriverRequest>,
) -> ApiResult<(StatusCode, Json<RegisteredDriver>)> {
    let (driver, _user) = state
        .medex
        .register_driver(
            &actor,
            NewDriver {
                vendor_id: body.vendor_id,
                email: body.email,
                password: body.password,
                full_name: body.full_name,
                phone: body.phone,
                vehicle_type: body.vehicle_type,
                vehicle_number: body.vehicle_number,
                license_number: body.license_number,
            },
        )
        .await?;
    let driver_id = driver.id;
    Ok((
        StatusCode::CREATED,
        Json(RegisteredDriver { driver, driver_id }),
    ))
}

/// A vendor's own fleet, or any fleet for admins.
#[utoipa::path(get, path = "/api/drivers", tag = "drivers", security(("bearer" = [])),
    params(DriverListQuery),
    responses(
        (status = 200, description = "One page", body = [DriverDoc]),
        (status = 403, description = "Only vendors and admins", body = ErrorBody),
        (status = 404, description = "Another vendor's fleet", body = ErrorBody),
    ))]
pub(crate) async fn list_drivers(
    State(state): State<AppState>,
    Auth(actor): Auth,
    uri: Uri,
    ApiQuery(q): ApiQuery<DriverListQuery>,
) -> ApiResult<Response> {
    let page = page(q.limit, q.cursor, DriverId::from_uuid)?;
    let query = DriverQuery {
        vendor_id: q.vendor_id.map(VendorId::from_uuid),
        status: q.status,
    };
    let drivers = state.medex.list_drivers(&actor, query, page).await?;
    Ok(listed(&state, &uri, page.limit, &drivers, |d| d))
}

/// One driver: for itself, its vendor and admins.
#[utoipa::path(get, path = "/api/drivers/{id}", tag = "drivers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Driver id")),
    responses(
        (status = 200, description = "The driver", body = DriverDoc),
        (status = 403, description = "Customers see no drivers", body = ErrorBody),
        (status = 404, description = "No such driver, or not yours", body = ErrorBody),
    ))]
pub(crate) async fn get_driver(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<DriverId>,
) -> ApiResult<Json<Driver>> {
    Ok(Json(state.medex.get_driver(&actor, id).await?))
}

/// Changes a driver's profile; only its vendor or an admin changes `is_active`.
#[utoipa::path(patch, path = "/api/drivers/{id}", tag = "drivers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Driver id")),
    request_body = PatchDriverRequest,
    responses(
        (status = 200, description = "The driver", body = DriverDoc),
        (status = 403, description = "Not allowed for your role", body = ErrorBody),
        (status = 404, description = "No such driver, or not yours", body = ErrorBody),
        (status = 409, description = "Deactivating a driver on an active order; or changed by another request meanwhile (`concurrent_update`)", body = ErrorBody),
    ))]
pub(crate) async fn patch_driver(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<DriverId>,
    ApiJson(body): ApiJson<PatchDriverRequest>,
) -> ApiResult<Json<Driver>> {
    let patch = DriverPatch {
        full_name: body.full_name,
        phone: body.phone,
        vehicle_type: body.vehicle_type,
        vehicle_number: body.vehicle_number,
        license_number: body.license_number,
        is_active: body.is_active,
    };
    Ok(Json(state.medex.update_driver(&actor, id, patch).await?))
}

/// Sets availability: `available`, `offline` or `on_break` (`busy` is the system's).
#[utoipa::path(patch, path = "/api/drivers/{id}/status", tag = "drivers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Driver id")),
    request_body = DriverStatusRequest,
    responses(
        (status = 200, description = "The driver", body = DriverDoc),
        (status = 404, description = "No such driver, or not yours", body = ErrorBody),
        (status = 403, description = "Customers see no drivers", body = ErrorBody),
        (status = 409, description = "The driver has an active order; or changed by another request meanwhile (`concurrent_update`)", body = ErrorBody),
        (status = 422, description = "busy or unknown status", body = ErrorBody),
    ))]
pub(crate) async fn set_driver_status(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<DriverId>,
    ApiJson(body): ApiJson<DriverStatusRequest>,
) -> ApiResult<Json<Driver>> {
    Ok(Json(
        state
            .medex
            .set_driver_status(&actor, id, body.status)
            .await?,
    ))
}

/// The HTTP fallback of the WebSocket `location` and `locations` messages: same bodies, same
/// pipeline. A batch (`{"fixes": [...]}`) is one report for the pace; the answer is its newest
/// fix.
#[utoipa::path(post, path = "/api/drivers/{id}/location", tag = "drivers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Driver id")),
    request_body = LocationReport,
    responses(
        (status = 200, description = "Recorded (a batch: its newest fix)", body = LocationView),
        (status = 422, description = "A value out of range; in a batch, no fix or more than 100, or a `recorded_at` older than 24 hours or in the future (field errors such as `fixes[3].recorded_at`)", body = ErrorBody),
        (status = 403, description = "Only the driver itself", body = ErrorBody),
        (status = 404, description = "No such driver, or not you", body = ErrorBody),
        (status = 429, description = "Faster than one fix per minimum interval, by any socket or request (`rate_limited`)", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
    ))]
pub(crate) async fn record_location(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<DriverId>,
    ApiJson(body): ApiJson<serde_json::Value>,
) -> ApiResult<Json<LocationView>> {
    // A batch has `fixes` and no `latitude` (a single fix may carry unknown fields, a batch
    // may not); each shape is then read naming its wrong fields.
    let report = if body.get("fixes").is_some() && body.get("latitude").is_none() {
        LocationReport::Batch(crate::extract::from_value(body)?)
    } else {
        LocationReport::One(crate::extract::from_value(body)?)
    };
    let location = match report {
        LocationReport::One(body) => {
            let input = FixInput {
                latitude: body.latitude,
                longitude: body.longitude,
                speed: body.speed,
                heading: body.heading,
                accuracy: body.accuracy,
                recorded_at: body.recorded_at,
            };
            state.medex.record_location(&actor, id, input).await?
        }
        LocationReport::Batch(batch) => {
            let inputs: Vec<FixInput> = batch
                .fixes
                .iter()
                .map(|f| FixInput {
                    latitude: f.latitude,
                    longitude: f.longitude,
                    speed: f.speed,
                    heading: f.heading,
                    accuracy: f.accuracy,
                    recorded_at: Some(f.recorded_at),
                })
                .collect();
            state.medex.record_locations(&actor, id, &inputs).await?
        }
    };
    Ok(Json(LocationView {
        driver_id: location.driver_id,
        latitude: location.fix.latitude,
        longitude: location.fix.longitude,
        recorded_at: location.fix.recorded_at,
        order_id: location.order_id.map(|o| *o.as_uuid()),
        eta_minutes: location.eta_minutes,
    }))
}

/// Totals and per-day earnings over local dates `from..=to` (default: the last 7 days).
#[utoipa::path(get, path = "/api/drivers/{id}/earnings", tag = "drivers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Driver id"), DateRange),
    responses(
        (status = 200, description = "Earnings", body = EarningsDoc),
        (status = 403, description = "Customers see no drivers", body = ErrorBody),
        (status = 404, description = "No such driver, or not yours", body = ErrorBody),
        (status = 422, description = "Bad dates", body = ErrorBody),
    ))]
pub(crate) async fn earnings(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<DriverId>,
    ApiQuery(q): ApiQuery<DateRange>,
) -> ApiResult<Json<Earnings>> {
    let offset = parse_offset(q.tz.as_deref())?;
    let (from, to) = q.resolve(state.medex.now(), offset, 6)?;
    Ok(Json(
        state
            .medex
            .driver_earnings(&actor, id, from, to, offset)
            .await?,
    ))
}

/// A driver's delivered orders, newest first.
#[utoipa::path(get, path = "/api/drivers/{id}/deliveries", tag = "drivers", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Driver id"), PageQuery),
    responses(
        (status = 200, description = "One page", body = [OrderDoc]),
        (status = 403, description = "Customers see no drivers", body = ErrorBody),
        (status = 404, description = "No such driver, or not yours", body = ErrorBody),
    ))]
pub(crate) async fn deliveries(
    State(state): State<AppState>,
    Auth(actor): Auth,
    uri: Uri,
    ApiPath(id): ApiPath<DriverId>,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let page = page(q.limit, q.cursor, OrderId::from_uuid)?;
    let orders = state.medex.driver_deliveries(&actor, id, page).await?;
    Ok(listed(&state, &uri, page.limit, &orders, |o| {
        OrderView::of(&actor, o)
    }))
}
