//! Persistence over SQLite (the embedded default) or PostgreSQL through sqlx's `Any` driver. All
//! statements are built once in [`sql`]; the backends differ only in dialect, migrations and
//! connection settings. Writes go through one group-commit writer ([`writer`]): a request is
//! answered only after the transaction holding its write is durable.

mod bulk;
mod cache;
mod error;
pub mod health;
pub mod sql;
mod transaction;
mod writer;

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use sqlx::{AnyPool, Row};
use tokio::sync::{Mutex, mpsc, oneshot};

use crate::edm::{DateTimeOffset, Duration};
use crate::model::{EdmType, Entity, EntitySchema, PatchBody, Property, Value};
use crate::odata::{Predicate, Scalar};
pub use sql::{AppRegistration, Collection, Dialect, Listing, SortKeys, Target, sort_keys};
use transaction::Tx;
pub use writer::WriteOp;

/// Read connections per process unless `--pool-size` says otherwise.
pub const DEFAULT_READERS: u32 = 8;
/// How long a store call waits for a free pooled connection (or a new one) before it fails as
/// Unavailable.
const ACQUIRE_TIMEOUT: std::time::Duration = std::time::Duration::from_secs(5);
/// How long the writer waits for a lock held elsewhere (another process's transaction on the
/// SQLite file, a row locked by another PostgreSQL session) before its batch fails as Unavailable.
const WRITER_LOCK_WAIT_MS: u32 = 5_000;
/// The same for reads and the store's own bookkeeping writes.
const READER_LOCK_WAIT_MS: u32 = 10_000;
/// SQLite's page cache per connection (MiB) unless `--sqlite-cache` says otherwise. Small on
/// purpose: every connection keeps its own cache, so nine connections with large ones each
/// cached the same pages again and memory grew for as long as a changing database touched new
/// pages (the soak in docs/performance.md); the operating system's file cache, shared by all,
/// serves the rest at the cost of a read system call per page.
pub const DEFAULT_SQLITE_CACHE_MIB: u32 = 8;

/// An entity as stored: its current ETag and canonical JSON.
#[derive(Clone, Debug)]
pub struct StoredEntity {
    pub etag: String,
    pub body: String,
}

impl StoredEntity {
    /// Reads the [`sql::entity_columns`] of `schema` from a result row, starting at `first`, and
    /// renders the entity's JSON from them.
    fn from_row(
        row: &sqlx::any::AnyRow,
        first: usize,
        schema: &EntitySchema,
    ) -> Result<Self, sqlx::Error> {
        let entity = Entity {
            id: row.try_get(first)?,
            values: schema
                .properties
                .iter()
                .enumerate()
                .map(|(position, property)| read_value(row, first + 2 + position, property))
                .collect::<Result<_, _>>()?,
        };
        Ok(StoredEntity {
            etag: row.try_get(first + 1)?,
            body: entity.to_json(schema),
        })
    }
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

/// The store: a reader pool plus the sender side of the group-commit writer.
pub struct Store {
    dialect: Dialect,
    readers: AnyPool,
    writes: mpsc::Sender<writer::Message>,
    writer_tasks: Mutex<Vec<tokio::task::JoinHandle<()>>>,
    writer_pool: AnyPool,
    /// Entities by key, for an embedded SQLite file (one server owns it); see [`cache`].
    cache: Option<Arc<cache::EntityCache>>,
    cache_watch: Option<tokio::task::JoinHandle<()>>,
    /// The connection bulk loads into an embedded SQLite file take; see [`bulk`].
    bulk_loader: Option<Arc<std::sync::Mutex<bulk::SqliteBulkLoader>>>,
    /// Whether the database is reachable ([`health`]), and the task that tries it while not.
    health: Arc<health::Health>,
    probe: tokio::task::JoinHandle<()>,
}

impl Store {
    /// Opens (creating if missing) the database at `url`, applies the embedded migrations and starts
    /// the writer.
    pub async fn open(url: &str, durability: Durability) -> anyhow::Result<Arc<Store>> {
        Self::open_with_readers(url, durability, DEFAULT_READERS, DEFAULT_SQLITE_CACHE_MIB).await
    }

