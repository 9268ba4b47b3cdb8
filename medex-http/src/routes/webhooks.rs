//! `POST /api/webhooks/wc/order-created?vendor_id=…`: WooCommerce's "order created" webhook.
//!
//! WooCommerce signs the raw body: `X-WC-Webhook-Signature` = base64(HMAC-SHA256(secret, body)).
//! The signature is checked (in constant time) before the body is parsed. When a webhook is
//! saved, WooCommerce first sends an unsigned ping (form body `webhook_id=N`) and keeps the
//! webhook only if it is answered with 200.

use axum::Json;
use axum::body::Bytes;
use axum::extract::{Request, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use chrono::{FixedOffset, NaiveDate, NaiveDateTime, NaiveTime};
use hmac::{Hmac, Mac};
use medex_core::model::{Coordinates, VendorId};
use medex_core::permissions::OrderFields;
use medex_core::service::{ExternalOrder, NewItem, Schedule};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::Sha256;
use utoipa::{IntoParams, ToSchema};
use uuid::Uuid;

use crate::AppState;
use crate::error::{ApiError, ApiResult, ErrorBody};
use crate::extract::{ApiQuery, body_bytes, is_json_content_type, parse_json};
use crate::views::{OrderDoc, OrderView};

/// Which pharmacy the webhook belongs to.
#[derive(Debug, Deserialize, IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct WebhookQuery {
    /// The pharmacy whose shop sends the webhook.
    vendor_id: Uuid,
}

/// The answer to WooCommerce's ping.
#[derive(Debug, Serialize, ToSchema)]
pub(crate) struct PingView {
    /// Always `ok`.
    #[schema(value_type = String, pattern = "^ok$")]
    status: &'static str,
}

/// A 200 answer: the order taken in before (a replay), or the ping's answer.
#[derive(ToSchema)]
#[allow(dead_code)]
#[serde(untagged)]
pub(crate) enum ReplayOrPing {
    /// The order, as first taken in.
    Replay(Box<OrderDoc>),
    /// `{"status": "ok"}`.
    Ping(PingView),
}

/// The ping WooCommerce sends when a webhook is saved.
#[derive(ToSchema)]
#[allow(dead_code)]
pub(crate) struct WcPing {
    /// The webhook's id in the shop. Only the key is read: any value will do.
    #[schema(value_type = Value)]
    webhook_id: (),
}

/// A WooCommerce order (the fields MedEx reads; everything else is ignored), as in the
/// WooCommerce REST API's order properties. The recipient's name and address come from
/// `shipping`, else `billing`; both must be found.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct WcOrder {
    /// The shop's order id.
    id: u64,
    #[serde(default)]
    billing: WcAddress,
    #[serde(default)]
    shipping: WcAddress,
    /// 1 to 100 lines.
    #[serde(default)]
    #[schema(required = true, min_items = 1, max_items = 100)]
    line_items: Vec<WcLineItem>,
    #[serde(default)]
    customer_note: Option<String>,
    /// `_shipping_latitude` / `_shipping_longitude` give the destination when present;
    /// `_delivery_date` (`YYYY-MM-DD`, the shop's day) with `_delivery_time_slot`
    /// (`HH:MM - HH:MM`) the delivery window.
    #[serde(default)]
    meta_data: Vec<WcMeta>,
    /// When placed, in the shop's time zone (`YYYY-MM-DDTHH:MM:SS`).
    #[serde(default)]
    date_created: Option<String>,
    /// The same in UTC: the two tell the shop's offset from UTC.
    #[serde(default)]
    date_created_gmt: Option<String>,
}

/// A billing or shipping address.
#[derive(Debug, Default, Deserialize, ToSchema)]
#[serde(default)]
pub(crate) struct WcAddress {
    first_name: Option<String>,
    last_name: Option<String>,
    company: Option<String>,
    address_1: Option<String>,
    address_2: Option<String>,
    city: Option<String>,
    state: Option<String>,
    postcode: Option<String>,
    country: Option<String>,
    phone: Option<String>,
}

