//! The order lifecycle re-stated as a reference model: DESIGN §2's table as plain `match`
//! arms, written independently of [`crate::lifecycle::RULES`], and [`run`], the one runner that
//! the property test and the lifecycle fuzz target both use: it plays a sequence of [`Op`]
//! through `MedEx` and through [`Model`] and compares the two after every step.
//!
//! The world is the test kit's ([`super::World`]): pharmacy A (every order's) with drivers 0 and
//! 1, pharmacy B with driver 2, two customers and an admin.

use chrono::Duration;

use super::{Parties, Who, World, new_order};
use crate::MedEx;
use crate::error::Result;
use crate::model::{DriverStatus, Money, Order, OrderId, OrderStatus};
use crate::permissions::Actor;
use crate::service::AssignmentResponse;

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

/// Takes `act` on order `id` as `actor`, through the use cases (`parties` names the drivers an
/// assignment may pick).
pub async fn act(
    medex: &MedEx,
    actor: Actor,
    parties: &Parties,
    id: OrderId,
    act: Act,
) -> Result<Order> {
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
        Act::Assign(d) => medex.assign_driver(&actor, id, parties.drivers[d].1).await,
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

/// Fails the run with a message when `condition` does not hold.
macro_rules! ensure {
    ($condition:expr, $($message:tt)+) => {
        if !$condition {
            return Err(format!($($message)+));
        }
    };
}

fn described(e: crate::error::Error) -> String {
    format!("{e:?}")
}

/// Plays `ops` through the world's service and through a fresh [`Model`], comparing outcome and
/// state after every step: each move succeeds exactly when the model says it must, a refused
/// move changes nothing, histories only grow, a driver works on one order at a time and is
/// credited once per delivery. At most `max_orders` orders are placed (further `Create`s are
/// skipped). The world may have served earlier runs: drivers' totals are read at the start, and
/// a run that passes leaves no order open and every driver offline.
///
/// `Err` describes the first difference.
pub async fn run(
    world: &World,
    ops: impl IntoIterator<Item = Op>,
    max_orders: usize,
) -> std::result::Result<(), String> {
    let medex = &world.medex;
    let mut model = Model::default();
    for (_, id) in world.drivers {
        let driver = medex
            .get_driver(&world.admin, id)
            .await
            .map_err(described)?;
        model.drivers.push(ModelDriver {
            status: driver.status,
            order: None,
            deliveries: driver.total_deliveries,
            earned_before: driver.total_earnings,
            earned_orders: vec![],
        });
    }
    let mut run = Run::default();
    for op in ops {
        match op {
            Op::Create(_) if run.ids.len() >= max_orders => {}
            Op::Create(c) => {
                let order = medex
                    .create_order(&world.customers[c], new_order(world.vendor_a_id))
                    .await
                    .map_err(|e| format!("a valid order is refused: {e:?}"))?;
                model.orders.push(ModelOrder {
                    customer: c,
                    status: OrderStatus::Pending,
                    driver: None,
                    history: 1,
                });
                run.ids.push(order.id);
                run.fees.push(order.delivery_fee);
                run.before.push(order);
            }
            Op::Progress(_) | Op::Act(..) => {
                let (who, index, act) = match op {
                    Op::Progress(index) => (Who::Usual, index, model.progress(index)),
                    Op::Act(who, index, act) => (who, index, act),
                    _ => unreachable!(),
                };
                let who = if who == Who::Usual {
                    model.usual(index, act)
                } else {
                    who
                };
                let expected = model.act(who, index, act);
                if let Some(&id) = run.ids.get(index) {
                    let result = world.act(who, id, act).await;
                    ensure!(
                        result.is_ok() == expected,
                        "{who:?} {act:?} on order {index}: expected {}, got {:?}",
                        if expected { "success" } else { "a refusal" },
                        result.err()
                    );
                    if result.is_err() {
                        let unchanged =
                            medex.get_order(&world.admin, id).await.map_err(described)?;
                        ensure!(
                            unchanged == run.before[index],
                            "a refused move changed order {index}"
                        );
                    }
                }
            }
            Op::DriverStatus(d, status) => {
                let expected = model.set_driver_status(d, status);
                let (actor, id) = world.drivers[d];
                let result = medex.set_driver_status(&actor, id, status).await;
                ensure!(
                    result.is_ok() == expected,
                    "driver {d} to {status:?}: {result:?}"
                );
            }
            Op::Tick(seconds) => world.clock().advance(Duration::seconds(seconds)),
        }
        run.check(world, &model).await?;
    }
    run.tidy(world).await
}

/// What a run remembers of the orders it placed.
#[derive(Default)]
struct Run {
    ids: Vec<OrderId>,
    fees: Vec<Money>,
    before: Vec<Order>,
}

impl Run {
    /// The service matches the model, and the invariants hold.
    async fn check(&mut self, world: &World, model: &Model) -> std::result::Result<(), String> {
        let medex = &world.medex;
        let mut active_per_driver = [0usize; 3];
        for (i, expected) in model.orders.iter().enumerate() {
            let order = medex
                .get_order(&world.admin, self.ids[i])
                .await
                .map_err(described)?;
            let before = &self.before[i];
            ensure!(
                order.status == expected.status,
                "order {i} status: {} but the model says {}",
                order.status,
                expected.status
            );
            ensure!(
                order.status_history.len() == expected.history,
                "order {i}: one history entry per accepted move"
            );
            let driver_index = order
                .driver_id
                .and_then(|id| world.drivers.iter().position(|d| d.1 == id));
            if !order.status.is_terminal() {
                ensure!(driver_index == expected.driver, "order {i} driver");
            }
            ensure!(
                order.status_history.last().map(|c| c.status) == Some(order.status),
                "order {i}: the history ends in the status"
            );
            ensure!(
                order.status_history.windows(2).all(|w| w[0].at <= w[1].at),
                "order {i}: the history goes forward in time"
            );
            ensure!(
                order.status_history.len() >= before.status_history.len()
                    && order.status_history[..before.status_history.len()]
                        == before.status_history[..],
                "order {i}: the history is never rewritten"
            );
            ensure!(
                !before.status.is_terminal() || order == *before,
                "order {i}: terminal orders never change"
            );
            if order.status.has_driver_at_work() {
                let Some(d) = driver_index else {
                    return Err(format!("order {i} is at work without a driver"));
                };
                active_per_driver[d] += 1;
            }
            self.before[i] = order;
        }
        for (d, expected) in model.drivers.iter().enumerate() {
            let driver = medex
                .get_driver(&world.admin, world.drivers[d].1)
                .await
                .map_err(described)?;
            ensure!(active_per_driver[d] <= 1, "driver {d} on two active orders");
            ensure!(driver.status == expected.status, "driver {d} status");
            ensure!(
                driver.total_deliveries == expected.deliveries,
                "driver {d} deliveries"
            );
            let earned = expected
                .earned_orders
                .iter()
                .fold(expected.earned_before, |sum, &i| {
                    sum.saturating_add(self.fees[i])
                });
            ensure!(
                driver.total_earnings == earned,
                "driver {d}: earnings credited once per delivery"
            );
        }
        Ok(())
    }

    /// Leaves the world as the next run expects it: no open order, every driver offline.
    async fn tidy(&self, world: &World) -> std::result::Result<(), String> {
        let medex = &world.medex;
        for &id in &self.ids {
            let order = medex.get_order(&world.admin, id).await.map_err(described)?;
            if !order.status.is_terminal() {
                medex
                    .cancel_order(&world.admin, id, None)
                    .await
                    .map_err(|e| format!("an admin cancels any open order: {e:?}"))?;
            }
        }
        for (actor, id) in world.drivers {
            medex
                .set_driver_status(&actor, id, DriverStatus::Offline)
                .await
                .map_err(|e| format!("a driver without an order goes offline: {e:?}"))?;
        }
        Ok(())
    }
}
