//! The composed server on a real port, an HTTP client, a WebSocket client, a populated world of
//! actors, and storage snapshots for "nothing changed" assertions.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

use futures::{SinkExt as _, StreamExt as _};
use medex::server::{Running, Server};
use medex::settings::Settings;
use medex_core::MedEx;
use medex_core::model::{Driver, DriverId, Order, OrderId, User, UserId, Vendor, VendorId};
use medex_core::store::{DriverQuery, OrderQuery, Page, UserQuery};
use reqwest::header::HeaderMap;
use serde_json::{Value, json};
use tokio::net::TcpStream;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::protocol::frame::coding::CloseCode;
use tokio_tungstenite::{MaybeTlsStream, WebSocketStream};

/// Every account's password.
pub(crate) const PASSWORD: &str = "e2e-pass-word-1";
/// The first admin, created by the server from its settings.
pub(crate) const ADMIN_EMAIL: &str = "root@medex.test";
/// The longest wait for something the server should do at once; reached only when it does not.
pub(crate) const HANG: Duration = Duration::from_secs(30);

/// A record read straight from the store, which must be there.
fn found<T>(read: Result<Option<T>, medex_core::store::StoreError>) -> T {
    read.expect("store").expect("stored")
}

/// The composed server (HTTP and WebSocket on one port 0, data in a fresh directory, records in
/// sled there or in a fresh PostgreSQL database: see [`Storage`]).
pub(crate) struct TestServer {
    running: Option<Running>,
    pub(crate) addr: SocketAddr,
    pub(crate) dir: tempfile::TempDir,
    pub(crate) http: reqwest::Client,
    storage: Storage,
}

/// The variable that runs the end-to-end suites against PostgreSQL: a server URL such as
/// `postgres://postgres@127.0.0.1:5432/test`, on which every test server gets a fresh database
/// of its own. Unset: sled in each server's data directory. The same suites run either way.
pub(crate) const E2E_DATABASE_URL: &str = "MEDEX_E2E_DATABASE_URL";

/// Where a test server keeps its records.
pub(crate) struct Storage {
    /// The PostgreSQL database, or `None` for sled; dropped with the server.
    database: Option<medex_store_postgres::testing::TestDatabase>,
    /// The settings that select it.
    variables: Vec<(String, String)>,
}

impl Storage {
    /// Sled, or a fresh PostgreSQL database when [`E2E_DATABASE_URL`] is set. PostgreSQL needs
    /// a configured JWT secret: a random one per server.
    pub(crate) async fn new() -> Self {
        let Some(server) = std::env::var(E2E_DATABASE_URL)
            .ok()
            .filter(|u| !u.is_empty())
        else {
            return Self {
                database: None,
                variables: vec![],
            };
        };
        let database = medex_store_postgres::testing::TestDatabase::create_on(&server, "e2e").await;
        let secret: String = {
            use rand::Rng as _;
            let mut rng = rand::rng();
            (0..48)
                .map(|_| {
                    char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.random_range(0..36)])
                })
                .collect()
        };
        // Instances on one database share their custody key too: one is drawn for this database.
        let custody_key = {
            use base64::Engine as _;
            let seed: [u8; 32] = rand::random();
            base64::engine::general_purpose::STANDARD.encode(seed)
        };
        let variables = vec![
            ("MEDEX_DATABASE_URL".to_owned(), database.url().to_owned()),
            ("MEDEX_JWT_SECRET".to_owned(), secret),
            ("MEDEX_CUSTODY_KEY".to_owned(), custody_key),
            ("MEDEX_DATABASE_POOL_SIZE".to_owned(), "8".to_owned()),
        ];
        Self {
            database: Some(database),
            variables,
        }
    }

    /// Whether the records are in PostgreSQL (else sled, in the data directory).
    pub(crate) fn is_postgres(&self) -> bool {
        self.database.is_some()
    }

    /// The settings that select this storage, to add to [`base_variables`].
    pub(crate) fn variables(&self) -> &[(String, String)] {
        &self.variables
    }
}

/// The settings every test server starts from: see [`TestServer::start_with`].
pub(crate) fn base_variables(data_dir: &str) -> HashMap<String, String> {
    [
        ("MEDEX_ADDR", "127.0.0.1:0"),
        ("MEDEX_DATA_DIR", data_dir),
        ("MEDEX_ADMIN_EMAIL", ADMIN_EMAIL),
        ("MEDEX_ADMIN_PASSWORD", PASSWORD),
        ("MEDEX_WS_MIN_FIX_INTERVAL_MS", "0"),
        ("MEDEX_HASH_CONCURRENCY", "2"),
        ("MEDEX_SHUTDOWN_GRACE_SECS", "2"),
        // Every client of these suites is 127.0.0.1, and scenes register many accounts.
        ("MEDEX_REGISTRATIONS_PER_HOUR", "10000"),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_owned(), v.to_owned()))
    .collect()
}

/// An HTTP client for tests: no proxy from the environment, no redirects, bounded waits.
pub(crate) fn http_client() -> reqwest::Client {
    reqwest::Client::builder()
        .no_proxy()
        .redirect(reqwest::redirect::Policy::none())
        .timeout(HANG)
        .build()
        .expect("an HTTP client")
}

/// The base settings for a server on `dir` and `storage`, with `extra` replaced or added.
fn settings_for(dir: &Path, storage: &Storage, extra: &[(&str, &str)]) -> Settings {
    let mut variables = base_variables(dir.to_str().expect("a UTF-8 path"));
    variables.extend(storage.variables().iter().cloned());
    for (k, v) in extra {
        variables.insert((*k).to_owned(), (*v).to_owned());
    }
    Settings::from_lookup(|name| variables.get(name).cloned()).expect("valid settings")
}

impl TestServer {
    pub(crate) async fn start() -> Self {
        Self::start_with(&[]).await
    }

