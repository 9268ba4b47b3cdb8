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
        8 => (who(), 0..3usize, act()).prop_map(|(w, o, a)| Op::Act(w, o, a)),
        6 => (0..3usize).prop_map(Op::Progress),
        2 => (0..3usize, status).prop_map(|(d, s)| Op::DriverStatus(d, s)),
        1 => (-30i64..120).prop_map(Op::Tick),
    ]
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_matches_the_reference_model(
        first in prop::collection::vec(0..2usize, 1..4),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let ops: Vec<Op> = first.into_iter().map(Op::Create).chain(ops).collect();
        block_on(async {
            let world = World::in_memory(42).await;
            run(&world, ops, usize::MAX).await
        })
        .map_err(TestCaseError::fail)?;
    }
}
