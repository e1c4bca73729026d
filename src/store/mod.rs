//! Persistence over SQLite (the embedded default) or PostgreSQL: Graph's hot reads through each
//! backend's own driver ([`reads`]), the rest through sqlx's `Any` driver. All statements are
//! built once in [`sql`]; the backends differ only in dialect, migrations and connection settings.
//! Writes go through one group-commit writer ([`writer`], on SQLite through its own driver:
//! [`sqlite_writes`]): a request is answered only after the transaction holding its write is
//! durable.

mod analytics;
mod apply;
mod bound;
mod bulk;
mod cache;
mod entities;
mod error;
mod exports;
pub mod health;
mod loads;
mod open;
mod reads;
mod rows;
mod session;
mod sessions;
mod shared;
pub mod sql;
mod sqlite_reads;
mod sqlite_writes;
mod sync;
mod transaction;
mod writer;

use std::sync::Arc;

use sqlx::AnyPool;
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::odata::Scalar;
pub use analytics::{
    BlockerRow, BreakdownRow, DURATIONS, DeviceHistory, FailureRow, StuckRow, Summary,
};
pub use apply::{Precondition, WriteOp, Written};
pub use entities::PageSnapshot;
pub use exports::{EXPORT_CHUNK_BYTES, ReportSnapshot};
pub use sessions::DashboardSession;
pub use sql::analytics::{FilterValue, Scope};
pub use sql::{AppRegistration, Collection, Dialect, Listing, SortKeys, Target, sort_keys};
pub use sync::{SyncLock, SyncTotals};

/// Read connections per process unless `--pool-size` says otherwise.
pub const DEFAULT_READERS: u32 = 8;
/// How long a store call waits for a free pooled connection (or a new one) before it fails as
/// Unavailable.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the writer waits for a lock held elsewhere (another process's transaction on the
/// SQLite file, a row locked by another PostgreSQL session) before its batch fails as Unavailable.
const WRITER_LOCK_WAIT_MS: u32 = 5_000;
/// How many pages SQLite's write-ahead log grows to before the writer's commit copies them into
/// the database file (SQLite's default is 1,000). A page written by many commits in between is
/// copied once, so fewer, larger checkpoints cost less: at 1,000 the checkpoints took an eighth
/// of the writer's CPU under POSTs; at 8,000 (a log of up to 32 MiB of 4 KiB pages) durable
/// writes at 32 connections ran about a quarter faster (docs/performance.md).
const WAL_CHECKPOINT_PAGES: u32 = 8_000;
/// The same for reads and the store's own bookkeeping writes.
const READER_LOCK_WAIT_MS: u32 = 10_000;
/// SQLite's page cache per connection (MiB) unless `--sqlite-cache` says otherwise. Small on
/// purpose: every connection keeps its own cache, so nine connections with large ones each
/// cached the same pages again and memory grew for as long as a changing database touched new
/// pages (the soak in docs/performance.md); the operating system's file cache, shared by all,
/// serves the rest at the cost of a read system call per page.
pub const DEFAULT_SQLITE_CACHE_MIB: u32 = 8;

/// An entity as stored: its current ETag and canonical JSON (shared: the entity cache hands the
/// same text to every page and GET that shows it).
#[derive(Clone, Debug)]
pub struct StoredEntity {
    pub etag: String,
    pub body: Arc<str>,
}

/// One row of a collection page: the stored entity and the cursor that continues after it.
#[derive(Debug)]
pub struct PageRow {
    pub id: String,
    pub cursor: Vec<Scalar>,
    pub entity: StoredEntity,
}

pub use error::{FailureKind, StoreError, kind_of_any};
pub use health::Readiness;

/// What a bulk load does with rows whose ids exist already.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum LoadKind {
    /// Every row is new (seeding): plain inserts.
    Insert,
    /// Rows replace those with the same ids, and an event's details replace its stored ones.
    Upsert,
}

/// How durable an acknowledged write is (see docs/storage.md).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Durability {
    /// Survives process crashes and power loss: the WAL is fsynced at every commit.
    Full,
    /// Survives process crashes (kill -9) but the last commits may be lost on power loss.
    Normal,
}

/// How the database is held: an embedded SQLite file that one server owns, or a PostgreSQL
/// database that several nodes share.
enum Backend {
    Embedded(Embedded),
    /// Graph's hot reads through sqlx's PostgreSQL driver itself (rows decoded natively, not
    /// converted for the `Any` driver first).
    Shared(sqlx::PgPool),
}

/// What only an embedded SQLite file has: one server owns the file, so entities can be cached by
/// key ([`cache`], watched for other processes' commits) and bulk loads take a connection of
/// their own ([`bulk`]).
struct Embedded {
    cache: Arc<cache::EntityCache>,
    /// Graph's hot reads (by key, pages, counts, details) through SQLite's own driver.
    readers: Arc<sqlite_reads::SqliteReaders>,
    cache_watch: tokio::task::JoinHandle<()>,
    bulk_loader: Arc<std::sync::Mutex<bulk::SqliteBulkLoader>>,
}

/// The store: a reader pool plus the sender side of the group-commit writer.
pub struct Store {
    dialect: Dialect,
    readers: AnyPool,
    writes: mpsc::Sender<writer::Message>,
    writer_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    /// PostgreSQL's writers' connections (SQLite's writer holds its own).
    writer_pool: Option<AnyPool>,
    /// What only an embedded SQLite file has, or the database being shared by nodes.
    backend: Backend,
    /// Whether the database is reachable ([`health`]), and the task that tries it while not.
    health: Arc<health::Health>,
    probe: tokio::task::JoinHandle<()>,
    /// Read connections the analytics may hold at once (half the pool): a dashboard's burst of
    /// fleet-wide aggregates never takes every connection from Graph's reads.
    analytics_slots: tokio::sync::Semaphore,
}