    /// A server with the base settings, some of them replaced or added.
    pub(crate) async fn start_with(extra: &[(&str, &str)]) -> Self {
        let dir = tempfile::tempdir().expect("a temporary directory");
        let storage = Storage::new().await;
        let running = Server::new(settings_for(dir.path(), &storage, extra))
            .start()
            .await
            .expect("the server starts");
        Self {
            addr: running.local_addr(),
            running: Some(running),
            dir,
            http: http_client(),
            storage,
        }
    }

    /// A client of a server running elsewhere (a child process) at `addr`: every API helper
    /// works; reading its storage directly ([`TestServer::medex`]) does not.
    pub(crate) fn remote(addr: SocketAddr) -> Self {
        Self {
            running: None,
            addr,
            dir: tempfile::tempdir().expect("a temporary directory"),
            http: http_client(),
            storage: Storage {
                database: None,
                variables: vec![],
            },
        }
    }

    /// Another client of the same server (its API helpers only, as [`TestServer::remote`]).
    pub(crate) fn clone_client(&self) -> Self {
        Self::remote(self.addr)
    }

    /// Its HTTP client, for requests the helpers do not make.
    pub(crate) fn http_client(&self) -> &reqwest::Client {
        &self.http
    }

    /// Where `/metrics` has an address of its own, if it has.
    pub(crate) fn metrics_addr(&self) -> Option<SocketAddr> {
        self.running.as_ref().expect("running").metrics_addr()
    }

    /// Stops gracefully and starts again on the same data directory and storage, with the base
    /// settings and `extra` (what is kept in the data directory, secrets and keys, carries over).
    pub(crate) async fn restart(&mut self, extra: &[(&str, &str)]) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
        let running = Server::new(settings_for(self.dir.path(), &self.storage, extra))
            .start()
            .await
            .expect("the server starts again");
        self.addr = running.local_addr();
        self.running = Some(running);
    }

    /// The use cases of the running server (reads go straight to its store).
    pub(crate) fn medex(&self) -> &Arc<MedEx> {
        self.running.as_ref().expect("running").medex()
    }

    /// Stops gracefully: closes sockets, flushes the store.
    pub(crate) async fn stop(mut self) {
        if let Some(running) = self.running.take() {
            running.shutdown().await;
        }
    }

    pub(crate) fn url(&self, path: &str) -> String {
        format!("http://{}{path}", self.addr)
    }

    pub(crate) fn ws_url(&self, path: &str) -> String {
        format!("ws://{}{path}", self.addr)
    }

    /// Whether this server keeps its records in PostgreSQL rather than sled.
    pub(crate) fn uses_postgres(&self) -> bool {
        self.storage.is_postgres()
    }

    /// The JWT signing secret: the configured one with PostgreSQL, else the one the server
    /// generated in its data directory.
    pub(crate) fn jwt_secret(&self) -> Vec<u8> {
        if let Some((_, secret)) = self
            .storage
            .variables()
            .iter()
            .find(|(k, _)| k == "MEDEX_JWT_SECRET")
        {
            return secret.as_bytes().to_vec();
        }
        let raw = std::fs::read_to_string(self.dir.path().join("jwt-secret")).expect("jwt-secret");
        raw.trim().as_bytes().to_vec()
    }

    /// A request with a raw body; `headers` are added as given.
    pub(crate) async fn raw(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        headers: &[(&str, &str)],
        body: Option<Vec<u8>>,
    ) -> Reply {
        let method = reqwest::Method::from_bytes(method.as_bytes()).expect("a method");
        let mut request = self.http.request(method, self.url(path));
        if let Some(token) = token {
            request = request.bearer_auth(token);
        }
        for (name, value) in headers {
            request = request.header(*name, *value);
        }
        if let Some(body) = body {
            request = request.body(body);
        }
        let response = request
            .send()
            .await
            .unwrap_or_else(|e| panic!("{path}: {e}"));
        Reply::read(response).await
    }

    /// A JSON request (`None`: no body).
    pub(crate) async fn call(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<Value>,
    ) -> Reply {
        match body {
            Some(body) => {
                self.raw(
                    method,
                    path,
                    token,
                    &[("content-type", "application/json")],
                    Some(body.to_string().into_bytes()),
                )
                .await
            }
            None => self.raw(method, path, token, &[], None).await,
        }
    }

    /// A GET without a token.
    pub(crate) async fn public(&self, path: &str) -> Reply {
        self.call("GET", path, None, None).await
    }

    pub(crate) async fn get(&self, path: &str, token: &str) -> Reply {
        self.call("GET", path, Some(token), None).await
    }

    pub(crate) async fn post(&self, path: &str, token: Option<&str>, body: Value) -> Reply {
        self.call("POST", path, token, Some(body)).await
    }

    pub(crate) async fn patch(&self, path: &str, token: &str, body: Value) -> Reply {
        self.call("PATCH", path, Some(token), Some(body)).await
    }

    pub(crate) async fn login(&self, email: &str, password: &str) -> Reply {
        self.post(
            "/api/auth/login",
            None,
            json!({"email": email, "password": password}),
        )
        .await
    }

    // -----------------------------------------------------------------------------------------
    // Reading storage directly, bypassing the API.

    pub(crate) async fn stored_order(&self, id: &str) -> Order {
        let id: OrderId = id.parse().expect("an order id");
        found(self.medex().store().order(id).await)
    }

    pub(crate) async fn stored_driver(&self, id: &str) -> Driver {
        let id: DriverId = id.parse().expect("a driver id");
        found(self.medex().store().driver(id).await)
    }

    pub(crate) async fn stored_vendor(&self, id: &str) -> Vendor {
        let id: VendorId = id.parse().expect("a vendor id");
        found(self.medex().store().vendor(id).await)
    }

    pub(crate) async fn stored_user(&self, id: &str) -> User {
        let id: UserId = id.parse().expect("a user id");
        found(self.medex().store().user(id).await)
    }

    /// Every record (orders, drivers, pharmacies, accounts), the configuration and the uploaded
    /// files, as JSON, for comparing before and after a refused request.
    pub(crate) async fn snapshot(&self) -> Snapshot {
        let store = self.medex().store();
        // Accepted fixes are written behind the answer: settle them first, so that a fix taken
        // before the snapshot cannot land in the store between two snapshots.
        store.flush().await.expect("the store flushes");
        // Pages until a short one: the worlds of these tests are small, the loops are a bound.
        macro_rules! all {
            ($list:expr) => {{
                let mut all = Vec::new();
                let mut after = None;
                loop {
                    let page = $list(Page { limit: 200, after }).await.expect("store");
                    let done = page.len() < 200;
                    after = page.last().map(|r| r.id);
                    all.extend(page);
                    if done {
                        break all;
                    }
                }
            }};
        }
        let (any_order, any_driver, any_user) = (
            OrderQuery::default(),
            DriverQuery::default(),
            UserQuery::default(),
        );
        let orders = all!(|p| store.orders(&any_order, p));
        let drivers = all!(|p| store.drivers(&any_driver, p));
        let vendors = all!(|p| store.vendors(p));
        let users = all!(|p| store.users(&any_user, p));
        let uploads = self.uploaded_files().await;
        Snapshot {
            records: orders
                .iter()
                .map(|o| (format!("order {}", o.id), json(o)))
                .chain(
                    drivers
                        .iter()
                        .map(|d| (format!("driver {}", d.id), json(d))),
                )
                .chain(
                    vendors
                        .iter()
                        .map(|v| (format!("vendor {}", v.id), json(v))),
                )
                .chain(users.iter().map(|u| (format!("user {}", u.id), json(u))))
                .chain([("system config".to_owned(), json(&*self.medex().config()))])
                .collect(),
            uploads,
        }
    }

    /// The names of the uploaded files the server keeps, sorted: in its upload directory on
    /// sled, in its database's `uploads` table on PostgreSQL.
    pub(crate) async fn uploaded_files(&self) -> Vec<String> {
        let mut names: Vec<String> = match &self.storage.database {
            Some(database) => {
                let (client, connection) =
                    tokio_postgres::connect(database.url(), tokio_postgres::NoTls)
                        .await
                        .expect("the test database");
                tokio::spawn(connection);
                client
                    .query("SELECT name FROM uploads", &[])
                    .await
                    .expect("the uploads table")
                    .iter()
                    .map(|row| row.get(0))
                    .collect()
            }
            None => match std::fs::read_dir(self.dir.path().join("uploads")) {
                Ok(entries) => entries
                    .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
                    .collect(),
                Err(_) => vec![],
            },
        };
        names.sort();
        names
    }

    /// Sends a request with any [`Body`].
    pub(crate) async fn send(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
    ) -> Reply {
        match body {
            Body::Empty => self.raw(method, path, token, &[], None).await,
            Body::Json(value) => self.call(method, path, token, Some(value)).await,
            Body::Multipart {
                content_type,
                bytes,
            } => {
                self.raw(
                    method,
                    path,
                    token,
                    &[("content-type", &content_type)],
                    Some(bytes),
                )
                .await
            }
        }
    }

    /// Sends a request that must be refused with `status`, and checks that storage (records,
    /// configuration, uploaded files) is exactly as it was before.
    pub(crate) async fn refused(
        &self,
        case: &str,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Body,
        status: u16,
    ) -> Reply {
        let before = self.snapshot().await;
        let reply = self.send(method, path, token, body).await;
        assert_eq!(
            reply.status.as_u16(),
            status,
            "{case}: {method} {path}: {}",
            reply.text
        );
        reply.assert_error_format(case);
        self.snapshot().await.assert_same(&before, case);
        reply
    }
}

