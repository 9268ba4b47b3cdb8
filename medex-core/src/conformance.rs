//! The Store conformance kit: the storage contract of [`crate::store`] as executable checks.
//! Every [`Store`] implementation runs all of it against itself:
//!
//! - [`run`]: each rule of the contract once, on a fresh, empty store;
//! - [`lists::order_pages_match_the_reference`]: every kind of order query, paged, against
//!   [`MemoryStore`](crate::memory::MemoryStore) (fresh store);
//! - [`races::run`]: racing writers, exactly one winner (any store, with a spawner);
//! - [`model::check`]: random operations with `Reopen` steps against `MemoryStore`, from a
//!   property test of the store's own (see [`model`]);
//! - [`files::run`]: the [`FileStore`](crate::files::FileStore) contract, for stores that keep
//!   uploaded files too.
//!
//! ```
//! # futures::executor::block_on(async {
//! medex_core::conformance::run(&medex_core::memory::MemoryStore::new()).await;
//! # });
//! ```

use chrono::{DateTime, Duration, Utc};
use uuid::Uuid;

use crate::model::*;
use crate::store::*;

mod custody;
pub mod files;
pub mod fixtures;
mod instances;
mod integrations;
pub mod lists;
pub mod model;
pub mod numbered;
pub mod races;

use fixtures::{fix, t0};

/// Time-ordered ids like the service makes: `n` orders them.
fn id(n: u64) -> Uuid {
    uuid::Builder::from_unix_timestamp_millis(1_770_000_000_000 + n, &[n as u8; 10]).into_uuid()
}

fn user(n: u64, email: &str, role: Role) -> User {
    fixtures::user(UserId::from_uuid(id(n)), email, role)
}

fn vendor(n: u64, owner: UserId) -> Vendor {
    Vendor {
        woocommerce_webhook_secret: Some("s".repeat(20)),
        ..fixtures::vendor(VendorId::from_uuid(id(n)), owner)
    }
}

fn driver(n: u64, vendor: VendorId, owner: UserId) -> Driver {
    fixtures::driver(DriverId::from_uuid(id(n)), vendor, owner)
}

fn order(n: u64, vendor: VendorId, customer: UserId, created: DateTime<Utc>) -> Order {
    Order {
        created_at: created,
        updated_at: created,
        ..fixtures::order(OrderId::from_uuid(id(n)), vendor, customer)
    }
}

fn ids<T, I>(items: &[T], id: impl Fn(&T) -> I) -> Vec<I> {
    items.iter().map(id).collect()
}

/// For a store just opened again on the data of an earlier one: new records can be added and
/// changed from their stored versions, and the indexes are as the earlier store left them.
pub async fn writes_go_on_after_reopening(store: &dyn Store) {
    let owner = numbered::user(9000, "after-reopen@example.com");
    let v = numbered::vendor(9000, owner.id);
    let mut o = numbered::order(9000, v.id, owner.id);
    store
        .commit(vec![
            Write::User(owner),
            Write::Vendor(v.clone()),
            Write::Order(o.clone()),
        ])
        .await
        .unwrap();
    o.status = OrderStatus::Accepted;
    o.version = 2;
    store.commit(vec![Write::Order(o.clone())]).await.unwrap();
    let query = OrderQuery {
        vendor_id: Some(v.id),
        status: Some(OrderStatus::Accepted),
        ..Default::default()
    };
    assert_eq!(
        store.orders(&query, Page::first(10)).await.unwrap(),
        vec![o],
        "a reopened store indexes what is written after it opened"
    );
}

/// Runs every contract check against an empty store, panicking with a message naming the
/// broken rule on the first failure.
pub async fn run(store: &dyn Store) {
    versions_guard_every_write(store).await;
    unique_keys_hold(store).await;
    commits_are_all_or_nothing(store).await;
    commits_apply_in_order(store).await;
    lists_page_newest_first(store).await;
    order_queries_filter_and_move_with_the_record(store).await;
    positions_come_from_the_newest_fix(store).await;
    refresh_sessions_are_single_use(store).await;
    instances::run(store).await;
    integrations::run(store).await;
    custody::records_keep_their_chain_of_custody(store).await;
    the_ends_of_the_calendar_are_bounds_like_any_other(store).await;
    text_is_kept_whatever_it_holds(store).await;
    runs_windows_and_arrivals_are_kept(store).await;
    store.check().await.expect("check() on a healthy store");
    store.flush().await.expect("flush() on a healthy store");
}

