//! Password hashing off the async worker threads, with bounded concurrency.
//!
//! Argon2id costs ~18 ms of CPU and 19 MiB per hash at its default parameters. Run inline on a
//! tokio worker, a login storm would stall every other request; run unbounded on the blocking
//! pool, it would take all cores and a lot of memory. So each hash waits for one of a few permits
//! and then runs on the blocking pool.

use std::sync::Arc;

use async_trait::async_trait;
use medex_core::auth::{Argon2Hasher, PasswordHasher};
use tokio::sync::Semaphore;

/// Argon2 on tokio's blocking pool, at most `concurrency` hashes at once.
#[derive(Debug, Clone)]
pub struct OffloadedHasher {
    argon2: Argon2Hasher,
    permits: Arc<Semaphore>,
}

impl OffloadedHasher {
    /// Wraps `argon2`, allowing `concurrency` (at least 1) hashes at a time.
    pub fn new(argon2: Argon2Hasher, concurrency: usize) -> Self {
        Self {
            argon2,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2Hasher) -> T + Send + 'static,
        fallback: T,
    ) -> T {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(_permit) = self.permits.acquire().await else {
            return fallback;
        };
        let argon2 = self.argon2.clone();
        tokio::task::spawn_blocking(move || work(&argon2))
            .await
            .unwrap_or(fallback)
    }
}

#[async_trait]
impl PasswordHasher for OffloadedHasher {
    async fn hash(&self, password: String) -> String {
        metrics::counter!("medex_password_hashes_total", "kind" => "hash").increment(1);
        self.run(move |a| a.hash_blocking(&password), String::new())
            .await
    }

    async fn verify(&self, password: String, hash: String) -> bool {
        metrics::counter!("medex_password_hashes_total", "kind" => "verify").increment(1);
        self.run(move |a| a.verify_blocking(&password, &hash), false)
            .await
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn hashes_verify_through_the_pool() {
        let hasher = OffloadedHasher::new(Argon2Hasher::insecure_fast(), 1);
        let hashes =
            futures::future::join_all((0..8).map(|i| hasher.hash(format!("password {i}")))).await;
        for (i, hash) in hashes.into_iter().enumerate() {
            assert!(hasher.verify(format!("password {i}"), hash.clone()).await);
            assert!(!hasher.verify("other".into(), hash).await);
        }
    }
}
