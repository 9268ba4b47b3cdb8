//! The model test: random operations go to a store and to [`MemoryStore`], the reference; every
//! answer must be the same. A `Reopen` step closes the store and opens it again over the same
//! data (sled's own model test does the same with its `Reboot`).
//!
//! A store runs it from a property test of its own, which gives the runtime and the way to
//! reopen ([`Reopen`]):
//!
//! ```
//! # use std::sync::Arc;
//! # use medex_core::conformance::model::{self, Reopen};
//! # use medex_core::memory::MemoryStore;
//! # use medex_core::store::Store;
//! struct Memory(Arc<MemoryStore>);
//!
//! #[async_trait::async_trait]
//! impl Reopen for Memory {
//!     // Memory is not durable: "reopening" hands out the same store again.
//!     async fn open(&mut self) -> Arc<dyn Store> {
//!         self.0.clone()
//!     }
//! }
//!
//! proptest::proptest!(|(ops in model::ops())| {
//!     futures::executor::block_on(model::check(Memory(Arc::default()), ops));
//! });
//! ```

use std::fmt::Debug;
use std::sync::Arc;

use async_trait::async_trait;
use chrono::Duration;
use proptest::prelude::*;

use super::fixtures::t0;
use super::numbered::{self as fixtures, driver_id, order_id, user_id, vendor_id};
use crate::config::SystemConfig;
use crate::memory::MemoryStore;
use crate::model::{DriverStatus, Email, ExternalRef, Money, OrderId, OrderStatus, Role, VendorId};
use crate::store::{
    DriverQuery, LeaseClaim, OrderQuery, Page, RefreshSession, ShopOrder, Store, StoreError,
    TrailQuery, UserQuery, Write,
};

/// Opens the store under test: an empty one the first time, and after that the same data again,
/// as a restarted program would find it. The model test drops the previous handle before it asks
/// for the next, so a store that locks its files can be reopened.
#[async_trait]
pub trait Reopen: Send {
    /// The store, (re)opened.
    async fn open(&mut self) -> Arc<dyn Store>;
}

const USERS: u64 = 4;
const VENDORS: u64 = 2;
const DRIVERS: u64 = 3;
const ORDERS: u64 = 8;
const EMAILS: u8 = 3;
const EXTERNALS: u8 = 2;
const SESSIONS: u8 = 3;
const LEASES: u8 = 2;
const HOLDERS: u8 = 3;
/// Leases are asked for within a minute, so that they keep meeting each other.
const LEASE_SECONDS: i64 = 60;
const HOURS: i64 = 5;
/// Fixes fall in a few seconds, so that equal times (ties) are common.
const FIX_SECONDS: i64 = 20;

/// Which version a write carries, relative to the stored one.
#[derive(Debug, Clone, Copy)]
pub enum Version {
    /// Stored + 1: accepted (absent an error of another kind).
    Next,
    /// Stored: a stale write (or version 0 for an absent record).
    Same,
    /// Stored + 2: a skipped version.
    Skip,
}

/// One step of the model test. Slots are small numbers, so that steps keep meeting the same
/// records, e-mails, tokens and sessions.
#[allow(missing_docs)] // The variants are the Store's methods, named alike.
#[derive(Debug, Clone)]
pub enum Op {
    User {
        slot: u64,
        email: u8,
        role: Role,
        active: bool,
        version: Version,
    },
    Vendor {
        slot: u64,
        active: bool,
        version: Version,
    },
    Driver {
        slot: u64,
        vendor: u64,
        status: DriverStatus,
        latitude: Option<f64>,
        cents: i64,
        version: Version,
    },
    Order(OrderOp),
    /// Order and driver in one commit, as an assignment does.
    Assign {
        order: u64,
        driver: u64,
        driver_version: Version,
    },
    Fixes(Vec<(u64, i64, f64)>),
    Prune {
        seconds: i64,
    },
    PutSession {
        slot: u8,
        user: u64,
    },
    TakeSession {
        slot: u8,
    },
    Config {
        road_factor: f64,
        version: Version,
    },
    /// A lease asked for by holder `holder` at second `at` for `seconds`.
    Lease {
        slot: u8,
        holder: u8,
        at: i64,
        seconds: i64,
    },
    ReleaseLease {
        slot: u8,
        holder: u8,
    },
    PruneSessions {
        seconds: i64,
    },
    ListUsers {
        role: Option<Role>,
        active: Option<bool>,
        page: (usize, Option<u64>),
    },
    ListVendors {
        page: (usize, Option<u64>),
    },
    ListDrivers {
        vendor: Option<u64>,
        status: Option<DriverStatus>,
        page: (usize, Option<u64>),
    },
    ListOrders(OrderQueryOp),
    Reopen,
}

