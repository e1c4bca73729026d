//! Whether the database is reachable, and how long a request may wait for it. A lost connection
//! marks the database down: store calls then fail at once with `Unavailable` (a Graph 503) instead
//! of each waiting out a pool timeout, until a probe reconnects; that is also readiness.

use std::future::Future;
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use sqlx::any::AnyConnectOptions;

use super::StoreError;

/// How often a down database is tried again.
pub const PROBE_INTERVAL: Duration = Duration::from_millis(250);
/// How long one probe may take.
const PROBE_TIMEOUT: Duration = Duration::from_secs(2);

tokio::task_local! {
    /// The instant by which the current request must be answered; set by the HTTP layer around
    /// each request it bounds. Store calls outside one (commands, bulk admin work) wait as long
    /// as the work takes.
    pub static DEADLINE: Instant;
}

/// The least time a store call is given even when its request has spent its deadline on
/// something else (a client sending its body slowly): that is not the database's fault.
const LEAST_WAIT: Duration = Duration::from_secs(1);

/// The current request's deadline for a store call starting now, if it has one.
pub fn deadline() -> Option<Instant> {
    DEADLINE
        .try_with(|deadline| (*deadline).max(Instant::now() + LEAST_WAIT))
        .ok()
}

/// Runs `work` until the current request's deadline; past it, `Unavailable`. Only for work that
/// may be dropped half-way without harm (reads).
pub async fn within_deadline<T>(
    work: impl Future<Output = Result<T, StoreError>>,
) -> Result<T, StoreError> {
    match deadline() {
        None => work.await,
        Some(deadline) => {
            match tokio::time::timeout_at(tokio::time::Instant::from_std(deadline), work).await {
                Ok(result) => result,
                Err(_) => Err(StoreError::Unavailable(anyhow::anyhow!(
                    "the database did not answer within the request deadline"
                ))),
            }
        }
    }
}

/// The database's reachability, shared by every store call of the process.
#[derive(Default)]
pub struct Health {
    down: AtomicBool,
    /// Why and since when it is down.
    cause: Mutex<Option<(Instant, String)>>,
    /// The last write refused for lack of space, until a write succeeds again.
    full: Mutex<Option<(Instant, String)>>,
}

/// What readiness reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Readiness {
    Ready,
    /// Reads are served; writes are refused until space is freed.
    WritesRefused {
        for_seconds: u64,
        cause: String,
    },
    Down {
        for_seconds: u64,
        cause: String,
    },
}

impl Health {
    /// Fails fast while the database is down.
    pub fn check(&self) -> Result<(), StoreError> {
        if self.down.load(Ordering::Acquire) {
            let cause = self
                .cause
                .lock()
                .expect("health lock")
                .as_ref()
                .map(|(_, cause)| cause.clone())
                .unwrap_or_default();
            return Err(StoreError::Unavailable(anyhow::anyhow!(
                "the database is down ({cause}); waiting for it to come back"
            )));
        }
        Ok(())
    }

    /// Learns from a store call's outcome: a lost or refused connection marks the database down
    /// (returns true the first time); a full disk is remembered until a write succeeds.
    pub fn observe(&self, error: &StoreError) -> bool {
        match error {
            StoreError::Unavailable(cause) if is_connection_loss(cause) => {
                let first = !self.down.swap(true, Ordering::AcqRel);
                if first {
                    *self.cause.lock().expect("health lock") =
                        Some((Instant::now(), format!("{cause:#}")));
                    tracing::error!(error = %format!("{cause:#}"), "the database is unreachable; answering 503 until it is back");
                }
                first
            }
            StoreError::Full(cause) => {
                let mut full = self.full.lock().expect("health lock");
                if full.is_none() {
                    tracing::error!(error = %format!("{cause:#}"), "the storage is full; writes are refused (507) until space is freed");
                    *full = Some((Instant::now(), format!("{cause:#}")));
                }
                false
            }
            _ => false,
        }
    }

    /// A write committed: storage has room again.
    pub fn wrote(&self) {
        let mut full = self.full.lock().expect("health lock");
        if let Some((since, _)) = full.take() {
            tracing::warn!(
                after_seconds = since.elapsed().as_secs_f64(),
                "writes succeed again: the storage has room"
            );
        }
    }

    pub fn is_down(&self) -> bool {
        self.down.load(Ordering::Acquire)
    }

    pub fn readiness(&self) -> Readiness {
        if let Some((since, cause)) = self.cause.lock().expect("health lock").clone()
            && self.is_down()
        {
            return Readiness::Down {
                for_seconds: since.elapsed().as_secs(),
                cause,
            };
        }
        if let Some((since, cause)) = self.full.lock().expect("health lock").clone() {
            return Readiness::WritesRefused {
                for_seconds: since.elapsed().as_secs(),
                cause,
            };
        }
        Readiness::Ready
    }

    fn up(&self) {
        if self.down.swap(false, Ordering::AcqRel) {
            let since = self.cause.lock().expect("health lock").take();
            tracing::warn!(
                after_seconds = since.map_or(0.0, |(since, _)| since.elapsed().as_secs_f64()),
                "the database is reachable again"
            );
        }
    }
}

/// A pooled connection the database server closed or broke (its socket failed, or the server
/// said it is shutting down: SQLSTATE class 57P): work that changed nothing may run again on
/// another connection.
pub(super) fn dropped_by_the_server(error: &sqlx::Error) -> bool {
    match error {
        sqlx::Error::Io(_) | sqlx::Error::Protocol(_) => true,
        sqlx::Error::Database(database) => database.code().is_some_and(|c| c.starts_with("57P")),
        _ => false,
    }
}

/// Whether an `Unavailable` error means the connection to the database is lost or refused (as
/// opposed to a busy lock or a read-only file, which a new connection would not cure).
pub(super) fn is_connection_loss(cause: &anyhow::Error) -> bool {
    cause.chain().any(|cause| {
        if let Some(error) = cause.downcast_ref::<sqlx::Error>() {
            return match error {
                sqlx::Error::Io(_)
                | sqlx::Error::Tls(_)
                | sqlx::Error::Protocol(_)
                | sqlx::Error::PoolTimedOut
                | sqlx::Error::WorkerCrashed => true,
                sqlx::Error::Database(database) => database
                    .code()
                    .is_some_and(|code| code.starts_with("08") || code.starts_with("57P")),
                _ => false,
            };
        }
        cause.downcast_ref::<std::io::Error>().is_some_and(|error| {
            matches!(
                error.kind(),
                std::io::ErrorKind::ConnectionRefused
                    | std::io::ErrorKind::ConnectionReset
                    | std::io::ErrorKind::ConnectionAborted
                    | std::io::ErrorKind::BrokenPipe
                    | std::io::ErrorKind::UnexpectedEof
            )
        })
    })
}

/// Tries the database again every [`PROBE_INTERVAL`] while it is down, with a connection of its
/// own, and marks it up when one answers.
pub fn spawn_probe(
    health: std::sync::Arc<Health>,
    options: AnyConnectOptions,
) -> tokio::task::JoinHandle<()> {
    tokio::spawn(async move {
        loop {
            tokio::time::sleep(PROBE_INTERVAL).await;
            if !health.is_down() {
                continue;
            }
            let attempt = tokio::time::timeout(PROBE_TIMEOUT, async {
                let mut connection =
                    <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options).await?;
                sqlx::query("SELECT 1").execute(&mut connection).await?;
                sqlx::Connection::close(connection).await
            })
            .await;
            if matches!(attempt, Ok(Ok(()))) {
                health.up();
            }
        }
    })
}
