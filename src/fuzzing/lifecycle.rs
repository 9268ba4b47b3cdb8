//! The `lifecycle` target: moves decoded from bytes, played by the test kit's lifecycle runner
//! (`medex_core::testkit::lifecycle_model::run`, the one the property test uses) through the use
//! cases and through a reference model that re-states DESIGN §2's and §10's tables as plain
//! `match` arms.
//! After every move the service must agree with the model and keep the invariants.

use std::cell::RefCell;
use std::rc::Rc;

use medex_core::model::{DriverStatus, FailureReason};
use medex_core::testkit::lifecycle_model::{self, Act, Op};
use medex_core::testkit::{Who, World};

/// Moves read from one input at most: the invariants are checked after each.
const MAX_MOVES: usize = 64;

/// Orders one input may place.
const MAX_ORDERS: usize = 4;

/// Inputs one fleet serves before it is built anew, so that the orders of past inputs cannot
/// slow the store down.
const FLEET_LIFETIME: u32 = 64;

thread_local! {
    static FLEET: RefCell<Option<(Rc<World>, u32)>> = const { RefCell::new(None) };
}

/// This thread's fleet: accounts are expensive to set up (password hashing), so one fleet serves
/// many inputs, each with its own orders; [`run`] leaves its drivers as it found them.
async fn fleet() -> Rc<World> {
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
    let fleet = Rc::new(World::in_memory(42).await);
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
    match n % 21 {
        0 => Act::Accept,
        1 => Act::Reject,
        n @ 2..=4 => Act::Assign(usize::from(n - 2)),
        5 => Act::AcceptAssignment,
        6 => Act::Decline,
        7 => Act::PickUp,
        8 => Act::StartDelivery,
        9 => Act::Deliver,
        10 => Act::Cancel,
        n @ 11..=17 => Act::Fail(FailureReason::ALL[usize::from(n - 11)]),
        18 => Act::Return,
        _ => Act::WrongCode,
    }
}

/// Two bytes per move, `[op, arg]`. The high nibble of `op` picks the kind (weighted towards
/// moves that make progress), its low nibble the order or driver:
///
/// | op >> 4 | move |
/// |---|---|
/// | 0 | a customer (`op & 1`) places an order; one that needs the handover code when `op & 2` |
/// | 1–5 | the next forward move of order `op & 3`, by its usual party |
/// | 6–11 | `who(arg >> 5)` does `act(arg & 31)` to order `op & 3` |
/// | 12 | driver `(op & 15) % 3` sets its status to available, offline or on break (`arg % 3`) |
/// | 13 | pharmacy A lets a driver hold `arg % 5` active orders (0: out of range, refused) |
/// | 14 | the clock moves by `arg as i8` seconds |
/// | 15 | the usual party does `act(arg)` to order `op & 3` |
///
/// `who`: 0 admin, 1–2 customers, 3 pharmacy A, 4 pharmacy B, 5–7 drivers (0 and 1 of
/// pharmacy A, 2 of B). `act` (mod 21): accept (for a returned order: a new attempt), reject,
/// assign driver 0/1/2, accept assignment, decline, pick up, start delivery (after a failure:
/// the second try), deliver with the right handover code, cancel, fail for each of the seven
/// reasons (`other` with a note), confirm the return, deliver with a wrong code. Every sequence
/// starts with one order of the first customer.
fn decode(data: &[u8]) -> Vec<Op> {
    std::iter::once(Op::Create(0))
        .chain(data.chunks_exact(2).take(MAX_MOVES).map(|pair| {
            let (op, arg) = (pair[0], pair[1]);
            let order = usize::from(op & 3);
            match op >> 4 {
                0 if op & 2 != 0 => Op::CreateGuarded(usize::from(op & 1)),
                0 => Op::Create(usize::from(op & 1)),
                1..=5 => Op::Progress(order),
                6..=11 => Op::Act(who(arg >> 5), order, act(arg & 31)),
                13 => Op::Capacity(u32::from(arg % 5)),
                12 => {
                    let status = [
                        DriverStatus::Available,
                        DriverStatus::Offline,
                        DriverStatus::OnBreak,
                    ][usize::from(arg % 3)];
                    Op::DriverStatus(usize::from(op & 15) % 3, status)
                }
                14 => Op::Tick(i64::from(arg as i8)),
                _ => Op::Act(Who::Usual, order, act(arg)),
            }
        }))
        .collect()
}

/// Runs the moves `data` encodes against this thread's world and the model; panics at the first
/// difference.
pub(super) async fn run(data: &[u8]) {
    let world = fleet().await;
    if let Err(difference) = lifecycle_model::run(&world, decode(data), MAX_ORDERS).await {
        panic!("{difference}");
    }
}
