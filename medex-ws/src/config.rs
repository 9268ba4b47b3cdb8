//! Limits and timings of the WebSocket endpoints.

use std::time::Duration;

use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

/// Limits and timings of the WebSocket endpoints. [`Default`] gives the documented values; change
/// fields with struct update syntax:
///
/// ```
/// use std::time::Duration;
/// use medex_ws::WsConfig;
///
/// let config = WsConfig {
///     min_fix_interval: Duration::from_millis(500),
///     allowed_origins: Some(vec!["https://dispatch.example.com".into()]),
///     ..WsConfig::default()
/// };
/// assert_eq!(config.max_message_size, 4096);
/// ```
#[derive(Debug, Clone)]
pub struct WsConfig {
    /// Largest message (and frame) a client may send, in bytes; larger ones close the connection
    /// with 1009. Default 4 KiB: a location message is about 200 bytes.
    pub max_message_size: usize,
    /// Bytes tungstenite allocates per connection for reading. It is allocated eagerly, so it
    /// decides the memory of an idle socket. Default 4 KiB.
    pub read_buffer_size: usize,
    /// Outgoing bytes collected before a write to the socket; longer messages (initial states)
    /// are sent as fragments of this size. tungstenite keeps its write buffer at the largest
    /// size it reached, so this bounds the write memory of a connection. Default 4 KiB.
    pub write_buffer_size: usize,
    /// Status events (`order_created`, `order_status`, `driver_status`, `assignment`) a connection
    /// may have waiting; one more closes it with 1013 and the client resyncs from `initial_state`
    /// when it reconnects. Location updates do not count: they coalesce to the latest per driver.
    /// Default 256.
    pub status_queue: usize,
    /// Fixes from one driver connection closer together than this are coalesced: the latest one
    /// waits and is recorded when the interval has passed, the ones it replaced are never
    /// recorded. `Duration::ZERO` records every fix. Default 1 s.
    pub min_fix_interval: Duration,
    /// How often the server pings. Default 20 s.
    pub ping_interval: Duration,
    /// A connection from which nothing (not even a pong) arrives for this long is closed with
    /// 1001. Default 60 s.
    pub idle_timeout: Duration,
    /// A write to a client that does not read for this long drops the connection without a
    /// close handshake (the socket is full, a close frame could not be sent). Default 30 s.
    pub write_timeout: Duration,
    /// Invalid messages (bad JSON, bad values, unknown types) tolerated within
    /// [`invalid_window`](Self::invalid_window); each is answered with an `error` message, the
    /// one that reaches this number closes the connection with 1008. Default 10.
    pub max_invalid_messages: u32,
    /// See [`max_invalid_messages`](Self::max_invalid_messages). Default 60 s.
    pub invalid_window: Duration,
    /// How long a closing connection waits for the client's close frame. Default 5 s.
    pub close_timeout: Duration,
    /// When set, a browser's `Origin` header must be one of these (exact match, e.g.
    /// `https://app.example.com`) or the handshake is refused with 403. Requests without an
    /// `Origin` header (non-browser clients) are not affected. Default `None`: any origin.
    pub allowed_origins: Option<Vec<String>>,
    /// Connections one account may have open at once; one more is refused with 429. Default 20.
    pub max_per_account: usize,
    /// Connections one client address may have open at once (signed in or not); one more is
    /// refused with 429. The address is [`PeerAddr`](crate::PeerAddr), when the server gives it.
    /// Default 1000.
    pub max_per_address: usize,
}

impl Default for WsConfig {
    fn default() -> Self {
        Self {
            max_message_size: 4 * 1024,
            read_buffer_size: 4 * 1024,
            write_buffer_size: 4 * 1024,
            status_queue: 256,
            min_fix_interval: Duration::from_secs(1),
            ping_interval: Duration::from_secs(20),
            idle_timeout: Duration::from_secs(60),
            write_timeout: Duration::from_secs(30),
            max_invalid_messages: 10,
            invalid_window: Duration::from_secs(60),
            close_timeout: Duration::from_secs(5),
            allowed_origins: None,
            max_per_account: 20,
            max_per_address: 1000,
        }
    }
}

impl WsConfig {
    /// The tungstenite settings these limits imply.
    pub(crate) fn tungstenite(&self) -> WebSocketConfig {
        WebSocketConfig::default()
            .read_buffer_size(self.read_buffer_size.max(256))
            .write_buffer_size(self.write_buffer_size)
            .max_message_size(Some(self.max_message_size))
            .max_frame_size(Some(self.max_message_size))
    }

    /// Whether a handshake with this `Origin` header may proceed.
    pub(crate) fn origin_allowed(&self, origin: Option<&str>) -> bool {
        match (&self.allowed_origins, origin) {
            (Some(allowed), Some(origin)) => allowed.iter().any(|a| a == origin),
            _ => true,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn origins_are_checked_only_when_configured_and_sent() {
        let open = WsConfig::default();
        assert!(open.origin_allowed(Some("https://evil.example")));
        let closed = WsConfig {
            allowed_origins: Some(vec!["https://app.example".into()]),
            ..WsConfig::default()
        };
        assert!(closed.origin_allowed(Some("https://app.example")));
        assert!(!closed.origin_allowed(Some("https://evil.example")));
        assert!(closed.origin_allowed(None));
    }

    #[test]
    fn tungstenite_limits_follow_the_config() {
        let t = WsConfig::default().tungstenite();
        assert_eq!(t.max_message_size, Some(4096));
        assert_eq!(t.max_frame_size, Some(4096));
        assert_eq!(t.read_buffer_size, 4096);
    }
}
