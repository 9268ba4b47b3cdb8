//! The bus and the counts on a real Redis: events between instances, commit order, channel
//! names, shared counts, and an outage of a private `redis-server` that the test stops and
//! starts again. Each test works under a prefix of its own on `MEDEX_TEST_REDIS_URL` (skipped with
//! a line without it); the outage test needs `redis-server` and runs when Redis tests are asked
//! for.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use medex_core::conformance::fixtures;
use medex_core::events::{BusHealth, Event, EventBus, Fanout, Interest, Resync, Topic};
use medex_core::model::{Order, OrderStatus, VendorId};
use medex_redis::testing::{PrivateRedis, TestRedis, server_url, services_required};
use medex_redis::{RedisBus, RedisCounts, RedisOptions};
use tokio::sync::watch;

/// The longest wait for something that should happen at once.
const HANG: Duration = Duration::from_secs(30);

#[derive(Debug, Clone, PartialEq)]
enum Got {
    Delivered(Topic, Event),
    Resynced(Resync),
}

/// A fan-out that keeps what it got and lets tests wait for it.
struct Recorder {
    got: Mutex<Vec<Got>>,
    changed: watch::Sender<usize>,
}

impl Recorder {
    fn new() -> Arc<Self> {
        Arc::new(Self {
            got: Mutex::new(Vec::new()),
            changed: watch::channel(0).0,
        })
    }

    fn push(&self, got: Got) {
        self.got.lock().unwrap().push(got);
        self.changed.send_modify(|n| *n += 1);
    }

    fn got(&self) -> Vec<Got> {
        self.got.lock().unwrap().clone()
    }

    /// Waits until `done` holds of what was got.
    async fn until(&self, what: &str, done: impl Fn(&[Got]) -> bool) {
        let mut changes = self.changed.subscribe();
        let waited = tokio::time::timeout(HANG, async {
            loop {
                if done(&self.got.lock().unwrap()) {
                    return;
                }
                changes.changed().await.unwrap();
            }
        })
        .await;
        assert!(waited.is_ok(), "{what}: never came; got {:#?}", self.got());
    }
}

impl Fanout for Recorder {
    fn deliver(&self, topic: &Topic, event: &Event) {
        self.push(Got::Delivered(topic.clone(), event.clone()));
    }
    fn resync(&self, which: &Resync) {
        self.push(Got::Resynced(which.clone()));
    }
}

struct Instance {
    bus: Arc<RedisBus>,
    fanout: Arc<Recorder>,
    interest: Arc<dyn Interest>,
}

impl Instance {
    fn start(options: RedisOptions) -> Self {
        let builder = RedisBus::builder(options).unwrap();
        let interest = builder.interest();
        let fanout = Recorder::new();
        let bus = builder.start(fanout.clone());
        Self {
            bus,
            fanout,
            interest,
        }
    }

    async fn watch(&self, topic: &Topic) {
        self.interest.watch(topic).await;
    }

    fn deliveries(&self, event: &Event) -> usize {
        self.fanout
            .got()
            .iter()
            .filter(|g| matches!(g, Got::Delivered(_, e) if e == event))
            .count()
    }

