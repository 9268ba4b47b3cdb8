//! Wire types: request bodies and response views. Requests hold only what a client may set
//! (status, fees and ids are never among them), responses only what the caller may see.

use chrono::{DateTime, Utc};
use medex_core::model::{
    DriverId, DriverStatus, Email, Order, OrderStatus, Role, User, UserId, VehicleType, Vendor,
    VendorId,
};
use medex_core::permissions::Actor;
use medex_core::service::Session;
pub(crate) use medex_core::views::OrderView;
use serde::{Deserialize, Deserializer, Serialize};
use utoipa::ToSchema;
use utoipa::openapi::Ref;
use utoipa::openapi::schema::{AnyOfBuilder, ObjectBuilder, OneOfBuilder, Schema, Type};

use crate::schemas;

// ---------------------------------------------------------------------------------------------
// Schema-only types: how core enums and records look on the wire, for the OpenAPI document.

/// Where an order is in its life.
#[derive(ToSchema)]
#[schema(as = OrderStatus)]
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum OrderStatusDoc {
    pending,
    accepted,
    driver_assigned,
    picked_up,
    out_for_delivery,
    delivered,
    rejected,
    cancelled,
    failed,
    returned,
}

/// Why a delivery attempt failed.
#[derive(ToSchema)]
#[schema(as = FailureReason)]
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum FailureReasonDoc {
    recipient_absent,
    address_not_found,
    refused,
    handover_code_failed,
    unsafe_location,
    damaged,
    other,
}

/// Which proof an upload is.
#[derive(ToSchema)]
#[schema(as = ProofKind)]
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum ProofKindDoc {
    photo,
    signature,
}

/// One uploaded proof, kept for good.
#[derive(ToSchema)]
#[schema(as = Proof)]
#[allow(dead_code)]
pub(crate) struct ProofDoc {
    #[schema(value_type = ProofKindDoc)]
    kind: (),
    /// Where the parties of the order fetch it.
    url: String,
    /// SHA-256 of the file, 64 lowercase hex digits.
    sha256: String,
    uploaded_at: DateTime<Utc>,
}

/// Where the acting driver was: its last fix. Degrees are decimal strings with six decimals, so
/// that every implementation hashes the same bytes.
#[derive(ToSchema)]
#[schema(as = CustodyLocation)]
#[allow(dead_code)]
pub(crate) struct CustodyLocationDoc {
    #[schema(example = "52.525000")]
    latitude: String,
    #[schema(example = "13.408000")]
    longitude: String,
    recorded_at: DateTime<Utc>,
}

/// A driver's availability.
#[derive(ToSchema)]
#[schema(as = DriverStatus)]
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum DriverStatusDoc {
    offline,
    available,
    busy,
    on_break,
}

/// What a driver drives.
#[derive(ToSchema)]
#[schema(as = VehicleType)]
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum VehicleTypeDoc {
    bike,
    scooter,
    car,
    van,
}

/// What an account is for.
#[derive(ToSchema)]
#[schema(as = Role)]
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum RoleDoc {
    user,
    vendor,
    driver,
    admin,
}

/// One line of an order.
#[derive(ToSchema)]
#[schema(as = OrderItem)]
#[allow(dead_code)]
pub(crate) struct OrderItemDoc {
    name: String,
    quantity: u32,
    notes: Option<String>,
}

/// One entry of the chain of custody. `hash` is the SHA-256 (hex) of the entry's canonical JSON
/// without `hash` (members sorted, no whitespace, UTF-8, nulls kept); `prev_hash` is the entry
/// before's `hash`, the order id for the first. README: "Checking a custody record".
#[derive(ToSchema)]
#[schema(as = StatusChange)]
#[allow(dead_code)]
pub(crate) struct StatusChangeDoc {
    #[schema(value_type = OrderStatusDoc)]
    status: (),
    at: DateTime<Utc>,
    #[schema(value_type = uuid::Uuid)]
    actor_id: (),
    #[schema(value_type = RoleDoc)]
    actor_role: (),
    /// Why; for `failed`, the reason code.
    reason: Option<String>,
    /// The driver's note on a failed attempt.
    note: Option<String>,
    /// The acting driver's last position; null when someone else acted.
    #[schema(value_type = Option<CustodyLocationDoc>)]
    location: (),
    /// SHA-256 of the proofs bound to the entry (at `delivered`: every proof of the order).
    proof_sha256: Vec<String>,
    prev_hash: String,
    hash: String,
}

/// An order's chain of custody, checked by the server: every hash re-derived, every link and the
/// signature verified (`verified`). Check it yourself with the keys of `GET /api/custody/keys`.
#[derive(ToSchema)]
#[schema(as = CustodyRecord)]
#[allow(dead_code)]
pub(crate) struct CustodyRecordDoc {
    order_id: uuid::Uuid,
    #[schema(value_type = Vec<StatusChangeDoc>)]
    entries: (),
    /// The newest entry's `hash`.
    head_hash: Option<String>,
    /// Ed25519 over the ASCII order id followed by `head_hash`; base64 of the 64 bytes.
    signature: Option<String>,
    /// Which custody key signed.
    key_id: Option<String>,
    verified: bool,
}

