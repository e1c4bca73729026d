//! The server as a value: [`App::build`] opens the store, loads the key and binds the listener (port
//! 0 works); [`App::run`] serves until the shutdown future resolves, then drains in-flight requests
//! and queued writes.

use std::future::Future;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;

use anyhow::Context;
use axum::serve::ListenerExt;
use tokio::net::TcpListener;

use crate::auth::SigningKey;
use crate::config::ServeConfig;
use crate::http::throttle::Throttle;
use crate::http::{AppState, Settings, router};
use crate::io::export_jobs::{ExportRunner, ExportSettings};
use crate::store::{Dialect, Store};
use crate::tls::TlsListener;

/// The signing key: the data directory's, or on a shared database the one all nodes share.
pub async fn shared_key(store: &Store, data_dir: &std::path::Path) -> anyhow::Result<SigningKey> {
    let local = SigningKey::load_or_create(data_dir)?;
    let shared = store
        .shared_signing_key(&local.pem)
        .await
        .context("cannot read the shared signing key from the database")?;
    if shared == local.pem {
        Ok(local)
    } else {
        SigningKey::from_pem(&shared).context("the shared signing key in the database is invalid")
    }
}

/// This node's name in the export jobs it runs: kept in the data directory, so a restarted node
/// knows the jobs its last run left unfinished.
fn node_id(data_dir: &std::path::Path) -> anyhow::Result<String> {
    let path = data_dir.join("node-id");
    if let Ok(text) = std::fs::read_to_string(&path)
        && !text.trim().is_empty()
    {
        return Ok(text.trim().to_string());
    }
    let id = uuid::Uuid::new_v4().to_string();
    std::fs::write(&path, &id).with_context(|| format!("cannot write {}", path.display()))?;
    Ok(id)
}

/// A data directory on a read-only file system cannot hold the SQLite database (its WAL and lock
/// files are written even to read): say so at once instead of failing connection by connection.
fn refuse_read_only(data_dir: &std::path::Path) -> anyhow::Result<()> {
    let probe = data_dir.join(format!(".graphpilot-write-check-{}", std::process::id()));
    match std::fs::File::create(&probe) {
        Ok(_) => {
            let _ = std::fs::remove_file(&probe);
            Ok(())
        }
        Err(error) if error.kind() == std::io::ErrorKind::ReadOnlyFilesystem => anyhow::bail!(
            "the data directory {} is on a read-only file system; graphpilot keeps its SQLite \
             database there and must write to it: remount it read-write, or copy the directory \
             to a writable place and start with --data-dir there",
            data_dir.display()
        ),
        // A full disk still lets the server start and serve reads (writes answer 507).
        Err(_) => Ok(()),
    }
}

pub struct App {
    listener: TcpListener,
    /// Set when serving HTTPS.
    tls: Option<Arc<rustls::ServerConfig>>,
    header_timeout: std::time::Duration,
    state: Arc<AppState>,
    database: String,
    data_dir: PathBuf,
}

impl App {
    pub async fn build(config: ServeConfig) -> anyhow::Result<App> {
        std::fs::create_dir_all(&config.data_dir).with_context(|| {
            format!(
                "cannot create the data directory {}",
                config.data_dir.display()
            )
        })?;
        if config.embedded {
            refuse_read_only(&config.data_dir)?;
        }
        crate::http::metrics::install();
        let url = &config.database;
        let store = Store::open_with_readers(
            url,
            config.durability,
            config.readers,
            config.sqlite_cache_mib,
        )
        .await?;
        let key = shared_key(&store, &config.data_dir).await?;
        let exports = ExportRunner::start(
            store.clone(),
            node_id(&config.data_dir)?,
            config.data_dir.join("exports-in-progress"),
            ExportSettings {
                ttl: config.export_ttl,
                delay: std::time::Duration::from_secs_f64(config.profile.quirks.export_delay),
                retention_days: config.profile.quirks.retention_days,
            },
        )
        .await
        .context("cannot start the report export jobs")?;
        // Nodes of one PostgreSQL database share the limits; a SQLite file has one node.
        let shared = (store.dialect() == Dialect::Postgres).then(|| store.clone());
        let throttle = Throttle::new(config.limits, shared);
        let listener = TcpListener::bind(&config.listen)
            .await
            .with_context(|| format!("cannot listen on {} (is the port in use?)", config.listen))?;
        let tls = match &config.tls {
            Some(identity) => Some(crate::tls::server_config(&config.data_dir, identity)?),
            None => None,
        };
        let scheme = if tls.is_some() { "https" } else { "http" };
        let database = match store.dialect() {
            Dialect::Sqlite => format!("sqlite ({url})"),
            Dialect::Postgres => "postgresql".to_string(),
        };
        Ok(App {
            listener,
            tls,
            header_timeout: config.header_timeout,
            state: Arc::new(AppState::new(
                store,
                key,
                throttle,
                Settings {
                    page_size: config.page_size,
                    scheme,
                    journal_size: config.journal_size,
                    faults: config.faults,
                    body_timeout: config.body_timeout,
                    request_timeout: config.request_timeout,
                    metrics_need_token: config.metrics_need_token,
                    profile: config.profile,
                    exports,
                },
            )),
            database,
            data_dir: config.data_dir,
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// What a person needs to start using the server.
    pub fn banner(&self) -> String {
        let scheme = if self.tls.is_some() { "https" } else { "http" };
        let root = format!("{scheme}://{}/beta", self.local_addr());
        let data_dir = self.data_dir.display();
        let trust = if self.tls.is_some() {
            format!(
                "\x20 trust the CA  graphpilot cert --data-dir {data_dir} > graphpilot-ca.pem  (curl --cacert, NODE_EXTRA_CA_CERTS, REQUESTS_CA_BUNDLE)\n"
            )
        } else {
            String::new()
        };
        format!(
            "graphpilot {version}: Microsoft Graph (beta) Autopilot events\n\
             \x20 service root  {root}\n\
             \x20 database      {database}\n\
             {trust}\
             \x20 get a token   TOKEN=$(graphpilot token --data-dir {data_dir} --tenant contoso --app my-app --role DeviceManagementManagedDevices.ReadWrite.All)\n\
             \x20 try it        curl -H \"Authorization: Bearer $TOKEN\" {root}/deviceManagement/autopilotEvents\n",
            version = env!("CARGO_PKG_VERSION"),
            database = self.database,
        )
    }

    /// Serves until `shutdown` resolves; in-flight requests finish and queued writes commit.
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()> + Send + 'static,
    ) -> anyhow::Result<()> {
        let store = self.state.store.clone();
        let header_timeout = self.header_timeout;
        let service = router(self.state);
        match self.tls {
            Some(config) => {
                let listener = TlsListener::new(self.listener, config, header_timeout)?;
                crate::server::serve(listener, service, header_timeout, shutdown).await;
            }
            None => {
                let listener = self.listener.tap_io(|stream| {
                    let _ = stream.set_nodelay(true);
                });
                crate::server::serve(listener, service, header_timeout, shutdown).await;
            }
        }
        store.close().await;
        Ok(())
    }
}
