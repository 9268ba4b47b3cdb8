//! Use cases driven through `MedEx` with the in-memory store, a manual clock and seeded ids.

use std::sync::Arc;

use chrono::{Duration, FixedOffset, TimeZone, Utc};
use futures::executor::block_on;
use proptest::prelude::*;

use super::*;
use crate::auth::{Argon2Hasher, TokenLifetimes};
use crate::clock::{ManualClock, SeededEntropy};
use crate::conformance::lifecycle_model::{
    Act, Model, ModelDriver, ModelOrder, Op, PASSWORD, Parties, Who,
};
use crate::events::RecordingBus;
use crate::memory::MemoryStore;

/// A pharmacy "A" with two drivers, a pharmacy "B" with one, two customers and an admin.
struct World {
    medex: MedEx,
    clock: Arc<ManualClock>,
    bus: Arc<RecordingBus>,
    parties: Parties,
}

/// `w.admin`, `w.drivers[0]`, …: the world's accounts read as its own fields.
impl std::ops::Deref for World {
    type Target = Parties;
    fn deref(&self) -> &Parties {
        &self.parties
    }
}

fn start() -> chrono::DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 6, 1, 9, 0, 0).unwrap()
}

async fn world(seed: u64) -> World {
    world_with(seed, Arc::new(Argon2Hasher::insecure_fast())).await
}

async fn world_with(seed: u64, hasher: Arc<dyn crate::auth::PasswordHasher>) -> World {
    let clock = Arc::new(ManualClock::new(start()));
    let bus = Arc::new(RecordingBus::default());
    let medex = MedEx::new(
        Ports {
            store: Arc::new(MemoryStore::new()),
            bus: bus.clone(),
            clock: clock.clone(),
            entropy: Arc::new(SeededEntropy::new(seed)),
            hasher,
            tokens: TokenKeys::new(&[9; 32], TokenLifetimes::default()).unwrap(),
        },
        SystemConfig::default(),
    )
    .await
    .unwrap();
    let parties = Parties::register(&medex).await;
    bus.take();
    World {
        medex,
        clock,
        bus,
        parties,
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
            notes: Some("keep cold".into()),
        }],
        notes: None,
    }
}

fn conflict_code(result: Result<Order>) -> &'static str {
    match result {
        Err(e) => e.code(),
        Ok(o) => panic!("expected an error, got order in {}", o.status),
    }
}

#[test]
fn order_is_priced_and_numbered_by_the_server() {
    block_on(async {
        let w = world(1).await;
        let order = w
            .medex
            .create_order(&w.customers[0], new_order(w.vendor_a_id))
            .await
            .unwrap();
        assert!(order.order_number.starts_with("ORD-") && order.order_number.len() == 12);
        assert_eq!(order.tracking_token.len(), 22);
        let km = order.estimated_distance_km.unwrap();
        assert!((km - 2.6).abs() < 0.2, "{km}");
        assert_eq!(order.delivery_fee, SystemConfig::default().tariff.fee(km));
        assert_eq!(order.status_history.len(), 1);
        assert_eq!(order.pickup_address, "1 Main St");
        assert!(matches!(w.bus.take().as_slice(), [Event::OrderCreated(o)] if o.id == order.id));
    });
}

#[test]
fn invalid_orders_name_every_bad_field() {
    block_on(async {
        let w = world(2).await;
        let mut bad = new_order(w.vendor_a_id);
        bad.delivery_latitude = 91.0;
        bad.customer_name = " ".into();
        bad.items = vec![NewItem {
            name: "x".into(),
            quantity: -1,
            notes: None,
        }];
        let Err(Error::Invalid(errors)) = w.medex.create_order(&w.customers[0], bad).await else {
            panic!()
        };
        let fields: Vec<_> = errors.iter().map(|e| e.field.as_str()).collect();
        assert_eq!(
            fields,
            ["delivery_latitude", "customer_name", "items[0].quantity"]
        );
        assert!(matches!(
            w.medex
                .create_order(&w.vendor_a, new_order(w.vendor_a_id))
                .await,
            Err(Error::Forbidden)
        ));
    });
}

