//! The lifecycle against the reference model of the test kit: random sequences of (actor, action), state compared after every step.

use super::*;
use crate::testkit::Who;
use crate::testkit::lifecycle_model::{Act, Op, run};

fn who() -> impl Strategy<Value = Who> {
    prop_oneof![
        6 => Just(Who::Usual),
        1 => any_who(),
    ]
}

fn any_who() -> impl Strategy<Value = Who> {
    prop_oneof![
        Just(Who::Admin),
        (0..2usize).prop_map(Who::Customer),
        Just(Who::VendorA),
        Just(Who::VendorB),
        (0..3usize).prop_map(Who::Driver),
    ]
}

fn act() -> impl Strategy<Value = Act> {
    // Weighted towards moves that make progress, so that sequences reach delivery.
    prop_oneof![
        3 => Just(Act::Accept),
        1 => Just(Act::Reject),
        3 => (0..3usize).prop_map(Act::Assign),
        1 => Just(Act::AcceptAssignment),
        1 => Just(Act::Decline),
        3 => Just(Act::PickUp),
        3 => Just(Act::StartDelivery),
        3 => Just(Act::Deliver),
        1 => Just(Act::Cancel),
        3 => prop::sample::select(FailureReason::ALL.to_vec()).prop_map(Act::Fail),
        2 => Just(Act::Return),
        2 => Just(Act::WrongCode),
    ]
}

