//! Accounts: sessions, rotation and deactivation.

use super::*;

#[test]
fn sessions_rotate_and_die_with_the_account() {
    block_on(async {
        let w = World::in_memory(8).await;
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
        // The right password of a deactivated account is refused as a wrong one is.
        assert!(matches!(
            w.medex.login("customer1@example.test", PASSWORD).await,
            Err(Error::Unauthenticated(AuthFailure::BadCredentials))
        ));
        w.clock().advance(Duration::minutes(16));
        let fresh = w
            .medex
            .login("customer2@example.test", PASSWORD)
            .await
            .unwrap();
        w.clock().advance(Duration::minutes(16));
        assert!(matches!(
            w.medex.authenticate(&fresh.access_token).await,
            Err(Error::Unauthenticated(AuthFailure::Expired))
        ));
    });
}

/// Counts the hashes it computes.
struct CountingHasher(Argon2Hasher, std::sync::atomic::AtomicUsize);

#[async_trait::async_trait]
impl crate::auth::PasswordHasher for CountingHasher {
    async fn hash(&self, password: String) -> String {
        self.1.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        self.0.hash(password).await
    }
    async fn verify(&self, password: String, hash: String) -> bool {
        self.0.verify(password, hash).await
    }
}

#[test]
fn a_taken_address_costs_no_hash() {
    block_on(async {
        let hasher = Arc::new(CountingHasher(
            Argon2Hasher::insecure_fast(),
            Default::default(),
        ));
        let w = World::with(Options {
            hasher: hasher.clone(),
            ..Options::default()
        })
        .await;
        let before = hasher.1.load(std::sync::atomic::Ordering::SeqCst);
        let again = NewAccount {
            email: "CUSTOMER1@example.test".into(),
            password: "another password".into(),
            full_name: "Copy".into(),
            phone: None,
        };
        let taken = w.medex.register_customer(again).await;
        assert_eq!(taken.err().map(|e| e.code()), Some("email_taken"));
        assert_eq!(hasher.1.load(std::sync::atomic::Ordering::SeqCst), before);
    });
}
