//! Health, discovery, error format of the router itself, request ids, CORS, reports, tracking,
//! and one run over a real socket.

use axum::body::Body;
use axum::http::{Request, header};
use serde_json::{Value, json};

use crate::helpers::*;

#[tokio::test]
async fn health_reports_storage_and_never_leaks_its_errors() {
    let w = World::new().await;
    let r = w.app.public("/api/health").await;
    r.expect(200);
    assert_eq!(r.json["status"], "healthy");
    assert_eq!(r.json["storage"], "ok");
    assert!(r.json["version"].is_string());

    w.app.store.set_down(true);
    let r = w.app.public("/api/health").await;
    assert_eq!(r.status.as_u16(), 503);
    assert_eq!(r.json["status"], "unhealthy");
    assert_eq!(r.json["storage"], "unavailable");
    let r = w.app.get("/api/orders", &w.admin.token).await;
    r.expect(503);
    assert_eq!(r.code(), "storage_unavailable");
    assert!(!r.text.contains("secret-volume"));
    let r = w.app.login(&w.customer.email, PASSWORD).await;
    r.expect(503);
    w.app.store.set_down(false);
    w.app.get("/api/orders", &w.admin.token).await.expect(200);
}

#[tokio::test]
async fn index_docs_and_openapi_are_served() {
    let app = App::new().await;
    let r = app.public("/").await;
    r.expect(200);
    assert_eq!(r.json["name"], "medex");
    assert_eq!(r.json["docs"], "/docs");
    let r = app.public("/api/openapi.json").await;
    r.expect(200);
    assert!(r.json["paths"]["/api/orders"].is_object());
    assert_eq!(r.json, serde_json::to_value(medex_http::openapi()).unwrap());
    let r = app.public("/docs/").await;
    r.expect(200);
    assert!(
        r.text.contains("swagger"),
        "{}",
        &r.text[..r.text.len().min(300)]
    );
    // The UI's assets come from the crate, not a CDN.
    assert!(!r.text.contains("cdn."));
}

#[tokio::test]
async fn unknown_routes_and_methods_answer_json() {
    let app = App::new().await;
    let r = app.public("/api/nothing-here").await;
    r.expect(404);
    assert_eq!(r.code(), "route_not_found");
    let r = app.call("PUT", "/api/orders", None, None).await;
    r.expect(405);
    assert_eq!(r.code(), "method_not_allowed");
    let r = app.call("DELETE", "/api/health", None, None).await;
    r.expect(405);
}

#[tokio::test]
async fn request_ids_are_set_and_propagated() {
    let app = App::new().await;
    let r = app.public("/api/health").await;
    assert!(r.header("x-request-id").is_some_and(|id| id.len() >= 32));
    let r = app
        .send(
            Request::get("/api/nothing")
                .header("x-request-id", "abc-123")
                .body(Body::empty())
                .unwrap(),
        )
        .await;
    assert_eq!(r.header("x-request-id"), Some("abc-123"));
}

#[tokio::test]
async fn cors_allows_configured_origins_only() {
    let app = App::with_config(medex_http::HttpConfig {
        cors_origins: vec!["https://dash.example".into()],
        ..Default::default()
    })
    .await;
    let preflight = |origin: &'static str| {
        Request::builder()
            .method("OPTIONS")
            .uri("/api/orders")
            .header(header::ORIGIN, origin)
            .header(header::ACCESS_CONTROL_REQUEST_METHOD, "POST")
            .header(
                header::ACCESS_CONTROL_REQUEST_HEADERS,
                "authorization,content-type",
            )
            .body(Body::empty())
            .unwrap()
    };
    let r = app.send(preflight("https://dash.example")).await;
    assert_eq!(
        r.header("access-control-allow-origin"),
        Some("https://dash.example")
    );
    // Every method the API document uses may be called from an allowed origin.
    let allowed: Vec<String> = r
        .header("access-control-allow-methods")
        .unwrap_or_default()
        .split(',')
        .map(|m| m.trim().to_ascii_lowercase())
        .collect();
    let document = app.public("/api/openapi.json").await;
    for (path, operations) in document.json["paths"].as_object().unwrap() {
        for method in operations.as_object().unwrap().keys() {
            assert!(
                allowed.contains(method),
                "{method} {path} is not allowed across origins: {allowed:?}"
            );
        }
    }
    let r = app.send(preflight("https://evil.example")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
    // Without configuration, no CORS headers at all.
    let app = App::new().await;
    let r = app.send(preflight("https://dash.example")).await;
    assert_eq!(r.header("access-control-allow-origin"), None);
}

