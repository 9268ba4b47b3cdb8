//! `/api/orders/*`: placing, listing, reading, moving, assigning and cancelling orders.

use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use medex_core::model::{DriverId, OrderId, OrderStatus, VendorId};
use medex_core::service::{
    AssignmentResponse, NewItem, NewOrder, Requirements, Schedule, Transition,
};
use medex_core::store::OrderQuery;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::page::{listed, page};
use crate::views::{
    AssignDriverRequest, AssignmentAction, AssignmentRequest, CreateOrderRequest, OrderDoc,
    OrderStatusDoc, OrderView, PatchOrderRequest, order_answer,
};

/// Filters and page of `GET /api/orders`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct OrderListQuery {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatusDoc>)]
    status: Option<OrderStatus>,
    /// Only this pharmacy's orders.
    vendor_id: Option<Uuid>,
    /// Only orders assigned to this driver.
    driver_id: Option<Uuid>,
    /// Page length, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The id of the last order of the previous page.
    cursor: Option<Uuid>,
}

/// `?reason=` of a cancellation.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct CancelQuery {
    /// Why, optional: at most 500 characters, no control characters.
    #[param(max_length = 500)]
    reason: Option<String>,
}

/// Places an order. Pickup comes from the pharmacy; distance, fee, order number, tracking token
/// and handover code are computed by the server. `require_*` start from the pharmacy's policy;
/// `true` raises one, `false` keeps the pharmacy's.
#[utoipa::path(post, path = "/api/orders", tag = "orders", security(("bearer" = [])),
    params(("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters (a UUID): the same key with the same body from the same account within 24 h replays the first answer")),
    request_body = CreateOrderRequest,
    responses(
        (status = 201, description = "Placed (or, with `Idempotent-Replayed: true`, the first answer to this `Idempotency-Key`)", body = OrderDoc),
        (status = 403, description = "Only customers and admins order", body = ErrorBody),
        (status = 409, description = "`idempotency_key_in_use`: the first request with this key still runs; retry to get its answer", body = ErrorBody),
        (status = 422, description = "Invalid values; `idempotency_key_reused`: this key came with another request", body = ErrorBody),
    ))]
pub(crate) async fn create_order(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(body): ApiJson<CreateOrderRequest>,
) -> ApiResult<Response> {
    let new = NewOrder {
        vendor_id: body.vendor_id,
        delivery_address: body.delivery_address,
        delivery_latitude: body.delivery_latitude,
        delivery_longitude: body.delivery_longitude,
        customer_name: body.customer_name,
        customer_phone: body.customer_phone,
        items: body
            .items
            .into_iter()
            .map(|i| NewItem {
                name: i.name,
                quantity: i.quantity,
                notes: i.notes,
            })
            .collect(),
        notes: body.notes,
        requirements: Requirements {
            proof_photo: body.require_proof_photo.unwrap_or(false),
            signature: body.require_signature.unwrap_or(false),
            handover_code: body.require_handover_code.unwrap_or(false),
        },
        schedule: Schedule {
            deliver_after: body.deliver_after,
            deliver_before: body.deliver_before,
            scheduled_for: body.scheduled_for,
        },
    };
    let order = state.medex.create_order(&actor, new).await?;
    let mut response = order_answer(&actor, &order);
    *response.status_mut() = StatusCode::CREATED;
    Ok(response)
}

/// Orders the caller may see, newest first: a customer's own, a pharmacy's, a driver's, all for
/// admins.
#[utoipa::path(get, path = "/api/orders", tag = "orders", security(("bearer" = [])),
    params(OrderListQuery),
    responses(
        (status = 200, description = "One page; `Link: <…>; rel=\"next\"` when full", body = [OrderDoc]),
        (status = 422, description = "Bad filter or limit", body = ErrorBody),
    ))]
pub(crate) async fn list_orders(
    State(state): State<AppState>,
    Auth(actor): Auth,
    uri: Uri,
    ApiQuery(q): ApiQuery<OrderListQuery>,
) -> ApiResult<Response> {
    let page = page(q.limit, q.cursor, OrderId::from_uuid)?;
    let query = OrderQuery {
        status: q.status,
        vendor_id: q.vendor_id.map(VendorId::from_uuid),
        driver_id: q.driver_id.map(DriverId::from_uuid),
        ..Default::default()
    };
    let orders = state.medex.list_orders(&actor, query, page).await?;
    Ok(listed(&state, &uri, page.limit, &orders, |o| {
        OrderView::of(&actor, o)
    }))
}

/// One order with its status history, for the parties of the order.
#[utoipa::path(get, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The order", body = OrderDoc),
        (status = 404, description = "No such order, or not yours", body = ErrorBody),
    ))]
