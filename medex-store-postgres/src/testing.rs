//! A PostgreSQL database of its own for each test (feature `testing`), for this crate's tests and
//! any other crate's that need PostgreSQL.
//!
//! Tests read the server from `MEDEX_TEST_DATABASE_URL` (e.g.
//! `postgres://postgres@127.0.0.1:5432/test`); [`TestDatabase::create`] makes a uniquely named
//! database there and drops it when the value is dropped, also when the test fails. Without the
//! variable it prints one line and answers `None`, so the test passes on a machine with no
//! PostgreSQL; with `MEDEX_REQUIRE_SERVICES=1` a missing variable or an unreachable server fails
//! the test instead.
//!
//! ```no_run
//! # async fn a_test() {
//! use medex_store_postgres::{PgStore, testing::TestDatabase};
//!
//! let Some(db) = TestDatabase::create("my_test").await else { return };
//! let store = PgStore::connect(db.url()).await.unwrap();
//! # }
//! ```

use std::io::Write as _;
use std::str::FromStr;
use std::sync::atomic::{AtomicU64, Ordering};

use tokio_postgres::config::Host;
use tokio_postgres::{Config, NoTls};

/// The variable naming the PostgreSQL server tests may use.
pub const DATABASE_URL_VARIABLE: &str = "MEDEX_TEST_DATABASE_URL";
/// The variable that turns a skipped service test into a failure (`1`).
pub const REQUIRE_SERVICES_VARIABLE: &str = "MEDEX_REQUIRE_SERVICES";

/// Whether `MEDEX_REQUIRE_SERVICES=1`: tests must not skip for want of a service.
pub fn services_required() -> bool {
    std::env::var(REQUIRE_SERVICES_VARIABLE).is_ok_and(|v| v == "1")
}

/// The server URL from `MEDEX_TEST_DATABASE_URL`; `None` after one line on standard error when it
/// is unset (a skip).
///
/// # Panics
///
/// When it is unset and [`services_required`].
pub fn server_url(test: &str) -> Option<String> {
    match std::env::var(DATABASE_URL_VARIABLE) {
        Ok(url) if !url.trim().is_empty() => Some(url),
        _ if services_required() => panic!(
            "{test}: {DATABASE_URL_VARIABLE} is not set, and {REQUIRE_SERVICES_VARIABLE}=1 \
             forbids skipping"
        ),
        _ => {
            // Straight to the process's standard error: the test harness would hide a print.
            let _ = writeln!(
                std::io::stderr(),
                "skipped {test}: set {DATABASE_URL_VARIABLE} to run it against PostgreSQL"
            );
            None
        }
    }
}

/// A database created for one test; dropped (with its connections) when this value drops.
#[derive(Debug)]
pub struct TestDatabase {
    name: String,
    url: String,
    server: Config,
}

impl TestDatabase {
    /// Creates a fresh, empty database for `test` on the server of `MEDEX_TEST_DATABASE_URL`;
    /// `None` when that is unset (see [`server_url`]).
    ///
    /// # Panics
    ///
    /// When the variable is set but the server cannot be reached or refuses: a test that was asked
    /// to use PostgreSQL does not silently skip.
    pub async fn create(test: &str) -> Option<Self> {
        Some(Self::create_on(&server_url(test)?, test).await)
    }

    /// Creates a fresh, empty database for `test` on the server of `server_url` (whose own
    /// database is only used to create and drop this one).
    ///
    /// # Panics
    ///
    /// When the URL does not parse, or the server cannot be reached or refuses.
    pub async fn create_on(server_url: &str, test: &str) -> Self {
        let server = Config::from_str(server_url)
            .unwrap_or_else(|e| panic!("{test}: the database URL does not parse: {e}"));
        let name = unique_name(test);
        let client = connect(&server)
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot reach PostgreSQL at {server_url}: {e}"));
        client
            .batch_execute(&format!("CREATE DATABASE \"{name}\""))
            .await
            .unwrap_or_else(|e| panic!("{test}: cannot create database {name}: {e}"));
        let url = with_database(&server, &name);
        Self { name, url, server }
    }

