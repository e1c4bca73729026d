//! Spawns the real `graphpilot` binary on a free port with a fresh data directory, and gives tests
//! one helper per endpoint so they read like user stories.
//!
//! The backend is SQLite unless `GRAPHPILOT_TEST_POSTGRES` names a PostgreSQL server
//! (`postgres://postgres@127.0.0.1:5432`): then every test gets a fresh database of its own.

use std::path::{Path, PathBuf};
use std::process::Stdio;
use std::time::Duration;

use reqwest::{Client, Method, RequestBuilder, Response};
use serde_json::Value;
use tokio::io::{AsyncBufReadExt, BufReader};
use tokio::process::{Child, Command};

pub const READ_WRITE: &str = "DeviceManagementManagedDevices.ReadWrite.All";
pub const READ_ONLY: &str = "DeviceManagementConfiguration.Read.All";

pub fn binary() -> &'static str {
    env!("CARGO_BIN_EXE_graphpilot")
}

/// Where a server keeps its data: the data directory (keys, and the SQLite file) and, on
/// PostgreSQL, the database URL.
#[derive(Clone)]
pub struct Storage {
    pub data_dir: PathBuf,
    pub database: Option<String>,
}

impl Storage {
    /// Fresh storage in `data_dir`: a new PostgreSQL database when the suite runs on PostgreSQL.
    pub async fn fresh(data_dir: &Path) -> Storage {
        let database = match std::env::var("GRAPHPILOT_TEST_POSTGRES") {
            Ok(server) if !server.is_empty() => {
                let name = format!("gp_test_{}", uuid::Uuid::new_v4().simple());
                sqlx::any::install_default_drivers();
                let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect(&format!(
                    "{}/postgres",
                    server.trim_end_matches('/')
                ))
                .await
                .expect("the PostgreSQL server of GRAPHPILOT_TEST_POSTGRES answers");
                sqlx::raw_sql(sqlx::AssertSqlSafe(format!("CREATE DATABASE {name}")))
                    .execute(&mut connection)
                    .await
                    .expect("create the test database");
                Some(format!("{}/{name}", server.trim_end_matches('/')))
            }
            _ => None,
        };
        Storage {
            data_dir: data_dir.to_path_buf(),
            database,
        }
    }

    /// The flags that point a command at this storage.
    pub fn args(&self) -> Vec<String> {
        let mut args = vec![
            "--data-dir".to_string(),
            self.data_dir.display().to_string(),
        ];
        if let Some(database) = &self.database {
            args.extend(["--database".to_string(), database.clone()]);
        }
        args
    }
}

/// A running server and what a test needs to talk to it.
pub struct TestApp {
    pub root: String,
    pub data_dir: PathBuf,
    pub storage: Storage,
    pub client: Client,
    /// A read-write application token for tenant `contoso`.
    pub token: String,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
}

pub struct Options {
    pub throttling: &'static str,
    pub page_size: u32,
    pub extra: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            throttling: "off",
            page_size: 50,
            extra: Vec::new(),
        }
    }
}

pub async fn spawn_app() -> TestApp {
    spawn_app_with(Options::default()).await
}

pub async fn spawn_app_with(options: Options) -> TestApp {
    let dir = tempfile::tempdir().expect("temporary directory");
    let storage = Storage::fresh(dir.path()).await;
    let mut app = start_on(&storage, &options).await;
    app._dir = Some(dir);
    app
}

/// Starts a server on existing storage (for restarts); the caller keeps the directory.
pub async fn start_on(storage: &Storage, options: &Options) -> TestApp {
    let data_dir = storage.data_dir.as_path();
    let mut command = Command::new(binary());
    command
        .args(["serve", "--listen", "127.0.0.1:0"])
        .args(storage.args())
        .args(["--throttling", options.throttling])
        .args(["--page-size", &options.page_size.to_string()])
        .args(&options.extra)
        .env("RUST_LOG", "warn")
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .kill_on_drop(true);
    let mut child = command.spawn().expect("graphpilot starts");
    let stdout = child.stdout.take().expect("piped stdout");
    let mut lines = BufReader::new(stdout).lines();
    let root = tokio::time::timeout(Duration::from_secs(30), async {
        while let Some(line) = lines.next_line().await.expect("read banner") {
            if let Some(url) = line.trim().strip_prefix("service root") {
                return url.trim().to_string();
            }
        }
        panic!("graphpilot exited before printing its service root");
    })
    .await
    .expect("graphpilot printed its service root in time");
    // Keep draining stdout so the child never blocks on a full pipe.
    tokio::spawn(async move { while let Ok(Some(_)) = lines.next_line().await {} });
    let token = mint(data_dir, "contoso", "app-one", &["--role", READ_WRITE]);
    TestApp {
        root,
        data_dir: data_dir.to_path_buf(),
        storage: storage.clone(),
        client: http_client(),
        token,
        child: Some(child),
        _dir: None,
    }
}

