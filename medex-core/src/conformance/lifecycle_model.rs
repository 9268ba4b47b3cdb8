//! The order lifecycle re-stated as a reference model: DESIGN §2's table as plain `match`
//! arms, written independently of [`crate::lifecycle::RULES`]. Property tests and fuzzers run
//! random sequences of [`Op`] through `MedEx` and through [`Model`] and compare the two.
//!
//! The world: pharmacy A (every order's) with drivers 0 and 1, pharmacy B with driver 2, two
//! customers and an admin.

use crate::MedEx;
use crate::error::Result;
use crate::model::{
    DriverId, DriverStatus, Money, Order, OrderId, OrderStatus, VehicleType, VendorId,
};
use crate::permissions::Actor;
use crate::service::{AssignmentResponse, NewAccount, NewDriver, NewVendor};

/// Who acts: the parties of the model's world.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Who {
    /// The admin.
    Admin,
    /// Customer 0 or 1.
    Customer(usize),
    /// Staff of pharmacy A, every order's pharmacy.
    VendorA,
    /// Staff of pharmacy B, a stranger to every order.
    VendorB,
    /// Driver 0 or 1 (pharmacy A's fleet) or 2 (pharmacy B's).
    Driver(usize),
    /// Whoever the model says would normally take this action, so sequences get far.
    Usual,
}

/// One step of a sequence.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Customer n places an order at pharmacy A.
    Create(usize),
    /// Someone takes an action on order n.
    Act(Who, usize, Act),
    /// The next forward move of an order by its usual party.
    Progress(usize),
    /// Driver n sets its own availability.
    DriverStatus(usize, DriverStatus),
    /// Moves the clock by seconds (backwards too).
    Tick(i64),
}

/// An action on an order.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Act {
    /// The pharmacy accepts.
    Accept,
    /// The pharmacy rejects (with a reason).
    Reject,
    /// The pharmacy assigns driver n.
    Assign(usize),
    /// The driver acknowledges its assignment.
    AcceptAssignment,
    /// The driver declines its assignment.
    Decline,
    /// The driver picks up.
    PickUp,
    /// The driver leaves for the customer.
    StartDelivery,
    /// The driver hands over.
    Deliver,
    /// Someone cancels.
    Cancel,
}

/// What the model knows of an order.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelOrder {
    /// Which customer placed it.
    pub customer: usize,
    /// Its status.
    pub status: OrderStatus,
    /// The driver working on it.
    pub driver: Option<usize>,
    /// Length of its status history.
    pub history: usize,
}

/// What the model knows of a driver.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDriver {
    /// Its availability.
    pub status: DriverStatus,
    /// The order it works on.
    pub order: Option<usize>,
    /// Deliveries completed in this sequence.
    pub deliveries: u64,
    /// Earned before this sequence began (a fleet may serve several).
    pub earned_before: Money,
    /// The orders it was credited for, each once.
    pub earned_orders: Vec<usize>,
}

/// The whole model: orders and drivers by index.
#[derive(Debug, Default)]
pub struct Model {
    /// Orders, in creation order.
    pub orders: Vec<ModelOrder>,
    /// Drivers 0, 1 (pharmacy A) and 2 (pharmacy B).
    pub drivers: Vec<ModelDriver>,
}

/// Drivers 0 and 1 belong to pharmacy A (every order's pharmacy), driver 2 to pharmacy B.
pub fn fleet_a(driver: usize) -> bool {
    driver < 2
}

impl Model {
    fn free(&mut self, driver: Option<usize>) {
        if let Some(d) = driver {
            self.drivers[d].status = DriverStatus::Available;
            self.drivers[d].order = None;
        }
    }

    /// Applies an action; returns whether it must succeed.
    pub fn act(&mut self, who: Who, index: usize, act: Act) -> bool {
        use OrderStatus::*;
        let Some(order) = self.orders.get(index).cloned() else {
            return false;
        };
        let staff = matches!(who, Who::VendorA | Who::Admin);
        let at_work = matches!(order.status, DriverAssigned | PickedUp | OutForDelivery);
        let assigned = at_work && matches!(who, Who::Driver(d) if order.driver == Some(d));
        let customer = who == Who::Customer(order.customer);
        let mut next = order.clone();
        let mut step = |status: OrderStatus| {
            next.status = status;
            next.history += 1;
        };
        match (act, order.status) {
            (Act::Accept, Pending) if staff => step(Accepted),
            (Act::Reject, Pending) if staff => step(Rejected),
            (Act::Assign(d), Accepted | DriverAssigned) if staff && fleet_a(d) => {
                if order.driver == Some(d) {
                    return true;
                }
                let driver = &self.drivers[d];
                if driver.status != DriverStatus::Available || driver.order.is_some() {
                    return false;
                }
                step(DriverAssigned);
                next.driver = Some(d);
                self.free(order.driver);
                self.drivers[d].status = DriverStatus::Busy;
                self.drivers[d].order = Some(index);
            }
            (Act::AcceptAssignment, _) if assigned => return true,
            (Act::Decline, DriverAssigned) if assigned => {
                step(Accepted);
                next.driver = None;
                self.free(order.driver);
            }
            (Act::PickUp, DriverAssigned) if assigned => step(PickedUp),
            (Act::StartDelivery, PickedUp) if assigned => step(OutForDelivery),
            (Act::Deliver, OutForDelivery) if assigned => {
                step(Delivered);
                let d = order.driver.expect("an order on its way has a driver");
                self.drivers[d].deliveries += 1;
                self.drivers[d].earned_orders.push(index);
                self.free(Some(d));
            }
            (Act::Cancel, Pending | Accepted) if customer || staff => step(Cancelled),
            (Act::Cancel, DriverAssigned) if staff => {
                step(Cancelled);
                self.free(order.driver);
            }
            (Act::Cancel, PickedUp | OutForDelivery) if who == Who::Admin => {
                step(Cancelled);
                self.free(order.driver);
            }
            _ => return false,
        }
        self.orders[index] = next;
        true
    }

