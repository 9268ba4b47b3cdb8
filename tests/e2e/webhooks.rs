//! Outgoing webhooks end to end: a receiver on loopback (so the servers here run with
//! `MEDEX_WEBHOOK_ALLOW_PRIVATE=true`, except where the address rule itself is tested) that
//! fails, times out, answers slowly and recovers; signatures checked by an independent
//! implementation (Python's `hmac`); the order of one order's events; a crash with deliveries
//! queued; and what the address rule refuses.

use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use axum::body::Bytes;
use axum::http::{HeaderMap, StatusCode};
use axum::response::IntoResponse;
use medex_core::integrations::Webhook;
use medex_core::model::{VendorId, WebhookId};
use medex_core::store::Write;
use serde_json::{Value, json};
use tokio::sync::mpsc;

use crate::support::*;

/// How the receiver answers its next request.
#[derive(Debug, Clone, Copy)]
enum Answer {
    Ok,
    Fail,
    /// Longer than the server's attempt timeout.
    Hang,
    /// Slower than usual but within the timeout.
    Slow,
    Redirect,
}

/// One request the receiver got, and how it answered.
#[derive(Debug, Clone)]
struct Received {
    headers: HeaderMap,
    body: Bytes,
    answered: Answer,
}

impl Received {
    fn header(&self, name: &str) -> String {
        self.headers
            .get(name)
            .map(|v| v.to_str().unwrap().to_owned())
            .unwrap_or_default()
    }
    fn json(&self) -> Value {
        serde_json::from_slice(&self.body).unwrap()
    }
}

/// The receiver's script, where it reports, and where it redirects to.
type ReceiverState = (
    Arc<Mutex<Vec<Answer>>>,
    mpsc::UnboundedSender<Received>,
    Option<String>,
);

/// A webhook receiver on 127.0.0.1: answers from a script (then `Ok`), reports each request.
struct Receiver {
    url: String,
    script: Arc<Mutex<Vec<Answer>>>,
    got: mpsc::UnboundedReceiver<Received>,
}

impl Receiver {
    async fn start(script: Vec<Answer>, redirect_to: Option<String>) -> Self {
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let url = format!("http://{}/hook", listener.local_addr().unwrap());
        let script = Arc::new(Mutex::new(script));
        let (tx, got) = mpsc::unbounded_channel();
        let state = (script.clone(), tx, redirect_to);
        let app = axum::Router::new()
            .route(
                "/hook",
                axum::routing::post(
                    |axum::extract::State((script, tx, redirect)): axum::extract::State<
                        ReceiverState,
                    >,
                     headers: HeaderMap,
                     body: Bytes| async move {
                        let answer = {
                            let mut s = script.lock().unwrap();
                            if s.is_empty() {
                                Answer::Ok
                            } else {
                                s.remove(0)
                            }
                        };
                        let _ = tx.send(Received {
                            headers,
                            body,
                            answered: answer,
                        });
                        match answer {
                            Answer::Ok => StatusCode::NO_CONTENT.into_response(),
                            Answer::Fail => StatusCode::INTERNAL_SERVER_ERROR.into_response(),
                            Answer::Hang => {
                                tokio::time::sleep(Duration::from_secs(5)).await;
                                StatusCode::OK.into_response()
                            }
                            Answer::Slow => {
                                tokio::time::sleep(Duration::from_millis(300)).await;
                                StatusCode::OK.into_response()
                            }
                            Answer::Redirect => (
                                StatusCode::FOUND,
                                [("location", redirect.unwrap_or_default())],
                            )
                                .into_response(),
                        }
                    },
                ),
            )
            .with_state(state);
        tokio::spawn(async move { axum::serve(listener, app).await });
        Self { url, script, got }
    }

    async fn next(&mut self) -> Received {
        tokio::time::timeout(HANG, self.got.recv())
            .await
            .expect("a webhook request within the hang limit")
            .expect("the receiver runs")
    }
}

