//! Command-line interface: every command and flag, with help that teaches. Server flags can also be
//! set through `GRAPHPILOT_*` environment variables.

use std::path::PathBuf;

use clap::{Args, Parser, Subcommand, ValueEnum};

use crate::io::import::OnError;
use crate::io::seed::Scenario;
use crate::store::Durability;

#[derive(Parser, Debug)]
#[command(
    name = "graphpilot",
    version,
    about = "A stateful, Graph-faithful emulator of Microsoft Graph's Windows Autopilot deployment events",
    long_about = "graphpilot serves GET/POST/PATCH/DELETE on /beta/deviceManagement/autopilotEvents (and their \
policyStatusDetails) the way Microsoft Graph does: same JSON, errors, paging, auth and throttling, \
backed by an embedded SQLite file.\n\n\
Quick start:\n  graphpilot serve\n  TOKEN=$(graphpilot token --tenant contoso --app my-app --role DeviceManagementManagedDevices.ReadWrite.All)\n  \
curl -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:8080/beta/deviceManagement/autopilotEvents"
)]
pub struct Cli {
    #[command(subcommand)]
    pub command: Command,
}

#[derive(Subcommand, Debug)]
pub enum Command {
    /// Run the Graph endpoint (service root: http://LISTEN/beta).
    Serve(ServeArgs),
    /// Print one bearer token signed with the data directory's key (created if missing).
    Token(TokenArgs),
    /// Fill a tenant with a realistic synthetic fleet (deterministic: same seed, same rows).
    /// Works while the server runs.
    Seed(SeedArgs),
    /// Print the local CA certificate (PEM) that `serve --tls` certificates are signed by; give it
    /// to clients (NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE, SSL_CERT_FILE, the OS trust store).
    Cert(CertArgs),
    /// Register, list and remove apps that get tokens from the token endpoint
    /// (POST /{tenant}/oauth2/v2.0/token, client credentials), as MSAL and azure-identity do.
    #[command(subcommand)]
    App(AppCommand),
    /// Import events (upsert by id, details included) from NDJSON files, or from Graph list
    /// responses saved by scripts and PowerShell ({"value": [...]} pages, or JSON arrays).
    /// Works while the server runs.
    Import(ImportArgs),
    /// Export a tenant's events (with their policy status details) as NDJSON, JSON or CSV.
    Export(ExportArgs),
    /// Delete the events and details of one tenant, or of all tenants. Works while the server runs.
    Reset(ResetArgs),
    /// Print a one-time sign-in URL for the deployments dashboard of the server at --url that
    /// uses this --data-dir / --database (open it in a browser within 10 minutes; it works once
    /// and opens a 12-hour session reading --tenant's analytics).
    Dashboard(DashboardArgs),
    /// Pull a tenant's Autopilot events from Microsoft Graph (or any Graph-shaped source) into a
    /// local tenant, incrementally, through throttling and faults, losing nothing; keep them past
    /// Graph's 30 days. Also `sync --status` for the run records. See docs/sync.md.
    Sync(SyncArgs),
    /// Show the running server's request journal (the last requests with status, latency,
    /// request-id, tenant and app); --tail follows new ones.
    Requests(RequestsArgs),
}

#[derive(Args, Debug)]
pub struct SyncArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The source's service root, e.g. https://graph.microsoft.com/beta.
    #[arg(long, required_unless_present = "status", value_name = "URL")]
    pub source: Option<String>,
    /// The identity authority, e.g. https://login.microsoftonline.com (the token endpoint is
    /// {authority}/{tenant}/oauth2/v2.0/token).
    #[arg(long, required_unless_present = "status", value_name = "URL")]
    pub authority: Option<String>,
    /// The source tenant (its id or domain); with --status, the local tenant whose runs to show.
    #[arg(long, required_unless_present = "status")]
    pub tenant: Option<String>,
    /// The app registration's client id (application permission
    /// DeviceManagementManagedDevices.Read.All granted).
    #[arg(long, required_unless_present = "status", value_name = "ID")]
    pub client_id: Option<String>,
    /// The app's client secret; better through the environment. Never logged or stored.
    #[arg(
        long,
        env = "GRAPHPILOT_SYNC_CLIENT_SECRET",
        hide_env_values = true,
        required_unless_present = "status",
        value_name = "SECRET"
    )]
    pub client_secret: Option<String>,
    /// The local tenant the events go to [default: --tenant].
    #[arg(long, value_name = "L")]
    pub local_tenant: Option<String>,
    /// A CA certificate (PEM) to trust besides the system's roots (a test source's CA).
    #[arg(long, value_name = "FILE")]
    pub ca_cert: Option<PathBuf>,
    /// Repeat runs at this interval (start = last start + interval, e.g. 15m) until SIGTERM or
    /// SIGINT, which stop at a page boundary.
    #[arg(long, value_name = "DURATION", value_parser = parse_duration)]
    pub every: Option<std::time::Duration>,
    /// Read everything the source serves, whatever the watermark.
    #[arg(long)]
    pub full: bool,
    /// An incremental run reads from the watermark minus this (late ingestion, long deployments).
    #[arg(long, default_value = "48h", value_name = "DURATION", value_parser = parse_duration)]
    pub overlap: std::time::Duration,
    /// A run is full when the last completed full run started longer ago than this.
    #[arg(long, default_value = "24h", value_name = "DURATION", value_parser = parse_duration)]
    pub full_every: std::time::Duration,
    /// The OAuth scope asked for.
    #[arg(long, default_value = "https://graph.microsoft.com/.default")]
    pub scope: String,
    /// Show the run records (newest first) instead of running.
    #[arg(long)]
    pub status: bool,
    /// With --status: print the records as the admin API's JSON.
    #[arg(long, requires = "status")]
    pub json: bool,
}

