//! The findings of a black-box attack round against the example server, one test each, named
//! after its finding (numbered as reported). Each was written to fail before its fix.

use std::time::Duration;

use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
use tokio::net::TcpStream;

use crate::support::*;

/// Reads until the server closes the connection (or `HANG` passes: then it never did).
async fn read_until_closed(stream: &mut TcpStream) -> Vec<u8> {
    let mut seen = Vec::new();
    let mut buf = [0u8; 4096];
    loop {
        match tokio::time::timeout(HANG, stream.read(&mut buf)).await {
            Ok(Ok(0)) | Ok(Err(_)) => return seen,
            Ok(Ok(n)) => seen.extend_from_slice(&buf[..n]),
            Err(_) => panic!("the server kept the connection open past {HANG:?}"),
        }
    }
}

/// A complete request on a new connection; the answer's status line.
async fn status_line(s: &TestServer, request: &str) -> String {
    let mut stream = TcpStream::connect(s.addr).await.expect("connect");
    stream.write_all(request.as_bytes()).await.unwrap();
    let answer = read_until_closed(&mut stream).await;
    String::from_utf8_lossy(&answer)
        .lines()
        .next()
        .unwrap_or("")
        .to_owned()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_01_slow_connections_are_closed_and_open_connections_are_capped() {
    // Half a request line, then nothing: closed once the header timeout passes.
    let s = TestServer::start_with(&[("MEDEX_HEADER_TIMEOUT_SECS", "1")]).await;
    let mut slow = TcpStream::connect(s.addr).await.unwrap();
    slow.write_all(b"GET /api/hea").await.unwrap();
    read_until_closed(&mut slow).await;
    // A kept-alive connection that goes quiet after its request is closed alike.
    let mut idle = TcpStream::connect(s.addr).await.unwrap();
    idle.write_all(b"GET /api/health HTTP/1.1\r\nHost: e2e\r\n\r\n")
        .await
        .unwrap();
    let answer = read_until_closed(&mut idle).await;
    assert!(
        String::from_utf8_lossy(&answer).starts_with("HTTP/1.1 200"),
        "the request itself is answered"
    );
    s.stop().await;

    // With three connections open, a fourth is answered 503 in the error format and closed.
    let s = TestServer::start_with(&[("MEDEX_MAX_CONNECTIONS", "3")]).await;
    let mut held = Vec::new();
    for _ in 0..3 {
        let mut stream = TcpStream::connect(s.addr).await.unwrap();
        stream
            .write_all(b"GET /api/health HTTP/1.1\r\nHost: e2e\r\n\r\n")
            .await
            .unwrap();
        let mut first = [0u8; 12];
        stream.read_exact(&mut first).await.unwrap();
        assert_eq!(&first, b"HTTP/1.1 200", "within the limit");
        held.push(stream);
    }
    let mut over = TcpStream::connect(s.addr).await.unwrap();
    let refusal = String::from_utf8_lossy(&read_until_closed(&mut over).await).into_owned();
    assert!(refusal.starts_with("HTTP/1.1 503"), "{refusal}");
    let body = refusal.split_once("\r\n\r\n").map(|(_, b)| b).unwrap_or("");
    let json: serde_json::Value = serde_json::from_str(body).expect("a JSON body");
    assert_eq!(json["code"], "server_busy");
    // When one leaves, a new connection is served again.
    held.pop();
    let mut waited = Duration::ZERO;
    loop {
        let line = status_line(
            &s,
            "GET /api/health HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n",
        )
        .await;
        if line.starts_with("HTTP/1.1 200") {
            break;
        }
        assert!(line.starts_with("HTTP/1.1 503"), "{line}");
        assert!(waited < HANG, "the freed place was never given again");
        tokio::time::sleep(Duration::from_millis(20)).await;
        waited += Duration::from_millis(20);
    }
    drop(held);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_15_data_files_are_private_to_the_server_account() {
    use std::os::unix::fs::PermissionsExt as _;
    let s = TestServer::start().await;
    // Something in every kind of file: the database, the generated secret.
    s.public("/api/health").await.expect(200);
    let mut pending = vec![s.dir.path().to_path_buf()];
    let mut files = 0;
    while let Some(dir) = pending.pop() {
        let mode = std::fs::metadata(&dir).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o700, "{} is {mode:o}", dir.display());
        for entry in std::fs::read_dir(&dir).unwrap().flatten() {
            let meta = entry.metadata().unwrap();
            if meta.is_dir() {
                pending.push(entry.path());
            } else {
                files += 1;
                let mode = meta.permissions().mode() & 0o777;
                assert_eq!(mode, 0o600, "{} is {mode:o}", entry.path().display());
            }
        }
    }
    // With PostgreSQL neither the database, the secret nor the uploads are files here.
    assert!(
        s.uses_postgres() || files >= 2,
        "the database and the secret were checked"
    );
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_19_metrics_can_need_a_token_or_move_to_their_own_address() {
    let token = "metrics-token-0123456789";
    let s = TestServer::start_with(&[("MEDEX_METRICS_TOKEN", token)]).await;
    let anonymous = s.public("/metrics").await;
    anonymous.expect(401);
    assert_eq!(anonymous.json["code"], "unauthenticated");
    s.get("/metrics", "a-wrong-token-of-some-length")
        .await
        .expect(401);
    let metrics = s.get("/metrics", token).await;
    metrics.expect(200);
    assert!(metrics.text.contains("medex_http_requests_total"));
    s.stop().await;

    let s = TestServer::start_with(&[("MEDEX_METRICS_ADDR", "127.0.0.1:0")]).await;
    s.public("/metrics").await.expect(404);
    let own = s.metrics_addr().expect("a metrics address");
    let metrics = http_client()
        .get(format!("http://{own}/metrics"))
        .send()
        .await
        .unwrap();
    assert_eq!(metrics.status(), 200);
    assert!(
        metrics
            .text()
            .await
            .unwrap()
            .contains("medex_http_requests_total")
    );
    s.stop().await;
}

/// Every cell of a CSV answer as a spreadsheet splitting on any of `,;|` and tabs would see it.
fn cells_split_every_way(csv: &str) -> Vec<String> {
    csv.split([',', ';', '|', '\t', '\n'])
        .map(|cell| cell.trim().trim_matches('"').trim().to_owned())
        .collect()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_04_csv_cells_cannot_start_a_formula_after_any_delimiter() {
    let w = World::new().await;
    let s = &w.server;
    let mut body = w.order_body();
    body["customer_name"] = serde_json::json!("Ann;=1+1;Patient");
    body["delivery_address"] = serde_json::json!("Torstrasse 1|@SUM(A1), Berlin");
    body["items"] = serde_json::json!([{"name": "Aspirin\t+cmd", "quantity": 1}]);
    s.post("/api/orders", Some(&w.customer.token), body)
        .await
        .expect(201);
    let today = chrono::Utc::now().date_naive();
    let tomorrow = today.succ_opt().unwrap();
    let export = s
        .raw(
            "POST",
            &format!(
                "/api/vendors/{}/export-csv?from={today}T00:00:00Z&to={tomorrow}T00:00:00Z",
                w.vendor.id
            ),
            Some(&w.vendor.owner.token),
            &[],
            None,
        )
        .await;
    export.expect(200);
    assert!(export.text.contains("Ann;'=1+1;Patient"), "{}", export.text);
    for cell in cells_split_every_way(&export.text) {
        assert!(
            !cell.starts_with(['=', '+', '-', '@']),
            "a spreadsheet would run {cell:?} in {}",
            export.text
        );
    }
    // Every field is quoted, so no spreadsheet splits a cell on a character inside it.
    let header = export.text.lines().next().unwrap();
    assert!(
        header.starts_with("\"order_number\",\"status\""),
        "{header}"
    );
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_12_look_alike_and_invisible_e_mail_addresses_are_refused() {
    let s = TestServer::start().await;
    s.customer("anna@example.test", "Anna", "+1 555").await;
    for lookalike in [
        "\u{430}nna@example.test",   // Cyrillic а
        "anna\u{200b}@example.test", // zero-width space
        "an\u{200d}na@example.test", // zero-width joiner
        "anna@ex\u{430}mple.test",   // Cyrillic а in the domain
        "anna@example.test\u{feff}", // byte order mark
    ] {
        let r = s
            .post(
                "/api/auth/register",
                None,
                serde_json::json!({"email": lookalike, "password": PASSWORD, "full_name": "Mallory"}),
            )
            .await;
        r.expect(422);
        assert_eq!(r.json["errors"][0]["field"], "email", "{lookalike:?}");
    }
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_13_answers_do_not_tell_which_pharmacies_exist_or_confirm_passwords() {
    let w = World::new().await;
    let s = &w.server;
    // The webhook: an unknown pharmacy, one without a secret and a wrong signature alike.
    let body = WC_ORDER.as_bytes();
    let unknown = s
        .webhook(
            "01890000-0000-7000-8000-000000000000",
            "any-secret-0123456789",
            body,
        )
        .await;
    let no_secret = s.webhook(&w.vendor.id, "any-secret-0123456789", body).await;
    s.webhook_secret(&w.vendor, "Wq8v3kZ1pT6xN0rL5yB9").await;
    let wrong = s
        .webhook(&w.vendor.id, "another-secret-0123456789", body)
        .await;
    for reply in [&unknown, &no_secret, &wrong] {
        reply.expect(401);
        assert_eq!(reply.text, wrong.text, "answered alike");
    }
    // Login: the right password of a deactivated account is refused as a wrong one is.
    s.patch(
        &format!("/api/admin/users/{}", w.other_customer.user_id),
        &w.admin.token,
        serde_json::json!({"is_active": false}),
    )
    .await
    .expect(200);
    let right = s.login(&w.other_customer.email, PASSWORD).await;
    let wrong = s.login(&w.other_customer.email, "not-the-password").await;
    right.expect(401);
    wrong.expect(401);
    assert_eq!(
        right.text, wrong.text,
        "the answer never confirms a password"
    );
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_17_guessable_webhook_secrets_are_refused() {
    let w = World::new().await;
    let s = &w.server;
    for weak in ["aaaaaaaaaaaaaaaa", "abcdabcdabcdabcd", "0123456789012345"] {
        let r = s
            .patch(
                &format!("/api/vendors/{}", w.vendor.id),
                &w.vendor.owner.token,
                serde_json::json!({"woocommerce_webhook_secret": weak}),
            )
            .await;
        r.expect(422);
        assert_eq!(r.json["errors"][0]["field"], "woocommerce_webhook_secret");
    }
    s.webhook_secret(&w.vendor, "Wq8v3kZ1pT6xN0rL5yB9").await;
    w.server.stop().await;
}

/// An HTTP client whose connections come from `address` (any 127.x.y.z reaches the server).
fn client_from(address: [u8; 4]) -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .local_address(std::net::IpAddr::from(address))
        .timeout(HANG)
        .build()
        .unwrap()
}

async fn login_from(client: &reqwest::Client, s: &TestServer, email: &str, password: &str) -> u16 {
    client
        .post(s.url("/api/auth/login"))
        .json(&serde_json::json!({"email": email, "password": password}))
        .send()
        .await
        .unwrap()
        .status()
        .as_u16()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_02_a_guessing_address_is_refused_without_locking_the_owner_out() {
    let w = World::new().await;
    let s = &w.server;
    let attacker = client_from([127, 0, 0, 2]);
    let owner = client_from([127, 0, 0, 3]);
    for victim in [&w.customer, &w.other_customer] {
        for _ in 0..5 {
            assert_eq!(
                login_from(&attacker, s, &victim.email, "guess-guess").await,
                401
            );
        }
        // The guessing address is refused for that account, even with the right password…
        assert_eq!(login_from(&attacker, s, &victim.email, PASSWORD).await, 429);
        // …while the owner, from its own address, still signs in.
        assert_eq!(login_from(&owner, s, &victim.email, PASSWORD).await, 200);
    }
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_03_registration_checks_before_it_hashes_and_is_throttled_per_address() {
    let s = TestServer::start_with(&[("MEDEX_REGISTRATIONS_PER_HOUR", "4")]).await;
    // That a taken address costs no password hash is medex-core's test
    // (`service::tests::accounts::a_taken_address_costs_no_hash`).
    s.customer("ann@example.test", "Ann", "+1 555").await;
    for _ in 0..3 {
        let r = s
            .post(
                "/api/auth/register",
                None,
                serde_json::json!({"email": "ANN@example.test", "password": PASSWORD, "full_name": "Copy"}),
            )
            .await;
        r.expect(409);
        assert_eq!(r.code(), "email_taken");
    }
    // Four registrations from this address this hour (taken addresses count too): the fifth waits.
    let r = s
        .post(
            "/api/vendors/register",
            None,
            serde_json::json!({"email": "new@pharmacy.test", "password": PASSWORD,
                "business_name": "New", "address": "1 Main St", "latitude": 52.5, "longitude": 13.4}),
        )
        .await;
    r.expect(429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=3600).contains(&retry), "{retry}");
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_07_tokens_do_not_outlive_their_session() {
    let w = World::new().await;
    let s = &w.server;
    let ann = &w.customer;
    // Logout ends the session's access token at once, not at its expiry.
    let r = s
        .post(
            "/api/auth/logout",
            None,
            serde_json::json!({"refresh_token": ann.refresh}),
        )
        .await;
    r.expect(204);
    s.get("/api/auth/me", &ann.token).await.expect(401);
    // Another session of the account is not affected.
    let other = s.signed_in(&ann.email).await;
    s.get("/api/auth/me", &other.token).await.expect(200);

    // A rotated refresh token presented again is theft: the newer tokens of its chain die too.
    let stolen = other.refresh.clone();
    let rotated = s
        .post(
            "/api/auth/refresh",
            None,
            serde_json::json!({"refresh_token": stolen}),
        )
        .await;
    rotated.expect(200);
    s.post(
        "/api/auth/refresh",
        None,
        serde_json::json!({"refresh_token": stolen}),
    )
    .await
    .expect(401);
    s.get("/api/auth/me", &rotated.str("access_token"))
        .await
        .expect(401);
    s.post(
        "/api/auth/refresh",
        None,
        serde_json::json!({"refresh_token": rotated.str("refresh_token")}),
    )
    .await
    .expect(401);

    // Deactivating and reactivating an account does not revive its old tokens.
    let before = s.signed_in(&w.other_customer.email).await;
    for active in [false, true] {
        s.patch(
            &format!("/api/admin/users/{}", w.other_customer.user_id),
            &w.admin.token,
            serde_json::json!({"is_active": active}),
        )
        .await
        .expect(200);
    }
    s.get("/api/auth/me", &before.token).await.expect(401);
    s.post(
        "/api/auth/refresh",
        None,
        serde_json::json!({"refresh_token": before.refresh}),
    )
    .await
    .expect(401);

    // "Log out everywhere" ends every session; a password change too, and signs the caller in.
    let (first, second) = (s.signed_in(&ann.email).await, s.signed_in(&ann.email).await);
    s.post(
        "/api/auth/logout-all",
        Some(&first.token),
        serde_json::json!({}),
    )
    .await
    .expect(204);
    for gone in [&first, &second] {
        s.get("/api/auth/me", &gone.token).await.expect(401);
    }
    let current = s.signed_in(&ann.email).await;
    let elsewhere = s.signed_in(&ann.email).await;
    let wrong = s
        .post(
            "/api/auth/password",
            Some(&current.token),
            serde_json::json!({"current_password": "not it", "new_password": "a brand new one"}),
        )
        .await;
    wrong.expect(422);
    assert_eq!(wrong.json["errors"][0]["field"], "current_password");
    let changed = s
        .post(
            "/api/auth/password",
            Some(&current.token),
            serde_json::json!({"current_password": PASSWORD, "new_password": "a brand new one"}),
        )
        .await;
    changed.expect(200);
    s.get("/api/auth/me", &elsewhere.token).await.expect(401);
    s.get("/api/auth/me", &current.token).await.expect(401);
    s.get("/api/auth/me", &changed.str("access_token"))
        .await
        .expect(200);
    s.login(&ann.email, PASSWORD).await.expect(401);
    s.login(&ann.email, "a brand new one").await.expect(200);
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_08_sockets_close_when_their_tokens_stop_working() {
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
    let w = World::new().await;
    let s = &w.server;
    // A driver's socket closes at the deactivation itself (not at the next keep-alive ping,
    // 20 s later): the close arrives well within the test's bound, driven by the event.
    let mut driver = Socket::connect(&w.driver_url(&w.driver), "driver").await;
    driver.expect("connected").await;
    deactivate_driver(&w).await;
    let (code, _) = driver.closed().await;
    assert_eq!(code, CloseCode::Policy);
    // A dashboard closes when its session is logged out; another session's stays.
    let other_session = s.signed_in(&w.vendor.owner.email).await;
    let mut ended = Socket::connect(&w.dashboard_url(&w.vendor.owner.token), "dashboard").await;
    let mut kept = Socket::connect(&w.dashboard_url(&other_session.token), "other dashboard").await;
    ended.expect("initial_state").await;
    kept.expect("initial_state").await;
    s.post(
        "/api/auth/logout",
        None,
        serde_json::json!({"refresh_token": w.vendor.owner.refresh}),
    )
    .await
    .expect(204);
    let (code, _) = ended.closed().await;
    assert_eq!(code, CloseCode::Policy);
    // The other dashboard still hears its pharmacy.
    s.post("/api/orders", Some(&w.customer.token), w.order_body())
        .await
        .expect(201);
    kept.expect("order_created").await;
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_18_a_driver_whose_account_is_deactivated_cannot_be_assigned() {
    let w = World::new().await;
    let s = &w.server;
    s.available(&w.driver).await;
    deactivate_driver(&w).await;
    let (order, _) = w.order_in("accepted", &w.driver).await;
    let r = w.assign(&order, &w.driver).await;
    r.expect(409);
    assert_eq!(r.code(), "driver_not_available");
    assert_eq!(s.stored_order(&order).await.driver_id, None);
    // Another driver of the fleet still can be.
    s.available(&w.second_driver).await;
    w.assign(&order, &w.second_driver).await.expect(200);
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_05_the_customer_cannot_set_the_fee_with_a_far_destination() {
    let w = World::new().await;
    let s = &w.server;
    let mut far = w.order_body();
    far["delivery_latitude"] = serde_json::json!(-52.5);
    far["delivery_longitude"] = serde_json::json!(-166.6);
    let r = s.post("/api/orders", Some(&w.customer.token), far).await;
    r.expect(422);
    assert_eq!(r.json["errors"][0]["field"], "delivery_latitude");
    // Within the pharmacy's radius it is taken, and the fee follows the tariff.
    let near = s
        .post("/api/orders", Some(&w.customer.token), w.order_body())
        .await;
    near.expect(201);
    let km = near.json["estimated_distance_km"].as_f64().unwrap();
    assert_eq!(
        near.json["delivery_fee"].as_f64().unwrap(),
        (km * 2.5 * 100.0).round() / 100.0
    );
    // A pharmacy narrows its radius: the same destination is now outside it.
    s.patch(
        &format!("/api/vendors/{}", w.vendor.id),
        &w.vendor.owner.token,
        serde_json::json!({"delivery_radius_km": 0.5}),
    )
    .await
    .expect(200);
    s.post("/api/orders", Some(&w.customer.token), w.order_body())
        .await
        .expect(422);
    s.patch(
        &format!("/api/vendors/{}", w.vendor.id),
        &w.vendor.owner.token,
        serde_json::json!({"delivery_radius_km": 0.1}),
    )
    .await
    .expect(422);
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_06_a_pharmacy_cannot_move_a_customers_destination() {
    let w = World::new().await;
    let s = &w.server;
    let mut dashboard = Socket::connect(&w.dashboard_url(&w.vendor.owner.token), "dashboard").await;
    dashboard.expect("initial_state").await;
    let (order, _) = w.order().await;
    dashboard.expect("order_created").await;
    let moved = serde_json::json!({"delivery_address": "Elsewhere 1",
        "delivery_latitude": 52.531, "delivery_longitude": 13.384});
    let r = s
        .patch(
            &format!("/api/orders/{order}"),
            &w.vendor.owner.token,
            moved.clone(),
        )
        .await;
    r.expect(409);
    assert_eq!(r.code(), "destination_already_set");
    assert_eq!(
        s.stored_order(&order).await.delivery_address,
        "Torstrasse 1, Berlin"
    );
    // An order from the shop without a destination is given one: recorded and announced.
    s.webhook_secret(&w.vendor, "Wq8v3kZ1pT6xN0rL5yB9").await;
    let shop = s
        .webhook(&w.vendor.id, "Wq8v3kZ1pT6xN0rL5yB9", WC_ORDER.as_bytes())
        .await;
    shop.expect(201);
    let from_shop = shop.str("id");
    dashboard.expect("order_created").await;
    s.patch(
        &format!("/api/orders/{from_shop}"),
        &w.vendor.owner.token,
        moved.clone(),
    )
    .await
    .expect(200);
    let announced = dashboard.expect("order_updated").await;
    assert_eq!(announced["order"]["delivery_address"], "Elsewhere 1");
    let stored = s.stored_order(&from_shop).await;
    let entry = stored.status_history.last().unwrap();
    assert_eq!(
        (
            entry.status.as_str(),
            entry.actor_role.as_str(),
            entry.reason.as_deref()
        ),
        ("pending", "vendor", Some("delivery location set"))
    );
    // Once set, it is the customer's too.
    s.patch(
        &format!("/api/orders/{from_shop}"),
        &w.vendor.owner.token,
        moved,
    )
    .await
    .expect(409);
    // The public timeline shows each status once.
    let view = s
        .public(&format!("/api/tracking/{}", stored.tracking_token))
        .await;
    assert_eq!(view.json["timeline"].as_array().unwrap().len(), 1);
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_14_a_finished_order_shows_its_outcome_not_the_place() {
    // The link's expiry after the configured days is medex-core's test (a manual clock):
    // `service::tests::tracking::links_expire_after_the_order_ended`.
    let w = World::new().await;
    let s = &w.server;
    let (order, token) = w.order_in("out_for_delivery", &w.driver).await;
    let on_its_way = s.public(&format!("/api/tracking/{token}")).await;
    assert!(on_its_way.json["destination"].is_object());
    w.set_status(&order, &w.driver.who.token, "delivered")
        .await
        .expect(200);
    let after = s.public(&format!("/api/tracking/{token}")).await;
    after.expect(200);
    assert_eq!(after.json["status"], "delivered");
    assert!(after.json["destination"].is_null(), "{}", after.text);
    assert!(after.json["driver"].is_null());
    assert!(
        !after.text.contains("52.529"),
        "no coordinate of the home: {}",
        after.text
    );
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_16_every_answer_declares_its_type_and_the_docs_page_has_a_policy() {
    let w = World::new().await;
    let s = &w.server;
    let (_, token) = w.order().await;
    let answers = [
        s.public("/api/health").await,
        s.public("/api/openapi.json").await,
        s.public(&format!("/api/tracking/{token}")).await,
        s.public("/api/tracking/no-such-token-at-all").await,
        s.get("/api/auth/me", "not-a-token").await,
        s.public("/api/nowhere").await,
    ];
    for r in &answers {
        assert_eq!(
            r.header("x-content-type-options"),
            Some("nosniff"),
            "{:?}",
            r.headers
        );
        assert_eq!(r.header("x-frame-options"), Some("DENY"), "{:?}", r.headers);
    }
    let docs = s.public("/docs/").await;
    docs.expect(200);
    let policy = docs.header("content-security-policy").unwrap_or_default();
    for part in [
        "default-src 'none'",
        "script-src 'self'",
        "frame-ancestors 'none'",
    ] {
        assert!(policy.contains(part), "{policy}");
    }
    assert_eq!(docs.header("x-content-type-options"), Some("nosniff"));
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_09_a_driver_is_paced_across_all_its_sockets_and_http() {
    let s = TestServer::start_with(&[("MEDEX_WS_MIN_FIX_INTERVAL_MS", "60000")]).await;
    let w = World::on(s).await;
    let s = &w.server;
    let url = w.driver_url(&w.driver);
    let (mut first, mut second) = (
        Socket::connect(&url, "first socket").await,
        Socket::connect(&url, "second socket").await,
    );
    first.expect("connected").await;
    second.expect("connected").await;
    let mut dashboard = Socket::connect(&w.dashboard_url(&w.vendor.owner.token), "dashboard").await;
    dashboard.expect("initial_state").await;
    let fix = serde_json::json!({"type": "location", "latitude": 52.52, "longitude": 13.40});
    first.send_json(fix.clone()).await;
    // The first socket's fix is taken before the second one sends (the two sockets' messages
    // are otherwise handled in either order).
    dashboard.until("driver_location").await;
    // The second socket's fix within the interval is refused, the socket stays open.
    second.send_json(fix.clone()).await;
    let refused = second.expect("error").await;
    assert_eq!(refused["code"], "rate_limited", "{refused}");
    // So is the HTTP fallback's.
    let r = s
        .post(
            &format!("/api/drivers/{}/location", w.driver.id),
            Some(&w.driver.who.token),
            serde_json::json!({"latitude": 52.53, "longitude": 13.41}),
        )
        .await;
    r.expect(429);
    let retry: u64 = r.header("retry-after").unwrap().parse().unwrap();
    assert!((1..=60).contains(&retry), "{retry}");
    // Exactly one fix reached the trail.
    let since = chrono::Utc::now() - chrono::Duration::minutes(5);
    let until = chrono::Utc::now() + chrono::Duration::minutes(1);
    s.medex().store().flush().await.unwrap();
    let driver: medex_core::model::DriverId = w.driver.id.parse().unwrap();
    let trail = s
        .medex()
        .store()
        .trail(medex_core::store::TrailQuery::new(
            driver, since, until, 100,
        ))
        .await
        .unwrap();
    assert_eq!(trail.len(), 1, "{trail:?}");
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_10_live_sockets_are_capped_per_account_and_per_address() {
    let s = TestServer::start_with(&[
        ("MEDEX_WS_MAX_PER_ACCOUNT", "3"),
        ("MEDEX_WS_MAX_PER_ADDRESS", "5"),
    ])
    .await;
    let w = World::on(s).await;
    let s = &w.server;
    let (_, token) = w.order().await;
    let dashboard = s.ws_url(&format!(
        "/ws/vendor/{}?token={}",
        w.vendor.id, w.vendor.owner.token
    ));
    let tracker = s.ws_url(&format!("/ws/tracking/{token}"));
    let mut open = Vec::new();
    for n in 0..3 {
        open.push(Socket::connect(&dashboard, &format!("dashboard {n}")).await);
    }
    let (status, body) = ws_refused(&dashboard).await;
    assert_eq!(
        (status, body["code"].as_str()),
        (429, Some("too_many_connections"))
    );
    // The address holds five in all, signed in or not.
    for n in 0..2 {
        open.push(Socket::connect(&tracker, &format!("tracker {n}")).await);
    }
    let (status, _) = ws_refused(&tracker).await;
    assert_eq!(status, 429);
    // A place freed is given again.
    open.pop().unwrap().close().await;
    let mut waited = 0;
    loop {
        match tokio_tungstenite::connect_async(tracker.as_str()).await {
            Ok((socket, _)) => {
                drop(socket);
                break;
            }
            Err(_) if waited < 1500 => {
                waited += 1;
                tokio::time::sleep(Duration::from_millis(20)).await;
            }
            Err(e) => panic!("the freed place was never given again: {e}"),
        }
    }
    drop(open);
    w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn finding_11_every_stored_proof_is_an_order_s_and_uploads_are_bounded() {
    let w = World::new().await;
    let s = &w.server;
    let (order, _) = w.order_in("picked_up", &w.driver).await;
    let path = |kind: &str| format!("/api/uploads/{kind}");
    let mut stored = Vec::new();
    for n in 0..20 {
        let kind = if n % 2 == 0 { "proof" } else { "signature" };
        let r = s
            .send(
                "POST",
                &path(kind),
                Some(&w.driver.who.token),
                upload_body(&order, PNG),
            )
            .await;
        r.expect(201);
        stored.push(r.str("url"));
    }
    // The order keeps every proof it was given (none replaced, none orphaned), up to its bound.
    let refused = s
        .send(
            "POST",
            &path("proof"),
            Some(&w.driver.who.token),
            upload_body(&order, PNG),
        )
        .await;
    refused.expect(409);
    assert_eq!(refused.code(), "too_many_proofs");
    let record = s.stored_order(&order).await;
    let kept: Vec<String> = record.proofs.iter().map(|p| p.url.clone()).collect();
    assert_eq!(kept, stored);
    if !s.uses_postgres() {
        let mut files: Vec<String> = std::fs::read_dir(s.dir.path().join("uploads"))
            .unwrap()
            .flatten()
            .map(|e| e.file_name().to_string_lossy().into_owned())
            .collect();
        files.sort();
        let mut referenced: Vec<String> = stored
            .iter()
            .map(|u| u.rsplit('/').next().unwrap().to_owned())
            .collect();
        referenced.sort();
        assert_eq!(
            files, referenced,
            "no file on disk that the order does not list"
        );
    }
    w.server.stop().await;
}

/// The admin deactivates the main driver's account.
async fn deactivate_driver(w: &World) {
    w.server
        .patch(
            &format!("/api/admin/users/{}", w.driver.who.user_id),
            &w.admin.token,
            serde_json::json!({"is_active": false}),
        )
        .await
        .expect(200);
}
