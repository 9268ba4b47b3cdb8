//! The composed server: the store (sled, or PostgreSQL when `MEDEX_DATABASE_URL` is set), MedEx,
//! HTTP API and WebSocket API on one port.
//!
//! ```no_run
//! # async fn run() -> Result<(), medex::server::StartError> {
//! let settings = medex::settings::Settings::from_env()?;
//! let running = medex::server::Server::new(settings).start().await?;
//! println!("listening on {}", running.local_addr());
//! running.wait_for_signal().await?;
//! # Ok(()) }
//! ```

use std::convert::Infallible;
use std::net::SocketAddr;
use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Instant;

use axum::Router;
use axum::body::Body;
use axum::extract::ConnectInfo;
use base64::Engine as _;
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use hyper_util::server::graceful::GracefulShutdown;
use medex_core::auth::{Argon2Hasher, TokenKeys, TokenLifetimes};
use medex_core::clock::{Entropy, OsEntropy, SystemClock};
use medex_core::custody::CustodyKeys;
use medex_core::events::{BusHealth, Event, EventBus};
use medex_core::files::FileStore;
use medex_core::service::{MedEx, Ports};
use medex_core::store::Store;
use medex_http::{DirectoryFiles, TrackingReads};
use medex_store_postgres::{PgOptions, PgStore};
use medex_store_sled::SledStore;
use medex_ws::{Hub, WsConfig, WsServer};
use tokio::net::TcpListener;
use tokio::sync::watch;
use tower::ServiceExt as _;

use crate::exposition::Exposition;
use crate::hashing::OffloadedHasher;
use crate::scaleout::{self, LiveUpdates};
use crate::settings::{CustodyKeySource, SecretSource, Settings, SettingsError};

/// Why the server could not start.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum StartError {
    /// A setting is invalid.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The data directory or the database could not be opened.
    #[error("cannot open the database in {path}: {source}")]
    Store {
        /// The directory.
        path: String,
        /// Why.
        #[source]
        source: medex_store_sled::OpenError,
    },
    /// The PostgreSQL database could not be opened (unreachable, or a schema this build cannot use).
    #[error("cannot open the PostgreSQL database of MEDEX_DATABASE_URL: {source}")]
    Database {
        /// Why.
        #[source]
        source: medex_store_postgres::OpenError,
    },
    /// A file in the data directory could not be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The file.
        path: String,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The use cases could not start (storage or configuration).
    #[error("cannot start: {0}")]
    Service(#[from] medex_core::error::Error),
    /// The address could not be bound.
    #[error("cannot listen on {addr}: {source}")]
    Bind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

fn io_error(path: &Path) -> impl FnOnce(std::io::Error) -> StartError + '_ {
    move |source| StartError::Io {
        path: path.display().to_string(),
        source,
    }
}

/// Reads the development JWT secret from the data directory, creating it on first start.
fn generated_secret(data_dir: &Path) -> Result<Vec<u8>, StartError> {
    let path = data_dir.join("jwt-secret");
    match std::fs::read_to_string(&path) {
        Ok(secret) if secret.trim().len() >= 32 => return Ok(secret.trim().as_bytes().to_vec()),
        Ok(_) | Err(_) if path.exists() => {
            return Err(StartError::Io {
                path: path.display().to_string(),
                source: std::io::Error::other(
                    "exists but holds no usable secret; delete it to generate a new one",
                ),
            });
        }
        _ => {}
    }
    let mut bytes = [0u8; 48];
    OsEntropy.fill(&mut bytes);
    let secret = base64::engine::general_purpose::STANDARD.encode(bytes);
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(&path).map_err(io_error(&path))?;
    std::io::Write::write_all(&mut file, secret.as_bytes()).map_err(io_error(&path))?;
    file.sync_all().map_err(io_error(&path))?;
    tracing::warn!(
        path = %path.display(),
        "MEDEX_JWT_SECRET is not set: generated a development secret and kept it in the data directory; \
         set MEDEX_JWT_SECRET in production"
    );
    Ok(secret.into_bytes())
}

