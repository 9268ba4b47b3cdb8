//! Benchmarks of the pure functions on MedEx's hot paths: a lifecycle transition, a permission
//! check, an ETA, a fee, the vendor daily report over 100,000 orders, and the JSON of an order
//! and of a public tracking view. Run with `cargo bench -p medex-core`; figures are kept in the
//! root BENCHMARKS.md.

use std::hint::black_box;

use chrono::{DateTime, Duration, FixedOffset, NaiveDate, TimeZone, Utc};
use criterion::{Criterion, Throughput};
use medex_core::config::{SystemConfig, Tariff};
use medex_core::custody::CustodyKeys;
use medex_core::lifecycle::{self, Action, Move, Signature, Verdict};
use medex_core::model::{
    Coordinates, Driver, DriverId, DriverStatus, Email, HandoverCode, Money, Order, OrderId,
    OrderItem, OrderStatus, Role, StatusChange, UserId, VehicleType, Vendor, VendorId,
};
use medex_core::permissions::{self, Actor, Permission};
use medex_core::reports;
use medex_core::routing;
use medex_core::tracking::TrackingView;
use uuid::Uuid;

/// Orders in the daily report's input.
const REPORT_ORDERS: u64 = 100_000;
/// Drivers those orders are spread over.
const REPORT_DRIVERS: u64 = 50;

fn uuid(n: u64) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(1_770_000_000_000 + n, &[0x5a; 10]).into_uuid()
}

fn start() -> DateTime<Utc> {
    Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap()
}

/// An order as the service creates it: pending, one history entry, two items.
fn order(n: u64, vendor: VendorId, customer: UserId, at: DateTime<Utc>) -> Order {
    Order {
        id: OrderId::from_uuid(uuid(n)),
        order_number: format!("ORD-{n:08X}"),
        user_id: customer,
        vendor_id: vendor,
        driver_id: None,
        tracking_token: format!("tk{n:020}"),
        status: OrderStatus::Pending,
        pickup_address: "Alexanderplatz 1, 10178 Berlin".into(),
        pickup_latitude: 52.5219,
        pickup_longitude: 13.4132,
        delivery_address: "Torstrasse 101, 10119 Berlin".into(),
        delivery_latitude: Some(52.529),
        delivery_longitude: Some(13.401),
        customer_name: "Ann Patient".into(),
        customer_phone: "+49 30 555 0199".into(),
        items: vec![
            OrderItem {
                name: "Amoxicillin 500 mg".into(),
                quantity: 1,
                notes: Some("after meals".into()),
            },
            OrderItem {
                name: "Ibuprofen 400 mg".into(),
                quantity: 2,
                notes: None,
            },
        ],
        notes: Some("ring twice".into()),
        estimated_distance_km: Some(1.17),
        actual_distance_km: None,
        delivery_fee: Money::from_cents(293),
        proof_photo_url: None,
        signature_url: None,
        proofs: vec![],
        require_proof_photo: false,
        require_signature: false,
        require_handover_code: false,
        handover_code: HandoverCode::parse("123456").ok(),
        handover_failures: 0,
        attempt: 1,
        failure_reason: None,
        accepted_at: None,
        driver_accepted_at: None,
        picked_up_at: None,
        out_for_delivery_at: None,
        delivered_at: None,
        cancelled_at: None,
        cancel_reason: None,
        reject_reason: None,
        status_history: vec![StatusChange::new(
            OrderStatus::Pending,
            at,
            customer,
            Role::User,
        )],
        custody_seal: None,
        external_ref: None,
        deliver_after: None,
        deliver_before: None,
        scheduled_for: None,
        late_risk_at: None,
        driver_arriving_at: None,
        driver_arrived_at: None,
        created_at: at,
        updated_at: at,
        version: 1,
    }
}

fn driver(n: u64, vendor: VendorId) -> Driver {
    Driver {
        id: DriverId::from_uuid(uuid(1_000_000 + n)),
        user_id: UserId::from_uuid(uuid(2_000_000 + n)),
        vendor_id: vendor,
        full_name: format!("Dee Driver{n}"),
        email: Email::parse(&format!("dee{n}@pharmacy.example")).unwrap(),
        phone: Some("+49 30 555 0101".into()),
        vehicle_type: VehicleType::Scooter,
        vehicle_number: Some("B-MX 101".into()),
        license_number: None,
        status: DriverStatus::Busy,
        active_order_id: None,
        active_order_ids: Vec::new(),
        manual_stop_order: Vec::new(),
        current_latitude: Some(52.525),
        current_longitude: Some(13.408),
        last_location_update: Some(start()),
        total_deliveries: 12,
        total_earnings: Money::from_cents(4_210),
        is_active: true,
        created_at: start(),
        updated_at: start(),
        version: 3,
    }
}

