//! Fixes into the trail, at the store: `--drivers` tasks each append one fix at a time, as
//! drivers' connections do, for `--seconds`, against sled or PostgreSQL; prints fixes/s per
//! second and overall, then checks that the trail holds them all.
//!
//! ```text
//! cargo run --release --example trail_load -- --store sled --seconds 60
//! MEDEX_DATABASE_URL=postgres://postgres@127.0.0.1:5432/medex_bench \
//!     cargo run --release --example trail_load -- --store postgres --seconds 60
//! ```

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use clap::Parser;
use medex_core::model::{DriverId, LocationFix};
use medex_core::store::{Store, TrailQuery};

#[derive(Parser)]
struct Args {
    /// `sled` (in a temporary directory) or `postgres` (MEDEX_DATABASE_URL).
    #[arg(long)]
    store: String,
    /// Concurrent appenders, one driver each.
    #[arg(long, default_value_t = 4000)]
    drivers: u64,
    /// How long to run (at most 60).
    #[arg(long, default_value_t = 60)]
    seconds: u64,
}

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let args = Args::parse();
    let seconds = args.seconds.min(60);
    let dir = tempfile::tempdir()?;
    let store: Arc<dyn Store> = match args.store.as_str() {
        "sled" => Arc::new(medex_store_sled::SledStore::open(dir.path().join("db"))?),
        "postgres" => {
            let url = std::env::var("MEDEX_DATABASE_URL")?;
            Arc::new(medex_store_postgres::PgStore::connect(&url).await?)
        }
        other => anyhow::bail!("unknown store {other}"),
    };
    let appended = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    let at = chrono::Utc::now();
    let tasks: Vec<_> = (0..args.drivers)
        .map(|n| {
            let (store, appended) = (store.clone(), appended.clone());
            tokio::spawn(async move {
                let driver = DriverId::from_uuid(uuid::Uuid::from_u128(u128::from(n) + 1));
                let mut i = 0i64;
                while Instant::now() < deadline {
                    let fix = LocationFix {
                        driver_id: driver,
                        latitude: 52.5 + (i % 100) as f64 * 1e-4,
                        longitude: 13.4,
                        speed: Some(20.0),
                        heading: Some(90.0),
                        accuracy: Some(5.0),
                        recorded_at: at + chrono::Duration::milliseconds(i),
                    };
                    store.append_fixes(&[fix]).await.expect("append");
                    appended.fetch_add(1, Ordering::Relaxed);
                    i += 1;
                }
            })
        })
        .collect();
    let mut last = 0;
    let mut ticks = tokio::time::interval(Duration::from_secs(1));
    ticks.tick().await;
    let mut slowest = f64::MAX;
    while Instant::now() < deadline {
        ticks.tick().await;
        let now = appended.load(Ordering::Relaxed);
        let rate = (now - last) as f64;
        slowest = slowest.min(rate);
        println!("{:>3}s {:>8.0} fixes/s", started.elapsed().as_secs(), rate);
        last = now;
    }
    for task in tasks {
        task.await?;
    }
    let elapsed = started.elapsed().as_secs_f64();
    store.flush().await?;
    let total = appended.load(Ordering::Relaxed);
    // Every acknowledged fix is in the trail.
    let mut stored = 0;
    for n in [0, args.drivers / 2, args.drivers - 1] {
        let driver = DriverId::from_uuid(uuid::Uuid::from_u128(u128::from(n) + 1));
        stored += store
            .trail(TrailQuery::new(
                driver,
                at,
                at + chrono::Duration::days(1),
                usize::MAX,
            ))
            .await?
            .len();
    }
    println!(
        "{}: {total} fixes in {elapsed:.1} s = {:.0} fixes/s (slowest second {slowest:.0}); \
         3 drivers' trails hold {stored}",
        args.store,
        total as f64 / elapsed
    );
    Ok(())
}
