//! `/api/vendors/{id}/api-keys` and `/api/vendors/{id}/webhooks`: a pharmacy's API keys, its
//! outgoing webhook endpoints and their delivery log.

use axum::Json;
use axum::extract::State;
use axum::http::{StatusCode, Uri};
use axum::response::Response;
use chrono::{DateTime, Utc};
use medex_core::integrations::{ApiKey, Delivery, DeliveryAttempt, DeliveryState, Webhook};
use medex_core::model::{ApiKeyId, DeliveryId, VendorId, WebhookId};
use medex_core::service::NewWebhook;
use serde::{Deserialize, Serialize};
use utoipa::ToSchema;
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiResult, ErrorBody};
use crate::extract::{ApiJson, ApiPath, ApiQuery, Auth};
use crate::page::{PageQuery, listed, page};

/// A new API key.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewApiKeyRequest {
    /// A label, 1 to 100 characters.
    #[schema(schema_with = crate::schemas::text_100)]
    pub(crate) name: String,
}

/// A key as made: `key` is shown this once and never again.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct CreatedApiKeyView {
    id: Uuid,
    name: String,
    /// `mdx_…`: use as `Authorization: Bearer <key>`.
    key: String,
    /// The first characters of the key, as listings show them.
    prefix: String,
    created_at: DateTime<Utc>,
}

/// A live API key (never the key itself).
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct ApiKeyView {
    id: Uuid,
    name: String,
    prefix: String,
    created_at: DateTime<Utc>,
    /// When it last authenticated a request (to the minute).
    last_used_at: Option<DateTime<Utc>>,
}

impl ApiKeyView {
    fn of(k: &ApiKey) -> Self {
        Self {
            id: *k.id.as_uuid(),
            name: k.name.clone(),
            prefix: k.prefix.clone(),
            created_at: k.created_at,
            last_used_at: k.last_used_at,
        }
    }
}

/// A new webhook endpoint.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct NewWebhookRequest {
    #[schema(schema_with = crate::schemas::webhook_url)]
    pub(crate) url: String,
    #[schema(schema_with = crate::schemas::webhook_events)]
    pub(crate) events: Vec<String>,
}

/// A webhook endpoint; `secret` only in the answers that make or rotate it.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct WebhookView {
    id: Uuid,
    url: String,
    events: Vec<String>,
    created_at: DateTime<Utc>,
    secret_rotated_at: Option<DateTime<Utc>>,
    /// The signing secret of `X-MedEx-Signature`: shown once.
    #[serde(skip_serializing_if = "Option::is_none")]
    secret: Option<String>,
}

impl WebhookView {
    fn of(w: &Webhook, with_secret: bool) -> Self {
        Self {
            id: *w.id.as_uuid(),
            url: w.url.clone(),
            events: if w.all {
                vec!["*".to_owned()]
            } else {
                w.events.iter().map(|e| e.as_str().to_owned()).collect()
            },
            created_at: w.created_at,
            secret_rotated_at: w.secret_rotated_at,
            secret: with_secret.then(|| w.secret.clone()),
        }
    }
}

/// One attempt of a delivery.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct AttemptView {
    at: DateTime<Utc>,
    /// The endpoint's HTTP status, when it answered.
    status: Option<u16>,
    /// Why it did not succeed.
    error: Option<String>,
    /// The destination resolved to a refused (private) address: nothing was sent.
    blocked: bool,
    duration_ms: u64,
}

impl AttemptView {
    fn of(a: &DeliveryAttempt) -> Self {
        Self {
            at: a.at,
            status: a.status,
            error: a.error.clone(),
            blocked: a.blocked,
            duration_ms: a.duration_ms,
        }
    }
}

/// One event for one endpoint, with its attempts.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct DeliveryView {
    /// Sent as `X-MedEx-Delivery`.
    id: Uuid,
    /// The body's `id`.
    event_id: Uuid,
    /// The event type.
    event: String,
    order_id: Uuid,
    /// `pending`, `delivered` or `failed`.
    state: String,
    attempts: u32,
    created_at: DateTime<Utc>,
    /// When the next attempt is due (pending deliveries).
    next_attempt_at: Option<DateTime<Utc>>,
    /// The newest attempts, oldest first.
    log: Vec<AttemptView>,
}

impl DeliveryView {
    fn of(d: &Delivery) -> Self {
        Self {
            id: *d.id.as_uuid(),
            event_id: d.event_id,
            event: d.event.as_str().to_owned(),
            order_id: *d.order_id.as_uuid(),
            state: match d.state {
                DeliveryState::Pending => "pending",
                DeliveryState::Delivered => "delivered",
                DeliveryState::Failed => "failed",
            }
            .to_owned(),
            attempts: d.attempts,
            created_at: d.created_at,
            next_attempt_at: (d.state == DeliveryState::Pending).then_some(d.next_attempt_at),
            log: d.log.iter().map(AttemptView::of).collect(),
        }
    }
}

