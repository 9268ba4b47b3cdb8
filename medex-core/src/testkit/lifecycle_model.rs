//! The order lifecycle re-stated as a reference model: DESIGN §2's table and §10's failed
//! attempts, returns and handover codes as plain `match` arms, written independently of
//! [`crate::lifecycle::RULES`], and [`run`], the one runner that
//! the property test and the lifecycle fuzz target both use: it plays a sequence of [`Op`]
//! through `MedEx` and through [`Model`] and compares the two after every step.
//!
//! The world is the test kit's ([`super::World`]): pharmacy A (every order's) with drivers 0 and
//! 1, pharmacy B with driver 2, two customers and an admin. Pharmacy A's drivers hold runs of
//! up to its `max_active_orders` orders (DESIGN §14), which [`Op::Capacity`] changes.

use chrono::Duration;

use super::{Parties, Who, World, new_order};
use crate::MedEx;
use crate::error::Result;
use crate::model::{DriverStatus, FailureReason, HandoverCode, Money, Order, OrderId, OrderStatus};
use crate::permissions::Actor;
use crate::service::{AssignmentResponse, NewOrder, Requirements, Transition, VendorPatch};

/// One step of a sequence.
#[derive(Debug, Clone, Copy)]
pub enum Op {
    /// Customer n places an order at pharmacy A.
    Create(usize),
    /// Customer n places an order at pharmacy A that needs the handover code.
    CreateGuarded(usize),
    /// Someone takes an action on order n.
    Act(Who, usize, Act),
    /// The next forward move of an order by its usual party.
    Progress(usize),
    /// Driver n sets its own availability.
    DriverStatus(usize, DriverStatus),
    /// Moves the clock by seconds (backwards too).
    Tick(i64),
    /// Pharmacy A lets one driver hold up to this many active orders (out of range: refused).
    Capacity(u32),
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
    /// The driver hands over (with the right handover code).
    Deliver,
    /// Someone cancels.
    Cancel,
    /// The driver reports a failed attempt for this reason (with a note for `other`).
    Fail(FailureReason),
    /// The pharmacy confirms the parcel is back.
    Return,
    /// The driver tries to hand over with a wrong handover code.
    WrongCode,
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
    /// Whether delivery needs the handover code.
    pub guarded: bool,
    /// Wrong codes given in this attempt.
    pub wrong_codes: u32,
    /// The delivery attempt, from 1.
    pub attempt: u32,
}

/// What the model says an action must do.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Outcome {
    /// Succeed.
    Done,
    /// Be refused and change nothing.
    Refused,
    /// Be refused (a wrong handover code) but count on the order.
    Counted,
}

/// What the model knows of a driver.
#[derive(Debug, Clone, PartialEq)]
pub struct ModelDriver {
    /// Its availability.
    pub status: DriverStatus,
    /// The orders of its run, in the order they joined it.
    pub run: Vec<usize>,
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
    /// Pharmacy A's `max_active_orders`.
    pub capacity: u32,
}

/// Drivers 0 and 1 belong to pharmacy A (every order's pharmacy), driver 2 to pharmacy B.
pub fn fleet_a(driver: usize) -> bool {
    driver < 2
}

impl Model {
    /// Order `index` leaves the run of `driver`; the driver is available after its last.
    fn free(&mut self, driver: Option<usize>, index: usize) {
        if let Some(d) = driver {
            let driver = &mut self.drivers[d];
            driver.run.retain(|&i| i != index);
            if driver.run.is_empty() {
                driver.status = DriverStatus::Available;
            }
        }
    }

    /// Pharmacy A sets `max_active_orders`; returns whether it must succeed. Runs longer than
    /// a lowered limit keep their orders and take no more.
    pub fn set_capacity(&mut self, n: u32) -> bool {
        if !(1..=30).contains(&n) {
            return false;
        }
        self.capacity = n;
        true
    }

