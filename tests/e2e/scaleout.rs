//! Two instances behind one address: the example server runs twice, as child processes, on one
//! PostgreSQL database and one Redis, and clients talk to either as a load balancer would send
//! them. Each run has a database and a Redis prefix of its own. Shown here: a driver on A seen
//! live by a dashboard and a tracker on B; a status change made through A seen on B; a proof
//! uploaded through A served by B; the login throttle shared (and `X-Forwarded-For` believed
//! from trusted proxies only); configuration changes racing on both, one winner per version,
//! taken in by both; two first starts making one admin; `kill -9` of A while clients write
//! through both, every acknowledged write readable through B and the driver reconnected to B;
//! and an outage of a private `redis-server` (stopped, then started again) that ends with every
//! subscriber resynced.
//!
//! Skipped with a line when `MEDEX_TEST_DATABASE_URL` or `MEDEX_TEST_REDIS_URL` is unset; with
//! `MEDEX_REQUIRE_SERVICES=1` a missing one fails. Runs in the sled pass of the suite only (it
//! brings its own database).

use std::collections::BTreeMap;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use medex_core::model::Role;
use medex_core::store::{Page, Store, UserQuery};
use medex_redis::testing::{PrivateRedis, TestRedis};
use medex_store_postgres::PgStore;
use medex_store_postgres::testing::TestDatabase;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use crate::support::*;

/// The first admin each instance is told to create when none exists.
const ADMIN_OF_A: &str = "root@medex.test";
const ADMIN_OF_B: &str = "root-b@medex.test";

/// Where the instances share their data, and what they share it with.
struct Shared {
    database: TestDatabase,
    /// The prefix on the shared Redis (its keys deleted afterwards), unless the test brings a
    /// Redis of its own.
    redis: Option<TestRedis>,
    redis_url: String,
    prefix: String,
    secret: String,
    custody_key: String,
}

/// Whether this pass of the suite runs these tests: not the PostgreSQL pass, since they bring
/// their own database (and it would run them twice). `false` after one line.
fn in_this_pass(test: &str) -> bool {
    if std::env::var(E2E_DATABASE_URL).is_ok() {
        use std::io::Write as _;
        let _ = writeln!(
            std::io::stderr(),
            "skipped {test}: it brings its own database and runs in the sled pass"
        );
        return false;
    }
    true
}

impl Shared {
    /// A database of this run's own and a Redis prefix of its own; `None` (after a line) when
    /// PostgreSQL or Redis is not configured, a failure when they are required.
    async fn new(test: &str) -> Option<Self> {
        if !in_this_pass(test) {
            return None;
        }
        let database = TestDatabase::create(test).await?;
        let redis = TestRedis::create(test)?;
        Some(Self {
            redis_url: redis.url().to_owned(),
            prefix: redis.prefix().to_owned(),
            redis: Some(redis),
            ..Self::with_database(database)
        })
    }

    fn with_database(database: TestDatabase) -> Self {
        use base64::Engine as _;
        let secret: [u8; 36] = rand::random();
        let seed: [u8; 32] = rand::random();
        Self {
            database,
            redis: None,
            redis_url: String::new(),
            prefix: medex_redis::testing::unique_prefix("private"),
            secret: base64::engine::general_purpose::STANDARD.encode(secret),
            custody_key: base64::engine::general_purpose::STANDARD.encode(seed),
        }
    }

    /// The settings of one instance, its data directory `dir`.
    fn variables(
        &self,
        dir: &std::path::Path,
        admin: &str,
        extra: &[(&str, &str)],
    ) -> Vec<(String, String)> {
        let mut variables = base_variables(dir.to_str().unwrap());
        for (k, v) in [
            ("MEDEX_DATABASE_URL", self.database.url()),
            ("MEDEX_DATABASE_POOL_SIZE", "6"),
            ("MEDEX_JWT_SECRET", &self.secret),
            ("MEDEX_CUSTODY_KEY", &self.custody_key),
            ("MEDEX_REDIS_URL", &self.redis_url),
            ("MEDEX_REDIS_PREFIX", &self.prefix),
            ("MEDEX_ADMIN_EMAIL", admin),
        ] {
            variables.insert(k.to_owned(), v.to_owned());
        }
        for (k, v) in extra {
            variables.insert((*k).to_owned(), (*v).to_owned());
        }
        variables.into_iter().collect()
    }

