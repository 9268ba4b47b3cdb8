//! Server settings from `MEDEX_*` environment variables, each with a documented default.
//!
//! Parsing is separate from the process environment (`Settings::from_lookup`) so that tests can
//! feed variables without touching the real environment.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::time::Duration;

use base64::Engine as _;
use medex_core::config::{SystemConfig, Tariff, VehicleSpeeds};
use medex_core::custody::CustodyKeys;
use medex_core::model::Money;

use crate::web::TileLayer;

/// A setting that could not be used. The message names the variable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{variable}: {problem}")]
pub struct SettingsError {
    /// The environment variable.
    pub variable: &'static str,
    /// What is wrong with its value.
    pub problem: String,
}

/// How log lines are written.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LogFormat {
    /// Human-readable lines.
    Pretty,
    /// One JSON object per line, for log collectors.
    Json,
}

/// Where the JWT signing secret comes from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SecretSource {
    /// `MEDEX_JWT_SECRET`.
    Configured(Vec<u8>),
    /// Generated on first start and kept in the data directory (`jwt-secret`).
    GeneratedInDataDir,
}

/// Where the custody signing key comes from.
#[derive(Debug, Clone)]
pub enum CustodyKeySource {
    /// `MEDEX_CUSTODY_KEY`: base64 of a 32-byte Ed25519 seed.
    Configured(Box<CustodyKeys>),
    /// Generated on first start and kept in the data directory (`custody-keys.json`).
    GeneratedInDataDir,
}

/// `MEDEX_DATABASE_URL`: a PostgreSQL connection string. Its `Debug` hides it, since it may hold
/// a password.
#[derive(Clone, PartialEq, Eq)]
pub struct DatabaseUrl(String);

impl DatabaseUrl {
    /// The connection string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for DatabaseUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("DatabaseUrl(..)")
    }
}

/// `MEDEX_REDIS_URL`: a Redis connection string. Its `Debug` hides it, since it may hold a
/// password.
#[derive(Clone, PartialEq, Eq)]
pub struct RedisUrl(String);

impl RedisUrl {
    /// The connection string.
    pub fn as_str(&self) -> &str {
        &self.0
    }
}

impl std::fmt::Debug for RedisUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("RedisUrl(..)")
    }
}