    /// [`Store::open`] with `readers` connections for reads (writes have their own) and, on
    /// SQLite, a page cache of `sqlite_cache_mib` per connection.
    pub async fn open_with_readers(
        url: &str,
        durability: Durability,
        readers: u32,
        sqlite_cache_mib: u32,
    ) -> anyhow::Result<Arc<Store>> {
        sqlx::any::install_default_drivers();
        let dialect = if url.starts_with("sqlite:") {
            Dialect::Sqlite
        } else if url.starts_with("postgres:") || url.starts_with("postgresql:") {
            Dialect::Postgres
        } else {
            anyhow::bail!("unsupported database URL '{url}': use sqlite://FILE or postgres://…");
        };
        let options: AnyConnectOptions = url
            .parse()
            .with_context(|| format!("invalid database URL '{url}'"))?;
        let synchronous = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        // How long a statement waits for a lock another connection (or process) holds before it
        // fails as Unavailable: bounded, so a stalled writer elsewhere costs a 503, not a hang.
        let pragmas = |lock_wait_ms: u32| -> Arc<str> {
            match dialect {
                Dialect::Sqlite => format!(
                    "PRAGMA busy_timeout = {lock_wait_ms}; PRAGMA synchronous = {synchronous}; \
                     PRAGMA cache_size = -{}; PRAGMA temp_store = MEMORY;",
                    u64::from(sqlite_cache_mib) * 1024
                )
                .into(),
                Dialect::Postgres => format!("SET lock_timeout = {lock_wait_ms}").into(),
            }
        };
        let pool_options = |size: u32, pragmas: Arc<str>| {
            AnyPoolOptions::new()
                .max_connections(size)
                .acquire_timeout(ACQUIRE_TIMEOUT)
                .min_connections(1)
                .after_connect({
                    let pragmas = pragmas.clone();
                    move |connection, _| {
                        let pragmas = pragmas.clone();
                        Box::pin(async move {
                            if !pragmas.is_empty() {
                                sqlx::raw_sql(sqlx::AssertSqlSafe(pragmas.to_string()))
                                    .execute(&mut *connection)
                                    .await?;
                            }
                            Ok(())
                        })
                    }
                })
        };
        // One direct connection first: a refused or unknown database fails here at once, where a
        // pool would retry until its acquire timeout.
        let probe = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options)
            .await
            .with_context(|| format!("cannot open the database {}", redact(url)))?;
        sqlx::Connection::close(probe).await.ok();
        // SQLite has one writer; PostgreSQL takes several, each committing its own batches.
        let writers: u32 = match dialect {
            Dialect::Sqlite => 1,
            Dialect::Postgres => 4,
        };
        let writer_pool = pool_options(writers, pragmas(WRITER_LOCK_WAIT_MS))
            .connect_with(options.clone())
            .await
            .with_context(|| format!("cannot open the database {}", redact(url)))?;
        if dialect == Dialect::Sqlite {
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&writer_pool)
                .await
                .context("cannot switch SQLite to WAL mode")?;
        }
        let migrator = match dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        // On a connection of its own, without the pools' lock timeout: another node starting at
        // the same time holds the migration lock for as long as its migrations take.
        let mut migrating = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options)
            .await
            .with_context(|| format!("cannot open the database {}", redact(url)))?;
        migrator
            .run(&mut migrating)
            .await
            .context("cannot apply database migrations")?;
        sqlx::Connection::close(migrating).await.ok();
        let readers = pool_options(readers.max(1), pragmas(READER_LOCK_WAIT_MS))
            .connect_with(options.clone())
            .await?;
        let (writes, receiver) = mpsc::channel(4096);
        let cache = (dialect == Dialect::Sqlite).then(|| Arc::new(cache::EntityCache::default()));
        let cache_watch = match &cache {
            Some(cache) => Some(watch_other_writers(&options, cache.clone()).await?),
            None => None,
        };
        let inbox = Arc::new(Mutex::new(receiver));
        let health = Arc::new(health::Health::default());
        let probe = health::spawn_probe(health.clone(), options.clone());
        let writer_tasks = (0..writers)
            .map(|_| {
                tokio::spawn(writer::run(
                    dialect,
                    writer_pool.clone(),
                    cache.clone(),
                    health.clone(),
                    inbox.clone(),
                ))
            })
            .collect();
        let bulk_loader = match dialect {
            Dialect::Sqlite => {
                let file = sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                    .get_filename()
                    .to_path_buf();
                Some(Arc::new(std::sync::Mutex::new(
                    bulk::SqliteBulkLoader::new(&file),
                )))
            }
            Dialect::Postgres => None,
        };
        let store = Store {
            bulk_loader,
            dialect,
            readers,
            writes,
            writer_tasks: Mutex::new(writer_tasks),
            writer_pool,
            cache,
            cache_watch,
            health,
            probe,
        };
        match store.finish_bulk_load().await {
            Ok(()) => {}
            // A full or read-only disk: serve without them (correct, slower) rather than not at
            // all; the next start builds them.
            Err(error) if error.is_transient() => tracing::warn!(
                error = %error,
                "cannot rebuild the indexes of an interrupted bulk load now; queries are slower until a restart rebuilds them"
            ),
            Err(error) => {
                return Err(anyhow::Error::new(error)
                    .context("cannot rebuild the indexes of an interrupted bulk load"));
            }
        }
        if dialect == Dialect::Sqlite {
            // Analyses the tables whose statistics are missing or stale (cheap otherwise). It
            // writes, so on a full or read-only disk it fails; the server still serves reads.
            if let Err(error) =
                sqlx::raw_sql("PRAGMA analysis_limit = 2000; PRAGMA optimize = 0x10002;")
                    .execute(&store.readers)
                    .await
            {
                tracing::warn!(error = %error, "cannot refresh the query planner's statistics");
            }
        }
        Ok(Arc::new(store))
    }

    /// The SQLite URL of the database file inside a data directory.
    /// The database of a command's `--database`, or else the data directory's SQLite file (the
    /// directory created if missing).
    pub fn url_for(data_dir: &Path, database: Option<&str>) -> anyhow::Result<String> {
        match database {
            Some(url) => Ok(url.to_string()),
            None => {
                std::fs::create_dir_all(data_dir).with_context(|| {
                    format!("cannot create the data directory {}", data_dir.display())
                })?;
                Ok(Self::sqlite_url(data_dir))
            }
        }
    }

    pub fn sqlite_url(data_dir: &Path) -> String {
        format!(
            "sqlite://{}?mode=rwc",
            data_dir.join("graphpilot.db").display()
        )
    }

    pub fn dialect(&self) -> Dialect {
        self.dialect
    }

    pub async fn get(&self, tenant: &str, target: &Target) -> Result<StoredEntity, StoreError> {
        let generation = match &self.cache {
            Some(cache) => match cache.get(tenant, target) {
                Some(entity) => {
                    metrics::counter!("graphpilot_entity_cache_total", "result" => "hit")
                        .increment(1);
                    return Ok(entity);
                }
                None => {
                    metrics::counter!("graphpilot_entity_cache_total", "result" => "miss")
                        .increment(1);
                    Some(cache.generation())
                }
            },
            None => None,
        };
        let (sql, values) = self.dialect.select_one(tenant, target);
        let row = self
            .bounded({
                let query = sql::bind(sql, values);
                async { Ok(query.fetch_optional(&self.readers).await?) }
            })
            .await?
            .ok_or(StoreError::NotFound)?;
        let entity = StoredEntity::from_row(&row, 0, target.schema())?;
        if let (Some(cache), Some(generation)) = (&self.cache, generation) {
            cache.fill(tenant, target, generation, &entity);
        }
        Ok(entity)
    }

    /// Whether the event exists in the tenant (details are only reachable through their event).
    pub async fn event_exists(&self, tenant: &str, event_id: &str) -> Result<bool, StoreError> {
        let target = Target::Event {
            id: event_id.to_string(),
        };
        match self.get(tenant, &target).await {
            Ok(_) => Ok(true),
            Err(StoreError::NotFound) => Ok(false),
            Err(other) => Err(other),
        }
    }

    /// One page of a collection (see [`Listing`]).
    pub async fn page(
        &self,
        tenant: &str,
        listing: &Listing<'_>,
    ) -> Result<Vec<PageRow>, StoreError> {
        let (statement, values) = self.dialect.select_page(tenant, listing);
        let rows = self
            .bounded({
                let query = sql::bind(statement, values);
                async { Ok(query.fetch_all(&self.readers).await?) }
            })
            .await?;
        let keys = sort_keys(listing.order);
        let schema = listing.collection.schema();
        // seq, then the entity columns, then the sort columns.
        let sort_columns_start = 1 + 2 + schema.properties.len();
        rows.iter()
            .map(|row| {
                let cursor = match &keys {
                    SortKeys::Insertion => vec![Scalar::Integer(row.try_get(0)?)],
                    SortKeys::Columns(keys) => keys
                        .iter()
                        .enumerate()
                        .map(|(index, (column, _))| {
                            read_scalar(row, sort_columns_start + index, column.edm)
                        })
                        .collect::<Result<_, sqlx::Error>>()?,
                };
                Ok(PageRow {
                    id: row.try_get(1)?,
                    cursor,
                    entity: StoredEntity::from_row(row, 1, schema)?,
                })
            })
            .collect()
    }

    pub async fn count(
        &self,
        tenant: &str,
        collection: &Collection,
        filter: Option<&Predicate>,
    ) -> Result<i64, StoreError> {
        let (statement, values) = self.dialect.count(tenant, collection, filter);
        let row = self
            .bounded({
                let query = sql::bind(statement, values);
                async { Ok(query.fetch_one(&self.readers).await?) }
            })
            .await?;
        Ok(row.try_get(0)?)
    }

    /// The policy status details of the given events, as (event id, detail) in insertion order.
    pub async fn details_of(
        &self,
        tenant: &str,
        event_ids: &[String],
    ) -> Result<Vec<(String, StoredEntity)>, StoreError> {
        if event_ids.is_empty() {
            return Ok(Vec::new());
        }
        let (statement, values) = self.dialect.details_of(tenant, event_ids);
        let rows = self
            .bounded({
                let query = sql::bind(statement, values);
                async { Ok(query.fetch_all(&self.readers).await?) }
            })
            .await?;
        rows.iter()
            .map(|row| {
                let detail = StoredEntity::from_row(row, 1, &crate::model::POLICY_STATUS_DETAIL)?;
                Ok((row.try_get(0)?, detail))
            })
            .collect()
    }

    /// Creates an event and, in the same transaction, its inline policy status details.
    pub async fn create_event(
        &self,
        tenant: &str,
        event: Entity,
        details: Vec<Entity>,
    ) -> Result<StoredEntity, StoreError> {
        self.write(WriteOp::CreateEvent {
            tenant: tenant.to_string(),
            event,
            details,
        })
        .await
    }

    /// Creates a policy status detail under an existing event (NotFound otherwise).
    pub async fn create_detail(
        &self,
        tenant: &str,
        event_id: &str,
        detail: Entity,
    ) -> Result<StoredEntity, StoreError> {
        self.write(WriteOp::CreateDetail {
            tenant: tenant.to_string(),
            event_id: event_id.to_string(),
            detail,
        })
        .await
    }

    /// Applies a PATCH atomically: read, change, write, all inside the writer's transaction.
    pub async fn update(
        &self,
        tenant: &str,
        target: Target,
        patch: PatchBody,
        if_match: Option<String>,
    ) -> Result<StoredEntity, StoreError> {
        self.write(WriteOp::Update {
            tenant: tenant.to_string(),
            target,
            patch,
            if_match,
        })
        .await
    }

    /// Deletes an entity (an event takes its details with it).
    pub async fn delete(
        &self,
        tenant: &str,
        target: Target,
        if_match: Option<String>,
    ) -> Result<(), StoreError> {
        self.write(WriteOp::Delete {
            tenant: tenant.to_string(),
            target,
            if_match,
        })
        .await
        .map(drop)
    }

    /// Prepares a bulk load: when the tables are empty, their indexes are
    /// dropped (their definitions kept in `graphpilot_deferred_indexes`) so the load does not
    /// maintain them row by row; [`Store::finish_bulk_load`] builds them again in one pass. Returns
    /// whether indexes were deferred.
    pub async fn begin_bulk_load(&self) -> Result<bool, StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Ok(false);
        }
        let mut transaction = Tx::begin(&self.readers, self.dialect).await?;
        let empty: i64 = sqlx::query(
            "SELECT NOT EXISTS (SELECT 1 FROM autopilot_events) \
             AND NOT EXISTS (SELECT 1 FROM policy_status_details)",
        )
        .fetch_one(transaction.connection())
        .await?
        .try_get(0)?;
        if empty == 0 {
            transaction.rollback().await;
            return Ok(false);
        }
        // Unique ones too: while both tables are empty no key can clash with existing rows, keys
        // are random GUIDs, and the rebuild checks uniqueness anyway. The tables themselves then
        // grow by appends only.
        let indexes = sqlx::query(
            "SELECT name, sql FROM sqlite_master WHERE type = 'index' \
             AND tbl_name IN ('autopilot_events', 'policy_status_details') AND sql IS NOT NULL",
        )
        .fetch_all(transaction.connection())
        .await?;
        for index in &indexes {
            let name: String = index.try_get(0)?;
            let definition: String = index.try_get(1)?;
            sqlx::query("INSERT INTO graphpilot_deferred_indexes (name, definition) VALUES (?, ?)")
                .bind(&name)
                .bind(definition)
                .execute(transaction.connection())
                .await?;
            // Index names come from our own schema, never from input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP INDEX \"{name}\"")))
                .execute(transaction.connection())
                .await?;
        }
        transaction.commit().await?;
        Ok(!indexes.is_empty())
    }

    /// Builds every deferred index again (also run at start, after an interrupted load).
    pub async fn finish_bulk_load(&self) -> Result<(), StoreError> {
        // A connection of its own, closed afterwards: the settings below suit only index builds.
        let mut connection = self.readers.acquire().await?.detach();
        if self.dialect == Dialect::Sqlite {
            // Index builds sort every row. SQLite's sorter is fastest with a small page cache and
            // temporary files (it merges sorted runs from them, on helper threads); the large
            // in-memory settings of the readers made a 1M-event rebuild twice as slow.
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA threads = {threads}; PRAGMA cache_size = -2000; PRAGMA temp_store = FILE;"
            )))
            .execute(&mut connection)
            .await?;
        }
        let mut transaction = sqlx::Connection::begin(&mut connection).await?;
        let deferred = sqlx::query("SELECT name, definition FROM graphpilot_deferred_indexes")
            .fetch_all(&mut *transaction)
            .await?;
        for index in &deferred {
            let definition: String = index.try_get(1)?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(definition))
                .execute(&mut *transaction)
                .await?;
        }
        sqlx::query("DELETE FROM graphpilot_deferred_indexes")
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        sqlx::Connection::close(connection).await?;
        Ok(())
    }

    /// The signing key every node of this database uses. On PostgreSQL (several nodes) the first
    /// node to start publishes `candidate_pem` and all nodes then use what is published; an
    /// embedded SQLite file has one node, whose data-directory key is the key.
    pub async fn shared_signing_key(&self, candidate_pem: &str) -> Result<String, StoreError> {
        if self.dialect != Dialect::Postgres {
            return Ok(candidate_pem.to_string());
        }
        sqlx::query(
            "INSERT INTO graphpilot_keys (name, pem) VALUES ('signing', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(candidate_pem)
        .execute(&self.readers)
        .await?;
        let row = sqlx::query("SELECT pem FROM graphpilot_keys WHERE name = 'signing'")
            .fetch_one(&self.readers)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Claims up to `chunk` more of a shared throttle counter's `limit` in `window`; returns how
    /// much was granted (0 once the limit is reached). Atomic across the nodes of the database.
    pub async fn claim_throttle_budget(
        &self,
        tenant: &str,
        app: &str,
        kind: &str,
        window: i64,
        chunk: u32,
        limit: u32,
    ) -> Result<u32, StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO graphpilot_throttle (tenant_id, app, kind, time_window, used) \
                 VALUES ($1, $2, $3, $4, 0) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(app)
            .bind(kind)
            .bind(window)
            .execute(&self.readers)
            .await?;
            let row = sqlx::query(
                "WITH previous AS (SELECT used FROM graphpilot_throttle \
                   WHERE tenant_id = $1 AND app = $2 AND kind = $3 AND time_window = $4 FOR UPDATE) \
                 UPDATE graphpilot_throttle AS counter SET used = LEAST(counter.used + $5, $6) FROM previous \
                 WHERE counter.tenant_id = $1 AND counter.app = $2 AND counter.kind = $3 AND counter.time_window = $4 \
                 RETURNING counter.used - previous.used",
            )
            .bind(tenant)
            .bind(app)
            .bind(kind)
            .bind(window)
            .bind(i64::from(chunk))
            .bind(i64::from(limit))
            .fetch_one(&self.readers)
            .await?;
            let granted: i64 = row.try_get(0)?;
            Ok(granted.max(0) as u32)
        })
        .await
    }

    /// Drops shared throttle counters of windows before `window`.
    pub async fn forget_throttle_windows_before(&self, window: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM graphpilot_throttle WHERE time_window < $1")
            .bind(window)
            .execute(&self.readers)
            .await?;
        Ok(())
    }

    pub async fn add_app(&self, app: &AppRegistration) -> Result<(), StoreError> {
        let (statement, values) = self.dialect.insert_app(app);
        sql::bind(statement, values).execute(&self.readers).await?;
        Ok(())
    }

    /// Every app registration, or the one with `client_id`.
    pub async fn apps(&self, client_id: Option<&str>) -> Result<Vec<AppRegistration>, StoreError> {
        let (statement, values) = self.dialect.select_apps(client_id);
        let rows = self
            .bounded({
                let query = sql::bind(statement, values);
                async { Ok(query.fetch_all(&self.readers).await?) }
            })
            .await?;
        rows.iter()
            .map(|row| {
                let permissions: String = row.try_get(4)?;
                Ok(AppRegistration {
                    client_id: row.try_get(0)?,
                    tenant: row.try_get(1)?,
                    name: row.try_get(2)?,
                    secret_sha256: row.try_get(3)?,
                    permissions: permissions.split_whitespace().map(str::to_string).collect(),
                    created_at: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// Removes an app registration; whether there was one.
    pub async fn remove_app(&self, client_id: &str) -> Result<bool, StoreError> {
        let (statement, values) = self.dialect.delete_app(client_id);
        let done = sql::bind(statement, values).execute(&self.readers).await?;
        Ok(done.rows_affected() > 0)
    }

    /// Refreshes the planner's statistics (after bulk loads): without them SQLite may walk the
    /// time index instead of the state index for a keyset page, scanning ten times the rows.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        let statement = match self.dialect {
            Dialect::Sqlite => "PRAGMA analysis_limit = 2000; ANALYZE;",
            Dialect::Postgres => "ANALYZE autopilot_events; ANALYZE policy_status_details;",
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&self.readers)
            .await?;
        Ok(())
    }

    /// Makes everything committed so far durable and folds the WAL into the database file.
    ///
    /// Bulk loads commit with `synchronous = NORMAL` and rely on this to reach the disk. When
    /// readers (a server beside) keep the checkpoint from finishing, SQLite reports it busy and
    /// need not have synced the WAL at all; a one-frame commit with `synchronous = FULL` then
    /// syncs the whole WAL, which holds every earlier commit.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Ok(());
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.readers)
            .await?;
        let busy: i64 = row.try_get(0)?;
        if busy != 0 {
            let mut connection = self.readers.acquire().await?.detach();
            sqlx::raw_sql("PRAGMA synchronous = FULL")
                .execute(&mut connection)
                .await?;
            let version: i64 = sqlx::query("PRAGMA user_version")
                .fetch_one(&mut connection)
                .await?
                .try_get(0)?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "BEGIN IMMEDIATE; PRAGMA user_version = {version}; COMMIT;"
            )))
            .execute(&mut connection)
            .await?;
            sqlx::Connection::close(connection).await?;
        }
        Ok(())
    }

    /// Loads many deployments in one transaction: new ones ([`LoadKind::Insert`], seeding), or
    /// replacing any stored under the same ids, details included ([`LoadKind::Upsert`], imports).
    pub async fn bulk_load(
        &self,
        tenant: &str,
        deployments: Vec<crate::model::Deployment>,
        kind: LoadKind,
    ) -> Result<(), StoreError> {
        if let Some(loader) = &self.bulk_loader {
            let loader = loader.clone();
            let tenant = tenant.to_string();
            return tokio::task::spawn_blocking(move || {
                loader
                    .lock()
                    .expect("bulk loader lock")
                    .load(&tenant, &deployments, kind)
            })
            .await
            .map_err(|error| anyhow::anyhow!("the bulk load stopped: {error}"))?;
        }
        self.write(WriteOp::Bulk {
            tenant: tenant.to_string(),
            deployments: Arc::new(deployments),
            kind,
        })
        .await
        .map(drop)
    }

    /// Deletes every event and detail of `tenant`, or of every tenant; returns how many of each.
    pub async fn reset(&self, tenant: Option<&str>) -> Result<(u64, u64), StoreError> {
        self.health.check()?;
        let mut transaction = Tx::begin(&self.readers, self.dialect).await?;
        let mut deleted = [0; 2];
        for (count, schema) in deleted.iter_mut().zip([
            &crate::model::AUTOPILOT_EVENT,
            &crate::model::POLICY_STATUS_DETAIL,
        ]) {
            let (statement, values) = self.dialect.delete_tenant(schema, tenant);
            *count = sql::bind(statement, values)
                .execute(transaction.connection())
                .await?
                .rows_affected();
        }
        transaction.commit().await?;
        if let Some(cache) = &self.cache {
            cache.clear();
        }
        Ok((deleted[0], deleted[1]))
    }

    /// Queues a write for the writer and waits for its commit. Within a request's deadline
    /// ([`health::DEADLINE`]): a write still queued when it passes is withdrawn, never applied,
    /// and refused as Unavailable; a write whose commit is under way then is `OutcomeUnknown`.
    async fn write(&self, op: WriteOp) -> Result<StoredEntity, StoreError> {
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
        if let Some(watch) = &self.cache_watch {
            watch.abort();
        }
        self.probe.abort();
        self.writer_pool.close().await;
        self.readers.close().await;
    }
}