/// A public custody key.
#[derive(ToSchema)]
#[schema(as = CustodyKey)]
#[allow(dead_code)]
pub(crate) struct CustodyKeyDoc {
    /// First 16 hex digits of SHA-256 of the public key bytes.
    key_id: String,
    /// Base64 of the raw 32-byte Ed25519 public key.
    public_key: String,
}

/// A delivery order, as its parties see it. Money is a number with two decimals.
#[derive(ToSchema)]
#[schema(as = Order)]
#[allow(dead_code)]
pub(crate) struct OrderDoc {
    id: uuid::Uuid,
    order_number: String,
    user_id: uuid::Uuid,
    vendor_id: uuid::Uuid,
    driver_id: Option<uuid::Uuid>,
    tracking_token: String,
    #[schema(value_type = OrderStatusDoc)]
    status: (),
    pickup_address: String,
    pickup_latitude: f64,
    pickup_longitude: f64,
    delivery_address: String,
    delivery_latitude: Option<f64>,
    delivery_longitude: Option<f64>,
    customer_name: String,
    customer_phone: String,
    #[schema(value_type = Vec<OrderItemDoc>)]
    items: (),
    notes: Option<String>,
    estimated_distance_km: Option<f64>,
    actual_distance_km: Option<f64>,
    delivery_fee: f64,
    /// The latest proof photo.
    proof_photo_url: Option<String>,
    /// The latest signature.
    signature_url: Option<String>,
    /// Every proof uploaded, oldest first.
    #[schema(value_type = Vec<ProofDoc>)]
    proofs: (),
    require_proof_photo: bool,
    require_signature: bool,
    require_handover_code: bool,
    /// Six digits the recipient gives the driver. Only for the ordering customer and admins;
    /// absent for everyone else.
    handover_code: Option<String>,
    /// Wrong handover codes in this attempt; at 5 delivery is locked.
    handover_failures: u32,
    /// The delivery attempt, from 1.
    attempt: u32,
    /// Why the latest failed attempt failed.
    #[schema(value_type = Option<FailureReasonDoc>)]
    failure_reason: (),
    accepted_at: Option<DateTime<Utc>>,
    driver_accepted_at: Option<DateTime<Utc>>,
    picked_up_at: Option<DateTime<Utc>>,
    out_for_delivery_at: Option<DateTime<Utc>>,
    delivered_at: Option<DateTime<Utc>>,
    cancelled_at: Option<DateTime<Utc>>,
    cancel_reason: Option<String>,
    reject_reason: Option<String>,
    #[schema(value_type = Vec<StatusChangeDoc>)]
    status_history: (),
    /// `{"source": "woocommerce", "id": "..."}` for orders taken in from a shop.
    #[schema(value_type = Option<Object>)]
    external_ref: (),
    /// Not handed over before (the customer's window opens).
    deliver_after: Option<DateTime<Utc>>,
    /// Handed over by (the window closes).
    deliver_before: Option<DateTime<Utc>>,
    /// Not dispatched before.
    scheduled_for: Option<DateTime<Utc>>,
    /// When its drop-off was first expected after `deliver_before` (`late_risk`, raised once).
    late_risk_at: Option<DateTime<Utc>>,
    /// When its driver was first about to arrive at the drop-off (`order.driver_arriving`).
    driver_arriving_at: Option<DateTime<Utc>>,
    /// When its driver had been at the drop-off for the dwell time (`order.driver_arrived`).
    driver_arrived_at: Option<DateTime<Utc>>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
}

/// A driver of a pharmacy's fleet.
#[derive(ToSchema)]
#[schema(as = Driver)]
#[allow(dead_code)]
pub(crate) struct DriverDoc {
    id: uuid::Uuid,
    user_id: uuid::Uuid,
    vendor_id: uuid::Uuid,
    full_name: String,
    email: String,
    phone: Option<String>,
    #[schema(value_type = VehicleTypeDoc)]
    vehicle_type: (),
    vehicle_number: Option<String>,
    license_number: Option<String>,
    #[schema(value_type = DriverStatusDoc)]
    status: (),
    /// The first order of its run.
    active_order_id: Option<uuid::Uuid>,
    /// Every order of its run, in the order they joined it.
    active_order_ids: Vec<uuid::Uuid>,
    /// The drop-off order its pharmacy fixed by hand for this run (empty: sequenced).
    manual_stop_order: Vec<uuid::Uuid>,
    current_latitude: Option<f64>,
    current_longitude: Option<f64>,
    last_location_update: Option<DateTime<Utc>>,
    total_deliveries: u64,
    total_earnings: f64,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    version: u64,
    /// Only in the answer to `POST /drivers/register`: the same as `id`.
    driver_id: Option<uuid::Uuid>,
}

