//! `/api/reports/*`: a pharmacy's daily report and its drivers' statistics, as JSON or CSV.

use axum::Json;
use axum::extract::State;
use axum::response::{IntoResponse, Response};
use chrono::NaiveDate;
use medex_core::model::VendorId;
use medex_core::reports::{drivers_csv, vendor_daily_csv};
use serde::Deserialize;
use utoipa::IntoParams;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath, ApiQuery, Auth};
use crate::routes::dates::{DateRange, Format, parse_offset};
use crate::routes::vendors::csv_download;
use crate::views::{DailyReportDoc, DriverFiguresDoc};

/// Which day, in which offset, in which format.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct DailyQuery {
    /// `YYYY-MM-DD` (default: today in `tz`).
    date: Option<NaiveDate>,
    /// UTC offset, `+02:00` (default `Z`).
    #[param(schema_with = crate::schemas::utc_offset)]
    tz: Option<String>,
    /// `json` (default) or `csv`.
    #[param(inline)]
    format: Option<Format>,
}

/// A pharmacy's daily report: orders created, delivered, cancelled, rejected, revenue, per-driver
/// figures.
#[utoipa::path(get, path = "/api/reports/vendors/{id}", tag = "reports", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id"), DailyQuery),
    responses(
        (status = 200, description = "The report (JSON, or CSV with format=csv)",
            content((DailyReportDoc = "application/json"), (String = "text/csv"))),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "Not your pharmacy", body = ErrorBody),
        (status = 422, description = "Bad date or offset", body = ErrorBody),
    ))]
pub(crate) async fn vendor_daily(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<VendorId>,
    ApiQuery(q): ApiQuery<DailyQuery>,
) -> ApiResult<Response> {
    let offset = parse_offset(q.tz.as_deref())?;
    let date = q
        .date
        .unwrap_or_else(|| state.medex.now().with_timezone(&offset).date_naive());
    let report = state
        .medex
        .vendor_daily_report(&actor, id, date, offset)
        .await?;
    Ok(match q.format.unwrap_or_default() {
        Format::Json => Json(report).into_response(),
        Format::Csv => csv_download(vendor_daily_csv(&report), &format!("report-{date}.csv")),
    })
}

/// Per-driver statistics of a pharmacy's fleet over local dates `from..=to` (default: the last
/// 7 days).
#[utoipa::path(get, path = "/api/reports/vendors/{id}/drivers", tag = "reports", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id"), DateRange),
    responses(
        (status = 200, description = "Figures per driver (JSON, or CSV with format=csv)",
            content(([DriverFiguresDoc] = "application/json"), (String = "text/csv"))),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "Not your pharmacy", body = ErrorBody),
        (status = 422, description = "Bad dates or offset", body = ErrorBody),
    ))]
pub(crate) async fn driver_statistics(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<VendorId>,
    ApiQuery(q): ApiQuery<DateRange>,
) -> ApiResult<Response> {
    let offset = parse_offset(q.tz.as_deref())?;
    let (from, to) = q.resolve(state.medex.now(), offset, 6)?;
    let figures = state
        .medex
        .driver_statistics(&actor, id, from, to, offset)
        .await?;
    Ok(match q.format.unwrap_or_default() {
        Format::Json => Json(figures).into_response(),
        Format::Csv => csv_download(
            drivers_csv(&format!("{from}..{to}"), &figures),
            &format!("drivers-{from}-{to}.csv"),
        ),
    })
}
