//! Redis for tests (feature `testing`), for this crate's tests and other crates'.
//!
//! Tests read the server from `MEDEX_TEST_REDIS_URL` (e.g. `redis://127.0.0.1:6379`) and work
//! under a prefix of their own ([`TestRedis`]), whose keys are deleted when it drops; channels
//! need no cleaning (pub/sub keeps nothing). Without the variable [`TestRedis::create`] prints one
//! line and answers `None`, so the test passes on a machine without Redis; with
//! `MEDEX_REQUIRE_SERVICES=1` it fails instead. [`PrivateRedis`] is a `redis-server` of the
//! test's own on a port of its own, for tests that stop and restart it.
//!
//! ```no_run
//! # async fn a_test() {
//! use medex_redis::testing::TestRedis;
//!
//! let Some(redis) = TestRedis::create("my_test") else { return };
//! let options = redis.options();
//! # }
//! ```

use std::io::Write as _;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use crate::RedisOptions;

/// The variable naming the Redis server tests may use.
pub const REDIS_URL_VARIABLE: &str = "MEDEX_TEST_REDIS_URL";
/// The variable that turns a skipped service test into a failure (`1`).
pub const REQUIRE_SERVICES_VARIABLE: &str = "MEDEX_REQUIRE_SERVICES";

/// Whether `MEDEX_REQUIRE_SERVICES=1`: tests must not skip for want of a service.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_VARIABLE).is_ok_and(|v| v == "1")
}

/// The server URL from `MEDEX_TEST_REDIS_URL`; `None` after one line on standard error when it is
/// unset (a skip).
///
/// # Panics
///
/// When it is unset and [`services_required`].
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(REDIS_URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if services_required() => panic!(
            "{test}: {REDIS_URL_VARIABLE} is not set, and {REQUIRE_SERVICES_VARIABLE}=1 forbids \
             skipping"
        ),
        _ => {
            let _ = writeln!(
                std::io::stderr(),
                "skipped {test}: set {REDIS_URL_VARIABLE} to run it against Redis"
            );
            None
        }
    }
}

/// A prefix no other test run uses: the test's name, the process and a counter.
pub fn unique_prefix(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_micros());
    format!("medex-test-{test}-{}-{stamp}-{n}", std::process::id())
}

/// A prefix of one test on the shared Redis; its keys are deleted when this drops.
#[derive(Debug)]
pub struct TestRedis {
    url: String,
    prefix: String,
}

impl TestRedis {
    /// A fresh prefix for `test` on the Redis of `MEDEX_TEST_REDIS_URL`; `None` when that is
    /// unset (see [`server_url`]).
    ///
    /// # Panics
    ///
    /// When the variable is set but the server does not answer.
    pub fn create(test: &str) -> Option<Self> {
        let url = server_url(test)?;
        let mut connection = redis::Client::open(url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
            .unwrap_or_else(|e| panic!("{test}: cannot reach Redis at {url}: {e}"));
        let _: String = redis::cmd("PING")
            .query(&mut connection)
            .unwrap_or_else(|e| panic!("{test}: Redis at {url} does not answer: {e}"));
        Some(Self {
            url,
            prefix: unique_prefix(test),
        })
    }

    /// The server's URL.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// The prefix of this test.
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// Options for this server and prefix, with a short timeout.
    pub fn options(&self) -> RedisOptions {
        RedisOptions {
            timeout: Duration::from_secs(1),
            ..RedisOptions::new(self.url.clone(), self.prefix.clone())
        }
    }

    /// The keys under the prefix.
    pub fn keys(&self) -> Vec<String> {
        let Ok(mut connection) = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        else {
            return Vec::new();
        };
        redis::cmd("KEYS")
            .arg(format!("{}:*", self.prefix))
            .query(&mut connection)
            .unwrap_or_default()
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        let keys = self.keys();
        if keys.is_empty() {
            return;
        }
        if let Ok(mut connection) = redis::Client::open(self.url.as_str())
            .and_then(|c| c.get_connection_with_timeout(Duration::from_secs(5)))
        {
            let _: Result<(), _> = redis::cmd("DEL").arg(&keys).query(&mut connection);
        }
    }
}

/// A `redis-server` of the test's own on a free port of 127.0.0.1, without persistence; killed
/// when dropped.
#[derive(Debug)]
pub struct PrivateRedis {
    port: u16,
    dir: PathBuf,
    child: Option<Child>,
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("a free port")
}

impl PrivateRedis {
    /// Whether a `redis-server` program can be run here.
    pub fn available() -> bool {
        Command::new("redis-server")
            .arg("--version")
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .is_ok_and(|s| s.success())
    }

    /// Starts one, in `dir` (its working directory and log), and waits until it answers.
    ///
    /// # Panics
    ///
    /// When it cannot be started or does not answer within 30 s.
    pub fn start(dir: &Path) -> Self {
        let mut redis = Self {
            port: free_port(),
            dir: dir.to_owned(),
            child: None,
        };
        redis.restart();
        redis
    }

    /// Its URL.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it (SIGKILL: connections break at once, as in a crash).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Starts it again on the same port (empty: it keeps nothing) and waits until it answers.
    ///
    /// # Panics
    ///
    /// When it cannot be started or does not answer within 30 s.
    pub fn restart(&mut self) {
        self.stop();
        let log = std::fs::File::create(self.dir.join(format!("redis-{}.log", self.port)))
            .expect("a log file for redis-server");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
                "--protected-mode",
                "no",
            ])
            .current_dir(&self.dir)
            .stdin(Stdio::null())
            .stdout(log.try_clone().expect("the log"))
            .stderr(log)
            .spawn()
            .expect("starting redis-server");
        self.child = Some(child);
        let started = Instant::now();
        let client = redis::Client::open(self.url().as_str()).expect("a Redis URL");
        loop {
            let answered = client
                .get_connection_with_timeout(Duration::from_secs(1))
                .and_then(|mut c| redis::cmd("PING").query::<String>(&mut c));
            if answered.is_ok() {
                return;
            }
            assert!(
                started.elapsed() < Duration::from_secs(30),
                "redis-server on port {} did not answer",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for PrivateRedis {
    fn drop(&mut self) {
        self.stop();
    }
}