/// A plain HTTP client (its TLS needs rustls's process-wide crypto provider chosen first).
pub fn http_client() -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    Client::builder().build().expect("http client")
}

/// Runs `graphpilot ARGS…` to its end (every CLI call of the tests goes through here).
pub fn graphpilot(args: &[&str]) -> std::process::Output {
    std::process::Command::new(binary())
        .args(args)
        .output()
        .expect("graphpilot runs")
}

/// Runs `graphpilot COMMAND… --data-dir … [--database …] ARGS…` on `storage`.
pub fn graphpilot_on(storage: &Storage, command: &[&str], args: &[&str]) -> std::process::Output {
    let storage_args = storage.args();
    let mut all: Vec<&str> = command.to_vec();
    all.extend(storage_args.iter().map(String::as_str));
    all.extend_from_slice(args);
    graphpilot(&all)
}

/// The standard output of a command that must have succeeded.
pub fn stdout_of(output: std::process::Output) -> String {
    assert!(output.status.success(), "graphpilot failed: {output:?}");
    String::from_utf8_lossy(&output.stdout).into_owned()
}

/// An instant `days` before now, as Graph writes it.
pub fn days_ago(days: i64) -> String {
    (jiff::Timestamp::now() - jiff::SignedDuration::from_hours(24 * days))
        .strftime("%Y-%m-%dT%H:%M:%SZ")
        .to_string()
}

/// An HTTP client that trusts the CA certificate in the PEM file at `ca`.
pub fn client_trusting(ca: &Path) -> Client {
    let _ = rustls::crypto::aws_lc_rs::default_provider().install_default();
    let pem = std::fs::read(ca).expect("the CA file");
    Client::builder()
        .add_root_certificate(reqwest::Certificate::from_pem(&pem).expect("a PEM certificate"))
        .build()
        .expect("http client")
}

/// Adds a fault injection rule through the admin API (201 checked).
pub async fn add_fault(app: &TestApp, admin: &str, rule: &Value) {
    let added = app
        .client
        .post(format!("{}/graphpilot/faults", app.base()))
        .bearer_auth(admin)
        .json(rule)
        .send()
        .await
        .unwrap();
    assert_eq!(added.status(), 201, "add the fault rule {rule}");
}

/// A path as a command-line argument.
pub fn arg(path: &Path) -> &str {
    path.to_str().expect("test paths are UTF-8")
}

/// Runs `graphpilot token` and returns the token.
pub fn mint(data_dir: &Path, tenant: &str, app: &str, extra: &[&str]) -> String {
    let mut args = vec![
        "token",
        "--data-dir",
        arg(data_dir),
        "--tenant",
        tenant,
        "--app",
        app,
    ];
    args.extend_from_slice(extra);
    stdout_of(graphpilot(&args)).trim().to_string()
}