    /// Applies an action; returns what the service must answer.
    pub fn act(&mut self, who: Who, index: usize, act: Act) -> Outcome {
        use OrderStatus::*;
        let Some(order) = self.orders.get(index).cloned() else {
            return Outcome::Refused;
        };
        let staff = matches!(who, Who::VendorA | Who::Admin);
        let at_work = matches!(
            order.status,
            DriverAssigned | PickedUp | OutForDelivery | Failed
        );
        let assigned = at_work && matches!(who, Who::Driver(d) if order.driver == Some(d));
        let customer = who == Who::Customer(order.customer);
        let locked = order.wrong_codes >= 5;
        let mut next = order.clone();
        let mut step = |status: OrderStatus| {
            next.status = status;
            next.history += 1;
        };
        match (act, order.status) {
            (Act::Accept, Pending) if staff => step(Accepted),
            // Asking for `accepted` again once the parcel is back is a new attempt.
            (Act::Accept, Returned) if staff => {
                step(Accepted);
                next.driver = None;
                next.attempt += 1;
                next.wrong_codes = 0;
            }
            (Act::Reject, Pending) if staff => step(Rejected),
            (Act::Assign(d), Accepted | DriverAssigned) if staff && fleet_a(d) => {
                if order.driver == Some(d) {
                    return Outcome::Done;
                }
                let driver = &self.drivers[d];
                let room = match driver.status {
                    DriverStatus::Available => driver.run.is_empty(),
                    DriverStatus::Busy => driver.run.len() < self.capacity as usize,
                    _ => false,
                };
                if !room {
                    return Outcome::Refused;
                }
                step(DriverAssigned);
                next.driver = Some(d);
                self.free(order.driver, index);
                self.drivers[d].status = DriverStatus::Busy;
                self.drivers[d].run.push(index);
            }
            // Acknowledging is a no-op for the driver at work, after pickup and after a failure too.
            (Act::AcceptAssignment, _) if assigned => return Outcome::Done,
            (Act::Decline, DriverAssigned) if assigned => {
                step(Accepted);
                next.driver = None;
                self.free(order.driver, index);
            }
            (Act::PickUp, DriverAssigned) if assigned => step(PickedUp),
            // From a failed attempt, `out_for_delivery` is a second try on the same run.
            (Act::StartDelivery, PickedUp | Failed) if assigned => step(OutForDelivery),
            (Act::Deliver | Act::WrongCode, OutForDelivery) if assigned && locked => {
                return Outcome::Refused;
            }
            (Act::WrongCode, OutForDelivery) if assigned && order.guarded => {
                self.orders[index].wrong_codes += 1;
                return Outcome::Counted;
            }
            (Act::Deliver | Act::WrongCode, OutForDelivery) if assigned => {
                step(Delivered);
                let d = order.driver.expect("an order on its way has a driver");
                self.drivers[d].deliveries += 1;
                self.drivers[d].earned_orders.push(index);
                self.free(Some(d), index);
            }
            (Act::Fail(reason), OutForDelivery) if assigned => {
                if locked && reason != FailureReason::HandoverCodeFailed {
                    return Outcome::Refused;
                }
                step(Failed);
            }
            // The driver is freed, the order keeps naming it until a new attempt.
            (Act::Return, Failed) if staff => {
                step(Returned);
                self.free(order.driver, index);
            }
            (Act::Cancel, Pending | Accepted) if customer || staff => step(Cancelled),
            (Act::Cancel, DriverAssigned) if staff => {
                step(Cancelled);
                self.free(order.driver, index);
            }
            (Act::Cancel, PickedUp | OutForDelivery) if who == Who::Admin => {
                step(Cancelled);
                self.free(order.driver, index);
            }
            (Act::Cancel, Returned) if staff => step(Cancelled),
            _ => return Outcome::Refused,
        }
        self.orders[index] = next;
        Outcome::Done
    }

    /// The party that usually takes `act` on order `index`.
    pub fn usual(&self, index: usize, act: Act) -> Who {
        let order = self.orders.get(index);
        match act {
            Act::Accept | Act::Reject | Act::Assign(_) | Act::Return => Who::VendorA,
            Act::Cancel => Who::Customer(order.map_or(0, |o| o.customer)),
            _ => Who::Driver(order.and_then(|o| o.driver).unwrap_or(0)),
        }
    }