/// The file in the data directory that keeps the custody keys: the current seed and the public
/// keys of former ones.
pub const CUSTODY_KEYS_FILE: &str = "custody-keys.json";

/// What [`CUSTODY_KEYS_FILE`] holds: `{"current": "<base64 seed>", "former": ["<base64 public
/// key>", …]}`.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
struct CustodyKeyFile {
    current: String,
    #[serde(default)]
    former: Vec<String>,
}

fn damaged(path: &Path, why: impl std::fmt::Display) -> StartError {
    StartError::Io {
        path: path.display().to_string(),
        source: std::io::Error::other(format!("{why}; restore it from a backup")),
    }
}

/// The key file of `data_dir`, if there is one.
fn read_custody_file(data_dir: &Path) -> Result<Option<CustodyKeyFile>, StartError> {
    let path = data_dir.join(CUSTODY_KEYS_FILE);
    match std::fs::read(&path) {
        Ok(bytes) => serde_json::from_slice(&bytes)
            .map(Some)
            .map_err(|e| damaged(&path, format!("not a custody key file ({e})"))),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_error(&path)(e)),
    }
}

/// Writes the key file whole (a temporary file renamed over it), readable by its owner only.
fn write_custody_file(data_dir: &Path, file: &CustodyKeyFile) -> Result<(), StartError> {
    let path = data_dir.join(CUSTODY_KEYS_FILE);
    let temporary = data_dir.join(format!(".{CUSTODY_KEYS_FILE}.part"));
    let mut options = std::fs::OpenOptions::new();
    options.write(true).create(true).truncate(true);
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut out = options.open(&temporary).map_err(io_error(&temporary))?;
    let json = serde_json::to_vec_pretty(file).unwrap_or_default();
    std::io::Write::write_all(&mut out, &json).map_err(io_error(&temporary))?;
    out.sync_all().map_err(io_error(&temporary))?;
    drop(out);
    std::fs::rename(&temporary, &path).map_err(io_error(&path))?;
    if let Ok(dir) = std::fs::File::open(data_dir) {
        // Makes the rename itself durable; a failure here leaves a correct file anyway.
        let _ = dir.sync_all();
    }
    Ok(())
}

fn keys_of(data_dir: &Path, file: &CustodyKeyFile) -> Result<CustodyKeys, StartError> {
    let path = data_dir.join(CUSTODY_KEYS_FILE);
    let mut keys = CustodyKeys::from_base64_seed(&file.current)
        .map_err(|e| damaged(&path, format!("its current key {e}")))?;
    for former in &file.former {
        keys = keys
            .with_former(former)
            .map_err(|e| damaged(&path, format!("a former key {e}")))?;
    }
    Ok(keys)
}

/// The custody keys in force: `MEDEX_CUSTODY_KEY` when set (the data directory's key file, if
/// any, then only adds its keys as former ones), else the key file, created with a new key on
/// first start; plus `MEDEX_CUSTODY_FORMER_KEYS`.
fn custody_keys(s: &Settings) -> Result<CustodyKeys, StartError> {
    let stored = read_custody_file(&s.data_dir)?;
    let mut keys = match (&s.custody_key, &stored) {
        (CustodyKeySource::Configured(configured), None) => (**configured).clone(),
        (CustodyKeySource::Configured(configured), Some(file)) => {
            let from_file = keys_of(&s.data_dir, file)?;
            let mut keys = (**configured).clone().with_former(&from_file.public_key());
            for former in &file.former {
                keys = keys.and_then(|k| k.with_former(former));
            }
            keys.map_err(|e| damaged(&s.data_dir.join(CUSTODY_KEYS_FILE), e))?
        }
        (CustodyKeySource::GeneratedInDataDir, Some(file)) => keys_of(&s.data_dir, file)?,
        (CustodyKeySource::GeneratedInDataDir, None) => {
            let mut seed = [0u8; 32];
            OsEntropy.fill(&mut seed);
            let keys = CustodyKeys::from_seed(seed);
            write_custody_file(
                &s.data_dir,
                &CustodyKeyFile {
                    current: keys.seed(),
                    former: vec![],
                },
            )?;
            tracing::warn!(
                path = %s.data_dir.join(CUSTODY_KEYS_FILE).display(),
                key_id = keys.current_key_id(),
                "MEDEX_CUSTODY_KEY is not set: generated a custody key and kept it in the data \
                 directory; back it up, or set MEDEX_CUSTODY_KEY"
            );
            keys
        }
    };
    for former in &s.custody_former_keys {
        keys = keys.with_former(former).map_err(|e| SettingsError {
            variable: "MEDEX_CUSTODY_FORMER_KEYS",
            problem: format!("`{former}`: {e}"),
        })?;
    }
    Ok(keys)
}