    /// The party that usually takes `act` on order `index`.
    pub fn usual(&self, index: usize, act: Act) -> Who {
        let order = self.orders.get(index);
        match act {
            Act::Accept | Act::Reject | Act::Assign(_) => Who::VendorA,
            Act::Cancel => Who::Customer(order.map_or(0, |o| o.customer)),
            _ => Who::Driver(order.and_then(|o| o.driver).unwrap_or(0)),
        }
    }

    /// The move that takes order `index` one step towards delivery.
    pub fn progress(&self, index: usize) -> Act {
        match self.orders.get(index).map(|o| o.status) {
            Some(OrderStatus::Accepted) => {
                let free = (0..2).find(|&d| self.drivers[d].status == DriverStatus::Available);
                Act::Assign(free.unwrap_or(0))
            }
            Some(OrderStatus::DriverAssigned) => Act::PickUp,
            Some(OrderStatus::PickedUp) => Act::StartDelivery,
            Some(OrderStatus::OutForDelivery) => Act::Deliver,
            _ => Act::Accept,
        }
    }

    /// Driver `d` sets its availability; returns whether it must succeed.
    pub fn set_driver_status(&mut self, d: usize, status: DriverStatus) -> bool {
        if self.drivers[d].order.is_some() {
            return false;
        }
        self.drivers[d].status = status;
        true
    }
}

/// The accounts of the model's world, registered through the use cases: an admin, two customers,
/// pharmacy A with drivers 0 and 1, pharmacy B with driver 2. Every password is [`PASSWORD`].
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
    /// Drivers 0, 1 (pharmacy A) and 2 (pharmacy B), with their profiles.
    pub drivers: [(Actor, DriverId); 3],
}

/// The password of every account [`Parties::register`] creates.
pub const PASSWORD: &str = "correct horse battery";

impl Parties {
    /// Registers the world's accounts; panics if the service refuses (a broken test setup).
    pub async fn register(medex: &MedEx) -> Parties {
        let admin = Actor::of(
            &medex
                .create_admin("admin@medex.test", PASSWORD, "Admin")
                .await
                .expect("admin"),
        );
        let vendor = |n: u8, lat: f64| NewVendor {
            email: format!("owner{n}@pharmacy.test"),
            password: PASSWORD.into(),
            business_name: format!("Pharmacy {n}"),
            address: format!("{n} Main St"),
            latitude: lat,
            longitude: 13.40,
            ..Default::default()
        };
        let (a, a_owner) = medex
            .register_vendor(vendor(1, 52.50))
            .await
            .expect("pharmacy A");
        let (_, b_owner) = medex
            .register_vendor(vendor(2, 52.60))
            .await
            .expect("pharmacy B");
        let (vendor_a, vendor_b) = (Actor::of(&a_owner), Actor::of(&b_owner));
        let mut drivers = Vec::new();
        for (n, owner) in [(1, vendor_a), (2, vendor_a), (3, vendor_b)] {
            let new = NewDriver {
                vendor_id: None,
                email: format!("driver{n}@pharmacy.test"),
                password: PASSWORD.into(),
                full_name: format!("Driver Number{n}"),
                phone: Some("+1 555".into()),
                vehicle_type: VehicleType::Car,
                vehicle_number: None,
                license_number: None,
            };
            let (driver, user) = medex.register_driver(&owner, new).await.expect("driver");
            drivers.push((Actor::of(&user), driver.id));
        }
        let mut customers = Vec::new();
        for n in 1..=2 {
            let account = NewAccount {
                email: format!("customer{n}@example.test"),
                password: PASSWORD.into(),
                full_name: format!("Customer {n}"),
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
            drivers: [drivers[0], drivers[1], drivers[2]],
        }
    }

    /// The actor behind `who` ([`Who::Usual`] must be resolved with [`Model::usual`] first).
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

    /// Takes `act` on order `id` as `who`, through the use cases.
    pub async fn act(&self, medex: &MedEx, who: Who, id: OrderId, act: Act) -> Result<Order> {
        let actor = self.actor(who);
        let status = |s| medex.change_status(&actor, id, s, None);
        match act {
            Act::Accept => status(OrderStatus::Accepted).await,
            Act::Reject => {
                medex
                    .change_status(
                        &actor,
                        id,
                        OrderStatus::Rejected,
                        Some("out of stock".into()),
                    )
                    .await
            }
            Act::Assign(d) => medex.assign_driver(&actor, id, self.drivers[d].1).await,
            Act::AcceptAssignment => {
                medex
                    .respond_to_assignment(&actor, id, AssignmentResponse::Accept, None)
                    .await
            }
            Act::Decline => {
                medex
                    .respond_to_assignment(&actor, id, AssignmentResponse::Decline, None)
                    .await
            }
            Act::PickUp => status(OrderStatus::PickedUp).await,
            Act::StartDelivery => status(OrderStatus::OutForDelivery).await,
            Act::Deliver => status(OrderStatus::Delivered).await,
            Act::Cancel => medex.cancel_order(&actor, id, None).await,
        }
    }
}