/// A request body.
#[derive(Debug, Clone)]
pub(crate) enum Body {
    Empty,
    Json(Value),
    Multipart {
        content_type: String,
        bytes: Vec<u8>,
    },
}

impl From<Value> for Body {
    fn from(value: Value) -> Self {
        Body::Json(value)
    }
}

/// The smallest file the server takes for a PNG: its signature and a little more.
pub(crate) const PNG: &[u8] = b"\x89PNG\r\n\x1a\n\0\0\0\rIHDR\0\0\0\x01\0\0\0\x01\x08\x02\0\0\0";

/// A multipart/form-data body with an image `file` and an `order_id`.
pub(crate) fn upload_body(order_id: &str, file: &[u8]) -> Body {
    let boundary = "e2e-boundary-4f1c9a";
    let mut bytes = Vec::new();
    bytes.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"order_id\"\r\n\r\n{order_id}\r\n"
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(
        format!(
            "--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"../../proof.png\"\r\nContent-Type: image/png\r\n\r\n"
        )
        .as_bytes(),
    );
    bytes.extend_from_slice(file);
    bytes.extend_from_slice(format!("\r\n--{boundary}--\r\n").as_bytes());
    Body::Multipart {
        content_type: format!("multipart/form-data; boundary={boundary}"),
        bytes,
    }
}

fn json<T: serde::Serialize>(record: &T) -> Value {
    serde_json::to_value(record).expect("records serialize")
}

/// Storage at one moment.
#[derive(Debug, PartialEq)]
pub(crate) struct Snapshot {
    records: std::collections::BTreeMap<String, Value>,
    uploads: Vec<String>,
}

impl Snapshot {
    #[track_caller]
    pub(crate) fn assert_same(&self, before: &Snapshot, case: &str) {
        for (key, value) in &self.records {
            match before.records.get(key) {
                None => panic!("{case}: {key} was created: {value}"),
                Some(old) if old != value => {
                    panic!("{case}: {key} changed\nbefore: {old}\nafter:  {value}")
                }
                Some(_) => {}
            }
        }
        for key in before.records.keys() {
            assert!(self.records.contains_key(key), "{case}: {key} disappeared");
        }
        assert_eq!(
            self.uploads, before.uploads,
            "{case}: uploaded files changed"
        );
    }

    /// The records that differ from `before` (created ones included), by key.
    pub(crate) fn changed_since(&self, before: &Snapshot) -> Vec<(String, Option<Value>, Value)> {
        self.records
            .iter()
            .filter(|(key, value)| before.records.get(*key) != Some(value))
            .map(|(key, value)| (key.clone(), before.records.get(key).cloned(), value.clone()))
            .collect()
    }
}

