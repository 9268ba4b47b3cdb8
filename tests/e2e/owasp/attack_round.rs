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
    assert!(files >= 2, "the database and the secret were checked");
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
