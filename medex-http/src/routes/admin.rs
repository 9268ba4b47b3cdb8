//! `/api/admin/*`: accounts and the system configuration (admins only).

use axum::Json;
use axum::extract::State;
use axum::http::Uri;
use axum::response::Response;
use medex_core::config::SystemConfig;
use medex_core::model::{Role, UserId};
use medex_core::store::UserQuery;
use serde::Deserialize;
use serde_json::Value;
use utoipa::IntoParams;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::page::{listed, page};
use crate::views::{ConfigDoc, ConfigPatchDoc, PatchUserRequest, RoleDoc, UserView};

/// Filters and page of `GET /api/admin/users`.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct UserListQuery {
    /// Only accounts with this role.
    #[param(value_type = Option<RoleDoc>)]
    role: Option<Role>,
    /// Only active (or inactive) accounts.
    is_active: Option<bool>,
    /// Page length, 1 to 200 (default 50).
    #[param(minimum = 1, maximum = 200)]
    limit: Option<u32>,
    /// The id of the last account of the previous page.
    cursor: Option<Uuid>,
}

/// All accounts, newest first.
#[utoipa::path(get, path = "/api/admin/users", tag = "admin", security(("bearer" = [])),
    params(UserListQuery),
    responses(
        (status = 200, description = "One page", body = [UserView]),
        (status = 403, description = "Admins only", body = ErrorBody),
    ))]
pub(crate) async fn list_users(
    State(state): State<AppState>,
    Auth(actor): Auth,
    uri: Uri,
    ApiQuery(q): ApiQuery<UserListQuery>,
) -> ApiResult<Response> {
    let page = page(q.limit, q.cursor, UserId::from_uuid)?;
    let query = UserQuery {
        role: q.role,
        is_active: q.is_active,
    };
    let users = state.medex.list_users(&actor, query, page).await?;
    Ok(listed(&state, &uri, page.limit, &users, UserView::from))
}

/// Activates or deactivates an account; a deactivated account's tokens stop working at once.
#[utoipa::path(patch, path = "/api/admin/users/{id}", tag = "admin", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "User id")),
    request_body = PatchUserRequest,
    responses(
        (status = 200, description = "The account", body = UserView),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 404, description = "No such account", body = ErrorBody),
        (status = 409, description = "Changed by another request meanwhile (`concurrent_update`); read and retry", body = ErrorBody),
        (status = 422, description = "An admin cannot deactivate itself", body = ErrorBody),
    ))]
pub(crate) async fn patch_user(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<UserId>,
    ApiJson(body): ApiJson<PatchUserRequest>,
) -> ApiResult<Json<UserView>> {
    let user = state
        .medex
        .set_user_active(&actor, id, body.is_active)
        .await?;
    Ok(Json(UserView::from(&user)))
}

/// The system configuration in force.
#[utoipa::path(get, path = "/api/admin/config", tag = "admin", security(("bearer" = [])),
    responses(
        (status = 200, description = "The configuration", body = ConfigDoc),
        (status = 403, description = "Admins only", body = ErrorBody),
    ))]
pub(crate) async fn get_config(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<Json<SystemConfig>> {
    Ok(Json((*state.medex.system_config(&actor)?).clone()))
}

/// Changes the configuration at run time: the body (any subset, nested objects merged) is merged
/// into the configuration in force, validated and persisted.
#[utoipa::path(patch, path = "/api/admin/config", tag = "admin", security(("bearer" = [])),
    request_body = ConfigPatchDoc,
    responses(
        (status = 200, description = "The new configuration", body = ConfigDoc),
        (status = 403, description = "Admins only", body = ErrorBody),
        (status = 409, description = "Changed by someone else meanwhile; read and retry", body = ErrorBody),
        (status = 422, description = "Values out of range, or a body that is not an object", body = ErrorBody),
    ))]
pub(crate) async fn patch_config(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(patch): ApiJson<Value>,
) -> ApiResult<Json<SystemConfig>> {
    let current = state.medex.system_config(&actor)?;
    if !patch.is_object() {
        return Err(ApiError::invalid("body", "must be a JSON object"));
    }
    let mut merged = serde_json::to_value(&*current)
        .map_err(|_| ApiError::invalid("body", "cannot be merged"))?;
    merge(&mut merged, patch);
    let config: SystemConfig =
        crate::extract::parse_json(merged.to_string().as_bytes(), state.config.max_json_depth)?;
    // Saved only if nobody changed the configuration since `current` was read: concurrent
    // patches conflict (409) instead of undoing each other.
    Ok(Json(
        (*state
            .medex
            .update_system_config_from(&actor, &current, config)
            .await?)
            .clone(),
    ))
}

/// JSON merge patch (RFC 7396) without deletions: objects merge key by key, other values replace.
fn merge(target: &mut Value, patch: Value) {
    match (target, patch) {
        (Value::Object(target), Value::Object(patch)) => {
            for (key, value) in patch {
                match target.get_mut(&key) {
                    Some(existing) => merge(existing, value),
                    None => {
                        target.insert(key, value);
                    }
                }
            }
        }
        (target, patch) => *target = patch,
    }
}

#[cfg(test)]
mod tests {
    use serde_json::json;

    use super::*;

    #[test]
    fn merging_keeps_what_the_patch_leaves_out() {
        let mut config = json!({"tariff": {"base_fee": 0.0, "per_km": 2.5}, "road_factor": 1.3});
        merge(&mut config, json!({"tariff": {"per_km": 3.0}}));
        assert_eq!(
            config,
            json!({"tariff": {"base_fee": 0.0, "per_km": 3.0}, "road_factor": 1.3})
        );
    }
}