/// A duration such as `15m`, `48h` or `90s`.
fn parse_duration(text: &str) -> Result<std::time::Duration, String> {
    humantime::parse_duration(text)
        .map_err(|error| format!("{error} (write a duration such as 15m, 48h or 90s)"))
}

#[derive(Args, Debug)]
pub struct ImportArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The tenant the events go to.
    #[arg(long)]
    pub tenant: String,
    /// skip: report bad records (file and line) and import the rest; stop: check every file
    /// first and import nothing if a record is bad.
    #[arg(long, value_enum, default_value = "stop")]
    pub on_error: OnErrorArg,
    /// Files to import, in order (a later record with the same id wins).
    #[arg(required = true, value_name = "FILE")]
    pub files: Vec<PathBuf>,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ExportFormat {
    /// One event per line with its policyStatusDetails inline (what import reads back).
    Ndjson,
    /// One JSON document shaped like a Graph page: {"value": [...]}.
    Json,
    /// One row per event (details counted, not listed), for spreadsheets.
    Csv,
}

#[derive(Args, Debug)]
pub struct ExportArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The tenant to export.
    #[arg(long)]
    pub tenant: String,
    #[arg(long, value_enum, default_value = "ndjson")]
    pub format: ExportFormat,
    /// Write here instead of standard output.
    #[arg(long, short, value_name = "FILE")]
    pub output: Option<PathBuf>,
}

#[derive(Args, Debug)]
#[command(group(clap::ArgGroup::new("which").required(true).args(["tenant", "all"])))]
pub struct ResetArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The tenant to empty.
    #[arg(long)]
    pub tenant: Option<String>,
    /// Empty every tenant.
    #[arg(long)]
    pub all: bool,
}

#[derive(Args, Debug)]
pub struct RequestsArgs {
    /// The server's address, as its banner prints it (without /beta).
    #[arg(long, env = "GRAPHPILOT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
    /// Data directory of the server: its key signs the admin token used here, and its CA is
    /// trusted for https.
    #[arg(long, env = "GRAPHPILOT_DATA_DIR", default_value = "./graphpilot-data")]
    pub data_dir: PathBuf,
    /// Keep following new requests (Ctrl-C to stop).
    #[arg(long)]
    pub tail: bool,
    #[arg(long)]
    pub tenant: Option<String>,
    #[arg(long)]
    pub app: Option<String>,
    #[arg(long)]
    pub status: Option<u16>,
    /// Only paths that contain this text.
    #[arg(long)]
    pub path: Option<String>,
    /// How many of the latest requests to show first.
    #[arg(long, default_value_t = 20)]
    pub top: usize,
}

#[derive(Subcommand, Debug)]
pub enum AppCommand {
    /// Register an app; prints its client id and secret (the secret is shown only this once).
    Add(AppAddArgs),
    /// List registered apps (never their secrets).
    List(StorageArgs),
    /// Remove an app: its secret stops working at once (tokens already issued run out).
    Remove(AppRemoveArgs),
}

/// Where graphpilot keeps its data.
#[derive(Args, Debug, Clone)]
pub struct StorageArgs {
    /// Data directory of the server.
    #[arg(long, env = "GRAPHPILOT_DATA_DIR", default_value = "./graphpilot-data")]
    pub data_dir: PathBuf,
    /// Database URL of the server [default: sqlite://DATA_DIR/graphpilot.db].
    #[arg(long, env = "GRAPHPILOT_DATABASE")]
    pub database: Option<String>,
}

