//! Crashes: the example server runs as a child process while clients write through it, and is
//! killed with SIGKILL at arbitrary moments, several times, then restarted on the same data
//! directory (and, with `MEDEX_E2E_DATABASE_URL`, the same PostgreSQL database). Every write that was answered 2xx must be there with at least that state (the
//! one request in flight at the kill may or may not have landed), the indexes must agree with
//! the records (tracking token, pharmacy and customer order lists, status filters), drivers'
//! totals must match their delivered orders, and a rotated refresh token must stay revoked.

use std::collections::BTreeMap;
use std::path::Path;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use serde_json::{Value, json};

use crate::support::*;

/// Rounds of write, kill, restart, check.
const ROUNDS: u64 = 4;
/// Clients writing at once, each with its own driver.
const WRITERS: usize = 3;

/// The example server as a child process on `storage`, started for `round`.
struct Process;

impl Process {
    fn start(dir: &Path, storage: &Storage, round: u64) -> ChildServer {
        let mut variables: Vec<(String, String)> =
            base_variables(dir.join("data").to_str().unwrap())
                .into_iter()
                .collect();
        variables.extend(storage.variables().iter().cloned());
        ChildServer::start(dir, &variables, &format!("round {round}"))
    }
}

/// A small deterministic generator for kill moments (xorshift).
struct Dice(u64);

impl Dice {
    fn below(&mut self, n: u64) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0 % n
    }
}

/// A client of a server that may die at any moment: `None` once it is unreachable.
#[derive(Clone)]
struct Client {
    http: reqwest::Client,
    base: String,
}

impl Client {
    async fn call(
        &self,
        method: &str,
        path: &str,
        token: &str,
        body: Option<Value>,
    ) -> Option<Reply> {
        let method = reqwest::Method::from_bytes(method.as_bytes()).unwrap();
        let mut request = self
            .http
            .request(method, format!("{}{path}", self.base))
            .bearer_auth(token);
        if let Some(body) = body {
            request = request.json(&body);
        }
        // A dead server: refused, reset or cut off mid-answer.
        let response = request.send().await.ok()?;
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.ok()?;
        Some(Reply {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        })
    }
}

/// What a client was told about one order, and what it asked last.
#[derive(Debug, Clone)]
struct Known {
    tracking_token: String,
    order_number: String,
    /// The last status answered 2xx.
    acked: String,
    /// A status asked for and not (yet) answered.
    asked: Option<String>,
}

type Ledger = Arc<Mutex<BTreeMap<String, Known>>>;

struct Actors {
    admin: String,
    vendor: String,
    vendor_id: String,
    customer: String,
    /// (driver id, its token)
    drivers: Vec<(String, String)>,
}

async fn set_up(c: &Client) -> Actors {
    let s = &c.http;
    let post = |path: &'static str, token: Option<&str>, body: Value| {
        let mut request = s.post(format!("{}{path}", c.base)).json(&body);
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        async move {
            let r = Reply::read(request.send().await.expect("set-up request")).await;
            assert!(r.status.is_success(), "{path}: {}", r.text);
            r
        }
    };
    let login = |email: &'static str| {
        let post = &post;
        async move {
            post(
                "/api/auth/login",
                None,
                json!({"email": email, "password": PASSWORD}),
            )
            .await
            .str("access_token")
        }
    };
    post(
        "/api/vendors/register",
        None,
        json!({"email": "owner@corner.test", "password": PASSWORD,
               "business_name": "Corner Pharmacy", "address": "Alexanderplatz 1",
               "latitude": 52.5219, "longitude": 13.4132}),
    )
    .await;
    let vendor = login("owner@corner.test").await;
    let customer = post(
        "/api/auth/register",
        None,
        json!({"email": "ann@example.test", "password": PASSWORD, "full_name": "Ann"}),
    )
    .await
    .str("access_token");
    let me = c.call("GET", "/api/auth/me", &vendor, None).await.unwrap();
    let mut drivers = Vec::new();
    for (i, email) in ["d0@corner.test", "d1@corner.test", "d2@corner.test"]
        .into_iter()
        .enumerate()
        .take(WRITERS)
    {
        let id = post(
            "/api/drivers/register",
            Some(&vendor),
            json!({"email": email, "password": PASSWORD, "full_name": format!("Driver {i}"),
                   "vehicle_type": "scooter"}),
        )
        .await
        .str("driver_id");
        let token = login(email).await;
        c.call(
            "PATCH",
            &format!("/api/drivers/{id}/status"),
            &token,
            Some(json!({"status": "available"})),
        )
        .await
        .unwrap()
        .expect(200);
        drivers.push((id, token));
    }
    Actors {
        admin: login(ADMIN_EMAIL).await,
        vendor,
        vendor_id: me.str("vendor_id"),
        customer,
        drivers,
    }
}

