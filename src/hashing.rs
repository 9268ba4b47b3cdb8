//! Password hashing off the async worker threads, with bounded concurrency.
//!
//! Argon2id costs ~18 ms of CPU and 19 MiB per hash at its default parameters. Run inline on a
//! tokio worker, a login storm would stall every other request; run unbounded on the blocking
//! pool, it would take all cores and a lot of memory. So each hash waits for one of a few permits
//! and then runs on the blocking pool, in working memory that the permits share: one 19 MiB
//! block per permit at most, reused, instead of a fresh allocation per hash that the C
//! allocator would keep in each blocking thread's arena afterwards (hundreds of MiB after a
//! login storm).

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use medex_core::auth::{Argon2Hasher, Argon2Memory, PasswordHasher};
use tokio::sync::Semaphore;

/// Argon2 on tokio's blocking pool, at most `concurrency` hashes at once.
#[derive(Debug, Clone)]
pub struct OffloadedHasher {
    argon2: Argon2Hasher,
    permits: Arc<Semaphore>,
    /// Working memory of finished hashes, for the next ones (at most one per permit).
    memory: Arc<Mutex<Vec<Argon2Memory>>>,
}

impl OffloadedHasher {
    /// Wraps `argon2`, allowing `concurrency` (at least 1) hashes at a time.
    pub fn new(argon2: Argon2Hasher, concurrency: usize) -> Self {
        Self {
            argon2,
            permits: Arc::new(Semaphore::new(concurrency.max(1))),
            memory: Arc::default(),
        }
    }

    async fn run<T: Send + 'static>(
        &self,
        work: impl FnOnce(&Argon2Hasher, &mut Argon2Memory) -> T + Send + 'static,
        fallback: T,
    ) -> T {
        // The semaphore is never closed, so acquiring only waits.
        let Ok(_permit) = self.permits.acquire().await else {
            return fallback;
        };
        let argon2 = self.argon2.clone();
        let pool = self.memory.clone();
        tokio::task::spawn_blocking(move || {
            let taken = pool.lock().unwrap_or_else(|e| e.into_inner()).pop();
            let mut memory = taken.unwrap_or_default();
            let result = work(&argon2, &mut memory);
            pool.lock().unwrap_or_else(|e| e.into_inner()).push(memory);
            result
        })
        .await
        .unwrap_or(fallback)
    }
}

#[async_trait]
impl PasswordHasher for OffloadedHasher {
    async fn hash(&self, password: String) -> String {
        metrics::counter!("medex_password_hashes_total", "kind" => "hash").increment(1);
        self.run(move |a, m| a.hash_in(&password, m), String::new())
            .await
    }

    async fn verify(&self, password: String, hash: String) -> bool {
        metrics::counter!("medex_password_hashes_total", "kind" => "verify").increment(1);
        self.run(move |a, m| a.verify_in(&password, &hash, m), false)
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