/// A response with its body as text and, when it is JSON, parsed.
#[derive(Debug)]
pub(crate) struct Reply {
    pub(crate) status: reqwest::StatusCode,
    pub(crate) headers: HeaderMap,
    pub(crate) text: String,
    pub(crate) json: Value,
}

impl Reply {
    pub(crate) async fn read(response: reqwest::Response) -> Self {
        let status = response.status();
        let headers = response.headers().clone();
        let bytes = response.bytes().await.expect("a body");
        Self {
            status,
            headers,
            text: String::from_utf8_lossy(&bytes).into_owned(),
            json: serde_json::from_slice(&bytes).unwrap_or(Value::Null),
        }
    }

    /// Asserts the status and, for errors, the API's error format.
    #[track_caller]
    pub(crate) fn expect(&self, status: u16) -> &Self {
        assert_eq!(self.status.as_u16(), status, "body: {}", self.text);
        if status >= 400 {
            self.assert_error_format("");
        }
        self
    }

    #[track_caller]
    pub(crate) fn assert_error_format(&self, case: &str) {
        assert!(
            self.header("content-type")
                .is_some_and(|v| v.starts_with("application/json")),
            "{case}: error without a JSON content type: {:?} {}",
            self.headers,
            self.text
        );
        assert!(
            self.json["detail"].is_string() && self.json["code"].is_string(),
            "{case}: not the error format: {}",
            self.text
        );
    }

    pub(crate) fn code(&self) -> &str {
        self.json["code"].as_str().unwrap_or("")
    }

    pub(crate) fn header(&self, name: &str) -> Option<&str> {
        self.headers.get(name).and_then(|v| v.to_str().ok())
    }

    pub(crate) fn str(&self, key: &str) -> String {
        self.json[key]
            .as_str()
            .unwrap_or_else(|| panic!("no string {key} in {}", self.text))
            .to_owned()
    }
}

// ---------------------------------------------------------------------------------------------
// The example server as a child process

/// Builds the example server once per test run; its path.
pub(crate) fn server_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        // This test binary lives in <target>/<profile>/deps/; the example goes to
        // <target>/<profile>/examples/.
        let exe = std::env::current_exe().expect("the test binary's path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("<target>/<profile>/deps/<test>");
        let cargo = std::env::var("CARGO").unwrap_or_else(|_| "cargo".into());
        let mut build = Command::new(cargo);
        build
            .args(["build", "--quiet", "--example", "server"])
            .current_dir(env!("CARGO_MANIFEST_DIR"));
        // Cargo describes this test to it in variables that some build scripts watch
        // (`CARGO_MANIFEST_DIR`): passed on, they would make this build redo theirs.
        for (name, _) in std::env::vars() {
            if name.starts_with("CARGO_PKG_")
                || [
                    "CARGO_MANIFEST_DIR",
                    "CARGO_MANIFEST_PATH",
                    "CARGO_CRATE_NAME",
                    "CARGO_PRIMARY_PACKAGE",
                    "CARGO_TARGET_TMPDIR",
                    "CARGO_RUSTC_CURRENT_DIR",
                    "OUT_DIR",
                ]
                .contains(&name.as_str())
            {
                build.env_remove(name);
            }
        }
        if profile_dir.file_name().is_some_and(|n| n == "release") {
            build.arg("--release");
        }
        let output = build.output().expect("running cargo");
        assert!(
            output.status.success(),
            "`cargo build --example server` failed; the suites that run it need it:\n{}",
            String::from_utf8_lossy(&output.stderr)
        );
        let binary = profile_dir.join("examples").join("server");
        assert!(binary.exists(), "no example server at {}", binary.display());
        binary
    })
}

/// The example server as a child process, with exactly the given settings (nothing from this
/// process's environment); killed (SIGKILL) when dropped.
pub(crate) struct ChildServer {
    child: Child,
    pub(crate) addr: SocketAddr,
    stderr: PathBuf,
}

impl ChildServer {
    /// Starts it in `dir` (logs `stdout-<label>.log`, `stderr-<label>.log` there) and waits
    /// until it listens.
    pub(crate) fn start(dir: &Path, variables: &[(String, String)], label: &str) -> Self {
        let file = label.replace(' ', "-");
        let stdout = dir.join(format!("stdout-{file}.log"));
        let stderr = dir.join(format!("stderr-{file}.log"));
        let mut command = Command::new(server_binary());
        command
            .env_clear()
            .current_dir(dir)
            .stdin(Stdio::null())
            .stdout(std::fs::File::create(&stdout).unwrap())
            .stderr(std::fs::File::create(&stderr).unwrap());
        for (k, v) in variables {
            command.env(k, v);
        }
        if !variables.iter().any(|(k, _)| k == "MEDEX_LOG") {
            command.env("MEDEX_LOG", "warn");
        }
        let mut child = command.spawn().expect("starting the example server");
        // It prints where the API is once it listens.
        let started = Instant::now();
        let addr = loop {
            let printed = std::fs::read_to_string(&stdout).unwrap_or_default();
            if let Some(addr) = printed
                .lines()
                .find_map(|l| l.trim().strip_prefix("API"))
                .and_then(|rest| rest.trim().strip_prefix("http://"))
                .and_then(|rest| rest.strip_suffix("/api"))
            {
                break addr.parse().expect("an address");
            }
            if let Some(status) = child.try_wait().unwrap() {
                panic!(
                    "{label}: the server exited ({status}) before listening:\n{}",
                    std::fs::read_to_string(&stderr).unwrap_or_default()
                );
            }
            assert!(
                started.elapsed() < HANG,
                "{label}: the server did not start:\n{printed}\n{}",
                std::fs::read_to_string(&stderr).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(20));
        };
        Self {
            child,
            addr,
            stderr,
        }
    }