fn vendor(id: VendorId, owner: UserId) -> Vendor {
    Vendor {
        id,
        user_id: owner,
        business_name: "Corner Pharmacy".into(),
        email: Email::parse("owner@pharmacy.example").unwrap(),
        phone: None,
        address: "Alexanderplatz 1, 10178 Berlin".into(),
        location: Coordinates::new(52.5219, 13.4132).unwrap(),
        driver_ids: vec![],
        is_active: true,
        require_proof_photo: false,
        require_signature: false,
        require_handover_code: false,
        delivery_radius_km: None,
        max_active_orders: 1,
        auto_assign: false,
        woocommerce_webhook_secret: None,
        created_at: start(),
        updated_at: start(),
        version: 1,
    }
}

/// An order moved `steps` steps along the delivery path (pending → accepted → assigned → picked
/// up → out for delivery → delivered), `minutes` apart, through `lifecycle::apply`.
fn advanced(mut order: Order, driver: &Driver, steps: usize, minutes: i64) -> Order {
    let owner = Signature {
        actor_id: UserId::from_uuid(uuid(3)),
        actor_role: Role::Vendor,
    };
    let courier = Signature {
        actor_id: driver.user_id,
        actor_role: Role::Driver,
    };
    let path = [
        (Action::Accept, owner),
        (Action::AssignDriver, owner),
        (Action::PickUp, courier),
        (Action::StartDelivery, courier),
        (Action::Deliver, courier),
    ];
    let mut at = order.created_at;
    for (action, by) in path.into_iter().take(steps) {
        let rule = rule_of(action);
        at += Duration::minutes(minutes);
        if action == Action::AssignDriver {
            order.driver_id = Some(driver.id);
        }
        order = lifecycle::apply(&order, rule, Move::by(by), at, &keys()).unwrap();
    }
    order
}

/// The custody key the benches sign with.
fn keys() -> CustodyKeys {
    CustodyKeys::from_seed([3; 32])
}

/// The first rule of the table for `action` (the one the benches' paths take).
fn rule_of(action: Action) -> &'static lifecycle::Rule {
    lifecycle::RULES
        .iter()
        .find(|r| r.action == action)
        .expect("a rule per action")
}

fn lifecycle_transition(c: &mut Criterion) {
    let vendor_id = VendorId::from_uuid(uuid(2));
    let customer = UserId::from_uuid(uuid(1));
    let courier = driver(0, vendor_id);
    let on_the_way = advanced(order(7, vendor_id, customer, start()), &courier, 4, 3);
    let actor = Actor {
        user_id: courier.user_id,
        role: Role::Driver,
        vendor_id: None,
        driver_id: Some(courier.id),
        session: None,
    };
    let now = start() + Duration::hours(1);
    let keys = keys();
    // What `change_status` does for "delivered": parties, the table, then the new copy, its
    // custody entry hashed and the head signed.
    c.bench_function("lifecycle_decide_and_apply", |b| {
        b.iter(|| {
            let order = black_box(&on_the_way);
            let parties = permissions::parties(&actor, order);
            let Verdict::Allowed(rule) = lifecycle::decide(order.status, parties, Action::Deliver)
            else {
                unreachable!("the assigned driver may deliver")
            };
            let signature = Signature {
                actor_id: actor.user_id,
                actor_role: actor.role,
            };
            lifecycle::apply(order, rule, Move::by(signature), now, &keys).unwrap()
        })
    });
    c.bench_function("lifecycle_decide_refused", |b| {
        b.iter(|| {
            lifecycle::decide(
                black_box(OrderStatus::OutForDelivery),
                black_box(permissions::PartySet::NONE.with(permissions::Party::Customer)),
                Action::Cancel,
            )
        })
    });
}

fn permission_check(c: &mut Criterion) {
    let vendor_id = VendorId::from_uuid(uuid(2));
    let other_vendor = VendorId::from_uuid(uuid(4));
    let customer = UserId::from_uuid(uuid(1));
    let courier = driver(0, vendor_id);
    let the_order = advanced(order(7, vendor_id, customer, start()), &courier, 2, 3);
    let staff_elsewhere = Actor {
        user_id: UserId::from_uuid(uuid(5)),
        role: Role::Vendor,
        vendor_id: Some(other_vendor),
        driver_id: None,
        session: None,
    };
    let assigned = Actor {
        user_id: courier.user_id,
        role: Role::Driver,
        vendor_id: None,
        driver_id: Some(courier.id),
        session: None,
    };
    c.bench_function("permissions_view_order_granted", |b| {
        b.iter(|| {
            permissions::access(
                black_box(&assigned),
                Permission::ViewOrder(black_box(&the_order)),
            )
        })
    });
    c.bench_function("permissions_view_order_hidden", |b| {
        b.iter(|| {
            permissions::access(
                black_box(&staff_elsewhere),
                Permission::ViewOrder(black_box(&the_order)),
            )
        })
    });
}

