//! What a party is shown of an order, as one serialisable value: the HTTP answers, the
//! WebSocket messages and the outgoing integrations all send this shape, so they cannot drift
//! apart. Which fields a caller sees is decided in [`crate::permissions`].

use chrono::{DateTime, Utc};
use serde::Serialize;

use crate::model::{
    DriverId, ExternalRef, FailureReason, Money, Order, OrderId, OrderItem, OrderStatus, Proof,
    StatusChange, UserId, VendorId,
};
use crate::permissions::{Actor, OrderFields, order_fields};

/// An order as one party sees it: every field but the signature of its custody record (served
/// on its own), and the handover code only for those [`order_fields`] lets see it.
#[derive(Debug, Serialize)]
pub struct OrderView<'a> {
    id: OrderId,
    order_number: &'a str,
    user_id: UserId,
    vendor_id: VendorId,
    driver_id: Option<DriverId>,
    tracking_token: &'a str,
    status: OrderStatus,
    pickup_address: &'a str,
    pickup_latitude: f64,
    pickup_longitude: f64,
    delivery_address: &'a str,
    delivery_latitude: Option<f64>,
    delivery_longitude: Option<f64>,
    customer_name: &'a str,
    customer_phone: &'a str,
    items: &'a [OrderItem],
    notes: Option<&'a str>,
    estimated_distance_km: Option<f64>,
    actual_distance_km: Option<f64>,
    delivery_fee: Money,
    proof_photo_url: Option<&'a str>,
    signature_url: Option<&'a str>,
    proofs: &'a [Proof],
    require_proof_photo: bool,
    require_signature: bool,
    require_handover_code: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    handover_code: Option<&'a str>,
    handover_failures: u32,
    attempt: u32,
    failure_reason: Option<FailureReason>,
    accepted_at: Option<DateTime<Utc>>,
    driver_accepted_at: Option<DateTime<Utc>>,
    picked_up_at: Option<DateTime<Utc>>,
    out_for_delivery_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    cancel_reason: Option<&'a str>,
    reject_reason: Option<&'a str>,
    status_history: &'a [StatusChange],
    external_ref: Option<&'a ExternalRef>,
    deliver_after: Option<DateTime<Utc>>,
    deliver_before: Option<DateTime<Utc>>,
    scheduled_for: Option<DateTime<Utc>>,
    late_risk_at: Option<DateTime<Utc>>,
    driver_arriving_at: Option<DateTime<Utc>>,
    driver_arrived_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
}

impl<'a> OrderView<'a> {
    /// `order` as `actor` may see it.
    pub fn of(actor: &Actor, order: &'a Order) -> Self {
        Self::with(order_fields(actor, order), order)
    }

    /// `order` with `fields`.
    pub fn with(fields: OrderFields, o: &'a Order) -> Self {
        let handover_code = match fields {
            OrderFields::WithHandoverCode => o.handover_code.as_ref().map(|c| c.as_str()),
            OrderFields::WithoutHandoverCode => None,
        };
        Self {
            id: o.id,
            order_number: &o.order_number,
            user_id: o.user_id,
            vendor_id: o.vendor_id,
            driver_id: o.driver_id,
            tracking_token: &o.tracking_token,
            status: o.status,
            pickup_address: &o.pickup_address,
            pickup_latitude: o.pickup_latitude,
            pickup_longitude: o.pickup_longitude,
            delivery_address: &o.delivery_address,
            delivery_latitude: o.delivery_latitude,
            delivery_longitude: o.delivery_longitude,
            customer_name: &o.customer_name,
            customer_phone: &o.customer_phone,
            items: &o.items,
            notes: o.notes.as_deref(),
            estimated_distance_km: o.estimated_distance_km,
            actual_distance_km: o.actual_distance_km,
            delivery_fee: o.delivery_fee,
            proof_photo_url: o.proof_photo_url.as_deref(),
            signature_url: o.signature_url.as_deref(),
            proofs: &o.proofs,
            require_proof_photo: o.require_proof_photo,
            require_signature: o.require_signature,
            require_handover_code: o.require_handover_code,
            handover_code,
            handover_failures: o.handover_failures,
            attempt: o.attempt,
            failure_reason: o.failure_reason,
            accepted_at: o.accepted_at,
            driver_accepted_at: o.driver_accepted_at,
            picked_up_at: o.picked_up_at,
            out_for_delivery_at: o.out_for_delivery_at,
            delivered_at: o.delivered_at,
            cancelled_at: o.cancelled_at,
            cancel_reason: o.cancel_reason.as_deref(),
            reject_reason: o.reject_reason.as_deref(),
            status_history: &o.status_history,
            external_ref: o.external_ref.as_ref(),
            deliver_after: o.deliver_after,
            deliver_before: o.deliver_before,
            scheduled_for: o.scheduled_for,
            late_risk_at: o.late_risk_at,
            driver_arriving_at: o.driver_arriving_at,
            driver_arrived_at: o.driver_arrived_at,
            created_at: o.created_at,
            updated_at: o.updated_at,
            version: o.version,
        }
    }
}
