//! The one test world of MedEx (feature `conformance`): a service with a standard cast of
//! accounts, and the moves that put orders into any status. Use-case tests, the HTTP and
//! WebSocket suites, the end-to-end suites and the fuzz targets all build on it, in process or
//! over a real server, instead of each writing its own.
//!
//! ```
//! # futures::executor::block_on(async {
//! use medex_core::model::OrderStatus;
//! use medex_core::testkit::World;
//!
//! let w = World::in_memory(7).await;
//! let order = w.order_in(OrderStatus::OutForDelivery).await;
//! assert_eq!(order.driver_id, Some(w.drivers[0].1));
//! # });
//! ```

use std::sync::Arc;

use chrono::{DateTime, TimeZone, Utc};

use crate::MedEx;
use crate::auth::{Argon2Hasher, PasswordHasher, TokenKeys, TokenLifetimes};
use crate::clock::{Clock, ManualClock, SeededEntropy, SystemClock};
use crate::config::SystemConfig;
use crate::custody::CustodyKeys;
use crate::error::Result;
use crate::events::{EventBus, RecordingBus};
use crate::memory::MemoryStore;
use crate::model::{DriverId, DriverStatus, Order, OrderId, OrderStatus, VehicleType, VendorId};
use crate::permissions::Actor;
use crate::service::{
    AssignmentResponse, NewAccount, NewDriver, NewItem, NewOrder, NewVendor, Ports, Transition,
};
use crate::store::Store;

mod flaky;
pub mod lifecycle_model;

pub use flaky::FlakyStore;

/// The password of every account of the world.
pub const PASSWORD: &str = "correct horse battery";

/// The secret the in-memory world signs its tokens with.
pub const TOKEN_SECRET: [u8; 32] = [9; 32];

/// The seed of the in-memory world's custody key.
pub const CUSTODY_SEED: [u8; 32] = [11; 32];

/// When the in-memory world's clock starts: 2026-06-01 09:00 UTC.
pub fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap()
}

/// Who acts: the parties of the world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The admin.
    Admin,
    /// Customer 0 or 1.
    Customer(usize),
    /// Staff of pharmacy A, the pharmacy of the world's orders.
    VendorA,
    /// Staff of pharmacy B, a stranger to them.
    VendorB,
    /// Driver 0 or 1 (pharmacy A's fleet) or 2 (pharmacy B's).
    Driver(usize),
    /// Whoever the lifecycle model says would normally take an action, so sequences get far.
    Usual,
}

/// The accounts of the world, registered through the use cases: an admin, two customers,
/// pharmacy A with drivers 0 and 1, pharmacy B with driver 2. Every password is [`PASSWORD`];
/// the e-mail addresses are [`Parties::email`].
#[derive(Debug, Clone, Copy)]
pub struct Parties {
    /// The admin.
    pub admin: Actor,
    /// Customers 0 and 1.
    pub customers: [Actor; 2],
    /// Staff of pharmacy A.
    pub vendor_a: Actor,
    /// Staff of pharmacy B.
    pub vendor_b: Actor,
    /// Pharmacy A.
    pub vendor_a_id: VendorId,
    /// Pharmacy B.
    pub vendor_b_id: VendorId,
    /// Drivers 0, 1 (pharmacy A) and 2 (pharmacy B), with their profiles.
    pub drivers: [(Actor, DriverId); 3],
}

/// A new order for pharmacy `vendor`, 2.6 km from the world's pharmacy A: valid as it is.
pub fn new_order(vendor: VendorId) -> NewOrder {
    NewOrder {
        vendor_id: vendor,
        delivery_address: "9 Elm St".into(),
        delivery_latitude: 52.52,
        delivery_longitude: 13.42,
        customer_name: "Ann Patient".into(),
        customer_phone: "+49 30 1234".into(),
        items: vec![NewItem {
            name: "Insulin pen".into(),
            quantity: 2,
            notes: Some("keep cold".into()),
        }],
        notes: None,
        requirements: Default::default(),
        schedule: Default::default(),
    }
}