/// The key ids before and after a [`rotate_custody_key`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Rotation {
    /// The key that signed until now; its public key stays listed.
    pub former_key_id: String,
    /// The key that signs from the next start on.
    pub key_id: String,
}

/// Replaces the custody key kept in `data_dir` with a new one, keeping the old public key among
/// the former ones so that records it signed still verify. Takes effect at the next start. (With
/// `MEDEX_CUSTODY_KEY` the operator rotates by setting a new value and listing the old public key
/// in `MEDEX_CUSTODY_FORMER_KEYS`.)
pub fn rotate_custody_key(data_dir: &Path) -> Result<Rotation, StartError> {
    let path = data_dir.join(CUSTODY_KEYS_FILE);
    let Some(file) = read_custody_file(data_dir)? else {
        return Err(StartError::Io {
            path: path.display().to_string(),
            source: std::io::Error::other("no custody key file to rotate (start the server once)"),
        });
    };
    let old = keys_of(data_dir, &file)?;
    let mut seed = [0u8; 32];
    OsEntropy.fill(&mut seed);
    let new = CustodyKeys::from_seed(seed);
    let mut former = vec![old.public_key()];
    former.extend(file.former.iter().cloned());
    write_custody_file(
        data_dir,
        &CustodyKeyFile {
            current: new.seed(),
            former,
        },
    )?;
    Ok(Rotation {
        former_key_id: old.current_key_id().to_owned(),
        key_id: new.current_key_id().to_owned(),
    })
}

/// Counts events on their way to the WebSocket hub (and, with Redis, the other instances).
struct MeteredBus(Arc<dyn EventBus>);

impl EventBus for MeteredBus {
    fn publish(&self, event: Event) {
        let kind = match &event {
            Event::OrderCreated(_) => "order_created",
            Event::OrderUpdated(_) => "order_updated",
            Event::LateRisk(_) => "late_risk",
            Event::DriverArrival { arrival, .. } => arrival.message_type(),
            Event::OrderStatusChanged { .. } => "order_status",
            Event::DriverAssigned { .. } => "driver_assigned",
            Event::DriverLocation(_) => "driver_location",
            Event::DriverStatusChanged { .. } => "driver_status",
            Event::SessionsEnded { .. } => "sessions_ended",
        };
        metrics::counter!("medex_events_published_total", "kind" => kind).increment(1);
        if kind == "driver_location" {
            metrics::counter!("medex_fixes_ingested_total").increment(1);
        }
        self.0.publish(event);
    }

    fn health(&self) -> BusHealth {
        self.0.health()
    }
}

/// The store, the hub and the use cases over them.
struct Core {
    store: Arc<dyn Store>,
    /// Where uploaded proofs go: the database, or the upload directory.
    files: Arc<dyn FileStore>,
    hub: Arc<Hub>,
    medex: Arc<MedEx>,
    /// The JWT secret, from which the throttle's shared key is derived.
    jwt_secret: Vec<u8>,
}