fn op() -> impl Strategy<Value = Op> {
    let status = prop_oneof![
        4 => Just(DriverStatus::Available),
        1 => Just(DriverStatus::Offline),
        1 => Just(DriverStatus::OnBreak),
    ];
    prop_oneof![
        1 => (0..2usize).prop_map(Op::Create),
        1 => (0..2usize).prop_map(Op::CreateGuarded),
        8 => (who(), 0..3usize, act()).prop_map(|(w, o, a)| Op::Act(w, o, a)),
        8 => (0..3usize).prop_map(Op::Progress),
        2 => (0..3usize, status).prop_map(|(d, s)| Op::DriverStatus(d, s)),
        1 => (-30i64..120).prop_map(Op::Tick),
        1 => prop_oneof![4 => 1..4u32, 1 => 0..40u32].prop_map(Op::Capacity),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_matches_the_reference_model(
        capacity in 1..4u32,
        first in prop::collection::vec(0..2usize, 1..4),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let ops: Vec<Op> = std::iter::once(Op::Capacity(capacity))
            .chain(first.into_iter().map(Op::Create))
            .chain(ops)
            .collect();
        block_on(async {
            let world = World::in_memory(42).await;
            run(&world, ops, usize::MAX).await
        })
        .map_err(TestCaseError::fail)?;
    }
}

/// Every row of DESIGN §10 in one scripted sequence through the same runner: the long way of an
/// order that needs the handover code (five wrong codes lock delivery, only a failure for the
/// code remains, the parcel comes back, a new attempt delivers), a retry on the same run, a
/// return that ends in a cancellation, and the moves each party may not make.
#[test]
fn failed_attempts_returns_and_handover_codes_follow_the_model() {
    use FailureReason::*;
    let progress = |n: usize, times: usize| std::iter::repeat_n(Op::Progress(n), times);
    let act = |who, n, act| Op::Act(who, n, act);
    let mut ops = vec![
        Op::DriverStatus(0, DriverStatus::Available),
        Op::DriverStatus(1, DriverStatus::Available),
        Op::CreateGuarded(0),
        Op::Create(1),
    ];
    // Order 0 to out_for_delivery with driver 0, then five wrong codes: the fifth locks delivery.
    ops.extend(progress(0, 4 + 5));
    ops.extend([
        act(Who::Driver(0), 0, Act::WrongCode),
        act(Who::Driver(0), 0, Act::Deliver),
        act(Who::Driver(0), 0, Act::Fail(RecipientAbsent)),
    ]);
    // Only the failure for the code remains; a failed parcel must come back before it ends.
    ops.push(Op::Progress(0));
    ops.extend([
        act(Who::Admin, 0, Act::Cancel),
        act(Who::Driver(0), 0, Act::Deliver),
    ]);
    // The return and a new attempt, which asks for the code afresh and delivers.
    ops.extend(progress(0, 2));
    ops.extend([
        act(Who::Driver(0), 0, Act::PickUp),
        act(Who::VendorB, 0, Act::Return),
    ]);
    ops.extend(progress(0, 4 + 1));
    // Order 1: a failure with a note, a second try on the same run, another failure, the
    // return confirmed by the pharmacy, and its end.
    ops.extend(progress(1, 4));
    ops.extend([
        act(Who::Driver(1), 1, Act::Fail(Other)),
        act(Who::Driver(0), 1, Act::Fail(Other)),
        act(Who::Customer(1), 1, Act::Return),
        act(Who::Driver(0), 1, Act::Return),
        act(Who::Usual, 1, Act::Fail(Other)),
        act(Who::Usual, 1, Act::Deliver),
        act(Who::Usual, 1, Act::StartDelivery),
        act(Who::Usual, 1, Act::Fail(UnsafeLocation)),
        act(Who::Admin, 1, Act::Cancel),
        act(Who::Admin, 1, Act::Return),
        act(Who::Customer(1), 1, Act::Cancel),
        act(Who::Driver(0), 1, Act::Accept),
        act(Who::VendorA, 1, Act::Cancel),
        act(Who::VendorA, 1, Act::Accept),
    ]);
    block_on(async {
        let world = World::in_memory(43).await;
        run(&world, ops, usize::MAX).await
    })
    .unwrap();
}

/// DESIGN §14 in one scripted sequence through the same runner: pharmacy A lets a driver hold
/// three orders; driver 0 takes three (a fourth is refused while the run is full and goes to
/// driver 1), delivers one, fails one, declines none; it stays busy until the failed parcel is
/// back and the last order is delivered, then it is free; a lowered limit keeps the run.
#[test]
fn runs_hold_several_orders_and_free_the_driver_after_the_last() {
    let act = |who, n, act| Op::Act(who, n, act);
    let vendor = |n, a| act(Who::VendorA, n, a);
    let driver0 = |n, a| act(Who::Driver(0), n, a);
    let mut ops = vec![
        Op::Capacity(0),
        Op::Capacity(31),
        Op::Capacity(3),
        Op::DriverStatus(0, DriverStatus::Available),
        Op::DriverStatus(1, DriverStatus::Available),
    ];
    for n in 0..4 {
        ops.extend([Op::Create(n % 2), vendor(n, Act::Accept)]);
    }
    ops.extend([
        vendor(0, Act::Assign(0)),
        vendor(1, Act::Assign(0)),
        // Going offline with a run is refused.
        Op::DriverStatus(0, DriverStatus::Offline),
        vendor(2, Act::Assign(0)),
        // The run is full.
        vendor(3, Act::Assign(0)),
        vendor(3, Act::Assign(1)),
        // Moving an order of the run to driver 1 and back.
        vendor(2, Act::Assign(1)),
        vendor(2, Act::Assign(0)),
        Op::Capacity(1),
        // Lowered below the run: nothing more joins, nothing leaves.
        vendor(2, Act::Assign(0)),
        Op::Capacity(3),
        vendor(2, Act::Assign(0)),
    ]);
    for n in 0..3 {
        ops.extend([driver0(n, Act::PickUp), driver0(n, Act::StartDelivery)]);
    }
    ops.extend([
        driver0(0, Act::Deliver),
        driver0(1, Act::Fail(FailureReason::RecipientAbsent)),
        Op::DriverStatus(0, DriverStatus::OnBreak),
        driver0(2, Act::Deliver),
        // Still holding the failed parcel.
        Op::DriverStatus(0, DriverStatus::OnBreak),
        vendor(1, Act::Return),
        Op::DriverStatus(0, DriverStatus::OnBreak),
        Op::DriverStatus(0, DriverStatus::Available),
        vendor(1, Act::Accept),
        vendor(1, Act::Assign(0)),
        act(Who::Driver(0), 1, Act::Decline),
        Op::Progress(3),
        Op::Progress(3),
        Op::Progress(3),
    ]);
    block_on(async {
        let world = World::in_memory(44).await;
        run(&world, ops, usize::MAX).await
    })
    .unwrap();
}
