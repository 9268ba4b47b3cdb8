//! Drivers: joining a fleet.

use super::*;

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
        let w = World::with(Options {
            seed: 10,
            hasher: Arc::new(YieldingHasher(Argon2Hasher::insecure_fast())),
            ..Options::default()
        })
        .await;
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