    /// The move that takes order `index` one step towards delivery. An order that needs the
    /// handover code takes the long way on its first attempt: wrong codes until delivery locks,
    /// a failure for the code, the return, and a new attempt that delivers.
    pub fn progress(&self, index: usize) -> Act {
        let Some(order) = self.orders.get(index) else {
            return Act::Accept;
        };
        match order.status {
            OrderStatus::Accepted => {
                // A free driver, else one whose run has room.
                let free = (0..2).find(|&d| self.drivers[d].status == DriverStatus::Available);
                let room = (0..2).find(|&d| {
                    self.drivers[d].status == DriverStatus::Busy
                        && self.drivers[d].run.len() < self.capacity as usize
                });
                Act::Assign(free.or(room).unwrap_or(0))
            }
            OrderStatus::DriverAssigned => Act::PickUp,
            OrderStatus::PickedUp => Act::StartDelivery,
            OrderStatus::OutForDelivery if order.guarded && order.attempt == 1 => {
                if order.wrong_codes < 5 {
                    Act::WrongCode
                } else {
                    Act::Fail(FailureReason::HandoverCodeFailed)
                }
            }
            OrderStatus::OutForDelivery => Act::Deliver,
            OrderStatus::Failed => Act::Return,
            _ => Act::Accept,
        }
    }

    /// Driver `d` sets its availability; returns whether it must succeed.
    pub fn set_driver_status(&mut self, d: usize, status: DriverStatus) -> bool {
        if !self.drivers[d].run.is_empty() {
            return false;
        }
        self.drivers[d].status = status;
        true
    }
}

/// Takes `act` on order `id` as `actor`, through the use cases (`parties` names the drivers an
/// assignment may pick, and the admin who looks the handover code up).
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
        Act::Deliver | Act::WrongCode => {
            let code = medex
                .get_order(&parties.admin, id)
                .await?
                .handover_code
                .map(|c| c.as_str().to_owned())
                .unwrap_or_else(|| "000000".into());
            let code = if act == Act::WrongCode {
                wrong(&code)
            } else {
                code
            };
            let delivered = Transition {
                handover_code: Some(code),
                ..Transition::to(OrderStatus::Delivered)
            };
            medex.transition(&actor, id, delivered).await
        }
        Act::Cancel => medex.cancel_order(&actor, id, None).await,
        Act::Fail(reason) => {
            let failed = Transition {
                reason: Some(reason.as_str().into()),
                note: (reason == FailureReason::Other).then(|| "gate locked, no bell".into()),
                ..Transition::to(OrderStatus::Failed)
            };
            medex.transition(&actor, id, failed).await
        }
        Act::Return => status(OrderStatus::Returned).await,
    }
}

