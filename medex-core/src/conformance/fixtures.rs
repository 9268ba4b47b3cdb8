//! Plain records for tests and benchmarks of any crate: valid, versioned 1, timestamped [`t0`].
//! Change what a test cares about with struct update syntax:
//! `Order { status: OrderStatus::Accepted, ..fixtures::order(id, vendor, customer) }`.

use chrono::{DateTime, Duration, TimeZone, Utc};

use crate::model::*;

/// The fixed instant every fixture is created at: 2026-05-01 08:00 UTC.
pub fn t0() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()
}

/// An id of any kind that reads as its number: `00000000-0000-7000-8000-<n, 12 digits>`.
pub fn id<T: std::str::FromStr>(n: u64) -> T {
    match format!("00000000-0000-7000-8000-{n:012}").parse() {
        Ok(id) => id,
        Err(_) => panic!("{n} does not make an id"),
    }
}

/// A customer account (or any role) with a stub password hash.
pub fn user(id: UserId, email: &str, role: Role) -> User {
    User {
        id,
        email: Email::parse(email).expect("fixture e-mail"),
        full_name: "Ann Example".into(),
        phone: None,
        role,
        is_active: true,
        password_hash: "$argon2id$stub".into(),
        vendor_id: None,
        driver_id: None,
        sessions: Default::default(),
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

/// An active pharmacy at 52.5 N, 13.4 E with no proof policy.
pub fn vendor(id: VendorId, owner: UserId) -> Vendor {
    Vendor {
        id,
        user_id: owner,
        business_name: "Corner Pharmacy".into(),
        email: Email::parse(&format!("v{}@example.com", id.as_uuid().simple()))
            .expect("fixture e-mail"),
        phone: None,
        address: "1 Main St".into(),
        location: Coordinates::new(52.5, 13.4).expect("fixture coordinates"),
        driver_ids: vec![],
        is_active: true,
        require_proof_photo: false,
        require_signature: false,
        require_handover_code: false,
        delivery_radius_km: None,
        max_active_orders: 1,
        auto_assign: false,
        woocommerce_webhook_secret: None,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

/// An available scooter driver of `vendor`, without a position.
pub fn driver(id: DriverId, vendor: VendorId, owner: UserId) -> Driver {
    Driver {
        id,
        user_id: owner,
        vendor_id: vendor,
        full_name: "Dee Driver".into(),
        email: Email::parse(&format!("d{}@example.com", id.as_uuid().simple()))
            .expect("fixture e-mail"),
        phone: None,
        vehicle_type: VehicleType::Scooter,
        vehicle_number: None,
        license_number: None,
        status: DriverStatus::Available,
        active_order_id: None,
        active_order_ids: Vec::new(),
        manual_stop_order: Vec::new(),
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

/// A pending order of `customer` at `vendor`, 1.3 km, 3.25. Its order number and tracking token
/// are derived from the id, so distinct ids give distinct unique keys.
pub fn order(id: OrderId, vendor: VendorId, customer: UserId) -> Order {
    let hex = id.as_uuid().simple().to_string().to_uppercase();
    Order {
        id,
        order_number: format!("ORD-{}", &hex[24..]),
        user_id: customer,
        vendor_id: vendor,
        driver_id: None,
        tracking_token: format!("token-{hex}"),
        status: OrderStatus::Pending,
        pickup_address: "1 Main St".into(),
        pickup_latitude: 52.5,
        pickup_longitude: 13.4,
        delivery_address: "2 Side St".into(),
        delivery_latitude: Some(52.51),
        delivery_longitude: Some(13.41),
        customer_name: "Ann Example".into(),
        customer_phone: "+49 30 1234".into(),
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
        proofs: vec![],
        require_proof_photo: false,
        require_signature: false,
        require_handover_code: false,
        handover_code: HandoverCode::parse("123456").ok(),
        handover_failures: 0,
        attempt: 1,
        failure_reason: None,
        accepted_at: None,
        driver_accepted_at: None,
        picked_up_at: None,
        out_for_delivery_at: None,
        delivered_at: None,
        cancelled_at: None,
        cancel_reason: None,
        reject_reason: None,
        status_history: vec![],
        custody_seal: None,
        external_ref: None,
        deliver_after: None,
        deliver_before: None,
        scheduled_for: None,
        late_risk_at: None,
        driver_arriving_at: None,
        driver_arrived_at: None,
        created_at: t0(),
        updated_at: t0(),
        version: 1,
    }
}

/// A precise fix of `driver` at `latitude` (longitude 13.4), `seconds` after [`t0`].
pub fn fix(driver: DriverId, seconds: i64, latitude: f64) -> LocationFix {
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