#[test]
fn full_delivery_credits_the_driver_once_and_frees_it() {
    block_on(async {
        let w = world(3).await;
        let (driver, driver_id) = w.drivers[0];
        let order = w
            .medex
            .create_order(&w.customers[0], new_order(w.vendor_a_id))
            .await
            .unwrap();
        w.medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(
            conflict_code(
                w.medex
                    .assign_driver(&w.vendor_a, order.id, driver_id)
                    .await
            ),
            "driver_not_available",
            "a new driver starts offline"
        );
        w.medex
            .set_driver_status(&driver, driver_id, DriverStatus::Available)
            .await
            .unwrap();
        w.medex
            .assign_driver(&w.vendor_a, order.id, driver_id)
            .await
            .unwrap();
        assert_eq!(
            w.medex.get_driver(&driver, driver_id).await.unwrap().status,
            DriverStatus::Busy
        );
        assert_eq!(
            w.medex
                .set_driver_status(&driver, driver_id, DriverStatus::Offline)
                .await
                .err()
                .map(|e| e.code()),
            Some("driver_has_active_order")
        );
        w.medex
            .respond_to_assignment(&driver, order.id, AssignmentResponse::Accept, None)
            .await
            .unwrap();
        w.medex
            .change_status(&driver, order.id, OrderStatus::PickedUp, None)
            .await
            .unwrap();
        // Drive ~1.1 km north in 10 fixes, one of them a GPS jump.
        for step in 0..10 {
            w.clock.advance(Duration::seconds(10));
            let latitude = if step == 5 {
                53.5
            } else {
                52.50 + step as f64 * 0.001
            };
            let input = FixInput {
                latitude,
                longitude: 13.40,
                accuracy: Some(5.0),
                ..Default::default()
            };
            let location = w
                .medex
                .record_location(&driver, driver_id, input)
                .await
                .unwrap();
            assert_eq!(location.order_id, Some(order.id));
            assert!(location.eta_minutes.is_some());
        }
        w.medex
            .change_status(&driver, order.id, OrderStatus::OutForDelivery, None)
            .await
            .unwrap();
        let delivered = w
            .medex
            .change_status(&driver, order.id, OrderStatus::Delivered, None)
            .await
            .unwrap();
        let km = delivered.actual_distance_km.unwrap();
        assert!((km - 0.9).abs() < 0.15, "jump filtered out: {km}");
        assert_eq!(
            conflict_code(
                w.medex
                    .change_status(&driver, order.id, OrderStatus::Delivered, None)
                    .await
            ),
            "invalid_transition",
            "delivering twice"
        );
        let d = w.medex.get_driver(&w.vendor_a, driver_id).await.unwrap();
        assert_eq!(
            (d.status, d.total_deliveries, d.total_earnings),
            (DriverStatus::Available, 1, delivered.delivery_fee)
        );
        let statuses: Vec<_> = delivered
            .status_history
            .iter()
            .map(|c| c.status.as_str())
            .collect();
        assert_eq!(
            statuses,
            [
                "pending",
                "accepted",
                "driver_assigned",
                "picked_up",
                "out_for_delivery",
                "delivered"
            ]
        );
        assert!(delivered.driver_accepted_at.is_some() && delivered.delivered_at.is_some());

        let today = start().date_naive();
        let utc = FixedOffset::east_opt(0).unwrap();
        let earnings = w
            .medex
            .driver_earnings(&driver, driver_id, today, today, utc)
            .await
            .unwrap();
        assert_eq!(
            (earnings.total_deliveries, earnings.total_earnings),
            (1, delivered.delivery_fee)
        );
        let report = w
            .medex
            .vendor_daily_report(&w.vendor_a, w.vendor_a_id, today, utc)
            .await
            .unwrap();
        assert_eq!(
            (
                report.orders_created,
                report.orders_delivered,
                report.revenue
            ),
            (1, 1, delivered.delivery_fee)
        );
        assert!(
            w.medex
                .vendor_daily_report(&w.vendor_b, w.vendor_a_id, today, utc)
                .await
                .is_err()
        );
    });
}

