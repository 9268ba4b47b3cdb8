//! MedEx on Redis, for several instances behind one address: the event bus between them over
//! pub/sub ([`RedisBus`]), and the throttling counts they share ([`RedisCounts`]).
//!
//! Each instance delivers its own events to its own subscribers at once and publishes them on
//! a channel per topic (a pharmacy, an order's tracker by the SHA-256 of its token, a driver),
//! every name under one prefix. It subscribes to the channels of the topics its subscribers
//! listen to, and hands what other instances published to its fan-out. Events of one order
//! reach each topic in commit order (older versions than a topic saw are dropped).
//!
//! Publishing never waits: events queue for a publisher task. When Redis cannot be reached, or
//! the queue overflows, the instance goes on without it: its own subscribers keep receiving
//! its own events, the events that could not be published are noted, and when Redis is back
//! the other instances are told which topics lost events; every subscriber of an instance that
//! lost its subscription connection is resynced (closed, to reconnect and read a fresh state)
//! when it drops and again when it comes back. The instance reconnects by itself.
//!
//! ```no_run
//! # async fn run() -> Result<(), medex_redis::ConfigError> {
//! use std::sync::Arc;
//! use medex_core::events::{Event, Fanout, Resync, Topic, Interest};
//! use medex_redis::{RedisBus, RedisOptions};
//!
//! struct Print;
//! impl Fanout for Print {
//!     fn deliver(&self, topic: &Topic, event: &Event) { println!("{topic:?}: {event:?}") }
//!     fn resync(&self, which: &Resync) { println!("resync {which:?}") }
//! }
//!
//! let builder = RedisBus::builder(RedisOptions::new("redis://127.0.0.1:6379", "medex"))?;
//! let interest: Arc<dyn Interest> = builder.interest();
//! // A fan-out that watches topics through `interest` (the WebSocket hub does).
//! let bus = builder.start(Arc::new(Print));
//! # Ok(()) }
//! ```

mod bus;
mod channels;
mod counts;
mod fresh;
mod link;
#[cfg(feature = "testing")]
pub mod testing;
mod wire;

use std::time::Duration;

pub use bus::{BusBuilder, RedisBus};
pub use counts::RedisCounts;
pub use link::Unavailable;

/// Where Redis is and how to use it.
#[derive(Clone)]
pub struct RedisOptions {
    /// `redis://[user:password@]host:port[/db]`.
    pub url: String,
    /// Prefix of every channel and key (default `medex`): deployments sharing one Redis must
    /// differ in it, since pub/sub channels are not separated by database numbers.
    pub prefix: String,
    /// Events waiting to be published (default 65,536); more while Redis is slow are lost (and
    /// their topics resynced).
    pub queue: usize,
    /// How long connecting, subscribing and each command may take (default 2 s).
    pub timeout: Duration,
}

impl std::fmt::Debug for RedisOptions {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // The URL may hold a password.
        f.debug_struct("RedisOptions")
            .field("prefix", &self.prefix)
            .field("queue", &self.queue)
            .field("timeout", &self.timeout)
            .finish_non_exhaustive()
    }
}

impl RedisOptions {
    /// The Redis at `url`, with channels and keys under `prefix`, and the default limits.
    pub fn new(url: impl Into<String>, prefix: impl Into<String>) -> Self {
        Self {
            url: url.into(),
            prefix: prefix.into(),
            queue: 65_536,
            timeout: Duration::from_secs(2),
        }
    }

    fn client(&self) -> Result<redis::Client, ConfigError> {
        redis::Client::open(self.url.as_str()).map_err(|e| ConfigError(e.to_string()))
    }
}

/// The Redis URL does not parse.
#[derive(Debug, Clone, thiserror::Error)]
#[error("invalid Redis URL: {0}")]
pub struct ConfigError(String);