/// Checks `X-MedEx-Signature` with Python's standard library, an implementation independent of
/// the server's: `false` only for a wrong signature; `None` when python3 is missing.
fn python_verifies(secret: &str, header: &str, body: &[u8]) -> Option<bool> {
    // The same lines as the README's receiver example.
    let script = r#"
import hashlib, hmac, os, sys, time
secret, header = os.environ["SECRET"].encode(), os.environ["SIGNATURE"]
body = sys.stdin.buffer.read()
parts = dict(p.split("=", 1) for p in header.split(","))
expected = hmac.new(secret, parts["t"].encode() + b"." + body, hashlib.sha256).hexdigest()
fresh = abs(time.time() - int(parts["t"])) < 300
sys.exit(0 if hmac.compare_digest(expected, parts["v1"]) and fresh else 1)
"#;
    let mut child = match std::process::Command::new("python3")
        .arg("-c")
        .arg(script)
        .env("SECRET", secret)
        .env("SIGNATURE", header)
        .stdin(std::process::Stdio::piped())
        .spawn()
    {
        Ok(child) => child,
        Err(_) => {
            println!("python3 is not installed: skipping the independent signature check");
            return None;
        }
    };
    use std::io::Write as _;
    child.stdin.take().unwrap().write_all(body).unwrap();
    Some(child.wait().unwrap().success())
}

const FAST: &[(&str, &str)] = &[
    ("MEDEX_WEBHOOK_ALLOW_PRIVATE", "true"),
    ("MEDEX_WEBHOOK_TIMEOUT_MS", "1000"),
    ("MEDEX_WEBHOOK_RETRY_BASE_MS", "50"),
];

async fn register(s: &TestServer, vendor: &Pharmacy, url: &str, events: Value) -> (String, String) {
    let r = s
        .post(
            &format!("/api/vendors/{}/webhooks", vendor.id),
            Some(&vendor.owner.token),
            json!({"url": url, "events": events}),
        )
        .await;
    r.expect(201);
    (r.str("id"), r.str("secret"))
}

async fn deliveries(s: &TestServer, vendor: &Pharmacy, webhook: &str) -> Vec<Value> {
    let r = s
        .get(
            &format!("/api/vendors/{}/webhooks/{webhook}/deliveries", vendor.id),
            &vendor.owner.token,
        )
        .await;
    r.expect(200);
    r.json.as_array().unwrap().clone()
}

