//! The order lifecycle re-stated as a reference model: DESIGN §2's table as plain `match`
//! arms, written independently of [`crate::lifecycle::RULES`]. Property tests and fuzzers run
//! random sequences of [`Op`] through `MedEx` and through [`Model`] and compare the two.
//!
//! The world: pharmacy A (every order's) with drivers 0 and 1, pharmacy B with driver 2, two
//! customers and an admin.

use crate::model::{DriverStatus, Money, OrderStatus};

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