impl Parties {
    /// Registers the world's accounts; panics if the service refuses (a broken test setup).
    /// Addresses carry `tag` (`admin{tag}@medex.test`, …), so that several worlds can share one
    /// store.
    pub async fn register(medex: &MedEx, tag: &str) -> Parties {
        let admin = Actor::of(
            &medex
                .create_admin(&Self::email(Who::Admin, tag), PASSWORD, "Admin")
                .await
                .expect("admin"),
        );
        let vendor = |who: Who, n: u8, lat: f64| NewVendor {
            email: Self::email(who, tag),
            password: PASSWORD.into(),
            business_name: format!("Pharmacy {n}"),
            phone: Some(format!("+49 30 555 010{n}")),
            address: format!("{n} Main St"),
            latitude: lat,
            longitude: 13.40,
            ..Default::default()
        };
        let (a, a_owner) = medex
            .register_vendor(vendor(Who::VendorA, 1, 52.50))
            .await
            .expect("pharmacy A");
        let (b, b_owner) = medex
            .register_vendor(vendor(Who::VendorB, 2, 52.60))
            .await
            .expect("pharmacy B");
        let (vendor_a, vendor_b) = (Actor::of(&a_owner), Actor::of(&b_owner));
        let mut drivers = Vec::new();
        for (d, owner) in [(0, vendor_a), (1, vendor_a), (2, vendor_b)] {
            let new = NewDriver {
                vendor_id: None,
                email: Self::email(Who::Driver(d), tag),
                password: PASSWORD.into(),
                full_name: format!("Driver Number{}", d + 1),
                phone: Some("+1 555".into()),
                vehicle_type: VehicleType::Car,
                vehicle_number: None,
                license_number: None,
            };
            let (driver, user) = medex.register_driver(&owner, new).await.expect("driver");
            drivers.push((Actor::of(&user), driver.id));
        }
        let mut customers = Vec::new();
        for c in 0..2 {
            let account = NewAccount {
                email: Self::email(Who::Customer(c), tag),
                password: PASSWORD.into(),
                full_name: format!("Customer {}", c + 1),
                phone: None,
            };
            customers.push(Actor::of(
                &medex
                    .register_customer(account)
                    .await
                    .expect("customer")
                    .user,
            ));
        }
        Parties {
            admin,
            customers: [customers[0], customers[1]],
            vendor_a,
            vendor_b,
            vendor_a_id: a.id,
            vendor_b_id: b.id,
            drivers: [drivers[0], drivers[1], drivers[2]],
        }
    }

    /// The login e-mail of `who` in a world registered with `tag`.
    pub fn email(who: Who, tag: &str) -> String {
        match who {
            Who::Admin => format!("admin{tag}@medex.test"),
            Who::Customer(c) => format!("customer{}{tag}@example.test", c + 1),
            Who::VendorA => format!("owner1{tag}@pharmacy.test"),
            Who::VendorB => format!("owner2{tag}@pharmacy.test"),
            Who::Driver(d) => format!("driver{}{tag}@pharmacy.test", d + 1),
            Who::Usual => unreachable!("resolved against the model before use"),
        }
    }

    /// The actor behind `who` ([`Who::Usual`] must be resolved with
    /// [`lifecycle_model::Model::usual`] first).
    pub fn actor(&self, who: Who) -> Actor {
        match who {
            Who::Admin => self.admin,
            Who::Customer(c) => self.customers[c],
            Who::VendorA => self.vendor_a,
            Who::VendorB => self.vendor_b,
            Who::Driver(d) => self.drivers[d].0,
            Who::Usual => unreachable!("resolved against the model before use"),
        }
    }
}

/// A service with the world's accounts. Build one on the in-memory store with
/// [`World::in_memory`], or around any running service with [`World::on`].
pub struct World {
    /// The use cases.
    pub medex: Arc<MedEx>,
    /// The clock, when the world owns a manual one.
    pub clock: Option<Arc<ManualClock>>,
    /// What the service published, when the world owns the bus (in memory).
    pub bus: Option<Arc<RecordingBus>>,
    /// The tag of the accounts' e-mail addresses.
    pub tag: String,
    /// The accounts.
    pub parties: Parties,
}

/// `w.admin`, `w.drivers[0]`, …: the world's accounts read as its own fields.
impl std::ops::Deref for World {
    type Target = Parties;
    fn deref(&self) -> &Parties {
        &self.parties
    }
}

