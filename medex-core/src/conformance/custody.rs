//! Stores keep an order's chain of custody exactly as written: every value a hash covers (texts
//! with any character, times to the nanosecond, positions, proof digests), the signature, the
//! proofs and the handover code. A record that verified when it was stored verifies when read.

use chrono::TimeZone as _;

use super::*;
use crate::custody::{self, CustodyKeys, CustodyRecord};

fn entry(status: OrderStatus, actor: &User, at: DateTime<Utc>) -> StatusChange {
    StatusChange::new(status, at, actor.id, actor.role)
}

pub(super) async fn records_keep_their_chain_of_custody(store: &dyn Store) {
    let keys = CustodyKeys::from_seed([21; 32]);
    let owner = user(900, "custody-owner@example.com", Role::Vendor);
    let customer = user(901, "custody-customer@example.com", Role::User);
    let courier = user(902, "custody-driver@example.com", Role::Driver);
    let pharmacy = vendor(903, owner.id);
    let at = |nanos: u32| {
        Utc.with_ymd_and_hms(2026, 6, 1, 9, 30, 0).unwrap() + Duration::nanoseconds(nanos.into())
    };
    let photo = Sha256::digest(b"photo at the door");
    let mut order = Order {
        require_handover_code: true,
        require_proof_photo: true,
        handover_failures: 3,
        attempt: 2,
        failure_reason: Some(FailureReason::Other),
        proofs: vec![Proof {
            kind: ProofKind::Photo,
            url: "/api/uploads/door.jpg".into(),
            sha256: photo,
            uploaded_at: at(123_456_789),
        }],
        ..fixtures::order(OrderId::from_uuid(id(904)), pharmacy.id, customer.id)
    };
    custody::append(
        &mut order,
        entry(OrderStatus::Pending, &customer, at(1)),
        &keys,
    );
    let mut failed = entry(OrderStatus::Failed, &courier, at(2_000));
    failed.reason = Some("other".into());
    failed.note = Some("\"Frau Müller\" \\ next door\n\t— 🏥 \u{7f}".into());
    failed.location = Some(CustodyLocation::new(
        Coordinates::new(-33.865143, 151.2099).unwrap(),
        at(999_999_999),
    ));
    custody::append(&mut order, failed, &keys);
    let mut delivered = entry(OrderStatus::Delivered, &courier, at(500_000_000));
    delivered.proof_sha256 = vec![photo];
    custody::append(&mut order, delivered, &keys);
    assert!(CustodyRecord::check(&order, &keys).verified);
    store
        .commit(vec![
            Write::User(owner),
            Write::User(customer),
            Write::User(courier),
            Write::Vendor(pharmacy),
            Write::Order(order.clone()),
        ])
        .await
        .unwrap();
    let read = store
        .order(order.id)
        .await
        .unwrap()
        .expect("the order is stored");
    assert_eq!(
        read, order,
        "an order with its custody record reads back as written"
    );
    assert!(
        CustodyRecord::check(&read, &keys).verified,
        "a stored custody record still verifies"
    );
}