/// Places and moves orders along until the server stops answering.
async fn write(c: Client, a: Arc<Actors>, writer: usize, ledger: Ledger) {
    let (driver, driver_token) = a.drivers[writer].clone();
    for n in 0.. {
        let Some(r) = c
            .call(
                "POST",
                "/api/orders",
                &a.customer,
                Some(order_body(&a.vendor_id)),
            )
            .await
        else {
            return;
        };
        r.expect(201);
        let id = r.str("id");
        ledger.lock().unwrap().insert(
            id.clone(),
            Known {
                tracking_token: r.str("tracking_token"),
                order_number: r.str("order_number"),
                acked: "pending".into(),
                asked: None,
            },
        );
        // Every third order is cancelled by its customer after acceptance; the others are
        // delivered.
        let steps: &[(&str, &str)] = if n % 3 == 2 {
            &[("vendor", "accepted"), ("customer", "cancelled")]
        } else {
            &[
                ("vendor", "accepted"),
                ("vendor", "driver_assigned"),
                ("driver", "picked_up"),
                ("driver", "out_for_delivery"),
                ("driver", "delivered"),
            ]
        };
        for (who, status) in steps {
            ledger.lock().unwrap().get_mut(&id).unwrap().asked = Some((*status).to_owned());
            let answer = match (*who, *status) {
                ("vendor", "driver_assigned") => {
                    c.call(
                        "POST",
                        &format!("/api/orders/{id}/assign-driver"),
                        &a.vendor,
                        Some(json!({"driver_id": driver})),
                    )
                    .await
                }
                ("customer", _) => {
                    c.call("DELETE", &format!("/api/orders/{id}"), &a.customer, None)
                        .await
                }
                (who, status) => {
                    let token = if who == "vendor" {
                        &a.vendor
                    } else {
                        &driver_token
                    };
                    c.call(
                        "PATCH",
                        &format!("/api/orders/{id}"),
                        token,
                        Some(json!({"status": status})),
                    )
                    .await
                }
            };
            let Some(r) = answer else { return };
            r.expect(200);
            let mut ledger = ledger.lock().unwrap();
            let known = ledger.get_mut(&id).unwrap();
            known.acked = (*status).to_owned();
            known.asked = None;
        }
    }
}

fn order_body(vendor_id: &str) -> Value {
    json!({
        "vendor_id": vendor_id, "delivery_address": "Torstrasse 1",
        "delivery_latitude": 52.5290, "delivery_longitude": 13.4010,
        "customer_name": "Ann", "customer_phone": "+49 1",
        "items": [{"name": "Ibuprofen 400", "quantity": 2}],
    })
}

/// Rotates a refresh token until the server stops answering: (rotated away, current, whether a
/// rotation of `current` was in flight).
async fn rotate(c: Client, first: String) -> (Option<String>, String, bool) {
    let (mut previous, mut current) = (None, first);
    loop {
        let answer = c
            .http
            .post(format!("{}/api/auth/refresh", c.base))
            .json(&json!({"refresh_token": current}))
            .send()
            .await;
        let Ok(response) = answer else {
            return (previous, current, true);
        };
        let Ok(bytes) = response.bytes().await else {
            return (previous, current, true);
        };
        let json: Value = serde_json::from_slice(&bytes).expect("a session");
        let next = json["refresh_token"].as_str().expect("a refresh token");
        previous = Some(std::mem::replace(&mut current, next.to_owned()));
    }
}

/// Every page of a list, following `cursor`.
async fn all_pages(c: &Client, path: &str, token: &str) -> Vec<Value> {
    let mut all = Vec::new();
    let mut cursor: Option<String> = None;
    loop {
        let sep = if path.contains('?') { '&' } else { '?' };
        let url = match &cursor {
            Some(cursor) => format!("{path}{sep}limit=200&cursor={cursor}"),
            None => format!("{path}{sep}limit=200"),
        };
        let r = c
            .call("GET", &url, token, None)
            .await
            .expect("the server answers");
        r.expect(200);
        let page = r.json.as_array().unwrap().clone();
        let full = page.len() == 200;
        cursor = page
            .last()
            .and_then(|o| o["id"].as_str())
            .map(str::to_owned);
        all.extend(page);
        if !full {
            return all;
        }
    }
}

