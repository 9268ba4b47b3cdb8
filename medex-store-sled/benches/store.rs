//! Benchmarks of the sled store on disk: a durable order insert (one at a time, and 64 at once to
//! show group commit), a lookup by tracking token, a page of 50 of a vendor's orders, and fix
//! appends (one, and 100 in one call). Figures are kept in BENCHMARKS.md.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};

use criterion::{Criterion, Throughput};
use medex_core::conformance::fixtures;
use medex_core::model::{DriverId, LocationFix, Order, OrderId, Role, UserId, VendorId};
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

/// Makes orders with fresh ids, numbers and tokens.
struct Orders {
    vendor: VendorId,
    customer: UserId,
    next: AtomicU64,
}

impl Orders {
    fn make(&self) -> Order {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let id = OrderId::from_uuid(id(n));
        // Numbers and tokens are unique keys: each order needs its own.
        Order {
            order_number: format!("ORD-{n:08}"),
            tracking_token: format!("bench-token-{n:016}"),
            ..fixtures::order(id, self.vendor, self.customer)
        }
    }
}

fn setup(runtime: &Runtime, dir: &std::path::Path) -> (Arc<SledStore>, Arc<Orders>, VendorId) {
    let store = Arc::new(SledStore::open(dir).unwrap());
    let owner = fixtures::user(
        UserId::from_uuid(Uuid::from_u128(1)),
        "owner@example.com",
        Role::Vendor,
    );
    let vendor = fixtures::vendor(VendorId::from_uuid(Uuid::from_u128(2)), owner.id);
    let orders = Arc::new(Orders {
        vendor: vendor.id,
        customer: owner.id,
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
                let driver =
                    DriverId::from_uuid(Uuid::from_u128(u128::from(seconds as u64 % 1000)));
                fixtures::fix(driver, seconds, 52.5)
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