/// A write of an order.
#[allow(missing_docs)]
#[derive(Debug, Clone)]
pub struct OrderOp {
    slot: u64,
    vendor: u64,
    user: u64,
    driver: Option<u64>,
    /// The order number of this slot, or of another one (a clash).
    number: u64,
    /// The tracking token of this slot, or of another one.
    token: u64,
    external: Option<u8>,
    status: OrderStatus,
    created_hour: i64,
    version: Version,
}

/// An order list query.
#[allow(missing_docs)]
#[derive(Debug, Clone)]
pub struct OrderQueryOp {
    vendor: Option<u64>,
    user: Option<u64>,
    driver: Option<u64>,
    status: Option<OrderStatus>,
    from_hour: Option<i64>,
    before_hour: Option<i64>,
    page: (usize, Option<u64>),
}

fn version() -> impl Strategy<Value = Version> {
    prop_oneof![6 => Just(Version::Next), 1 => Just(Version::Same), 1 => Just(Version::Skip)]
}

fn role() -> impl Strategy<Value = Role> {
    prop_oneof![
        Just(Role::User),
        Just(Role::Vendor),
        Just(Role::Driver),
        Just(Role::Admin)
    ]
}

fn driver_status() -> impl Strategy<Value = DriverStatus> {
    prop_oneof![
        Just(DriverStatus::Offline),
        Just(DriverStatus::Available),
        Just(DriverStatus::Busy),
        Just(DriverStatus::OnBreak)
    ]
}

fn order_status() -> impl Strategy<Value = OrderStatus> {
    proptest::sample::select(OrderStatus::ALL.to_vec())
}

fn page(slots: u64) -> impl Strategy<Value = (usize, Option<u64>)> {
    (0usize..6, proptest::option::weighted(0.3, 0..slots))
}

fn order_op() -> impl Strategy<Value = OrderOp> {
    (
        (
            0..ORDERS,
            0..VENDORS,
            0..USERS,
            proptest::option::of(0..DRIVERS),
        ),
        (
            proptest::option::weighted(0.1, 0..ORDERS),
            proptest::option::weighted(0.1, 0..ORDERS),
            proptest::option::weighted(0.3, 0..EXTERNALS),
        ),
        (order_status(), 0..HOURS, version()),
    )
        .prop_map(
            |(
                (slot, vendor, user, driver),
                (number, token, external),
                (status, created_hour, version),
            )| OrderOp {
                slot,
                vendor,
                user,
                driver,
                number: number.unwrap_or(slot),
                token: token.unwrap_or(slot),
                external,
                status,
                created_hour,
                version,
            },
        )
}

fn order_query_op() -> impl Strategy<Value = OrderQueryOp> {
    (
        proptest::option::of(0..VENDORS),
        proptest::option::weighted(0.3, 0..USERS),
        proptest::option::weighted(0.3, 0..DRIVERS),
        proptest::option::weighted(0.2, order_status()),
        proptest::option::of(0..=HOURS),
        proptest::option::of(0..=HOURS),
        page(ORDERS),
    )
        .prop_map(
            |(vendor, user, driver, status, from_hour, before_hour, page)| OrderQueryOp {
                vendor,
                user,
                driver,
                status,
                from_hour,
                before_hour,
                page,
            },
        )
}

