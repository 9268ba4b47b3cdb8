//! `/api/vendors/*`: pharmacy registration, profiles, their orders and CSV export.

use axum::Json;
use axum::extract::State;
use axum::http::{HeaderValue, StatusCode, Uri, header};
use axum::response::{IntoResponse, Response};
use chrono::{DateTime, Duration, Utc};
use medex_core::model::{OrderId, OrderStatus, VendorId};
use medex_core::permissions::{self, Actor, VendorFields};
use medex_core::reports::day_bounds;
use medex_core::service::{NewVendor, VendorPatch};
use medex_core::store::OrderQuery;
use serde::Deserialize;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth, ClientIp, OptionalJson};
use crate::page::{listed, page};
use crate::routes::dates::{parse_instant, parse_offset};
use crate::schemas;
use crate::views::{
    ExportRequest, OrderDoc, OrderStatusDoc, OrderView, PatchVendorRequest, RegisterVendorRequest,
    VendorView,
};

/// A page of pharmacies.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VendorListQuery {
    /// Page length, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The id of the last pharmacy of the previous page.
    cursor: Option<Uuid>,
}

/// Filters and page of a pharmacy's orders.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct VendorOrdersQuery {
    /// Only orders in this status.
    #[param(value_type = Option<OrderStatusDoc>)]
    status: Option<OrderStatus>,
    /// Only orders placed on this local date, `YYYY-MM-DD`.
    date: Option<chrono::NaiveDate>,
    /// UTC offset of `date` (default `Z`).
    #[param(schema_with = schemas::utc_offset)]
    tz: Option<String>,
    /// Page length, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The id of the last order of the previous page.
    cursor: Option<Uuid>,
}

fn view_for(actor: &Actor, vendor: &medex_core::model::Vendor) -> VendorView {
    match permissions::vendor_fields(actor, vendor) {
        VendorFields::Full => VendorView::full(vendor),
        VendorFields::Public => VendorView::public(vendor),
    }
}

/// Registers a pharmacy with its owner account (anyone may).
#[utoipa::path(post, path = "/api/vendors/register", tag = "vendors",
    request_body = RegisterVendorRequest,
    responses(
        (status = 201, description = "Created; `vendor_id` and `user_id` keys", body = VendorView),
        (status = 409, description = "E-mail taken", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address this hour", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn register_vendor(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterVendorRequest>,
) -> ApiResult<(StatusCode, Json<VendorView>)> {
    state
        .throttle
        .registration(ip)
        .await
        .map_err(ApiError::too_many_attempts)?;
    let (vendor, _user) = state
        .medex
        .register_vendor(NewVendor {
            email: body.email,
            password: body.password,
            full_name: body.full_name,
            business_name: body.business_name,
            phone: body.phone,
            address: body.address,
            latitude: body.latitude,
            longitude: body.longitude,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(VendorView::full(&vendor))))
}

/// Pharmacies: active ones with public fields; admins see all with every field.
#[utoipa::path(get, path = "/api/vendors", tag = "vendors", security(("bearer" = [])),
    params(VendorListQuery),
    responses(
        (status = 200, description = "One page", body = [VendorView]),
    ))]
pub(crate) async fn list_vendors(
    State(state): State<AppState>,
    Auth(actor): Auth,
    uri: Uri,
    ApiQuery(q): ApiQuery<VendorListQuery>,
) -> ApiResult<Response> {
    let page = page(q.limit, q.cursor, VendorId::from_uuid)?;
    let vendors = state.medex.list_vendors(&actor, page).await?;
    Ok(listed(&state, &uri, page.limit, &vendors, |v| {
        view_for(&actor, v)
    }))
}

/// One pharmacy.
#[utoipa::path(get, path = "/api/vendors/{id}", tag = "vendors", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id")),
    responses(
        (status = 200, description = "The pharmacy", body = VendorView),
        (status = 404, description = "No such (active) pharmacy", body = ErrorBody),
    ))]
pub(crate) async fn get_vendor(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<VendorId>,
) -> ApiResult<Json<VendorView>> {
    let vendor = state.medex.get_vendor(&actor, id).await?;
    Ok(Json(view_for(&actor, &vendor)))
}

/// Changes a pharmacy's profile, proof policy or webhook secret (write-only); only admins change
/// `is_active`.
#[utoipa::path(patch, path = "/api/vendors/{id}", tag = "vendors", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id")),
    request_body = PatchVendorRequest,
    responses(
        (status = 200, description = "The pharmacy", body = VendorView),
        (status = 403, description = "Not allowed for your role", body = ErrorBody),
        (status = 404, description = "Not your pharmacy", body = ErrorBody),
        (status = 409, description = "Changed by another request meanwhile (`concurrent_update`); read and retry", body = ErrorBody),
    ))]