/// Everything answered before the kill is there, and the indexes agree.
async fn check(
    c: &Client,
    a: &Actors,
    ledger: &BTreeMap<String, Known>,
    round: u64,
) -> BTreeMap<String, String> {
    let by_vendor: BTreeMap<String, Value> = all_pages(
        c,
        &format!("/api/vendors/{}/orders", a.vendor_id),
        &a.vendor,
    )
    .await
    .into_iter()
    .map(|o| (o["id"].as_str().unwrap().to_owned(), o))
    .collect();
    let by_customer: Vec<String> = all_pages(c, "/api/orders", &a.customer)
        .await
        .iter()
        .map(|o| o["id"].as_str().unwrap().to_owned())
        .collect();
    let mut stored_status = BTreeMap::new();
    for (id, known) in ledger {
        let case = format!("round {round}, order {id} ({known:?})");
        let r = c
            .call("GET", &format!("/api/orders/{id}"), &a.admin, None)
            .await
            .unwrap();
        assert_eq!(
            r.status.as_u16(),
            200,
            "{case}: an acknowledged order is gone"
        );
        let status = r.str("status");
        assert!(
            status == known.acked || known.asked.as_deref() == Some(status.as_str()),
            "{case}: stored as {status}"
        );
        let history: Vec<&str> = r.json["status_history"]
            .as_array()
            .unwrap()
            .iter()
            .map(|c| c["status"].as_str().unwrap())
            .collect();
        assert_eq!(history.last(), Some(&status.as_str()), "{case}");
        assert!(
            history.contains(&known.acked.as_str()),
            "{case}: {history:?}"
        );
        // The indexes: tracking token, the pharmacy's list, the customer's list, the status
        // filter.
        let view = c
            .call(
                "GET",
                &format!("/api/tracking/{}", known.tracking_token),
                "",
                None,
            )
            .await
            .unwrap();
        assert_eq!(view.status.as_u16(), 200, "{case}: tracking token lost");
        assert_eq!(
            view.json["order_number"],
            known.order_number.as_str(),
            "{case}"
        );
        assert_eq!(view.json["status"], status.as_str(), "{case}");
        let listed = by_vendor
            .get(id)
            .unwrap_or_else(|| panic!("{case}: not in the pharmacy's list"));
        assert_eq!(
            listed["status"],
            status.as_str(),
            "{case}: the list disagrees"
        );
        assert!(
            by_customer.contains(id),
            "{case}: not in the customer's list"
        );
        stored_status.insert(id.clone(), status);
    }
    for status in [
        "pending",
        "accepted",
        "driver_assigned",
        "picked_up",
        "out_for_delivery",
        "delivered",
        "cancelled",
    ] {
        let filtered = all_pages(
            c,
            &format!("/api/vendors/{}/orders?status={status}", a.vendor_id),
            &a.vendor,
        )
        .await;
        let listed: Vec<&str> = filtered.iter().map(|o| o["id"].as_str().unwrap()).collect();
        let expected: Vec<&str> = by_vendor
            .iter()
            .filter(|(_, o)| o["status"] == status)
            .map(|(id, _)| id.as_str())
            .collect();
        let mut listed_sorted = listed.clone();
        listed_sorted.sort();
        assert_eq!(
            listed_sorted, expected,
            "round {round}: the {status} filter disagrees"
        );
    }
    // Each driver: busy with the one active order that names it, credited for each delivery.
    for (driver, _) in &a.drivers {
        let r = c
            .call("GET", &format!("/api/drivers/{driver}"), &a.vendor, None)
            .await
            .unwrap();
        r.expect(200);
        let mine = by_vendor
            .values()
            .filter(|o| o["driver_id"] == driver.as_str());
        let delivered: Vec<&Value> = mine
            .clone()
            .filter(|o| o["status"] == "delivered")
            .collect();
        let active: Vec<&Value> = mine
            .filter(|o| {
                ["driver_assigned", "picked_up", "out_for_delivery"]
                    .contains(&o["status"].as_str().unwrap())
            })
            .collect();
        let case = format!("round {round}, driver {driver}");
        assert_eq!(r.json["total_deliveries"], delivered.len(), "{case}");
        let fees: f64 = delivered
            .iter()
            .map(|o| o["delivery_fee"].as_f64().unwrap())
            .sum();
        assert!(
            (r.json["total_earnings"].as_f64().unwrap() - fees).abs() < 0.005,
            "{case}"
        );
        assert!(active.len() <= 1, "{case}: on {} orders", active.len());
        assert_eq!(
            r.json["status"] == "busy",
            active.len() == 1,
            "{case}: {}",
            r.text
        );
    }
    stored_status
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn acknowledged_writes_survive_sigkill() {
    server_binary();
    let dir = tempfile::tempdir().unwrap();
    // One database for every round: the restarted server finds what the killed one wrote.
    let storage = Storage::new().await;
    let mut dice = Dice(0x9E37_79B9_7F4A_7C15);
    let ledger: Ledger = Arc::default();
    let mut process = Process::start(dir.path(), &storage, 0);
    let mut client = Client {
        http: http_client(),
        base: format!("http://{}", process.addr),
    };
    let actors = Arc::new(set_up(&client).await);
    let mut refresh = client
        .http
        .post(format!("{}/api/auth/login", client.base))
        .json(&json!({"email": "ann@example.test", "password": PASSWORD}))
        .send()
        .await
        .unwrap()
        .json::<Value>()
        .await
        .unwrap()["refresh_token"]
        .as_str()
        .unwrap()
        .to_owned();
    let mut total_orders = 0;
    for round in 0..ROUNDS {
        // Write from several clients; kill the server at an arbitrary moment.
        let writers: Vec<_> = (0..WRITERS)
            .map(|w| tokio::spawn(write(client.clone(), actors.clone(), w, ledger.clone())))
            .collect();
        let rotation = tokio::spawn(rotate(client.clone(), refresh.clone()));
        tokio::time::sleep(Duration::from_millis(150 + dice.below(750))).await;
        process.kill();
        for writer in writers {
            writer.await.expect("a writer panicked");
        }
        let (rotated, current, in_flight) = rotation.await.unwrap();

        process = Process::start(dir.path(), &storage, round + 1);
        client.base = format!("http://{}", process.addr);
        let known = ledger.lock().unwrap().clone();
        assert!(
            known.len() > total_orders,
            "round {round}: no order was written"
        );
        total_orders = known.len();
        let stored = check(&client, &actors, &known, round).await;

        // A rotated refresh token stays revoked; the last one answered works unless its own
        // rotation was cut off by the kill.
        if let Some(rotated) = rotated {
            let r = client
                .http
                .post(format!("{}/api/auth/refresh", client.base))
                .json(&json!({"refresh_token": rotated}))
                .send()
                .await
                .unwrap();
            assert_eq!(
                r.status().as_u16(),
                401,
                "round {round}: a rotated token came back"
            );
        }
        let r = client
            .http
            .post(format!("{}/api/auth/refresh", client.base))
            .json(&json!({"refresh_token": current}))
            .send()
            .await
            .unwrap();
        let status = r.status().as_u16();
        if !in_flight {
            assert_eq!(
                status, 200,
                "round {round}: the last refresh token was lost"
            );
        }
        refresh = if status == 200 {
            r.json::<Value>().await.unwrap()["refresh_token"]
                .as_str()
                .unwrap()
                .to_owned()
        } else {
            let r = client
                .call(
                    "POST",
                    "/api/auth/login",
                    "",
                    Some(json!({"email": "ann@example.test", "password": PASSWORD})),
                )
                .await
                .unwrap();
            r.expect(200);
            r.str("refresh_token")
        };

        // Settle what the kill left half-done, so every driver is free for the next round.
        let stuck: Vec<String> = {
            let mut book = ledger.lock().unwrap();
            for (id, known) in book.iter_mut() {
                known.acked = stored[id].clone();
                known.asked = None;
            }
            book.iter()
                .filter(|(_, k)| {
                    ["driver_assigned", "picked_up", "out_for_delivery"].contains(&k.acked.as_str())
                })
                .map(|(id, _)| id.clone())
                .collect()
        };
        for id in stuck {
            client
                .call("DELETE", &format!("/api/orders/{id}"), &actors.admin, None)
                .await
                .unwrap()
                .expect(200);
            ledger.lock().unwrap().get_mut(&id).unwrap().acked = "cancelled".into();
        }
    }
    process.kill();
}
