//! Opening directories that are locked, not a store, damaged, or from a newer MedEx; and reading
//! records whose bytes are bad. Nothing here may panic.

use medex_core::model::{Driver, OrderId};
use medex_core::store::{DriverQuery, OrderQuery, Page, Store, StoreError, Write};
use medex_store_sled::{OpenError, SledStore};

use crate::fixtures::{driver, order, user, vendor};

/// The directory opened with sled itself, to damage or inspect it. Like `SledStore::open`, it
/// waits out the lock a store just dropped leaves behind for a moment.
fn raw_sled(path: &std::path::Path) -> sled::Db {
    let deadline = std::time::Instant::now() + std::time::Duration::from_secs(2);
    loop {
        match sled::open(path) {
            Err(sled::Error::Io(e)) if std::time::Instant::now() < deadline => {
                assert!(e.to_string().contains("could not acquire lock"), "{e}");
                std::thread::sleep(std::time::Duration::from_millis(10));
            }
            opened => return opened.unwrap(),
        }
    }
}

/// The layout the store documents in its README: the `meta` tree holds the schema version under
/// `schema_version`, records live under their 16 id bytes.
const SCHEMA_KEY: &[u8] = b"schema_version";

#[test]
fn a_directory_in_use_is_refused_as_locked() {
    let dir = tempfile::tempdir().unwrap();
    let _first = SledStore::open(dir.path()).unwrap();
    let second = SledStore::open(dir.path());
    assert!(
        matches!(second, Err(OpenError::Locked { .. })),
        "{second:?}"
    );
    let message = second.unwrap_err().to_string();
    assert!(message.contains("locked by another process"), "{message}");
}

#[test]
fn closing_releases_the_directory() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open(dir.path()).unwrap());
    SledStore::open(dir.path()).unwrap();
}

/// sled's own thread pool still holds the directory's lock file for a moment after a database
/// with recent writes drops; opening waits for that, so a restart is never refused.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_store_reopens_at_once_after_busy_writing() {
    let dir = tempfile::tempdir().unwrap();
    let owner = user(1, "busy@example.com");
    let v = vendor(1, owner.id);
    {
        let store = SledStore::open(dir.path()).unwrap();
        let setup = vec![Write::User(owner.clone()), Write::Vendor(v.clone())];
        store.commit(setup).await.unwrap();
    }
    for round in 0..20u64 {
        let store = SledStore::open(dir.path())
            .unwrap_or_else(|e| panic!("reopening after round {round}: {e}"));
        let store = std::sync::Arc::new(store);
        let mut writers = tokio::task::JoinSet::new();
        for n in 0..50 {
            let store = std::sync::Arc::clone(&store);
            let o = order(1000 + round * 50 + n, v.id, owner.id);
            writers.spawn(async move { store.commit(vec![Write::Order(o)]).await });
        }
        while let Some(written) = writers.join_next().await {
            written.unwrap().unwrap();
        }
    }
    let store = SledStore::open(dir.path()).unwrap();
    let all = store
        .orders(&OrderQuery::default(), Page::first(2000))
        .await
        .unwrap();
    assert_eq!(all.len(), 1000);
}

#[test]
fn a_store_from_a_newer_schema_is_refused_and_left_alone() {
    let dir = tempfile::tempdir().unwrap();
    drop(SledStore::open(dir.path()).unwrap());
    {
        let db = raw_sled(dir.path());
        let meta = db.open_tree("meta").unwrap();
        assert_eq!(meta.get(SCHEMA_KEY).unwrap().unwrap().as_ref(), &[1]);
        meta.insert(SCHEMA_KEY, &[7]).unwrap();
        db.flush().unwrap();
    }
    match SledStore::open(dir.path()) {
        Err(
            e @ OpenError::NewerSchema {
                found: 7,
                supported: 1,
                ..
            },
        ) => {
            assert!(e.to_string().contains("schema version 7"), "{e}");
        }
        other => panic!("expected NewerSchema, got {other:?}"),
    }
    let db = raw_sled(dir.path());
    let meta = db.open_tree("meta").unwrap();
    assert_eq!(meta.get(SCHEMA_KEY).unwrap().unwrap().as_ref(), &[7]);
}

#[test]
fn data_without_a_schema_marker_is_not_taken_for_a_store() {
    let dir = tempfile::tempdir().unwrap();
    {
        let db = raw_sled(dir.path());
        db.open_tree("orders").unwrap().insert(b"x", b"y").unwrap();
        db.flush().unwrap();
    }
    let opened = SledStore::open(dir.path());
    assert!(
        matches!(opened, Err(OpenError::Corrupt { .. })),
        "{opened:?}"
    );
}

#[test]
fn a_file_where_the_directory_should_be_is_unreadable() {
    let file = tempfile::NamedTempFile::new().unwrap();
    let opened = SledStore::open(file.path());
    assert!(
        matches!(opened, Err(OpenError::Unreadable { .. })),
        "{opened:?}"
    );
}