impl Store {
    /// The entity cache, on an embedded SQLite file.
    fn cache(&self) -> Option<&cache::EntityCache> {
        match &self.backend {
            Backend::Embedded(embedded) => Some(&embedded.cache),
            Backend::Shared(_) => None,
        }
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    /// Queues a write for the writer and waits for its commit. Within a request's deadline
    /// ([`health::DEADLINE`]): a write still queued when it passes is withdrawn, never applied,
    /// and refused as Unavailable; a write whose commit is under way then is `OutcomeUnknown`.
    async fn write(&self, op: WriteOp) -> Result<Written, StoreError> {
        self.health.check()?;
        let claim = Arc::new(writer::Claim::default());
        let (reply, mut answer) = oneshot::channel();
        let job = writer::Message::Job(writer::WriteJob {
            op,
            reply,
            claim: claim.clone(),
            span: tracing::Span::current(),
        });
        let stopped = |_| StoreError::Internal(anyhow::anyhow!("the writer has stopped"));
        let dropped = |_| StoreError::Internal(anyhow::anyhow!("the writer dropped a write"));
        let Some(deadline) = health::deadline() else {
            self.writes.send(job).await.map_err(stopped)?;
            return answer.await.map_err(dropped)?;
        };
        let until = tokio::time::Instant::from_std(deadline);
        let late = || {
            StoreError::Unavailable(anyhow::anyhow!(
                "the write waited past the request deadline behind slower writes and was not applied"
            ))
        };
        match tokio::time::timeout_at(until, self.writes.send(job)).await {
            Ok(sent) => sent.map_err(stopped)?,
            Err(_) => return Err(late()),
        }
        match tokio::time::timeout_at(until, &mut answer).await {
            Ok(outcome) => outcome.map_err(dropped)?,
            Err(_) if claim.abandon() => Err(late()),
            // Taken into a batch whose commit has not returned (a stalled disk): it may still
            // commit. The client is told exactly that; the writer finishes it either way.
            Err(_) => Err(StoreError::OutcomeUnknown(anyhow::anyhow!(
                "the write's commit did not finish within the request deadline"
            ))),
        }
    }

    /// A read statement's rows, through [`Store::bounded`].
    fn read_rows(
        &self,
        (statement, values): (String, sea_query::Values),
    ) -> impl std::future::Future<Output = Result<Vec<sqlx::any::AnyRow>, StoreError>> + Send + '_
    {
        // Bound before the future: sea-query's values are not Send, the bound query is.
        let query = sql::bind(statement, values);
        self.bounded(async move { Ok(query.fetch_all(&self.readers).await?) })
    }

    /// A read statement's one row, through [`Store::bounded`].
    fn read_row(
        &self,
        (statement, values): (String, sea_query::Values),
    ) -> impl std::future::Future<Output = Result<sqlx::any::AnyRow, StoreError>> + Send + '_ {
        // Bound before the future: sea-query's values are not Send, the bound query is.
        let query = sql::bind(statement, values);
        self.bounded(async move { Ok(query.fetch_one(&self.readers).await?) })
    }

    /// A read statement's row if there is one, through [`Store::bounded`].
    fn read_optional_row(
        &self,
        (statement, values): (String, sea_query::Values),
    ) -> impl std::future::Future<Output = Result<Option<sqlx::any::AnyRow>, StoreError>> + Send + '_
    {
        // Bound before the future: sea-query's values are not Send, the bound query is.
        let query = sql::bind(statement, values);
        self.bounded(async move { Ok(query.fetch_optional(&self.readers).await?) })
    }

    /// Runs a store call that may be dropped half-way without harm (a read, or a single
    /// statement), failing fast while the database is down and at the request's deadline.
    async fn bounded<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        self.health.check()?;
        let result = health::within_deadline(work).await;
        if let Err(error) = &result {
            self.health.observe(error);
        }
        result
    }

    /// The read pool's open and idle connections, for metrics.
    pub fn reader_pool_state(&self) -> (u32, usize) {
        (self.readers.size(), self.readers.num_idle())
    }

    /// Whether the database answers, for readiness (`/healthz`).
    pub fn readiness(&self) -> Readiness {
        self.health.readiness()
    }

    /// Lets every queued write commit, stops the writer and closes every connection.
    pub async fn close(&self) {
        let tasks = std::mem::take(&mut *self.writer_tasks.lock().await);
        // One stop per writer, queued behind every write already sent.
        let mut acknowledgements = Vec::new();
        for _ in &tasks {
            let (stopped, acknowledged) = oneshot::channel();
            if self
                .writes
                .send(writer::Message::Stop(stopped))
                .await
                .is_ok()
            {
                acknowledgements.push(acknowledged);
            }
        }
        for acknowledged in acknowledgements {
            let _ = acknowledged.await;
        }
        for task in tasks {
            let _ = task.await;
        }
        if let Backend::Embedded(embedded) = &self.backend {
            embedded.cache_watch.abort();
            embedded.readers.close();
        }
        self.probe.abort();
        if let Some(pool) = &self.writer_pool {
            pool.close().await;
        }
        self.readers.close().await;
    }
}
