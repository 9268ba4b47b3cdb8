//! Records numbered by slot, for tests that refer to "user 3" or "order 7": ids come from the
//! number but are scrambled, so that id order (the order of lists) has nothing to do with the
//! numbers or with creation times.

use uuid::Uuid;

use super::fixtures;
use crate::model::{
    Driver, DriverId, LocationFix, Order, OrderId, Role, User, UserId, VehicleType, Vendor,
    VendorId,
};

/// A scrambled id for `n` within a `kind` (1 users, 2 vendors, 3 drivers, 4 orders).
pub fn id(kind: u8, n: u64) -> Uuid {
    let mixed = (n + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15).rotate_left(17);
    Uuid::from_u128((u128::from(mixed) << 64) | (u128::from(kind) << 56) | u128::from(n))
}

/// Account `n`'s id.
pub fn user_id(n: u64) -> UserId {
    UserId::from_uuid(id(1, n))
}
/// Pharmacy `n`'s id.
pub fn vendor_id(n: u64) -> VendorId {
    VendorId::from_uuid(id(2, n))
}
/// Driver `n`'s id.
pub fn driver_id(n: u64) -> DriverId {
    DriverId::from_uuid(id(3, n))
}
/// Order `n`'s id.
pub fn order_id(n: u64) -> OrderId {
    OrderId::from_uuid(id(4, n))
}

/// Customer account `n` with a phone number.
pub fn user(n: u64, email: &str) -> User {
    User {
        phone: Some("+49 30 1234".into()),
        ..fixtures::user(user_id(n), email, Role::User)
    }
}

/// Pharmacy `n` of account `owner`, requiring signatures.
pub fn vendor(n: u64, owner: UserId) -> Vendor {
    Vendor {
        require_signature: true,
        ..fixtures::vendor(vendor_id(n), owner)
    }
}

/// Bike driver `n` of `vendor`.
pub fn driver(n: u64, vendor: VendorId, owner: UserId) -> Driver {
    Driver {
        vehicle_type: VehicleType::Bike,
        ..fixtures::driver(driver_id(n), vendor, owner)
    }
}

/// Pending order `n` of `customer` at `vendor`.
pub fn order(n: u64, vendor: VendorId, customer: UserId) -> Order {
    fixtures::order(order_id(n), vendor, customer)
}

/// A fix of driver `n`, `seconds` after [`fixtures::t0`].
pub fn fix(n: u64, seconds: i64, latitude: f64) -> LocationFix {
    fixtures::fix(driver_id(n), seconds, latitude)
}