macro_rules! free_form {
    ($($name:ident = $as:literal, $description:literal;)*) => {$(
        #[doc = $description]
        pub(crate) struct $name;

        impl utoipa::PartialSchema for $name {
            fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
                utoipa::openapi::ObjectBuilder::new()
                    .schema_type(utoipa::openapi::schema::Type::Object)
                    .description(Some($description))
                    .into()
            }
        }

        impl ToSchema for $name {
            fn name() -> std::borrow::Cow<'static, str> {
                std::borrow::Cow::Borrowed($as)
            }
        }
    )*};
}

free_form! {
    TrackingDoc = "TrackingView", "Public tracking view: order_number, status, vendor_name, \
        timestamps, timeline, attempt, attempt_failed (the latest attempt failed and will be \
        rescheduled; never why), pickup, destination, driver (first_name, vehicle_type, \
        location) and eta_minutes while the order is on its way (on a run of several orders, \
        through the stops before this one, with stops_before: how many drop-offs come first); \
        no phone numbers, no account ids.";
    DailyReportDoc = "VendorDailyReport", "Daily report: date, utc_offset, orders_created, \
        orders_delivered, orders_cancelled, orders_rejected, failed_attempts, returns, revenue, \
        delivered_on_time and delivered_late (of the orders with a deliver_before), \
        drivers[] (DriverFigures).";
    DriverFiguresDoc = "DriverFigures", "Per-driver figures: driver_id, driver_name, \
        deliveries, distance_km, earnings, average_delivery_minutes, failed_attempts, returns.";
    EarningsDoc = "Earnings", "Earnings: total_deliveries, total_earnings, total_distance_km, \
        days[{date, deliveries, earnings}].";
}

/// The fees of deliveries: amounts with at most two decimals, 0 to 100000 each.
#[derive(ToSchema)]
#[schema(as = Tariff)]
#[allow(dead_code)]
pub(crate) struct TariffDoc {
    /// Added to every delivery.
    #[schema(minimum = 0, maximum = 100000)]
    base_fee: f64,
    /// Per estimated kilometre.
    #[schema(minimum = 0, maximum = 100000)]
    per_km: f64,
    /// The lowest fee.
    #[schema(minimum = 0, maximum = 100000)]
    min_fee: f64,
}

/// Speeds used for ETAs, km/h, above 0 and at most 300.
#[derive(ToSchema)]
#[schema(as = VehicleSpeeds)]
#[allow(dead_code)]
pub(crate) struct VehicleSpeedsDoc {
    #[schema(exclusive_minimum = 0, maximum = 300)]
    bike: f64,
    #[schema(exclusive_minimum = 0, maximum = 300)]
    scooter: f64,
    #[schema(exclusive_minimum = 0, maximum = 300)]
    car: f64,
    #[schema(exclusive_minimum = 0, maximum = 300)]
    van: f64,
}

/// The system configuration in force.
#[derive(ToSchema)]
#[schema(as = SystemConfig)]
#[allow(dead_code)]
pub(crate) struct ConfigDoc {
    tariff: TariffDoc,
    vehicle_speeds: VehicleSpeedsDoc,
    /// Straight-line distance times this is the road distance, 1 to 5.
    #[schema(minimum = 1, maximum = 5)]
    road_factor: f64,
    /// Whether new pharmacies require a proof photo.
    default_require_proof_photo: bool,
    /// Whether new pharmacies require a signature.
    default_require_signature: bool,
    /// How far from a pharmacy it delivers unless it set its own radius, km.
    #[schema(minimum = 0.5, maximum = 1000)]
    default_delivery_radius_km: f64,
    /// How long a tracking link works after its order ended, days.
    #[schema(minimum = 1, maximum = 3650)]
    tracking_link_days: u32,
}

/// Changes to the tariff; absent fields stay.
#[derive(ToSchema)]
#[schema(as = TariffPatch)]
#[allow(dead_code)]
pub(crate) struct TariffPatchDoc {
    #[schema(required = false, minimum = 0, maximum = 100000)]
    base_fee: f64,
    #[schema(required = false, minimum = 0, maximum = 100000)]
    per_km: f64,
    #[schema(required = false, minimum = 0, maximum = 100000)]
    min_fee: f64,
}

/// Changes to the vehicle speeds; absent fields stay.
#[derive(ToSchema)]
#[schema(as = VehicleSpeedsPatch)]
#[allow(dead_code)]
pub(crate) struct VehicleSpeedsPatchDoc {
    #[schema(required = false, exclusive_minimum = 0, maximum = 300)]
    bike: f64,
    #[schema(required = false, exclusive_minimum = 0, maximum = 300)]
    scooter: f64,
    #[schema(required = false, exclusive_minimum = 0, maximum = 300)]
    car: f64,
    #[schema(required = false, exclusive_minimum = 0, maximum = 300)]
    van: f64,
}

