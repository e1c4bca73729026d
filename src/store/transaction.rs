//! Every transaction of the store: BEGIN, COMMIT and ROLLBACK sent as plain statements on a pooled
//! connection, which is closed (never reused) unless its transaction ended cleanly.
//!
//! Why not sqlx's own `Transaction`: its SQLite driver counts transaction depth itself. When
//! SQLite rolls a failed COMMIT back on its own (a full disk, an I/O error), the count stays
//! at one, the next `begin` becomes a SAVEPOINT, a failed statement's `ROLLBACK TO` leaves that
//! savepoint's transaction open, and every later "commit" only releases a nested savepoint
//! inside a transaction that is never committed: writes were acknowledged and lost. Here the
//! connection that saw any failure is thrown away, so the next transaction starts on a fresh one.

use sqlx::pool::PoolConnection;
use sqlx::{Any, AnyConnection, AnyPool};

use super::StoreError;
use super::sql::Dialect;

/// An open transaction on a connection of its own.
pub struct Tx {
    connection: PoolConnection<Any>,
    open: bool,
}

impl Tx {
    /// Takes a connection from `pool` and begins a transaction on it. SQLite's is `IMMEDIATE`:
    /// the write lock is taken at once (waiting up to the busy timeout), so a transaction never
    /// fails half-way for a lock another process holds.
    pub async fn begin(pool: &AnyPool, dialect: Dialect) -> Result<Tx, StoreError> {
        let connection = pool.acquire().await?;
        Self::begin_on(connection, dialect).await
    }

    /// Takes a connection from `pool` and begins a read-only snapshot on it: the statements of
    /// the transaction all see the database as of its first read (SQLite's deferred transaction
    /// in WAL mode; PostgreSQL's repeatable read). End it with [`Tx::rollback`].
    pub async fn begin_snapshot(pool: &AnyPool, dialect: Dialect) -> Result<Tx, StoreError> {
        let statement = match dialect {
            Dialect::Sqlite => "BEGIN",
            Dialect::Postgres => "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY",
        };
        Self::start(pool.acquire().await?, statement).await
    }

    /// [`Tx::begin`] on a connection already taken from its pool.
    pub async fn begin_on(
        connection: PoolConnection<Any>,
        dialect: Dialect,
    ) -> Result<Tx, StoreError> {
        let statement = match dialect {
            Dialect::Sqlite => "BEGIN IMMEDIATE",
            Dialect::Postgres => "BEGIN",
        };
        Self::start(connection, statement).await
    }

    /// Sends `begin` on the connection; a connection on which it fails is closed.
    async fn start(
        mut connection: PoolConnection<Any>,
        begin: &'static str,
    ) -> Result<Tx, StoreError> {
        if let Err(error) = sqlx::raw_sql(begin).execute(&mut *connection).await {
            // Whatever state the connection is in, it is not one to build on.
            connection.close_on_drop();
            return Err(error.into());
        }
        Ok(Tx {
            connection,
            open: true,
        })
    }

    /// The connection, for the transaction's statements.
    pub fn connection(&mut self) -> &mut AnyConnection {
        &mut self.connection
    }

    /// Commits. On success everything the transaction wrote is durable (as the connection's
    /// synchronous setting defines it); on failure the connection is closed, which rolls back
    /// whatever SQLite or PostgreSQL had not already rolled back.
    pub async fn commit(mut self) -> Result<(), StoreError> {
        match sqlx::raw_sql("COMMIT").execute(&mut *self.connection).await {
            Ok(_) => {
                self.open = false;
                Ok(())
            }
            Err(error) => Err(error.into()),
        }
    }

    /// Rolls back; the connection goes back to the pool only if that succeeded.
    pub async fn rollback(mut self) {
        if sqlx::raw_sql("ROLLBACK")
            .execute(&mut *self.connection)
            .await
            .is_ok()
        {
            self.open = false;
        }
    }
}

impl Drop for Tx {
    fn drop(&mut self) {
        if self.open {
            // Not committed nor cleanly rolled back (a failure, or a dropped future): closing
            // the connection ends the transaction without ever committing it.
            self.connection.close_on_drop();
        }
    }
}
