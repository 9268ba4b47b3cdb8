//! Crash safety: a child process (this test binary again) commits orders and prints each id once
//! its commit returned; it is killed with SIGKILL mid-stream; every printed order must then be
//! readable, with indexes that agree with the records.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Write as _};
use std::process::{Command, Stdio};
use std::sync::Arc;

use medex_core::model::OrderId;
use medex_core::store::{OrderQuery, Page, Store, Write};
use medex_store_sled::SledStore;

use crate::fixtures::{order, user, vendor};

/// Set (to a store directory) in the child: it then acts as the writer.
const WRITER_ENV: &str = "MEDEX_SLED_CRASH_WRITER_DIR";
/// Concurrent committers in the writer, so that group commit is what gets killed.
const WRITERS: u64 = 4;
/// Acknowledgements the parent waits for before it kills the writer.
const ACKS_BEFORE_KILL: usize = 400;

/// The writer. In an ordinary test run (no `WRITER_ENV`) it has nothing to do.
#[test]
fn writer_process() {
    let Some(dir) = std::env::var_os(WRITER_ENV) else {
        return;
    };
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async move {
        let store = Arc::new(SledStore::open(dir).unwrap());
        let owner = user(1, "crash@example.com");
        let v = vendor(1, owner.id);
        store
            .commit(vec![Write::User(owner.clone()), Write::Vendor(v.clone())])
            .await
            .unwrap();
        let tasks: Vec<_> = (0..WRITERS)
            .map(|w| {
                let store = Arc::clone(&store);
                let (owner, vendor) = (owner.id, v.id);
                tokio::spawn(async move {
                    // Bounded, in case nobody kills us; a closed pipe (parent gone) stops us too.
                    for i in 0..100_000 {
                        let o = order(1_000_000 * (w + 1) + i, vendor, owner);
                        store.commit(vec![Write::Order(o.clone())]).await.unwrap();
                        let mut out = std::io::stdout().lock();
                        if writeln!(out, "ack {}", o.id)
                            .and_then(|()| out.flush())
                            .is_err()
                        {
                            return;
                        }
                    }
                })
            })
            .collect();
        for task in tasks {
            task.await.unwrap();
        }
    });
}

#[test]
fn acknowledged_orders_survive_sigkill() {
    let dir = tempfile::tempdir().unwrap();
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args([
            "--exact",
            "crash::writer_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env(WRITER_ENV, dir.path())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap();
    let mut out = BufReader::new(child.stdout.take().unwrap());
    let mut acked = BTreeSet::new();
    let mut killed = false;
    let mut line = Vec::new();
    loop {
        line.clear();
        if out.read_until(b'\n', &mut line).unwrap() == 0 {
            break;
        }
        // Only whole lines count: the kill may cut the last one short.
        if let Some(id) = std::str::from_utf8(&line)
            .ok()
            .and_then(|l| l.strip_suffix('\n'))
            .and_then(|l| l.strip_prefix("ack "))
        {
            acked.insert(id.parse::<OrderId>().unwrap());
        }
        if !killed && acked.len() >= ACKS_BEFORE_KILL {
            child.kill().unwrap(); // SIGKILL; what it printed before stays readable in the pipe
            killed = true;
        }
    }
    let status = child.wait().unwrap();
    assert!(
        killed,
        "the writer stopped by itself ({status}) after {} acks",
        acked.len()
    );

    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .unwrap();
    runtime.block_on(async {
        let store = SledStore::open(dir.path()).unwrap();
        let all = store
            .orders(&OrderQuery::default(), Page::first(usize::MAX))
            .await
            .unwrap();
        let stored: BTreeSet<OrderId> = all.iter().map(|o| o.id).collect();
        let lost: Vec<_> = acked.difference(&stored).collect();
        assert!(lost.is_empty(), "acknowledged but lost: {lost:?}");

        // Indexes agree with the records, for acknowledged and unacknowledged orders alike.
        let first = all.first().expect("acknowledged orders are stored");
        let by_vendor = OrderQuery {
            vendor_id: Some(first.vendor_id),
            ..Default::default()
        };
        let by_user = OrderQuery {
            user_id: Some(first.user_id),
            ..Default::default()
        };
        for query in [by_vendor, by_user] {
            let listed = store.orders(&query, Page::first(usize::MAX)).await.unwrap();
            assert_eq!(listed, all, "{query:?}");
        }
        for o in &all {
            let by_token = store
                .order_by_tracking_token(&o.tracking_token)
                .await
                .unwrap();
            assert_eq!(by_token.as_ref(), Some(o));
            assert_eq!(store.order(o.id).await.unwrap().as_ref(), Some(o));
        }
        // The unique indexes still refuse the numbers and tokens of stored orders.
        let mut again = first.clone();
        again.id = OrderId::from_uuid(uuid::Uuid::from_u128(7));
        assert!(store.commit(vec![Write::Order(again)]).await.is_err());
    });
}