/// Empties the cache whenever another connection (another process) commits to the SQLite file:
/// `PRAGMA data_version` changes for a connection when any other one commits. Our own writer's
/// commits count too; the cache then simply refills.
async fn watch_other_writers(
    options: &AnyConnectOptions,
    cache: Arc<cache::EntityCache>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect_with(options).await?;
    let data_version = |row: sqlx::any::AnyRow| row.try_get::<i64, _>(0).unwrap_or_default();
    let mut last = data_version(
        sqlx::query("PRAGMA data_version")
            .fetch_one(&mut connection)
            .await?,
    );
    Ok(tokio::spawn(async move {
        loop {
            tokio::time::sleep(cache::POLL_INTERVAL).await;
            match sqlx::query("PRAGMA data_version")
                .fetch_one(&mut connection)
                .await
            {
                Ok(row) => {
                    let now = data_version(row);
                    if now != last {
                        last = now;
                        cache.clear();
                    }
                }
                Err(error) => {
                    tracing::warn!(error = %error, "cannot watch for other writers; cache off");
                    cache.clear();
                }
            }
        }
    }))
}

/// A property's typed column as a value. Ticks become instants and spans again; booleans are
/// integers in SQLite and booleans in PostgreSQL.
fn read_value(
    row: &sqlx::any::AnyRow,
    index: usize,
    property: &Property,
) -> Result<Value, sqlx::Error> {
    let ticks = || row.try_get::<Option<i64>, _>(index);
    let value = match property.edm {
        EdmType::String => row.try_get::<Option<String>, _>(index)?.map(Value::String),
        EdmType::Boolean => match row.try_get::<Option<bool>, _>(index) {
            Ok(flag) => flag.map(Value::Boolean),
            Err(_) => ticks()?.map(|number| Value::Boolean(number != 0)),
        },
        EdmType::DateTimeOffset => ticks()?
            .map(|t| {
                DateTimeOffset::from_ticks(t)
                    .map(Value::DateTimeOffset)
                    .ok_or_else(|| {
                        sqlx::Error::Decode(format!("{t} ticks are outside DateTimeOffset").into())
                    })
            })
            .transpose()?,
        EdmType::Duration => ticks()?.map(|t| Value::Duration(Duration::from_ticks(t))),
        EdmType::Int32 => ticks()?
            .map(|number| i32::try_from(number).map(Value::Int32))
            .transpose()
            .map_err(|error| sqlx::Error::Decode(Box::new(error)))?,
        EdmType::Enum(_) => ticks()?.map(Value::Enum),
    };
    Ok(value.unwrap_or(Value::Null))
}