/// Creates `dir` if needed and keeps it and everything in it to this account: directories 0700,
/// files 0600. The data directory holds password hashes, webhook secrets, the signing secret and
/// patients' proof photos.
fn private_tree(dir: &Path) -> Result<(), StartError> {
    std::fs::create_dir_all(dir).map_err(io_error(dir))?;
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt as _;
        let mut pending = vec![dir.to_path_buf()];
        while let Some(dir) = pending.pop() {
            std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700))
                .map_err(io_error(&dir))?;
            for entry in std::fs::read_dir(&dir).map_err(io_error(&dir))?.flatten() {
                let path = entry.path();
                match entry.file_type() {
                    Ok(kind) if kind.is_dir() => pending.push(path),
                    Ok(kind) if kind.is_file() => {
                        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600))
                            .map_err(io_error(&path))?;
                    }
                    _ => {}
                }
            }
        }
    }
    Ok(())
}

async fn open(s: &Settings, live: LiveUpdates) -> Result<Core, StartError> {
    private_tree(&s.data_dir)?;
    private_tree(&s.upload_dir)?;
    let secret = match &s.jwt_secret {
        SecretSource::Configured(secret) => secret.clone(),
        SecretSource::GeneratedInDataDir => generated_secret(&s.data_dir)?,
    };
    let lifetimes = TokenLifetimes {
        access: s.access_token_ttl,
        refresh: s.refresh_token_ttl,
    };
    let tokens = TokenKeys::new(&secret, lifetimes).map_err(|e| SettingsError {
        variable: "MEDEX_JWT_SECRET",
        problem: e.to_string(),
    })?;
    let custody = custody_keys(s)?;

    // The sweeps (retention among them) are the server's upkeep, one instance at a time.
    let (store, files): (Arc<dyn Store>, Arc<dyn FileStore>) = match &s.database_url {
        Some(url) => {
            let options = PgOptions {
                pool_size: s.database_pool_size,
                ..PgOptions::default()
            };
            let store = PgStore::connect_with(url.as_str(), options)
                .await
                .map_err(|source| StartError::Database { source })?;
            tracing::info!("storage: PostgreSQL (uploads too)");
            let store = Arc::new(store);
            (store.clone(), store)
        }
        None => {
            let db_dir = s.data_dir.join("db");
            let store =
                SledStore::open_with_cache(&db_dir, s.sled_cache_mb << 20).map_err(|source| {
                    StartError::Store {
                        path: db_dir.display().to_string(),
                        source,
                    }
                })?;
            // sled made its files with the process's umask; they are ours only from now on.
            private_tree(&db_dir)?;
            (
                Arc::new(store),
                Arc::new(DirectoryFiles::new(s.upload_dir.clone())),
            )
        }
    };
    let LiveUpdates { hub, bus } = live;
    let medex = MedEx::new(
        Ports {
            store: store.clone(),
            bus: Arc::new(MeteredBus(bus)),
            clock: Arc::new(SystemClock),
            entropy: Arc::new(OsEntropy),
            hasher: Arc::new(OffloadedHasher::new(
                Argon2Hasher::default(),
                s.hash_concurrency,
            )),
            tokens,
            custody,
        },
        s.system.clone(),
    )
    .await?
    // One driver's fixes are paced across its sockets and the HTTP fallback alike.
    .with_min_fix_interval(s.ws_min_fix_interval)
    .with_private_webhooks(s.webhook_allow_private);
    let medex = match &s.osrm_url {
        Some(url) => medex.with_router(Arc::new(
            crate::osrm::OsrmRouter::new(url, s.osrm_timeout).map_err(|e| SettingsError {
                variable: "MEDEX_OSRM_URL",
                problem: e.to_string(),
            })?,
        )),
        None => medex,
    };
    // sled is one process's own; PostgreSQL may be shared by several instances.
    let medex = Arc::new(if s.database_url.is_none() {
        medex.with_private_store()
    } else {
        medex
    });
    // The service's store queues fix appends; health checks and the flush at shutdown go
    // through it, so a graceful stop writes every accepted fix first.
    let store = medex.store().clone();
    if let Some(writer) = medex
        .fix_queue()
        .writer(std::time::Duration::from_millis(200), tokio::time::sleep)
    {
        tokio::spawn(writer);
    }
    Ok(Core {
        store,
        files,
        hub,
        medex,
        jwt_secret: secret,
    })
}