fn eta_and_fee(c: &mut Criterion) {
    let vendor_id = VendorId::from_uuid(uuid(2));
    let customer = UserId::from_uuid(uuid(1));
    let courier = driver(0, vendor_id);
    let config = SystemConfig::default();
    let assigned = advanced(order(7, vendor_id, customer, start()), &courier, 2, 3);
    let here = Coordinates::new(52.515, 13.42).unwrap();
    // Before pickup: two great-circle legs (driver → pickup → destination).
    c.bench_function("routing_eta_minutes_before_pickup", |b| {
        b.iter(|| {
            routing::eta_minutes(
                black_box(&assigned),
                black_box(here),
                VehicleType::Scooter,
                &config,
            )
        })
    });
    let tariff = Tariff {
        base_fee: Money::from_cents(150),
        per_km: Money::from_cents(250),
        min_fee: Money::from_cents(300),
    };
    c.bench_function("tariff_fee", |b| b.iter(|| tariff.fee(black_box(3.4567))));
}

fn vendor_daily_report(c: &mut Criterion) {
    let vendor_id = VendorId::from_uuid(uuid(2));
    let customer = UserId::from_uuid(uuid(1));
    let fleet: Vec<Driver> = (0..REPORT_DRIVERS).map(|n| driver(n, vendor_id)).collect();
    // A week of orders around the reported day, every 6 seconds; most delivered, some cancelled,
    // some still on their way.
    let first = start() - Duration::days(3);
    let orders: Vec<Order> = (0..REPORT_ORDERS)
        .map(|n| {
            let created = first + Duration::seconds(6 * n as i64);
            let courier = &fleet[(n % REPORT_DRIVERS) as usize];
            let placed = order(10 + n, vendor_id, customer, created);
            match n % 10 {
                0 => {
                    let mut o = placed;
                    o.status = OrderStatus::Cancelled;
                    o.cancelled_at = Some(created + Duration::minutes(4));
                    o
                }
                1 => advanced(placed, courier, 3, 5),
                _ => advanced(placed, courier, 5, 5),
            }
        })
        .collect();
    let day = NaiveDate::from_ymd_opt(2026, 5, 1).unwrap();
    let berlin = FixedOffset::east_opt(2 * 3600).unwrap();
    let mut group = c.benchmark_group("reports_vendor_daily");
    group.throughput(Throughput::Elements(REPORT_ORDERS));
    group.sample_size(20);
    group.bench_function("100k_orders_50_drivers", |b| {
        b.iter(|| reports::vendor_daily(black_box(&orders), &fleet, day, berlin))
    });
    group.finish();
}

fn json_encoding(c: &mut Criterion) {
    let vendor_id = VendorId::from_uuid(uuid(2));
    let customer = UserId::from_uuid(uuid(1));
    let courier = driver(0, vendor_id);
    let config = SystemConfig::default();
    let on_the_way = advanced(order(7, vendor_id, customer, start()), &courier, 4, 3);
    let pharmacy = vendor(vendor_id, UserId::from_uuid(uuid(3)));
    let bytes = serde_json::to_vec(&on_the_way).unwrap().len() as u64;
    let mut group = c.benchmark_group("json");
    group.throughput(Throughput::Bytes(bytes));
    group.bench_function("order_to_vec", |b| {
        b.iter(|| serde_json::to_vec(black_box(&on_the_way)).unwrap())
    });
    group.finish();
    // What `GET /api/tracking/{token}` computes and encodes once it has the three records.
    c.bench_function("tracking_view_new_and_encode", |b| {
        b.iter(|| {
            let view = TrackingView::new(
                black_box(&on_the_way),
                Some(&pharmacy),
                Some(&courier),
                &config,
            );
            serde_json::to_vec(&view).unwrap()
        })
    });
}

// What `criterion_group!` + `criterion_main!` expand to, minus the undocumented public function.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    lifecycle_transition(&mut criterion);
    permission_check(&mut criterion);
    eta_and_fee(&mut criterion);
    vendor_daily_report(&mut criterion);
    json_encoding(&mut criterion);
    criterion.final_summary();
}