async fn versions_guard_every_write(store: &dyn Store) {
    let mut u = user(1, "versions@example.com", Role::User);
    store
        .commit(vec![Write::User(u.clone())])
        .await
        .expect("insert with version 1");
    assert_eq!(
        store.user(u.id).await.unwrap().as_ref(),
        Some(&u),
        "a committed user reads back unchanged"
    );
    assert!(
        matches!(
            store.commit(vec![Write::User(u.clone())]).await,
            Err(StoreError::Conflict)
        ),
        "inserting an existing record (version 1 again) must be a Conflict"
    );
    u.full_name = "Renamed".into();
    u.version = 2;
    store
        .commit(vec![Write::User(u.clone())])
        .await
        .expect("update from version 1 to 2");
    let mut stale = u.clone();
    stale.full_name = "Stale".into();
    stale.version = 2;
    assert!(
        matches!(
            store.commit(vec![Write::User(stale)]).await,
            Err(StoreError::Conflict)
        ),
        "a write based on an old version must be a Conflict"
    );
    let mut skipped = u.clone();
    skipped.version = 4;
    assert!(
        matches!(
            store.commit(vec![Write::User(skipped)]).await,
            Err(StoreError::Conflict)
        ),
        "a write skipping a version must be a Conflict"
    );
    assert_eq!(
        store.user(u.id).await.unwrap().unwrap().full_name,
        "Renamed",
        "failed writes change nothing"
    );
}

async fn unique_keys_hold(store: &dyn Store) {
    let a = user(10, "unique@example.com", Role::User);
    store.commit(vec![Write::User(a.clone())]).await.unwrap();
    let b = user(11, "unique@example.com", Role::User);
    assert!(
        matches!(
            store.commit(vec![Write::User(b.clone())]).await,
            Err(StoreError::Duplicate(UniqueKey::Email))
        ),
        "a second account with one e-mail must be Duplicate(Email)"
    );
    assert!(store.user(b.id).await.unwrap().is_none());
    assert_eq!(
        store
            .user_by_email("unique@example.com")
            .await
            .unwrap()
            .map(|u| u.id),
        Some(a.id)
    );
    assert!(
        store
            .user_by_email("nobody@example.com")
            .await
            .unwrap()
            .is_none()
    );

    // Changing an e-mail frees the old one.
    let mut moved = a.clone();
    moved.email = Email::parse("moved@example.com").unwrap();
    moved.version = 2;
    store.commit(vec![Write::User(moved)]).await.unwrap();
    assert!(
        store
            .user_by_email("unique@example.com")
            .await
            .unwrap()
            .is_none(),
        "old e-mail index entry removed"
    );
    store
        .commit(vec![Write::User(b)])
        .await
        .expect("the freed e-mail can be taken");

    let v = vendor(12, a.id);
    store.commit(vec![Write::Vendor(v.clone())]).await.unwrap();
    let first = order(13, v.id, a.id, t0());
    store
        .commit(vec![Write::Order(first.clone())])
        .await
        .unwrap();
    let mut same_number = order(14, v.id, a.id, t0());
    same_number.order_number = first.order_number.clone();
    assert!(matches!(
        store.commit(vec![Write::Order(same_number)]).await,
        Err(StoreError::Duplicate(UniqueKey::OrderNumber))
    ));
    let mut same_token = order(15, v.id, a.id, t0());
    same_token.tracking_token = first.tracking_token.clone();
    assert!(matches!(
        store.commit(vec![Write::Order(same_token)]).await,
        Err(StoreError::Duplicate(UniqueKey::TrackingToken))
    ));
    assert_eq!(
        store
            .order_by_tracking_token(&first.tracking_token)
            .await
            .unwrap()
            .map(|o| o.id),
        Some(first.id)
    );
    assert!(
        store
            .order_by_tracking_token("no-such-token")
            .await
            .unwrap()
            .is_none()
    );

    let external = ExternalRef {
        source: "woocommerce".into(),
        id: "1001".into(),
    };
    let mut wc = order(16, v.id, a.id, t0());
    wc.external_ref = Some(external.clone());
    store.commit(vec![Write::Order(wc.clone())]).await.unwrap();
    let mut replay = order(17, v.id, a.id, t0());
    replay.external_ref = Some(external.clone());
    assert!(matches!(
        store.commit(vec![Write::Order(replay)]).await,
        Err(StoreError::Duplicate(UniqueKey::ExternalOrder))
    ));
    let other_vendor = vendor(18, a.id);
    store
        .commit(vec![Write::Vendor(other_vendor.clone())])
        .await
        .unwrap();
    let mut elsewhere = order(19, other_vendor.id, a.id, t0());
    elsewhere.external_ref = Some(external);
    store
        .commit(vec![Write::Order(elsewhere)])
        .await
        .expect("external ids are unique per vendor only");
    let found = store
        .order_by_external_ref(ShopOrder::new(v.id, "woocommerce", "1001"))
        .await
        .unwrap();
    assert_eq!(found.map(|o| o.id), Some(wc.id));
    assert!(
        store
            .order_by_external_ref(ShopOrder::new(v.id, "woocommerce", "9999"))
            .await
            .unwrap()
            .is_none()
    );
}