/// One product line.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct WcLineItem {
    #[schema(schema_with = crate::schemas::text_200)]
    name: String,
    #[schema(minimum = 1, maximum = 1000)]
    quantity: i64,
}

/// One meta entry.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct WcMeta {
    key: String,
    #[schema(value_type = Object)]
    value: Value,
}

fn present(value: &Option<String>) -> Option<&str> {
    value.as_deref().map(str::trim).filter(|v| !v.is_empty())
}

impl WcAddress {
    fn name(&self) -> Option<String> {
        let parts: Vec<_> = [&self.first_name, &self.last_name]
            .into_iter()
            .filter_map(present)
            .collect();
        (!parts.is_empty()).then(|| parts.join(" "))
    }

    fn street(&self) -> Option<String> {
        present(&self.address_1)?;
        let town = [&self.postcode, &self.city]
            .into_iter()
            .filter_map(present)
            .collect::<Vec<_>>()
            .join(" ");
        let parts: Vec<&str> = [
            present(&self.company),
            present(&self.address_1),
            present(&self.address_2),
        ]
        .into_iter()
        .flatten()
        .chain((!town.is_empty()).then_some(town.as_str()))
        .chain(
            [present(&self.state), present(&self.country)]
                .into_iter()
                .flatten(),
        )
        .collect();
        Some(parts.join(", "))
    }
}

fn meta_text<'a>(meta: &'a [WcMeta], keys: &[&str]) -> Option<&'a str> {
    keys.iter().find_map(|key| {
        let value = &meta.iter().find(|m| m.key == *key)?.value;
        value.as_str().map(str::trim).filter(|v| !v.is_empty())
    })
}

/// The shop's offset from UTC when the order was placed, from its local and UTC creation
/// times; UTC when either is missing, and never beyond ±14 hours.
fn shop_offset(local: Option<&str>, utc: Option<&str>) -> FixedOffset {
    let parse =
        |t: Option<&str>| NaiveDateTime::parse_from_str(t?.trim(), "%Y-%m-%dT%H:%M:%S").ok();
    let zero = FixedOffset::east_opt(0).expect("zero is an offset");
    let (Some(local), Some(utc)) = (parse(local), parse(utc)) else {
        return zero;
    };
    // Offsets are whole quarter hours; the two times may straddle a second.
    let quarters = ((local - utc).num_seconds() as f64 / 900.0).round();
    if quarters.abs() > 14.0 * 4.0 {
        return zero;
    }
    FixedOffset::east_opt(quarters as i32 * 900).unwrap_or(zero)
}

/// `HH:MM - HH:MM` (or `HH:MM-HH:MM`).
fn time_slot(slot: &str) -> Option<(NaiveTime, NaiveTime)> {
    let (from, to) = slot.split_once('-')?;
    let time = |t: &str| NaiveTime::parse_from_str(t.trim(), "%H:%M").ok();
    let (from, to) = (time(from)?, time(to)?);
    (from < to).then_some((from, to))
}

/// The delivery window a delivery-date field of the shop asks for: that day in the shop's time
/// zone, narrowed to its time slot when one is given and readable. Nothing when no date is
/// given or it cannot be read: the order is taken in anyway, without a window.
fn delivery_window(meta: &[WcMeta], offset: FixedOffset) -> Schedule {
    let Some(day) = meta_text(meta, &["_delivery_date", "delivery_date"])
        .and_then(|d| NaiveDate::parse_from_str(d, "%Y-%m-%d").ok())
    else {
        return Schedule::default();
    };
    let slot = meta_text(meta, &["_delivery_time_slot", "delivery_time_slot"]).and_then(time_slot);
    let midnight = day.and_time(NaiveTime::MIN);
    let (from, to) = match slot {
        Some((from, to)) => (day.and_time(from), day.and_time(to)),
        None => (midnight, midnight + chrono::Duration::days(1)),
    };
    let utc = |local: NaiveDateTime| (local - offset).and_utc();
    Schedule {
        deliver_after: Some(utc(from)),
        deliver_before: Some(utc(to)),
        scheduled_for: None,
    }
}

