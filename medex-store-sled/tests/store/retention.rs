//! The retention sweep.

use chrono::{Duration, Utc};
use medex_core::store::{Store, TrailQuery};
use medex_store_sled::{DEFAULT_TRAIL_RETENTION, SledStore};

use crate::fixtures::{driver_id, fix};

#[tokio::test(start_paused = true)]
async fn the_sweep_prunes_old_fixes_and_ends_with_the_store() {
    let store = SledStore::temporary().unwrap();
    let d = driver_id(1);
    let now = Utc::now();
    let mut old = fix(d, 0, 52.0);
    old.recorded_at = now - Duration::days(40);
    let mut recent = fix(d, 0, 52.1);
    recent.recorded_at = now - Duration::days(1);
    store.append_fixes(&[old, recent]).await.unwrap();

    let sweep = store.spawn_retention(
        DEFAULT_TRAIL_RETENTION,
        std::time::Duration::from_secs(3600),
    );
    // Paused time moves only when every task waits on a timer, so the first sweep (which runs at
    // once) has finished when this sleep ends.
    tokio::time::sleep(std::time::Duration::from_secs(60)).await;
    let left = store
        .trail(TrailQuery::new(d, now - Duration::days(400), now, 10))
        .await
        .unwrap();
    assert_eq!(left, vec![recent]);

    drop(store);
    sweep.await.unwrap();
}