async fn commits_are_all_or_nothing(store: &dyn Store) {
    let u = user(20, "atomic@example.com", Role::Vendor);
    let v = vendor(21, u.id);
    let d = driver(22, v.id, u.id);
    let o = order(23, v.id, u.id, t0());
    store
        .commit(vec![
            Write::User(u.clone()),
            Write::Vendor(v.clone()),
            Write::Driver(d.clone()),
            Write::Order(o.clone()),
        ])
        .await
        .expect("a commit of several new records");

    // Assign: order and driver in one commit; a stale driver version spoils the whole commit.
    let mut assigned = o.clone();
    assigned.status = OrderStatus::DriverAssigned;
    assigned.driver_id = Some(d.id);
    assigned.version = 2;
    let mut busy = d.clone();
    busy.status = DriverStatus::Busy;
    busy.active_order_id = Some(o.id);
    busy.version = 5; // wrong: stored is 1
    assert!(matches!(
        store
            .commit(vec![
                Write::Order(assigned.clone()),
                Write::Driver(busy.clone())
            ])
            .await,
        Err(StoreError::Conflict)
    ));
    assert_eq!(
        store.order(o.id).await.unwrap().unwrap().status,
        OrderStatus::Pending,
        "no partial commit"
    );
    let by_driver = OrderQuery {
        driver_id: Some(d.id),
        ..Default::default()
    };
    assert!(
        store
            .orders(&by_driver, Page::first(10))
            .await
            .unwrap()
            .is_empty(),
        "no partial index update"
    );

    busy.version = 2;
    store
        .commit(vec![Write::Order(assigned.clone()), Write::Driver(busy)])
        .await
        .unwrap();
    assert_eq!(
        store.driver(d.id).await.unwrap().unwrap().status,
        DriverStatus::Busy
    );
    assert_eq!(
        ids(
            &store.orders(&by_driver, Page::first(10)).await.unwrap(),
            |o| o.id
        ),
        vec![o.id]
    );

    // A duplicate in one record spoils the commit too.
    let mut clash = order(24, v.id, u.id, t0());
    clash.tracking_token = o.tracking_token.clone();
    let mut renamed = store.vendor(v.id).await.unwrap().unwrap();
    renamed.business_name = "Renamed".into();
    renamed.version += 1;
    assert!(
        store
            .commit(vec![Write::Vendor(renamed), Write::Order(clash)])
            .await
            .is_err()
    );
    assert_eq!(
        store.vendor(v.id).await.unwrap().unwrap().business_name,
        v.business_name
    );
}