    /// Instances A and B, started at the same time (a race of first starts).
    fn start_pair(
        &self,
        dir: &std::path::Path,
        extra_a: &[(&str, &str)],
    ) -> (ChildServer, ChildServer) {
        let (a_dir, b_dir) = (dir.join("a"), dir.join("b"));
        std::fs::create_dir_all(&a_dir).unwrap();
        std::fs::create_dir_all(&b_dir).unwrap();
        let a_vars = self.variables(&a_dir.join("data"), ADMIN_OF_A, extra_a);
        let b_vars = self.variables(&b_dir.join("data"), ADMIN_OF_B, &[]);
        std::thread::scope(|scope| {
            let a = scope.spawn(|| ChildServer::start(&a_dir, &a_vars, "instance A"));
            let b = scope.spawn(|| ChildServer::start(&b_dir, &b_vars, "instance B"));
            (a.join().unwrap(), b.join().unwrap())
        })
    }

    async fn store(&self) -> PgStore {
        PgStore::connect(self.database.url()).await.unwrap()
    }
}

/// Signs in whichever first admin won the race of the first starts.
async fn signed_in_admin(api: &TestServer) -> Who {
    for email in [ADMIN_OF_A, ADMIN_OF_B] {
        let r = api.login(email, PASSWORD).await;
        if r.status.as_u16() == 200 {
            return api.signed_in(email).await;
        }
    }
    panic!("no first admin was created");
}

/// A pharmacy registered through one instance and a driver of its fleet through the other.
struct Scene {
    vendor: Pharmacy,
    driver: Courier,
    customer: Who,
}

async fn scene(a: &TestServer, b: &TestServer, tag: &str) -> Scene {
    let vendor = a
        .pharmacy(
            &format!("owner-{tag}@corner.test"),
            "Corner Pharmacy",
            VENDOR_PHONE,
        )
        .await;
    let driver = b
        .courier(
            &vendor,
            &format!("dee-{tag}@corner.test"),
            DRIVER_NAME,
            DRIVER_PHONE,
        )
        .await;
    let customer = b
        .customer(
            &format!("ann-{tag}@example.test"),
            CUSTOMER_NAME,
            CUSTOMER_PHONE,
        )
        .await;
    Scene {
        vendor,
        driver,
        customer,
    }
}

impl Scene {
    /// The vendor dashboard's socket address on `server`, signed in as the owner.
    fn dashboard_url(&self, server: &TestServer) -> String {
        server.ws_url(&format!(
            "/ws/vendor/{}?token={}",
            self.vendor.id, self.vendor.owner.token
        ))
    }

    /// The driver's socket address on `server`, signed in as the driver.
    fn driver_url(&self, server: &TestServer) -> String {
        server.ws_url(&format!("/ws/driver?token={}", self.driver.who.token))
    }

    /// The driver moves `order` on to `status` through `server`, which accepts it.
    async fn driver_sets(&self, server: &TestServer, order: &str, status: &str) {
        server
            .patch(
                &format!("/api/orders/{order}"),
                &self.driver.who.token,
                json!({ "status": status }),
            )
            .await
            .expect(200);
    }
}

fn order_body(vendor: &Pharmacy) -> Value {
    json!({
        "vendor_id": vendor.id,
        "delivery_address": "Torstrasse 1, Berlin",
        "delivery_latitude": 52.5290,
        "delivery_longitude": 13.4010,
        "customer_name": CUSTOMER_NAME,
        "customer_phone": RECIPIENT_PHONE,
        "items": [{"name": "Amoxicillin 500 mg", "quantity": 1}],
    })
}

