//! Records for tests. Ids come from a number but are scrambled, so that id order (the order of
//! lists) has nothing to do with creation times.

use chrono::{DateTime, Utc};
use medex_core::conformance::fixtures;
use medex_core::model::{
    Driver, DriverId, Order, OrderId, Role, User, UserId, VehicleType, Vendor, VendorId,
};
use uuid::Uuid;

pub(crate) fn t0() -> DateTime<Utc> {
    fixtures::t0()
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
        phone: Some("+49 30 1234".into()),
        ..fixtures::user(user_id(n), email, Role::User)
    }
}

pub(crate) fn vendor(n: u64, owner: UserId) -> Vendor {
    Vendor {
        require_signature: true,
        ..fixtures::vendor(vendor_id(n), owner)
    }
}

pub(crate) fn driver(n: u64, vendor: VendorId, owner: UserId) -> Driver {
    Driver {
        vehicle_type: VehicleType::Bike,
        ..fixtures::driver(driver_id(n), vendor, owner)
    }
}

pub(crate) fn order(n: u64, vendor: VendorId, customer: UserId) -> Order {
    fixtures::order(order_id(n), vendor, customer)
}

pub(crate) use fixtures::fix;
