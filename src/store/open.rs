//! Opening a store: the URL's backend, connection settings per pool (lock waits, SQLite's page
//! cache and durability), migrations, the writer tasks, the health probe and the cache watch.

use std::path::Path;
use std::str::FromStr;
use std::sync::Arc;

use anyhow::Context;
use sqlx::Row;
use sqlx::any::{AnyConnectOptions, AnyPoolOptions};
use tokio::sync::{Mutex, mpsc};

use super::session::PoolSessions;
use super::sqlite_writes::{OthersWatch, SqliteWrites};
use super::{
    ACQUIRE_TIMEOUT, Backend, Dialect, Durability, Embedded, READER_LOCK_WAIT_MS, Store,
    WAL_CHECKPOINT_PAGES, WRITER_LOCK_WAIT_MS, bulk, cache, health, writer,
};
use super::{DEFAULT_READERS, DEFAULT_SQLITE_CACHE_MIB};

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
        let reader_count = readers;
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
        let mut probe = <sqlx::AnyConnection as sqlx::Connection>::connect_with(&options)
            .await
            .with_context(|| format!("cannot open the database {}", redact(url)))?;
        if dialect == Dialect::Sqlite {
            // Kept in the file: every later connection, of any process, is in WAL mode.
            sqlx::raw_sql("PRAGMA journal_mode = WAL")
                .execute(&mut probe)
                .await
                .context("cannot switch SQLite to WAL mode")?;
        }
        sqlx::Connection::close(probe).await.ok();
        // SQLite has one writer, on a connection of its own (`SqliteWrites`); PostgreSQL takes
        // several, each committing its own batches on a connection of this pool.
        let writers: u32 = 4;
        let writer_pool = match dialect {
            Dialect::Sqlite => None,
            Dialect::Postgres => Some(
                pool_options(writers, pragmas(WRITER_LOCK_WAIT_MS))
                    .connect_with(options.clone())
                    .await
                    .with_context(|| format!("cannot open the database {}", redact(url)))?,
            ),
        };
        let migrator = match dialect {
            Dialect::Sqlite => sqlx::migrate!("migrations/sqlite"),
            Dialect::Postgres => sqlx::migrate!("migrations/postgres"),
        };
        // SQLite has no migration lock of its own: two processes opening a new file at once
        // would both create the tables. An exclusive lock on a file beside it orders them.
        let _migrations_lock = match dialect {
            Dialect::Sqlite => sqlite_migrations_lock(url).await?,
            Dialect::Postgres => None,
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
        let sqlite_file = match dialect {
            Dialect::Sqlite => Some(
                sqlx::sqlite::SqliteConnectOptions::from_str(url)?
                    .get_filename()
                    .to_path_buf(),
            ),
            Dialect::Postgres => None,
        };
        let mut sqlite_writes = None;
        let backend = match &sqlite_file {
            Some(file) => {
                let cache = Arc::new(cache::EntityCache::default());
                let writes = SqliteWrites::new(
                    file.clone(),
                    format!(
                        "{} PRAGMA wal_autocheckpoint = {WAL_CHECKPOINT_PAGES};",
                        pragmas(WRITER_LOCK_WAIT_MS)
                    ),
                    cache.clone(),
                );
                let watch = writes.watch();
                sqlite_writes = Some(writes);
                Backend::Embedded(Embedded {
                    readers: Arc::new(super::sqlite_reads::SqliteReaders::new(
                        file.clone(),
                        reader_count,
                        sqlite_cache_mib,
                    )),
                    cache_watch: watch_other_writers(&options, watch, cache.clone()).await?,
                    cache,
                    bulk_loader: Arc::new(std::sync::Mutex::new(bulk::SqliteBulkLoader::new(file))),
                })
            }
            None => {
                // The hot reads take most of the read connections; the `Any` pool above keeps
                // a few for everything else (analytics, exports, bookkeeping).
                let options: sqlx::postgres::PgConnectOptions = url.parse()?;
                let lock_wait = pragmas(READER_LOCK_WAIT_MS);
                let native = sqlx::postgres::PgPoolOptions::new()
                    .max_connections(reader_count.max(1))
                    .acquire_timeout(ACQUIRE_TIMEOUT)
                    // Not pinged before each read: reads retry on a connection found dead.
                    .test_before_acquire(false)
                    .after_connect(move |connection, _| {
                        let lock_wait = lock_wait.clone();
                        Box::pin(async move {
                            sqlx::raw_sql(sqlx::AssertSqlSafe(lock_wait.to_string()))
                                .execute(&mut *connection)
                                .await?;
                            Ok(())
                        })
                    })
                    .connect_lazy_with(options);
                Backend::Shared(native)
            }
        };
        let cache = match &backend {
            Backend::Embedded(embedded) => Some(embedded.cache.clone()),
            Backend::Shared(_) => None,
        };
        let inbox = Arc::new(Mutex::new(receiver));
        let health = Arc::new(health::Health::default());
        let probe = health::spawn_probe(health.clone(), options.clone());
        let writer_tasks = match sqlite_writes {
            // SQLite's one writer runs on a thread of its own, through SQLite's own driver.
            Some(sessions) => {
                let runtime = tokio::runtime::Handle::current();
                let (cache, health, inbox) = (cache.clone(), health.clone(), inbox.clone());
                vec![tokio::task::spawn_blocking(move || {
                    runtime.block_on(writer::run(dialect, sessions, cache, health, inbox))
                })]
            }
            None => (0..writers)
                .map(|_| {
                    let sessions = PoolSessions {
                        pool: writer_pool
                            .clone()
                            .expect("PostgreSQL's writers have a pool"),
                        dialect,
                    };
                    tokio::spawn(writer::run(
                        dialect,
                        sessions,
                        cache.clone(),
                        health.clone(),
                        inbox.clone(),
                    ))
                })
                .collect(),
        };
        let store = Store {
            backend,
            dialect,
            readers,
            writes,
            writer_tasks: Mutex::new(writer_tasks),
            writer_pool,
            health,
            probe,
            analytics_slots: tokio::sync::Semaphore::new((reader_count as usize / 2).max(1)),
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
}

/// Waits for and holds an exclusive lock on `{database file}.migrations-lock` (released when
/// dropped, or by the operating system when the process dies); none for an in-memory database.
async fn sqlite_migrations_lock(url: &str) -> anyhow::Result<Option<std::fs::File>> {
    let options = sqlx::sqlite::SqliteConnectOptions::from_str(url)?;
    let database = options.get_filename();
    if database.as_os_str().is_empty() || database.as_os_str() == ":memory:" {
        return Ok(None);
    }
    let mut name = database.as_os_str().to_os_string();
    name.push(".migrations-lock");
    let path = std::path::PathBuf::from(name);
    let file = std::fs::OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .open(&path)
        .with_context(|| format!("cannot open {}", path.display()))?;
    let file = tokio::task::spawn_blocking(move || file.lock().map(|()| file))
        .await?
        .with_context(|| format!("cannot lock {}", path.display()))?;
    Ok(Some(file))
}

/// Empties the cache whenever another connection (another process) commits to the SQLite file.
/// The writer's own connection tells ([`OthersWatch`]): its
/// `PRAGMA data_version` changes only for others' commits. When it cannot tell (none open, or
/// one busy past a poll, perhaps waiting for another process's lock), a connection of the
/// watch's own decides: its `data_version` changes for every commit, the writer's too, so then
/// the cache is emptied at any commit.
async fn watch_other_writers(
    options: &AnyConnectOptions,
    others: OthersWatch,
    cache: Arc<cache::EntityCache>,
) -> anyhow::Result<tokio::task::JoinHandle<()>> {
    let mut connection = <sqlx::AnyConnection as sqlx::Connection>::connect_with(options).await?;
    let data_version = |row: sqlx::any::AnyRow| row.try_get::<i64, _>(0).unwrap_or_default();
    let mut last = data_version(
        sqlx::query("PRAGMA data_version")
            .fetch_one(&mut connection)
            .await?,
    );
    let others = Arc::new(others);
    Ok(tokio::spawn(async move {
        loop {
            tokio::time::sleep(cache::POLL_INTERVAL).await;
            let any_commit = match sqlx::query("PRAGMA data_version")
                .fetch_one(&mut connection)
                .await
            {
                Ok(row) => {
                    let now = data_version(row);
                    let changed = now != last;
                    last = now;
                    Ok(changed)
                }
                Err(error) => Err(error),
            };
            let others = others.clone();
            let told =
                tokio::task::spawn_blocking(move || others.others_committed(cache::POLL_INTERVAL))
                    .await;
            let clear = match (told, any_commit) {
                (Ok(Ok(Some(others_committed))), _) => others_committed,
                (_, Ok(any_commit)) => any_commit,
                (_, Err(error)) => {
                    tracing::warn!(error = %error, "cannot watch for other writers; cache off");
                    true
                }
            };
            if clear {
                metrics::counter!("graphpilot_entity_cache_clears_total", "cause" => "other_writer")
                    .increment(1);
                cache.clear();
            }
        }
    }))
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
