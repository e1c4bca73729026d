//! The embedded file's read connections through SQLite's own driver (rusqlite): statements are
//! prepared once per connection and kept; a short read runs on the async worker that asked for
//! it, a long one on a blocking thread.
//!
//! sqlx's SQLite driver sends every row from its connection's thread to the caller through a
//! channel and converts every column for the `Any` driver; on a page of 50 that was most of the
//! CPU (docs/performance.md). Here a short read costs no hop at all, a long one a single hop.

use std::path::PathBuf;
use std::sync::atomic::{AtomicI32, Ordering};
use std::sync::{Arc, Mutex};

use rusqlite::{Connection, OpenFlags};

use super::{ACQUIRE_TIMEOUT, READER_LOCK_WAIT_MS, StoreError};

/// Statements kept prepared per connection (a page's text varies with its filter's shape).
const PREPARED_PER_CONNECTION: usize = 128;

pub(super) struct SqliteReaders {
    file: PathBuf,
    cache_mib: u32,
    idle: Mutex<Vec<Reader>>,
    slots: Arc<tokio::sync::Semaphore>,
}

/// How often (in SQLite virtual machine instructions) a read's budget is checked.
const STEPS_PER_CHECK: i32 = 1_000;
/// Checks a read may use on the async worker that asked for it (about 50,000 instructions,
/// a tenth of a millisecond or so: a page of keys takes a few thousand) before it is stopped and
/// run again on a blocking thread, so a slow statement never holds up the worker's other tasks.
const INLINE_CHECKS: i32 = 50;

/// A pooled connection and the budget its progress handler counts down.
struct Reader {
    connection: Connection,
    budget: Arc<AtomicI32>,
}

/// Where a running read's interrupt handle waits for a caller that gives up (the request's
/// deadline): taken by the read when it ends, so an interrupt never reaches a later read.
type Interrupt = Arc<Mutex<Option<rusqlite::InterruptHandle>>>;

/// Interrupts the read it guards if dropped before the read ended.
struct InterruptOnDrop(Interrupt);

impl Drop for InterruptOnDrop {
    fn drop(&mut self) {
        if let Some(handle) = lock(&self.0).take() {
            handle.interrupt();
        }
    }
}

fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner)
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

    fn open(&self) -> Result<Reader, StoreError> {
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
        let budget = Arc::new(AtomicI32::new(i32::MAX));
        let counter = budget.clone();
        // Returning true interrupts the statement.
        connection.progress_handler(
            STEPS_PER_CHECK,
            Some(move || counter.fetch_sub(1, Ordering::Relaxed) <= 0),
        )?;
        Ok(Reader { connection, budget })
    }

    fn take(&self) -> Result<Reader, StoreError> {
        match lock(&self.idle).pop() {
            Some(reader) => Ok(reader),
            None => self.open(),
        }
    }

    /// Runs `work` on a pooled connection: first right here on the async worker within a small
    /// budget and without waiting for locks (most reads of Graph's hot paths fit; no thread hop
    /// at all), else, stopped at the budget or failed, again from the start on a blocking thread
    /// without either limit. Dropping the returned
    /// future there (the request's deadline) interrupts the statement. The connection goes back
    /// to the pool unless the work failed (then it is closed; the next read opens another).
    pub async fn read<T, F>(self: &Arc<Self>, work: F) -> Result<T, StoreError>
    where
        T: Send + 'static,
        F: Fn(&Connection) -> Result<T, StoreError> + Send + Sync + 'static,
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
        let reader = self.take()?;
        // Never wait for a lock here: a file another process holds would stall the worker for
        // the whole lock wait. Any failure is judged again on the blocking thread, which waits.
        reader.connection.busy_timeout(std::time::Duration::ZERO)?;
        reader.budget.store(INLINE_CHECKS, Ordering::Relaxed);
        let inline = work(&reader.connection);
        let over_budget = reader.budget.load(Ordering::Relaxed) < 0;
        reader.budget.store(i32::MAX, Ordering::Relaxed);
        if !over_budget && inline.is_ok() {
            lock(&self.idle).push(reader);
            return inline;
        }
        reader
            .connection
            .busy_timeout(std::time::Duration::from_millis(u64::from(
                READER_LOCK_WAIT_MS,
            )))?;
        let interrupt: Interrupt = Arc::default();
        let guard = InterruptOnDrop(interrupt.clone());
        let readers = self.clone();
        let result = tokio::task::spawn_blocking(move || {
            let _permit = permit;
            *lock(&interrupt) = Some(reader.connection.get_interrupt_handle());
            let result = work(&reader.connection);
            lock(&interrupt).take();
            if result.is_ok() {
                lock(&readers.idle).push(reader);
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
        lock(&self.idle).clear();
    }
}
