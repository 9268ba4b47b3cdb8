//! Several instances on one store: configuration changes decided by the stored version and
//! taken in by the others, sweeps by one instance at a time, one first admin.

use super::*;
use crate::clock::{ManualClock, SeededEntropy};
use crate::custody::CustodyKeys;
use crate::events::NullBus;
use crate::memory::MemoryStore;
use crate::service::accounts::FIRST_ADMIN_LEASE;
use crate::service::upkeep::SWEEP_LEASE;
use crate::testkit::{CUSTODY_SEED, TOKEN_SECRET};

/// One more instance of the service on `store`, with its own ids.
async fn instance(store: Arc<MemoryStore>, clock: Arc<ManualClock>, seed: u64) -> MedEx {
    MedEx::new(
        Ports {
            store,
            bus: Arc::new(NullBus),
            clock,
            entropy: Arc::new(SeededEntropy::new(seed)),
            hasher: Arc::new(Argon2Hasher::insecure_fast()),
            tokens: crate::auth::TokenKeys::new(
                &TOKEN_SECRET,
                crate::auth::TokenLifetimes::default(),
            )
            .unwrap(),
            custody: CustodyKeys::from_seed(CUSTODY_SEED),
        },
        SystemConfig::default(),
    )
    .await
    .unwrap()
}

fn two_instances() -> (MedEx, MedEx, Arc<MemoryStore>, Arc<ManualClock>) {
    block_on(async {
        let store = Arc::new(MemoryStore::new());
        let clock = Arc::new(ManualClock::new(start()));
        let one = instance(store.clone(), clock.clone(), 1).await;
        let two = instance(store.clone(), clock.clone(), 2).await;
        (one, two, store, clock)
    })
}

#[test]
fn of_two_instances_changing_the_configuration_one_wins_and_the_other_takes_it_in() {
    let (one, two, store, _) = two_instances();
    block_on(async {
        let admin = Actor::of(
            &one.create_admin("root@upkeep.test", PASSWORD, "Root")
                .await
                .unwrap(),
        );
        let read_by_one = one.system_config(&admin).unwrap();
        let read_by_two = two.system_config(&admin).unwrap();
        let mut first = (*read_by_one).clone();
        first.road_factor = 1.7;
        one.update_system_config_from(&admin, &read_by_one, first)
            .await
            .unwrap();
        let mut second = (*read_by_two).clone();
        second.tariff.base_fee = Money::from_cents(100);
        assert!(
            matches!(
                two.update_system_config_from(&admin, &read_by_two, second.clone())
                    .await,
                Err(Error::Conflict(Conflict::ConcurrentUpdate))
            ),
            "instance two's change was based on a configuration instance one replaced"
        );
        // The conflict made instance two take in the stored configuration.
        assert_eq!(two.config().road_factor, 1.7);
        assert_eq!(two.config_version(), 1);
        let fresh = two.system_config(&admin).unwrap();
        let mut retried = (*fresh).clone();
        retried.tariff.base_fee = Money::from_cents(100);
        two.update_system_config_from(&admin, &fresh, retried)
            .await
            .unwrap();
        let stored = store.system_config().await.unwrap().unwrap();
        assert_eq!(stored.version, 2);
        assert_eq!(
            (stored.config.road_factor, stored.config.tariff.base_fee),
            (1.7, Money::from_cents(100))
        );

        // Instance one learns of it when it refreshes; a second refresh finds nothing new.
        assert_eq!(one.config().tariff.base_fee, Money::ZERO);
        assert!(one.refresh_config().await.unwrap());
        assert_eq!(one.config().tariff.base_fee, Money::from_cents(100));
        assert_eq!(one.config_version(), 2);
        assert!(!one.refresh_config().await.unwrap());
    });
}

#[test]
fn sweeps_run_on_one_instance_at_a_time_and_move_on_when_it_stops() {
    let (one, two, store, clock) = two_instances();
    block_on(async {
        let w = World::on(
            Arc::new(instance(store.clone(), clock.clone(), 3).await),
            "",
        )
        .await;
        let (driver, driver_id) = w.drivers[0];
        w.medex
            .set_driver_status(&driver, driver_id, DriverStatus::Available)
            .await
            .unwrap();
        w.medex
            .record_location(
                &driver,
                driver_id,
                FixInput {
                    latitude: 52.5,
                    longitude: 13.4,
                    ..Default::default()
                },
            )
            .await
            .unwrap();
        let every = Duration::hours(1);
        let retention = Duration::days(1);
        assert_eq!(
            one.sweep("one", retention, every).await.unwrap(),
            Some(Swept::default()),
            "the first instance takes the lease; nothing is old yet"
        );
        assert_eq!(
            two.sweep("two", retention, every).await.unwrap(),
            None,
            "the other instance leaves the sweep to the holder"
        );
        clock.advance(Duration::days(8));
        // Instance one stopped calling: once its lease ran out, instance two sweeps.
        let swept = two.sweep("two", retention, every).await.unwrap().unwrap();
        assert_eq!(swept.fixes, 1, "the fix is older than the retention");
        assert!(
            swept.sessions > 0,
            "the world's sign-ins have expired: {swept:?}"
        );
        assert_eq!(store.prune_refresh_sessions(clock.now()).await.unwrap(), 0);
        assert_eq!(one.sweep("one", retention, every).await.unwrap(), None);
        assert!(
            !store
                .acquire_lease(LeaseClaim::new(
                    SWEEP_LEASE,
                    "one",
                    clock.now(),
                    clock.now() + every
                ))
                .await
                .unwrap(),
            "instance two holds the lease for its next hour"
        );
    });
}

#[test]
fn instances_starting_together_create_one_first_admin() {
    let (one, two, store, clock) = two_instances();
    block_on(async {
        // Another instance is creating the first admin: both are told to ask again.
        let now = clock.now();
        let until = now + Duration::minutes(1);
        assert!(
            store
                .acquire_lease(LeaseClaim::new(FIRST_ADMIN_LEASE, "three", now, until))
                .await
                .unwrap()
        );
        for instance in [&one, &two] {
            assert!(matches!(
                instance.ensure_admin("one@upkeep.test", PASSWORD).await,
                Err(Error::Conflict(Conflict::ConcurrentUpdate))
            ));
        }
        // It failed before creating one (its lease is let go, or runs out).
        store
            .release_lease(FIRST_ADMIN_LEASE, "three")
            .await
            .unwrap();
        let created = two.ensure_admin("two@upkeep.test", PASSWORD).await.unwrap();
        assert_eq!(
            created.map(|u| u.email.to_string()),
            Some("two@upkeep.test".into()),
            "the lease holder creates its admin"
        );
        // Asked again, instance one finds that admin, whatever e-mail it was given.
        assert_eq!(
            one.ensure_admin("one@upkeep.test", PASSWORD).await.unwrap(),
            None
        );
        let admins = store
            .users(
                &UserQuery {
                    role: Some(Role::Admin),
                    is_active: None,
                },
                Page::first(10),
            )
            .await
            .unwrap();
        assert_eq!(admins.len(), 1);
        // The lease was released: nothing waits on it.
        assert!(
            store
                .acquire_lease(LeaseClaim::new(
                    FIRST_ADMIN_LEASE,
                    "one",
                    now,
                    now + Duration::minutes(1)
                ))
                .await
                .unwrap()
        );
    });
}