/// An order of the scene's customer, placed through `placed`, accepted and assigned through
/// `other`, picked up by the driver through `placed`: (id, tracking token).
async fn picked_up(s: &Scene, placed: &TestServer, other: &TestServer) -> (String, String) {
    let r = placed
        .post(
            "/api/orders",
            Some(&s.customer.token),
            order_body(&s.vendor),
        )
        .await;
    r.expect(201);
    let (order, token) = (r.str("id"), r.str("tracking_token"));
    let path = format!("/api/orders/{order}");
    other
        .patch(&path, &s.vendor.owner.token, json!({"status": "accepted"}))
        .await
        .expect(200);
    other.available(&s.driver).await;
    other
        .post(
            &format!("{path}/assign-driver"),
            Some(&s.vendor.owner.token),
            json!({"driver_id": s.driver.id}),
        )
        .await
        .expect(200);
    placed
        .patch(&path, &s.driver.who.token, json!({"status": "picked_up"}))
        .await
        .expect(200);
    (order, token)
}

/// Asks `check` until it holds, or fails after [`HANG`]: for what another instance takes in
/// by itself (a configuration it reads again, a bus it reconnects).
async fn eventually<F, Fut>(what: &str, mut check: F)
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = bool>,
{
    let waited = tokio::time::timeout(HANG, async {
        while !check().await {
            tokio::time::sleep(Duration::from_millis(25)).await;
        }
    })
    .await;
    assert!(waited.is_ok(), "{what}: never happened");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_share_live_updates_uploads_throttling_and_configuration() {
    let Some(shared) = Shared::new("scaleout").await else {
        return;
    };
    server_binary();
    let dir = tempfile::tempdir().unwrap();
    // A believes X-Forwarded-For from 127.0.0.1 (as behind a load balancer there); B does not.
    let (a_process, b_process) =
        shared.start_pair(dir.path(), &[("MEDEX_TRUSTED_PROXIES", "127.0.0.1")]);
    let (a, b) = (a_process.api(), b_process.api());
    a.public("/api/health").await.expect(200);
    let health = b.public("/api/health").await;
    health.expect(200);
    assert_eq!(health.json["bus"], "ok", "{}", health.text);

    // Two first starts at once made one admin.
    let store = shared.store().await;
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
    assert_eq!(admins.len(), 1, "{admins:?}");

    // Live: a driver on A, a dashboard and a tracker on B.
    let s = scene(&a, &b, "live").await;
    let (order, token) = picked_up(&s, &a, &b).await;
    let mut dashboard = Socket::connect(&s.dashboard_url(&b), "dashboard on B").await;
    dashboard.expect("initial_state").await;
    let mut tracker =
        Socket::connect(&b.ws_url(&format!("/ws/tracking/{token}")), "tracker on B").await;
    tracker.expect("initial_state").await;
    let mut own_dashboard = Socket::connect(&s.dashboard_url(&a), "dashboard on A").await;
    own_dashboard.expect("initial_state").await;
    let mut driver = Socket::connect(&s.driver_url(&a), "driver on A").await;
    driver.expect("connected").await;
    s.driver_sets(&a, &order, "out_for_delivery").await;
    // The status change through A, on B.
    let status = dashboard.until("order_status").await;
    assert_eq!(status["status"], "out_for_delivery", "{status}");
    let status = tracker.until("order_status").await;
    assert_eq!(status["status"], "out_for_delivery", "{status}");
    driver
        .send_json(
            json!({"type": "location", "latitude": 52.5250, "longitude": 13.4080, "accuracy": 5}),
        )
        .await;
    let seen = dashboard.until("driver_location").await;
    assert_eq!(seen["driver_id"], s.driver.id.as_str(), "{seen}");
    assert_eq!(seen["latitude"], 52.525);
    let tracked = tracker.until("driver_location").await;
    assert!(tracked["eta_minutes"].is_number(), "{tracked}");
    // A's own dashboard gets the status change and the position once each: no echo from Redis.
    assert_eq!(
        own_dashboard.until("order_status").await["status"],
        "out_for_delivery"
    );
    assert_eq!(
        own_dashboard.expect("driver_location").await["latitude"],
        52.525
    );
    driver
        .send_json(json!({"type": "location", "latitude": 52.5260, "longitude": 13.4070}))
        .await;
    let next = dashboard.until("driver_location").await;
    assert_eq!(next["latitude"], 52.526);
    let own_next = own_dashboard.next().await;
    assert_eq!(
        (own_next["type"].as_str(), own_next["latitude"].as_f64()),
        (Some("driver_location"), Some(52.526)),
        "after the first position A's dashboard got {own_next}, not the next one"
    );

    // Signing out through B closes the driver's socket on A at once (1008).
    b.post(
        "/api/auth/logout",
        None,
        json!({"refresh_token": s.driver.who.refresh}),
    )
    .await
    .expect(204);
    let (code, _) = driver.closed().await;
    assert_eq!(
        u16::from(code),
        1008,
        "a signed-out driver's socket on the other instance"
    );
    let s = Scene {
        driver: Courier {
            who: a.signed_in(&s.driver.who.email).await,
            ..s.driver
        },
        ..s
    };

    // A proof uploaded through A, served by B.
    let uploaded = a
        .send(
            "POST",
            "/api/uploads/proof",
            Some(&s.driver.who.token),
            upload_body(&order, PNG),
        )
        .await;
    uploaded.expect(201);
    let url = uploaded.str("url");
    let served = b.get(&url, &s.customer.token).await;
    served.expect(200);
    assert_eq!(served.header("content-type"), Some("image/png"));
    let length = PNG.len().to_string();
    assert_eq!(served.header("content-length"), Some(length.as_str()));
    assert!(served.text.contains("PNG"), "the bytes uploaded");
    assert!(
        !dir.path().join("a/data/uploads").exists()
            || std::fs::read_dir(dir.path().join("a/data/uploads"))
                .unwrap()
                .next()
                .is_none(),
        "with PostgreSQL the proof is in the database, not in A's directory"
    );

    // The throttle: five failures for one account through A and B, the sixth refused by both.
    let victim = format!("victim-{}@example.test", rand::random::<u32>());
    b.customer(&victim, "Vic Tim", "+49 30 555 0300").await;
    for n in 0..5 {
        let server = if n % 2 == 0 { &a } else { &b };
        server.login(&victim, "wrong-password-1").await.expect(401);
    }
    for (name, server) in [("A", &a), ("B", &b)] {
        let refused = server.login(&victim, "wrong-password-1").await;
        refused.expect(429);
        assert!(refused.header("retry-after").is_some(), "{name}");
    }
    let keys = shared.redis.as_ref().unwrap().keys();
    assert!(!keys.is_empty(), "the counts are in Redis");
    for key in &keys {
        assert!(
            !key.contains("victim") && !key.contains('@') && !key.contains("127.0.0.1"),
            "a count names an account or an address in clear: {key}"
        );
    }
    // Behind a trusted proxy, the forwarded address is the client; from anyone else the header
    // is ignored.
    let forwarded = |ip: &'static str| {
        [
            ("x-forwarded-for", ip),
            ("content-type", "application/json"),
        ]
    };
    let login = |server: &TestServer, email: &str, ip: &'static str| {
        let body = json!({"email": email, "password": "wrong-password-1"}).to_string();
        let server = server.clone_client();
        async move {
            server
                .raw(
                    "POST",
                    "/api/auth/login",
                    None,
                    &forwarded(ip),
                    Some(body.into_bytes()),
                )
                .await
        }
    };
    let proxied = format!("proxied-{}@example.test", rand::random::<u32>());
    for _ in 0..5 {
        login(&a, &proxied, "198.51.100.7").await.expect(401);
    }
    login(&a, &proxied, "198.51.100.7").await.expect(429);
    login(&a, &proxied, "198.51.100.8").await.expect(401);
    let spoofed = format!("spoofed-{}@example.test", rand::random::<u32>());
    for n in 0..5 {
        login(
            &b,
            &spoofed,
            if n % 2 == 0 {
                "203.0.113.1"
            } else {
                "203.0.113.2"
            },
        )
        .await
        .expect(401);
    }
    login(&b, &spoofed, "203.0.113.3").await.expect(429);

    // Configuration changes racing on both instances: one winner per stored version, no change
    // lost, and both instances in force with what is stored.
    let admin = signed_in_admin(&a).await;
    let before = store
        .system_config()
        .await
        .unwrap()
        .map_or(0, |c| c.version);
    let changes: Vec<u64> = (1..=8).collect();
    let replies = futures::future::join_all(changes.iter().map(|cents| {
        let server = if cents % 2 == 0 { &a } else { &b };
        server.patch(
            "/api/admin/config",
            &admin.token,
            json!({"tariff": {"base_fee": *cents as f64 / 100.0}}),
        )
    }))
    .await;
    let mut tally: BTreeMap<u16, usize> = BTreeMap::new();
    for reply in &replies {
        *tally.entry(reply.status.as_u16()).or_default() += 1;
        if reply.status.as_u16() == 409 {
            reply.assert_error_format("a configuration change that lost");
        }
    }
    let applied = tally.get(&200).copied().unwrap_or(0);
    assert!(applied >= 1, "{tally:?}");
    assert_eq!(
        applied + tally.get(&409).copied().unwrap_or(0),
        8,
        "{tally:?}"
    );
    let stored = store.system_config().await.unwrap().unwrap();
    assert_eq!(
        stored.version,
        before + applied as u64,
        "every change answered 200 was saved on top of the one before: {tally:?}"
    );
    let stored_json = serde_json::to_value(&stored.config).unwrap();
    for (name, server) in [("A", &a), ("B", &b)] {
        eventually(
            &format!("{name} takes in the stored configuration"),
            || async { server.get("/api/admin/config", &admin.token).await.json == stored_json },
        )
        .await;
    }
    // One more change through B, seen through A.
    b.patch(
        "/api/admin/config",
        &admin.token,
        json!({"road_factor": 1.7}),
    )
    .await
    .expect(200);
    eventually("A takes in B's change", || async {
        a.get("/api/admin/config", &admin.token).await.json["road_factor"] == 1.7
    })
    .await;
    assert!(
        !a_process.log().contains("panicked") && !b_process.log().contains("panicked"),
        "{}\n{}",
        a_process.log(),
        b_process.log()
    );
}