fn meta_number(meta: &[WcMeta], key: &str) -> Option<f64> {
    let value = &meta.iter().find(|m| m.key == key)?.value;
    match value {
        Value::Number(n) => n.as_f64(),
        Value::String(s) => s.trim().parse().ok(),
        _ => None,
    }
}

impl WcOrder {
    /// The order as MedEx takes it in: shipping details where given, billing otherwise.
    fn into_external(self) -> ExternalOrder {
        let (b, s) = (&self.billing, &self.shipping);
        let delivery = match (
            meta_number(&self.meta_data, "_shipping_latitude"),
            meta_number(&self.meta_data, "_shipping_longitude"),
        ) {
            // Out-of-range coordinates are dropped: the pharmacy sets the location instead.
            (Some(lat), Some(lon)) => Coordinates::new(lat, lon).ok(),
            _ => None,
        };
        let offset = shop_offset(
            self.date_created.as_deref(),
            self.date_created_gmt.as_deref(),
        );
        ExternalOrder {
            schedule: delivery_window(&self.meta_data, offset),
            source: "woocommerce".into(),
            external_id: self.id.to_string(),
            customer_name: s.name().or_else(|| b.name()).unwrap_or_default(),
            customer_phone: present(&s.phone)
                .or(present(&b.phone))
                .unwrap_or_default()
                .to_owned(),
            delivery_address: s.street().or_else(|| b.street()).unwrap_or_default(),
            delivery,
            items: self
                .line_items
                .into_iter()
                .map(|item| NewItem {
                    name: item.name,
                    quantity: item.quantity,
                    notes: None,
                })
                .collect(),
            notes: present(&self.customer_note).map(str::to_owned),
        }
    }
}

type HmacSha256 = Hmac<Sha256>;

/// Whether `signature` (base64) is the HMAC-SHA256 of `body` under `secret`, compared in
/// constant time.
pub(crate) fn signature_valid(secret: &str, body: &[u8], signature: &str) -> bool {
    let Ok(tag) = base64::engine::general_purpose::STANDARD.decode(signature.trim()) else {
        return false;
    };
    let Ok(mut mac) = HmacSha256::new_from_slice(secret.as_bytes()) else {
        return false;
    };
    mac.update(body);
    mac.verify_slice(&tag).is_ok()
}

fn is_ping(headers: &HeaderMap, body: &[u8]) -> bool {
    !is_json_content_type(headers)
        && form_urlencoded::parse(body).any(|(key, _)| key == "webhook_id")
        && form_urlencoded::parse(body).all(|(key, _)| key == "webhook_id")
}

fn unauthorized() -> ApiError {
    ApiError::new(
        StatusCode::UNAUTHORIZED,
        "invalid_signature",
        "X-WC-Webhook-Signature is missing or does not match this pharmacy's webhook secret",
    )
}

/// Takes in a WooCommerce order, idempotently per WooCommerce order id: 201 for a new order,
/// 200 with the existing one for a replay. The creation ping is answered 200 and creates nothing.
#[utoipa::path(post, path = "/api/webhooks/wc/order-created", tag = "webhooks",
    params(WebhookQuery,
        ("X-WC-Webhook-Signature" = Option<String>, Header, description = "base64(HMAC-SHA256(secret, raw body)); absent on the ping")),
    request_body(description = "The WooCommerce order JSON (signed), or the ping's form body webhook_id=N (unsigned)",
        content((WcOrder = "application/json"), (WcPing = "application/x-www-form-urlencoded"))),
    responses(
        (status = 201, description = "Order taken in", body = OrderDoc),
        (status = 200, description = "Replay (the order taken in before), or the ping's answer", body = ReplayOrPing),
        (status = 401, description = "Missing or wrong signature, no secret configured, or no such active pharmacy: answered alike", body = ErrorBody),
        (status = 422, description = "Not a usable order: no recipient name, address or lines", body = ErrorBody),
        (status = 503, description = "Storage unavailable", body = ErrorBody),
    ))]
