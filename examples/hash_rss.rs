//! Resident memory after a storm of password hashes at the server's real argon2 parameters:
//! `cargo run --release --example hash_rss -- [reused|fresh] [HASHES] [CONCURRENCY]`.
//!
//! `reused` is the server's hasher (`medex::hashing::OffloadedHasher`: working memory shared by
//! its permits); `fresh` allocates each hash's 19 MiB anew on the blocking pool, as the server
//! did before. Each mode runs in a process of its own, so the figures do not mix; it prints the
//! resident memory before, at the end of the storm and two seconds after it (Linux only:
//! `/proc/self/status`).

use std::sync::Arc;
use std::time::{Duration, Instant};

use medex::hashing::OffloadedHasher;
use medex_core::auth::{Argon2Hasher, PasswordHasher};
use tokio::sync::Semaphore;

fn rss_mib() -> f64 {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() {
    let mut args = std::env::args().skip(1);
    let mode = args.next().unwrap_or_else(|| "reused".into());
    let hashes: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(200);
    let concurrency: usize = args.next().and_then(|n| n.parse().ok()).unwrap_or(2);
    println!("{mode}: {hashes} verifications, {concurrency} at a time");
    let before = rss_mib();
    let hash = Argon2Hasher::default().hash_blocking("correct horse battery");
    let started = Instant::now();
    // Many callers at once, as a login storm: the blocking pool grows threads for them.
    let callers = 64;
    let per_caller = hashes.div_ceil(callers);
    match mode.as_str() {
        "fresh" => {
            let permits = Arc::new(Semaphore::new(concurrency));
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let (permits, hash) = (permits.clone(), hash.clone());
                    tokio::spawn(async move {
                        for _ in 0..per_caller {
                            let _permit = permits.acquire().await.expect("open");
                            let hash = hash.clone();
                            tokio::task::spawn_blocking(move || {
                                Argon2Hasher::default()
                                    .verify_blocking("correct horse battery", &hash)
                            })
                            .await
                            .expect("verified");
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("caller");
            }
        }
        _ => {
            let hasher = Arc::new(OffloadedHasher::new(Argon2Hasher::default(), concurrency));
            let tasks: Vec<_> = (0..callers)
                .map(|_| {
                    let (hasher, hash) = (hasher.clone(), hash.clone());
                    tokio::spawn(async move {
                        for _ in 0..per_caller {
                            assert!(
                                hasher
                                    .verify("correct horse battery".into(), hash.clone())
                                    .await
                            );
                        }
                    })
                })
                .collect();
            for task in tasks {
                task.await.expect("caller");
            }
        }
    }
    let end = rss_mib();
    tokio::time::sleep(Duration::from_secs(2)).await;
    println!(
        "RSS before {before:.0} MiB, at the end {end:.0} MiB, 2 s after {:.0} MiB ({} verifications in {:.1} s)",
        rss_mib(),
        callers * per_caller,
        started.elapsed().as_secs_f64()
    );
}
