//! API8:2023 Security Misconfiguration: CORS answers configured origins only; errors are the
//! API's JSON and never show storage internals, panics, paths or traces; unknown routes are a
//! JSON 404; the public tracking page, API answers and served uploads carry protective headers;
//! `/metrics` (public, as Prometheus expects) holds no tokens, ids or addresses.

use super::{Scene, assert_no_internals};
use crate::support::*;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn cors_answers_configured_origins_only() {
    let allowed = "https://dash.example";
    let s = TestServer::start_with(&[("MEDEX_CORS_ORIGINS", allowed)]).await;
    let admin = s.admin().await;
    // (origin, whether it is allowed)
    let origins = [
        (allowed, true),
        ("https://evil.example", false),
        ("null", false),
        ("https://dash.example.evil.example", false),
        ("http://dash.example", false),
        ("https://sub.dash.example", false),
    ];
    for (origin, ok) in origins {
        let preflight = s
            .raw(
                "OPTIONS",
                "/api/orders",
                None,
                &[
                    ("origin", origin),
                    ("access-control-request-method", "POST"),
                    (
                        "access-control-request-headers",
                        "authorization,content-type",
                    ),
                ],
                None,
            )
            .await;
        let simple = s
            .raw(
                "GET",
                "/api/vendors",
                Some(&admin.token),
                &[("origin", origin)],
                None,
            )
            .await;
        simple.expect(200);
        for (kind, r) in [("preflight", &preflight), ("request", &simple)] {
            let granted = r.header("access-control-allow-origin");
            if ok {
                assert_eq!(granted, Some(origin), "{kind} from {origin}");
            } else {
                assert_eq!(granted, None, "{kind} from {origin}: {:?}", r.headers);
            }
            // Bearer tokens, not cookies: credentials are never invited.
            assert_eq!(r.header("access-control-allow-credentials"), None);
        }
    }
    s.stop().await;

    // Without configuration nobody is granted anything.
    let s = TestServer::start().await;
    let r = s
        .raw("GET", "/api/health", None, &[("origin", allowed)], None)
        .await;
    r.expect(200);
    assert_eq!(r.header("access-control-allow-origin"), None);
    s.stop().await;
}