async fn commits_apply_in_order(store: &dyn Store) {
    let owner = user(90, "in-order@example.com", Role::Vendor);
    // Settings away from their defaults, so that a store which drops one is caught.
    let v = Vendor {
        auto_assign: true,
        max_active_orders: 4,
        require_handover_code: true,
        delivery_radius_km: Some(7.5),
        ..vendor(91, owner.id)
    };
    store
        .commit(vec![Write::User(owner.clone()), Write::Vendor(v.clone())])
        .await
        .unwrap();
    assert_eq!(
        store.vendor(v.id).await.unwrap(),
        Some(v.clone()),
        "a pharmacy reads back whole"
    );

    // Two new orders in one commit may not share a unique key.
    let a = order(92, v.id, owner.id, t0());
    let mut b = order(93, v.id, owner.id, t0());
    b.tracking_token = a.tracking_token.clone();
    assert!(
        matches!(
            store
                .commit(vec![Write::Order(a.clone()), Write::Order(b.clone())])
                .await,
            Err(StoreError::Duplicate(UniqueKey::TrackingToken))
        ),
        "unique keys hold within one commit"
    );
    assert!(
        store.order(a.id).await.unwrap().is_none(),
        "and nothing of it was written"
    );

    // A record written twice in one commit: the second write builds on the first.
    let mut renamed = v.clone();
    renamed.business_name = "Step one".into();
    renamed.version = 2;
    let mut again = renamed.clone();
    again.business_name = "Step two".into();
    again.version = 3;
    store
        .commit(vec![Write::Vendor(renamed), Write::Vendor(again)])
        .await
        .expect("writes apply in order");
    let stored = store.vendor(v.id).await.unwrap().unwrap();
    assert_eq!(
        (stored.business_name.as_str(), stored.version),
        ("Step two", 3)
    );
}

async fn lists_page_newest_first(store: &dyn Store) {
    let owner = user(30, "pager@example.com", Role::Vendor);
    let v = vendor(31, owner.id);
    store
        .commit(vec![Write::User(owner.clone()), Write::Vendor(v.clone())])
        .await
        .unwrap();
    let orders: Vec<Order> = (40..47)
        .map(|n| order(n, v.id, owner.id, t0() + Duration::minutes(n as i64)))
        .collect();
    for o in &orders {
        store.commit(vec![Write::Order(o.clone())]).await.unwrap();
    }
    let query = OrderQuery {
        vendor_id: Some(v.id),
        ..Default::default()
    };
    let mut seen = Vec::new();
    let mut after = None;
    loop {
        let page = store
            .orders(&query, Page { limit: 3, after })
            .await
            .unwrap();
        assert!(page.len() <= 3, "a page holds at most `limit` items");
        seen.extend(ids(&page, |o| o.id));
        if page.len() < 3 {
            break;
        }
        after = page.last().map(|o| o.id);
    }
    let newest_first: Vec<_> = orders.iter().rev().map(|o| o.id).collect();
    assert_eq!(
        seen, newest_first,
        "pages cover every order once, newest first"
    );

    let drivers: Vec<Driver> = (50..54).map(|n| driver(n, v.id, owner.id)).collect();
    for d in &drivers {
        store.commit(vec![Write::Driver(d.clone())]).await.unwrap();
    }
    let fleet = DriverQuery {
        vendor_id: Some(v.id),
        status: None,
    };
    let first = store.drivers(&fleet, Page::first(2)).await.unwrap();
    let second = store
        .drivers(
            &fleet,
            Page {
                limit: 2,
                after: first.last().map(|d| d.id),
            },
        )
        .await
        .unwrap();
    assert_eq!(
        [ids(&first, |d| d.id), ids(&second, |d| d.id)].concat(),
        drivers.iter().rev().map(|d| d.id).collect::<Vec<_>>()
    );

    let vendors = store.vendors(Page::first(1000)).await.unwrap();
    assert!(
        vendors.windows(2).all(|w| w[0].id > w[1].id),
        "vendors newest first"
    );
    let users = store
        .users(
            &UserQuery {
                role: Some(Role::Vendor),
                is_active: Some(true),
            },
            Page::first(1000),
        )
        .await
        .unwrap();
    assert!(
        users.iter().all(|u| u.role == Role::Vendor),
        "user filter by role"
    );
    assert!(users.iter().any(|u| u.id == owner.id));
}

