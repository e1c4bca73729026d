//! What a store operation can fail with, and how a failure of the database or the disk beneath it
//! is classified: full storage and an unreachable or unwritable database are told apart from bugs.

use std::io;

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("not found")]
    NotFound,
    #[error("the entity's ETag does not match If-Match")]
    PreconditionFailed,
    /// The database cannot be reached or cannot take writes right now (stopped, restarting,
    /// read-only, locked past the deadline). Nothing of the operation was changed.
    #[error("the database is unavailable: {0:#}")]
    Unavailable(anyhow::Error),
    /// The storage under the database is full. Nothing of the operation was changed.
    #[error("the storage is full: {0:#}")]
    Full(anyhow::Error),
    /// The deadline passed while the write's commit was under way (a stalled disk): it may yet
    /// commit, or not.
    #[error("the outcome is unknown: {0:#}")]
    OutcomeUnknown(anyhow::Error),
    #[error(transparent)]
    Internal(anyhow::Error),
}

/// The kind of failure an error is, for deciding what to answer and whether to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum FailureKind {
    /// The disk (or the database's quota) is full.
    Full,
    /// The database is down, unreachable, read-only, shutting down or locked: it may pass.
    Unavailable,
    /// A deadlock or serialization conflict between writers: the same work may succeed again.
    Conflict,
    /// Anything else: a bug, a constraint, a malformed value.
    Other,
}

impl StoreError {
    /// Whether the failure lies in the world around graphpilot (full or unavailable storage), so
    /// the same request may succeed later.
    pub fn is_transient(&self) -> bool {
        matches!(self, StoreError::Unavailable(_) | StoreError::Full(_))
    }

    /// The error, classified by [`FailureKind`] of its cause.
    pub fn classified(error: anyhow::Error) -> StoreError {
        match kind_of_any(&error) {
            FailureKind::Full => StoreError::Full(error),
            FailureKind::Unavailable => StoreError::Unavailable(error),
            FailureKind::Conflict | FailureKind::Other => StoreError::Internal(error),
        }
    }
}

impl From<sqlx::Error> for StoreError {
    fn from(error: sqlx::Error) -> Self {
        StoreError::classified(error.into())
    }
}

impl From<anyhow::Error> for StoreError {
    fn from(error: anyhow::Error) -> Self {
        StoreError::classified(error)
    }
}

impl From<rusqlite::Error> for StoreError {
    fn from(error: rusqlite::Error) -> Self {
        StoreError::classified(anyhow::Error::new(error))
    }
}

/// The kind of the first cause in `error`'s chain that says more than "other".
pub fn kind_of_any(error: &anyhow::Error) -> FailureKind {
    for cause in error.chain() {
        let kind = if let Some(error) = cause.downcast_ref::<sqlx::Error>() {
            kind_of(error)
        } else if let Some(error) = cause.downcast_ref::<rusqlite::Error>() {
            kind_of_rusqlite(error)
        } else if let Some(error) = cause.downcast_ref::<io::Error>() {
            kind_of_io(error)
        } else if let Some(error) = cause.downcast_ref::<StoreError>() {
            match error {
                StoreError::Full(_) => FailureKind::Full,
                StoreError::Unavailable(_) => FailureKind::Unavailable,
                _ => FailureKind::Other,
            }
        } else {
            FailureKind::Other
        };
        if kind != FailureKind::Other {
            return kind;
        }
    }
    FailureKind::Other
}

/// Classifies an sqlx error by the database's own code where there is one.
pub fn kind_of(error: &sqlx::Error) -> FailureKind {
    match error {
        sqlx::Error::Database(database) => match database.code() {
            Some(code) => match code.parse::<i32>() {
                // SQLite: the extended result code, whose low byte is the primary one.
                Ok(extended) => kind_of_sqlite_code(extended),
                Err(_) => kind_of_sqlstate(&code),
            },
            None => FailureKind::Other,
        },
        sqlx::Error::Io(error) => match kind_of_io(error) {
            FailureKind::Other => FailureKind::Unavailable,
            kind => kind,
        },
        sqlx::Error::Tls(_)
        | sqlx::Error::Protocol(_)
        | sqlx::Error::PoolTimedOut
        | sqlx::Error::PoolClosed
        | sqlx::Error::WorkerCrashed => FailureKind::Unavailable,
        _ => FailureKind::Other,
    }
}