/// Polls the delivery log until `done` holds of it (the log is written after the receiver has
/// answered, so there is no signal to await but the log itself).
async fn log_until(
    s: &TestServer,
    vendor: &Pharmacy,
    webhook: &str,
    done: impl Fn(&[Value]) -> bool,
) -> Vec<Value> {
    let started = std::time::Instant::now();
    loop {
        let log = deliveries(s, vendor, webhook).await;
        if done(&log) {
            return log;
        }
        assert!(
            started.elapsed() < HANG,
            "the delivery log never got there: {log:?}"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_are_signed_retried_through_failures_and_timeouts_and_kept_in_order() {
    let w = World::on(TestServer::start_with(FAST).await).await;
    let s = &w.server;
    let mut receiver = Receiver::start(vec![Answer::Fail, Answer::Hang, Answer::Slow], None).await;
    let (webhook, secret) = register(s, &w.vendor, &receiver.url, json!(["*"])).await;
    let (order, _) = w.order().await;
    // The pharmacy accepts at once: its event must wait until `order.created` is through.
    w.set_status(&order, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);

    let mut seen = Vec::new();
    while seen.len() < 4 {
        seen.push(receiver.next().await);
    }
    let kinds: Vec<String> = seen.iter().map(|r| r.header("x-medex-event")).collect();
    assert_eq!(
        kinds,
        [
            "order.created",
            "order.created",
            "order.created",
            "order.status_changed"
        ],
        "a failed and a timed-out attempt are retried, and the next event of the order waits"
    );
    let first = seen[0].header("x-medex-delivery");
    assert!(
        seen[..3]
            .iter()
            .all(|r| r.header("x-medex-delivery") == first),
        "one X-MedEx-Delivery on every retry"
    );
    assert_eq!(seen[0].body, seen[2].body, "a retry sends the same body");
    let body = seen[0].json();
    assert_eq!(body["type"], "order.created");
    assert_eq!(body["data"]["id"], order.as_str());
    assert!(
        body["data"]["handover_code"].is_string(),
        "the shop gets the handover code"
    );
    assert!(body["id"].is_string() && body["created_at"].is_string());
    let changed = seen[3].json();
    assert_eq!(changed["data"]["status"], "accepted");
    for r in &seen {
        let header = r.header("x-medex-signature");
        assert!(
            header.starts_with("t=") && header.contains(",v1="),
            "{header}"
        );
        if let Some(ok) = python_verifies(&secret, &header, &r.body) {
            assert!(ok, "python3 rejects {header}");
        }
        if let Some(ok) = python_verifies("not-the-secret", &header, &r.body) {
            assert!(!ok, "a wrong secret must not verify");
        }
    }

    let log = log_until(s, &w.vendor, &webhook, |log| {
        log.len() == 2 && log.iter().all(|d| d["state"] == "delivered")
    })
    .await;
    let created = log.iter().find(|d| d["event"] == "order.created").unwrap();
    assert_eq!(created["id"], first.as_str());
    assert_eq!(created["attempts"], 3);
    let attempts = created["log"].as_array().unwrap();
    assert_eq!(attempts[0]["status"], 500);
    assert_eq!(attempts[1]["status"], Value::Null);
    assert_eq!(attempts[1]["error"], "timed out");
    assert_eq!(attempts[2]["status"], 200);
    assert!(attempts.iter().all(|a| a["blocked"] == false));
    assert!(!serde_json::to_string(&log).unwrap().contains(&secret));

    // The metrics count what happened.
    let metrics = s.public("/metrics").await;
    assert!(
        metrics.text.contains("medex_webhook_deliveries_sent_total"),
        "{}",
        metrics.text
    );
    assert!(
        metrics
            .text
            .contains("medex_webhook_deliveries_retried_total")
    );
    assert!(receiver.script.lock().unwrap().is_empty());
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_endpoint_gets_only_the_events_it_asked_for_and_nothing_after_removal() {
    let w = World::on(TestServer::start_with(FAST).await).await;
    let s = &w.server;
    let mut receiver = Receiver::start(vec![], None).await;
    let (webhook, _) = register(s, &w.vendor, &receiver.url, json!(["order.status_changed"])).await;
    let (order, _) = w.order().await;
    w.set_status(&order, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);
    let got = receiver.next().await;
    assert_eq!(got.header("x-medex-event"), "order.status_changed");
    // Another pharmacy's orders never reach this endpoint.
    let other = w
        .server
        .post(
            "/api/orders",
            Some(&w.customer.token),
            json!({
                "vendor_id": w.other_vendor.id, "delivery_address": "9 Elm St",
                "delivery_latitude": 52.61, "delivery_longitude": 13.41,
                "customer_name": "Ann", "customer_phone": "+49 30 1234",
                "items": [{"name": "Ibuprofen", "quantity": 1}]
            }),
        )
        .await;
    other.expect(201);
    s.call(
        "DELETE",
        &format!("/api/vendors/{}/webhooks/{webhook}", w.vendor.id),
        Some(&w.vendor.owner.token),
        None,
    )
    .await
    .expect(204);
    let (second, _) = w.order().await;
    w.set_status(&second, &w.vendor.owner.token, "accepted")
        .await
        .expect(200);
    // Nothing is queued for a removed endpoint: its log holds the one delivery made before.
    let id: WebhookId = webhook.parse().unwrap();
    let log = s
        .medex()
        .store()
        .deliveries(id, medex_core::store::Page::first(10))
        .await
        .unwrap();
    assert_eq!(log.len(), 1, "{log:?}");
    w.server.stop().await;
}

/// Stores a webhook straight into the store, past the registration checks, as if it had been
/// registered while the rule allowed it.
async fn planted(s: &TestServer, vendor: &Pharmacy, url: &str) -> String {
    let id = WebhookId::from_uuid(uuid::Uuid::now_v7());
    s.medex()
        .store()
        .commit(vec![Write::Webhook(Webhook {
            id,
            vendor_id: vendor.id.parse::<VendorId>().unwrap(),
            url: url.to_owned(),
            events: vec![],
            all: true,
            secret: "whsec_planted".into(),
            created_at: chrono::Utc::now(),
            secret_rotated_at: None,
            deleted_at: None,
            version: 1,
        })])
        .await
        .unwrap();
    id.to_string()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn private_destinations_are_blocked_at_every_attempt_and_redirects_are_not_followed() {
    // A canary that counts whoever connects to it.
    let canary = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let port = canary.local_addr().unwrap().port();
    let hits = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let counter = hits.clone();
    tokio::spawn(async move {
        while canary.accept().await.is_ok() {
            counter.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
        }
    });
    let w = World::on(
        TestServer::start_with(&[
            ("MEDEX_WEBHOOK_TIMEOUT_MS", "1000"),
            ("MEDEX_WEBHOOK_RETRY_BASE_MS", "50"),
        ])
        .await,
    )
    .await;
    let s = &w.server;
    // Registration refuses plain http and literal private addresses with the switch off.
    for url in [
        format!("http://127.0.0.1:{port}/hook"),
        format!("https://127.0.0.1:{port}/hook"),
        format!("https://localhost:{port}/hook"),
        format!("https://[::ffff:127.0.0.1]:{port}/hook"),
    ] {
        w.register_webhook(&url).await.expect(422);
    }
    // Endpoints that got in anyway (registered while the switch was on) are refused at sending:
    // a name resolving to 127.0.0.1, a literal loopback address, plain http.
    let by_name = planted(s, &w.vendor, &format!("https://localhost:{port}/hook")).await;
    let literal = planted(s, &w.vendor, &format!("https://127.0.0.1:{port}/hook")).await;
    let plain = planted(s, &w.vendor, &format!("http://localhost:{port}/hook")).await;
    w.order().await;
    for webhook in [&by_name, &literal, &plain] {
        let log = log_until(s, &w.vendor, webhook, |log| {
            log.first()
                .and_then(|d| d["log"].as_array())
                .is_some_and(|a| a.len() >= 2)
        })
        .await;
        let attempts = log[0]["log"].as_array().unwrap();
        assert!(
            attempts
                .iter()
                .all(|a| a["blocked"] == true && a["status"].is_null()),
            "{webhook}: {attempts:?}"
        );
        assert_eq!(log[0]["state"], "pending", "blocked attempts are retried");
    }
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "nothing reached the canary"
    );
    w.server.stop().await;

    // With the switch on, a redirect to the canary is recorded, not followed.
    let w = World::on(TestServer::start_with(FAST).await).await;
    let s = &w.server;
    let mut receiver = Receiver::start(
        vec![Answer::Redirect],
        Some(format!("http://127.0.0.1:{port}/elsewhere")),
    )
    .await;
    let (webhook, _) = register(s, &w.vendor, &receiver.url, json!(["*"])).await;
    w.order().await;
    assert!(matches!(receiver.next().await.answered, Answer::Redirect));
    let again = receiver.next().await;
    assert!(
        matches!(again.answered, Answer::Ok),
        "the redirect counts as a failure and is retried"
    );
    let log = log_until(s, &w.vendor, &webhook, |log| log[0]["state"] == "delivered").await;
    assert_eq!(log[0]["log"][0]["status"], 302);
    assert_eq!(
        hits.load(std::sync::atomic::Ordering::SeqCst),
        0,
        "the redirect was not followed"
    );
    w.server.stop().await;
}

fn child(dir: &Path, storage: &Storage, dispatch: bool, label: &str) -> ChildServer {
    let mut variables: Vec<(String, String)> = base_variables(dir.join("data").to_str().unwrap())
        .into_iter()
        .collect();
    variables.extend(storage.variables().iter().cloned());
    variables.extend(FAST.iter().map(|(k, v)| ((*k).to_owned(), (*v).to_owned())));
    variables.push(("MEDEX_WEBHOOK_DISPATCH".into(), dispatch.to_string()));
    ChildServer::start(dir, &variables, label)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deliveries_queued_at_a_crash_are_sent_after_the_restart() {
    let dir = tempfile::tempdir().unwrap();
    let storage = Storage::new().await;
    let mut receiver = Receiver::start(vec![], None).await;
    // The first run only queues: its dispatcher is off, so every delivery is pending at the kill.
    let mut first = child(dir.path(), &storage, false, "queue");
    let w = World::on(first.api()).await;
    let (webhook, _) = register(
        &w.server,
        &w.vendor,
        &receiver.url,
        json!(["order.created"]),
    )
    .await;
    let mut orders = Vec::new();
    for _ in 0..3 {
        orders.push(w.order().await.0);
    }
    let queued = deliveries(&w.server, &w.vendor, &webhook).await;
    assert_eq!(queued.len(), 3);
    assert!(queued.iter().all(|d| d["state"] == "pending"));
    first.kill();

    let second = child(dir.path(), &storage, true, "resume");
    let s = second.api();
    let mut sent = Vec::new();
    while sent.len() < 3 {
        let got = receiver.next().await;
        sent.push((
            got.header("x-medex-delivery"),
            got.json()["data"]["id"].clone(),
        ));
    }
    for d in &queued {
        assert!(
            sent.iter()
                .any(|(id, order)| id == d["id"].as_str().unwrap() && order == &d["order_id"]),
            "{d} was sent after the restart with its own X-MedEx-Delivery"
        );
    }
    let token = s
        .login(&w.vendor.owner.email, PASSWORD)
        .await
        .str("access_token");
    let vendor = Pharmacy {
        owner: Who {
            token,
            ..w.vendor.owner.clone()
        },
        id: w.vendor.id.clone(),
    };
    log_until(&s, &vendor, &webhook, |log| {
        log.len() == 3 && log.iter().all(|d| d["state"] == "delivered")
    })
    .await;
    drop(second);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_instances_on_one_database_send_each_delivery_once() {
    let storage = Storage::new().await;
    if !storage.is_postgres() {
        println!("two dispatching instances need {E2E_DATABASE_URL}: skipped on sled");
        return;
    }
    let (dir_a, dir_b) = (tempfile::tempdir().unwrap(), tempfile::tempdir().unwrap());
    let mut receiver = Receiver::start(vec![], None).await;
    let a = child(dir_a.path(), &storage, true, "a");
    let b = child(dir_b.path(), &storage, true, "b");
    let w = World::on(a.api()).await;
    let (webhook, _) = register(&w.server, &w.vendor, &receiver.url, json!(["*"])).await;
    // Orders placed through both instances; both dispatchers look at one queue.
    let through_b = b.api();
    for i in 0..10 {
        let via = if i % 2 == 0 { &w.server } else { &through_b };
        via.post("/api/orders", Some(&w.customer.token), w.order_body())
            .await
            .expect(201);
    }
    let mut ids = std::collections::BTreeSet::new();
    while ids.len() < 10 {
        ids.insert(receiver.next().await.header("x-medex-delivery"));
    }
    log_until(&w.server, &w.vendor, &webhook, |log| {
        log.len() == 10 && log.iter().all(|d| d["state"] == "delivered")
    })
    .await;
    // Every delivery is recorded as delivered: whatever was sent has been received by now.
    let mut extra = 0;
    while receiver.got.try_recv().is_ok() {
        extra += 1;
    }
    assert_eq!(extra, 0, "a delivery was sent twice");
    drop((a, b));
}