/// Makes an API key that acts as the pharmacy's account; the key is shown once.
#[utoipa::path(post, path = "/api/vendors/{id}/api-keys", tag = "integrations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id")),
    request_body = NewApiKeyRequest,
    responses(
        (status = 201, description = "Created; `key` is shown this once", body = CreatedApiKeyView),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "Not your pharmacy", body = ErrorBody),
        (status = 409, description = "`limit_reached`: the pharmacy holds 50 live keys; revoke one first", body = ErrorBody),
        (status = 422, description = "Name empty, too long or with control characters", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn create_api_key(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<VendorId>,
    ApiJson(body): ApiJson<NewApiKeyRequest>,
) -> ApiResult<(StatusCode, Json<CreatedApiKeyView>)> {
    let made = state.medex.create_api_key(&actor, id, &body.name).await?;
    let k = made.record;
    Ok((
        StatusCode::CREATED,
        Json(CreatedApiKeyView {
            id: *k.id.as_uuid(),
            name: k.name,
            key: made.key,
            prefix: k.prefix,
            created_at: k.created_at,
        }),
    ))
}

/// The pharmacy's live API keys (never the keys themselves), newest first.
#[utoipa::path(get, path = "/api/vendors/{id}/api-keys", tag = "integrations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id"), PageQuery),
    responses(
        (status = 200, description = "One page", body = [ApiKeyView]),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "Not your pharmacy", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn list_api_keys(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<VendorId>,
    uri: Uri,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let page = page(q.limit, q.cursor, ApiKeyId::from_uuid)?;
    let keys = state.medex.api_keys(&actor, id, page).await?;
    Ok(listed(&state, &uri, page.limit, &keys, ApiKeyView::of))
}

/// Revokes an API key at once.
#[utoipa::path(delete, path = "/api/vendors/{id}/api-keys/{key_id}", tag = "integrations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id"), ("key_id" = Uuid, Path, description = "API key id")),
    responses(
        (status = 204, description = "Revoked"),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "No such live key of your pharmacy", body = ErrorBody),
        (status = 409, description = "Changed concurrently; retry", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn revoke_api_key(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath((id, key)): ApiPath<(VendorId, ApiKeyId)>,
) -> ApiResult<StatusCode> {
    state.medex.revoke_api_key(&actor, id, key).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Registers an outgoing webhook endpoint; its signing secret is shown once.
#[utoipa::path(post, path = "/api/vendors/{id}/webhooks", tag = "integrations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id")),
    request_body = NewWebhookRequest,
    responses(
        (status = 201, description = "Created; `secret` is shown this once", body = WebhookView),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "Not your pharmacy", body = ErrorBody),
        (status = 409, description = "`limit_reached`: the pharmacy has 20 endpoints; remove one first", body = ErrorBody),
        (status = 422, description = "URL not https, private or malformed; unknown events", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn create_webhook(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<VendorId>,
    ApiJson(body): ApiJson<NewWebhookRequest>,
) -> ApiResult<(StatusCode, Json<WebhookView>)> {
    let webhook = state
        .medex
        .create_webhook(
            &actor,
            id,
            NewWebhook {
                url: body.url,
                events: body.events,
            },
        )
        .await?;
    Ok((StatusCode::CREATED, Json(WebhookView::of(&webhook, true))))
}

/// The pharmacy's webhook endpoints (without secrets), newest first.
#[utoipa::path(get, path = "/api/vendors/{id}/webhooks", tag = "integrations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id")),
    responses(
        (status = 200, description = "Every endpoint (at most 20)", body = [WebhookView]),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "Not your pharmacy", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn list_webhooks(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath(id): ApiPath<VendorId>,
) -> ApiResult<Json<Vec<WebhookView>>> {
    let webhooks = state.medex.webhooks(&actor, id).await?;
    Ok(Json(
        webhooks.iter().map(|w| WebhookView::of(w, false)).collect(),
    ))
}

/// Removes a webhook endpoint: nothing more is sent to it.
#[utoipa::path(delete, path = "/api/vendors/{id}/webhooks/{webhook_id}", tag = "integrations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id"), ("webhook_id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 204, description = "Removed"),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "No such endpoint of your pharmacy", body = ErrorBody),
        (status = 409, description = "Changed concurrently; retry", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn delete_webhook(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath((id, webhook)): ApiPath<(VendorId, WebhookId)>,
) -> ApiResult<StatusCode> {
    state.medex.delete_webhook(&actor, id, webhook).await?;
    Ok(StatusCode::NO_CONTENT)
}

/// Gives an endpoint a new signing secret, shown once; deliveries sign with it from now on.
#[utoipa::path(post, path = "/api/vendors/{id}/webhooks/{webhook_id}/rotate-secret", tag = "integrations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id"), ("webhook_id" = Uuid, Path, description = "Webhook id")),
    responses(
        (status = 200, description = "The endpoint with its new `secret`, shown this once", body = WebhookView),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "No such endpoint of your pharmacy", body = ErrorBody),
        (status = 409, description = "Changed concurrently; retry", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn rotate_webhook_secret(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath((id, webhook)): ApiPath<(VendorId, WebhookId)>,
) -> ApiResult<Json<WebhookView>> {
    let webhook = state
        .medex
        .rotate_webhook_secret(&actor, id, webhook)
        .await?;
    Ok(Json(WebhookView::of(&webhook, true)))
}

/// An endpoint's deliveries, newest first: state, attempts, answers, errors, blocked sends.
#[utoipa::path(get, path = "/api/vendors/{id}/webhooks/{webhook_id}/deliveries", tag = "integrations", security(("bearer" = [])),
    params(("id" = Uuid, Path, description = "Vendor id"), ("webhook_id" = Uuid, Path, description = "Webhook id"), PageQuery),
    responses(
        (status = 200, description = "One page", body = [DeliveryView]),
        (status = 403, description = "Only the pharmacy and admins", body = ErrorBody),
        (status = 404, description = "No such endpoint of your pharmacy", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn list_deliveries(
    State(state): State<AppState>,
    Auth(actor): Auth,
    ApiPath((id, webhook)): ApiPath<(VendorId, WebhookId)>,
    uri: Uri,
    ApiQuery(q): ApiQuery<PageQuery>,
) -> ApiResult<Response> {
    let page = page(q.limit, q.cursor, DeliveryId::from_uuid)?;
    let deliveries = state
        .medex
        .webhook_deliveries(&actor, id, webhook, page)
        .await?;
    Ok(listed(
        &state,
        &uri,
        page.limit,
        &deliveries,
        DeliveryView::of,
    ))
}
