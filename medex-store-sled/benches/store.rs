//! Benchmarks of the sled store on disk: a durable order insert (one at a time, and 64 at once to
//! show group commit), a lookup by tracking token, a page of 50 of a vendor's orders, and fix
//! appends (one, and 100 in one call). Figures are kept in BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use chrono::{TimeZone, Utc};
use criterion::{Criterion, Throughput};
use medex_core::model::{
    Coordinates, DriverId, Email, LocationFix, Money, Order, OrderId, OrderItem, OrderStatus, Role,
    User, UserId, Vendor, VendorId,
};
use medex_core::store::{OrderQuery, Page, Store, Write};
use medex_store_sled::SledStore;
use tokio::runtime::Runtime;
use uuid::Uuid;

/// Orders in the store before measuring.
const SEEDED: u64 = 10_000;
/// Committers of the group-commit benchmark.
const CONCURRENT: u64 = 64;

fn id(n: u64) -> Uuid {
    // UUIDv7-shaped like the service's ids: the time part grows with `n`.
    uuid::Builder::from_unix_timestamp_millis(1_770_000_000_000 + n, &[0x5a; 10]).into_uuid()
}

fn template(vendor: VendorId, customer: UserId) -> Order {
    let at = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
    Order {
        id: OrderId::from_uuid(id(0)),
        order_number: String::new(),
        user_id: customer,
        vendor_id: vendor,
        driver_id: None,
        tracking_token: String::new(),
        status: OrderStatus::Pending,
        pickup_address: "1 Main St, Berlin".into(),
        pickup_latitude: 52.5,
        pickup_longitude: 13.4,
        delivery_address: "2 Side St, Berlin".into(),
        delivery_latitude: Some(52.51),
        delivery_longitude: Some(13.41),
        customer_name: "Ann Example".into(),
        customer_phone: "+49 30 123456".into(),
        items: vec![OrderItem {
            name: "Ibuprofen 400".into(),
            quantity: 2,
            notes: Some("after meals".into()),
        }],
        notes: None,
        estimated_distance_km: Some(1.3),
        actual_distance_km: None,
        delivery_fee: Money::from_cents(325),
        proof_photo_url: None,
        signature_url: None,
        accepted_at: None,
        driver_accepted_at: None,
        picked_up_at: None,
        out_for_delivery_at: None,
        delivered_at: None,
        cancelled_at: None,
        cancel_reason: None,
        reject_reason: None,
        status_history: vec![],
        external_ref: None,
        created_at: at,
        updated_at: at,
        version: 1,
    }
}

/// Makes orders with fresh ids, numbers and tokens.
struct Orders {
    template: Order,
    next: AtomicU64,
}

impl Orders {
    fn make(&self) -> Order {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let mut order = self.template.clone();
        order.id = OrderId::from_uuid(id(n));
        order.order_number = format!("ORD-{n:08}");
        order.tracking_token = format!("tok-{n:032x}");
        order
    }
}

fn setup(runtime: &Runtime, dir: &std::path::Path) -> (Arc<SledStore>, Arc<Orders>, VendorId) {
    let store = Arc::new(SledStore::open(dir).unwrap());
    let at = Utc.with_ymd_and_hms(2026, 5, 1, 8, 0, 0).unwrap();
    let owner = User {
        id: UserId::from_uuid(Uuid::from_u128(1)),
        email: Email::parse("owner@example.com").unwrap(),
        full_name: "Owner".into(),
        phone: None,
        role: Role::Vendor,
        is_active: true,
        password_hash: "$argon2id$stub".into(),
        vendor_id: None,
        driver_id: None,
        created_at: at,
        updated_at: at,
        version: 1,
    };
    let vendor = Vendor {
        id: VendorId::from_uuid(Uuid::from_u128(2)),
        user_id: owner.id,
        business_name: "Pharmacy".into(),
        email: Email::parse("pharmacy@example.com").unwrap(),
        phone: None,
        address: "1 Main St, Berlin".into(),
        location: Coordinates::new(52.5, 13.4).unwrap(),
        driver_ids: vec![],
        is_active: true,
        require_proof_photo: false,
        require_signature: false,
        woocommerce_webhook_secret: None,
        created_at: at,
        updated_at: at,
        version: 1,
    };
    let orders = Arc::new(Orders {
        template: template(vendor.id, owner.id),
        next: AtomicU64::new(1),
    });
    runtime.block_on(async {
        store
            .commit(vec![Write::User(owner), Write::Vendor(vendor.clone())])
            .await
            .unwrap();
        for _ in 0..SEEDED / 100 {
            let batch = (0..100).map(|_| Write::Order(orders.make())).collect();
            store.commit(batch).await.unwrap();
        }
    });
    (store, orders, vendor.id)
}

