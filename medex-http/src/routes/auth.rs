//! `/api/auth/*`: register, login (throttled), refresh, logout, me.

use axum::Json;
use axum::extract::State;
use axum::http::StatusCode;
use medex_core::error::Error;
use medex_core::model::Role;
use medex_core::service::NewAccount;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiJson, Auth, ClientIp};
use crate::throttle::Verdict;
use crate::views::{
    ChangePasswordRequest, LoginRequest, RefreshRequest, RegisterRequest, SessionView, UserView,
};

/// Creates a customer account and signs it in. Only the `user` role registers itself.
#[utoipa::path(post, path = "/api/auth/register", tag = "auth",
    request_body = RegisterRequest,
    responses(
        (status = 201, description = "Account created, signed in", body = SessionView),
        (status = 403, description = "A role other than user was asked for", body = ErrorBody),
        (status = 409, description = "E-mail taken", body = ErrorBody),
        (status = 429, description = "Too many registrations from this address this hour", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn register(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<RegisterRequest>,
) -> ApiResult<(StatusCode, Json<SessionView>)> {
    state
        .throttle
        .registration(ip)
        .await
        .map_err(ApiError::too_many_attempts)?;
    if let Some(role) = body.role.as_deref() {
        match role.parse::<Role>() {
            Ok(Role::User) => {}
            Ok(_) => {
                return Err(ApiError::new(
                    StatusCode::FORBIDDEN,
                    "forbidden",
                    "only customer accounts (role user) can register themselves",
                ));
            }
            Err(_) => return Err(ApiError::invalid("role", "unknown role")),
        }
    }
    let session = state
        .medex
        .register_customer(NewAccount {
            email: body.email,
            password: body.password,
            full_name: body.full_name,
            phone: body.phone,
        })
        .await?;
    Ok((StatusCode::CREATED, Json(session.into())))
}

/// Signs in. Repeated failures for one account from one address, or from one address for any
/// accounts, refuse that address for a while (429 with `Retry-After`); failures for one account
/// from anywhere slow its logins down without locking its owner out.
#[utoipa::path(post, path = "/api/auth/login", tag = "auth",
    request_body = LoginRequest,
    responses(
        (status = 200, description = "Signed in", body = SessionView),
        (status = 401, description = "Wrong e-mail or password", body = ErrorBody),
        (status = 429, description = "Too many failures", body = ErrorBody,
            headers(("Retry-After" = u64, description = "Seconds to wait"))),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn login(
    State(state): State<AppState>,
    ClientIp(ip): ClientIp,
    ApiJson(body): ApiJson<LoginRequest>,
) -> ApiResult<Json<SessionView>> {
    match state.throttle.before_login(&body.email, ip).await {
        Verdict::Refuse(retry_after) => return Err(ApiError::too_many_attempts(retry_after)),
        Verdict::Proceed(delay) if !delay.is_zero() => tokio::time::sleep(delay).await,
        Verdict::Proceed(_) => {}
    }
    match state.medex.login(&body.email, &body.password).await {
        Ok(session) => {
            state.throttle.login_succeeded(&body.email, ip).await;
            Ok(Json(session.into()))
        }
        Err(e @ Error::Unauthenticated(_)) => {
            state.throttle.login_failed(&body.email, ip).await;
            Err(e.into())
        }
        Err(e) => Err(e.into()),
    }
}

/// Trades a refresh token for a new pair; the old refresh token stops working.
#[utoipa::path(post, path = "/api/auth/refresh", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 200, description = "New tokens", body = SessionView),
        (status = 401, description = "Invalid, used or revoked refresh token (one used twice ends its session)", body = ErrorBody),
        (status = 409, description = "The account changed meanwhile (`concurrent_update`); retry", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn refresh(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<Json<SessionView>> {
    Ok(Json(state.medex.refresh(&body.refresh_token).await?.into()))
}

/// Ends every session of the caller's account: all its tokens stop working at once, and its
/// live connections close.
#[utoipa::path(post, path = "/api/auth/logout-all", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 204, description = "Every session ended"),
        (status = 409, description = "The account changed meanwhile (`concurrent_update`); retry", body = ErrorBody),
    ))]
pub(crate) async fn logout_all(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<StatusCode> {
    state.medex.logout_everywhere(&actor).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Changes the caller's password, given the current one. Every token issued before stops
/// working; the answer is a new session.
#[utoipa::path(post, path = "/api/auth/password", tag = "auth", security(("bearer" = [])),
    request_body = ChangePasswordRequest,
    responses(
        (status = 200, description = "Changed; a new session", body = SessionView),
        (status = 409, description = "The account changed meanwhile (`concurrent_update`); retry", body = ErrorBody),
        (status = 422, description = "The current password is wrong, or the new one is not 8 to 128 characters", body = ErrorBody),
    ))]
pub(crate) async fn change_password(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiJson(body): ApiJson<ChangePasswordRequest>,
) -> ApiResult<Json<SessionView>> {
    let session = state
        .medex
        .change_password(&actor, &body.current_password, &body.new_password)
        .await?;
    Ok(Json(session.into()))
}

/// Ends the session of a refresh token: it and the access tokens of its session stop working at
/// once.
#[utoipa::path(post, path = "/api/auth/logout", tag = "auth",
    request_body = RefreshRequest,
    responses(
        (status = 204, description = "Revoked"),
        (status = 401, description = "Not a refresh token", body = ErrorBody),
        (status = 409, description = "The account changed meanwhile (`concurrent_update`); retry", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn logout(
    State(state): State<AppState>,
    ApiJson(body): ApiJson<RefreshRequest>,
) -> ApiResult<StatusCode> {
    state.medex.logout(&body.refresh_token).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// The caller's own account, with `vendor_id` / `driver_id` where linked.
#[utoipa::path(get, path = "/api/auth/me", tag = "auth", security(("bearer" = [])),
    responses(
        (status = 200, description = "The account", body = UserView),
    ))]
pub(crate) async fn me(
    State(state): State<AppState>,
    Auth(actor): Auth,
) -> ApiResult<Json<UserView>> {
    Ok(Json(UserView::from(&state.medex.me(&actor).await?)))
}
