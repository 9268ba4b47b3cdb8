//! One command connection to Redis that comes back by itself: made when first needed, dropped
//! after any failed command, made again on the next call. While Redis is unreachable, calls
//! within [`RETRY_AFTER`] of a failed attempt fail at once instead of each waiting for a
//! connection timeout: a login, say, is not held up by a bus that is down.

use std::future::Future;
use std::time::{Duration, Instant};

use redis::aio::MultiplexedConnection;
use redis::{AsyncConnectionConfig, Client};
use tokio::sync::Mutex;

/// How long after a failed attempt calls fail without trying.
pub(crate) const RETRY_AFTER: Duration = Duration::from_millis(500);

/// Redis could not answer.
#[derive(Debug, Clone, thiserror::Error)]
#[error("redis unavailable: {0}")]
pub struct Unavailable(pub String);

#[derive(Default)]
struct State {
    connection: Option<MultiplexedConnection>,
    failed_at: Option<Instant>,
}

pub(crate) struct Link {
    client: Client,
    config: AsyncConnectionConfig,
    state: Mutex<State>,
}

impl Link {
    /// Connections with `timeout` for connecting and for every answer.
    pub(crate) fn new(client: Client, timeout: Duration) -> Self {
        Self {
            client,
            config: AsyncConnectionConfig::new()
                .set_connection_timeout(Some(timeout))
                .set_response_timeout(Some(timeout)),
            state: Mutex::new(State::default()),
        }
    }

    async fn connection(&self) -> Result<MultiplexedConnection, Unavailable> {
        let mut state = self.state.lock().await;
        if let Some(connection) = &state.connection {
            return Ok(connection.clone());
        }
        if state.failed_at.is_some_and(|at| at.elapsed() < RETRY_AFTER) {
            return Err(Unavailable("not reachable a moment ago".into()));
        }
        match self
            .client
            .get_multiplexed_async_connection_with_config(&self.config)
            .await
        {
            Ok(connection) => {
                state.connection = Some(connection.clone());
                state.failed_at = None;
                Ok(connection)
            }
            Err(e) => {
                state.failed_at = Some(Instant::now());
                Err(Unavailable(e.to_string()))
            }
        }
    }

    /// Runs `command` on the connection; a failure drops the connection for the next call to
    /// make anew.
    pub(crate) async fn run<T, F, Fut>(&self, command: F) -> Result<T, Unavailable>
    where
        F: FnOnce(MultiplexedConnection) -> Fut,
        Fut: Future<Output = redis::RedisResult<T>>,
    {
        let connection = self.connection().await?;
        match command(connection).await {
            Ok(value) => Ok(value),
            Err(e) => {
                // A server's error answer leaves the connection usable; anything else may not.
                if e.is_unrecoverable_error()
                    || e.is_io_error()
                    || e.is_timeout()
                    || e.is_connection_dropped()
                {
                    let mut state = self.state.lock().await;
                    state.connection = None;
                    state.failed_at = Some(Instant::now());
                }
                Err(Unavailable(e.to_string()))
            }
        }
    }
}