#[derive(Args, Debug)]
pub struct DashboardArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The tenant whose deployments the dashboard shows.
    #[arg(long)]
    pub tenant: String,
    /// How the browser reaches the server (scheme, host, port and any path prefix).
    #[arg(long, env = "GRAPHPILOT_URL", default_value = "http://127.0.0.1:8080")]
    pub url: String,
}

#[derive(Args, Debug)]
pub struct AppAddArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The tenant whose token endpoint issues the app's tokens (their `tid`).
    #[arg(long)]
    pub tenant: String,
    /// A display name for people.
    #[arg(long)]
    pub name: String,
    /// A Graph application permission the app is granted (its tokens' `roles`); repeat for
    /// several, e.g. DeviceManagementManagedDevices.ReadWrite.All.
    #[arg(long = "permission", value_name = "PERMISSION", required = true)]
    pub permissions: Vec<String>,
}

#[derive(Args, Debug)]
pub struct AppRemoveArgs {
    #[command(flatten)]
    pub storage: StorageArgs,
    /// The client id `app add` printed.
    pub client_id: String,
}

#[derive(Args, Debug)]
pub struct CertArgs {
    /// The data directory whose CA to print (created with the CA if missing).
    #[arg(long, env = "GRAPHPILOT_DATA_DIR", default_value = "./graphpilot-data")]
    pub data_dir: PathBuf,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum Throttling {
    /// Intune's published limits per 20-second window (100 writes per app per tenant, …).
    Intune,
    /// No limits (for load tests and benchmarks).
    Off,
}

#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines on stderr.
    Pretty,
    /// One JSON object per line on stderr, for log collectors.
    Json,
}

