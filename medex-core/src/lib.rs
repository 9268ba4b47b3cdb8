//! MedEx core: the domain of last-mile medical delivery, with no IO.
//!
//! Orders move through a lifecycle ([`lifecycle`]) decided by one transition table; who may see
//! and do what is decided in one place ([`permissions`]); pricing, ETAs and reports are pure
//! functions. The use cases live on [`MedEx`], which talks to the world through ports: a
//! [`Store`](store::Store), an [`EventBus`](events::EventBus), a [`Clock`](clock::Clock), an
//! [`Entropy`](clock::Entropy) source and a [`PasswordHasher`](auth::PasswordHasher).
//!
//! A whole delivery with the in-memory store:
//!
//! ```
//! use std::sync::Arc;
//! use medex_core::prelude::*;
//!
//! # futures::executor::block_on(async {
//! let medex = MedEx::new(Ports {
//!     store: Arc::new(MemoryStore::new()),
//!     bus: Arc::new(NullBus),
//!     clock: Arc::new(SystemClock),
//!     entropy: Arc::new(OsEntropy),
//!     hasher: Arc::new(Argon2Hasher::insecure_fast()),
//!     tokens: TokenKeys::new(&[7; 32], TokenLifetimes::default()).unwrap(),
//!     custody: CustodyKeys::from_seed([8; 32]),
//! }, SystemConfig::default()).await?;
//!
//! // A pharmacy registers and adds a driver; a customer registers.
//! let (pharmacy, owner) = medex.register_vendor(NewVendor {
//!     email: "owner@pharmacy.test".into(), password: "s3cret-pass".into(),
//!     business_name: "Corner Pharmacy".into(), address: "1 Main St".into(),
//!     latitude: 52.52, longitude: 13.40, ..Default::default()
//! }).await?;
//! let vendor = Actor::of(&owner);
//! let (driver, driver_user) = medex.register_driver(&vendor, NewDriver {
//!     vendor_id: None, email: "dee@pharmacy.test".into(), password: "s3cret-pass".into(),
//!     full_name: "Dee Driver".into(), phone: None, vehicle_type: VehicleType::Bike,
//!     vehicle_number: None, license_number: None,
//! }).await?;
//! let driver_actor = Actor::of(&driver_user);
//! let customer = medex.register_customer(NewAccount {
//!     email: "ann@example.test".into(), password: "s3cret-pass".into(),
//!     full_name: "Ann".into(), phone: None,
//! }).await?;
//! let customer = medex.authenticate(&customer.access_token).await?;
//!
//! // The customer orders; the pharmacy accepts and assigns; the driver delivers.
//! let order = medex.create_order(&customer, NewOrder {
//!     vendor_id: pharmacy.id, delivery_address: "9 Elm St".into(),
//!     delivery_latitude: 52.53, delivery_longitude: 13.41,
//!     customer_name: "Ann".into(), customer_phone: "+49 30 1234".into(),
//!     items: vec![NewItem { name: "Amoxicillin 500mg".into(), quantity: 1, notes: None }],
//!     notes: None, requirements: Requirements::default(), schedule: Default::default(),
//! }).await?;
//! medex.change_status(&vendor, order.id, OrderStatus::Accepted, None).await?;
//! medex.set_driver_status(&driver_actor, driver.id, DriverStatus::Available).await?;
//! medex.assign_driver(&vendor, order.id, driver.id).await?;
//! for step in [OrderStatus::PickedUp, OrderStatus::OutForDelivery, OrderStatus::Delivered] {
//!     medex.change_status(&driver_actor, order.id, step, None).await?;
//! }
//!
//! let delivered = medex.get_order(&customer, order.id).await?;
//! assert_eq!(delivered.status, OrderStatus::Delivered);
//! assert_eq!(delivered.status_history.len(), 6);
//! // Every entry is hashed into a chain whose head the server signed.
//! assert!(medex.custody_record(&customer, order.id).await?.verified);
//! let driver = medex.get_driver(&vendor, driver.id).await?;
//! assert_eq!(driver.total_earnings, delivered.delivery_fee);
//!
//! let today = medex.now().date_naive();
//! let utc = chrono::FixedOffset::east_opt(0).unwrap();
//! let report = medex.vendor_daily_report(&vendor, pharmacy.id, today, utc).await?;
//! assert_eq!(report.orders_delivered, 1);
//! # Ok::<(), medex_core::error::Error>(())
//! # }).unwrap();
//! ```

pub mod arrivals;
pub mod auth;
pub mod clock;
pub mod config;
#[cfg(any(test, feature = "conformance"))]
pub mod conformance;
pub mod custody;
pub mod error;
pub mod events;
pub mod fields;
pub mod files;
pub mod fix_queue;
pub mod integrations;
pub mod lifecycle;
pub mod memory;
pub mod model;
pub mod permissions;
pub mod remembered;
pub mod reports;
pub mod router;
pub mod routing;
pub mod sequencing;
pub mod service;
pub mod store;
pub mod suggestions;
#[cfg(any(test, feature = "conformance"))]
pub mod testkit;
pub mod timestamp;
pub mod tracking;
pub mod views;

pub use service::MedEx;

/// The names most programs need, in one import.
pub mod prelude {
    pub use crate::auth::{Argon2Hasher, PasswordHasher, TokenKeys, TokenLifetimes};
    pub use crate::clock::{Clock, Entropy, ManualClock, OsEntropy, SeededEntropy, SystemClock};
    pub use crate::config::{SystemConfig, Tariff, VehicleSpeeds};
    pub use crate::custody::CustodyKeys;
    pub use crate::error::{Error, Result};
    pub use crate::events::{Event, EventBus, InProcessBus, NullBus, RecordingBus};
    pub use crate::memory::MemoryStore;
    pub use crate::model::*;
    pub use crate::permissions::Actor;
    pub use crate::service::*;
    pub use crate::store::{Page, Store};
}