/// Everything the server needs to start.
#[derive(Debug, Clone)]
pub struct Settings {
    /// `MEDEX_ADDR`, default `127.0.0.1:8000`.
    pub addr: SocketAddr,
    /// `MEDEX_DATA_DIR`, default `./medex-data`.
    pub data_dir: PathBuf,
    /// `MEDEX_UPLOAD_DIR`, default `<data dir>/uploads`.
    pub upload_dir: PathBuf,
    /// `MEDEX_DATABASE_URL`: PostgreSQL instead of sled in the data directory. Requires
    /// `MEDEX_JWT_SECRET`, since several instances must share one secret.
    pub database_url: Option<DatabaseUrl>,
    /// `MEDEX_DATABASE_POOL_SIZE`, default 16: connections each instance keeps to PostgreSQL.
    pub database_pool_size: usize,
    /// `MEDEX_JWT_SECRET` (at least 32 bytes), else generated in the data directory.
    pub jwt_secret: SecretSource,
    /// `MEDEX_DEV_MODE`, default false: allows a weak-looking configured secret.
    pub dev_mode: bool,
    /// `MEDEX_CUSTODY_KEY` (base64 of a 32-byte seed), else generated in the data directory.
    pub custody_key: CustodyKeySource,
    /// `MEDEX_CUSTODY_FORMER_KEYS`: base64 public keys of former custody keys, comma-separated,
    /// whose signatures still count (besides those the data directory's key file lists).
    pub custody_former_keys: Vec<String>,
    /// `MEDEX_ACCESS_TOKEN_MINUTES`, default 15.
    pub access_token_ttl: chrono::Duration,
    /// `MEDEX_REFRESH_TOKEN_DAYS`, default 7.
    pub refresh_token_ttl: chrono::Duration,
    /// `MEDEX_ADMIN_EMAIL` and `MEDEX_ADMIN_PASSWORD`: the first admin, created when none exists.
    pub first_admin: Option<(String, String)>,
    /// `MEDEX_CORS_ORIGINS`, comma-separated; empty (default) allows no cross-origin browser calls.
    pub cors_origins: Vec<String>,
    /// `MEDEX_LOG`, a tracing filter, default `info`.
    pub log_filter: String,
    /// `MEDEX_LOG_FORMAT`, `pretty` (default) or `json`.
    pub log_format: LogFormat,
    /// First values of the run-time configuration (tariff, speeds, road factor, proof defaults).
    pub system: SystemConfig,
    /// `MEDEX_MAX_BODY_BYTES`, default 65536.
    pub max_body_bytes: usize,
    /// `MEDEX_MAX_UPLOAD_BYTES`, default 5 MiB.
    pub max_upload_bytes: usize,
    /// `MEDEX_WS_MAX_MESSAGE_BYTES`, default 4096.
    pub ws_max_message_bytes: usize,
    /// `MEDEX_WS_IDLE_TIMEOUT_SECS`, default 60.
    pub ws_idle_timeout: Duration,
    /// `MEDEX_WS_MAX_PER_ACCOUNT`, default 20: live WebSockets one account may have.
    pub ws_max_per_account: usize,
    /// `MEDEX_WS_MAX_PER_ADDRESS`, default 1000: live WebSockets one client address may have.
    pub ws_max_per_address: usize,
    /// `MEDEX_WS_MIN_FIX_INTERVAL_MS`, default 1000: faster fixes from one driver are dropped.
    pub ws_min_fix_interval: Duration,
    /// `MEDEX_TRAIL_RETENTION_DAYS`, default 30.
    pub trail_retention_days: u32,
    /// `MEDEX_SLED_CACHE_MB`, default 1024 (sled's own default): the page cache of the sled
    /// store, in MiB.
    pub sled_cache_mb: u64,
    /// `MEDEX_HASH_CONCURRENCY`, default the number of CPUs: password hashes computed at once.
    pub hash_concurrency: usize,
    /// `MEDEX_SHUTDOWN_GRACE_SECS`, default 10: how long in-flight requests may finish.
    pub shutdown_grace: Duration,
    /// `MEDEX_HEADER_TIMEOUT_SECS`, default 10: time to send a request's headers, and the longest
    /// a kept-alive connection may sit idle between requests.
    pub header_timeout: Duration,
    /// `MEDEX_REGISTRATIONS_PER_HOUR`, default 20: account registrations (customers and
    /// pharmacies) one client address may make per hour.
    pub registrations_per_hour: u32,
    /// `MEDEX_METRICS_TOKEN`: when set, `/metrics` needs `Authorization: Bearer <token>`.
    pub metrics_token: Option<String>,
    /// `MEDEX_METRICS_ADDR`: when set, `/metrics` is served there only, not on `MEDEX_ADDR`.
    pub metrics_addr: Option<SocketAddr>,
    /// `MEDEX_MAX_CONNECTIONS`, default 16384: open connections (WebSockets included) at once;
    /// one more is answered 503 and closed.
    pub max_connections: usize,
    /// `MEDEX_REDIS_URL`: live updates between instances and the login throttle's counts in
    /// Redis. Unset: both stay in this process.
    pub redis_url: Option<RedisUrl>,
    /// `MEDEX_REDIS_PREFIX`, default `medex`: every Redis channel and key starts with it.
    pub redis_prefix: String,
    /// `MEDEX_TRUSTED_PROXIES`: addresses or networks of the load balancers whose
    /// `X-Forwarded-For` names the client. Empty (default): the header is ignored.
    pub trusted_proxies: Vec<medex_http::IpNet>,
    /// `MEDEX_TILE_URL` (a template like `https://tile.openstreetmap.org/{z}/{x}/{y}.png`) and
    /// `MEDEX_TILE_ATTRIBUTION`: map tiles under the maps of the tracking page, the console and
    /// the driver app. Default none: the pages draw their maps from the coordinates alone and
    /// work offline.
    pub tile_layer: Option<TileLayer>,
    /// `MEDEX_WEBHOOK_ALLOW_PRIVATE`, default false: webhook URLs may use plain `http://` and
    /// reach private, loopback and link-local addresses (development and tests only).
    pub webhook_allow_private: bool,
    /// `MEDEX_WEBHOOK_DISPATCH`, default true: this instance sends queued webhook deliveries.
    pub webhook_dispatch: bool,
    /// `MEDEX_WEBHOOK_TIMEOUT_MS`, default 10000: one delivery attempt's whole time, connecting
    /// included.
    pub webhook_timeout: Duration,
    /// `MEDEX_WEBHOOK_CONCURRENCY`, default 8: deliveries this instance sends at once.
    pub webhook_concurrency: usize,
    /// `MEDEX_WEBHOOK_RETRY_BASE_MS`, default 10000: the first wait before a retry (doubling,
    /// with jitter); shorter only for tests.
    pub webhook_retry_base: Duration,
    /// `MEDEX_OSRM_URL`: the operator's OSRM server, asked for street distances between the
    /// stops of runs. Unset (default): great circles × road factor.
    pub osrm_url: Option<String>,
    /// `MEDEX_OSRM_TIMEOUT_MS`, default 2000: one OSRM request's whole time.
    pub osrm_timeout: Duration,
}