async fn order_queries_filter_and_move_with_the_record(store: &dyn Store) {
    let owner = user(60, "filters@example.com", Role::Vendor);
    let customer = user(61, "customer61@example.com", Role::User);
    let v = vendor(62, owner.id);
    let d = driver(63, v.id, owner.id);
    store
        .commit(vec![
            Write::User(owner.clone()),
            Write::User(customer.clone()),
            Write::Vendor(v.clone()),
            Write::Driver(d.clone()),
        ])
        .await
        .unwrap();
    let early = order(64, v.id, customer.id, t0());
    let late = order(65, v.id, customer.id, t0() + Duration::days(1));
    store
        .commit(vec![
            Write::Order(early.clone()),
            Write::Order(late.clone()),
        ])
        .await
        .unwrap();

    let by_user = OrderQuery {
        user_id: Some(customer.id),
        ..Default::default()
    };
    assert_eq!(
        ids(
            &store.orders(&by_user, Page::first(10)).await.unwrap(),
            |o| o.id
        ),
        vec![late.id, early.id]
    );
    let day_one = OrderQuery {
        vendor_id: Some(v.id),
        created_from: Some(t0()),
        created_before: Some(t0() + Duration::days(1)),
        ..Default::default()
    };
    assert_eq!(
        ids(
            &store.orders(&day_one, Page::first(10)).await.unwrap(),
            |o| o.id
        ),
        vec![early.id]
    );

    let mut moved = early.clone();
    moved.driver_id = Some(d.id);
    moved.status = OrderStatus::Accepted;
    moved.version = 2;
    store.commit(vec![Write::Order(moved)]).await.unwrap();
    let accepted = OrderQuery {
        vendor_id: Some(v.id),
        status: Some(OrderStatus::Accepted),
        ..Default::default()
    };
    assert_eq!(
        ids(
            &store.orders(&accepted, Page::first(10)).await.unwrap(),
            |o| o.id
        ),
        vec![early.id]
    );
    let by_driver = OrderQuery {
        driver_id: Some(d.id),
        ..Default::default()
    };
    assert_eq!(
        ids(
            &store.orders(&by_driver, Page::first(10)).await.unwrap(),
            |o| o.id
        ),
        vec![early.id]
    );

    let mut unassigned = store.order(early.id).await.unwrap().unwrap();
    unassigned.driver_id = None;
    unassigned.version += 1;
    store.commit(vec![Write::Order(unassigned)]).await.unwrap();
    assert!(
        store
            .orders(&by_driver, Page::first(10))
            .await
            .unwrap()
            .is_empty(),
        "by-driver index follows driver_id"
    );
}