pub(crate) async fn get_order(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Response> {
    let order = state.medex.get_order(&actor, id).await?;
    Ok(order_answer(&actor, &order))
}

/// Moves an order along its lifecycle (`{"status", "reason"?, "note"?, "handover_code"?}`), or
/// sets the delivery location of a pending order that arrived without one
/// (`{"delivery_latitude", "delivery_longitude", "delivery_address"?}`, its pharmacy only).
///
/// A failed attempt is `{"status": "failed", "reason": <code>, "note"?}` (the assigned driver;
/// `note` required for `other`); the pharmacy confirms the parcel is back with `returned`, then
/// dispatches it again with `accepted` (a new attempt) or ends it with `cancelled`. `delivered`
/// carries `handover_code` when the order requires it.
#[utoipa::path(patch, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id"), ("Idempotency-Key" = Option<String>, Header, pattern = "^[!-~]{1,255}$", description = "1 to 255 visible ASCII characters (a UUID): the same key with the same body from the same account within 24 h replays the first answer")),
    request_body = PatchOrderRequest,
    responses(
        (status = 200, description = "The order after the change", body = OrderDoc),
        (status = 403, description = "Your role may never make this move", body = ErrorBody),
        (status = 404, description = "No such order, or not yours", body = ErrorBody),
        (status = 409, description = "Not allowed now (code invalid_transition, reason_required, proof_missing, location_missing, handover_locked, destination_already_set, not_editable, concurrent_update, idempotency_key_in_use, …)", body = ErrorBody),
        (status = 422, description = "Invalid values (validation_failed: unknown reason code, missing note, malformed handover code), handover_code_required, handover_code_invalid (a wrong code; counted), idempotency_key_reused", body = ErrorBody),
    ))]
pub(crate) async fn patch_order(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(body): ApiJson<PatchOrderRequest>,
) -> ApiResult<Response> {
    let wants_location = body.delivery_latitude.is_some()
        || body.delivery_longitude.is_some()
        || body.delivery_address.is_some();
    let order = match (body.status, wants_location) {
        (Some(_), true) => {
            return Err(ApiError::invalid(
                "status",
                "change the status or the delivery location, not both at once",
            ));
        }
        (Some(status), false) => {
            let transition = Transition {
                status,
                reason: body.reason,
                note: body.note,
                handover_code: body.handover_code,
            };
            state.medex.transition(&actor, id, transition).await?
        }
        (None, true) => {
            let (Some(lat), Some(lon)) = (body.delivery_latitude, body.delivery_longitude) else {
                return Err(ApiError::invalid(
                    "delivery_latitude",
                    "delivery_latitude and delivery_longitude are both required",
                ));
            };
            state
                .medex
                .set_delivery_location(&actor, id, body.delivery_address, lat, lon)
                .await?
        }
        (None, false) => {
            return Err(ApiError::invalid(
                "status",
                "give a status, or a delivery location",
            ));
        }
    };
    Ok(order_answer(&actor, &order))
}

/// Cancels an order, as the lifecycle allows the caller.
#[utoipa::path(delete, path = "/api/orders/{id}", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id"), CancelQuery),
    responses(
        (status = 200, description = "The cancelled order", body = OrderDoc),
        (status = 403, description = "Your role may not cancel", body = ErrorBody),
        (status = 404, description = "No such order, or not yours", body = ErrorBody),
        (status = 409, description = "Not cancellable by you now; or changed by another request meanwhile (`concurrent_update`)", body = ErrorBody),
    ))]
pub(crate) async fn cancel_order(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<OrderId>,
    ApiQuery(q): ApiQuery<CancelQuery>,
) -> ApiResult<Response> {
    let order = state.medex.cancel_order(&actor, id, q.reason).await?;
    Ok(order_answer(&actor, &order))
}

/// Assigns (or, before pickup, re-assigns) a driver of the pharmacy's fleet.
#[utoipa::path(post, path = "/api/orders/{id}/assign-driver", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    request_body = AssignDriverRequest,
    responses(
        (status = 200, description = "Assigned", body = OrderDoc),
        (status = 403, description = "Only the pharmacy or an admin assigns", body = ErrorBody),
        (status = 404, description = "No such order, or not yours", body = ErrorBody),
        (status = 409, description = "Driver not available (`driver_not_available`), the order scheduled for later (`not_yet_scheduled`), or not assignable now; or changed by another request meanwhile (`concurrent_update`)", body = ErrorBody),
        (status = 422, description = "No such driver in the fleet", body = ErrorBody),
    ))]
pub(crate) async fn assign_driver(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(body): ApiJson<AssignDriverRequest>,
) -> ApiResult<Response> {
    let order = state
        .medex
        .assign_driver(&actor, id, body.driver_id)
        .await?;
    Ok(order_answer(&actor, &order))
}

/// The assigned driver accepts or declines (with a reason) its assignment.
#[utoipa::path(post, path = "/api/orders/{id}/assignment", tag = "orders", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    request_body = AssignmentRequest,
    responses(
        (status = 200, description = "The order after the answer", body = OrderDoc),
        (status = 403, description = "Not the assigned driver", body = ErrorBody),
        (status = 404, description = "No such order, or not yours", body = ErrorBody),
        (status = 409, description = "Not assigned now; or changed by another request meanwhile (`concurrent_update`)", body = ErrorBody),
    ))]
pub(crate) async fn respond_to_assignment(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<OrderId>,
    ApiJson(body): ApiJson<AssignmentRequest>,
) -> ApiResult<Response> {
    let response = match body.action {
        AssignmentAction::Accept => AssignmentResponse::Accept,
        AssignmentAction::Decline => AssignmentResponse::Decline,
    };
    let order = state
        .medex
        .respond_to_assignment(&actor, id, response, body.reason)
        .await?;
    Ok(order_answer(&actor, &order))
}