pub(crate) async fn patch_vendor(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<VendorId>,
    ApiJson(body): ApiJson<PatchVendorRequest>,
) -> ApiResult<Json<VendorView>> {
    let location = match (body.latitude, body.longitude) {
        (Some(lat), Some(lon)) => Some((lat, lon)),
        (None, None) => None,
        _ => {
            return Err(ApiError::invalid(
                "latitude",
                "latitude and longitude go together",
            ));
        }
    };
    let patch = VendorPatch {
        business_name: body.business_name,
        phone: body.phone,
        address: body.address,
        location,
        require_proof_photo: body.require_proof_photo,
        require_signature: body.require_signature,
        require_handover_code: body.require_handover_code,
        delivery_radius_km: body.delivery_radius_km,
        max_active_orders: body.max_active_orders,
        auto_assign: body.auto_assign,
        woocommerce_webhook_secret: body.woocommerce_webhook_secret,
        is_active: body.is_active,
    };
    let vendor = state.medex.update_vendor(&actor, id, patch).await?;
    Ok(Json(view_for(&actor, &vendor)))
}

/// A pharmacy's orders, newest first.
#[utoipa::path(get, path = "/api/vendors/{id}/orders", tag = "vendors", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id"), VendorOrdersQuery),
    responses(
        (status = 200, description = "One page", body = [OrderDoc]),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "Not your pharmacy", body = ErrorBody),
    ))]
pub(crate) async fn vendor_orders(
    State(state): State<AppState>,
    Auth(actor): Auth,
    uri: Uri,
    ApiPath(id): ApiPath<VendorId>,
    ApiQuery(q): ApiQuery<VendorOrdersQuery>,
) -> ApiResult<Response> {
    let page = page(q.limit, q.cursor, OrderId::from_uuid)?;
    let offset = parse_offset(q.tz.as_deref())?;
    let (created_from, created_before) = match q.date {
        Some(date) => {
            let (start, end) = day_bounds(date, offset);
            (Some(start), Some(end))
        }
        None => (None, None),
    };
    let query = OrderQuery {
        status: q.status,
        created_from,
        created_before,
        ..Default::default()
    };
    let orders = state.medex.vendor_orders(&actor, id, query, page).await?;
    Ok(listed(&state, &uri, page.limit, &orders, |o| {
        OrderView::of(&actor, o)
    }))
}

/// The pharmacy's orders placed in `[from, to)` as a CSV download. `from` and `to` come as query
/// parameters or as a JSON body; dates (`YYYY-MM-DD`) or RFC 3339 times; a date as `to` includes
/// that day. Defaults: the last 30 days.
#[utoipa::path(post, path = "/api/vendors/{id}/export-csv", tag = "vendors", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id"), ExportRequest),
    request_body(content = Option<ExportRequest>, description = "Optional; overrides the query"),
    responses(
        (status = 200, description = "CSV download", content_type = "text/csv", body = String,
            headers(("Content-Disposition" = String, description = "attachment; filename=..."))),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "Not your pharmacy", body = ErrorBody),
        (status = 422, description = "A time that does not parse, or `from` not before `to` or more than 366 days before it", body = ErrorBody),
    ))]
pub(crate) async fn export_csv(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<VendorId>,
    ApiQuery(query): ApiQuery<ExportRequest>,
    OptionalJson(body): OptionalJson<ExportRequest>,
) -> ApiResult<Response> {
    let body = body.unwrap_or_default();
    let to = match body.to.or(query.to) {
        Some(raw) => parse_instant("to", &raw, true)?,
        None => state.medex.now(),
    };
    let from = match body.from.or(query.from) {
        Some(raw) => parse_instant("from", &raw, false)?,
        None => to
            .checked_sub_signed(Duration::days(30))
            .unwrap_or(DateTime::<Utc>::MIN_UTC),
    };
    let csv = state.medex.export_orders_csv(&actor, id, from, to).await?;
    let filename = format!(
        "orders-{}-{}.csv",
        from.format("%Y%m%d"),
        to.format("%Y%m%d")
    );
    Ok(csv_download(csv, &filename))
}

/// A CSV answer offered as a download.
pub(crate) fn csv_download(csv: String, filename: &str) -> Response {
    let mut response = csv.into_response();
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/csv; charset=utf-8"),
    );
    if let Ok(value) = HeaderValue::try_from(format!("attachment; filename=\"{filename}\"")) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    response
}
