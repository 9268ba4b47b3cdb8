//! What several instances on one store rely on: the configuration's version guarding every
//! save, leases that one holder has at a time, and expired refresh sessions swept. Part of
//! [`super::run`]; the racing halves are in [`super::races`].

use chrono::Duration;

use super::fixtures::t0;
use crate::config::SystemConfig;
use crate::model::{Money, UserId};
use crate::store::{LeaseClaim, RefreshSession, Store, StoreError, StoredConfig};

/// Every check of this module, on a store without a saved configuration, leases or sessions.
pub(super) async fn run(store: &dyn Store) {
    the_configuration_version_guards_every_save(store).await;
    a_lease_has_one_holder_until_it_ends(store).await;
    expired_refresh_sessions_are_swept(store).await;
}

async fn the_configuration_version_guards_every_save(store: &dyn Store) {
    assert_eq!(
        store.system_config().await.unwrap(),
        None,
        "no configuration until one is saved"
    );
    let mut first = SystemConfig {
        road_factor: 1.5,
        ..Default::default()
    };
    first.tariff.min_fee = Money::from_cents(499);
    for stale in [0, 2] {
        assert!(
            matches!(
                store.save_system_config(&first, stale).await,
                Err(StoreError::Conflict)
            ),
            "the first save must be version 1, not {stale}"
        );
    }
    assert_eq!(
        store.system_config().await.unwrap(),
        None,
        "nothing written"
    );
    store
        .save_system_config(&first, 1)
        .await
        .expect("version 1");
    assert_eq!(
        store.system_config().await.unwrap(),
        Some(StoredConfig {
            config: first.clone(),
            version: 1
        }),
        "the saved configuration reads back with its version"
    );
    let second = SystemConfig {
        road_factor: 2.0,
        ..first.clone()
    };
    assert!(
        matches!(
            store.save_system_config(&second, 1).await,
            Err(StoreError::Conflict)
        ),
        "a second save of version 1 (another instance's change) must be a Conflict"
    );
    assert!(
        matches!(
            store.save_system_config(&second, 3).await,
            Err(StoreError::Conflict)
        ),
        "a skipped version must be a Conflict"
    );
    assert_eq!(
        store.system_config().await.unwrap().map(|s| s.config),
        Some(first),
        "refused saves change nothing"
    );
    store
        .save_system_config(&second, 2)
        .await
        .expect("version 2");
    assert_eq!(
        store.system_config().await.unwrap(),
        Some(StoredConfig {
            config: second,
            version: 2
        })
    );
}

async fn a_lease_has_one_holder_until_it_ends(store: &dyn Store) {
    let at = |seconds: i64| t0() + Duration::seconds(seconds);
    assert!(
        store
            .acquire_lease(LeaseClaim::new("sweeps", "a", at(0), at(60)))
            .await
            .unwrap(),
        "a free lease is granted"
    );
    assert!(
        !store
            .acquire_lease(LeaseClaim::new("sweeps", "b", at(1), at(61)))
            .await
            .unwrap(),
        "a held lease is refused to another holder"
    );
    assert!(
        !store
            .acquire_lease(LeaseClaim::new("sweeps", "b", at(59), at(120)))
            .await
            .unwrap(),
        "still held the moment before it ends"
    );
    assert!(
        store
            .acquire_lease(LeaseClaim::new("sweeps", "a", at(30), at(90)))
            .await
            .unwrap(),
        "the holder extends its own lease"
    );
    assert!(
        !store
            .acquire_lease(LeaseClaim::new("sweeps", "b", at(60), at(120)))
            .await
            .unwrap(),
        "an extended lease is held past its first end"
    );
    assert!(
        store
            .acquire_lease(LeaseClaim::new("first-admin", "b", at(60), at(70)))
            .await
            .unwrap(),
        "leases of other names are independent"
    );
    assert!(
        store
            .acquire_lease(LeaseClaim::new("sweeps", "b", at(90), at(150)))
            .await
            .unwrap(),
        "a lease that ended is granted to another holder"
    );
    assert!(
        !store
            .acquire_lease(LeaseClaim::new("sweeps", "a", at(100), at(160)))
            .await
            .unwrap(),
        "the former holder has lost it"
    );
    store.release_lease("sweeps", "a").await.unwrap();
    assert!(
        !store
            .acquire_lease(LeaseClaim::new("sweeps", "a", at(101), at(160)))
            .await
            .unwrap(),
        "a release by someone who does not hold the lease changes nothing"
    );
    store.release_lease("sweeps", "b").await.unwrap();
    assert!(
        store
            .acquire_lease(LeaseClaim::new("sweeps", "a", at(102), at(160)))
            .await
            .unwrap(),
        "a released lease is free at once"
    );
    store
        .release_lease("never-taken", "a")
        .await
        .expect("releasing a lease nobody has is not an error");
    let long = "lease-".repeat(20);
    assert!(
        store
            .acquire_lease(LeaseClaim::new(&long, &long, at(0), at(1)))
            .await
            .unwrap(),
        "long names and holders"
    );
}

async fn expired_refresh_sessions_are_swept(store: &dyn Store) {
    let session = |id: &str, expires_in_seconds: i64| RefreshSession {
        id: id.into(),
        user_id: UserId::from_uuid(uuid::Uuid::from_u128(
            0x0190_0000_0000_7000_8000_0000_0000_0091,
        )),
        expires_at: t0() + Duration::seconds(expires_in_seconds),
    };
    for (id, expires) in [("old-1", -10), ("old-2", -1), ("edge", 0), ("live", 10)] {
        store
            .put_refresh_session(session(id, expires))
            .await
            .unwrap();
    }
    assert_eq!(
        store.prune_refresh_sessions(t0()).await.unwrap(),
        2,
        "sessions that expired strictly before the bound are removed"
    );
    assert_eq!(store.take_refresh_session("old-1").await.unwrap(), None);
    assert_eq!(store.take_refresh_session("old-2").await.unwrap(), None);
    assert_eq!(
        store.take_refresh_session("edge").await.unwrap(),
        Some(session("edge", 0)),
        "a session expiring at the bound stays"
    );
    assert_eq!(store.prune_refresh_sessions(t0()).await.unwrap(), 0);
    assert_eq!(
        store.take_refresh_session("live").await.unwrap(),
        Some(session("live", 10))
    );
    // Sub-second precision counts too.
    let mut precise = session("precise", 0);
    precise.expires_at += Duration::nanoseconds(1_500);
    store.put_refresh_session(precise.clone()).await.unwrap();
    assert_eq!(
        store
            .prune_refresh_sessions(precise.expires_at)
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        store
            .prune_refresh_sessions(precise.expires_at + Duration::nanoseconds(1))
            .await
            .unwrap(),
        1
    );
}