/// SQLite's primary result codes (<https://sqlite.org/rescode.html>).
fn kind_of_sqlite_code(extended: i32) -> FailureKind {
    match extended & 0xff {
        13 => FailureKind::Full, // SQLITE_FULL
        // SQLITE_BUSY, SQLITE_LOCKED, SQLITE_READONLY, SQLITE_IOERR, SQLITE_CANTOPEN,
        // SQLITE_PROTOCOL: the file or its lock, not the request.
        5 | 6 | 8 | 10 | 14 | 15 => FailureKind::Unavailable,
        _ => FailureKind::Other,
    }
}

/// PostgreSQL's SQLSTATE classes (<https://www.postgresql.org/docs/current/errcodes-appendix.html>).
fn kind_of_sqlstate(code: &str) -> FailureKind {
    match code {
        // disk_full, out_of_memory is not "full storage" but insufficient_resources is close.
        "53100" => FailureKind::Full,
        "40001" | "40P01" => FailureKind::Conflict,
        // read_only_sql_transaction, lock_not_available, query_canceled (statement_timeout),
        // idle_in_transaction_session_timeout.
        "25006" | "55P03" | "57014" | "25P03" => FailureKind::Unavailable,
        // connection_exception, insufficient_resources, operator_intervention
        // (admin_shutdown, crash_shutdown, cannot_connect_now), system_error.
        _ if code.starts_with("08")
            || code.starts_with("53")
            || code.starts_with("57P")
            || code.starts_with("58") =>
        {
            FailureKind::Unavailable
        }
        _ => FailureKind::Other,
    }
}

fn kind_of_rusqlite(error: &rusqlite::Error) -> FailureKind {
    match error {
        rusqlite::Error::SqliteFailure(failure, _) => kind_of_sqlite_code(failure.extended_code),
        _ => FailureKind::Other,
    }
}

/// A file-system error: out of space (or quota), a read-only file system, or the rest.
pub fn kind_of_io(error: &io::Error) -> FailureKind {
    match error.kind() {
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded => FailureKind::Full,
        io::ErrorKind::ReadOnlyFilesystem
        | io::ErrorKind::ConnectionRefused
        | io::ErrorKind::ConnectionReset
        | io::ErrorKind::ConnectionAborted
        | io::ErrorKind::NotConnected
        | io::ErrorKind::BrokenPipe
        | io::ErrorKind::UnexpectedEof
        | io::ErrorKind::TimedOut => FailureKind::Unavailable,
        _ => FailureKind::Other,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sqlite_codes_are_classified_by_their_primary_code() {
        assert_eq!(kind_of_sqlite_code(13), FailureKind::Full);
        // SQLITE_IOERR_WRITE (778) and SQLITE_READONLY_DBMOVED (1032).
        assert_eq!(kind_of_sqlite_code(778), FailureKind::Unavailable);
        assert_eq!(kind_of_sqlite_code(1032), FailureKind::Unavailable);
        // SQLITE_CONSTRAINT_UNIQUE (2067) is a request's or a bug's, not the world's.
        assert_eq!(kind_of_sqlite_code(2067), FailureKind::Other);
    }

    #[test]
    fn postgres_states_are_classified_by_class() {
        assert_eq!(kind_of_sqlstate("53100"), FailureKind::Full);
        assert_eq!(kind_of_sqlstate("57P01"), FailureKind::Unavailable);
        assert_eq!(kind_of_sqlstate("08006"), FailureKind::Unavailable);
        assert_eq!(kind_of_sqlstate("40P01"), FailureKind::Conflict);
        assert_eq!(kind_of_sqlstate("23505"), FailureKind::Other);
    }

    #[test]
    fn a_full_disk_is_found_anywhere_in_the_cause_chain() {
        let error = anyhow::Error::new(io::Error::from(io::ErrorKind::StorageFull))
            .context("cannot write the signing key");
        assert!(matches!(StoreError::classified(error), StoreError::Full(_)));
        let plain = anyhow::anyhow!("a bug");
        assert!(matches!(
            StoreError::classified(plain),
            StoreError::Internal(_)
        ));
    }
}