    /// Its connection string, for `PgStore::connect` or `MEDEX_DATABASE_URL`.
    pub fn url(&self) -> &str {
        &self.url
    }

    /// Its name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for TestDatabase {
    fn drop(&mut self) {
        // Drop runs inside async tests too, where blocking on the runtime is not allowed: a
        // thread of its own with a small runtime does the work, and the drop waits for it.
        let server = self.server.clone();
        let name = self.name.clone();
        let dropped = std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread()
                .enable_all()
                .build()?;
            runtime.block_on(async {
                let client = connect(&server).await.map_err(std::io::Error::other)?;
                client
                    .batch_execute(&format!("DROP DATABASE IF EXISTS \"{name}\" WITH (FORCE)"))
                    .await
                    .map_err(std::io::Error::other)
            })
        })
        .join();
        if !matches!(dropped, Ok(Ok(()))) {
            let _ = writeln!(
                std::io::stderr(),
                "could not drop test database {}: {dropped:?}",
                self.name
            );
        }
    }
}

async fn connect(config: &Config) -> Result<tokio_postgres::Client, tokio_postgres::Error> {
    let (client, connection) = config.connect(NoTls).await?;
    tokio::spawn(async move {
        let _ = connection.await;
    });
    Ok(client)
}

/// `medex_test_<test>_<pid>_<n>`: unique per process and call, readable in `\l`, within
/// PostgreSQL's 63 bytes.
fn unique_name(test: &str) -> String {
    static NEXT: AtomicU64 = AtomicU64::new(0);
    let n = NEXT.fetch_add(1, Ordering::Relaxed);
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.subsec_nanos());
    let test: String = test
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() {
                c.to_ascii_lowercase()
            } else {
                '_'
            }
        })
        .take(24)
        .collect();
    format!("medex_test_{test}_{}_{n}_{nanos}", std::process::id())
}

/// The connection string of database `name` on the server of `config`, in key=value form.
fn with_database(config: &Config, name: &str) -> String {
    let quote = |v: &str| format!("'{}'", v.replace('\\', "\\\\").replace('\'', "\\'"));
    let mut parts = Vec::new();
    let hosts: Vec<String> = config
        .get_hosts()
        .iter()
        .map(|h| match h {
            Host::Tcp(host) => host.clone(),
            #[cfg(unix)]
            Host::Unix(path) => path.display().to_string(),
        })
        .collect();
    if !hosts.is_empty() {
        parts.push(format!("host={}", quote(&hosts.join(","))));
    }
    let ports: Vec<String> = config.get_ports().iter().map(u16::to_string).collect();
    if !ports.is_empty() {
        parts.push(format!("port={}", ports.join(",")));
    }
    if let Some(user) = config.get_user() {
        parts.push(format!("user={}", quote(user)));
    }
    if let Some(password) = config.get_password() {
        parts.push(format!(
            "password={}",
            quote(&String::from_utf8_lossy(password))
        ));
    }
    parts.push(format!("dbname={}", quote(name)));
    parts.join(" ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_are_unique_and_fit() {
        let a = unique_name("a test with spaces and a very long name indeed");
        let b = unique_name("a test with spaces and a very long name indeed");
        assert_ne!(a, b);
        assert!(a.len() <= 63, "{a}");
        assert!(a.chars().all(|c| c.is_ascii_alphanumeric() || c == '_'));
    }

    #[test]
    fn the_database_is_swapped_and_the_rest_kept() {
        let config = Config::from_str("postgres://me:p'w@db.example:6543/test").unwrap();
        let url = with_database(&config, "medex_test_x");
        let parsed = Config::from_str(&url).unwrap();
        assert_eq!(parsed.get_dbname(), Some("medex_test_x"));
        assert_eq!(parsed.get_user(), Some("me"));
        assert_eq!(parsed.get_password(), Some(&b"p'w"[..]));
        assert_eq!(parsed.get_ports(), &[6543]);
        assert_eq!(parsed.get_hosts(), &[Host::Tcp("db.example".into())]);
    }
}