/// Any subset of the configuration, merged into the one in force (nested objects key by key);
/// `null` is not a value of any field.
#[derive(ToSchema)]
#[schema(as = SystemConfigPatch)]
#[allow(dead_code)]
pub(crate) struct ConfigPatchDoc {
    #[schema(required = false)]
    tariff: TariffPatchDoc,
    #[schema(required = false)]
    vehicle_speeds: VehicleSpeedsPatchDoc,
    #[schema(required = false, minimum = 1, maximum = 5)]
    road_factor: f64,
    #[schema(required = false)]
    default_require_proof_photo: bool,
    #[schema(required = false)]
    default_require_signature: bool,
    #[schema(required = false, minimum = 0.5, maximum = 1000)]
    default_delivery_radius_km: f64,
    #[schema(required = false, minimum = 1, maximum = 3650)]
    tracking_link_days: u32,
}

// ---------------------------------------------------------------------------------------------
// Responses

/// The answer with one order, as `actor` may see it.
pub(crate) fn order_answer(actor: &Actor, order: &Order) -> axum::response::Response {
    axum::response::IntoResponse::into_response(axum::Json(OrderView::of(actor, order)))
}

/// An account, without its password hash.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct UserView {
    #[schema(value_type = uuid::Uuid)]
    id: UserId,
    #[schema(value_type = String)]
    email: Email,
    full_name: String,
    phone: Option<String>,
    #[schema(value_type = RoleDoc)]
    role: Role,
    is_active: bool,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
    #[schema(value_type = Option<uuid::Uuid>)]
    vendor_id: Option<VendorId>,
    #[schema(value_type = Option<uuid::Uuid>)]
    driver_id: Option<DriverId>,
}

impl From<&User> for UserView {
    fn from(u: &User) -> Self {
        Self {
            id: u.id,
            email: u.email.clone(),
            full_name: u.full_name.clone(),
            phone: u.phone.clone(),
            role: u.role,
            is_active: u.is_active,
            created_at: u.created_at,
            updated_at: u.updated_at,
            vendor_id: u.vendor_id,
            driver_id: u.driver_id,
        }
    }
}

/// The account in a session answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SessionUser {
    #[schema(value_type = uuid::Uuid)]
    id: UserId,
    #[schema(value_type = String)]
    email: Email,
    full_name: String,
    #[schema(value_type = RoleDoc)]
    role: Role,
    /// For vendor accounts.
    #[schema(value_type = Option<uuid::Uuid>)]
    vendor_id: Option<VendorId>,
    /// For driver accounts.
    #[schema(value_type = Option<uuid::Uuid>)]
    driver_id: Option<DriverId>,
}

/// What login, register and refresh answer.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct SessionView {
    access_token: String,
    refresh_token: String,
    /// Always `bearer`.
    token_type: &'static str,
    /// Seconds until the access token expires.
    expires_in: i64,
    user: SessionUser,
}

impl From<Session> for SessionView {
    fn from(s: Session) -> Self {
        Self {
            access_token: s.access_token,
            refresh_token: s.refresh_token,
            token_type: "bearer",
            expires_in: s.expires_in,
            user: SessionUser {
                id: s.user.id,
                email: s.user.email,
                full_name: s.user.full_name,
                role: s.user.role,
                vendor_id: s.user.vendor_id,
                driver_id: s.user.driver_id,
            },
        }
    }
}

/// A pharmacy. Fields marked private are shown only to the pharmacy itself and admins; the
/// webhook secret is never shown, only whether one is set.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct VendorView {
    #[schema(value_type = uuid::Uuid)]
    id: VendorId,
    /// The same as `id` (the seed's key).
    #[schema(value_type = uuid::Uuid)]
    vendor_id: VendorId,
    business_name: String,
    phone: Option<String>,
    address: String,
    latitude: f64,
    longitude: f64,
    is_active: bool,
    /// Private.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<uuid::Uuid>)]
    user_id: Option<UserId>,
    /// Private.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<String>)]
    email: Option<Email>,
    /// Private.
    #[serde(skip_serializing_if = "Option::is_none")]
    #[schema(value_type = Option<Vec<uuid::Uuid>>)]
    driver_ids: Option<Vec<DriverId>>,
    /// Private.
    #[serde(skip_serializing_if = "Option::is_none")]
    require_proof_photo: Option<bool>,
    /// Private.
    #[serde(skip_serializing_if = "Option::is_none")]
    require_signature: Option<bool>,
    /// Private.
    #[serde(skip_serializing_if = "Option::is_none")]
    require_handover_code: Option<bool>,
    /// Private.
    #[serde(skip_serializing_if = "Option::is_none")]
    has_woocommerce_webhook_secret: Option<bool>,
    /// Private: the pharmacy's own delivery radius, km (`null`: the system's default).
    #[serde(skip_serializing_if = "Option::is_none")]
    delivery_radius_km: Option<Option<f64>>,
    /// Private: how many active orders one of its drivers may hold at once.
    #[serde(skip_serializing_if = "Option::is_none")]
    max_active_orders: Option<u32>,
    /// Private: accepted orders go at once to the best suggested driver.
    #[serde(skip_serializing_if = "Option::is_none")]
    auto_assign: Option<bool>,
    created_at: DateTime<Utc>,
    updated_at: DateTime<Utc>,
}