    async fn health(&self, wanted: BusHealth) {
        let waited = tokio::time::timeout(HANG, async {
            while self.bus.health() != wanted {
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
        })
        .await;
        assert!(waited.is_ok(), "the bus never became {wanted:?}");
    }
}

fn id<T: std::str::FromStr>(n: u64) -> T {
    match format!("00000000-0000-7000-8000-{n:012}").parse() {
        Ok(id) => id,
        Err(_) => panic!("bad test id"),
    }
}

fn vendor() -> VendorId {
    id(2)
}

fn order(n: u64, version: u64, status: OrderStatus) -> Order {
    let mut order = fixtures::order(id(n), vendor(), id(3));
    order.version = version;
    order.status = status;
    order.tracking_token = format!("token-of-order-{n}");
    order
}

fn status_event(n: u64, version: u64) -> Event {
    Event::OrderStatusChanged {
        order: Arc::new(order(n, version, OrderStatus::Accepted)),
        previous: OrderStatus::Pending,
    }
}

fn driver_status(n: u64) -> Event {
    Event::DriverStatusChanged {
        driver_id: id(n),
        vendor_id: vendor(),
        status: medex_core::model::DriverStatus::Available,
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_event_reaches_the_other_instances_watching_its_topic_once_and_its_own_once() {
    let Some(redis) = TestRedis::create("bus_between") else {
        return;
    };
    let (a, b) = (
        Instance::start(redis.options()),
        Instance::start(redis.options()),
    );
    let dashboard = Topic::Vendor(vendor());
    a.watch(&dashboard).await;
    b.watch(&dashboard).await;
    let created = Event::OrderCreated(Arc::new(order(1, 1, OrderStatus::Pending)));
    a.bus.publish(created.clone());
    assert_eq!(a.deliveries(&created), 1, "delivered here at once");
    b.fanout
        .until("the event on the other instance", |got| {
            got.contains(&Got::Delivered(dashboard.clone(), created.clone()))
        })
        .await;
    // A driver topic nobody on B watches, then a sentinel from B: Redis hands both instances
    // what it received in order, so once A has the sentinel it has had its own echo too.
    let assigned = Event::DriverAssigned {
        order: Arc::new(order(1, 2, OrderStatus::DriverAssigned)),
        previous_driver: None,
    };
    a.bus.publish(assigned.clone());
    let sentinel = driver_status(9);
    b.bus.publish(sentinel.clone());
    a.fanout
        .until("the sentinel on A", |got| {
            got.contains(&Got::Delivered(dashboard.clone(), sentinel.clone()))
        })
        .await;
    assert_eq!(
        a.deliveries(&created),
        1,
        "its own event came back and counted twice"
    );
    assert_eq!(
        b.deliveries(&assigned),
        0,
        "B delivered an event of a topic nobody on it watches"
    );
    assert_eq!(b.deliveries(&created), 1);
    assert_eq!(b.deliveries(&sentinel), 1, "B's own sentinel, once");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn status_events_of_one_order_reach_each_topic_in_commit_order() {
    let Some(redis) = TestRedis::create("bus_order") else {
        return;
    };
    let (first, second, watcher) = (
        Instance::start(redis.options()),
        Instance::start(redis.options()),
        Instance::start(redis.options()),
    );
    let dashboard = Topic::Vendor(vendor());
    watcher.watch(&dashboard).await;
    let (v1, v2, v3) = (status_event(1, 1), status_event(1, 2), status_event(1, 3));
    second.bus.publish(v2.clone());
    watcher
        .fanout
        .until("version 2", |got| {
            got.contains(&Got::Delivered(dashboard.clone(), v2.clone()))
        })
        .await;
    // Version 1 arrives late, from an instance whose publication was slower: dropped; the
    // version after it, on the same connection, shows that it was received.
    first.bus.publish(v1.clone());
    first.bus.publish(v3.clone());
    watcher
        .fanout
        .until("version 3", |got| {
            got.contains(&Got::Delivered(dashboard.clone(), v3.clone()))
        })
        .await;
    let seen: Vec<u64> = watcher
        .fanout
        .got()
        .iter()
        .filter_map(|g| match g {
            Got::Delivered(_, e) => e.order_version().map(|(_, v)| v),
            Got::Resynced(_) => None,
        })
        .collect();
    assert_eq!(
        seen,
        [2, 3],
        "an older version after a newer one is dropped"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn trackers_are_reached_on_a_channel_named_without_their_token() {
    let Some(redis) = TestRedis::create("bus_tracking") else {
        return;
    };
    let (a, b) = (
        Instance::start(redis.options()),
        Instance::start(redis.options()),
    );
    let out = order(5, 6, OrderStatus::OutForDelivery);
    let tracker = Topic::Tracking(out.tracking_token.clone());
    b.watch(&tracker).await;
    let mut client = redis::Client::open(redis.url())
        .unwrap()
        .get_multiplexed_async_connection()
        .await
        .unwrap();
    let channels: Vec<String> = redis::cmd("PUBSUB")
        .arg("CHANNELS")
        .arg(format!("{}:*", redis.prefix()))
        .query_async(&mut client)
        .await
        .unwrap();
    assert!(
        channels.iter().any(|c| c.contains(":tracking:")),
        "{channels:?}"
    );
    assert!(
        channels.iter().all(|c| !c.contains(&out.tracking_token)),
        "a channel names the token: {channels:?}"
    );
    let delivered = Event::OrderStatusChanged {
        order: Arc::new(out),
        previous: OrderStatus::PickedUp,
    };
    a.bus.publish(delivered.clone());
    b.fanout
        .until("the tracker's event", |got| {
            got.contains(&Got::Delivered(tracker.clone(), delivered.clone()))
        })
        .await;
    // Once the tracker left, the channel is unsubscribed.
    b.interest.unwatch(&tracker);
    let waited = tokio::time::timeout(HANG, async {
        loop {
            let channels: Vec<String> = redis::cmd("PUBSUB")
                .arg("CHANNELS")
                .arg(format!("{}:*:tracking:*", redis.prefix()))
                .query_async(&mut client)
                .await
                .unwrap();
            if channels.is_empty() {
                return;
            }
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the tracking channel stayed subscribed");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_are_shared_windowed_and_kept_under_the_prefix() {
    let Some(redis) = TestRedis::create("counts") else {
        return;
    };
    let (one, two) = (
        RedisCounts::new(&redis.options()).unwrap(),
        RedisCounts::new(&redis.options()).unwrap(),
    );
    let window = Duration::from_secs(60);
    assert_eq!(one.get("account:abc").await.unwrap(), None);
    for n in 1..=3 {
        let counts = if n % 2 == 0 { &one } else { &two };
        assert_eq!(counts.add("account:abc", window).await.unwrap(), n);
    }
    let (count, left) = two.get("account:abc").await.unwrap().unwrap();
    assert_eq!(count, 3, "both instances count into one");
    assert!(left <= window && left > Duration::from_secs(50), "{left:?}");
    assert_eq!(
        redis.keys(),
        [format!("{}:throttle:account:abc", redis.prefix())]
    );
    one.clear("account:abc").await.unwrap();
    assert_eq!(two.get("account:abc").await.unwrap(), None);

    // A window ends: the count starts again from zero.
    assert_eq!(one.add("short", Duration::from_millis(1)).await.unwrap(), 1);
    let waited = tokio::time::timeout(HANG, async {
        while one.get("short").await.unwrap().is_some() {
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "the window never ended");
    assert_eq!(one.add("short", window).await.unwrap(), 1);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn counts_answer_unavailable_at_once_while_redis_is_unreachable() {
    // A port nothing listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let counts =
        RedisCounts::new(&RedisOptions::new(format!("redis://127.0.0.1:{port}"), "x")).unwrap();
    assert!(counts.add("k", Duration::from_secs(1)).await.is_err());
    assert!(counts.get("k").await.is_err());
    assert!(counts.clear("k").await.is_err());
}

/// Redis stops (killed) and comes back: both instances resync every subscriber when the
/// connection drops and again when it is back, health says so meanwhile, events published
/// during the outage stay local and the other instance is told which topics lost events, and
/// events cross again afterwards.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_outage_resyncs_every_subscriber_and_the_bus_comes_back_by_itself() {
    if server_url("bus_outage").is_none() && !services_required() {
        return;
    }
    assert!(
        PrivateRedis::available(),
        "bus_outage: redis-server is not installed"
    );
    let dir = tempfile::tempdir().unwrap();
    let mut redis = PrivateRedis::start(dir.path());
    let options = RedisOptions {
        timeout: Duration::from_millis(500),
        ..RedisOptions::new(redis.url(), "outage")
    };
    let (a, b) = (
        Instance::start(options.clone()),
        Instance::start(options.clone()),
    );
    let dashboard = Topic::Vendor(vendor());
    a.watch(&dashboard).await;
    b.watch(&dashboard).await;
    a.health(BusHealth::Connected).await;
    b.health(BusHealth::Connected).await;
    let before = driver_status(1);
    a.bus.publish(before.clone());
    b.fanout
        .until("an event before the outage", |got| {
            got.contains(&Got::Delivered(dashboard.clone(), before.clone()))
        })
        .await;
    let resyncs = |i: &Instance| {
        i.fanout
            .got()
            .iter()
            .filter(|g| **g == Got::Resynced(Resync::All))
            .count()
    };
    let (a0, b0) = (resyncs(&a), resyncs(&b));

    redis.stop();
    for (name, i, n) in [("A", &a, a0), ("B", &b, b0)] {
        i.fanout
            .until(&format!("{name} resyncs when the bus drops"), |got| {
                got.iter()
                    .filter(|g| **g == Got::Resynced(Resync::All))
                    .count()
                    > n
            })
            .await;
        i.health(BusHealth::Disconnected).await;
    }
    // Events go on locally, without waiting for the bus.
    let during = driver_status(2);
    a.bus.publish(during.clone());
    assert_eq!(a.deliveries(&during), 1);

    redis.restart();
    a.health(BusHealth::Connected).await;
    b.health(BusHealth::Connected).await;
    for (name, i, n) in [("A", &a, a0), ("B", &b, b0)] {
        i.fanout
            .until(&format!("{name} resyncs when the bus is back"), |got| {
                got.iter()
                    .filter(|g| **g == Got::Resynced(Resync::All))
                    .count()
                    > n + 1
            })
            .await;
    }
    let after = driver_status(3);
    a.bus.publish(after.clone());
    b.fanout
        .until("an event after the outage", |got| {
            got.contains(&Got::Delivered(dashboard.clone(), after.clone()))
        })
        .await;
    assert_eq!(
        b.deliveries(&during),
        0,
        "lost events are not replayed: subscribers read a fresh state instead"
    );
}

/// Events that never reached Redis (here: the publish queue overflowed) are announced once the
/// bus publishes again, and the instances that hear it resync those topics only.
#[tokio::test(flavor = "current_thread")]
async fn events_lost_on_the_way_to_redis_are_announced_and_their_topics_resynced() {
    let Some(redis) = TestRedis::create("bus_lost") else {
        return;
    };
    let a = Instance::start(RedisOptions {
        queue: 1,
        ..redis.options()
    });
    let b = Instance::start(redis.options());
    let dashboard = Topic::Vendor(vendor());
    b.watch(&dashboard).await;
    // One thread: the publisher task cannot run between these, so the queue of one overflows.
    let (first, second) = (driver_status(1), driver_status(2));
    a.bus.publish(first.clone());
    a.bus.publish(second.clone());
    assert_eq!(
        (a.deliveries(&first), a.deliveries(&second)),
        (1, 1),
        "both are delivered on their own instance"
    );
    b.fanout
        .until("the notice of A's lost event", |got| {
            got.contains(&Got::Resynced(Resync::Topics(vec![dashboard.clone()])))
        })
        .await;
    b.fanout
        .until("the event that was published", |got| {
            got.contains(&Got::Delivered(dashboard.clone(), first.clone()))
        })
        .await;
    assert_eq!(b.deliveries(&second), 0);
}