/// Every variable the server reads, with its default and meaning, for `--help` and the README.
pub const VARIABLES: &[(&str, &str, &str)] = &[
    (
        "MEDEX_WEBHOOK_ALLOW_PRIVATE",
        "false",
        "webhook URLs may use http:// and private or loopback addresses (development and tests only)",
    ),
    (
        "MEDEX_WEBHOOK_DISPATCH",
        "true",
        "this instance sends queued webhook deliveries (false: others do)",
    ),
    (
        "MEDEX_WEBHOOK_TIMEOUT_MS",
        "10000",
        "time one webhook delivery attempt may take, connecting included",
    ),
    (
        "MEDEX_WEBHOOK_CONCURRENCY",
        "8",
        "webhook deliveries one instance sends at once",
    ),
    (
        "MEDEX_WEBHOOK_RETRY_BASE_MS",
        "10000",
        "first wait before retrying a webhook delivery, doubling up to an hour with jitter, for 24 h",
    ),
    (
        "MEDEX_ADDR",
        "127.0.0.1:8000",
        "address and port for HTTP and WebSocket",
    ),
    (
        "MEDEX_DATA_DIR",
        "./medex-data",
        "sled database and uploads (unless MEDEX_DATABASE_URL), generated secrets",
    ),
    (
        "MEDEX_DATABASE_URL",
        "unset (sled in the data directory)",
        "PostgreSQL connection string, e.g. postgres://medex:pw@db:5432/medex; requires MEDEX_JWT_SECRET",
    ),
    (
        "MEDEX_DATABASE_POOL_SIZE",
        "16",
        "connections to PostgreSQL per instance",
    ),
    (
        "MEDEX_UPLOAD_DIR",
        "<data dir>/uploads",
        "where proof photos and signatures are stored on sled (with MEDEX_DATABASE_URL they are in the database)",
    ),
    (
        "MEDEX_JWT_SECRET",
        "generated, kept in <data dir>/jwt-secret",
        "HS256 signing secret, at least 32 bytes",
    ),
    (
        "MEDEX_DEV_MODE",
        "false",
        "allow a weak-looking MEDEX_JWT_SECRET or MEDEX_CUSTODY_KEY (never in production)",
    ),
    (
        "MEDEX_CUSTODY_KEY",
        "generated, kept in <data dir>/custody-keys.json",
        "base64 of the 32-byte Ed25519 seed that signs custody records",
    ),
    (
        "MEDEX_CUSTODY_FORMER_KEYS",
        "empty",
        "comma-separated base64 public keys of rotated-out custody keys, still accepted",
    ),
    ("MEDEX_ACCESS_TOKEN_MINUTES", "15", "access token lifetime"),
    ("MEDEX_REFRESH_TOKEN_DAYS", "7", "refresh token lifetime"),
    (
        "MEDEX_ADMIN_EMAIL",
        "unset",
        "first admin, created at start when no admin exists",
    ),
    (
        "MEDEX_ADMIN_PASSWORD",
        "unset",
        "password of that first admin (8 to 128 characters)",
    ),
    (
        "MEDEX_CORS_ORIGINS",
        "empty",
        "comma-separated origins allowed to call the API from browsers",
    ),
    (
        "MEDEX_LOG",
        "info",
        "log filter, e.g. `info,medex_http=debug`",
    ),
    ("MEDEX_LOG_FORMAT", "pretty", "`pretty` or `json`"),
    (
        "MEDEX_TARIFF_BASE_FEE",
        "0.00",
        "fee charged on every order",
    ),
    ("MEDEX_TARIFF_PER_KM", "2.50", "fee per estimated kilometre"),
    ("MEDEX_TARIFF_MIN_FEE", "0.00", "lowest fee"),
    ("MEDEX_SPEED_BIKE_KMH", "15", "ETA speed of bikes"),
    ("MEDEX_SPEED_SCOOTER_KMH", "25", "ETA speed of scooters"),
    ("MEDEX_SPEED_CAR_KMH", "30", "ETA speed of cars"),
    ("MEDEX_SPEED_VAN_KMH", "25", "ETA speed of vans"),
    (
        "MEDEX_ROAD_FACTOR",
        "1.3",
        "road length / great-circle length",
    ),
    (
        "MEDEX_REQUIRE_PROOF_PHOTO",
        "false",
        "proof photo required by default for new pharmacies",
    ),
    (
        "MEDEX_REQUIRE_SIGNATURE",
        "false",
        "signature required by default for new pharmacies",
    ),
    (
        "MEDEX_DELIVERY_RADIUS_KM",
        "30",
        "how far from a pharmacy it delivers unless it sets its own radius",
    ),
    (
        "MEDEX_TRACKING_LINK_DAYS",
        "7",
        "days a tracking link keeps working after its order ended",
    ),
    ("MEDEX_MAX_BODY_BYTES", "65536", "largest JSON request body"),
    (
        "MEDEX_MAX_UPLOAD_BYTES",
        "5242880",
        "largest uploaded proof file",
    ),
    (
        "MEDEX_WS_MAX_MESSAGE_BYTES",
        "4096",
        "largest WebSocket message from a client",
    ),
    (
        "MEDEX_WS_IDLE_TIMEOUT_SECS",
        "60",
        "close WebSockets silent for this long",
    ),
    (
        "MEDEX_WS_MAX_PER_ACCOUNT",
        "20",
        "live WebSockets one account may have; one more is refused with 429",
    ),
    (
        "MEDEX_WS_MAX_PER_ADDRESS",
        "1000",
        "live WebSockets one client address may have; one more is refused with 429",
    ),
    (
        "MEDEX_WS_MIN_FIX_INTERVAL_MS",
        "1000",
        "fixes one driver may send at most once per this, over every socket and HTTP (faster are held or refused)",
    ),
    (
        "MEDEX_TRAIL_RETENTION_DAYS",
        "30",
        "delete driver fixes older than this",
    ),
    (
        "MEDEX_SLED_CACHE_MB",
        "1024",
        "page cache of the sled store in MiB (16 to 65536): most of the resident memory of a large database",
    ),
    (
        "MEDEX_HASH_CONCURRENCY",
        "number of CPUs",
        "password hashes computed at once",
    ),
    (
        "MEDEX_SHUTDOWN_GRACE_SECS",
        "10",
        "time in-flight requests get to finish on shutdown",
    ),
    (
        "MEDEX_HEADER_TIMEOUT_SECS",
        "10",
        "time to send a request's headers; also the idle limit of kept-alive connections",
    ),
    (
        "MEDEX_MAX_CONNECTIONS",
        "16384",
        "open connections at once (WebSockets included); more are answered 503 and closed",
    ),
    (
        "MEDEX_REGISTRATIONS_PER_HOUR",
        "20",
        "account registrations one client address may make per hour",
    ),
    (
        "MEDEX_METRICS_TOKEN",
        "unset (public)",
        "bearer token /metrics requires (at least 16 characters)",
    ),
    (
        "MEDEX_METRICS_ADDR",
        "unset (on MEDEX_ADDR)",
        "serve /metrics on this address only, e.g. 127.0.0.1:9100",
    ),
    (
        "MEDEX_REDIS_URL",
        "unset (in-process)",
        "Redis for several instances: live updates between them and the shared login throttle, e.g. redis://redis:6379; requires MEDEX_DATABASE_URL",
    ),
    (
        "MEDEX_REDIS_PREFIX",
        "medex",
        "prefix of every Redis channel and key, so several deployments can share one Redis",
    ),
    (
        "MEDEX_TRUSTED_PROXIES",
        "empty",
        "comma-separated addresses or networks (10.0.0.0/8) of load balancers whose X-Forwarded-For names the client",
    ),
    (
        "MEDEX_TILE_URL",
        "unset (no tiles)",
        "map tiles of the tracking page, the console and the driver app, e.g. https://tile.openstreetmap.org/{z}/{x}/{y}.png",
    ),
    (
        "MEDEX_TILE_ATTRIBUTION",
        "empty",
        "credit line the tile provider requires, shown under the map",
    ),
    (
        "MEDEX_OSRM_URL",
        "unset (great circles)",
        "your own OSRM server for street distances between the stops of runs, e.g. http://osrm:5000 (never a public one)",
    ),
    (
        "MEDEX_OSRM_TIMEOUT_MS",
        "2000",
        "time one OSRM table request may take; beyond, and when OSRM fails, great circles",
    ),
];