    /// Kills it with SIGKILL, as a crash would, and waits for it to end.
    pub(crate) fn kill(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// What it wrote on standard error so far (its warnings and errors).
    pub(crate) fn log(&self) -> String {
        std::fs::read_to_string(&self.stderr).unwrap_or_default()
    }

    /// A client of its API.
    pub(crate) fn api(&self) -> TestServer {
        TestServer::remote(self.addr)
    }
}

impl Drop for ChildServer {
    fn drop(&mut self) {
        self.kill();
    }
}

// ---------------------------------------------------------------------------------------------
// Actors

/// One signed-in account.
#[derive(Debug, Clone)]
pub(crate) struct Who {
    pub(crate) token: String,
    pub(crate) refresh: String,
    pub(crate) user_id: String,
    pub(crate) email: String,
}

impl Who {
    fn from_session(reply: &Reply) -> Self {
        Self {
            token: reply.str("access_token"),
            refresh: reply.str("refresh_token"),
            user_id: reply.json["user"]["id"].as_str().unwrap().to_owned(),
            email: reply.json["user"]["email"].as_str().unwrap().to_owned(),
        }
    }
}

/// A pharmacy with its owner signed in.
#[derive(Debug, Clone)]
pub(crate) struct Pharmacy {
    pub(crate) owner: Who,
    pub(crate) id: String,
}

/// A driver signed in.
#[derive(Debug, Clone)]
pub(crate) struct Courier {
    pub(crate) who: Who,
    pub(crate) id: String,
}

impl TestServer {
    pub(crate) async fn signed_in(&self, email: &str) -> Who {
        let r = self.login(email, PASSWORD).await;
        r.expect(200);
        Who::from_session(&r)
    }

    pub(crate) async fn admin(&self) -> Who {
        self.signed_in(ADMIN_EMAIL).await
    }

    pub(crate) async fn customer(&self, email: &str, name: &str, phone: &str) -> Who {
        let r = self
            .post(
                "/api/auth/register",
                None,
                json!({"email": email, "password": PASSWORD, "full_name": name, "phone": phone}),
            )
            .await;
        r.expect(201);
        Who::from_session(&r)
    }

    pub(crate) async fn pharmacy(&self, email: &str, name: &str, phone: &str) -> Pharmacy {
        let r = self
            .post(
                "/api/vendors/register",
                None,
                json!({"email": email, "password": PASSWORD, "business_name": name,
                       "phone": phone, "address": "Alexanderplatz 1, Berlin",
                       "latitude": 52.5219, "longitude": 13.4132}),
            )
            .await;
        r.expect(201);
        Pharmacy {
            id: r.str("vendor_id"),
            owner: self.signed_in(email).await,
        }
    }

    pub(crate) async fn courier(
        &self,
        vendor: &Pharmacy,
        email: &str,
        name: &str,
        phone: &str,
    ) -> Courier {
        let r = self
            .post(
                "/api/drivers/register",
                Some(&vendor.owner.token),
                json!({"email": email, "password": PASSWORD, "full_name": name,
                       "phone": phone, "vehicle_type": "bike", "vehicle_number": "B-MX 1"}),
            )
            .await;
        r.expect(201);
        Courier {
            id: r.str("driver_id"),
            who: self.signed_in(email).await,
        }
    }

    /// Puts a driver on duty (its own call).
    pub(crate) async fn available(&self, courier: &Courier) {
        self.patch(
            &format!("/api/drivers/{}/status", courier.id),
            &courier.who.token,
            json!({"status": "available"}),
        )
        .await
        .expect(200);
    }
}

/// Phone numbers and names the public must never see.
pub(crate) const CUSTOMER_NAME: &str = "Ann Patient";
pub(crate) const CUSTOMER_PHONE: &str = "+49 30 555 0199";
pub(crate) const RECIPIENT_PHONE: &str = "+49 30 555 0142";
pub(crate) const VENDOR_PHONE: &str = "+49 30 555 0100";
pub(crate) const DRIVER_NAME: &str = "Dee Driverson";
pub(crate) const DRIVER_SURNAME: &str = "Driverson";
pub(crate) const DRIVER_PHONE: &str = "+49 30 555 0101";

/// The fixed personal details a [`World`] holds: none of them may reach a public view.
pub(crate) const FIXED_PERSONAL_DETAILS: [&str; 6] = [
    CUSTOMER_NAME,
    CUSTOMER_PHONE,
    RECIPIENT_PHONE,
    VENDOR_PHONE,
    DRIVER_PHONE,
    DRIVER_SURNAME,
];

/// The fields of a driver's position as the public tracking page receives it, and no others.
pub(crate) const PUBLIC_FIX_FIELDS: [&str; 6] = [
    "eta_minutes",
    "latitude",
    "longitude",
    "recorded_at",
    "sent_at",
    "type",
];

/// Everyone the suites need, on one server.
pub(crate) struct World {
    pub(crate) server: TestServer,
    pub(crate) admin: Who,
    pub(crate) customer: Who,
    pub(crate) other_customer: Who,
    pub(crate) vendor: Pharmacy,
    pub(crate) other_vendor: Pharmacy,
    pub(crate) driver: Courier,
    pub(crate) second_driver: Courier,
    pub(crate) other_driver: Courier,
}

impl World {
    pub(crate) async fn new() -> Self {
        Self::on(TestServer::start().await).await
    }

    pub(crate) async fn on(server: TestServer) -> Self {
        let s = &server;
        let (admin, customer, other_customer, vendor, other_vendor) = tokio::join!(
            s.admin(),
            s.customer("ann@example.test", CUSTOMER_NAME, CUSTOMER_PHONE),
            s.customer("bob@example.test", "Bob Stranger", "+49 30 555 0777"),
            s.pharmacy("owner@corner.test", "Corner Pharmacy", VENDOR_PHONE),
            s.pharmacy("owner@other.test", "Other Pharmacy", "+49 30 555 0200"),
        );
        // Drivers of one fleet one after the other: each registration changes the pharmacy's
        // record, and two at once would conflict (409), as the contract says.
        let (driver, other_driver) = tokio::join!(
            s.courier(&vendor, "dee@corner.test", DRIVER_NAME, DRIVER_PHONE),
            s.courier(
                &other_vendor,
                "oz@other.test",
                "Oz Otherland",
                "+49 30 555 0201"
            ),
        );
        let second_driver = s
            .courier(&vendor, "sam@corner.test", "Sam Secondo", "+49 30 555 0102")
            .await;
        Self {
            server,
            admin,
            customer,
            other_customer,
            vendor,
            other_vendor,
            driver,
            second_driver,
            other_driver,
        }
    }