async fn positions_come_from_the_newest_fix(store: &dyn Store) {
    let owner = user(70, "fixes@example.com", Role::Driver);
    let v = vendor(71, owner.id);
    let mut d = driver(72, v.id, owner.id);
    d.current_latitude = Some(1.0); // not part of the stored record
    store
        .commit(vec![
            Write::User(owner),
            Write::Vendor(v),
            Write::Driver(d.clone()),
        ])
        .await
        .unwrap();
    let stored = store.driver(d.id).await.unwrap().unwrap();
    assert_eq!(
        stored.current_latitude, None,
        "positions come from fixes only"
    );

    store
        .append_fixes(&[fix(d.id, 10, 52.0), fix(d.id, 30, 52.2)])
        .await
        .unwrap();
    store.append_fixes(&[fix(d.id, 20, 52.1)]).await.unwrap(); // late arrival
    let stored = store.driver(d.id).await.unwrap().unwrap();
    assert_eq!(
        stored.current_latitude,
        Some(52.2),
        "the newest fix by recorded_at wins"
    );
    assert_eq!(
        stored.last_location_update,
        Some(t0() + Duration::seconds(30))
    );

    let trail = store
        .trail(TrailQuery::new(
            d.id,
            t0(),
            t0() + Duration::minutes(1),
            100,
        ))
        .await
        .unwrap();
    assert_eq!(
        trail.iter().map(|f| f.latitude).collect::<Vec<_>>(),
        vec![52.0, 52.1, 52.2],
        "trail oldest first"
    );
    let window = store
        .trail(TrailQuery::new(
            d.id,
            t0() + Duration::seconds(20),
            t0() + Duration::seconds(30),
            100,
        ))
        .await
        .unwrap();
    assert_eq!(window.len(), 1, "trail range is [from, to)");
    assert_eq!(
        store
            .trail(TrailQuery::new(d.id, t0(), t0() + Duration::minutes(1), 2))
            .await
            .unwrap()
            .len(),
        2,
        "trail limit"
    );

    assert_eq!(
        store
            .prune_trail(t0() + Duration::seconds(25))
            .await
            .unwrap(),
        2
    );
    let left = store
        .trail(TrailQuery::new(
            d.id,
            t0(),
            t0() + Duration::minutes(1),
            100,
        ))
        .await
        .unwrap();
    assert_eq!(left.len(), 1);

    // Updating the driver record keeps its position.
    let mut renamed = store.driver(d.id).await.unwrap().unwrap();
    renamed.full_name = "Renamed".into();
    renamed.version += 1;
    store.commit(vec![Write::Driver(renamed)]).await.unwrap();
    assert_eq!(
        store.driver(d.id).await.unwrap().unwrap().current_latitude,
        Some(52.2)
    );
}

async fn refresh_sessions_are_single_use(store: &dyn Store) {
    let session = RefreshSession {
        id: "jti-1".into(),
        user_id: UserId::from_uuid(id(80)),
        expires_at: t0() + Duration::days(7),
    };
    store.put_refresh_session(session.clone()).await.unwrap();
    assert_eq!(
        store.take_refresh_session("jti-1").await.unwrap(),
        Some(session)
    );
    assert_eq!(
        store.take_refresh_session("jti-1").await.unwrap(),
        None,
        "a session is taken once"
    );
    assert_eq!(store.take_refresh_session("never").await.unwrap(), None);
}

/// Range bounds at chrono's first and last instants (which some databases cannot store) answer
/// as any bound would: everything is after the first and before the last.
async fn the_ends_of_the_calendar_are_bounds_like_any_other(store: &dyn Store) {
    let (first, last) = (DateTime::<Utc>::MIN_UTC, DateTime::<Utc>::MAX_UTC);
    let all = store
        .orders(&OrderQuery::default(), Page::first(1000))
        .await
        .unwrap();
    assert!(!all.is_empty(), "the earlier checks left orders");
    let everything = OrderQuery {
        created_from: Some(first),
        created_before: Some(last),
        ..Default::default()
    };
    assert_eq!(
        store.orders(&everything, Page::first(1000)).await.unwrap(),
        all,
        "every order is created between the ends of the calendar"
    );
    let nothing = OrderQuery {
        created_before: Some(first),
        ..Default::default()
    };
    assert!(
        store
            .orders(&nothing, Page::first(1000))
            .await
            .unwrap()
            .is_empty(),
        "no order is created before the first instant"
    );
    let driver = DriverId::from_uuid(id(72));
    let trail = store
        .trail(TrailQuery::new(driver, t0(), t0() + Duration::days(1), 100))
        .await
        .unwrap();
    assert_eq!(
        store
            .trail(TrailQuery::new(driver, first, last, 100))
            .await
            .unwrap(),
        trail,
        "a trail between the ends of the calendar is the whole trail"
    );
    assert_eq!(
        store.prune_trail(first).await.unwrap(),
        0,
        "nothing is recorded before the first instant"
    );
}