/// How to build an in-memory world; [`Options::default`] is what [`World::in_memory`] uses.
pub struct Options {
    /// Seed of ids, tokens and order numbers.
    pub seed: u64,
    /// Password hashing (fast, insecure parameters by default).
    pub hasher: Arc<dyn PasswordHasher>,
    /// Where events go besides the recording bus the world keeps.
    pub bus: Option<Arc<dyn EventBus>>,
    /// The configuration in force.
    pub config: SystemConfig,
    /// Where records live (a fresh in-memory store by default).
    pub store: Option<Arc<dyn Store>>,
    /// Run on the system's clock instead of a manual one at [`start`], for suites that talk to
    /// the service over sockets and wait for real time to pass (pings, idle timeouts).
    pub live_clock: bool,
    /// Travel times between the stops of runs (great circles by default).
    pub router: Option<Arc<dyn crate::router::Router>>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            seed: 1,
            hasher: Arc::new(Argon2Hasher::insecure_fast()),
            bus: None,
            config: SystemConfig::default(),
            store: None,
            live_clock: false,
            router: None,
        }
    }
}

/// A service as `options` describe it, with no accounts: for suites that register their own
/// through their transport. [`World::with`] builds on it.
pub struct Service;

impl Service {
    /// The service `options` describe.
    pub async fn with(options: Options) -> Arc<MedEx> {
        Self::build(options).await.0
    }

    /// The service, its manual clock (in force unless `live_clock`) and its recording bus.
    async fn build(options: Options) -> (Arc<MedEx>, Arc<ManualClock>, Arc<RecordingBus>) {
        let manual = Arc::new(ManualClock::new(start()));
        let clock: Arc<dyn Clock> = if options.live_clock {
            Arc::new(SystemClock)
        } else {
            manual.clone()
        };
        let recording = Arc::new(RecordingBus::default());
        let bus: Arc<dyn EventBus> = match options.bus {
            Some(other) => Arc::new(Tee(recording.clone(), other)),
            None => recording.clone(),
        };
        let medex = MedEx::new(
            Ports {
                store: options
                    .store
                    .unwrap_or_else(|| Arc::new(MemoryStore::new())),
                bus,
                clock,
                entropy: Arc::new(SeededEntropy::new(options.seed)),
                hasher: options.hasher,
                tokens: TokenKeys::new(&TOKEN_SECRET, TokenLifetimes::default()).unwrap(),
                custody: CustodyKeys::from_seed(CUSTODY_SEED),
            },
            options.config,
        )
        .await
        .expect("the service starts");
        let medex = match options.router {
            Some(router) => medex.with_router(router),
            None => medex,
        };
        (Arc::new(medex), manual, recording)
    }
}

/// Hands every event to the world's recording bus and to the caller's bus.
struct Tee(Arc<RecordingBus>, Arc<dyn EventBus>);

impl EventBus for Tee {
    fn publish(&self, event: crate::events::Event) {
        self.0.publish(event.clone());
        self.1.publish(event);
    }

    fn health(&self) -> crate::events::BusHealth {
        self.1.health()
    }
}

impl World {
    /// The in-memory store, a manual clock at [`start`], ids seeded by `seed`, fast hashing and
    /// a recording bus (emptied after the accounts are registered).
    pub async fn in_memory(seed: u64) -> World {
        Self::with(Options {
            seed,
            ..Options::default()
        })
        .await
    }

    /// A world built with `options`.
    pub async fn with(options: Options) -> World {
        let live = options.live_clock;
        let (medex, clock, recording) = Service::build(options).await;
        let mut world = World::on(medex, "").await;
        recording.take();
        world.clock = (!live).then_some(clock);
        world.bus = Some(recording);
        world
    }

    /// The world's accounts registered on `medex` (a composed server's, say), their e-mail
    /// addresses tagged with `tag` so that worlds sharing a store stay apart.
    pub async fn on(medex: Arc<MedEx>, tag: &str) -> World {
        let parties = Parties::register(&medex, tag).await;
        World {
            medex,
            clock: None,
            bus: None,
            tag: tag.to_owned(),
            parties,
        }
    }

    /// The login e-mail of `who`.
    pub fn email(&self, who: Who) -> String {
        Parties::email(who, &self.tag)
    }

    /// What the service of an in-memory world published since the last call.
    pub fn events(&self) -> Vec<crate::events::Event> {
        self.bus
            .as_deref()
            .expect("only in-memory worlds own their bus")
            .take()
    }