pub(crate) async fn woocommerce_order_created(
    State(state): State<AppState>,
    ApiQuery(q): ApiQuery<WebhookQuery>,
    req: Request,
) -> ApiResult<Response> {
    let headers = req.headers().clone();
    let body: Bytes = body_bytes(req, &state).await?;
    let signature = headers
        .get("x-wc-webhook-signature")
        .and_then(|v| v.to_str().ok());
    // The ping creates nothing, so it is answered alike for every pharmacy id.
    if signature.is_none() && is_ping(&headers, &body) {
        return Ok(Json(PingView { status: "ok" }).into_response());
    }
    // An unknown or inactive pharmacy, one without a secret and a wrong signature are answered
    // alike, after the same work, so that the answer tells nothing about which pharmacies exist.
    let vendor = match state
        .medex
        .vendor_for_webhook(VendorId::from_uuid(q.vendor_id))
        .await
    {
        Ok(vendor) => Some(vendor),
        Err(medex_core::error::Error::NotFound) => None,
        Err(e) => return Err(e.into()),
    };
    let secret = vendor
        .as_ref()
        .and_then(|v| v.woocommerce_webhook_secret.as_deref());
    let valid = signature_valid(
        secret.unwrap_or(&state.webhook_decoy),
        &body,
        signature.unwrap_or(""),
    );
    let configured = secret.is_some();
    let (Some(vendor), true, true) = (vendor, configured, valid) else {
        return Err(unauthorized());
    };
    let order: WcOrder = parse_json(&body, state.config.max_json_depth)?;
    let (order, created) = state
        .medex
        .intake_external_order(vendor.id, order.into_external())
        .await?;
    let status = if created {
        StatusCode::CREATED
    } else {
        StatusCode::OK
    };
    // The shop sees the order as its pharmacy does: without the handover code.
    let view = OrderView::with(OrderFields::WithoutHandoverCode, &order);
    Ok((status, Json(view)).into_response())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn signatures_are_checked() {
        let secret = "a-shared-webhook-secret";
        let body = br#"{"id": 1}"#;
        let mut mac = HmacSha256::new_from_slice(secret.as_bytes()).unwrap();
        mac.update(body);
        let good = base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        assert!(signature_valid(secret, body, &good));
        assert!(!signature_valid(secret, br#"{"id": 2}"#, &good));
        assert!(!signature_valid("another-secret-of-length", body, &good));
        assert!(!signature_valid(secret, body, "not base64!"));
        assert!(!signature_valid(secret, body, ""));
        assert!(!signature_valid(secret, body, &good[..good.len() - 4]));
    }

    #[test]
    fn shipping_wins_over_billing() {
        let order: WcOrder = serde_json::from_value(serde_json::json!({
            "id": 727,
            "billing": {"first_name": "John", "last_name": "Doe", "address_1": "969 Market",
                        "city": "San Francisco", "postcode": "94103", "phone": "(555) 555-5555"},
            "shipping": {"first_name": "Jane", "last_name": "Doe", "address_1": "1 Main St",
                         "address_2": "", "city": "Berlin", "postcode": "10115", "country": "DE"},
            "line_items": [{"name": "Aspirin", "quantity": 2}],
            "customer_note": "  ",
            "meta_data": [{"id": 1, "key": "_shipping_latitude", "value": "52.52"},
                          {"id": 2, "key": "_shipping_longitude", "value": 13.4}]
        }))
        .unwrap();
        let e = order.into_external();
        assert_eq!(e.external_id, "727");
        assert_eq!(e.customer_name, "Jane Doe");
        assert_eq!(e.customer_phone, "(555) 555-5555");
        assert_eq!(e.delivery_address, "1 Main St, 10115 Berlin, DE");
        assert_eq!(e.delivery, Coordinates::new(52.52, 13.4).ok());
        assert_eq!(e.notes, None);
        assert_eq!(e.items[0].quantity, 2);
    }
}