/// Text is the client's: a NUL character or a noncharacter (which some databases cannot hold, or
/// use themselves) is kept exactly, in records and in the keys they are found by.
async fn text_is_kept_whatever_it_holds(store: &dyn Store) {
    let odd = "nul \0 nonchar \u{FFFF} both \u{FFFF}0 \\u0000";
    let mut u = user(100, "odd-text@example.com", Role::User);
    u.full_name = odd.into();
    let v = vendor(101, u.id);
    let mut o = order(102, v.id, u.id, t0());
    o.notes = Some(odd.into());
    o.customer_name = "\0".into();
    o.external_ref = Some(ExternalRef {
        source: "shop\0".into(),
        id: odd.into(),
    });
    store
        .commit(vec![
            Write::User(u.clone()),
            Write::Vendor(v.clone()),
            Write::Order(o.clone()),
        ])
        .await
        .expect("any text can be stored");
    assert_eq!(
        store.user(u.id).await.unwrap(),
        Some(u),
        "text read back exactly"
    );
    assert_eq!(store.order(o.id).await.unwrap().as_ref(), Some(&o));
    assert_eq!(
        store
            .order_by_external_ref(ShopOrder::new(v.id, "shop\0", odd))
            .await
            .unwrap()
            .map(|o| o.id),
        Some(o.id),
        "keys with odd text are found"
    );
    assert!(
        store
            .order_by_external_ref(ShopOrder::new(v.id, "shop\u{FFFF}0", odd))
            .await
            .unwrap()
            .is_none(),
        "and only by their own text"
    );
    for token in ["\0", "\u{FFFF}", "token-\0"] {
        assert!(
            store
                .order_by_tracking_token(token)
                .await
                .unwrap()
                .is_none(),
            "an odd token finds nothing: {token:?}"
        );
    }
    assert!(
        store
            .user_by_email("odd\0@example.com")
            .await
            .unwrap()
            .is_none()
    );
    assert!(store.take_refresh_session("jti\0").await.unwrap().is_none());
}

/// What dispatch keeps on records (DESIGN §14): a pharmacy's run size, a driver's run and its
/// hand-fixed order, an order's window, dispatch time and the marks told once.
async fn runs_windows_and_arrivals_are_kept(store: &dyn Store) {
    let owner = user(110, "runs@example.com", Role::Vendor);
    let mut v = vendor(111, owner.id);
    v.max_active_orders = 12;
    let at = |minutes: i64| t0() + Duration::minutes(minutes);
    let mut orders = Vec::new();
    for n in 0..3 {
        let mut o = order(113 + n, v.id, owner.id, t0());
        o.deliver_after = Some(at(30));
        o.deliver_before = Some(at(90));
        o.scheduled_for = Some(at(10));
        o.late_risk_at = Some(at(40));
        o.driver_arriving_at = Some(at(50));
        o.driver_arrived_at = Some(at(51));
        orders.push(o);
    }
    let driver_user = user(112, "runs-driver@example.com", Role::Driver);
    let mut d = driver(116, v.id, driver_user.id);
    d.status = DriverStatus::Busy;
    d.active_order_id = Some(orders[0].id);
    d.active_order_ids = orders.iter().map(|o| o.id).collect();
    d.manual_stop_order = vec![orders[2].id, orders[0].id, orders[1].id];
    for o in &mut orders {
        o.driver_id = Some(d.id);
    }
    let mut writes = vec![
        Write::User(owner),
        Write::User(driver_user),
        Write::Vendor(v.clone()),
        Write::Driver(d.clone()),
    ];
    writes.extend(orders.iter().cloned().map(Write::Order));
    store.commit(writes).await.expect("a run is stored");
    assert_eq!(store.vendor(v.id).await.unwrap(), Some(v));
    let back = store.driver(d.id).await.unwrap().expect("the driver");
    assert_eq!(
        (&back.active_order_ids, &back.manual_stop_order),
        (&d.active_order_ids, &d.manual_stop_order)
    );
    for o in &orders {
        assert_eq!(store.order(o.id).await.unwrap().as_ref(), Some(o));
    }
}