struct Reader<F> {
    lookup: F,
}

impl<F: Fn(&str) -> Option<String>> Reader<F> {
    fn raw(&self, variable: &'static str) -> Option<String> {
        (self.lookup)(variable)
            .map(|v| v.trim().to_owned())
            .filter(|v| !v.is_empty())
    }

    fn parse<T: std::str::FromStr>(
        &self,
        variable: &'static str,
        default: T,
        what: &str,
    ) -> Result<T, SettingsError> {
        match self.raw(variable) {
            None => Ok(default),
            Some(value) => value.parse().map_err(|_| SettingsError {
                variable,
                problem: format!("`{value}` is not {what}"),
            }),
        }
    }

    fn bool(&self, variable: &'static str) -> Result<bool, SettingsError> {
        match self
            .raw(variable)
            .as_deref()
            .map(str::to_ascii_lowercase)
            .as_deref()
        {
            None | Some("0" | "false" | "no" | "off") => Ok(false),
            Some("1" | "true" | "yes" | "on") => Ok(true),
            Some(other) => Err(SettingsError {
                variable,
                problem: format!("`{other}` is not true or false"),
            }),
        }
    }

    fn ranged<T>(
        &self,
        variable: &'static str,
        default: T,
        range: std::ops::RangeInclusive<T>,
    ) -> Result<T, SettingsError>
    where
        T: std::str::FromStr + PartialOrd + std::fmt::Display + Copy,
    {
        let value = self.parse(variable, default, "a number")?;
        if range.contains(&value) {
            Ok(value)
        } else {
            Err(SettingsError {
                variable,
                problem: format!("{value} is outside {}..={}", range.start(), range.end()),
            })
        }
    }

    fn money(&self, variable: &'static str, default: Money) -> Result<Money, SettingsError> {
        let amount = self.ranged(variable, default.to_decimal(), 0.0..=100_000.0)?;
        Money::from_decimal(amount).map_err(|e| SettingsError {
            variable,
            problem: e.to_string(),
        })
    }
}

/// Refuses secrets an attacker could guess: short, repetitive, or a well-known placeholder.
fn check_secret(secret: &[u8], dev_mode: bool) -> Result<(), SettingsError> {
    let variable = "MEDEX_JWT_SECRET";
    if secret.len() < 32 {
        return Err(SettingsError {
            variable,
            problem: "must be at least 32 bytes".into(),
        });
    }
    let lower = String::from_utf8_lossy(secret).to_lowercase();
    let placeholder = [
        "secret",
        "changeme",
        "change-me",
        "example",
        "default",
        "password",
        "medex",
    ]
    .iter()
    .any(|word| lower.contains(word));
    if !dev_mode && (placeholder || medex_core::auth::looks_guessable(secret)) {
        return Err(SettingsError {
            variable,
            problem: "looks like a placeholder or is too repetitive; use a random value \
                      (e.g. `openssl rand -base64 48`) or set MEDEX_DEV_MODE=true for local development"
                .into(),
        });
    }
    Ok(())
}

/// Reads `MEDEX_CUSTODY_KEY`: base64 of 32 bytes, refused when they look made up by hand.
fn custody_key(seed: &str, dev_mode: bool) -> Result<CustodyKeys, SettingsError> {
    let variable = "MEDEX_CUSTODY_KEY";
    let refuse = |problem: &str| SettingsError {
        variable,
        problem: problem.into(),
    };
    let bytes = base64::engine::general_purpose::STANDARD
        .decode(seed)
        .map_err(|_| refuse("is not base64 (make one with `openssl rand -base64 32`)"))?;
    let mut distinct = bytes.clone();
    distinct.sort_unstable();
    distinct.dedup();
    if bytes.len() == 32 && distinct.len() < 12 && !dev_mode {
        return Err(refuse(
            "is too repetitive to be random; use `openssl rand -base64 32` \
             (or set MEDEX_DEV_MODE=true for local development)",
        ));
    }
    CustodyKeys::from_base64_seed(seed).map_err(|_| refuse("must be base64 of exactly 32 bytes"))
}