impl VendorView {
    /// What everyone may see.
    pub(crate) fn public(v: &Vendor) -> Self {
        Self {
            id: v.id,
            vendor_id: v.id,
            business_name: v.business_name.clone(),
            phone: v.phone.clone(),
            address: v.address.clone(),
            latitude: v.location.latitude(),
            longitude: v.location.longitude(),
            is_active: v.is_active,
            user_id: None,
            email: None,
            driver_ids: None,
            require_proof_photo: None,
            require_signature: None,
            require_handover_code: None,
            has_woocommerce_webhook_secret: None,
            delivery_radius_km: None,
            max_active_orders: None,
            auto_assign: None,
            created_at: v.created_at,
            updated_at: v.updated_at,
        }
    }

    /// What the pharmacy and admins see.
    pub(crate) fn full(v: &Vendor) -> Self {
        Self {
            user_id: Some(v.user_id),
            email: Some(v.email.clone()),
            driver_ids: Some(v.driver_ids.clone()),
            require_proof_photo: Some(v.require_proof_photo),
            require_signature: Some(v.require_signature),
            require_handover_code: Some(v.require_handover_code),
            has_woocommerce_webhook_secret: Some(v.woocommerce_webhook_secret.is_some()),
            delivery_radius_km: Some(v.delivery_radius_km),
            max_active_orders: Some(v.max_active_orders),
            auto_assign: Some(v.auto_assign),
            ..Self::public(v)
        }
    }
}

/// A driver with the seed's `driver_id` key, as registration answers.
#[derive(Debug, Clone, Serialize)]
pub(crate) struct RegisteredDriver {
    #[serde(flatten)]
    pub(crate) driver: medex_core::model::Driver,
    pub(crate) driver_id: DriverId,
}

/// What a position report answers.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct LocationView {
    #[schema(value_type = uuid::Uuid)]
    pub(crate) driver_id: DriverId,
    pub(crate) latitude: f64,
    pub(crate) longitude: f64,
    pub(crate) recorded_at: DateTime<Utc>,
    /// The order the driver is on, if any.
    pub(crate) order_id: Option<uuid::Uuid>,
    /// Minutes to that order's destination.
    pub(crate) eta_minutes: Option<f64>,
}

/// Whether the server can serve requests.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum Health {
    /// Everything answers.
    Healthy,
    /// Something the server needs fails (the storage, or the bus between instances where one
    /// is configured); requests will get 503, or live updates stay on this instance.
    Unhealthy,
}

/// The state of the bus that carries live updates between instances.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum BusHealth {
    /// Connected to the other instances.
    Ok,
    /// None configured: live updates stay in this process.
    InProcess,
    /// Configured and unreachable (with 503).
    Unavailable,
}

/// The state of the storage.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, ToSchema)]
#[serde(rename_all = "lowercase")]
pub(crate) enum StorageHealth {
    /// Reads and writes work.
    Ok,
    /// The storage fails.
    Unavailable,
}

/// `GET /api/health`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct HealthView {
    /// `healthy`, or `unhealthy` (with 503).
    pub(crate) status: Health,
    /// `ok`, or `unavailable` (with 503).
    pub(crate) storage: StorageHealth,
    /// `ok`, `in_process` (no bus configured), or `unavailable` (with 503).
    pub(crate) bus: BusHealth,
    /// The server's version.
    pub(crate) version: &'static str,
}

/// `GET /`.
#[derive(Debug, Clone, Serialize, ToSchema)]
pub(crate) struct IndexView {
    pub(crate) name: &'static str,
    pub(crate) version: &'static str,
    /// Swagger UI.
    pub(crate) docs: &'static str,
    /// The OpenAPI document.
    pub(crate) openapi: &'static str,
    /// Health check.
    pub(crate) health: &'static str,
}

// ---------------------------------------------------------------------------------------------
// Requests

/// `null` → `Some(None)`, absent → `None` (with `#[serde(default)]`).
fn double_option<'de, T: Deserialize<'de>, D: Deserializer<'de>>(
    d: D,
) -> Result<Option<Option<T>>, D::Error> {
    Option::<T>::deserialize(d).map(Some)
}

// The limits below are medex-core's (its validation is the one that answers 422); the schemas
// only state them. Unknown fields in a body are ignored, so no schema forbids them.

/// A new customer account.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RegisterRequest {
    #[schema(schema_with = schemas::email)]
    pub(crate) email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub(crate) password: String,
    #[schema(schema_with = schemas::text_200)]
    pub(crate) full_name: String,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_40)]
    pub(crate) phone: Option<String>,
    /// Only `user` is accepted; any other role is refused (403).
    #[serde(default)]
    #[schema(value_type = Option<RoleDoc>)]
    pub(crate) role: Option<String>,
}