#[derive(Args, Debug, Clone)]
pub struct ServeArgs {
    /// Address to listen on; port 0 picks a free port (the banner prints the one chosen).
    #[arg(long, env = "GRAPHPILOT_LISTEN", default_value = "127.0.0.1:8080")]
    pub listen: String,
    /// Directory for the SQLite database and the signing key; created on first start.
    #[arg(long, env = "GRAPHPILOT_DATA_DIR", default_value = "./graphpilot-data")]
    pub data_dir: PathBuf,
    /// Database URL [default: sqlite://DATA_DIR/graphpilot.db].
    #[arg(long, env = "GRAPHPILOT_DATABASE")]
    pub database: Option<String>,
    /// Default page size of collections (a client's $top overrides it), 1 to 1000.
    #[arg(long, env = "GRAPHPILOT_PAGE_SIZE", default_value_t = 50,
          value_parser = clap::value_parser!(u64).range(1..=1000))]
    pub page_size: u64,
    /// Request limits: Intune's, or none.
    #[arg(
        long,
        env = "GRAPHPILOT_THROTTLING",
        value_enum,
        default_value = "intune"
    )]
    pub throttling: Throttling,
    /// How log lines are written (the level comes from RUST_LOG, default info).
    #[arg(
        long,
        env = "GRAPHPILOT_LOG_FORMAT",
        value_enum,
        default_value = "pretty"
    )]
    pub log_format: LogFormat,
    /// Database connections for reads (writes use their own: one on SQLite, four on PostgreSQL).
    /// On PostgreSQL, keep nodes × (this + 4) under the server's max_connections.
    #[arg(long, env = "GRAPHPILOT_POOL_SIZE", default_value_t = crate::store::DEFAULT_READERS,
          value_parser = clap::value_parser!(u32).range(1..=256))]
    pub pool_size: u32,
    /// SQLite's page cache per database connection, in MiB (there are --pool-size + 1). The
    /// operating system's file cache serves what it does not hold; raise it for a database of
    /// millions of events that many clients read at once.
    #[arg(long, env = "GRAPHPILOT_SQLITE_CACHE", value_name = "MIB",
          default_value_t = crate::store::DEFAULT_SQLITE_CACHE_MIB,
          value_parser = clap::value_parser!(u32).range(1..=65536))]
    pub sqlite_cache: u32,
    /// full: every acknowledged write survives power loss; normal: it survives crashes of
    /// graphpilot (kill -9) but the last writes may be lost if the machine loses power.
    #[arg(
        long,
        env = "GRAPHPILOT_DURABILITY",
        value_enum,
        default_value = "full"
    )]
    pub durability: DurabilityArg,
    /// Serve HTTPS (HTTP/2 and HTTP/1.1) with a certificate signed by a local CA created once in
    /// DATA_DIR/tls; `graphpilot cert` prints the CA for clients to trust.
    #[arg(long, env = "GRAPHPILOT_TLS")]
    pub tls: bool,
    /// Extra host names or IP addresses for the local certificate (it always covers localhost,
    /// 127.0.0.1 and ::1). Repeat for several.
    #[arg(long = "tls-name", value_name = "NAME", requires = "tls")]
    pub tls_names: Vec<String>,
    /// Your own certificate chain (PEM) instead of the local CA's; needs --tls-key.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"], conflicts_with = "tls_names")]
    pub tls_cert: Option<PathBuf>,
    /// Fault injection rules (TOML, `[[rules]]` tables; see docs/faults.md): answer chosen
    /// requests with 429/5xx, delay them, or drop their connection. Also managed at run time
    /// through /graphpilot/faults.
    #[arg(long, env = "GRAPHPILOT_FAULTS", value_name = "FILE")]
    pub faults: Option<PathBuf>,
    /// Seconds a client may take to send a request's head (and, with --tls, to complete its
    /// handshake); slower connections are dropped.
    #[arg(long, env = "GRAPHPILOT_HEADER_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub header_timeout: u64,
    /// Seconds within which every Graph request is answered, whatever the database does: a
    /// write still queued then is withdrawn (never applied) and, like a read the database has
    /// not answered, gets 503 ServiceUnavailable with Retry-After. Admin bulk work (seed, import,
    /// export, reset) is not bounded.
    #[arg(long, env = "GRAPHPILOT_REQUEST_TIMEOUT", default_value_t = 10,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub request_timeout: u64,
    /// Serve GET /metrics (Prometheus text) only to tokens with the graphpilot.Admin role
    /// (`graphpilot token --admin`); without this flag it needs no token.
    #[arg(long, env = "GRAPHPILOT_METRICS_TOKEN")]
    pub metrics_token: bool,
    /// Seconds a client may take to send a request's body (408 beyond).
    #[arg(long, env = "GRAPHPILOT_BODY_TIMEOUT", default_value_t = 30,
          value_parser = clap::value_parser!(u64).range(1..=3600))]
    pub body_timeout: u64,
    /// How many finished requests the journal keeps in memory (GET /graphpilot/requests,
    /// `graphpilot requests`); 0 turns it off.
    #[arg(long, env = "GRAPHPILOT_JOURNAL_SIZE", default_value_t = 10_000)]
    pub journal_size: usize,
    /// The private key (PEM) of --tls-cert.
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_cert"])]
    pub tls_key: Option<PathBuf>,
    /// emulator: Graph as documented (api.md). graph: Graph as it behaves in production, quirk
    /// by quirk: pages of at most 50 whatever $top says, $orderby on events refused, a quarter
    /// of 429s without Retry-After, only the last 30 days of events served, export jobs that
    /// take 5 s and show their url one read late. See docs/profiles.md.
    #[arg(
        long,
        env = "GRAPHPILOT_PROFILE",
        default_value = "emulator",
        value_name = "PROFILE"
    )]
    pub profile: String,
    /// Sets one quirk over the profile, e.g. --quirk maxPageSize=100 --quirk orderBy=ignore
    /// (repeatable; beats --quirks). Quirks: maxPageSize, orderBy, dollarless, typeCastPaths,
    /// retryAfterOmitted, retentionDays, exportDelay, exportUrlLag, seed.
    #[arg(long = "quirk", value_name = "NAME=VALUE")]
    pub quirks: Vec<String>,
    /// A TOML file of quirks (top-level `NAME = value` lines) over the profile.
    #[arg(long = "quirks", env = "GRAPHPILOT_QUIRKS", value_name = "FILE")]
    pub quirks_file: Option<PathBuf>,
    /// How long a completed report export job's download link works (e.g. 6h, 30m, 90s); the
    /// file is deleted after it, the job stays until DELETE.
    #[arg(long, env = "GRAPHPILOT_EXPORT_TTL", default_value = "6h", value_name = "DURATION",
          value_parser = parse_ttl)]
    pub export_ttl: std::time::Duration,
}

/// A duration such as `6h`, `30m` or `90s`, at least one second.
fn parse_ttl(text: &str) -> Result<std::time::Duration, String> {
    let duration = parse_duration(text)?;
    if duration < std::time::Duration::from_secs(1) {
        return Err("the link must live at least 1s".into());
    }
    Ok(duration)
}