#[tokio::test]
async fn tracking_shows_the_public_view_only() {
    let w = World::new().await;
    let order = w.order_in("driver_assigned").await;
    let stored = w.stored_order(&order).await;
    w.report_location(
        json!({"latitude": 52.521, "longitude": 13.401, "speed": 12.0, "accuracy": 5.0}),
    )
    .await
    .expect(200);
    let r = w
        .app
        .public(&format!("/api/tracking/{}", stored.tracking_token))
        .await;
    r.expect(200);
    assert_eq!(r.json["order_number"], stored.order_number.as_str());
    assert_eq!(r.json["vendor_name"], "Corner Pharmacy");
    assert_eq!(r.json["driver"]["first_name"], "Dee");
    assert!(r.json["eta_minutes"].as_f64().is_some());
    for private in [
        "+49 30 1234",
        "Driver",
        &w.customer.user_id,
        &w.driver.id,
        "phone",
        "user_id",
    ] {
        assert!(!r.text.contains(private), "{private} leaked: {}", r.text);
    }
    let r = w
        .app
        .public(&format!(
            "/api/tracking/{}?trail=true",
            stored.tracking_token
        ))
        .await;
    r.expect(200);
    w.app.public("/api/tracking/x").await.expect(404);
}

#[tokio::test]
async fn location_answers_with_the_eta() {
    let w = World::new().await;
    let order = w.order_in("picked_up").await;
    let r = w
        .report_location(json!({"latitude": 52.525, "longitude": 13.405, "heading": 90.0}))
        .await;
    r.expect(200);
    assert_eq!(r.json["order_id"], order.as_str());
    assert!(r.json["eta_minutes"].as_f64().unwrap() > 0.0);
    let r = w.driver_record().await;
    assert_eq!(r.json["current_latitude"], 52.525);
}

#[tokio::test]
async fn reports_and_exports_as_json_and_csv() {
    let w = World::new().await;
    w.order_in("delivered").await;
    w.order_in("cancelled").await;
    let v = &w.vendor.id;
    let today = chrono::Utc::now().date_naive();

    let r = w
        .app
        .get(&format!("/api/reports/vendors/{v}"), &w.vendor.owner.token)
        .await;
    r.expect(200);
    assert_eq!(r.json["orders_delivered"], 1);
    assert_eq!(r.json["orders_cancelled"], 1);
    // `+` unencoded in a query string decodes to a space: still read as +02:00.
    let r = w
        .app
        .get(
            &format!("/api/reports/vendors/{v}?date={today}&tz=+00:00"),
            &w.admin.token,
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["utc_offset"], "+00:00");
    let r = w
        .app
        .get(
            &format!("/api/reports/vendors/{v}?tz=+02:00&format=csv"),
            &w.admin.token,
        )
        .await;
    r.expect(200);
    assert!(r.header("content-type").unwrap().starts_with("text/csv"));
    assert!(
        r.header("content-disposition")
            .unwrap()
            .starts_with("attachment; filename=")
    );
    assert!(r.text.contains("orders_delivered"));

    let r = w
        .app
        .get(
            &format!("/api/reports/vendors/{v}/drivers?from={today}&to={today}"),
            &w.vendor.owner.token,
        )
        .await;
    r.expect(200);
    let figures = r.json.as_array().unwrap();
    assert!(figures.iter().any(|f| f["deliveries"] == 1));
    let r = w
        .app
        .get(
            &format!("/api/reports/vendors/{v}/drivers?format=csv"),
            &w.vendor.owner.token,
        )
        .await;
    r.expect(200);
    assert!(r.text.contains("Dee Driver"));

    let r = w
        .app
        .get(
            &format!("/api/drivers/{}/earnings", w.driver.id),
            &w.driver.who.token,
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["total_deliveries"], 1);

    // Export: period in the query, in a JSON body, or defaulted.
    for (path, body) in [
        (
            format!("/api/vendors/{v}/export-csv?from={today}&to={today}"),
            None,
        ),
        (
            format!("/api/vendors/{v}/export-csv"),
            Some(json!({"from": today, "to": today})),
        ),
        (format!("/api/vendors/{v}/export-csv"), None),
    ] {
        let r = w
            .app
            .call("POST", &path, Some(&w.vendor.owner.token), body)
            .await;
        r.expect(200);
        assert!(r.header("content-type").unwrap().starts_with("text/csv"));
        assert!(r.header("content-disposition").unwrap().contains(".csv"));
        assert_eq!(r.text.lines().count(), 3, "{}", r.text);
        assert!(r.text.lines().next().unwrap().contains("order_number"));
    }
}

#[tokio::test]
async fn admin_config_is_read_merged_and_persisted() {
    let w = World::new().await;
    let r = w.app.get("/api/admin/config", &w.admin.token).await;
    r.expect(200);
    assert_eq!(r.json["tariff"]["per_km"], 2.5);
    let r = w
        .app
        .patch(
            "/api/admin/config",
            &w.admin.token,
            json!({"tariff": {"per_km": 3.0}, "road_factor": 1.5}),
        )
        .await;
    r.expect(200);
    assert_eq!(r.json["tariff"]["per_km"], 3.0);
    assert_eq!(r.json["tariff"]["base_fee"], 0.0);
    assert_eq!(r.json["vehicle_speeds"]["bike"], 15.0);
    let saved = w.app.store.system_config().await.unwrap().unwrap();
    assert_eq!(saved.version, 1);
    assert_eq!(saved.config.road_factor, 1.5);
    assert_eq!(saved.config.tariff.per_km.cents(), 300);
}