/// Creates an admin account in the configured data directory, without serving (for operators:
/// `cargo run --example server -- --create-admin EMAIL`).
pub async fn create_admin(
    settings: Settings,
    email: &str,
    password: &str,
) -> Result<medex_core::model::User, StartError> {
    let Core { store, medex, .. } = open(&settings, LiveUpdates::in_process()).await?;
    let admin = medex.create_admin(email, password, "Administrator").await?;
    store
        .flush()
        .await
        .map_err(|e| StartError::Service(e.into()))?;
    Ok(admin)
}

/// Builds and starts a server.
pub struct Server {
    settings: Settings,
}

/// A started server.
pub struct Running {
    local_addr: SocketAddr,
    metrics_addr: Option<SocketAddr>,
    medex: Arc<MedEx>,
    stop: watch::Sender<bool>,
    task: tokio::task::JoinHandle<()>,
}

impl Server {
    /// A server with these settings.
    pub fn new(settings: Settings) -> Self {
        Self { settings }
    }

    /// Opens the store, creates the first admin if configured, binds and starts serving.
    pub async fn start(self) -> Result<Running, StartError> {
        let s = self.settings;
        let live = LiveUpdates::from_settings(&s)?;
        let Core {
            store,
            files,
            hub,
            medex,
            jwt_secret,
        } = open(&s, live).await?;
        if let Some((email, password)) = &s.first_admin
            && let Some(admin) = scaleout::first_admin(&medex, email, password).await?
        {
            tracing::info!(email = %admin.email, "created the first admin");
        }
        let (stop, stopped) = watch::channel(false);
        let instance = uuid::Uuid::new_v4().to_string();
        tracing::info!(%instance, "this instance's name in leases");
        scaleout::spawn_upkeep(&medex, &s, instance, stopped.clone());
        if s.webhook_dispatch {
            crate::webhooks::spawn(
                medex.store().clone(),
                crate::webhooks::DispatchConfig {
                    allow_private: s.webhook_allow_private,
                    timeout: s.webhook_timeout,
                    concurrency: s.webhook_concurrency,
                    retry_base: s.webhook_retry_base,
                    ..Default::default()
                },
                stopped.clone(),
            );
        }

        let ws = Arc::new(WsServer::new(
            medex.clone(),
            hub,
            WsConfig {
                max_message_size: s.ws_max_message_bytes,
                idle_timeout: s.ws_idle_timeout,
                min_fix_interval: s.ws_min_fix_interval,
                max_per_account: s.ws_max_per_account,
                max_per_address: s.ws_max_per_address,
                ..WsConfig::default()
            },
        ));
        let http_config = medex_http::HttpConfig {
            cors_origins: s.cors_origins.clone(),
            max_body_bytes: s.max_body_bytes,
            upload_dir: s.upload_dir.clone(),
            max_upload_bytes: s.max_upload_bytes,
            login_throttle: medex_http::LoginThrottle {
                max_registrations_per_address_per_hour: s.registrations_per_hour,
                ..medex_http::LoginThrottle::default()
            },
            trusted_proxies: s.trusted_proxies.clone(),
            ..medex_http::HttpConfig::default()
        };
        let shared = scaleout::http_shared(&s, &jwt_secret, files)?;
        let open_sockets = Arc::new(AtomicUsize::new(0));
        let exposition = Exposition {
            handle: crate::exposition::handle(),
            ws: ws.clone(),
            medex: medex.clone(),
            open_sockets: open_sockets.clone(),
            token_digest: s.metrics_token.as_deref().map(Exposition::digest),
        };
        let mut router = medex_http::router_with(medex.clone(), http_config.clone(), shared)
            .merge(crate::web::routes(medex.clone(), s.tile_layer.clone()));
        let metrics_addr = match s.metrics_addr {
            None => {
                router = router.merge(exposition.routes());
                None
            }
            Some(addr) => {
                let listener = TcpListener::bind(addr)
                    .await
                    .map_err(|source| StartError::Bind { addr, source })?;
                let addr = listener
                    .local_addr()
                    .map_err(|source| StartError::Bind { addr, source })?;
                let mut stopped = stopped.clone();
                let app = exposition.routes();
                tokio::spawn(async move {
                    let stop = async move {
                        let _ = stopped.changed().await;
                    };
                    if let Err(error) = axum::serve(listener, app)
                        .with_graceful_shutdown(stop)
                        .await
                    {
                        tracing::error!(%error, "the metrics listener failed");
                    }
                });
                tracing::info!(metrics = %format!("http://{addr}/metrics"), "metrics on their own address");
                Some(addr)
            }
        };
        let router = router
            .layer(axum::middleware::from_fn(crate::web::landing))
            .layer(axum::middleware::from_fn(
                medex_http::metrics::track_requests,
            ));

        let listener = TcpListener::bind(s.addr)
            .await
            .map_err(|source| StartError::Bind {
                addr: s.addr,
                source,
            })?;
        let local_addr = listener.local_addr().map_err(|source| StartError::Bind {
            addr: s.addr,
            source,
        })?;
        let task = tokio::spawn(serve(
            listener,
            router,
            TrackingReads::new(medex.clone(), &http_config),
            ws,
            store,
            open_sockets,
            stopped,
            ConnectionRules {
                header_timeout: s.header_timeout,
                max_connections: s.max_connections,
                shutdown_grace: s.shutdown_grace,
            },
        ));
        tracing::info!(
            api = %format!("http://{local_addr}/api"),
            docs = %format!("http://{local_addr}/docs"),
            health = %format!("http://{local_addr}/api/health"),
            "MedEx is listening"
        );
        Ok(Running {
            local_addr,
            metrics_addr,
            medex,
            stop,
            task,
        })
    }
}