    /// A new order's body, for the main pharmacy.
    pub(crate) fn order_body(&self) -> Value {
        json!({
            "vendor_id": self.vendor.id,
            "delivery_address": "Torstrasse 1, Berlin",
            "delivery_latitude": 52.5290,
            "delivery_longitude": 13.4010,
            "customer_name": CUSTOMER_NAME,
            "customer_phone": RECIPIENT_PHONE,
            "items": [{"name": "Amoxicillin 500 mg", "quantity": 1, "notes": "after meals"}],
            "notes": "ring twice"
        })
    }

    /// A pending order placed by the customer: (id, tracking token).
    pub(crate) async fn order(&self) -> (String, String) {
        let r = self
            .server
            .post("/api/orders", Some(&self.customer.token), self.order_body())
            .await;
        r.expect(201);
        (r.str("id"), r.str("tracking_token"))
    }

    pub(crate) async fn set_status(&self, order: &str, token: &str, status: &str) -> Reply {
        self.server
            .patch(
                &format!("/api/orders/{order}"),
                token,
                json!({"status": status, "reason": "because"}),
            )
            .await
    }

    pub(crate) async fn assign(&self, order: &str, courier: &Courier) -> Reply {
        self.server
            .post(
                &format!("/api/orders/{order}/assign-driver"),
                Some(&self.vendor.owner.token),
                json!({"driver_id": courier.id}),
            )
            .await
    }

    /// The main pharmacy's dashboard socket address, signed in with `token`.
    pub(crate) fn dashboard_url(&self, token: &str) -> String {
        self.server
            .ws_url(&format!("/ws/vendor/{}?token={token}", self.vendor.id))
    }

    /// `courier`'s driver socket address.
    pub(crate) fn driver_url(&self, courier: &Courier) -> String {
        self.server
            .ws_url(&format!("/ws/driver?token={}", courier.who.token))
    }

    /// The main pharmacy registers a webhook endpoint at `url` for every event.
    pub(crate) async fn register_webhook(&self, url: &str) -> Reply {
        self.server
            .post(
                &format!("/api/vendors/{}/webhooks", self.vendor.id),
                Some(&self.vendor.owner.token),
                json!({"url": url, "events": ["*"]}),
            )
            .await
    }

    /// `courier` accepts the assignment of `order`.
    pub(crate) async fn accept_assignment(&self, order: &str, courier: &Courier) -> Reply {
        self.server
            .post(
                &format!("/api/orders/{order}/assignment"),
                Some(&courier.who.token),
                json!({"action": "accept"}),
            )
            .await
    }

    /// Cancels `order` (DELETE) with `token`.
    pub(crate) async fn cancel(&self, order: &str, token: &str) -> Reply {
        self.server
            .call("DELETE", &format!("/api/orders/{order}"), Some(token), None)
            .await
    }

    /// The main driver's earnings, as the driver reads them.
    pub(crate) async fn driver_earnings(&self) -> Reply {
        self.server
            .get(
                &format!("/api/drivers/{}/earnings", self.driver.id),
                &self.driver.who.token,
            )
            .await
    }

    /// An order of the customer brought to `status` along the happy path, `courier` driving.
    pub(crate) async fn order_in(&self, status: &str, courier: &Courier) -> (String, String) {
        let (order, token) = self.order().await;
        let path: &[&str] = &[
            "accepted",
            "assign",
            "picked_up",
            "out_for_delivery",
            "delivered",
        ];
        let steps = match status {
            "pending" => 0,
            "accepted" => 1,
            "driver_assigned" => 2,
            "picked_up" => 3,
            "out_for_delivery" => 4,
            "delivered" => 5,
            other => panic!("no path to {other}"),
        };
        for step in &path[..steps] {
            match *step {
                "accepted" => {
                    self.set_status(&order, &self.vendor.owner.token, step)
                        .await
                        .expect(200);
                }
                "assign" => {
                    let driver = self.server.stored_driver(&courier.id).await;
                    if driver.status != medex_core::model::DriverStatus::Available {
                        self.server.available(courier).await;
                    }
                    self.assign(&order, courier).await.expect(200);
                }
                _ => {
                    self.set_status(&order, &courier.who.token, step)
                        .await
                        .expect(200);
                }
            }
        }
        (order, token)
    }
}

// ---------------------------------------------------------------------------------------------
// WebSocket

/// A WebSocket client that keeps the raw text of everything it received.
pub(crate) struct Socket {
    stream: WebSocketStream<MaybeTlsStream<TcpStream>>,
    /// Every text message, as received.
    pub(crate) seen: Vec<String>,
    name: String,
}

/// How a handshake was refused: the HTTP status and the JSON body.
pub(crate) async fn ws_refused(url: &str) -> (u16, Value) {
    match tokio::time::timeout(HANG, tokio_tungstenite::connect_async(url))
        .await
        .expect("the handshake hangs")
    {
        Ok(_) => panic!("{url} was accepted"),
        Err(tokio_tungstenite::tungstenite::Error::Http(response)) => {
            let body = response.body().clone().unwrap_or_default();
            (
                response.status().as_u16(),
                serde_json::from_slice(&body).unwrap_or(Value::Null),
            )
        }
        Err(e) => panic!("{url}: not an HTTP refusal: {e}"),
    }
}

impl Socket {
    pub(crate) async fn connect(url: &str, name: &str) -> Self {
        let (stream, _) = tokio::time::timeout(HANG, tokio_tungstenite::connect_async(url))
            .await
            .expect("the handshake hangs")
            .unwrap_or_else(|e| panic!("{name}: connecting: {e}"));
        Self {
            stream,
            seen: Vec::new(),
            name: name.to_owned(),
        }
    }