fn op() -> impl Strategy<Value = Op> {
    prop_oneof![
        3 => (0..USERS, 0..EMAILS, role(), any::<bool>(), version())
            .prop_map(|(slot, email, role, active, version)| Op::User { slot, email, role, active, version }),
        1 => (0..VENDORS, any::<bool>(), version())
            .prop_map(|(slot, active, version)| Op::Vendor { slot, active, version }),
        2 => (0..DRIVERS, 0..VENDORS, driver_status(), proptest::option::of(-90.0..90.0f64), 0..100_000i64, version())
            .prop_map(|(slot, vendor, status, latitude, cents, version)| Op::Driver { slot, vendor, status, latitude, cents, version }),
        6 => order_op().prop_map(Op::Order),
        1 => (0..ORDERS, 0..DRIVERS, version())
            .prop_map(|(order, driver, driver_version)| Op::Assign { order, driver, driver_version }),
        2 => proptest::collection::vec((0..DRIVERS, 0..FIX_SECONDS, -90.0..90.0f64), 1..5).prop_map(Op::Fixes),
        1 => (0..FIX_SECONDS).prop_map(|seconds| Op::Prune { seconds }),
        1 => (0..SESSIONS, 0..USERS).prop_map(|(slot, user)| Op::PutSession { slot, user }),
        1 => (0..SESSIONS).prop_map(|slot| Op::TakeSession { slot }),
        1 => (1.0..5.0f64, version()).prop_map(|(road_factor, version)| Op::Config { road_factor, version }),
        1 => (0..LEASES, 0..HOLDERS, 0..LEASE_SECONDS, 0..LEASE_SECONDS)
            .prop_map(|(slot, holder, at, seconds)| Op::Lease { slot, holder, at, seconds }),
        1 => (0..LEASES, 0..HOLDERS).prop_map(|(slot, holder)| Op::ReleaseLease { slot, holder }),
        1 => (-2..3i64).prop_map(|seconds| Op::PruneSessions { seconds }),
        1 => (proptest::option::of(role()), proptest::option::of(any::<bool>()), page(USERS))
            .prop_map(|(role, active, page)| Op::ListUsers { role, active, page }),
        1 => page(VENDORS).prop_map(|page| Op::ListVendors { page }),
        1 => (proptest::option::of(0..VENDORS), proptest::option::of(driver_status()), page(DRIVERS))
            .prop_map(|(vendor, status, page)| Op::ListDrivers { vendor, status, page }),
        4 => order_query_op().prop_map(Op::ListOrders),
        1 => Just(Op::Reopen),
    ]
}

/// Errors compared by kind. Duplicates are one kind: when a write clashes on two unique keys the
/// stores may name either.
#[derive(Debug, PartialEq)]
enum Outcome<T> {
    Ok(T),
    Conflict,
    Duplicate,
}

fn outcome<T: Debug>(what: &str, result: Result<T, StoreError>) -> Outcome<T> {
    match result {
        Ok(value) => Outcome::Ok(value),
        Err(StoreError::Conflict) => Outcome::Conflict,
        Err(StoreError::Duplicate(_)) => Outcome::Duplicate,
        Err(other) => panic!("{what}: unexpected error {other}"),
    }
}

fn same<T: Debug + PartialEq>(
    what: &str,
    model: Result<T, StoreError>,
    store: Result<T, StoreError>,
) {
    assert_eq!(outcome(what, store), outcome(what, model), "{what}");
}

fn next_version(stored: Option<u64>, version: Version) -> u64 {
    let stored = stored.unwrap_or(0);
    match version {
        Version::Next => stored + 1,
        Version::Same => stored,
        Version::Skip => stored + 2,
    }
}

fn page_of<C>((limit, after): (usize, Option<u64>), id: impl Fn(u64) -> C) -> Page<C> {
    Page {
        limit,
        after: after.map(id),
    }
}

fn external(vendor: VendorId, n: u8) -> (VendorId, String, String) {
    (vendor, "woocommerce".into(), format!("wc-{n}"))
}

struct Harness<R> {
    model: MemoryStore,
    store: Option<Arc<dyn Store>>,
    reopen: R,
}

impl<R: Reopen> Harness<R> {
    fn store(&self) -> &dyn Store {
        self.store.as_deref().expect("open")
    }

    async fn commit(&self, what: &str, writes: Vec<Write>) {
        let model = self.model.commit(writes.clone()).await;
        let store = self.store().commit(writes).await;
        same(what, model, store);
    }

