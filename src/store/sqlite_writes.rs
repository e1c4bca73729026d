//! The embedded file's writing connection through SQLite's own driver (rusqlite): the writer runs
//! on a thread of its own, so a batch's statements run one after another with no hop between them.
//!
//! Through sqlx's SQLite driver every statement of a batch was a message to that driver's thread
//! and back (two context switches each, on the core that also serves HTTP): at 32 connections
//! PATCHes spent more CPU switching than SQLite spent updating (docs/performance.md).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use rusqlite::{Connection, OpenFlags};

use super::bound::Bound;
use super::cache::EntityCache;
use super::session::{Session, Sessions};
use super::{StoreError, StoredEntity};
use crate::model::EntitySchema;

/// Statements kept prepared (an UPDATE's text varies with the properties it sets).
const PREPARED: usize = 256;

/// Transactions on the file's one writing connection, opened on first use and again after any
/// transaction that did not end cleanly.
///
/// The connection also tells the entity cache when another connection (another process, or this
/// one's bulk loads and syncs) has committed: its `PRAGMA data_version` changes only then, never
/// for its own commits, so the writer's commits leave the cache warm.
pub(super) struct SqliteWrites {
    file: PathBuf,
    /// The connection settings (lock wait, durability, page cache), run when it opens.
    pragmas: String,
    slot: Arc<Mutex<Slot>>,
    cache: Arc<EntityCache>,
}

/// Where the writing connection is.
enum Slot {
    /// Between transactions, with the `data_version` it last saw.
    Idle {
        connection: Connection,
        data_version: i64,
    },
    /// In a transaction (or waiting for the write lock) since then.
    Busy { since: Instant },
    /// None open: never yet, or closed after a transaction that did not end cleanly.
    Closed,
}

fn lock(slot: &Mutex<Slot>) -> std::sync::MutexGuard<'_, Slot> {
    slot.lock().unwrap_or_else(PoisonError::into_inner)
}

fn data_version(connection: &Connection) -> Result<i64, StoreError> {
    Ok(connection.query_row("PRAGMA data_version", [], |row| row.get(0))?)
}

impl SqliteWrites {
    pub fn new(file: PathBuf, pragmas: String, cache: Arc<EntityCache>) -> Self {
        Self {
            file,
            pragmas,
            slot: Arc::new(Mutex::new(Slot::Closed)),
            cache,
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let connection = Connection::open_with_flags(
            &self.file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.execute_batch(&self.pragmas)?;
        connection.set_prepared_statement_cache_capacity(PREPARED);
        Ok(connection)
    }

    /// What the cache watch asks of the writing connection.
    pub fn watch(&self) -> OthersWatch {
        OthersWatch {
            slot: self.slot.clone(),
        }
    }
}

/// Tells whether connections other than the writer's have committed, read on the writer's own
/// connection while it is idle.
pub(super) struct OthersWatch {
    slot: Arc<Mutex<Slot>>,
}

impl OthersWatch {
    /// `Some(true)` if another connection committed since the writer's connection last looked,
    /// `Some(false)` if none did; `None` if it cannot tell now (no connection open, or one busy
    /// for longer than `patience`, perhaps waiting for a lock another process holds).
    pub fn others_committed(&self, patience: Duration) -> Result<Option<bool>, StoreError> {
        let mut slot = lock(&self.slot);
        match &mut *slot {
            Slot::Idle {
                connection,
                data_version: last,
            } => {
                let now = data_version(connection)?;
                let changed = now != *last;
                *last = now;
                Ok(Some(changed))
            }
            // Its BEGIN looks when it gets the write lock, and nobody else commits meanwhile.
            Slot::Busy { since } if since.elapsed() < patience => Ok(Some(false)),
            Slot::Busy { .. } | Slot::Closed => Ok(None),
        }
    }
}

impl Sessions for SqliteWrites {
    type Session = SqliteTx;

    /// `BEGIN IMMEDIATE`: the write lock is taken at once (waiting up to the busy timeout), so a
    /// transaction never fails half-way for a lock another process holds. Once it is held, the
    /// cache is emptied if another connection committed since the last look.
    async fn begin(&self) -> Result<SqliteTx, StoreError> {
        let taken = std::mem::replace(
            &mut *lock(&self.slot),
            Slot::Busy {
                since: Instant::now(),
            },
        );
        let mut tx = SqliteTx {
            connection: None,
            data_version: 0,
            slot: self.slot.clone(),
        };
        let last = match taken {
            Slot::Idle {
                connection,
                data_version,
            } => {
                tx.connection = Some(connection);
                Some(data_version)
            }
            _ => {
                tx.connection = Some(self.open()?);
                None
            }
        };
        // A connection on which BEGIN fails is closed when `tx` drops.
        tx.connection().execute_batch("BEGIN IMMEDIATE")?;
        tx.data_version = data_version(tx.connection())?;
        // A fresh connection cannot tell what others did while none was open.
        if last != Some(tx.data_version) {
            self.cache.clear();
        }
        Ok(tx)
    }
}

/// An open transaction on the writing connection; the connection goes back for the next one
/// only if this one ended cleanly, and is closed (rolling back) otherwise.
pub(super) struct SqliteTx {
    connection: Option<Connection>,
    data_version: i64,
    slot: Arc<Mutex<Slot>>,
}

impl SqliteTx {
    fn connection(&self) -> &Connection {
        self.connection
            .as_ref()
            .expect("the connection is held until the transaction ends")
    }

    /// Ends the transaction with `statement`; the connection is kept only if it succeeded.
    fn end(mut self, statement: &str) -> Result<(), StoreError> {
        let connection = self
            .connection
            .take()
            .expect("the connection is held until the transaction ends");
        connection.execute_batch(statement)?;
        *lock(&self.slot) = Slot::Idle {
            connection,
            data_version: self.data_version,
        };
        Ok(())
    }
}

impl Drop for SqliteTx {
    fn drop(&mut self) {
        // Ended cleanly, the connection went back; otherwise it is closed with this.
        if self.connection.is_some() || !matches!(*lock(&self.slot), Slot::Idle { .. }) {
            *lock(&self.slot) = Slot::Closed;
        }
    }
}

impl Session for SqliteTx {
    async fn execute(&mut self, statement: Bound) -> Result<u64, StoreError> {
        let mut prepared = statement.prepare_sqlite(self.connection())?;
        Ok(prepared.raw_execute()? as u64)
    }

    async fn stored(
        &mut self,
        statement: Bound,
        schema: &'static EntitySchema,
    ) -> Result<Option<StoredEntity>, StoreError> {
        let mut prepared = statement.prepare_sqlite(self.connection())?;
        let mut rows = prepared.raw_query();
        match rows.next()? {
            Some(row) => Ok(Some(StoredEntity::from_row(row, 0, schema)?)),
            None => Ok(None),
        }
    }

    async fn commit(self) -> Result<(), StoreError> {
        self.end("COMMIT")
    }

    async fn rollback(self) {
        let _ = self.end("ROLLBACK");
    }
}