#[test]
fn garbage_files_are_corrupt_not_a_panic() {
    for garbage in [
        vec![0u8; 10],
        vec![0xAB; 100_000],
        b"not a database".to_vec(),
    ] {
        let dir = tempfile::tempdir().unwrap();
        drop(SledStore::open(dir.path()).unwrap());
        for entry in std::fs::read_dir(dir.path()).unwrap() {
            let path = entry.unwrap().path();
            if path.is_file() {
                std::fs::write(&path, &garbage).unwrap();
            }
        }
        let opened = SledStore::open(dir.path());
        assert!(
            matches!(opened, Err(OpenError::Corrupt { .. })),
            "{opened:?}"
        );
    }
}

#[tokio::test]
async fn undecodable_records_are_corrupt_errors() {
    let dir = tempfile::tempdir().unwrap();
    let owner = user(1, "bad-bytes@example.com");
    let v = vendor(1, owner.id);
    let o = order(1, v.id, owner.id);
    let d = driver(1, v.id, owner.id);
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .commit(vec![
                Write::User(owner.clone()),
                Write::Vendor(v.clone()),
                Write::Order(o.clone()),
                Write::Driver(d.clone()),
            ])
            .await
            .unwrap();
    }
    {
        let db = raw_sled(dir.path());
        let orders = db.open_tree("orders").unwrap();
        orders
            .insert(o.id.to_bytes(), &b"\x01{not json"[..])
            .unwrap();
        let drivers = db.open_tree("drivers").unwrap();
        drivers.insert(d.id.to_bytes(), &b"\x09{}"[..]).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    let corrupt = |r: Result<_, StoreError>| matches!(r, Err(StoreError::Corrupt(_)));
    assert!(corrupt(store.order(o.id).await.map(drop)));
    assert!(corrupt(
        store
            .order_by_tracking_token(&o.tracking_token)
            .await
            .map(drop)
    ));
    let by_vendor = OrderQuery {
        vendor_id: Some(v.id),
        ..Default::default()
    };
    assert!(corrupt(
        store.orders(&by_vendor, Page::first(10)).await.map(drop)
    ));
    assert!(corrupt(store.driver(d.id).await.map(drop)));
    let fleet = DriverQuery {
        vendor_id: Some(v.id),
        status: None,
    };
    assert!(corrupt(
        store.drivers(&fleet, Page::first(10)).await.map(drop)
    ));
    // Updating over a bad record cannot tell its version or index entries: refused, not guessed.
    let mut next = o.clone();
    next.version = 2;
    assert!(corrupt(store.commit(vec![Write::Order(next)]).await));
    let mut next: Driver = d.clone();
    next.version = 2;
    assert!(corrupt(store.commit(vec![Write::Driver(next)]).await));
    // The rest of the store still works.
    assert_eq!(store.user(owner.id).await.unwrap(), Some(owner));
    assert!(
        store
            .order(OrderId::from_uuid(uuid::Uuid::nil()))
            .await
            .unwrap()
            .is_none()
    );
}

#[tokio::test]
async fn records_that_would_not_read_back_are_refused() {
    let store = SledStore::temporary().unwrap();
    let owner = user(1, "nan@example.com");
    let v = vendor(1, owner.id);
    let mut o = order(1, v.id, owner.id);
    o.pickup_latitude = f64::NAN;
    assert!(matches!(
        store.commit(vec![Write::Order(o.clone())]).await,
        Err(StoreError::Corrupt(_))
    ));
    assert!(store.order(o.id).await.unwrap().is_none());
}

/// A pharmacy written before runs and automatic assignment existed (no `max_active_orders`,
/// no `auto_assign`) reads with their defaults: one order at a time, assigned by hand.
#[tokio::test]
async fn a_pharmacy_written_before_its_newer_settings_reads_with_their_defaults() {
    let dir = tempfile::tempdir().unwrap();
    let owner = user(1, "old-pharmacy@example.com");
    let v = medex_core::model::Vendor {
        auto_assign: true,
        max_active_orders: 5,
        ..vendor(1, owner.id)
    };
    {
        let store = SledStore::open(dir.path()).unwrap();
        store
            .commit(vec![Write::User(owner.clone()), Write::Vendor(v.clone())])
            .await
            .unwrap();
    }
    {
        let db = raw_sled(dir.path());
        let vendors = db.open_tree("vendors").unwrap();
        let mut record: serde_json::Value = serde_json::to_value(&v).unwrap();
        let fields = record.as_object_mut().unwrap();
        assert!(fields.remove("auto_assign").is_some());
        assert!(fields.remove("max_active_orders").is_some());
        let mut bytes = vec![1u8];
        bytes.extend(serde_json::to_vec(&record).unwrap());
        vendors.insert(v.id.to_bytes(), bytes).unwrap();
        db.flush().unwrap();
    }
    let store = SledStore::open(dir.path()).unwrap();
    let read = store.vendor(v.id).await.unwrap().unwrap();
    assert_eq!((read.auto_assign, read.max_active_orders), (false, 1));
    assert_eq!(
        read,
        medex_core::model::Vendor {
            auto_assign: false,
            max_active_orders: 1,
            ..v
        }
    );
}