impl TestApp {
    /// The pages of the collection at `url`, from the first.
    pub fn pages(&self, url: &str) -> Pages<'_> {
        Pages {
            app: self,
            next: Some(url.to_string()),
            read: 0,
        }
    }

    pub fn events_url(&self) -> String {
        format!("{}/deviceManagement/autopilotEvents", self.root)
    }

    pub fn event_url(&self, id: &str) -> String {
        format!("{}/{id}", self.events_url())
    }

    pub fn details_url(&self, event_id: &str) -> String {
        format!("{}/policyStatusDetails", self.event_url(event_id))
    }

    pub fn base(&self) -> String {
        self.root.trim_end_matches("/beta").to_string()
    }

    /// A request with the default token.
    pub fn request(&self, method: Method, url: &str) -> RequestBuilder {
        self.client.request(method, url).bearer_auth(&self.token)
    }

    pub async fn post_json(&self, url: &str, body: &Value) -> Response {
        self.request(Method::POST, url)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    pub async fn patch_json(&self, url: &str, body: &Value) -> Response {
        self.request(Method::PATCH, url)
            .json(body)
            .send()
            .await
            .unwrap()
    }

    /// A GET of one of the server's own paths (`/healthz`, `/metrics`, …) without a token.
    pub async fn get_own(&self, path: &str) -> Response {
        self.client
            .get(format!("{}{path}", self.base()))
            .send()
            .await
            .unwrap()
    }

    /// The number of events `token`'s tenant holds (`/$count`).
    pub async fn count_as(&self, token: &str) -> u64 {
        let response = self
            .client
            .get(format!("{}/$count", self.events_url()))
            .bearer_auth(token)
            .send()
            .await
            .unwrap();
        assert_eq!(response.status(), 200);
        response.text().await.unwrap().parse().unwrap()
    }

    pub async fn get(&self, url: &str) -> Response {
        self.request(Method::GET, url).send().await.unwrap()
    }

    pub async fn delete(&self, url: &str) -> Response {
        self.request(Method::DELETE, url).send().await.unwrap()
    }

    /// Creates an event and returns its JSON representation.
    pub async fn create_event(&self, body: Value) -> Value {
        let response = self.post_json(&self.events_url(), &body).await;
        assert_eq!(response.status(), 201, "create failed");
        response.json().await.unwrap()
    }

    pub async fn get_json(&self, url: &str) -> Value {
        let response = self.get(url).await;
        assert_eq!(response.status(), 200, "GET {url}");
        response.json().await.unwrap()
    }

    pub async fn count(&self) -> u64 {
        let response = self.get(&format!("{}/$count", self.events_url())).await;
        assert_eq!(response.status(), 200);
        response.text().await.unwrap().parse().unwrap()
    }

    /// Sends SIGKILL: no chance to flush or clean up.
    pub async fn kill_hard(&mut self) {
        let mut child = self.child.take().expect("running child");
        child.kill().await.expect("kill -9");
    }

    /// Sends SIGTERM (through kill(1), to our own child's pid) and waits for the exit status.
    pub async fn terminate(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().expect("running child");
        let pid = child.id().expect("pid").to_string();
        let sent = std::process::Command::new("kill")
            .args(["-TERM", &pid])
            .status()
            .expect("kill runs");
        assert!(sent.success());
        tokio::time::timeout(Duration::from_secs(30), child.wait())
            .await
            .expect("exits after SIGTERM")
            .unwrap()
    }
}

/// A walk over a collection's pages, following `@odata.nextLink` (one walker for every test).
pub struct Pages<'a> {
    app: &'a TestApp,
    next: Option<String>,
    /// Pages read so far.
    pub read: usize,
}

impl Pages<'_> {
    /// The next page, or `None` after the last one. An empty page never has a next link.
    pub async fn next(&mut self) -> Option<Value> {
        let url = self.next.take()?;
        let page = self.app.get_json(&url).await;
        self.next = page["@odata.nextLink"].as_str().map(str::to_string);
        let empty = page["value"]
            .as_array()
            .is_none_or(|values| values.is_empty());
        assert!(
            !(empty && self.next.is_some()),
            "an empty page never has a next link"
        );
        self.read += 1;
        Some(page)
    }

    /// Every value of every remaining page.
    pub async fn values(mut self) -> Vec<Value> {
        let mut values = Vec::new();
        while let Some(page) = self.next().await {
            values.extend(page["value"].as_array().unwrap().iter().cloned());
        }
        values
    }
}

/// The ids of entities.
pub fn ids_of(values: &[Value]) -> Vec<String> {
    values
        .iter()
        .map(|value| value["id"].as_str().unwrap().to_string())
        .collect()
}

/// Asserts a Graph error body and returns its message.
pub async fn assert_graph_error(response: Response, status: u16, code: &str) -> String {
    assert_eq!(response.status(), status, "status");
    let request_id = response
        .headers()
        .get("request-id")
        .expect("request-id header")
        .to_str()
        .unwrap()
        .to_string();
    let content_type = response.headers()["content-type"]
        .to_str()
        .unwrap()
        .to_string();
    assert!(
        content_type.starts_with("application/json"),
        "{content_type}"
    );
    let body: Value = response.json().await.unwrap();
    let error = &body["error"];
    assert_eq!(error["code"], code, "{body}");
    assert_eq!(error["innerError"]["request-id"], request_id.as_str());
    assert!(error["innerError"]["client-request-id"].is_string());
    assert!(error["innerError"]["date"].is_string());
    error["message"].as_str().unwrap().to_string()
}