/// E-mail and password.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LoginRequest {
    pub(crate) email: String,
    pub(crate) password: String,
}

/// The current password and the new one.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ChangePasswordRequest {
    pub(crate) current_password: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub(crate) new_password: String,
}

/// A refresh token (for refresh and logout).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RefreshRequest {
    pub(crate) refresh_token: String,
}

/// One line of a new order.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct ItemRequest {
    #[schema(schema_with = schemas::text_200)]
    pub(crate) name: String,
    /// 1 to 1000.
    #[schema(minimum = 1, maximum = 1000)]
    pub(crate) quantity: i64,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_500)]
    pub(crate) notes: Option<String>,
}

/// A new order. Status, fee, distance, number, tracking token and ids are computed by the
/// server; such fields in the body are ignored.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct CreateOrderRequest {
    /// An active pharmacy (another id is 422).
    #[schema(value_type = uuid::Uuid)]
    pub(crate) vendor_id: VendorId,
    #[schema(schema_with = schemas::text_500)]
    pub(crate) delivery_address: String,
    #[schema(minimum = -90, maximum = 90)]
    pub(crate) delivery_latitude: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub(crate) delivery_longitude: f64,
    #[schema(schema_with = schemas::text_200)]
    pub(crate) customer_name: String,
    #[schema(schema_with = schemas::text_40)]
    pub(crate) customer_phone: String,
    /// 1 to 100 lines.
    #[schema(min_items = 1, max_items = 100)]
    pub(crate) items: Vec<ItemRequest>,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_2000)]
    pub(crate) notes: Option<String>,
    /// `true` requires a proof photo even if the pharmacy does not; `false` keeps its policy.
    #[serde(default)]
    pub(crate) require_proof_photo: Option<bool>,
    /// `true` requires a signature even if the pharmacy does not.
    #[serde(default)]
    pub(crate) require_signature: Option<bool>,
    /// `true` requires the recipient's handover code even if the pharmacy does not.
    #[serde(default)]
    pub(crate) require_handover_code: Option<bool>,
    /// Not to be handed over before (RFC 3339); before `deliver_before`.
    #[serde(default)]
    pub(crate) deliver_after: Option<DateTime<Utc>>,
    /// To be handed over by (RFC 3339): in the future, within 30 days.
    #[serde(default)]
    pub(crate) deliver_before: Option<DateTime<Utc>>,
    /// Not to be dispatched before (RFC 3339); assignment waits until then.
    #[serde(default)]
    pub(crate) scheduled_for: Option<DateTime<Utc>>,
}

/// A status that `PATCH /api/orders/{id}` may move an order to (`driver_assigned` is reached
/// through assign-driver, `pending` never again).
#[derive(ToSchema)]
#[schema(as = OrderStatusChange)]
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum SettableOrderStatusDoc {
    accepted,
    rejected,
    picked_up,
    out_for_delivery,
    delivered,
    failed,
    returned,
    cancelled,
}

/// A status change (`status`, `reason`) or, for the vendor of a pending order that arrived
/// without one, the delivery location (`delivery_latitude`, `delivery_longitude`,
/// `delivery_address`). Not both.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PatchOrderRequest {
    #[serde(default)]
    #[schema(value_type = Option<SettableOrderStatusDoc>)]
    pub(crate) status: Option<OrderStatus>,
    /// Why; required (non-blank) to reject; for `failed` one of `recipient_absent`,
    /// `address_not_found`, `refused`, `handover_code_failed`, `unsafe_location`, `damaged`,
    /// `other`. At most 500 characters.
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_500)]
    pub(crate) reason: Option<String>,
    /// For `failed`: the driver's note, required with reason `other` (at most 500 characters).
    #[serde(default)]
    pub(crate) note: Option<String>,
    /// For `delivered`: the six digits the recipient gives, when the order requires them.
    #[serde(default)]
    #[schema(pattern = "^[0-9]{6}$")]
    pub(crate) handover_code: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_500)]
    pub(crate) delivery_address: Option<String>,
    #[serde(default)]
    #[schema(minimum = -90, maximum = 90)]
    pub(crate) delivery_latitude: Option<f64>,
    #[serde(default)]
    #[schema(minimum = -180, maximum = 180)]
    pub(crate) delivery_longitude: Option<f64>,
}

/// Which driver to assign.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AssignDriverRequest {
    /// A driver of the order's pharmacy (another id is 422).
    #[schema(value_type = uuid::Uuid)]
    pub(crate) driver_id: DriverId,
}

/// The assigned driver's answer.
#[derive(Debug, Clone, Copy, Deserialize, ToSchema)]
#[serde(rename_all = "snake_case")]
pub(crate) enum AssignmentAction {
    /// Take the order.
    Accept,
    /// Hand it back to the pharmacy.
    Decline,
}