impl Settings {
    /// Reads the process environment (after an optional `.env` in the working directory).
    pub fn from_env() -> Result<Self, SettingsError> {
        // A missing .env is normal; a malformed one is reported by the variables it leaves unset.
        let _ = dotenvy::dotenv();
        Self::from_lookup(|name| std::env::var(name).ok())
    }

    /// Reads settings through `lookup` (a variable name to its value).
    pub fn from_lookup(lookup: impl Fn(&str) -> Option<String>) -> Result<Self, SettingsError> {
        let r = Reader { lookup };
        let addr = r.parse(
            "MEDEX_ADDR",
            SocketAddr::from(([127, 0, 0, 1], 8000)),
            "an address like 127.0.0.1:8000",
        )?;
        let data_dir: PathBuf = r
            .raw("MEDEX_DATA_DIR")
            .unwrap_or_else(|| "./medex-data".into())
            .into();
        let upload_dir = r
            .raw("MEDEX_UPLOAD_DIR")
            .map(PathBuf::from)
            .unwrap_or_else(|| data_dir.join("uploads"));
        let dev_mode = r.bool("MEDEX_DEV_MODE")?;
        let jwt_secret = match r.raw("MEDEX_JWT_SECRET") {
            Some(secret) => {
                check_secret(secret.as_bytes(), dev_mode)?;
                SecretSource::Configured(secret.into_bytes())
            }
            None => SecretSource::GeneratedInDataDir,
        };
        let custody_key = match r.raw("MEDEX_CUSTODY_KEY") {
            Some(seed) => CustodyKeySource::Configured(Box::new(custody_key(&seed, dev_mode)?)),
            None => CustodyKeySource::GeneratedInDataDir,
        };
        let custody_former_keys = r
            .raw("MEDEX_CUSTODY_FORMER_KEYS")
            .map(|v| {
                v.split(',')
                    .map(str::trim)
                    .filter(|k| !k.is_empty())
                    .map(str::to_owned)
                    .collect()
            })
            .unwrap_or_default();
        let database_url = r.raw("MEDEX_DATABASE_URL").map(DatabaseUrl);
        if database_url.is_some() && jwt_secret == SecretSource::GeneratedInDataDir {
            return Err(SettingsError {
                variable: "MEDEX_JWT_SECRET",
                problem: "is required with MEDEX_DATABASE_URL: every instance on one database \
                          must sign and check tokens with the same secret, so none is generated"
                    .into(),
            });
        }
        if database_url.is_some() && matches!(custody_key, CustodyKeySource::GeneratedInDataDir) {
            return Err(SettingsError {
                variable: "MEDEX_CUSTODY_KEY",
                problem: "is required with MEDEX_DATABASE_URL: every instance on one database \
                          must sign custody records with the same key, so none is generated"
                    .into(),
            });
        }
        let first_admin = match (r.raw("MEDEX_ADMIN_EMAIL"), r.raw("MEDEX_ADMIN_PASSWORD")) {
            (Some(email), Some(password)) => Some((email, password)),
            (None, None) => None,
            (Some(_), None) => {
                return Err(SettingsError {
                    variable: "MEDEX_ADMIN_PASSWORD",
                    problem: "is required with MEDEX_ADMIN_EMAIL".into(),
                });
            }
            // The password alone is what `--create-admin` reads; it creates no admin at start.
            (None, Some(_)) => None,
        };
        let log_format = match r.raw("MEDEX_LOG_FORMAT").as_deref() {
            None | Some("pretty") => LogFormat::Pretty,
            Some("json") => LogFormat::Json,
            Some(other) => {
                return Err(SettingsError {
                    variable: "MEDEX_LOG_FORMAT",
                    problem: format!("`{other}` is not pretty or json"),
                });
            }
        };
        let speeds = VehicleSpeeds::default();
        let system = SystemConfig {
            tariff: Tariff {
                base_fee: r.money("MEDEX_TARIFF_BASE_FEE", Tariff::default().base_fee)?,
                per_km: r.money("MEDEX_TARIFF_PER_KM", Tariff::default().per_km)?,
                min_fee: r.money("MEDEX_TARIFF_MIN_FEE", Tariff::default().min_fee)?,
            },
            vehicle_speeds: VehicleSpeeds {
                bike: r.ranged("MEDEX_SPEED_BIKE_KMH", speeds.bike, 1.0..=300.0)?,
                scooter: r.ranged("MEDEX_SPEED_SCOOTER_KMH", speeds.scooter, 1.0..=300.0)?,
                car: r.ranged("MEDEX_SPEED_CAR_KMH", speeds.car, 1.0..=300.0)?,
                van: r.ranged("MEDEX_SPEED_VAN_KMH", speeds.van, 1.0..=300.0)?,
            },
            road_factor: r.ranged("MEDEX_ROAD_FACTOR", 1.3, 1.0..=5.0)?,
            default_require_proof_photo: r.bool("MEDEX_REQUIRE_PROOF_PHOTO")?,
            default_require_signature: r.bool("MEDEX_REQUIRE_SIGNATURE")?,
            default_delivery_radius_km: r.ranged("MEDEX_DELIVERY_RADIUS_KM", 30.0, 0.5..=1000.0)?,
            tracking_link_days: r.ranged("MEDEX_TRACKING_LINK_DAYS", 7, 1..=3650)?,
        };
        let tile_layer = match r.raw("MEDEX_TILE_URL") {
            Some(url) => Some(
                TileLayer::new(&url, &r.raw("MEDEX_TILE_ATTRIBUTION").unwrap_or_default())
                    .map_err(|e| SettingsError {
                        variable: "MEDEX_TILE_URL",
                        problem: e.to_string(),
                    })?,
            ),
            None => None,
        };
        let redis_url = r.raw("MEDEX_REDIS_URL").map(RedisUrl);
        if redis_url.is_some() && database_url.is_none() {
            return Err(SettingsError {
                variable: "MEDEX_REDIS_URL",
                problem: "is for several instances on one PostgreSQL database: set \
                          MEDEX_DATABASE_URL too (instances on sled share no data)"
                    .into(),
            });
        }
        let redis_prefix = r
            .raw("MEDEX_REDIS_PREFIX")
            .unwrap_or_else(|| "medex".into());
        if redis_prefix.len() > 64
            || !redis_prefix
                .bytes()
                .all(|b| b.is_ascii_alphanumeric() || b"-_.".contains(&b))
        {
            return Err(SettingsError {
                variable: "MEDEX_REDIS_PREFIX",
                problem: format!(
                    "`{redis_prefix}` must be 1 to 64 letters, digits, `-`, `_` or `.`"
                ),
            });
        }
        let trusted_proxies = match r.raw("MEDEX_TRUSTED_PROXIES") {
            None => Vec::new(),
            Some(list) => list
                .split(',')
                .map(str::trim)
                .filter(|p| !p.is_empty())
                .map(|p| {
                    p.parse::<medex_http::IpNet>()
                        .or_else(|_| p.parse::<std::net::IpAddr>().map(medex_http::IpNet::from))
                        .map_err(|_| SettingsError {
                            variable: "MEDEX_TRUSTED_PROXIES",
                            problem: format!(
                                "`{p}` is not an address (10.0.0.2) or network (10.0.0.0/8)"
                            ),
                        })
                })
                .collect::<Result<_, _>>()?,
        };
        let cpus = std::thread::available_parallelism()
            .map(usize::from)
            .unwrap_or(2);
        Ok(Self {
            addr,
            data_dir,
            upload_dir,
            database_url,
            database_pool_size: r.ranged("MEDEX_DATABASE_POOL_SIZE", 16, 2..=1000)?,
            jwt_secret,
            dev_mode,
            custody_key,
            custody_former_keys,
            access_token_ttl: chrono::Duration::minutes(r.ranged(
                "MEDEX_ACCESS_TOKEN_MINUTES",
                15,
                1..=1440,
            )?),
            refresh_token_ttl: chrono::Duration::days(r.ranged(
                "MEDEX_REFRESH_TOKEN_DAYS",
                7,
                1..=365,
            )?),
            first_admin,
            cors_origins: r
                .raw("MEDEX_CORS_ORIGINS")
                .map(|v| {
                    v.split(',')
                        .map(str::trim)
                        .filter(|o| !o.is_empty())
                        .map(str::to_owned)
                        .collect()
                })
                .unwrap_or_default(),
            log_filter: r.raw("MEDEX_LOG").unwrap_or_else(|| "info".into()),
            log_format,
            system,
            max_body_bytes: r.ranged("MEDEX_MAX_BODY_BYTES", 65_536, 1024..=16 << 20)?,
            max_upload_bytes: r.ranged("MEDEX_MAX_UPLOAD_BYTES", 5 << 20, 1024..=100 << 20)?,
            ws_max_message_bytes: r.ranged("MEDEX_WS_MAX_MESSAGE_BYTES", 4096, 256..=1 << 20)?,
            ws_idle_timeout: Duration::from_secs(r.ranged(
                "MEDEX_WS_IDLE_TIMEOUT_SECS",
                60,
                5..=3600,
            )?),
            ws_max_per_account: r.ranged("MEDEX_WS_MAX_PER_ACCOUNT", 20, 1..=100_000)?,
            ws_max_per_address: r.ranged("MEDEX_WS_MAX_PER_ADDRESS", 1000, 1..=1_000_000)?,
            ws_min_fix_interval: Duration::from_millis(r.ranged(
                "MEDEX_WS_MIN_FIX_INTERVAL_MS",
                1000,
                0..=60_000,
            )?),
            trail_retention_days: r.ranged("MEDEX_TRAIL_RETENTION_DAYS", 30, 1..=3650)?,
            sled_cache_mb: r.ranged("MEDEX_SLED_CACHE_MB", 1024, 16..=65_536)?,
            hash_concurrency: r.ranged("MEDEX_HASH_CONCURRENCY", cpus, 1..=256)?,
            shutdown_grace: Duration::from_secs(r.ranged(
                "MEDEX_SHUTDOWN_GRACE_SECS",
                10,
                0..=600,
            )?),
            header_timeout: Duration::from_secs(r.ranged(
                "MEDEX_HEADER_TIMEOUT_SECS",
                10,
                1..=600,
            )?),
            max_connections: r.ranged("MEDEX_MAX_CONNECTIONS", 16_384, 1..=1_000_000)?,
            registrations_per_hour: r.ranged("MEDEX_REGISTRATIONS_PER_HOUR", 20, 1..=1_000_000)?,
            metrics_token: match r.raw("MEDEX_METRICS_TOKEN") {
                Some(token) if token.chars().count() < 16 => {
                    return Err(SettingsError {
                        variable: "MEDEX_METRICS_TOKEN",
                        problem: "must be at least 16 characters".into(),
                    });
                }
                token => token,
            },
            metrics_addr: match r.raw("MEDEX_METRICS_ADDR") {
                None => None,
                Some(_) => Some(r.parse(
                    "MEDEX_METRICS_ADDR",
                    SocketAddr::from(([127, 0, 0, 1], 9100)),
                    "an address like 127.0.0.1:9100",
                )?),
            },
            redis_url,
            redis_prefix,
            trusted_proxies,
            tile_layer,
            webhook_allow_private: r.bool("MEDEX_WEBHOOK_ALLOW_PRIVATE")?,
            webhook_dispatch: r.raw("MEDEX_WEBHOOK_DISPATCH").is_none()
                || r.bool("MEDEX_WEBHOOK_DISPATCH")?,
            webhook_timeout: Duration::from_millis(r.ranged(
                "MEDEX_WEBHOOK_TIMEOUT_MS",
                10_000,
                100..=60_000,
            )?),
            webhook_concurrency: r.ranged("MEDEX_WEBHOOK_CONCURRENCY", 8, 1..=256)?,
            webhook_retry_base: Duration::from_millis(r.ranged(
                "MEDEX_WEBHOOK_RETRY_BASE_MS",
                10_000,
                10..=60_000,
            )?),
            osrm_url: match r.raw("MEDEX_OSRM_URL") {
                None => None,
                Some(raw) => match url::Url::parse(raw.trim()) {
                    Ok(u) if matches!(u.scheme(), "http" | "https") && u.host().is_some() => {
                        Some(raw.trim().to_owned())
                    }
                    _ => {
                        return Err(SettingsError {
                            variable: "MEDEX_OSRM_URL",
                            problem: "must be an http:// or https:// URL of an OSRM server".into(),
                        });
                    }
                },
            },
            osrm_timeout: Duration::from_millis(r.ranged(
                "MEDEX_OSRM_TIMEOUT_MS",
                2_000,
                50..=60_000,
            )?),
        })
    }
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn settings(vars: &[(&str, &str)]) -> Result<Settings, SettingsError> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        Settings::from_lookup(|name| map.get(name).cloned())
    }

    #[test]
    fn defaults_match_the_documentation() {
        let s = settings(&[]).unwrap();
        assert_eq!(s.addr.to_string(), "127.0.0.1:8000");
        assert_eq!(s.data_dir, PathBuf::from("./medex-data"));
        assert_eq!(s.upload_dir, PathBuf::from("./medex-data/uploads"));
        assert_eq!(s.jwt_secret, SecretSource::GeneratedInDataDir);
        assert!(matches!(
            s.custody_key,
            CustodyKeySource::GeneratedInDataDir
        ));
        assert!(s.custody_former_keys.is_empty());
        assert_eq!(s.system, SystemConfig::default());
        assert_eq!(s.access_token_ttl, chrono::Duration::minutes(15));
        assert!(s.first_admin.is_none() && s.cors_origins.is_empty());
        assert!(s.tile_layer.is_none());
        for (name, _, _) in VARIABLES {
            assert!(name.starts_with("MEDEX_"));
        }
    }

    #[test]
    fn bad_values_name_their_variable() {
        let check = |vars: &[(&str, &str)], variable: &str| {
            let err = settings(vars).expect_err("must be refused");
            assert_eq!(err.variable, variable, "{err}");
        };
        check(&[("MEDEX_ADDR", "localhost")], "MEDEX_ADDR");
        check(&[("MEDEX_JWT_SECRET", "short")], "MEDEX_JWT_SECRET");
        check(
            &[("MEDEX_JWT_SECRET", "changeme-changeme-changeme-changeme")],
            "MEDEX_JWT_SECRET",
        );
        check(
            &[(
                "MEDEX_JWT_SECRET",
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa",
            )],
            "MEDEX_JWT_SECRET",
        );
        check(&[("MEDEX_ROAD_FACTOR", "0.5")], "MEDEX_ROAD_FACTOR");
        check(&[("MEDEX_TARIFF_PER_KM", "2.555")], "MEDEX_TARIFF_PER_KM");
        check(&[("MEDEX_SPEED_CAR_KMH", "fast")], "MEDEX_SPEED_CAR_KMH");
        check(&[("MEDEX_DEV_MODE", "maybe")], "MEDEX_DEV_MODE");
        check(&[("MEDEX_ADMIN_EMAIL", "a@b.co")], "MEDEX_ADMIN_PASSWORD");
        assert!(
            settings(&[("MEDEX_ADMIN_PASSWORD", "only-the-password")])
                .unwrap()
                .first_admin
                .is_none()
        );
        check(&[("MEDEX_LOG_FORMAT", "xml")], "MEDEX_LOG_FORMAT");
        check(&[("MEDEX_CUSTODY_KEY", "not base64!")], "MEDEX_CUSTODY_KEY");
        check(&[("MEDEX_CUSTODY_KEY", "c2hvcnQ=")], "MEDEX_CUSTODY_KEY");
        let zeros = base64::engine::general_purpose::STANDARD.encode([0u8; 32]);
        check(&[("MEDEX_CUSTODY_KEY", &zeros)], "MEDEX_CUSTODY_KEY");
        assert!(settings(&[("MEDEX_CUSTODY_KEY", &zeros), ("MEDEX_DEV_MODE", "1")]).is_ok());
        check(
            &[("MEDEX_TILE_URL", "https://t.example/tile.png")],
            "MEDEX_TILE_URL",
        );
    }

    #[test]
    fn development_mode_allows_a_weak_looking_secret_but_never_a_short_one() {
        let weak = ("MEDEX_JWT_SECRET", "dev-secret-dev-secret-dev-secret-1");
        assert!(settings(&[weak]).is_err());
        assert!(settings(&[weak, ("MEDEX_DEV_MODE", "true")]).is_ok());
        assert!(settings(&[("MEDEX_JWT_SECRET", "short"), ("MEDEX_DEV_MODE", "true")]).is_err());
        let strong = settings(&[(
            "MEDEX_JWT_SECRET",
            "q8Vw3kZ1pT6xN0rL5yB9mC2hJ7dF4gS0aE8uW1iO",
        )])
        .unwrap();
        assert!(matches!(strong.jwt_secret, SecretSource::Configured(_)));
    }

    #[test]
    fn a_configured_custody_key_signs_and_former_keys_are_listed() {
        let seed: Vec<u8> = (0u8..32).map(|b| b.wrapping_mul(37)).collect();
        let seed = base64::engine::general_purpose::STANDARD.encode(seed);
        let s = settings(&[
            ("MEDEX_CUSTODY_KEY", &seed),
            ("MEDEX_CUSTODY_FORMER_KEYS", " a, b ,,"),
        ])
        .unwrap();
        let CustodyKeySource::Configured(keys) = s.custody_key else {
            panic!("configured")
        };
        assert_eq!(keys.seed(), seed);
        assert_eq!(s.custody_former_keys, ["a", "b"]);
    }

    #[test]
    fn postgres_needs_a_configured_secret_and_custody_key() {
        let url = ("MEDEX_DATABASE_URL", "postgres://medex@127.0.0.1/medex");
        let refused = settings(&[url]).expect_err("no generated secret with PostgreSQL");
        assert_eq!(refused.variable, "MEDEX_JWT_SECRET");
        assert!(refused.problem.contains("MEDEX_DATABASE_URL"), "{refused}");
        let secret = (
            "MEDEX_JWT_SECRET",
            "q8Vw3kZ1pT6xN0rL5yB9mC2hJ7dF4gS0aE8uW1iO",
        );
        let refused = settings(&[url, secret]).expect_err("no generated custody key either");
        assert_eq!(refused.variable, "MEDEX_CUSTODY_KEY");
        let custody = (
            "MEDEX_CUSTODY_KEY",
            "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
        );
        let s = settings(&[url, secret, custody]).unwrap();
        assert_eq!(
            s.database_url.as_ref().map(DatabaseUrl::as_str),
            Some(url.1)
        );
        assert!(
            !format!("{s:?}").contains("postgres://"),
            "the URL stays out of logs"
        );
        assert_eq!(s.database_pool_size, 16);
        assert!(settings(&[]).unwrap().database_url.is_none());
    }

    #[test]
    fn redis_and_trusted_proxies_are_read_and_checked() {
        let postgres = [
            ("MEDEX_DATABASE_URL", "postgres://medex@127.0.0.1/medex"),
            (
                "MEDEX_JWT_SECRET",
                "q8Vw3kZ1pT6xN0rL5yB9mC2hJ7dF4gS0aE8uW1iO",
            ),
            (
                "MEDEX_CUSTODY_KEY",
                "AAECAwQFBgcICQoLDA0ODxAREhMUFRYXGBkaGxwdHh8=",
            ),
        ];
        let defaults = settings(&[]).unwrap();
        assert!(defaults.redis_url.is_none() && defaults.trusted_proxies.is_empty());
        assert_eq!(defaults.redis_prefix, "medex");
        let refused = settings(&[("MEDEX_REDIS_URL", "redis://127.0.0.1:6379")])
            .expect_err("Redis without a shared database");
        assert_eq!(refused.variable, "MEDEX_REDIS_URL");
        let mut vars = postgres.to_vec();
        vars.extend([
            ("MEDEX_REDIS_URL", "redis://:pw@127.0.0.1:6379"),
            ("MEDEX_REDIS_PREFIX", "medex-prod.eu_1"),
            ("MEDEX_TRUSTED_PROXIES", " 10.0.0.0/8, 192.0.2.7 ,::1,"),
        ]);
        let s = settings(&vars).unwrap();
        assert_eq!(
            s.redis_url.as_ref().map(RedisUrl::as_str),
            Some("redis://:pw@127.0.0.1:6379")
        );
        assert!(
            !format!("{s:?}").contains(":pw@"),
            "the URL stays out of logs"
        );
        assert_eq!(s.redis_prefix, "medex-prod.eu_1");
        let proxies: Vec<String> = s.trusted_proxies.iter().map(|n| n.to_string()).collect();
        assert_eq!(proxies, ["10.0.0.0/8", "192.0.2.7/32", "::1/128"]);
        for (variable, value) in [
            ("MEDEX_REDIS_PREFIX", "has space"),
            ("MEDEX_REDIS_PREFIX", "a:b"),
            ("MEDEX_TRUSTED_PROXIES", "10.0.0.0/33"),
            ("MEDEX_TRUSTED_PROXIES", "proxy.internal"),
        ] {
            let mut vars = postgres.to_vec();
            vars.push((variable, value));
            assert_eq!(settings(&vars).unwrap_err().variable, variable, "{value}");
        }
    }

    #[test]
    fn tariff_and_origins_are_read() {
        let s = settings(&[
            ("MEDEX_TARIFF_BASE_FEE", "1.5"),
            ("MEDEX_TARIFF_MIN_FEE", "4"),
            (
                "MEDEX_CORS_ORIGINS",
                "https://a.example, https://b.example,",
            ),
        ])
        .unwrap();
        assert_eq!(s.system.tariff.base_fee, Money::from_cents(150));
        assert_eq!(s.system.tariff.min_fee, Money::from_cents(400));
        assert_eq!(s.cors_origins, ["https://a.example", "https://b.example"]);
    }
}
