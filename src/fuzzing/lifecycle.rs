//! The `lifecycle` target: moves decoded from bytes, run through the use cases and through a
//! reference model that re-states DESIGN §2's table as plain `match` arms, independently of
//! `medex_core::lifecycle`. After every move the service must agree with the model and keep the
//! invariants.

use std::cell::RefCell;
use std::rc::Rc;
use std::sync::Arc;

use chrono::{Duration, TimeZone, Utc};
use medex_core::conformance::lifecycle_model::{Act, Model, ModelDriver, ModelOrder, Op, Who};
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
    admin: Actor,
    customers: [Actor; 2],
    vendor_a: Actor,
    vendor_b: Actor,
    vendor_a_id: VendorId,
    drivers: [(Actor, DriverId); 3],
}

const PASSWORD: &str = "correct horse battery";

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
        let admin = Actor::of(
            &medex
                .create_admin("admin@medex.test", PASSWORD, "Admin")
                .await
                .unwrap(),
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
        let (a, a_owner) = medex.register_vendor(vendor(1, 52.50)).await.unwrap();
        let (_, b_owner) = medex.register_vendor(vendor(2, 52.60)).await.unwrap();
        let (vendor_a, vendor_b) = (Actor::of(&a_owner), Actor::of(&b_owner));
        let mut drivers = Vec::new();
        for (n, owner) in [(1, vendor_a), (2, vendor_a), (3, vendor_b)] {
            let (driver, user) = medex
                .register_driver(
                    &owner,
                    NewDriver {
                        vendor_id: None,
                        email: format!("driver{n}@pharmacy.test"),
                        password: PASSWORD.into(),
                        full_name: format!("Driver Number{n}"),
                        phone: None,
                        vehicle_type: VehicleType::Car,
                        vehicle_number: None,
                        license_number: None,
                    },
                )
                .await
                .unwrap();
            drivers.push((Actor::of(&user), driver.id));
        }
        let mut customers = Vec::new();
        for n in 1..=2 {
            let session = medex
                .register_customer(NewAccount {
                    email: format!("customer{n}@example.test"),
                    password: PASSWORD.into(),
                    full_name: format!("Customer {n}"),
                    phone: None,
                })
                .await
                .unwrap();
            customers.push(Actor::of(&session.user));
        }
        Fleet {
            medex,
            clock,
            admin,
            customers: [customers[0], customers[1]],
            vendor_a,
            vendor_b,
            vendor_a_id: a.id,
            drivers: [drivers[0], drivers[1], drivers[2]],
        }
    }

    fn actor(&self, who: Who) -> Actor {
        match who {
            Who::Admin => self.admin,
            Who::Customer(c) => self.customers[c],
            Who::VendorA => self.vendor_a,
            Who::VendorB => self.vendor_b,
            Who::Driver(d) => self.drivers[d].0,
            Who::Usual => unreachable!("resolved against the model before use"),
        }
    }

    async fn act(&self, who: Who, id: OrderId, act: Act) -> Result<Order> {
        let actor = self.actor(who);
        let m = &self.medex;
        match act {
            Act::Accept => {
                m.change_status(&actor, id, OrderStatus::Accepted, None)
                    .await
            }
            Act::Reject => {
                let reason = Some("out of stock".into());
                m.change_status(&actor, id, OrderStatus::Rejected, reason)
                    .await
            }
            Act::Assign(d) => m.assign_driver(&actor, id, self.drivers[d].1).await,
            Act::AcceptAssignment => {
                m.respond_to_assignment(&actor, id, AssignmentResponse::Accept, None)
                    .await
            }
            Act::Decline => {
                m.respond_to_assignment(&actor, id, AssignmentResponse::Decline, None)
                    .await
            }
            Act::PickUp => {
                m.change_status(&actor, id, OrderStatus::PickedUp, None)
                    .await
            }
            Act::StartDelivery => {
                m.change_status(&actor, id, OrderStatus::OutForDelivery, None)
                    .await
            }
            Act::Deliver => {
                m.change_status(&actor, id, OrderStatus::Delivered, None)
                    .await
            }
            Act::Cancel => m.cancel_order(&actor, id, None).await,
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
                    let result = w.act(who, id, act).await;
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