/// `graphpilot app add` with read-write permission on the app's storage: (client id, secret).
pub fn register_app(app: &TestApp, tenant: &str) -> (String, String) {
    let text = stdout_of(graphpilot_on(
        &app.storage,
        &["app", "add"],
        &[
            "--tenant",
            tenant,
            "--name",
            "sdk test",
            "--permission",
            READ_WRITE,
        ],
    ));
    let field = |name: &str| {
        text.lines()
            .find_map(|line| line.strip_prefix(name))
            .unwrap_or_else(|| panic!("no {name} in {text}"))
            .trim()
            .to_string()
    };
    (field("client id"), field("client secret"))
}

/// The CA certificate `graphpilot cert` prints for the app's data directory.
pub fn graphpilot_cert(app: &TestApp) -> String {
    stdout_of(graphpilot(&["cert", "--data-dir", arg(&app.data_dir)]))
}

/// A token with the graphpilot.Admin role (for `/graphpilot/…`).
pub fn admin_token(app: &TestApp) -> String {
    mint(&app.data_dir, "ops", "admin-tool", &["--admin"])
}

/// A server on HTTPS with an app registered for tenant contoso, as an SDK would use it: the
/// base URL on `localhost` (the name the certificate carries), the app's client id and secret,
/// and the CA certificate written to a file for the SDK to trust.
pub struct SdkServer {
    pub app: TestApp,
    pub base: String,
    pub client_id: String,
    pub secret: String,
    pub ca: PathBuf,
}

pub async fn spawn_sdk_server() -> SdkServer {
    let app = spawn_app_with(Options {
        extra: vec!["--tls".into()],
        ..Options::default()
    })
    .await;
    let (client_id, secret) = register_app(&app, "contoso");
    let ca = app.data_dir.join("ca-for-clients.pem");
    std::fs::write(&ca, graphpilot_cert(&app)).unwrap();
    let base = app.base().replace("127.0.0.1", "localhost");
    assert!(base.starts_with("https://"), "{base}");
    SdkServer {
        app,
        base,
        client_id,
        secret,
        ca,
    }
}

impl SdkServer {
    /// Runs an official SDK's scenario (`program script` in `dir`) against this server: the base
    /// URL, tenant, client id and secret in `GRAPHPILOT_*` variables, plus `env`. Asserts that it
    /// succeeded and printed `last_line`; returns what it printed.
    pub async fn run_scenario(
        &self,
        program: &Path,
        script: &str,
        dir: &Path,
        env: &[(&str, &Path)],
        last_line: &str,
    ) -> String {
        let mut command = tokio::process::Command::new(program);
        command
            .arg(script)
            .current_dir(dir)
            .env("GRAPHPILOT_BASE", &self.base)
            .env("GRAPHPILOT_TENANT", "contoso")
            .env("GRAPHPILOT_CLIENT_ID", &self.client_id)
            .env("GRAPHPILOT_CLIENT_SECRET", &self.secret);
        for (name, value) in env {
            command.env(name, value);
        }
        let output = command.output().await.expect("the SDK's runtime runs");
        let stdout = String::from_utf8_lossy(&output.stdout).into_owned();
        let stderr = String::from_utf8_lossy(&output.stderr);
        assert!(
            output.status.success(),
            "SDK scenario failed:\n{stdout}\n{stderr}"
        );
        assert!(stdout.contains(last_line), "{stdout}");
        stdout
    }
}

/// Sends every request at once (each on a task of its own) and returns their statuses in order.
pub async fn concurrent_statuses(
    requests: impl Iterator<
        Item = impl std::future::Future<Output = reqwest::Result<Response>> + Send + 'static,
    >,
) -> Vec<u16> {
    let handles: Vec<_> = requests.map(tokio::spawn).collect();
    let mut statuses = Vec::new();
    for handle in handles {
        statuses.push(handle.await.unwrap().unwrap().status().as_u16());
    }
    statuses
}