#[derive(Args, Debug)]
pub struct TokenArgs {
    /// The data directory whose key signs the token (the one the server uses).
    #[arg(long, env = "GRAPHPILOT_DATA_DIR", default_value = "./graphpilot-data")]
    pub data_dir: PathBuf,
    /// A shared PostgreSQL database: sign with the key all its nodes share.
    #[arg(long, env = "GRAPHPILOT_DATABASE")]
    pub database: Option<String>,
    /// Tenant id (the `tid` claim): every event belongs to one tenant.
    #[arg(long)]
    pub tenant: String,
    /// Application (client) id: the `appid`/`azp` claims; throttling counts per app.
    #[arg(long)]
    pub app: String,
    /// Application permission (`roles` claim), e.g. DeviceManagementManagedDevices.ReadWrite.All. Repeatable.
    #[arg(long = "role", value_name = "PERMISSION")]
    pub roles: Vec<String>,
    /// Add the graphpilot.Admin role: the token may use the admin API (/graphpilot/…: reset,
    /// seed, import, export, request journal).
    #[arg(long)]
    pub admin: bool,
    /// Delegated permission (`scp` claim); makes a delegated (user) token. Repeatable.
    #[arg(long = "scope", value_name = "PERMISSION")]
    pub scopes: Vec<String>,
    /// User principal name of a delegated token.
    #[arg(long, value_name = "UPN")]
    pub user: Option<String>,
    /// Lifetime in seconds (negative mints an already expired token, for tests).
    #[arg(long, default_value_t = 3600, allow_negative_numbers = true)]
    pub expires_in: i64,
}

#[derive(Args, Debug)]
pub struct SeedArgs {
    /// Tenant id to fill.
    #[arg(long)]
    pub tenant: String,
    /// Number of deployment events to create (each with 0-4 policy status details).
    #[arg(long)]
    pub count: u64,
    /// Random seed: the same seed and tenant give identical events on any machine.
    #[arg(long, default_value_t = 1)]
    pub seed: u64,
    /// What kind of history: mostly-healthy, bad-rollout (one ESP profile fails in the last
    /// week), stuck-in-progress (many recent deployments never finish).
    #[arg(long, value_enum, default_value = "mostly-healthy")]
    pub scenario: ScenarioArg,
    /// Latest event time; events spread over the 90 days before it. `now` uses the clock
    /// (and so is not reproducible).
    #[arg(long, default_value = "2026-11-01T00:00:00Z")]
    pub end: String,
    /// Data directory of the SQLite database (ignored with --database).
    #[arg(long, env = "GRAPHPILOT_DATA_DIR", default_value = "./graphpilot-data")]
    pub data_dir: PathBuf,
    /// Database URL [default: sqlite://DATA_DIR/graphpilot.db].
    #[arg(long, env = "GRAPHPILOT_DATABASE")]
    pub database: Option<String>,
}

/// `--durability`: how durable an acknowledged write is (docs/storage.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum DurabilityArg {
    /// Survives process crashes and power loss: the WAL is fsynced at every commit.
    Full,
    /// Survives process crashes (kill -9) but the last commits may be lost on power loss.
    Normal,
}

impl From<DurabilityArg> for Durability {
    fn from(arg: DurabilityArg) -> Self {
        match arg {
            DurabilityArg::Full => Durability::Full,
            DurabilityArg::Normal => Durability::Normal,
        }
    }
}

/// `seed --scenario`: what kind of history to generate.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum ScenarioArg {
    /// About 78% success, 9% failure, 5% in progress, spread over 90 days.
    MostlyHealthy,
    /// As healthy, except that in the last 7 days most deployments with the "ESP - Engineering"
    /// Enrollment Status Page fail installing Microsoft 365 Apps.
    BadRollout,
    /// As healthy, except that about a third of the last 2 days' deployments are stuck.
    StuckInProgress,
}

impl From<ScenarioArg> for Scenario {
    fn from(arg: ScenarioArg) -> Self {
        match arg {
            ScenarioArg::MostlyHealthy => Scenario::MostlyHealthy,
            ScenarioArg::BadRollout => Scenario::BadRollout,
            ScenarioArg::StuckInProgress => Scenario::StuckInProgress,
        }
    }
}

/// `import --on-error`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum OnErrorArg {
    /// Report bad records (file and line) and import the rest.
    Skip,
    /// Check every file first and import nothing if a record is bad.
    Stop,
}

impl From<OnErrorArg> for OnError {
    fn from(arg: OnErrorArg) -> Self {
        match arg {
            OnErrorArg::Skip => OnError::Skip,
            OnErrorArg::Stop => OnError::Stop,
        }
    }
}