    /// The next text message as JSON (control frames skipped). Panics on close, or when no text
    /// arrives within [`HANG`]: one deadline for the whole wait, since the server's pings (every
    /// 20 s) would otherwise restart it forever.
    pub(crate) async fn next(&mut self) -> Value {
        let deadline = tokio::time::Instant::now() + HANG;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no message arrived", self.name))
                .unwrap_or_else(|| panic!("{}: connection ended", self.name))
                .unwrap_or_else(|e| panic!("{}: connection failed: {e}", self.name));
            match message {
                Message::Text(text) => {
                    self.seen.push(text.to_string());
                    return serde_json::from_str(&text).expect("JSON messages");
                }
                Message::Close(frame) => panic!("{}: closed: {frame:?}", self.name),
                _ => {}
            }
        }
    }

    /// The next message, which must be of type `kind`.
    pub(crate) async fn expect(&mut self, kind: &str) -> Value {
        let message = self.next().await;
        assert_eq!(
            message["type"], kind,
            "{}: expected {kind}, got {message}",
            self.name
        );
        message
    }

    /// The next two messages, a `driver_location` and the `driver_arriving` its fix told, in
    /// either order: positions are coalesced on their way out, events are not, so the two may
    /// pass each other.
    pub(crate) async fn expect_fix_and_arriving(&mut self) -> (Value, Value) {
        let (first, second) = (self.next().await, self.next().await);
        let (fix, arriving) = if first["type"] == "driver_location" {
            (first, second)
        } else {
            (second, first)
        };
        assert_eq!(
            (&fix["type"], &arriving["type"]),
            (&json!("driver_location"), &json!("driver_arriving")),
            "{}: {fix} {arriving}",
            self.name
        );
        (fix, arriving)
    }

    /// The next message, which must be an order_status moving the order from `from` to `to`.
    pub(crate) async fn expect_status_change(&mut self, from: &str, to: &str) -> Value {
        let status = self.expect("order_status").await;
        assert_eq!(
            (
                status["status"].as_str(),
                status["previous_status"].as_str()
            ),
            (Some(to), Some(from)),
            "{}: {status}",
            self.name
        );
        status
    }

    /// The next message of type `kind`, skipping others (positions and statuses interleave).
    pub(crate) async fn until(&mut self, kind: &str) -> Value {
        loop {
            let message = self.next().await;
            if message["type"] == kind {
                return message;
            }
        }
    }

    pub(crate) async fn send_json(&mut self, value: Value) {
        self.send(Message::Text(value.to_string().into())).await;
    }

    pub(crate) async fn send(&mut self, message: Message) {
        self.stream
            .send(message)
            .await
            .unwrap_or_else(|e| panic!("{}: sending: {e}", self.name));
    }

    /// Reads up to the server's close frame; returns its code and the messages before it.
    pub(crate) async fn closed(&mut self) -> (CloseCode, Vec<Value>) {
        let mut before = Vec::new();
        let deadline = tokio::time::Instant::now() + HANG;
        loop {
            let message = tokio::time::timeout_at(deadline, self.stream.next())
                .await
                .unwrap_or_else(|_| panic!("{}: no close arrived", self.name));
            match message {
                Some(Ok(Message::Text(text))) => {
                    self.seen.push(text.to_string());
                    before.push(serde_json::from_str(&text).expect("JSON messages"));
                }
                Some(Ok(Message::Close(frame))) => {
                    // Reading on sends the client's close reply and sees the server hang up.
                    let _ = tokio::time::timeout(HANG, async {
                        while let Some(Ok(_)) = self.stream.next().await {}
                    })
                    .await;
                    return (frame.map_or(CloseCode::Status, |f| f.code), before);
                }
                Some(Ok(_)) => {}
                other => panic!(
                    "{}: ended without a close frame: {other:?}, after {before:?}",
                    self.name
                ),
            }
        }
    }

    /// Waits until the connection ends, whichever way: a close frame, a reset, or the server
    /// vanishing.
    pub(crate) async fn ended(&mut self) {
        let ended = tokio::time::timeout(HANG, async {
            while let Some(Ok(_)) = self.stream.next().await {}
        })
        .await;
        assert!(ended.is_ok(), "{}: the connection did not end", self.name);
    }

    /// Closes from the client's side.
    pub(crate) async fn close(mut self) {
        let _ = tokio::time::timeout(HANG, self.stream.close(None)).await;
    }

    /// Everything received, as one text (for "never contains" assertions).
    pub(crate) fn transcript(&self) -> String {
        self.seen.join("\n")
    }
}

/// The keys of a JSON object, sorted.
pub(crate) fn keys(value: &Value) -> Vec<String> {
    let mut keys: Vec<String> = value
        .as_object()
        .unwrap_or_else(|| panic!("not an object: {value}"))
        .keys()
        .cloned()
        .collect();
    keys.sort();
    keys
}

/// An answer read off a raw TCP exchange.
#[derive(Debug)]
pub(crate) struct RawReply {
    pub(crate) status: u16,
    /// Status line and headers.
    pub(crate) head: String,
    /// The body as sent (chunked framing included, if any).
    pub(crate) body: String,
}

/// Writes `request` as given on a fresh connection and reads the answer until the server closes
/// it (send `Connection: close`). For requests an HTTP client would not send.
pub(crate) async fn raw_http(addr: SocketAddr, request: &[u8]) -> RawReply {
    use tokio::io::{AsyncReadExt as _, AsyncWriteExt as _};
    let mut stream = TcpStream::connect(addr).await.expect("connect");
    // The server may answer and close before reading all of an unwanted body: a failed write
    // is expected then, the answer is what counts.
    for piece in request.chunks(16 * 1024) {
        if stream.write_all(piece).await.is_err() {
            break;
        }
    }
    let mut bytes = Vec::new();
    let _ = tokio::time::timeout(HANG, stream.read_to_end(&mut bytes))
        .await
        .expect("the server neither answers nor closes");
    let text = String::from_utf8_lossy(&bytes).into_owned();
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let status = head
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .unwrap_or_else(|| panic!("no status line in {text:?}"));
    RawReply {
        status,
        head: head.to_owned(),
        body: body.to_owned(),
    }
}