/// What a writer was told: the order and the status last acknowledged.
type Acknowledged = Arc<Mutex<BTreeMap<String, &'static str>>>;

/// Creates and accepts orders through `server` until it stops answering; what was answered
/// 201/200 goes into `acked`.
async fn write_until_gone(server: TestServer, s: Arc<Scene>, acked: Acknowledged, rounds: usize) {
    for _ in 0..rounds {
        let Ok(Ok(created)) = tokio::time::timeout(
            HANG,
            server
                .http_client()
                .post(server.url("/api/orders"))
                .bearer_auth(&s.customer.token)
                .json(&order_body(&s.vendor))
                .send(),
        )
        .await
        else {
            return;
        };
        if created.status().as_u16() != 201 {
            return;
        }
        let Ok(body) = created.json::<Value>().await else {
            return;
        };
        let id = body["id"].as_str().unwrap().to_owned();
        acked.lock().unwrap().insert(id.clone(), "pending");
        let accepted = server
            .http_client()
            .patch(server.url(&format!("/api/orders/{id}")))
            .bearer_auth(&s.vendor.owner.token)
            .json(&json!({"status": "accepted"}))
            .send()
            .await;
        match accepted {
            Ok(r) if r.status().as_u16() == 200 => {
                acked.lock().unwrap().insert(id, "accepted");
            }
            _ => return,
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn kill_9_of_one_instance_loses_no_acknowledged_write_and_its_driver_moves_on() {
    let Some(shared) = Shared::new("scaleout_kill").await else {
        return;
    };
    server_binary();
    let dir = tempfile::tempdir().unwrap();
    let (mut a_process, b_process) = shared.start_pair(dir.path(), &[]);
    let (a, b) = (a_process.api(), b_process.api());
    let s = Arc::new(scene(&a, &b, "kill").await);
    let (order, _) = picked_up(&s, &a, &b).await;
    let mut driver = Socket::connect(&s.driver_url(&a), "driver on A").await;
    driver.expect("connected").await;
    driver
        .send_json(json!({"type": "location", "latitude": 52.5201, "longitude": 13.4101}))
        .await;

    // Writers through both instances, A killed while they write.
    let acked: Acknowledged = Arc::default();
    let writers: Vec<_> = [a.clone_client(), b.clone_client(), a.clone_client()]
        .into_iter()
        .map(|server| tokio::spawn(write_until_gone(server, s.clone(), acked.clone(), 40)))
        .collect();
    // Once some writes went through A, it is killed with writes in flight.
    eventually("writes through A", || async {
        acked.lock().unwrap().len() >= 6
    })
    .await;
    a_process.kill();
    let b_writer = tokio::spawn(write_until_gone(
        b.clone_client(),
        s.clone(),
        acked.clone(),
        10,
    ));
    for writer in writers {
        writer.await.unwrap();
    }
    b_writer.await.unwrap();

    // Every acknowledged write is there, read through B.
    let acked = acked.lock().unwrap().clone();
    assert!(acked.len() > 6, "{acked:?}");
    for (id, status) in &acked {
        let r = b.get(&format!("/api/orders/{id}"), &s.customer.token).await;
        r.expect(200);
        let stored = r.json["status"].as_str().unwrap();
        assert!(
            stored == *status || (*status == "pending" && stored == "accepted"),
            "order {id}: acknowledged {status}, stored {stored}"
        );
    }

    // The driver's socket ended with A; it reconnects through the address, now B, and goes on.
    driver.ended().await;
    let mut watching = Socket::connect(&s.dashboard_url(&b), "dashboard on B").await;
    watching.expect("initial_state").await;
    let mut driver = Socket::connect(&s.driver_url(&b), "driver on B").await;
    let connected = driver.expect("connected").await;
    assert_eq!(
        connected["active_order"]["id"],
        order.as_str(),
        "the driver finds its order on B: {connected}"
    );
    driver
        .send_json(json!({"type": "location", "latitude": 52.5211, "longitude": 13.4111}))
        .await;
    assert_eq!(watching.until("driver_location").await["latitude"], 52.5211);
    s.driver_sets(&b, &order, "out_for_delivery").await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_bus_outage_ends_with_every_subscriber_resynced() {
    // This test brings its own Redis: it runs when the Redis tests are asked for.
    if !in_this_pass("scaleout_outage")
        || medex_redis::testing::server_url("scaleout_outage").is_none()
    {
        return;
    }
    let Some(database) = TestDatabase::create("scaleout_outage").await else {
        return;
    };
    assert!(PrivateRedis::available(), "redis-server is not installed");
    server_binary();
    let dir = tempfile::tempdir().unwrap();
    let mut redis = PrivateRedis::start(dir.path());
    let shared = Shared {
        redis_url: redis.url(),
        ..Shared::with_database(database)
    };
    let (a_process, b_process) = shared.start_pair(dir.path(), &[]);
    let (a, b) = (a_process.api(), b_process.api());
    let s = scene(&a, &b, "outage").await;
    let (order, token) = picked_up(&s, &a, &b).await;
    let dashboard_url = s.dashboard_url(&b);
    let tracker_url = b.ws_url(&format!("/ws/tracking/{token}"));
    let driver_url = s.driver_url(&a);
    let own_dashboard_url = s.dashboard_url(&a);
    let connect_all = || async {
        let mut dashboard = Socket::connect(&dashboard_url, "dashboard on B").await;
        dashboard.expect("initial_state").await;
        let mut tracker = Socket::connect(&tracker_url, "tracker on B").await;
        tracker.expect("initial_state").await;
        let mut own = Socket::connect(&own_dashboard_url, "dashboard on A").await;
        own.expect("initial_state").await;
        let mut driver = Socket::connect(&driver_url, "driver on A").await;
        driver.expect("connected").await;
        [dashboard, tracker, own, driver]
    };
    let mut sockets = connect_all().await;
    // The bus works: a position from A reaches B.
    sockets[3]
        .send_json(json!({"type": "location", "latitude": 52.5221, "longitude": 13.4121}))
        .await;
    assert_eq!(
        sockets[0].until("driver_location").await["latitude"],
        52.5221
    );

    // Redis dies: every subscriber on both instances is told to resync (1013), and health says
    // the bus is down.
    redis.stop();
    for socket in &mut sockets {
        let (code, _) = socket.closed().await;
        assert_eq!(code, CloseCode::Again);
    }
    for (name, server) in [("A", &a), ("B", &b)] {
        eventually(&format!("{name} reports the bus down"), || async {
            let health = server.public("/api/health").await;
            health.status.as_u16() == 503
                && health.json["status"] == "unhealthy"
                && health.json["bus"] == "unavailable"
                && health.json["storage"] == "ok"
        })
        .await;
    }
    // Writes and fixes go on meanwhile; subscribers reconnect and read a fresh state.
    let mut during = connect_all().await;
    during[3]
        .send_json(json!({"type": "location", "latitude": 52.5231, "longitude": 13.4131}))
        .await;
    s.driver_sets(&a, &order, "out_for_delivery").await;
    assert_eq!(
        during[2].until("driver_location").await["latitude"],
        52.5231
    );

    // Redis is back: both instances reconnect by themselves, and everyone connected while it
    // was gone is resynced again.
    redis.restart();
    for socket in &mut during {
        let (code, _) = socket.closed().await;
        assert_eq!(code, CloseCode::Again);
    }
    for (name, server) in [("A", &a), ("B", &b)] {
        eventually(&format!("{name} reports the bus back"), || async {
            let health = server.public("/api/health").await;
            health.status.as_u16() == 200 && health.json["bus"] == "ok"
        })
        .await;
    }
    // The fresh state shows what happened during the outage, and live updates cross again.
    let mut dashboard = Socket::connect(&dashboard_url, "dashboard on B, after").await;
    let state = dashboard.expect("initial_state").await;
    let text = state.to_string();
    assert!(
        text.contains("out_for_delivery") && text.contains("52.5231"),
        "the status and the position written during the outage: {state}"
    );
    let mut tracker = Socket::connect(&tracker_url, "tracker on B, after").await;
    assert_eq!(
        tracker.expect("initial_state").await["status"],
        "out_for_delivery"
    );
    let mut driver = Socket::connect(&driver_url, "driver on A, after").await;
    driver.expect("connected").await;
    driver
        .send_json(json!({"type": "location", "latitude": 52.5241, "longitude": 13.4141}))
        .await;
    assert_eq!(
        dashboard.until("driver_location").await["latitude"],
        52.5241
    );
    assert_eq!(tracker.until("driver_location").await["latitude"], 52.5241);
}