#[tokio::test]
async fn serves_over_a_real_socket_and_shuts_down_gracefully() {
    let app = App::new().await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (stop, stopped) = tokio::sync::oneshot::channel::<()>();
    let server = tokio::spawn(medex_http::serve(listener, app.router.clone(), async {
        let _ = stopped.await;
    }));

    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    let mut stream = tokio::net::TcpStream::connect(addr).await.unwrap();
    let body = r#"{"email":"x@y.io","password":"nope-nope"}"#;
    let request = format!(
        "POST /api/auth/login HTTP/1.1\r\nhost: {addr}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n{body}",
        body.len()
    );
    stream.write_all(request.as_bytes()).await.unwrap();
    let mut response = String::new();
    stream.read_to_string(&mut response).await.unwrap();
    assert!(response.starts_with("HTTP/1.1 401"), "{response}");
    assert!(response.contains("bad_credentials"));

    // With a peer address, the per-address limit applies across accounts.
    let app = App::with_config(medex_http::HttpConfig {
        login_throttle: medex_http::LoginThrottle {
            max_failures_per_account_and_address: 100,
            max_failures_per_address: 3,
            ..Default::default()
        },
        ..Default::default()
    })
    .await;
    let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr2 = listener.local_addr().unwrap();
    let (stop2, stopped2) = tokio::sync::oneshot::channel::<()>();
    let server2 = tokio::spawn(medex_http::serve(listener, app.router.clone(), async {
        let _ = stopped2.await;
    }));
    let mut last = String::new();
    for i in 0..4 {
        let mut stream = tokio::net::TcpStream::connect(addr2).await.unwrap();
        let body = format!(r#"{{"email":"user{i}@y.io","password":"nope-nope"}}"#);
        let request = format!(
            "POST /api/auth/login HTTP/1.1\r\nhost: {addr2}\r\ncontent-type: application/json\r\n\
             content-length: {}\r\nconnection: close\r\n\r\n{body}",
            body.len()
        );
        stream.write_all(request.as_bytes()).await.unwrap();
        last.clear();
        stream.read_to_string(&mut last).await.unwrap();
    }
    assert!(last.starts_with("HTTP/1.1 429"), "{last}");
    assert!(last.to_ascii_lowercase().contains("retry-after:"));

    stop.send(()).unwrap();
    stop2.send(()).unwrap();
    server.await.unwrap().unwrap();
    server2.await.unwrap().unwrap();
    assert!(tokio::net::TcpStream::connect(addr).await.is_err());
}

#[tokio::test]
async fn a_batch_of_late_fixes_is_one_report_whose_newest_is_the_position() {
    let w = World::new().await;
    let order = w.order_in("picked_up").await;
    let at = |minutes_ago: i64| {
        (chrono::Utc::now() - chrono::Duration::minutes(minutes_ago))
            .to_rfc3339_opts(chrono::SecondsFormat::Millis, true)
    };
    let r = w
        .report_location(json!({"fixes": [
            {"latitude": 52.52, "longitude": 13.40, "recorded_at": at(3)},
            {"latitude": 52.53, "longitude": 13.40, "recorded_at": at(1), "speed": 20.0},
            {"latitude": 52.51, "longitude": 13.40, "recorded_at": at(9)},
        ]}))
        .await;
    r.expect(200);
    assert_eq!(r.json["latitude"], 52.53);
    assert_eq!(r.json["order_id"], order.as_str());

    // Too old, in the future, too many: 422 with the fields that are wrong.
    let r = w
        .report_location(json!({"fixes": [
            {"latitude": 52.5, "longitude": 13.4, "recorded_at": at(2)},
            {"latitude": 52.5, "longitude": 13.4, "recorded_at": at(25 * 60)},
            {"latitude": 52.5, "longitude": 13.4, "recorded_at": at(-60)},
        ]}))
        .await;
    r.expect(422);
    let fields: Vec<&str> = r.json["errors"]
        .as_array()
        .unwrap()
        .iter()
        .map(|e| e["field"].as_str().unwrap())
        .collect();
    assert_eq!(fields, ["fixes[1].recorded_at", "fixes[2].recorded_at"]);
    let many: Vec<Value> = (0..101)
        .map(|_| json!({"latitude": 52.5, "longitude": 13.4, "recorded_at": at(1)}))
        .collect();
    let r = w.report_location(json!({ "fixes": many })).await;
    r.expect(422);
    assert_eq!(r.json["errors"][0]["field"], "fixes");
    w.report_location(json!({"fixes": "soon"}))
        .await
        .expect(422);

    // An older batch joins the trail and leaves the position where it is.
    w.report_location(
        json!({"fixes": [{"latitude": 52.5, "longitude": 13.4, "recorded_at": at(30)}]}),
    )
    .await
    .expect(200);
    let r = w.driver_record().await;
    assert_eq!(r.json["current_latitude"], 52.53);
}
