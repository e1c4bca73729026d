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
use crate::cli::{ServeArgs, Throttling};
use crate::http::throttle::{INTUNE, Throttle};
use crate::http::{AppState, router};
use crate::store::{Dialect, Store};

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

pub struct App {
    listener: TcpListener,
    state: Arc<AppState>,
    database: String,
    data_dir: PathBuf,
}

impl App {
    pub async fn build(args: &ServeArgs) -> anyhow::Result<App> {
        let url = args
            .database
            .clone()
            .unwrap_or_else(|| Store::sqlite_url(&args.data_dir));
        let store = Store::open_with_readers(&url, args.durability, args.pool_size).await?;
        let key = shared_key(&store, &args.data_dir).await?;
        // Nodes of one PostgreSQL database share the limits; a SQLite file has one node.
        let shared = (store.dialect() == Dialect::Postgres).then(|| store.clone());
        let limits = match args.throttling {
            Throttling::Intune => Some(INTUNE),
            Throttling::Off => None,
        };
        let throttle = Throttle::new(limits, shared);
        let listener = TcpListener::bind(&args.listen)
            .await
            .with_context(|| format!("cannot listen on {} (is the port in use?)", args.listen))?;
        let database = match store.dialect() {
            Dialect::Sqlite => format!("sqlite ({url})"),
            Dialect::Postgres => "postgresql".to_string(),
        };
        Ok(App {
            listener,
            state: Arc::new(AppState::new(store, &key, throttle, args.page_size)),
            database,
            data_dir: args.data_dir.clone(),
        })
    }

    pub fn local_addr(&self) -> SocketAddr {
        self.listener
            .local_addr()
            .expect("a bound listener has an address")
    }

    /// What a person needs to start using the server.
    pub fn banner(&self) -> String {
        let root = format!("http://{}/beta", self.local_addr());
        let data_dir = self.data_dir.display();
        format!(
            "graphpilot {version}: Microsoft Graph (beta) Autopilot events\n\
             \x20 service root  {root}\n\
             \x20 database      {database}\n\
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
        let listener = self.listener.tap_io(|stream| {
            let _ = stream.set_nodelay(true);
        });
        let store = self.state.store.clone();
        axum::serve(listener, router(self.state))
            .with_graceful_shutdown(shutdown)
            .await
            .context("the HTTP server failed")?;
        store.close().await;
        Ok(())
    }
}