/// `{"action": "accept" | "decline", "reason"?}`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct AssignmentRequest {
    pub(crate) action: AssignmentAction,
    #[serde(default)]
    pub(crate) reason: Option<String>,
}

/// A new driver with its login.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RegisterDriverRequest {
    /// The fleet: implied for a vendor, required for an admin.
    #[serde(default)]
    #[schema(value_type = Option<uuid::Uuid>)]
    pub(crate) vendor_id: Option<VendorId>,
    #[schema(schema_with = schemas::email)]
    pub(crate) email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub(crate) password: String,
    #[schema(schema_with = schemas::text_200)]
    pub(crate) full_name: String,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_40)]
    pub(crate) phone: Option<String>,
    #[schema(value_type = VehicleTypeDoc)]
    pub(crate) vehicle_type: VehicleType,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_40)]
    pub(crate) vehicle_number: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_60)]
    pub(crate) license_number: Option<String>,
}

/// Profile changes; absent (or `null`) fields stay, blank optional ones are removed.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PatchDriverRequest {
    #[serde(default)]
    #[schema(schema_with = schemas::text_200_or_null)]
    pub(crate) full_name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_40)]
    pub(crate) phone: Option<String>,
    #[serde(default)]
    #[schema(value_type = Option<VehicleTypeDoc>)]
    pub(crate) vehicle_type: Option<VehicleType>,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_40)]
    pub(crate) vehicle_number: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_60)]
    pub(crate) license_number: Option<String>,
    /// The driver's vendor or an admin only.
    #[serde(default)]
    pub(crate) is_active: Option<bool>,
}

/// The availability a driver may choose (`busy` is the system's).
#[derive(ToSchema)]
#[schema(as = DriverStatusChange)]
#[allow(non_camel_case_types, dead_code)]
pub(crate) enum SettableDriverStatusDoc {
    offline,
    available,
    on_break,
}

/// `available`, `offline` or `on_break`.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct DriverStatusRequest {
    #[schema(value_type = SettableDriverStatusDoc)]
    pub(crate) status: DriverStatus,
}

/// A position report (the WebSocket `location` message's fields).
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct LocationRequest {
    #[schema(minimum = -90, maximum = 90)]
    pub(crate) latitude: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub(crate) longitude: f64,
    /// km/h, 0 to 400.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 400)]
    pub(crate) speed: Option<f64>,
    /// Degrees, 0 to 360.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 360)]
    pub(crate) heading: Option<f64>,
    /// Metres, 0 to 100000.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100000)]
    pub(crate) accuracy: Option<f64>,
    /// When measured; the server's time replaces one from the future or long ago.
    #[serde(default)]
    #[schema(schema_with = schemas::date_time_or_null)]
    pub(crate) recorded_at: Option<DateTime<Utc>>,
}

/// What the location endpoint takes: one fix, or the fixes a device kept while offline.
/// (Schema only: the handler reads the shape by its `fixes` field.)
#[derive(Debug, ToSchema)]
#[serde(untagged)]
pub(crate) enum LocationReport {
    /// At most 100 fixes, recorded as one report.
    Batch(LocationBatchRequest),
    /// One fix.
    One(LocationRequest),
}

/// Fixes kept while offline (the WebSocket `locations` message's fields): they join the trail in
/// `recorded_at` order, the newest becomes the position unless the position is newer already.
#[derive(Debug, Deserialize, ToSchema)]
#[serde(deny_unknown_fields)]
pub(crate) struct LocationBatchRequest {
    #[schema(min_items = 1, max_items = 100)]
    pub(crate) fixes: Vec<BatchFixRequest>,
}

/// One fix of a batch: as a single report, with its time required.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct BatchFixRequest {
    #[schema(minimum = -90, maximum = 90)]
    pub(crate) latitude: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub(crate) longitude: f64,
    /// km/h, 0 to 400.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 400)]
    pub(crate) speed: Option<f64>,
    /// Degrees, 0 to 360.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 360)]
    pub(crate) heading: Option<f64>,
    /// Metres, 0 to 100000.
    #[serde(default)]
    #[schema(minimum = 0, maximum = 100000)]
    pub(crate) accuracy: Option<f64>,
    /// When measured: within the last 24 hours, and not ahead of the server's clock by more
    /// than 30 s (else 422).
    pub(crate) recorded_at: DateTime<Utc>,
}

/// A new pharmacy and its owner account.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct RegisterVendorRequest {
    #[schema(schema_with = schemas::email)]
    pub(crate) email: String,
    /// 8 to 128 characters.
    #[schema(min_length = 8, max_length = 128)]
    pub(crate) password: String,
    /// The owner's name; blank or absent takes the business name.
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_200)]
    pub(crate) full_name: Option<String>,
    #[schema(schema_with = schemas::text_200)]
    pub(crate) business_name: String,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_40)]
    pub(crate) phone: Option<String>,
    #[schema(schema_with = schemas::text_500)]
    pub(crate) address: String,
    #[schema(minimum = -90, maximum = 90)]
    pub(crate) latitude: f64,
    #[schema(minimum = -180, maximum = 180)]
    pub(crate) longitude: f64,
}

