//! How the server takes connections: how long a client may take to send a request's headers
//! (which is also how long a kept-alive connection may sit idle between requests), and how many
//! connections may be open at once. A connection over the limit is answered at once with a 503 in
//! the API's error format and closed, so a flood of sockets cannot exhaust the process's file
//! descriptors, and a client that opened a socket and never finished its request cannot hold it.

use std::sync::{Arc, LazyLock};
use std::time::Duration;

use hyper_util::rt::{TokioExecutor, TokioTimer};
use hyper_util::server::conn::auto;
use tokio::io::AsyncWriteExt as _;
use tokio::net::TcpStream;
use tokio::sync::{OwnedSemaphorePermit, Semaphore};

/// The body of the answer a connection over the limit receives.
const REFUSAL_BODY: &str =
    r#"{"detail":"too many open connections; try again shortly","code":"server_busy"}"#;

/// What a connection over the limit receives before it is closed: a whole HTTP/1.1 answer.
static REFUSAL: LazyLock<Vec<u8>> = LazyLock::new(|| {
    format!(
        "HTTP/1.1 503 Service Unavailable\r\ncontent-type: application/json\r\nretry-after: 1\r\n\
         cache-control: no-store\r\nconnection: close\r\ncontent-length: {}\r\n\r\n{REFUSAL_BODY}",
        REFUSAL_BODY.len()
    )
    .into_bytes()
});

/// Counts open connections against a maximum.
#[derive(Clone)]
pub(crate) struct ConnectionLimit {
    permits: Arc<Semaphore>,
}

impl ConnectionLimit {
    pub(crate) fn new(max: usize) -> Self {
        Self {
            permits: Arc::new(Semaphore::new(max)),
        }
    }

    /// A place for one more connection, held until dropped; `None` when all are taken.
    pub(crate) fn admit(&self) -> Option<OwnedSemaphorePermit> {
        self.permits.clone().try_acquire_owned().ok()
    }
}

/// Answers a connection over the limit with [`REFUSAL`] and closes it, without waiting long for a
/// client that does not read.
pub(crate) async fn refuse(mut stream: TcpStream) {
    metrics::counter!("medex_connections_refused_total").increment(1);
    let _ = tokio::time::timeout(Duration::from_secs(1), async {
        stream.write_all(&REFUSAL).await?;
        stream.shutdown().await
    })
    .await;
}

/// The HTTP/1 and HTTP/2 connection builder with the server's timeouts.
pub(crate) fn builder(header_timeout: Duration) -> auto::Builder<TokioExecutor> {
    let mut builder = auto::Builder::new(TokioExecutor::new());
    builder
        .http1()
        .timer(TokioTimer::new())
        .header_read_timeout(header_timeout);
    // HTTP/2 has no header timeout per request: pings find peers that went away.
    builder
        .http2()
        .timer(TokioTimer::new())
        .keep_alive_interval(header_timeout)
        .keep_alive_timeout(header_timeout);
    builder
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_refusal_is_a_complete_http_answer_in_the_error_format() {
        let text = std::str::from_utf8(&REFUSAL).unwrap();
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains(&format!("content-length: {}", body.len())));
        let json: serde_json::Value = serde_json::from_str(body).unwrap();
        assert_eq!(json["code"], "server_busy");
        assert!(json["detail"].is_string());
    }

    #[tokio::test]
    async fn the_limit_admits_until_full_and_again_when_one_leaves() {
        let limit = ConnectionLimit::new(2);
        let first = limit.admit().unwrap();
        let _second = limit.admit().unwrap();
        assert!(limit.admit().is_none());
        drop(first);
        assert!(limit.admit().is_some());
    }
}