    async fn run(&mut self, op: Op) {
        let (model, store) = (&self.model, self.store());
        match op {
            Op::User {
                slot,
                email,
                role,
                active,
                version,
            } => {
                let stored = model.user(user_id(slot)).await.unwrap().map(|u| u.version);
                let mut user = fixtures::user(slot, &format!("person{email}@example.com"));
                user.role = role;
                user.is_active = active;
                user.version = next_version(stored, version);
                self.commit("user", vec![Write::User(user)]).await;
            }
            Op::Vendor {
                slot,
                active,
                version,
            } => {
                let stored = model
                    .vendor(vendor_id(slot))
                    .await
                    .unwrap()
                    .map(|v| v.version);
                let mut vendor = fixtures::vendor(slot, user_id(0));
                vendor.is_active = active;
                vendor.version = next_version(stored, version);
                self.commit("vendor", vec![Write::Vendor(vendor)]).await;
            }
            Op::Driver {
                slot,
                vendor,
                status,
                latitude,
                cents,
                version,
            } => {
                let stored = model
                    .driver(driver_id(slot))
                    .await
                    .unwrap()
                    .map(|d| d.version);
                let mut driver = fixtures::driver(slot, vendor_id(vendor), user_id(slot));
                driver.status = status;
                driver.current_latitude = latitude;
                driver.total_earnings = Money::from_cents(cents);
                driver.version = next_version(stored, version);
                self.commit("driver", vec![Write::Driver(driver)]).await;
            }
            Op::Order(o) => {
                let stored = model
                    .order(order_id(o.slot))
                    .await
                    .unwrap()
                    .map(|o| o.version);
                let mut order = fixtures::order(o.slot, vendor_id(o.vendor), user_id(o.user));
                order.driver_id = o.driver.map(driver_id);
                order.order_number = format!("ORD-{:08}", o.number);
                order.tracking_token = format!("token-{}", o.token);
                order.external_ref = o.external.map(|n| ExternalRef {
                    source: "woocommerce".into(),
                    id: format!("wc-{n}"),
                });
                order.status = o.status;
                order.created_at = t0() + Duration::hours(o.created_hour);
                order.version = next_version(stored, o.version);
                self.commit("order", vec![Write::Order(order)]).await;
            }
            Op::Assign {
                order,
                driver,
                driver_version,
            } => {
                let (Some(mut o), Some(mut d)) = (
                    model.order(order_id(order)).await.unwrap(),
                    model.driver(driver_id(driver)).await.unwrap(),
                ) else {
                    return;
                };
                o.driver_id = Some(d.id);
                o.status = OrderStatus::DriverAssigned;
                o.version += 1;
                d.status = DriverStatus::Busy;
                d.active_order_id = Some(o.id);
                d.version = next_version(Some(d.version), driver_version);
                self.commit("assign", vec![Write::Order(o), Write::Driver(d)])
                    .await;
            }
            Op::Fixes(fixes) => {
                let fixes: Vec<_> = fixes
                    .into_iter()
                    .map(|(driver, seconds, latitude)| fixtures::fix(driver, seconds, latitude))
                    .collect();
                same(
                    "append_fixes",
                    model.append_fixes(&fixes).await,
                    store.append_fixes(&fixes).await,
                );
            }
            Op::Prune { seconds } => {
                let before = t0() + Duration::seconds(seconds);
                same(
                    "prune_trail",
                    model.prune_trail(before).await,
                    store.prune_trail(before).await,
                );
            }
            Op::PutSession { slot, user } => {
                let session = RefreshSession {
                    id: format!("jti-{slot}"),
                    user_id: user_id(user),
                    expires_at: t0() + Duration::days(7),
                };
                same(
                    "put_refresh_session",
                    model.put_refresh_session(session.clone()).await,
                    store.put_refresh_session(session).await,
                );
            }
            Op::TakeSession { slot } => {
                let id = format!("jti-{slot}");
                same(
                    "take_refresh_session",
                    model.take_refresh_session(&id).await,
                    store.take_refresh_session(&id).await,
                );
            }
            Op::Config {
                road_factor,
                version,
            } => {
                let config = SystemConfig {
                    road_factor,
                    ..SystemConfig::default()
                };
                let stored = model.system_config().await.unwrap().map(|s| s.version);
                let version = next_version(stored, version);
                same(
                    "save_system_config",
                    model.save_system_config(&config, version).await,
                    store.save_system_config(&config, version).await,
                );
            }
            Op::Lease {
                slot,
                holder,
                at,
                seconds,
            } => {
                let (name, holder) = (format!("lease-{slot}"), format!("holder-{holder}"));
                let now = t0() + Duration::seconds(at);
                let until = now + Duration::seconds(seconds);
                same(
                    "acquire_lease",
                    model
                        .acquire_lease(LeaseClaim::new(&name, &holder, now, until))
                        .await,
                    store
                        .acquire_lease(LeaseClaim::new(&name, &holder, now, until))
                        .await,
                );
            }
            Op::ReleaseLease { slot, holder } => {
                let (name, holder) = (format!("lease-{slot}"), format!("holder-{holder}"));
                same(
                    "release_lease",
                    model.release_lease(&name, &holder).await,
                    store.release_lease(&name, &holder).await,
                );
            }
            Op::PruneSessions { seconds } => {
                // Sessions of the model test expire at t0 + 7 days.
                let before = t0() + Duration::days(7) + Duration::seconds(seconds);
                same(
                    "prune_refresh_sessions",
                    model.prune_refresh_sessions(before).await,
                    store.prune_refresh_sessions(before).await,
                );
            }
            Op::ListUsers { role, active, page } => {
                let query = UserQuery {
                    role,
                    is_active: active,
                };
                let page = page_of(page, user_id);
                same(
                    "users",
                    model.users(&query, page).await,
                    store.users(&query, page).await,
                );
            }
            Op::ListVendors { page } => {
                let page = page_of(page, vendor_id);
                same(
                    "vendors",
                    model.vendors(page).await,
                    store.vendors(page).await,
                );
            }
            Op::ListDrivers {
                vendor,
                status,
                page,
            } => {
                let query = DriverQuery {
                    vendor_id: vendor.map(vendor_id),
                    status,
                };
                let page = page_of(page, driver_id);
                same(
                    "drivers",
                    model.drivers(&query, page).await,
                    store.drivers(&query, page).await,
                );
            }
            Op::ListOrders(q) => {
                let query = OrderQuery {
                    vendor_id: q.vendor.map(vendor_id),
                    user_id: q.user.map(user_id),
                    driver_id: q.driver.map(driver_id),
                    status: q.status,
                    created_from: q.from_hour.map(|h| t0() + Duration::hours(h)),
                    created_before: q.before_hour.map(|h| t0() + Duration::hours(h)),
                };
                let page = page_of(q.page, order_id);
                let what = format!("orders {query:?} {page:?}");
                same(
                    &what,
                    model.orders(&query, page).await,
                    store.orders(&query, page).await,
                );
            }
            Op::Reopen => {
                drop(self.store.take());
                self.store = Some(self.reopen.open().await);
            }
        }
    }