/// Pharmacy changes; absent (or `null`) fields stay. `woocommerce_webhook_secret: null` removes
/// the secret.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PatchVendorRequest {
    #[serde(default)]
    #[schema(schema_with = schemas::text_200_or_null)]
    pub(crate) business_name: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::optional_text_40)]
    pub(crate) phone: Option<String>,
    #[serde(default)]
    #[schema(schema_with = schemas::text_500_or_null)]
    pub(crate) address: Option<String>,
    /// With `longitude`.
    #[serde(default)]
    #[schema(minimum = -90, maximum = 90)]
    pub(crate) latitude: Option<f64>,
    /// With `latitude`.
    #[serde(default)]
    #[schema(minimum = -180, maximum = 180)]
    pub(crate) longitude: Option<f64>,
    #[serde(default)]
    pub(crate) require_proof_photo: Option<bool>,
    #[serde(default)]
    pub(crate) require_signature: Option<bool>,
    /// New orders need the recipient's handover code.
    #[serde(default)]
    pub(crate) require_handover_code: Option<bool>,
    /// How far from its pickup point the pharmacy delivers, km; orders beyond are refused.
    #[serde(default)]
    #[schema(minimum = 0.5, maximum = 1000)]
    pub(crate) delivery_radius_km: Option<f64>,
    /// How many active orders one of its drivers may hold at once: a run (1, the default, is
    /// one order at a time).
    #[serde(default)]
    #[schema(minimum = 1, maximum = 30)]
    pub(crate) max_active_orders: Option<u32>,
    /// Assign each accepted order at once to the best suggested driver (see
    /// `GET /api/orders/{id}/driver-suggestions`); the driver still accepts or declines.
    #[serde(default)]
    pub(crate) auto_assign: Option<bool>,
    #[serde(default, deserialize_with = "double_option")]
    #[schema(schema_with = schemas::webhook_secret)]
    pub(crate) woocommerce_webhook_secret: Option<Option<String>>,
    /// Admins only.
    #[serde(default)]
    pub(crate) is_active: Option<bool>,
}

/// The export period (dates `YYYY-MM-DD` or RFC 3339 times); also accepted as query parameters.
/// `from` must come before `to`, at most 366 days before.
#[derive(Debug, Default, Deserialize, ToSchema, utoipa::IntoParams)]
#[into_params(parameter_in = Query)]
pub(crate) struct ExportRequest {
    /// Start, inclusive. Default: 30 days before `to`.
    #[serde(default)]
    #[schema(schema_with = schemas::date_or_time_or_null)]
    #[param(schema_with = schemas::date_or_time)]
    pub(crate) from: Option<String>,
    /// End: a date includes that whole day (UTC). Default: now.
    #[serde(default)]
    #[schema(schema_with = schemas::date_or_time_or_null)]
    #[param(schema_with = schemas::date_or_time)]
    pub(crate) to: Option<String>,
}

/// `{"is_active": false}` deactivates an account.
#[derive(Debug, Deserialize, ToSchema)]
pub(crate) struct PatchUserRequest {
    pub(crate) is_active: bool,
}

/// Rules between the fields of a body, which the derived schemas cannot state: the component
/// named first must also match the schema beside it.
pub(crate) fn refinements() -> Vec<(&'static str, Schema)> {
    let object = || ObjectBuilder::new().schema_type(Type::Object);
    let number = |min: i32, max: i32| {
        ObjectBuilder::new()
            .schema_type(Type::Number)
            .minimum(Some(min))
            .maximum(Some(max))
    };
    // A status change, or a delivery location: never both, never neither.
    let status_change = object()
        .title(Some("status change"))
        .property("status", Ref::from_schema_name("OrderStatusChange"))
        .required("status")
        .property("delivery_address", schemas::null())
        .property("delivery_latitude", schemas::null())
        .property("delivery_longitude", schemas::null());
    let location = object()
        .title(Some("delivery location"))
        .property("status", schemas::null())
        .property("delivery_latitude", number(-90, 90))
        .property("delivery_longitude", number(-180, 180))
        .required("delivery_latitude")
        .required("delivery_longitude");
    let patch_order = OneOfBuilder::new().item(status_change).item(location);
    // A pharmacy's location: both coordinates, or neither.
    let moved = object()
        .property("latitude", number(-90, 90))
        .property("longitude", number(-180, 180))
        .required("latitude")
        .required("longitude");
    let stays = object()
        .property("latitude", schemas::null())
        .property("longitude", schemas::null());
    let patch_vendor = AnyOfBuilder::new().item(moved).item(stays);
    vec![
        ("PatchOrderRequest", patch_order.into()),
        ("PatchVendorRequest", patch_vendor.into()),
    ]
}