#[test]
fn decline_and_reassign_free_the_previous_driver() {
    block_on(async {
        let w = world(4).await;
        let [(d1, id1), (d2, id2), (d3, id3)] = w.drivers;
        for (actor, id) in [(d1, id1), (d2, id2), (d3, id3)] {
            w.medex
                .set_driver_status(&actor, id, DriverStatus::Available)
                .await
                .unwrap();
        }
        let order = w
            .medex
            .create_order(&w.customers[0], new_order(w.vendor_a_id))
            .await
            .unwrap();
        w.medex
            .change_status(&w.admin, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        assert_eq!(
            w.medex
                .assign_driver(&w.vendor_a, order.id, id3)
                .await
                .err()
                .map(|e| e.code()),
            Some("validation_failed"),
            "another fleet's driver cannot be assigned"
        );
        w.medex
            .assign_driver(&w.vendor_a, order.id, id1)
            .await
            .unwrap();
        let reassigned = w
            .medex
            .assign_driver(&w.vendor_a, order.id, id2)
            .await
            .unwrap();
        assert_eq!(reassigned.driver_id, Some(id2));
        assert_eq!(
            w.medex.get_driver(&d1, id1).await.unwrap().status,
            DriverStatus::Available
        );
        assert_eq!(
            conflict_code(
                w.medex
                    .change_status(&d1, order.id, OrderStatus::PickedUp, None)
                    .await
            ),
            "not_found"
        );
        let declined = w
            .medex
            .respond_to_assignment(
                &d2,
                order.id,
                AssignmentResponse::Decline,
                Some("flat tyre".into()),
            )
            .await
            .unwrap();
        assert_eq!(
            (declined.status, declined.driver_id),
            (OrderStatus::Accepted, None)
        );
        assert_eq!(
            declined.status_history.last().unwrap().reason.as_deref(),
            Some("flat tyre")
        );
        assert_eq!(
            w.medex.get_driver(&d2, id2).await.unwrap().status,
            DriverStatus::Available
        );
    });
}

#[test]
fn cancellation_rights_follow_the_table() {
    block_on(async {
        let w = world(5).await;
        let (driver, driver_id) = w.drivers[0];
        w.medex
            .set_driver_status(&driver, driver_id, DriverStatus::Available)
            .await
            .unwrap();
        let order = w
            .medex
            .create_order(&w.customers[0], new_order(w.vendor_a_id))
            .await
            .unwrap();
        assert_eq!(
            conflict_code(w.medex.cancel_order(&w.customers[1], order.id, None).await),
            "not_found"
        );
        assert_eq!(
            conflict_code(w.medex.cancel_order(&w.vendor_b, order.id, None).await),
            "not_found"
        );
        w.medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        w.medex
            .assign_driver(&w.vendor_a, order.id, driver_id)
            .await
            .unwrap();
        w.medex
            .change_status(&driver, order.id, OrderStatus::PickedUp, None)
            .await
            .unwrap();
        assert_eq!(
            conflict_code(w.medex.cancel_order(&w.customers[0], order.id, None).await),
            "invalid_transition"
        );
        assert_eq!(
            conflict_code(w.medex.cancel_order(&w.vendor_a, order.id, None).await),
            "invalid_transition"
        );
        assert_eq!(
            conflict_code(w.medex.cancel_order(&driver, order.id, None).await),
            "forbidden"
        );
        let cancelled = w
            .medex
            .cancel_order(&w.admin, order.id, Some("patient in hospital".into()))
            .await
            .unwrap();
        assert_eq!(
            cancelled.cancel_reason.as_deref(),
            Some("patient in hospital")
        );
        assert_eq!(
            w.medex.get_driver(&driver, driver_id).await.unwrap().status,
            DriverStatus::Available
        );
        assert_eq!(
            conflict_code(
                w.medex
                    .change_status(&w.vendor_a, order.id, OrderStatus::Rejected, None)
                    .await
            ),
            "invalid_transition"
        );
    });
}

#[test]
fn rejection_needs_a_reason_and_proof_policy_blocks_delivery() {
    block_on(async {
        let w = world(6).await;
        let order = w
            .medex
            .create_order(&w.customers[0], new_order(w.vendor_a_id))
            .await
            .unwrap();
        assert_eq!(
            conflict_code(
                w.medex
                    .change_status(
                        &w.vendor_a,
                        order.id,
                        OrderStatus::Rejected,
                        Some("  ".into())
                    )
                    .await
            ),
            "reason_required"
        );
        let patch = VendorPatch {
            require_proof_photo: Some(true),
            require_signature: Some(true),
            ..Default::default()
        };
        w.medex
            .update_vendor(&w.vendor_a, w.vendor_a_id, patch)
            .await
            .unwrap();
        let (driver, driver_id) = w.drivers[0];
        w.medex
            .set_driver_status(&driver, driver_id, DriverStatus::Available)
            .await
            .unwrap();
        w.medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        w.medex
            .assign_driver(&w.vendor_a, order.id, driver_id)
            .await
            .unwrap();
        w.medex
            .change_status(&driver, order.id, OrderStatus::PickedUp, None)
            .await
            .unwrap();
        w.medex
            .change_status(&driver, order.id, OrderStatus::OutForDelivery, None)
            .await
            .unwrap();
        let Err(Error::Conflict(Conflict::ProofMissing(missing))) = w
            .medex
            .change_status(&driver, order.id, OrderStatus::Delivered, None)
            .await
        else {
            panic!("delivery without proof must be refused")
        };
        assert_eq!(missing, ["proof_photo", "signature"]);
        w.medex
            .attach_proof(
                &driver,
                order.id,
                ProofKind::Photo,
                "/api/uploads/p.jpg".into(),
            )
            .await
            .unwrap();
        w.medex
            .attach_proof(
                &driver,
                order.id,
                ProofKind::Signature,
                "/api/uploads/s.png".into(),
            )
            .await
            .unwrap();
        w.medex
            .change_status(&driver, order.id, OrderStatus::Delivered, None)
            .await
            .unwrap();
    });
}

#[test]
fn tracking_view_shows_only_public_fields() {
    block_on(async {
        let w = world(7).await;
        let (driver, driver_id) = w.drivers[0];
        w.medex
            .set_driver_status(&driver, driver_id, DriverStatus::Available)
            .await
            .unwrap();
        let order = w
            .medex
            .create_order(&w.customers[0], new_order(w.vendor_a_id))
            .await
            .unwrap();
        let pending = w
            .medex
            .tracking_view(&order.tracking_token, true)
            .await
            .unwrap();
        assert!(pending.driver.is_none() && pending.eta_minutes.is_none());
        w.medex
            .change_status(&w.vendor_a, order.id, OrderStatus::Accepted, None)
            .await
            .unwrap();
        w.medex
            .assign_driver(&w.vendor_a, order.id, driver_id)
            .await
            .unwrap();
        let input = FixInput {
            latitude: 52.505,
            longitude: 13.40,
            ..Default::default()
        };
        w.medex
            .record_location(&driver, driver_id, input)
            .await
            .unwrap();
        let view = w
            .medex
            .tracking_view(&order.tracking_token, true)
            .await
            .unwrap();
        assert_eq!(view.driver.as_ref().unwrap().first_name, "Driver");
        assert!(view.eta_minutes.unwrap() > 0.0);
        assert_eq!(view.trail.len(), 1);
        let json = serde_json::to_string(&view).unwrap();
        for secret in [
            "+49 30 1234",
            "+1 555",
            "Number1",
            "Ann Patient",
            &order.user_id.to_string(),
            &driver_id.to_string(),
        ] {
            assert!(
                !json.contains(secret),
                "tracking view leaks {secret}: {json}"
            );
        }
        assert!(matches!(
            w.medex.tracking_view("nope", false).await,
            Err(Error::NotFound)
        ));
    });
}

#[test]
fn sessions_rotate_and_die_with_the_account() {
    block_on(async {
        let w = world(8).await;
        let session = w
            .medex
            .login("Customer1@Example.test", PASSWORD)
            .await
            .unwrap();
        assert!(w.medex.authenticate(&session.access_token).await.is_ok());
        assert!(matches!(
            w.medex.authenticate(&session.refresh_token).await,
            Err(Error::Unauthenticated(AuthFailure::WrongTokenType))
        ));
        let next = w.medex.refresh(&session.refresh_token).await.unwrap();
        assert!(matches!(
            w.medex.refresh(&session.refresh_token).await,
            Err(Error::Unauthenticated(AuthFailure::Revoked))
        ));
        w.medex.logout(&next.refresh_token).await.unwrap();
        assert!(w.medex.refresh(&next.refresh_token).await.is_err());
        assert!(matches!(
            w.medex
                .login("customer1@example.test", "wrong password")
                .await,
            Err(Error::Unauthenticated(AuthFailure::BadCredentials))
        ));
        assert!(matches!(
            w.medex.login("nobody@example.test", PASSWORD).await,
            Err(Error::Unauthenticated(AuthFailure::BadCredentials))
        ));
        w.medex
            .set_user_active(&w.admin, w.customers[0].user_id, false)
            .await
            .unwrap();
        assert!(matches!(
            w.medex.authenticate(&next.access_token).await,
            Err(Error::Unauthenticated(AuthFailure::Deactivated))
        ));
        w.clock.advance(Duration::minutes(16));
        let fresh = w
            .medex
            .login("customer2@example.test", PASSWORD)
            .await
            .unwrap();
        w.clock.advance(Duration::minutes(16));
        assert!(matches!(
            w.medex.authenticate(&fresh.access_token).await,
            Err(Error::Unauthenticated(AuthFailure::Expired))
        ));
    });
}

#[test]
fn a_configuration_change_from_a_stale_read_conflicts_instead_of_undoing_another() {
    block_on(async {
        let w = world(12).await;
        let read_by_one = w.medex.system_config(&w.admin).unwrap();
        let read_by_other = w.medex.system_config(&w.admin).unwrap();
        let mut first = (*read_by_one).clone();
        first.road_factor = 1.5;
        w.medex
            .update_system_config_from(&w.admin, &read_by_one, first)
            .await
            .unwrap();
        let mut second = (*read_by_other).clone();
        second.vehicle_speeds.bike = 18.0;
        assert!(matches!(
            w.medex
                .update_system_config_from(&w.admin, &read_by_other, second)
                .await,
            Err(Error::Conflict(Conflict::ConcurrentUpdate))
        ));
        // The first change stands, in force and stored; the second is retried from a fresh read.
        let config = w.medex.config();
        assert_eq!(
            (config.road_factor, config.vehicle_speeds.bike),
            (1.5, 15.0)
        );
        assert_eq!(
            w.medex.store().system_config().await.unwrap().as_ref(),
            Some(&*config)
        );
        let fresh = w.medex.system_config(&w.admin).unwrap();
        let mut second = (*fresh).clone();
        second.vehicle_speeds.bike = 18.0;
        let kept = w
            .medex
            .update_system_config_from(&w.admin, &fresh, second)
            .await
            .unwrap();
        assert_eq!((kept.road_factor, kept.vehicle_speeds.bike), (1.5, 18.0));
        // Only admins change it.
        assert!(matches!(
            w.medex
                .update_system_config_from(&w.vendor_a, &kept, (*kept).clone())
                .await,
            Err(Error::Forbidden)
        ));
    });
}

/// Hashes like the fast hasher but first lets other tasks run, so that concurrent use cases
/// interleave between their reads and their commits.
struct YieldingHasher(Argon2Hasher);

#[async_trait::async_trait]
impl crate::auth::PasswordHasher for YieldingHasher {
    async fn hash(&self, password: String) -> String {
        yield_once().await;
        self.0.hash_blocking(&password)
    }

    async fn verify(&self, password: String, hash: String) -> bool {
        yield_once().await;
        self.0.verify_blocking(&password, &hash)
    }
}

async fn yield_once() {
    let mut yielded = false;
    std::future::poll_fn(|cx| {
        if yielded {
            std::task::Poll::Ready(())
        } else {
            yielded = true;
            cx.waker().wake_by_ref();
            std::task::Poll::Pending
        }
    })
    .await
}

#[test]
fn concurrent_driver_registrations_for_one_fleet_all_succeed() {
    block_on(async {
        let w = world_with(10, Arc::new(YieldingHasher(Argon2Hasher::insecure_fast()))).await;
        let register = |n: usize| {
            w.medex.register_driver(
                &w.vendor_a,
                NewDriver {
                    vendor_id: None,
                    email: format!("extra{n}@pharmacy.test"),
                    password: PASSWORD.into(),
                    full_name: format!("Extra {n}"),
                    phone: None,
                    vehicle_type: VehicleType::Van,
                    vehicle_number: None,
                    license_number: None,
                },
            )
        };
        let results = futures::future::join_all((0..4).map(register)).await;
        assert!(
            results.iter().all(Result::is_ok),
            "{:?}",
            results
                .iter()
                .filter_map(|r| r.as_ref().err())
                .collect::<Vec<_>>()
        );
        let vendor = w
            .medex
            .get_vendor(&w.vendor_a, w.vendor_a_id)
            .await
            .unwrap();
        assert_eq!(
            vendor.driver_ids.len(),
            6,
            "two at the start and four new, none lost"
        );
    });
}

#[test]
fn lists_are_scoped_to_the_actor() {
    block_on(async {
        let w = world(9).await;
        let mine = w
            .medex
            .create_order(&w.customers[0], new_order(w.vendor_a_id))
            .await
            .unwrap();
        w.medex
            .create_order(&w.customers[1], new_order(w.vendor_a_id))
            .await
            .unwrap();
        let page = Page::first(50);
        let own = w
            .medex
            .list_orders(&w.customers[0], OrderQuery::default(), page)
            .await
            .unwrap();
        assert_eq!(own.iter().map(|o| o.id).collect::<Vec<_>>(), vec![mine.id]);
        assert_eq!(
            w.medex
                .list_orders(&w.vendor_a, OrderQuery::default(), page)
                .await
                .unwrap()
                .len(),
            2
        );
        assert!(
            w.medex
                .list_orders(&w.vendor_b, OrderQuery::default(), page)
                .await
                .unwrap()
                .is_empty()
        );
        let spy = OrderQuery {
            vendor_id: Some(w.vendor_a_id),
            ..Default::default()
        };
        assert!(
            w.medex
                .list_orders(&w.vendor_b, spy, page)
                .await
                .unwrap()
                .is_empty()
        );
        assert_eq!(
            w.medex
                .list_orders(&w.admin, OrderQuery::default(), page)
                .await
                .unwrap()
                .len(),
            2
        );
        let fleet = w
            .medex
            .list_drivers(&w.vendor_a, DriverQuery::default(), Page::first(50))
            .await
            .unwrap();
        assert_eq!(fleet.len(), 2);
        assert!(matches!(
            w.medex
                .list_drivers(&w.customers[0], DriverQuery::default(), Page::first(50))
                .await,
            Err(Error::Forbidden)
        ));
    });
}

// ---------------------------------------------------------------------------------------------
// The lifecycle against a reference model.
//
// The model (`conformance::lifecycle_model`) re-states DESIGN §2's table as plain `match` arms,
// independently of `lifecycle::RULES`, and tracks what the world must look like after every
// step. Random sequences of (actor, action) run against both; any difference in outcome or state
// fails.

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

async fn run_model(ops: Vec<Op>) -> std::result::Result<(), TestCaseError> {
    let w = world(42).await;
    let mut model = Model::default();
    for _ in 0..3 {
        model.drivers.push(ModelDriver {
            status: DriverStatus::Offline,
            order: None,
            deliveries: 0,
            earned_before: Money::ZERO,
            earned_orders: vec![],
        });
    }
    let mut ids: Vec<OrderId> = Vec::new();
    let mut fees: Vec<Money> = Vec::new();
    let mut before: Vec<Order> = Vec::new();
    for op in ops {
        match op {
            Op::Create(c) => {
                let order = w
                    .medex
                    .create_order(&w.customers[c], new_order(w.vendor_a_id))
                    .await
                    .unwrap();
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
                    let refused = result.is_err();
                    prop_assert_eq!(
                        result.is_ok(),
                        expected,
                        "{:?} {:?} on order {}: {:?}",
                        who,
                        act,
                        index,
                        result.err()
                    );
                    if refused {
                        let unchanged = w.medex.get_order(&w.admin, id).await.unwrap();
                        prop_assert_eq!(
                            &unchanged,
                            &before[index],
                            "a refused move leaves the order unchanged"
                        );
                    }
                }
            }
            Op::DriverStatus(d, status) => {
                let expected = model.set_driver_status(d, status);
                let (actor, id) = w.drivers[d];
                let result = w.medex.set_driver_status(&actor, id, status).await;
                prop_assert_eq!(result.is_ok(), expected, "driver {} to {:?}", d, status);
            }
            Op::Tick(seconds) => w.clock.advance(Duration::seconds(seconds)),
        }

        // The world matches the model, and the invariants hold.
        let mut active_per_driver = [0usize; 3];
        for (i, expected) in model.orders.iter().enumerate() {
            let order = w.medex.get_order(&w.admin, ids[i]).await.unwrap();
            prop_assert_eq!(order.status, expected.status, "order {} status", i);
            prop_assert_eq!(
                order.status_history.len(),
                expected.history,
                "order {} history",
                i
            );
            let driver_index = order
                .driver_id
                .map(|id| w.drivers.iter().position(|d| d.1 == id).unwrap());
            if !matches!(
                order.status,
                OrderStatus::Delivered | OrderStatus::Cancelled | OrderStatus::Rejected
            ) {
                prop_assert_eq!(driver_index, expected.driver, "order {} driver", i);
            }
            prop_assert!(
                order.status_history.windows(2).all(|w| w[0].at <= w[1].at),
                "history goes forward"
            );
            prop_assert!(
                order.status_history.len() >= before[i].status_history.len(),
                "history only grows"
            );
            prop_assert_eq!(
                &order.status_history[..before[i].status_history.len()],
                &before[i].status_history[..]
            );
            if before[i].status.is_terminal() {
                prop_assert_eq!(&order, &before[i], "terminal orders never change");
            }
            if order.status.has_driver_at_work() {
                active_per_driver[driver_index.unwrap()] += 1;
            }
            before[i] = order;
        }
        for (d, expected) in model.drivers.iter().enumerate() {
            let driver = w.medex.get_driver(&w.admin, w.drivers[d].1).await.unwrap();
            prop_assert!(
                active_per_driver[d] <= 1,
                "driver {} on two active orders",
                d
            );
            prop_assert_eq!(driver.status, expected.status, "driver {} status", d);
            prop_assert_eq!(
                driver.total_deliveries,
                expected.deliveries,
                "driver {} deliveries",
                d
            );
            let earned = expected
                .earned_orders
                .iter()
                .fold(expected.earned_before, |sum, &i| {
                    sum.saturating_add(fees[i])
                });
            prop_assert_eq!(
                driver.total_earnings,
                earned,
                "driver {} earnings credited once per delivery",
                d
            );
        }
    }
    Ok(())
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 64, ..ProptestConfig::default() })]

    #[test]
    fn lifecycle_matches_the_reference_model(
        first in prop::collection::vec(0..2usize, 1..4),
        ops in prop::collection::vec(op(), 1..120),
    ) {
        let ops = first.into_iter().map(Op::Create).chain(ops).collect();
        block_on(run_model(ops))?;
    }
}
