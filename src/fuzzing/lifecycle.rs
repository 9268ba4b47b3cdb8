//! The `lifecycle` target: moves decoded from bytes, run through the use cases and through a
//! reference model that re-states DESIGN §2's table as plain `match` arms, independently of
//! `medex_core::lifecycle`. After every move the service must agree with the model and keep the
//! invariants.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use medex_core::conformance::lifecycle_model::{
    Act, Model, ModelDriver, ModelOrder, Op, Parties, Who,
};
use medex_core::prelude::*;

/// Moves read from one input at most: the invariants are checked after each.
const MAX_MOVES: usize = 64;

/// Orders one input may place.
const MAX_ORDERS: usize = 4;

/// Inputs one fleet serves before it is built anew, so that the orders of past inputs cannot
/// slow the store down.
const FLEET_LIFETIME: u32 = 64;

thread_local! {
    static FLEET: RefCell<Option<(Rc<Fleet>, u32)>> = const { RefCell::new(None) };
}

/// This thread's fleet: accounts are expensive to set up (password hashing), so one fleet serves
/// many inputs, each with its own orders; [`run`] leaves its drivers as it found them.
async fn fleet() -> Rc<Fleet> {
    let current = FLEET.with(|cell| match cell.borrow_mut().as_mut() {
        Some((fleet, runs)) if *runs < FLEET_LIFETIME => {
            *runs += 1;
            Some(fleet.clone())
        }
        _ => None,
    });
    if let Some(fleet) = current {
        return fleet;
    }
    let fleet = Rc::new(Fleet::new().await);
    FLEET.with(|cell| *cell.borrow_mut() = Some((fleet.clone(), 1)));
    fleet
}

/// Drops this thread's fleet, so that the next input starts on a new one.
#[cfg(test)]
pub(super) fn forget_fleet() {
    FLEET.with(|cell| cell.borrow_mut().take());
}

fn who(n: u8) -> Who {
    match n {
        0 => Who::Admin,
        1 | 2 => Who::Customer(usize::from(n - 1)),
        3 => Who::VendorA,
        4 => Who::VendorB,
        5..=7 => Who::Driver(usize::from(n - 5)),
        _ => Who::Usual,
    }
}

fn act(n: u8) -> Act {
    match n % 11 {
        0 => Act::Accept,
        1 => Act::Reject,
        n @ 2..=4 => Act::Assign(usize::from(n - 2)),
        5 => Act::AcceptAssignment,
        6 => Act::Decline,
        7 => Act::PickUp,
        8 => Act::StartDelivery,
        9 => Act::Deliver,
        _ => Act::Cancel,
    }
}

/// Two bytes per move, `[op, arg]`. The high nibble of `op` picks the kind (weighted towards
/// moves that make progress), its low nibble the order or driver:
///
/// | op >> 4 | move |
/// |---|---|
/// | 0 | a customer (`op & 1`) places an order |
/// | 1–5 | the next forward move of order `op & 3`, by its usual party |
/// | 6–11 | `who(arg >> 4)` does `act(arg & 15)` to order `op & 3` |
/// | 12–13 | driver `(op & 15) % 3` sets its status to available, offline or on break (`arg % 3`) |
/// | 14 | the clock moves by `arg as i8` seconds |
/// | 15 | the usual party does `act(arg & 15)` to order `op & 3` |
///
/// `who`: 0 admin, 1–2 customers, 3 pharmacy A, 4 pharmacy B, 5–7 drivers (0 and 1 of
/// pharmacy A, 2 of B), 8–15 the usual party. `act` (mod 11): accept, reject, assign driver
/// 0/1/2, accept assignment, decline, pick up, start delivery, deliver, cancel. Every sequence
/// starts with one order of the first customer.
fn decode(data: &[u8]) -> Vec<Op> {
    std::iter::once(Op::Create(0))
        .chain(data.chunks_exact(2).take(MAX_MOVES).map(|pair| {
            let (op, arg) = (pair[0], pair[1]);
            let order = usize::from(op & 3);
            match op >> 4 {
                0 => Op::Create(usize::from(op & 1)),
                1..=5 => Op::Progress(order),
                6..=11 => Op::Act(who(arg >> 4), order, act(arg & 15)),
                12 | 13 => {
                    let status = [
                        DriverStatus::Available,
                        DriverStatus::Offline,
                        DriverStatus::OnBreak,
                    ][usize::from(arg % 3)];
                    Op::DriverStatus(usize::from(op & 15) % 3, status)
                }
                14 => Op::Tick(i64::from(arg as i8)),
                _ => Op::Act(Who::Usual, order, act(arg & 15)),
            }
        }))
        .collect()
}

/// A pharmacy "A" with two drivers, a pharmacy "B" with one, two customers and an admin.
struct Fleet {
    medex: MedEx,
    clock: Arc<ManualClock>,
    parties: Parties,
}

/// `w.admin`, `w.drivers[0]`, …: the fleet's accounts read as its own fields.
impl std::ops::Deref for Fleet {
    type Target = Parties;
    fn deref(&self) -> &Parties {
        &self.parties
    }
}

impl Fleet {
    async fn new() -> Fleet {
        let clock = Arc::new(ManualClock::new(
            Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap(),
        ));
        let medex = MedEx::new(
            Ports {
                store: Arc::new(MemoryStore::new()),
                bus: Arc::new(NullBus),
                clock: clock.clone(),
                entropy: Arc::new(SeededEntropy::new(42)),
                hasher: Arc::new(Argon2Hasher::insecure_fast()),
                tokens: TokenKeys::new(&[9; 32], TokenLifetimes::default()).unwrap(),
            },
            SystemConfig::default(),
        )
        .await
        .expect("the service starts");
        let parties = Parties::register(&medex).await;
        Fleet {
            medex,
            clock,
            parties,
        }
    }
}

