//! The embedded file's read connections through SQLite's own driver (rusqlite): statements are
//! prepared once per connection and kept, and a read runs start to finish on one blocking thread.
//!
//! sqlx's SQLite driver sends every row from its connection's thread to the caller through a
//! channel and converts every column for the `Any` driver; on a page of 50 that was most of the
//! CPU (docs/performance.md). Here a read costs one hop to a blocking thread, whatever it returns.

use std::path::PathBuf;
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::{ACQUIRE_TIMEOUT, READER_LOCK_WAIT_MS, StoreError};

/// Statements kept prepared per connection (a page's text varies with its filter's shape).
const PREPARED_PER_CONNECTION: usize = 128;

pub(super) struct SqliteReaders {
    file: PathBuf,
    cache_mib: u32,
    idle: Mutex<Vec<Connection>>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// Where a running read's interrupt handle waits for a caller that gives up (the request's
/// deadline): taken by the read when it ends, so an interrupt never reaches a later read.
type Interrupt = Arc<Mutex<Option<rusqlite::InterruptHandle>>>;

/// Interrupts the read it guards if dropped before the read ended.
struct InterruptOnDrop(Interrupt);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = self
            .0
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .take()
        {
            handle.interrupt();
        }
    }
}

impl SqliteReaders {
    pub fn new(file: PathBuf, connections: u32, cache_mib: u32) -> Self {
        Self {
            file,
            cache_mib,
            idle: Mutex::new(Vec::new()),
            slots: Arc::new(tokio::sync::Semaphore::new(connections.max(1) as usize)),
        }
    }

    fn open(&self) -> Result<Connection, StoreError> {
        let connection = Connection::open_with_flags(
            &self.file,
            OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
        )?;
        connection.busy_timeout(std::time::Duration::from_millis(u64::from(
            READER_LOCK_WAIT_MS,
        )))?;
        connection.execute_batch(&format!(
            "PRAGMA cache_size = -{}; PRAGMA temp_store = MEMORY; PRAGMA query_only = 1;",
            u64::from(self.cache_mib) * 1024
        ))?;
        connection.set_prepared_statement_cache_capacity(PREPARED_PER_CONNECTION);
        Ok(connection)
    }

    /// Runs `work` on a pooled connection on a blocking thread. Dropping the returned future
    /// (the request's deadline) interrupts the statement; the connection goes back to the pool
    /// either way, unless the work failed (then it is closed, and the next read opens another).
    pub async fn read<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: FnOnce(&Connection) -> Result<T, StoreError> + Send + 'static,
    {
        let permit = tokio::time::timeout(ACQUIRE_TIMEOUT, self.slots.clone().acquire_owned())
            .await
            .map_err(|_| {
                StoreError::Unavailable(anyhow::anyhow!(
                    "no read connection became free within {} s",
                    ACQUIRE_TIMEOUT.as_secs()
                ))
            })?
            .map_err(|_| StoreError::Internal(anyhow::anyhow!("the readers are closed")))?;
        let interrupt: Interrupt = Arc::default();
        let guard = InterruptOnDrop(interrupt.clone());
        let readers = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            let pooled = readers
                .idle
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .pop();
            let connection = match pooled {
                Some(connection) => connection,
                None => readers.open()?,
            };
            *interrupt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner) =
                Some(connection.get_interrupt_handle());
            let result = work(&connection);
            interrupt
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .take();
            if result.is_ok() {
                readers
                    .idle
                    .lock()
                    .unwrap_or_else(std::sync::PoisonError::into_inner)
                    .push(connection);
            }
            result
        })
        .await
        .map_err(|error| StoreError::Internal(anyhow::anyhow!("a read stopped: {error}")))?;
        drop(guard);
        result
    }

    /// Closes the idle connections (reads under way close theirs when they end).
    pub fn close(&self) {
        self.slots.close();
        self.idle
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
            .clear();
    }
}