/// How the accept loop treats connections (see `crate::listener`).
struct ConnectionRules {
    header_timeout: std::time::Duration,
    max_connections: usize,
    shutdown_grace: std::time::Duration,
}

#[allow(clippy::too_many_arguments)]
async fn serve(
    listener: TcpListener,
    router: Router,
    tracking_reads: Option<TrackingReads>,
    ws: Arc<WsServer>,
    store: Arc<dyn Store>,
    open_sockets: Arc<AtomicUsize>,
    mut stopped: watch::Receiver<bool>,
    rules: ConnectionRules,
) {
    let grace = rules.shutdown_grace;
    let builder = crate::listener::builder(rules.header_timeout);
    let limit = crate::listener::ConnectionLimit::new(rules.max_connections);
    let graceful = GracefulShutdown::new();
    loop {
        let (stream, peer) = tokio::select! {
            accepted = listener.accept() => match accepted {
                Ok(accepted) => accepted,
                Err(error) => {
                    // Out of file descriptors and the like: back off instead of spinning.
                    tracing::warn!(%error, "accept failed");
                    tokio::time::sleep(std::time::Duration::from_millis(50)).await;
                    continue;
                }
            },
            _ = stopped.changed() => break,
        };
        let Some(admitted) = limit.admit() else {
            tokio::spawn(crate::listener::refuse(stream));
            continue;
        };
        let _ = stream.set_nodelay(true);
        let router = router.clone();
        let ws = ws.clone();
        let tracking_reads = tracking_reads.clone();
        let service = hyper::service::service_fn(move |mut request: hyper::Request<Incoming>| {
            let router = router.clone();
            let ws = ws.clone();
            let tracking_reads = tracking_reads.clone();
            async move {
                if request.uri().path().starts_with("/ws/") {
                    request.extensions_mut().insert(medex_ws::PeerAddr(peer));
                    return Ok::<_, Infallible>(ws.handle(request).await.map(Body::new));
                }
                if let Some(reads) = &tracking_reads
                    && let Some(token) = TrackingReads::token(&request)
                {
                    return Ok(reads.answer(token, &request).await);
                }
                request.extensions_mut().insert(ConnectInfo(peer));
                router.oneshot(request.map(Body::new)).await
            }
        });
        let connection = builder
            .serve_connection_with_upgrades(TokioIo::new(stream), service)
            .into_owned();
        let connection = graceful.watch(connection);
        let open_sockets = open_sockets.clone();
        open_sockets.fetch_add(1, Ordering::Relaxed);
        tokio::spawn(async move {
            // Client resets and protocol errors end one connection; nothing to do but log.
            if let Err(error) = connection.await {
                tracing::debug!(%error, %peer, "connection ended with an error");
            }
            open_sockets.fetch_sub(1, Ordering::Relaxed);
            drop(admitted);
        });
    }
    drop(listener);
    tracing::info!("shutting down: closing WebSockets and finishing requests");
    // Clients that never answer the close handshake must not hold the shutdown forever.
    if tokio::time::timeout(grace, ws.shutdown()).await.is_err() {
        tracing::warn!("some WebSockets did not close within the grace period");
    }
    if tokio::time::timeout(grace, graceful.shutdown())
        .await
        .is_err()
    {
        tracing::warn!("some connections did not finish within the grace period");
    }
    let started = Instant::now();
    match store.flush().await {
        Ok(()) => tracing::info!(
            elapsed_ms = started.elapsed().as_millis() as u64,
            "store flushed"
        ),
        Err(error) => tracing::error!(%error, "store flush failed at shutdown"),
    }
}

