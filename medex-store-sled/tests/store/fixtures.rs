//! Records for tests. Ids come from a number but are scrambled, so that id order (the order of
//! lists) has nothing to do with creation times.

use chrono::{DateTime, Duration, TimeZone, Utc};
use medex_core::model::{
    Coordinates, Driver, DriverId, DriverStatus, Email, LocationFix, Money, Order, OrderId,
    OrderItem, OrderStatus, Role, User, UserId, VehicleType, Vendor, VendorId,
};
use uuid::Uuid;

pub(crate) fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()
}

/// A scrambled id for `n` within a `kind`.
pub(crate) fn id(kind: u8, n: u64) -> Uuid {
    let mixed = (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    Uuid::from_u128((u128::from(mixed) << 64) | (u128::from(kind) << 56) | u128::from(n))
}

pub(crate) fn user_id(n: u64) -> UserId {
    UserId::from_uuid(id(1, n))
}
pub(crate) fn vendor_id(n: u64) -> VendorId {
    VendorId::from_uuid(id(2, n))
}
pub(crate) fn driver_id(n: u64) -> DriverId {
    DriverId::from_uuid(id(3, n))
}
pub(crate) fn order_id(n: u64) -> OrderId {
    OrderId::from_uuid(id(4, n))
}

pub(crate) fn user(n: u64, email: &str) -> User {
    User {
        id: user_id(n),
        email: Email::parse(email).unwrap(),
        full_name: format!("User {n}"),
        phone: Some("+49 30 1234".into()),
        role: Role::User,
        is_active: true,
        password_hash: "$argon2id$stub".into(),
        vendor_id: None,
        driver_id: None,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

pub(crate) fn vendor(n: u64, owner: UserId) -> Vendor {
    Vendor {
        id: vendor_id(n),
        user_id: owner,
        business_name: format!("Pharmacy {n}"),
        email: Email::parse(&format!("v{n}@example.com")).unwrap(),
        phone: None,
        address: "1 Main St".into(),
        location: Coordinates::new(52.5, 13.4).unwrap(),
        driver_ids: vec![],
        is_active: true,
        require_proof_photo: false,
        require_signature: true,
        woocommerce_webhook_secret: None,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

pub(crate) fn driver(n: u64, vendor: VendorId, owner: UserId) -> Driver {
    Driver {
        id: driver_id(n),
        user_id: owner,
        vendor_id: vendor,
        full_name: format!("Driver {n}"),
        email: Email::parse(&format!("d{n}@example.com")).unwrap(),
        phone: None,
        vehicle_type: VehicleType::Bike,
        vehicle_number: None,
        license_number: None,
        status: DriverStatus::Available,
        active_order_id: None,
        current_latitude: None,
        current_longitude: None,
        last_location_update: None,
        total_deliveries: 0,
        total_earnings: Money::ZERO,
        is_active: true,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

pub(crate) fn order(n: u64, vendor: VendorId, customer: UserId) -> Order {
    Order {
        id: order_id(n),
        order_number: format!("ORD-{n:08}"),
        user_id: customer,
        vendor_id: vendor,
        driver_id: None,
        tracking_token: format!("token-{n}"),
        status: OrderStatus::Pending,
        pickup_address: "1 Main St".into(),
        pickup_latitude: 52.5,
        pickup_longitude: 13.4,
        delivery_address: "2 Side St".into(),
        delivery_latitude: Some(52.51),
        delivery_longitude: Some(13.41),
        customer_name: "Ann".into(),
        customer_phone: "555".into(),
        items: vec![OrderItem {
            name: "Aspirin".into(),
            quantity: 2,
            notes: Some("after meals".into()),
        }],
        notes: None,
        estimated_distance_km: Some(1.3),
        actual_distance_km: None,
        delivery_fee: Money::from_cents(325),
        proof_photo_url: None,
        signature_url: None,
        accepted_at: None,
        driver_accepted_at: None,
        picked_up_at: None,
        out_for_delivery_at: None,
        delivered_at: None,
        cancelled_at: None,
        cancel_reason: None,
        reject_reason: None,
        status_history: vec![],
        external_ref: None,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

pub(crate) fn fix(driver: DriverId, seconds: i64, latitude: f64) -> LocationFix {
    LocationFix {
        driver_id: driver,
        latitude,
        longitude: 13.4,
        speed: Some(20.0),
        heading: None,
        accuracy: Some(5.0),
        recorded_at: t0() + Duration::seconds(seconds),
    }
}