/// Another six-digit code than `code`.
fn wrong(code: &str) -> String {
    let n: u32 = code.parse().unwrap_or(0);
    let other = format!("{:06}", (n + 1) % 1_000_000);
    debug_assert!(HandoverCode::parse(&other).is_ok());
    other
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
/// move changes nothing, histories only grow, a driver's run is exactly the orders it works on
/// (within its pharmacy's limit), it is busy exactly while it holds one, and it is credited
/// once per delivery. At most `max_orders` orders are placed (further `Create`s are
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
    let mut model = Model {
        capacity: medex
            .get_vendor(&world.admin, world.vendor_a_id)
            .await
            .map_err(described)?
            .max_active_orders,
        ..Model::default()
    };
    for (_, id) in world.drivers {
        let driver = medex
            .get_driver(&world.admin, id)
            .await
            .map_err(described)?;
        model.drivers.push(ModelDriver {
            status: driver.status,
            run: Vec::new(),
            deliveries: driver.total_deliveries,
            earned_before: driver.total_earnings,
            earned_orders: vec![],
        });
    }
    let mut run = Run::default();
    for op in ops {
        match op {
            Op::Create(_) | Op::CreateGuarded(_) if run.ids.len() >= max_orders => {}
            Op::Create(c) | Op::CreateGuarded(c) => {
                let guarded = matches!(op, Op::CreateGuarded(_));
                let new = NewOrder {
                    requirements: Requirements {
                        handover_code: guarded,
                        ..Requirements::default()
                    },
                    ..new_order(world.vendor_a_id)
                };
                let order = medex
                    .create_order(&world.customers[c], new)
                    .await
                    .map_err(|e| format!("a valid order is refused: {e:?}"))?;
                model.orders.push(ModelOrder {
                    customer: c,
                    status: OrderStatus::Pending,
                    driver: None,
                    history: 1,
                    guarded,
                    wrong_codes: 0,
                    attempt: 1,
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
                        result.is_ok() == (expected == Outcome::Done),
                        "{who:?} {act:?} on order {index}: expected {expected:?}, got {:?}",
                        result.err()
                    );
                    if result.is_err() {
                        let mut unchanged =
                            medex.get_order(&world.admin, id).await.map_err(described)?;
                        let before = &run.before[index];
                        if expected == Outcome::Counted {
                            // A wrong handover code is counted, and nothing else changes.
                            ensure!(
                                unchanged.handover_failures == before.handover_failures + 1
                                    && unchanged.version == before.version + 1
                                    && unchanged.updated_at >= before.updated_at,
                                "a wrong code on order {index} was not counted once"
                            );
                            unchanged.handover_failures = before.handover_failures;
                            unchanged.version = before.version;
                            unchanged.updated_at = before.updated_at;
                        }
                        ensure!(unchanged == *before, "a refused move changed order {index}");
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
            Op::Capacity(n) => {
                let expected = model.set_capacity(n);
                let patch = VendorPatch {
                    max_active_orders: Some(n),
                    ..VendorPatch::default()
                };
                let result = medex
                    .update_vendor(&world.vendor_a, world.vendor_a_id, patch)
                    .await;
                ensure!(
                    result.is_ok() == expected,
                    "pharmacy A to {n} active orders per driver: {result:?}"
                );
            }
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
        let mut active_per_driver: [Vec<OrderId>; 3] = Default::default();
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
            ensure!(
                (order.attempt, order.handover_failures)
                    == (expected.attempt, expected.wrong_codes),
                "order {i}: attempt {} with {} wrong codes, the model says {} with {}",
                order.attempt,
                order.handover_failures,
                expected.attempt,
                expected.wrong_codes
            );
            ensure!(
                order.require_handover_code == expected.guarded && order.handover_code.is_some(),
                "order {i}: its handover code and whether it is required"
            );
            let custody = medex
                .custody_record(&world.admin, self.ids[i])
                .await
                .map_err(described)?;
            ensure!(custody.verified, "order {i}: its chain of custody verifies");
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
                active_per_driver[d].push(order.id);
            }
            self.before[i] = order;
        }
        for (d, expected) in model.drivers.iter().enumerate() {
            let driver = medex
                .get_driver(&world.admin, world.drivers[d].1)
                .await
                .map_err(described)?;
            let mut run = driver.run();
            run.sort();
            active_per_driver[d].sort();
            ensure!(
                run == active_per_driver[d],
                "driver {d}: its run {run:?} is the orders it works on {:?}",
                active_per_driver[d]
            );
            let mut expected_run: Vec<OrderId> =
                expected.run.iter().map(|&i| self.ids[i]).collect();
            expected_run.sort();
            ensure!(run == expected_run, "driver {d}: its run is the model's");
            ensure!(
                driver.active_order_id == driver.run().first().copied()
                    && driver.is_on_run() == (driver.status == DriverStatus::Busy),
                "driver {d}: busy exactly while it holds an order, the first named"
            );
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

    /// Leaves the world as the next run expects it: no open order, every driver offline,
    /// pharmacy A at one order per driver.
    async fn tidy(&self, world: &World) -> std::result::Result<(), String> {
        let medex = &world.medex;
        let one = VendorPatch {
            max_active_orders: Some(1),
            ..VendorPatch::default()
        };
        medex
            .update_vendor(&world.admin, world.vendor_a_id, one)
            .await
            .map_err(|e| format!("an admin sets one order per driver: {e:?}"))?;
        for &id in &self.ids {
            let order = medex.get_order(&world.admin, id).await.map_err(described)?;
            if order.status == OrderStatus::Failed {
                // The parcel comes back before the order can end.
                medex
                    .change_status(&world.admin, id, OrderStatus::Returned, None)
                    .await
                    .map_err(|e| format!("an admin takes a failed parcel back: {e:?}"))?;
            }
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