fn store_benches(c: &mut Criterion) {
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (store, orders, vendor) = setup(&runtime, dir.path());

    c.bench_function("insert_order_durable", |b| {
        b.iter(|| {
            runtime
                .block_on(store.commit(vec![Write::Order(orders.make())]))
                .unwrap()
        })
    });

    let mut group = c.benchmark_group("insert_order_durable_concurrent");
    group.throughput(Throughput::Elements(CONCURRENT));
    group.bench_function(format!("{CONCURRENT}_committers"), |b| {
        b.iter(|| {
            runtime.block_on(async {
                let mut committers = tokio::task::JoinSet::new();
                for _ in 0..CONCURRENT {
                    let (store, order) = (Arc::clone(&store), orders.make());
                    committers.spawn(async move { store.commit(vec![Write::Order(order)]).await });
                }
                while let Some(done) = committers.join_next().await {
                    done.unwrap().unwrap();
                }
            })
        })
    });
    group.finish();

    let mut n = 0u64;
    c.bench_function("order_by_tracking_token", |b| {
        b.iter(|| {
            n = (n * 7919 + 1) % SEEDED + 1;
            let token = format!("tok-{n:032x}");
            let found = runtime
                .block_on(store.order_by_tracking_token(&token))
                .unwrap();
            assert!(found.is_some());
        })
    });

    let query = OrderQuery {
        vendor_id: Some(vendor),
        ..Default::default()
    };
    let middle = OrderId::from_uuid(id(SEEDED / 2));
    c.bench_function("vendor_orders_page_50", |b| {
        b.iter(|| {
            let page = Page {
                limit: 50,
                after: Some(middle),
            };
            let found = runtime.block_on(store.orders(&query, page)).unwrap();
            assert_eq!(found.len(), 50);
        })
    });

    let mut seconds = 0i64;
    let mut fixes = move |count: usize| -> Vec<LocationFix> {
        (0..count)
            .map(|_| {
                seconds += 1;
                LocationFix {
                    driver_id: DriverId::from_uuid(Uuid::from_u128(u128::from(
                        seconds as u64 % 1000,
                    ))),
                    latitude: 52.5,
                    longitude: 13.4,
                    speed: Some(20.0),
                    heading: Some(90.0),
                    accuracy: Some(5.0),
                    recorded_at: Utc.timestamp_opt(1_770_000_000 + seconds, 0).unwrap(),
                }
            })
            .collect()
    };
    c.bench_function("append_fix", |b| {
        b.iter(|| runtime.block_on(store.append_fixes(&fixes(1))).unwrap())
    });
    let mut group = c.benchmark_group("append_fixes_batch");
    group.throughput(Throughput::Elements(100));
    group.bench_function("100_fixes", |b| {
        b.iter(|| runtime.block_on(store.append_fixes(&fixes(100))).unwrap())
    });
    group.finish();

    runtime.block_on(store.flush()).unwrap();
}

// What `criterion_group!` + `criterion_main!` expand to, minus the undocumented public function.
fn main() {
    let mut criterion = Criterion::default().configure_from_args();
    store_benches(&mut criterion);
    criterion.final_summary();
}