/// A real WooCommerce "order created" payload.
pub(crate) const WC_ORDER: &str =
    include_str!("../../medex-http/tests/fixtures/woocommerce-order.json");

impl TestServer {
    /// Gives the pharmacy a webhook secret, as its owner.
    pub(crate) async fn webhook_secret(&self, vendor: &Pharmacy, secret: &str) {
        self.patch(
            &format!("/api/vendors/{}", vendor.id),
            &vendor.owner.token,
            json!({"woocommerce_webhook_secret": secret}),
        )
        .await
        .expect(200);
    }

    /// Delivers a WooCommerce webhook signed as WooCommerce does: base64(HMAC-SHA256(secret,
    /// raw body)).
    pub(crate) async fn webhook(&self, vendor_id: &str, secret: &str, body: &[u8]) -> Reply {
        use base64::Engine as _;
        use hmac::Mac as _;
        let mut mac =
            hmac::Hmac::<sha2::Sha256>::new_from_slice(secret.as_bytes()).expect("any key");
        mac.update(body);
        let signature =
            base64::engine::general_purpose::STANDARD.encode(mac.finalize().into_bytes());
        self.raw(
            "POST",
            &format!("/api/webhooks/wc/order-created?vendor_id={vendor_id}"),
            None,
            &[
                ("content-type", "application/json"),
                ("x-wc-webhook-topic", "order.created"),
                ("x-wc-webhook-signature", &signature),
            ],
            Some(body.to_vec()),
        )
        .await
    }
}

// ---------------------------------------------------------------------------------------------
// Custody records, checked as a third party would: from the JSON alone, with sha2 and the
// public key, written here independently of the server's code.

/// Lowercase hex of `bytes`.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A JSON string as the canonical form writes it: only `"`, `\` and control characters escaped.
fn canonical_string(text: &str, out: &mut String) {
    out.push('"');
    for c in text.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\u{8}' => out.push_str("\\b"),
            '\t' => out.push_str("\\t"),
            '\n' => out.push_str("\\n"),
            '\u{c}' => out.push_str("\\f"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 => out.push_str(&format!("\\u{:04x}", c as u32)),
            c => out.push(c),
        }
    }
    out.push('"');
}

/// The canonical JSON of a value: members sorted by name, no whitespace. Entries hold no
/// numbers; meeting one means the record is not what the README describes.
fn canonical(value: &Value, out: &mut String) -> Result<(), String> {
    match value {
        Value::Null => out.push_str("null"),
        Value::Bool(b) => out.push_str(if *b { "true" } else { "false" }),
        Value::Number(n) => return Err(format!("a number in an entry: {n}")),
        Value::String(s) => canonical_string(s, out),
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical(item, out)?;
            }
            out.push(']');
        }
        Value::Object(members) => {
            let mut names: Vec<&String> = members.keys().collect();
            names.sort();
            out.push('{');
            for (i, name) in names.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_string(name, out);
                out.push(':');
                canonical(&members[name], out)?;
            }
            out.push('}');
        }
    }
    Ok(())
}

/// Checks a `GET /api/orders/{id}/custody` answer against `GET /api/custody/keys`: every hash
/// re-derived from its entry, every entry linked to the one before (the first to the order
/// id), the head hash the newest entry's, and the Ed25519 signature over order id and head
/// valid for the key it names.
pub(crate) fn verify_custody(record: &Value, keys: &Value) -> Result<(), String> {
    use base64::Engine as _;
    use sha2::Digest as _;
    let order_id = record["order_id"].as_str().ok_or("no order_id")?;
    let entries = record["entries"].as_array().ok_or("no entries")?;
    let mut previous = order_id.to_owned();
    for (i, entry) in entries.iter().enumerate() {
        let mut members = entry.as_object().ok_or("an entry is no object")?.clone();
        let hash = members.remove("hash").ok_or("an entry without hash")?;
        if members.get("prev_hash") != Some(&Value::String(previous.clone())) {
            return Err(format!("entry {i} is not linked to the one before"));
        }
        let mut text = String::new();
        canonical(&Value::Object(members), &mut text)?;
        let derived = hex(&sha2::Sha256::digest(text.as_bytes()));
        if hash != Value::String(derived.clone()) {
            return Err(format!(
                "entry {i}: hash {hash} but its content hashes to {derived}"
            ));
        }
        previous = derived;
    }
    if record["head_hash"] != Value::String(previous.clone()) {
        return Err("the head hash is not the newest entry's".into());
    }
    let key_id = record["key_id"].as_str().ok_or("no key_id")?;
    let key = keys
        .as_array()
        .ok_or("keys are no list")?
        .iter()
        .find(|k| k["key_id"] == key_id)
        .ok_or("signed by an unknown key")?;
    let b64 = base64::engine::general_purpose::STANDARD;
    let public: [u8; 32] = b64
        .decode(key["public_key"].as_str().ok_or("no public_key")?)
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "a public key is not 32 bytes")?;
    if hex(&sha2::Sha256::digest(public))[..16] != *key_id {
        return Err("the key id is not the key's".into());
    }
    let signature: [u8; 64] = b64
        .decode(record["signature"].as_str().ok_or("no signature")?)
        .map_err(|e| e.to_string())?
        .try_into()
        .map_err(|_| "a signature is not 64 bytes")?;
    let key = ed25519_dalek::VerifyingKey::from_bytes(&public).map_err(|e| e.to_string())?;
    key.verify_strict(
        format!("{order_id}{previous}").as_bytes(),
        &ed25519_dalek::Signature::from_bytes(&signature),
    )
    .map_err(|_| "the signature does not match".to_owned())
}