fn new_order(vendor: VendorId) -> NewOrder {
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
            notes: None,
        }],
        notes: None,
    }
}

/// Runs the moves `data` encodes against a fresh service and the model; panics at the first
/// difference.
pub(super) async fn run(data: &[u8]) {
    let ops = decode(data);
    let w = fleet().await;
    let mut model = Model::default();
    for (_, id) in w.drivers {
        let driver = w.medex.get_driver(&w.admin, id).await.unwrap();
        model.drivers.push(ModelDriver {
            status: driver.status,
            order: None,
            deliveries: driver.total_deliveries,
            earned_before: driver.total_earnings,
            earned_orders: vec![],
        });
    }
    let mut ids: Vec<OrderId> = Vec::new();
    let mut fees: Vec<Money> = Vec::new();
    let mut before: Vec<Order> = Vec::new();
    for op in ops {
        match op {
            Op::Create(_) if ids.len() >= MAX_ORDERS => {}
            Op::Create(c) => {
                let order = w
                    .medex
                    .create_order(&w.customers[c], new_order(w.vendor_a_id))
                    .await
                    .expect("a valid order is placed");
                model.orders.push(ModelOrder {
                    customer: c,
                    status: OrderStatus::Pending,
                    driver: None,
                    history: 1,
                });
                ids.push(order.id);
                fees.push(order.delivery_fee);
                before.push(order);
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
                if let Some(&id) = ids.get(index) {
                    let result = w.parties.act(&w.medex, who, id, act).await;
                    assert_eq!(
                        result.is_ok(),
                        expected,
                        "{who:?} {act:?} on order {index}: {:?}",
                        result.err()
                    );
                    if result.is_err() {
                        let unchanged = w.medex.get_order(&w.admin, id).await.unwrap();
                        assert_eq!(
                            &unchanged, &before[index],
                            "a refused move leaves the order unchanged"
                        );
                    }
                }
            }
            Op::DriverStatus(d, status) => {
                let expected = model.set_driver_status(d, status);
                let (actor, id) = w.drivers[d];
                let result = w.medex.set_driver_status(&actor, id, status).await;
                assert_eq!(
                    result.is_ok(),
                    expected,
                    "driver {d} to {status:?}: {result:?}"
                );
            }
            Op::Tick(seconds) => w.clock.advance(Duration::seconds(seconds)),
        }
        check(&w, &model, &ids, &fees, &mut before).await;
    }

    // Leave the fleet as the next input expects it: no open order, every driver offline.
    for &id in &ids {
        let order = w.medex.get_order(&w.admin, id).await.unwrap();
        if !order.status.is_terminal() {
            w.medex
                .cancel_order(&w.admin, id, None)
                .await
                .expect("an admin cancels any open order");
        }
    }
    for (actor, id) in w.drivers {
        w.medex
            .set_driver_status(&actor, id, DriverStatus::Offline)
            .await
            .expect("a driver without an order goes offline");
    }
}

/// The world matches the model, and the invariants hold.
async fn check(w: &Fleet, model: &Model, ids: &[OrderId], fees: &[Money], before: &mut [Order]) {
    let mut active_per_driver = [0usize; 3];
    for (i, expected) in model.orders.iter().enumerate() {
        let order = w.medex.get_order(&w.admin, ids[i]).await.unwrap();
        assert_eq!(order.status, expected.status, "order {i} status");
        assert_eq!(
            order.status_history.len(),
            expected.history,
            "order {i}: one history entry per accepted move"
        );
        let driver_index = order
            .driver_id
            .map(|id| w.drivers.iter().position(|d| d.1 == id).unwrap());
        if !order.status.is_terminal() {
            assert_eq!(driver_index, expected.driver, "order {i} driver");
        }
        assert_eq!(
            order.status_history.last().map(|c| c.status),
            Some(order.status),
            "order {i}: the history ends in the status"
        );
        assert!(
            order.status_history.windows(2).all(|w| w[0].at <= w[1].at),
            "order {i}: the history goes forward in time"
        );
        assert!(
            order.status_history.len() >= before[i].status_history.len(),
            "history only grows"
        );
        assert_eq!(
            &order.status_history[..before[i].status_history.len()],
            &before[i].status_history[..],
            "order {i}: the history is never rewritten"
        );
        if before[i].status.is_terminal() {
            assert_eq!(&order, &before[i], "terminal orders never change");
        }
        if order.status.has_driver_at_work() {
            let d = driver_index.expect("an order at work has a driver");
            active_per_driver[d] += 1;
        }
        before[i] = order;
    }
    for (d, expected) in model.drivers.iter().enumerate() {
        let driver = w.medex.get_driver(&w.admin, w.drivers[d].1).await.unwrap();
        assert!(active_per_driver[d] <= 1, "driver {d} on two active orders");
        assert_eq!(driver.status, expected.status, "driver {d} status");
        assert_eq!(
            driver.total_deliveries, expected.deliveries,
            "driver {d} deliveries"
        );
        let earned = expected
            .earned_orders
            .iter()
            .fold(expected.earned_before, |sum, &i| {
                sum.saturating_add(fees[i])
            });
        assert_eq!(
            driver.total_earnings, earned,
            "driver {d}: earnings credited once per delivery"
        );
    }
}
