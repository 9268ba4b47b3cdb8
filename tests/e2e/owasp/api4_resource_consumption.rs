//! API4:2023 Unrestricted Resource Consumption: every size and count the server accepts from a
//! client is bounded, and going past a bound is refused without side effects: bodies (413, also
//! without a length), JSON depth (400), page sizes (422), order sizes and date ranges (422),
//! uploads (413), WebSocket messages (1009, then 1008 for persistent garbage), logins per
//! address (429).

use serde_json::json;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

use super::Scene;
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn oversized_requests_are_refused_and_change_nothing() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let customer = Some(w.customer.token.as_str());

    // Bodies: one byte over 64 KiB, declared or streamed.
    let mut big = w.order_body();
    big["notes"] = json!("n".repeat(64 * 1024));
    s.refused(
        "body over the limit",
        "POST",
        "/api/orders",
        customer,
        big.clone().into(),
        413,
    )
    .await;
    let before = s.snapshot().await;
    let text = big.to_string();
    let mut chunked = format!(
        "POST /api/orders HTTP/1.1\r\nHost: e2e\r\nAuthorization: Bearer {}\r\n\
         Content-Type: application/json\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n",
        w.customer.token
    )
    .into_bytes();
    for piece in text.as_bytes().chunks(8 * 1024) {
        chunked.extend_from_slice(format!("{:x}\r\n", piece.len()).as_bytes());
        chunked.extend_from_slice(piece);
        chunked.extend_from_slice(b"\r\n");
    }
    chunked.extend_from_slice(b"0\r\n\r\n");
    let r = raw_http(s.addr, &chunked).await;
    assert_eq!(r.status, 413, "{r:?}");
    s.snapshot()
        .await
        .assert_same(&before, "streamed body over the limit");

    // JSON nested deeper than 32.
    let deep = format!(
        r#"{{"vendor_id": "{}", "items": {}1{}}}"#,
        w.vendor.id,
        "[".repeat(40),
        "]".repeat(40)
    );
    let before = s.snapshot().await;
    let r = s
        .raw(
            "POST",
            "/api/orders",
            customer,
            &[("content-type", "application/json")],
            Some(deep.into_bytes()),
        )
        .await;
    r.expect(400);
    s.snapshot().await.assert_same(&before, "deep JSON");

    // Orders with too much in them.
    let long = |n: usize| "x".repeat(n);
    let mut cases = Vec::new();
    let mut body = w.order_body();
    body["items"] = json!(
        (0..101)
            .map(|i| json!({"name": format!("item {i}"), "quantity": 1}))
            .collect::<Vec<_>>()
    );
    cases.push(("101 items", body));
    let mut body = w.order_body();
    body["items"][0]["quantity"] = json!(1001);
    cases.push(("quantity 1001", body));
    let mut body = w.order_body();
    body["customer_name"] = json!(long(201));
    cases.push(("name of 201 characters", body));
    let mut body = w.order_body();
    body["notes"] = json!(long(2001));
    cases.push(("notes of 2001 characters", body));
    let mut body = w.order_body();
    body["items"][0]["name"] = json!(long(201));
    cases.push(("item name of 201 characters", body));
    for (case, body) in cases {
        s.refused(case, "POST", "/api/orders", customer, body.into(), 422)
            .await;
    }

    // Pages: at most 200 items, on every list.
    let vendor_orders = format!("/api/vendors/{}/orders", w.vendor.id);
    let deliveries = format!("/api/drivers/{}/deliveries", w.driver.id);
    let lists = [
        ("/api/orders", w.admin.token.as_str()),
        ("/api/drivers", w.vendor.owner.token.as_str()),
        ("/api/vendors", w.admin.token.as_str()),
        ("/api/admin/users", w.admin.token.as_str()),
        (vendor_orders.as_str(), w.admin.token.as_str()),
        (deliveries.as_str(), w.admin.token.as_str()),
    ];
    for (path, token) in lists {
        for (limit, status) in [(201, 422), (100_000, 422), (0, 422), (200, 200)] {
            let r = s.get(&format!("{path}?limit={limit}"), token).await;
            assert_eq!(
                r.status.as_u16(),
                status,
                "{path}?limit={limit}: {}",
                r.text
            );
        }
    }

    // Date ranges: at most a year of work per request.
    let v = format!("/api/vendors/{}", w.vendor.id);
    let d = format!("/api/drivers/{}", w.driver.id);
    let rv = format!("/api/reports/vendors/{}", w.vendor.id);
    for (case, method, path) in [
        (
            "export of two years",
            "POST",
            format!("{v}/export-csv?from=2024-01-01&to=2026-01-01"),
        ),
        (
            "earnings of two years",
            "GET",
            format!("{d}/earnings?from=2024-01-01&to=2026-01-01"),
        ),
        (
            "statistics of two years",
            "GET",
            format!("{rv}/drivers?from=2024-01-01&to=2026-01-01"),
        ),
    ] {
        s.refused(case, method, &path, Some(&w.admin.token), Body::Empty, 422)
            .await;
    }

    // A tracking "token" of 10 KB is not looked up.
    let r = s
        .public(&format!("/api/tracking/{}", "t".repeat(10_000)))
        .await;
    r.expect(404);

    // Uploads: one byte over 5 MiB.
    let mut file = PNG.to_vec();
    file.resize(5 * 1024 * 1024 + 1, 0);
    let r = s
        .refused(
            "upload over the limit",
            "POST",
            "/api/uploads/signature",
            Some(&w.driver.who.token),
            upload_body(&scene.work, &file),
            413,
        )
        .await;
    assert_eq!(r.code(), "payload_too_large");
    scene.w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn websocket_messages_are_bounded_on_every_endpoint() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let endpoints = [
        (
            "driver",
            format!("/ws/driver?token={}", w.driver.who.token),
            "connected",
        ),
        (
            "dashboard",
            format!("/ws/vendor/{}?token={}", w.vendor.id, w.vendor.owner.token),
            "initial_state",
        ),
        (
            "tracker",
            format!("/ws/tracking/{}", scene.work_token),
            "initial_state",
        ),
    ];
    for (name, path, greeting) in &endpoints {
        // 4096 bytes is allowed: the connection answers.
        let mut socket = Socket::connect(&s.ws_url(path), name).await;
        socket.expect(greeting).await;
        let mut ping = json!({"type": "ping", "pad": ""}).to_string();
        let pad = 4096 - ping.len();
        ping = json!({"type": "ping", "pad": "p".repeat(pad)}).to_string();
        assert_eq!(ping.len(), 4096);
        socket.send(Message::Text(ping.into())).await;
        socket.expect("pong").await;
        // One byte more closes with 1009, text or binary.
        socket.send(Message::Text("x".repeat(4097).into())).await;
        assert_eq!(socket.closed().await.0, CloseCode::Size, "{name}: text");
        let mut socket = Socket::connect(&s.ws_url(path), name).await;
        socket.expect(greeting).await;
        socket
            .send(Message::Binary(vec![0u8; 64 * 1024].into()))
            .await;
        assert_eq!(socket.closed().await.0, CloseCode::Size, "{name}: binary");

        // Garbage is answered, until it is persistent.
        let mut socket = Socket::connect(&s.ws_url(path), name).await;
        socket.expect(greeting).await;
        socket.send(Message::Text("{not json".into())).await;
        let error = socket.expect("error").await;
        assert!(error["code"].is_string() && error["detail"].is_string());
        socket.send_json(json!({"type": "ping"})).await;
        socket.expect("pong").await;
        for _ in 0..20 {
            socket.send(Message::Text("{not json".into())).await;
        }
        let (code, before) = socket.closed().await;
        assert_eq!(code, CloseCode::Policy, "{name}: {before:?}");
        assert!(before.iter().all(|m| m["type"] == "error"), "{before:?}");
    }
    // None of it moved anything: the driver's order is where it was.
    assert_eq!(
        s.stored_order(&scene.work).await.status.as_str(),
        "picked_up"
    );
    scene.w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn failed_logins_are_throttled_per_address() {
    // Its own server: this locks 127.0.0.1 out of logging in.
    let s = TestServer::start().await;
    let ann = s
        .customer("ann@example.test", CUSTOMER_NAME, CUSTOMER_PHONE)
        .await;
    // Twenty failures spread over accounts that do not exist (four tries each, under the
    // per-account limit of five).
    for n in 0..20 {
        let r = s
            .login(&format!("guess{}@example.test", n / 4), "guessed-password")
            .await;
        assert_eq!(r.status.as_u16(), 401, "failure {n}: {}", r.text);
    }
    // Now even a right password from this address waits.
    let r = s
        .refused(
            "login from a throttled address",
            "POST",
            "/api/auth/login",
            None,
            json!({"email": ann.email, "password": PASSWORD}).into(),
            429,
        )
        .await;
    assert!(
        r.header("retry-after")
            .and_then(|v| v.parse::<u64>().ok())
            .is_some_and(|secs| (1..=900).contains(&secs)),
        "{:?}",
        r.headers
    );
    // Signed-in sessions are not affected.
    s.get("/api/auth/me", &ann.token).await.expect(200);
    s.stop().await;
}
