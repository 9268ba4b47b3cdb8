//! `GET /api/orders/{id}/custody` and `GET /api/custody/keys`: an order's signed chain of custody,
//! checked, and the public keys anyone can check it with offline.

use axum::Json;
use axum::extract::State;
use medex_core::custody::{CustodyRecord, PublishedKey};
use medex_core::model::OrderId;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiPath, Auth};
use crate::views::{CustodyKeyDoc, CustodyRecordDoc};

/// An order's chain of custody, for the parties of the order: its entries as stored, the head
/// hash, the stored signature and key id, and whether every hash, every link and the signature
/// check out (`verified`). A record edited in storage answers `verified: false`.
#[utoipa::path(get, path = "/api/orders/{id}/custody", tag = "custody", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Order id")),
    responses(
        (status = 200, description = "The record and what checking it found", body = CustodyRecordDoc),
        (status = 401, description = "Not signed in", body = ErrorBody),
        (status = 404, description = "No such order, or not yours", body = ErrorBody),
        (status = 422, description = "Not a valid id", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn custody_record(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<OrderId>,
) -> ApiResult<Json<CustodyRecord>> {
    Ok(Json(state.medex.custody_record(&actor, id).await?))
}

/// The server's custody keys, current first, then former ones whose signatures still count:
/// `{key_id, public_key}`, the key as base64 of its raw 32 Ed25519 bytes. Anyone may read them.
#[utoipa::path(get, path = "/api/custody/keys", tag = "custody",
    responses((status = 200, description = "The public custody keys", body = [CustodyKeyDoc])))]
pub(crate) async fn custody_keys(State(state): State<AppState>) -> Json<Vec<PublishedKey>> {
    Json(state.medex.custody_keys())
}
