//! The embedded file's writing connection through SQLite's own driver (rusqlite): the writer runs
//! on a thread of its own, so a batch's statements run one after another with no hop between them.
//!
//! Through sqlx's SQLite driver every statement of a batch was a message to that driver's thread
//! and back (two context switches each, on the core that also serves HTTP): at 32 connections
//! PATCHes spent more CPU switching than SQLite spent updating (docs/performance.md).

use std::path::PathBuf;
use std::sync::{Arc, Mutex, PoisonError};

use rusqlite::{Connection, OpenFlags};

use super::bound::Bound;
use super::session::{Session, Sessions};
use super::{StoreError, StoredEntity};
use crate::model::EntitySchema;

/// Statements kept prepared (an UPDATE's text varies with the properties it sets).
const PREPARED: usize = 256;

/// Transactions on the file's one writing connection, opened on first use and again after any
/// transaction that did not end cleanly.
pub(super) struct SqliteWrites {
    file: PathBuf,
    /// The connection settings (lock wait, durability, page cache), run when it opens.
    pragmas: String,
    idle: Arc<Mutex<Option<Connection>>>,
}

impl SqliteWrites {
    pub fn new(file: PathBuf, pragmas: String) -> Self {
        Self {
            file,
            pragmas,
            idle: Arc::new(Mutex::new(None)),
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
}

impl Sessions for SqliteWrites {
    type Session = SqliteTx;

    /// `BEGIN IMMEDIATE`: the write lock is taken at once (waiting up to the busy timeout), so a
    /// transaction never fails half-way for a lock another process holds.
    async fn begin(&self) -> Result<SqliteTx, StoreError> {
        let idle = self
            .idle
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .take();
        let connection = match idle {
            Some(connection) => connection,
            None => self.open()?,
        };
        // A connection on which BEGIN fails is dropped (closed) here.
        connection.execute_batch("BEGIN IMMEDIATE")?;
        Ok(SqliteTx {
            connection: Some(connection),
            home: self.idle.clone(),
        })
    }
}

/// An open transaction on the writing connection; the connection goes back for the next one
/// only if this one ended cleanly, and is closed (rolling back) otherwise.
pub(super) struct SqliteTx {
    connection: Option<Connection>,
    home: Arc<Mutex<Option<Connection>>>,
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
        *self.home.lock().unwrap_or_else(PoisonError::into_inner) = Some(connection);
        Ok(())
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