/// (case, method, path, headers, body, status)
type Case<'a> = (
    &'a str,
    &'a str,
    String,
    Vec<(&'a str, &'a str)>,
    Option<Vec<u8>>,
    u16,
);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_requests_get_json_errors_without_internals() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let data_dir = s.dir.path().to_str().unwrap().to_owned();
    let admin = Some(w.admin.token.as_str());
    let json_type = [("content-type", "application/json")];
    let rv = format!("/api/reports/vendors/{}", w.vendor.id);
    let Body::Multipart {
        content_type: text_upload_type,
        bytes: text_upload,
    } = upload_body(&scene.work, b"just text, not an image")
    else {
        unreachable!()
    };
    let cases: Vec<Case<'_>> = vec![
        (
            "truncated JSON",
            "POST",
            "/api/orders".into(),
            json_type.to_vec(),
            Some(b"{\"vendor_id\":".to_vec()),
            400,
        ),
        (
            "trailing garbage",
            "POST",
            "/api/orders".into(),
            json_type.to_vec(),
            Some(b"{} {}".to_vec()),
            400,
        ),
        (
            "invalid UTF-8",
            "POST",
            "/api/orders".into(),
            json_type.to_vec(),
            Some(b"{\"notes\": \"\xff\xfe\"}".to_vec()),
            400,
        ),
        (
            "lone surrogate",
            "POST",
            "/api/auth/login".into(),
            json_type.to_vec(),
            Some(br#"{"email": "\ud800", "password": "x"}"#.to_vec()),
            400,
        ),
        (
            "number out of range",
            "POST",
            format!("/api/drivers/{}/location", w.driver.id),
            json_type.to_vec(),
            Some(br#"{"latitude": 1e999, "longitude": 1}"#.to_vec()),
            400,
        ),
        (
            "wrong types",
            "POST",
            "/api/auth/login".into(),
            json_type.to_vec(),
            Some(br#"{"email": 1, "password": []}"#.to_vec()),
            422,
        ),
        (
            "not JSON at all",
            "POST",
            "/api/orders".into(),
            vec![("content-type", "text/plain")],
            Some(b"hello".to_vec()),
            415,
        ),
        (
            "not an id",
            "GET",
            "/api/orders/not-a-uuid".into(),
            vec![],
            None,
            422,
        ),
        (
            "a NUL for an id",
            "GET",
            "/api/orders/%00".into(),
            vec![],
            None,
            422,
        ),
        (
            "a number for a limit",
            "GET",
            "/api/orders?limit=many".into(),
            vec![],
            None,
            422,
        ),
        (
            "an unknown status",
            "GET",
            "/api/orders?status=teleported".into(),
            vec![],
            None,
            422,
        ),
        (
            "a bad cursor",
            "GET",
            "/api/orders?cursor=zzz".into(),
            vec![],
            None,
            422,
        ),
        (
            "invalid UTF-8 in the query",
            "GET",
            "/api/orders?status=%FF".into(),
            vec![],
            None,
            422,
        ),
        (
            "an unknown time zone",
            "GET",
            format!("{rv}?tz=Mars%2FOlympus"),
            vec![],
            None,
            422,
        ),
        (
            "an impossible date",
            "GET",
            format!("{rv}?date=2026-13-45"),
            vec![],
            None,
            422,
        ),
        (
            "a path for an upload name",
            "GET",
            "/api/uploads/..%2F..%2Fjwt-secret".into(),
            vec![],
            None,
            404,
        ),
        (
            "dots for an upload name",
            "GET",
            "/api/uploads/%2e%2e".into(),
            vec![],
            None,
            404,
        ),
        (
            "multipart without a boundary",
            "POST",
            "/api/uploads/proof".into(),
            vec![("content-type", "multipart/form-data")],
            Some(b"--x\r\n".to_vec()),
            400,
        ),
        (
            "broken multipart",
            "POST",
            "/api/uploads/proof".into(),
            vec![("content-type", "multipart/form-data; boundary=x")],
            Some(b"--x\r\nContent-Disposition: form-data; name=\"file\"\r\n\r\nno end".to_vec()),
            400,
        ),
        (
            "a text file as proof",
            "POST",
            "/api/uploads/proof".into(),
            vec![("content-type", text_upload_type.as_str())],
            Some(text_upload.clone()),
            415,
        ),
        (
            "a config value of the wrong type",
            "PATCH",
            "/api/admin/config".into(),
            json_type.to_vec(),
            Some(br#"{"road_factor": "fast"}"#.to_vec()),
            422,
        ),
        (
            "a config section set to null",
            "PATCH",
            "/api/admin/config".into(),
            json_type.to_vec(),
            Some(br#"{"tariff": null}"#.to_vec()),
            422,
        ),
        (
            "a webhook for no pharmacy id",
            "POST",
            "/api/webhooks/wc/order-created?vendor_id=x".into(),
            json_type.to_vec(),
            Some(b"{}".to_vec()),
            422,
        ),
        (
            "a webhook without a secret configured",
            "POST",
            format!("/api/webhooks/wc/order-created?vendor_id={}", w.vendor.id),
            vec![
                ("content-type", "application/json"),
                ("x-wc-webhook-signature", "AAAA"),
            ],
            Some(b"{\"id\": 1}".to_vec()),
            401,
        ),
        (
            "an unsupported method",
            "PUT",
            "/api/orders".into(),
            vec![],
            None,
            405,
        ),
        ("TRACE", "TRACE", "/api/health".into(), vec![], None, 405),
    ];
    let count = cases.len();
    for (case, method, path, headers, body, status) in cases {
        let before = s.snapshot().await;
        let r = s.raw(method, &path, admin, &headers, body).await;
        assert_eq!(r.status.as_u16(), status, "{case}: {}", r.text);
        r.assert_error_format(case);
        assert_no_internals(case, &r.text, &data_dir);
        s.snapshot().await.assert_same(&before, case);
    }
    assert!(count >= 25);

    // Below the router: requests hyper itself refuses. No body to speak of, never internals.
    for (case, request) in [
        (
            "two content lengths",
            &b"POST /api/auth/login HTTP/1.1\r\nHost: e2e\r\nContent-Length: 2\r\nContent-Length: 3\r\nConnection: close\r\n\r\n{}"[..],
        ),
        ("not HTTP", &b"HELLO THERE\r\n\r\n"[..]),
        (
            "a header without a colon",
            &b"GET /api/health HTTP/1.1\r\nHost e2e\r\nConnection: close\r\n\r\n"[..],
        ),
    ] {
        let r = raw_http(s.addr, request).await;
        assert_eq!(r.status, 400, "{case}: {r:?}");
        assert_no_internals(case, &format!("{}\n{}", r.head, r.body), &data_dir);
    }

    // The WebSocket endpoints refuse in the same format.
    for (case, method, path, status) in [
        ("an unknown socket", "GET", "/ws/nothing".to_owned(), 404),
        (
            "a socket without the handshake",
            "GET",
            "/ws/driver".to_owned(),
            426,
        ),
        (
            "a socket by POST",
            "POST",
            format!("/ws/tracking/{}", scene.work_token),
            405,
        ),
    ] {
        let r = s.raw(method, &path, None, &[], None).await;
        assert_eq!(r.status.as_u16(), status, "{case}: {}", r.text);
        r.assert_error_format(case);
        assert_no_internals(case, &r.text, &data_dir);
    }
    scene.w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_routes_are_json_404s() {
    let s = TestServer::start().await;
    for path in [
        "/api/nothing",
        "/nothing",
        "/api",
        "/api/",
        "/api/orders/01890000-0000-7000-8000-000000000001/nothing",
        "/.env",
        "/admin",
        "/api/admin",
        "/metrics/extra",
        "/docs/../api/openapi.json/x",
    ] {
        let r = s.raw("GET", path, None, &[], None).await;
        assert_eq!(r.status.as_u16(), 404, "{path}: {}", r.text);
        r.assert_error_format(path);
        assert_eq!(r.code(), "route_not_found", "{path}");
    }
    // Through a raw request, so no client normalises the dots away.
    let r = raw_http(
        s.addr,
        b"GET /../../etc/passwd HTTP/1.1\r\nHost: e2e\r\nConnection: close\r\n\r\n",
    )
    .await;
    assert!(
        r.status == 404 || r.status == 400,
        "{}: {}",
        r.status,
        r.body
    );
    assert!(!r.body.contains("root:"), "{}", r.body);
    s.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_tracking_page_api_answers_and_uploads_carry_protective_headers() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let probe = "<script>alert(1)</script>";
    let cases = [
        (format!("/track/{}", scene.work_token), 200),
        ("/track/no-such-token".to_owned(), 404),
        (
            format!(
                "/track/{}",
                probe
                    .replace('<', "%3C")
                    .replace('>', "%3E")
                    .replace('/', "%2F")
            ),
            404,
        ),
    ];
    for (path, status) in cases {
        let r = s.public(&path).await;
        assert_eq!(r.status.as_u16(), status, "{path}");
        let header = |name: &str| {
            r.header(name)
                .unwrap_or_else(|| panic!("{path}: no {name}"))
        };
        assert!(header("content-type").starts_with("text/html"));
        let csp = header("content-security-policy");
        assert!(csp.contains("default-src 'none'"), "{csp}");
        assert!(csp.contains("frame-ancestors 'none'"), "{csp}");
        assert!(
            !csp.contains("unsafe-inline") && !csp.contains("unsafe-eval"),
            "{csp}"
        );
        assert_eq!(header("x-content-type-options"), "nosniff");
        assert_eq!(header("x-frame-options"), "DENY");
        assert_eq!(header("referrer-policy"), "no-referrer");
        assert_eq!(header("cache-control"), "no-store");
        assert!(r.header("x-powered-by").is_none() && r.header("server").is_none());
        // The page never echoes its token into the markup.
        assert!(!r.text.contains(probe) && !r.text.contains("alert(1)"));
        assert!(!r.text.contains(&scene.work_token));
    }

    // API answers, patients' details in them, are kept by no cache; errors neither.
    let order = s
        .get(&format!("/api/orders/{}", scene.work), &w.customer.token)
        .await;
    order.expect(200);
    let missing = s.public("/api/tracking/no-such-token").await;
    missing.expect(404);
    for r in [&order, &missing] {
        assert_eq!(
            r.header("cache-control"),
            Some("no-store"),
            "{:?}",
            r.headers
        );
    }

    // A proof photo is served as the image it is, and cannot run as anything else.
    let r = s
        .get(
            &format!("/api/uploads/{}", scene.work_upload),
            &w.customer.token,
        )
        .await;
    r.expect(200);
    assert_eq!(r.header("content-type"), Some("image/png"));
    assert_eq!(r.header("x-content-type-options"), Some("nosniff"));
    assert_eq!(r.header("cache-control"), Some("private, max-age=3600"));
    assert!(
        r.header("content-security-policy")
            .is_some_and(|csp| csp.contains("sandbox")),
        "{:?}",
        r.headers
    );
    scene.w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn metrics_hold_no_tokens_ids_or_addresses() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    s.public(&format!("/api/tracking/{}", scene.work_token))
        .await
        .expect(200);
    s.public(&format!("/track/{}", scene.work_token))
        .await
        .expect(200);
    s.get(&format!("/api/orders/{}", scene.work), &w.customer.token)
        .await
        .expect(200);
    s.public("/api/orders/../../etc/passwd").await;
    let metrics = s.public("/metrics").await;
    metrics.expect(200);
    assert!(metrics.text.contains("medex_http_requests_total"));
    for secret in [
        scene.work_token.as_str(),
        scene.work.as_str(),
        scene.work_upload.as_str(),
        w.customer.email.as_str(),
        w.driver.id.as_str(),
        w.vendor.id.as_str(),
        s.dir.path().to_str().unwrap(),
        "127.0.0.1",
        "passwd",
    ] {
        assert!(!metrics.text.contains(secret), "/metrics shows {secret}");
    }
    scene.w.server.stop().await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dates_at_the_ends_of_the_calendar_are_answered_not_crashed() {
    let scene = Scene::new().await;
    let w = &scene.w;
    let s = &w.server;
    let data_dir = s.dir.path().to_str().unwrap().to_owned();
    let (first, last) = ("-262143-01-01", "%2B262142-12-31");
    let rv = format!("/api/reports/vendors/{}", w.vendor.id);
    let v = format!("/api/vendors/{}", w.vendor.id);
    let d = format!("/api/drivers/{}", w.driver.id);
    // (method, path, status): the first and last days chrono knows, in the widest offsets.
    let cases = [
        ("GET", format!("{rv}?date={last}"), 200),
        ("GET", format!("{rv}?date={last}&tz=%2B14:00"), 200),
        ("GET", format!("{rv}?date={last}&tz=-14:00&format=csv"), 200),
        ("GET", format!("{rv}?date={first}"), 200),
        ("GET", format!("{rv}?date={first}&tz=-14:00"), 200),
        ("GET", format!("{rv}?date={first}&tz=%2B14:00"), 200),
        (
            "GET",
            format!("{rv}/drivers?from=%2B262142-12-01&to={last}"),
            200,
        ),
        (
            "GET",
            format!("{rv}/drivers?from={first}&to=-262143-01-02&tz=-14:00"),
            200,
        ),
        (
            "GET",
            format!("{rv}/drivers?from={first}&to=-262143-01-02&format=csv"),
            200,
        ),
        ("GET", format!("{v}/orders?date={last}"), 200),
        ("GET", format!("{v}/orders?date={first}&tz=-14:00"), 200),
        (
            "GET",
            format!("{d}/earnings?from={first}&to=-262143-01-02"),
            200,
        ),
        (
            "GET",
            format!("{d}/earnings?from=%2B262142-12-30&to={last}&tz=-14:00"),
            200,
        ),
        // Its default start would be six days before the first day there is.
        ("GET", format!("{d}/earnings?to={first}"), 422),
        ("POST", format!("{v}/export-csv?to={first}"), 200),
        (
            "POST",
            format!("{v}/export-csv?from={first}&to=-262143-01-02"),
            200,
        ),
        // A date as `to` includes its day; the last day has no day after it.
        (
            "POST",
            format!("{v}/export-csv?from=%2B262142-12-30&to={last}"),
            422,
        ),
    ];
    for (method, path, status) in cases {
        let before = s.snapshot().await;
        let r = s.call(method, &path, Some(&w.admin.token), None).await;
        assert_eq!(r.status.as_u16(), status, "{method} {path}: {}", r.text);
        assert_no_internals(&path, &r.text, &data_dir);
        if status == 200 && r.json.is_object() {
            // Nothing happened on those days.
            for count in ["orders_created", "orders_delivered", "total_deliveries"] {
                if let Some(n) = r.json.get(count) {
                    assert_eq!(n, 0, "{path}: {}", r.text);
                }
            }
        }
        s.snapshot().await.assert_same(&before, &path);
    }
    scene.w.server.stop().await;
}