    /// Every point read of every slot agrees.
    async fn compare_everything(&self) {
        let (model, store) = (&self.model, self.store());
        for n in 0..USERS {
            same(
                "user",
                model.user(user_id(n)).await,
                store.user(user_id(n)).await,
            );
        }
        for n in 0..EMAILS {
            let email = Email::parse(&format!("person{n}@example.com")).unwrap();
            same(
                "user_by_email",
                model.user_by_email(email.as_str()).await,
                store.user_by_email(email.as_str()).await,
            );
        }
        for n in 0..VENDORS {
            same(
                "vendor",
                model.vendor(vendor_id(n)).await,
                store.vendor(vendor_id(n)).await,
            );
            for e in 0..EXTERNALS {
                let (vendor, source, id) = external(vendor_id(n), e);
                same(
                    "order_by_external_ref",
                    model
                        .order_by_external_ref(ShopOrder::new(vendor, &source, &id))
                        .await,
                    store
                        .order_by_external_ref(ShopOrder::new(vendor, &source, &id))
                        .await,
                );
            }
        }
        for n in 0..DRIVERS {
            let id = driver_id(n);
            same("driver", model.driver(id).await, store.driver(id).await);
            let (from, to) = (t0() - Duration::days(1), t0() + Duration::days(1));
            same(
                "trail",
                model.trail(TrailQuery::new(id, from, to, 1000)).await,
                store.trail(TrailQuery::new(id, from, to, 1000)).await,
            );
            let (from, to) = (t0() + Duration::seconds(5), t0() + Duration::seconds(15));
            same(
                "trail reversed",
                model.trail(TrailQuery::new(id, to, from, 3)).await,
                store.trail(TrailQuery::new(id, to, from, 3)).await,
            );
            same(
                "trail window",
                model.trail(TrailQuery::new(id, from, to, 3)).await,
                store.trail(TrailQuery::new(id, from, to, 3)).await,
            );
        }
        for n in 0..ORDERS {
            let id: OrderId = order_id(n);
            same("order", model.order(id).await, store.order(id).await);
        }
        for n in 0..ORDERS {
            let token = format!("token-{n}");
            same(
                "order_by_tracking_token",
                model.order_by_tracking_token(&token).await,
                store.order_by_tracking_token(&token).await,
            );
        }
        same(
            "system_config",
            model.system_config().await,
            store.system_config().await,
        );
    }
}

/// Sequences of 1 to 80 steps.
pub fn ops() -> impl Strategy<Value = Vec<Op>> {
    proptest::collection::vec(op(), 1..80)
}

/// Runs `ops` against the store `reopen` opens (which must start empty) and against a fresh
/// [`MemoryStore`], comparing every answer and, after every step, every point read; panics with
/// the step and read that differ.
pub async fn check(mut reopen: impl Reopen, ops: Vec<Op>) {
    let store = reopen.open().await;
    let mut harness = Harness {
        model: MemoryStore::new(),
        store: Some(store),
        reopen,
    };
    for op in ops {
        harness.run(op).await;
        harness.compare_everything().await;
    }
}