/// A sort column's value as a cursor scalar. Booleans are integers in SQLite and booleans in
/// PostgreSQL; both become [`Scalar::Boolean`].
fn read_scalar(row: &sqlx::any::AnyRow, index: usize, edm: EdmType) -> Result<Scalar, sqlx::Error> {
    Ok(match edm {
        EdmType::String => row
            .try_get::<Option<String>, _>(index)?
            .map_or(Scalar::Null, Scalar::Text),
        EdmType::Boolean => Scalar::Boolean(
            row.try_get::<bool, _>(index)
                .or_else(|_| row.try_get::<i64, _>(index).map(|n| n != 0))?,
        ),
        EdmType::DateTimeOffset | EdmType::Duration | EdmType::Int32 | EdmType::Enum(_) => {
            Scalar::Integer(row.try_get(index)?)
        }
    })
}

/// The URL without its password, for messages.
fn redact(url: &str) -> String {
    match (url.find("://"), url.rfind('@')) {
        (Some(scheme_end), Some(at)) if at > scheme_end => {
            let credentials = &url[scheme_end + 3..at];
            match credentials.split_once(':') {
                Some((user, _)) => format!("{}{user}:***{}", &url[..scheme_end + 3], &url[at..]),
                None => url.to_string(),
            }
        }
        _ => url.to_string(),
    }
}

#[cfg(test)]
mod bulk_load_tests {
    use super::*;

    async fn index_names(store: &Store) -> Vec<String> {
        sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ('autopilot_events', 'policy_status_details') ORDER BY name",
        )
        .fetch_all(&store.readers)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get(0).unwrap())
        .collect()
    }

    #[tokio::test]
    async fn indexes_deferred_by_a_bulk_load_come_back_even_after_an_interrupted_one() {
        let directory = tempfile::tempdir().unwrap();
        let url = Store::sqlite_url(directory.path());
        let store = Store::open(&url, Durability::Normal).await.unwrap();
        let all = index_names(&store).await;
        assert!(all.len() >= 10, "{all:?}");
        assert!(store.begin_bulk_load().await.unwrap());
        assert!(index_names(&store).await.is_empty());
        store.finish_bulk_load().await.unwrap();
        assert_eq!(index_names(&store).await, all);
        // Interrupted: the indexes are dropped and the process goes away before rebuilding.
        assert!(store.begin_bulk_load().await.unwrap());
        store.close().await;
        let reopened = Store::open(&url, Durability::Normal).await.unwrap();
        assert_eq!(index_names(&reopened).await, all);
        reopened.close().await;
    }
}