impl Running {
    /// Where it listens (useful with port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Where `/metrics` is served when it has an address of its own (`MEDEX_METRICS_ADDR`).
    pub fn metrics_addr(&self) -> Option<SocketAddr> {
        self.metrics_addr
    }

    /// The use cases, for embedding programs and tests.
    pub fn medex(&self) -> &Arc<MedEx> {
        &self.medex
    }

    /// Stops accepting, closes WebSockets (1001), lets requests finish, flushes the store.
    pub async fn shutdown(self) {
        let _ = self.stop.send(true);
        let _ = self.task.await;
    }

    /// Serves until SIGINT or SIGTERM, then shuts down gracefully.
    pub async fn wait_for_signal(self) -> Result<(), StartError> {
        let io = |source| StartError::Io {
            path: "signal handler".into(),
            source,
        };
        #[cfg(unix)]
        {
            use tokio::signal::unix::{SignalKind, signal};
            let mut terminate = signal(SignalKind::terminate()).map_err(io)?;
            tokio::select! {
                result = tokio::signal::ctrl_c() => result.map_err(io)?,
                _ = terminate.recv() => {}
            }
        }
        #[cfg(not(unix))]
        tokio::signal::ctrl_c().await.map_err(io)?;
        self.shutdown().await;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use futures::StreamExt as _;
    use medex_core::model::VehicleType;
    use medex_core::permissions::Actor;
    use medex_core::service::{NewDriver, NewVendor};
    use tokio_tungstenite::tungstenite::Message;
    use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;

    use super::*;

    fn settings(dir: &Path) -> Settings {
        let data_dir = dir.display().to_string();
        Settings::from_lookup(|name| match name {
            "MEDEX_ADDR" => Some("127.0.0.1:0".into()),
            "MEDEX_DATA_DIR" => Some(data_dir.clone()),
            _ => None,
        })
        .unwrap()
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn shutdown_closes_websockets_with_going_away_and_flushes() {
        let dir = tempfile::tempdir().unwrap();
        let running = Server::new(settings(dir.path())).start().await.unwrap();
        let medex = running.medex().clone();
        let (_, owner) = medex
            .register_vendor(NewVendor {
                email: "owner@shutdown.test".into(),
                password: "owner-password".into(),
                business_name: "Night Pharmacy".into(),
                address: "1 Main St".into(),
                latitude: 52.5,
                longitude: 13.4,
                ..Default::default()
            })
            .await
            .unwrap();
        let (driver, _) = medex
            .register_driver(
                &Actor::of(&owner),
                NewDriver {
                    vendor_id: None,
                    email: "dee@shutdown.test".into(),
                    password: "driver-password".into(),
                    full_name: "Dee".into(),
                    phone: None,
                    vehicle_type: VehicleType::Car,
                    vehicle_number: None,
                    license_number: None,
                },
            )
            .await
            .unwrap();
        let token = medex
            .login("dee@shutdown.test", "driver-password")
            .await
            .unwrap()
            .access_token;
        let url = format!("ws://{}/ws/driver?token={token}", running.local_addr());
        let (mut socket, _) = tokio_tungstenite::connect_async(url).await.unwrap();
        let first = socket.next().await.unwrap().unwrap();
        assert!(first.to_text().unwrap().contains("connected"), "{first:?}");

        let (closed, ()) = tokio::join!(
            async {
                loop {
                    match socket.next().await {
                        Some(Ok(Message::Close(frame))) => break frame.map(|f| f.code),
                        Some(Ok(_)) => continue,
                        other => panic!("expected a close frame, got {other:?}"),
                    }
                }
            },
            running.shutdown()
        );
        assert_eq!(closed, Some(CloseCode::Away));
        drop(medex);

        // Everything acknowledged before shutdown is on disk.
        let store = SledStore::open(dir.path().join("db")).unwrap();
        assert!(store.driver(driver.id).await.unwrap().is_some());
    }

    #[test]
    fn the_custody_key_is_generated_once_kept_private_and_rotated_without_forgetting() {
        let dir = tempfile::tempdir().unwrap();
        let s = settings(dir.path());
        let first = custody_keys(&s).unwrap();
        let path = dir.path().join(CUSTODY_KEYS_FILE);
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt as _;
            let mode = std::fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        assert_eq!(custody_keys(&s).unwrap().seed(), first.seed(), "kept");
        let rotation = rotate_custody_key(dir.path()).unwrap();
        assert_eq!(rotation.former_key_id, first.current_key_id());
        let rotated = custody_keys(&s).unwrap();
        assert_eq!(rotated.current_key_id(), rotation.key_id);
        let listed: Vec<_> = rotated.published().into_iter().map(|k| k.key_id).collect();
        assert_eq!(
            listed,
            [rotation.key_id.clone(), rotation.former_key_id.clone()]
        );

        // A configured key signs; the file's keys still count.
        let configured = CustodyKeys::from_seed([42; 32]);
        let mut with_env = settings(dir.path());
        with_env.custody_key = CustodyKeySource::Configured(Box::new(configured.clone()));
        with_env.custody_former_keys = vec![CustodyKeys::from_seed([43; 32]).public_key()];
        let keys = custody_keys(&with_env).unwrap();
        assert_eq!(keys.current_key_id(), configured.current_key_id());
        assert_eq!(keys.published().len(), 4);
        with_env.custody_former_keys = vec!["not a key".into()];
        assert!(matches!(
            custody_keys(&with_env),
            Err(StartError::Settings(e)) if e.variable == "MEDEX_CUSTODY_FORMER_KEYS"
        ));

        std::fs::write(&path, "{}").unwrap();
        assert!(
            custody_keys(&s).is_err(),
            "a damaged key file is not replaced"
        );
        let empty = tempfile::tempdir().unwrap();
        assert!(rotate_custody_key(empty.path()).is_err());
    }

    #[test]
    fn the_generated_secret_is_kept_and_reused() {
        let dir = tempfile::tempdir().unwrap();
        let first = generated_secret(dir.path()).unwrap();
        assert!(first.len() >= 32);
        assert_eq!(generated_secret(dir.path()).unwrap(), first);
        std::fs::write(dir.path().join("jwt-secret"), "short").unwrap();
        assert!(
            generated_secret(dir.path()).is_err(),
            "a damaged secret file is not silently replaced"
        );
    }
}