    /// The manual clock of an in-memory world.
    pub fn clock(&self) -> &ManualClock {
        self.clock
            .as_deref()
            .expect("only in-memory worlds own their clock")
    }

    /// Takes `act` on order `id` as `who`, through the use cases.
    pub async fn act(&self, who: Who, id: OrderId, act: lifecycle_model::Act) -> Result<Order> {
        lifecycle_model::act(&self.medex, self.parties.actor(who), &self.parties, id, act).await
    }

    /// A new order of customer 0 at pharmacy A, moved to `status` by the usual parties; from
    /// `driver_assigned` on, driver 0 works on it (made available first if it is not busy; a
    /// busy driver takes it into its run when pharmacy A allows).
    /// `failed` is reached with reason `recipient_absent`, `returned` through `failed`.
    pub async fn order_in(&self, status: OrderStatus) -> Order {
        self.order_for(status, 0).await
    }

    /// As [`World::order_in`], with pharmacy A's driver `driver` (0 or 1).
    pub async fn order_for(&self, status: OrderStatus, driver: usize) -> Order {
        let order = self
            .medex
            .create_order(&self.customers[0], new_order(self.vendor_a_id))
            .await
            .expect("a valid order is placed");
        self.move_to(order.id, status, driver).await
    }

    /// Moves order `id` to `status` with the usual parties and pharmacy A's driver `driver`,
    /// from pending or from a status on the way there (an accepted new attempt, say).
    pub async fn move_to(&self, id: OrderId, status: OrderStatus, driver: usize) -> Order {
        use OrderStatus::*;
        let m = &self.medex;
        let (driver, driver_id) = self.drivers[driver];
        let path: &[OrderStatus] = match status {
            Pending => &[],
            Accepted => &[Accepted],
            DriverAssigned => &[Accepted, DriverAssigned],
            PickedUp => &[Accepted, DriverAssigned, PickedUp],
            OutForDelivery => &[Accepted, DriverAssigned, PickedUp, OutForDelivery],
            Delivered => &[
                Accepted,
                DriverAssigned,
                PickedUp,
                OutForDelivery,
                Delivered,
            ],
            Rejected => &[Rejected],
            Cancelled => &[Cancelled],
            Failed => &[Accepted, DriverAssigned, PickedUp, OutForDelivery, Failed],
            Returned => &[
                Accepted,
                DriverAssigned,
                PickedUp,
                OutForDelivery,
                Failed,
                Returned,
            ],
        };
        let mut order = m
            .get_order(&self.admin, id)
            .await
            .expect("the order exists");
        let done = path
            .iter()
            .position(|s| *s == order.status)
            .map_or(0, |i| i + 1);
        for step in &path[done..] {
            order = match step {
                Accepted => m.change_status(&self.vendor_a, id, Accepted, None).await,
                Rejected => {
                    m.change_status(&self.vendor_a, id, Rejected, Some("out of stock".into()))
                        .await
                }
                Cancelled => m.cancel_order(&self.customers[0], id, None).await,
                Failed => {
                    let failed = Transition {
                        reason: Some("recipient_absent".into()),
                        ..Transition::to(Failed)
                    };
                    m.transition(&driver, id, failed).await
                }
                Returned => m.change_status(&self.vendor_a, id, Returned, None).await,
                DriverAssigned => {
                    let current = m.get_driver(&self.admin, driver_id).await.expect("driver");
                    // A busy driver takes the order into its run, if its pharmacy allows.
                    if !matches!(current.status, DriverStatus::Available | DriverStatus::Busy) {
                        m.set_driver_status(&driver, driver_id, DriverStatus::Available)
                            .await
                            .expect("the driver is free to go on duty");
                    }
                    m.assign_driver(&self.vendor_a, id, driver_id).await
                }
                PickedUp => {
                    m.respond_to_assignment(&driver, id, AssignmentResponse::Accept, None)
                        .await
                        .expect("the driver accepts");
                    m.change_status(&driver, id, PickedUp, None).await
                }
                other => m.change_status(&driver, id, *other, None).await,
            }
            .unwrap_or_else(|e| panic!("moving the order to {step}: {e:?}"));
        }
        order
    }
}
