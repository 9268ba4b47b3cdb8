//! Throttling counts shared by every instance: a Redis key per count, under
//! `{prefix}:throttle:`, whose time to live is the count's window. The HTTP layer hashes its keys
//! (HMAC of the e-mail and address) before they get here, so Redis holds neither in clear.
//!
//! Counting is one script run (`INCR`, then `PEXPIRE` when the key has no expiry yet), so a
//! count always ends with its window even if an instance dies between the two steps.

use std::sync::Arc;
use std::time::Duration;

use redis::Script;

use crate::RedisOptions;
use crate::channels::Names;
use crate::link::{Link, Unavailable};

const COUNT: &str = r"
local n = redis.call('INCR', KEYS[1])
if redis.call('PTTL', KEYS[1]) < 0 then
  redis.call('PEXPIRE', KEYS[1], ARGV[1])
end
return n
";

/// Counts in Redis, for the login and registration throttle of several instances.
#[derive(Clone)]
pub struct RedisCounts {
    link: Arc<Link>,
    names: Names,
    script: Script,
}

impl std::fmt::Debug for RedisCounts {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RedisCounts").finish_non_exhaustive()
    }
}

fn millis(window: Duration) -> u64 {
    u64::try_from(window.as_millis()).unwrap_or(u64::MAX).max(1)
}

impl RedisCounts {
    /// Counts on the Redis of `options` (no connection is made until the first count).
    pub fn new(options: &RedisOptions) -> Result<Self, crate::ConfigError> {
        Ok(Self {
            link: Arc::new(Link::new(options.client()?, options.timeout)),
            names: Names::new(&options.prefix),
            script: Script::new(COUNT),
        })
    }

    /// The count under `key` in its current window and how long that window still runs, or
    /// `None` when there is none.
    pub async fn get(&self, key: &str) -> Result<Option<(u32, Duration)>, Unavailable> {
        let key = self.names.count(key);
        let (count, ttl): (Option<u32>, i64) = self
            .link
            .run(|mut c| async move {
                redis::pipe()
                    .get(&key)
                    .cmd("PTTL")
                    .arg(&key)
                    .query_async(&mut c)
                    .await
            })
            .await?;
        Ok(match (count, u64::try_from(ttl)) {
            // A window in its last millisecond (PTTL 0) still counts: `add` would count into
            // it, so it is not reported gone before Redis removes it.
            (Some(count), Ok(ttl)) => Some((count, Duration::from_millis(ttl))),
            _ => None,
        })
    }

    /// Counts one event under `key`, opening a window of `window` if none runs; the new count.
    pub async fn add(&self, key: &str, window: Duration) -> Result<u32, Unavailable> {
        let key = self.names.count(key);
        let script = self.script.clone();
        self.link
            .run(|mut c| async move {
                script
                    .key(&key)
                    .arg(millis(window))
                    .invoke_async(&mut c)
                    .await
            })
            .await
    }

    /// Forgets `key`.
    pub async fn clear(&self, key: &str) -> Result<(), Unavailable> {
        let key = self.names.count(key);
        self.link
            .run(|mut c| async move { redis::cmd("DEL").arg(&key).query_async(&mut c).await })
            .await
    }
}
