//! Bulk loads into an embedded SQLite file (seeding, importing) through a connection of their own.
//! sqlx's `Any` driver converts and copies every argument of its multi-row statements, which costs
//! more than SQLite spends storing the rows; here one prepared single-row `INSERT` per table (the
//! statement [`Dialect::insert`] renders, so there is still one builder) is bound by reference
//! row after row, in one transaction per call.

use std::path::{Path, PathBuf};

use rusqlite::types::{Null, ToSqlOutput};
use rusqlite::{CachedStatement, Connection, OpenFlags, Statement, TransactionBehavior};

use super::apply::new_etag;
use super::sql::{Dialect, NewRow};
use super::{LoadKind, StoreError};
use crate::model::Deployment;
use crate::model::{AUTOPILOT_EVENT, Entity, EntitySchema, POLICY_STATUS_DETAIL, Value};

/// A writing connection to one SQLite file, opened on first use.
pub struct SqliteBulkLoader {
    file: PathBuf,
    connection: Option<Connection>,
}

impl SqliteBulkLoader {
    pub fn new(file: &Path) -> Self {
        Self {
            file: file.to_path_buf(),
            connection: None,
        }
    }

    fn connection(&mut self) -> Result<&mut Connection, StoreError> {
        if self.connection.is_none() {
            let connection = Connection::open_with_flags(
                &self.file,
                OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX,
            )
            .map_err(internal)?;
            // A server on the same file may hold the write lock for a moment. Commits of a load
            // are made durable by the checkpoint that ends it (Store::checkpoint).
            connection
                .busy_timeout(std::time::Duration::from_secs(10))
                .map_err(internal)?;
            // A large page cache: an upsert keeps the unique key indexes, whose random inserts
            // otherwise re-read their pages from the OS at every step.
            connection
                .execute_batch("PRAGMA synchronous = NORMAL; PRAGMA cache_size = -262144;")
                .map_err(internal)?;
            self.connection = Some(connection);
        }
        Ok(self.connection.as_mut().expect("opened above"))
    }

    /// Loads the events and their details in one transaction (see [`LoadKind`]). After any
    /// failure the connection is closed (rolling back whatever SQLite had not), and the next
    /// load opens a fresh one.
    pub fn load(
        &mut self,
        tenant: &str,
        deployments: &[Deployment],
        kind: LoadKind,
    ) -> Result<(), StoreError> {
        let loaded = self.load_in_one_transaction(tenant, deployments, kind);
        if loaded.is_err() {
            self.connection = None;
        }
        loaded
    }

    fn load_in_one_transaction(
        &mut self,
        tenant: &str,
        deployments: &[Deployment],
        kind: LoadKind,
    ) -> Result<(), StoreError> {
        let Some(first) = deployments.first() else {
            return Ok(());
        };
        let connection = self.connection()?;
        let transaction = connection
            .transaction_with_behavior(TransactionBehavior::Immediate)
            .map_err(internal)?;
        {
            if kind == LoadKind::Upsert {
                // An imported event's details replace those stored with it.
                let (sql, _) = Dialect::Sqlite.delete_details_of_events(tenant, &[""]);
                let mut delete = transaction.prepare_cached(&sql).map_err(internal)?;
                for deployment in deployments {
                    delete
                        .execute((tenant, deployment.event.id.as_str()))
                        .map_err(internal)?;
                }
            }
            let mut events = prepare(
                &transaction,
                tenant,
                &AUTOPILOT_EVENT,
                None,
                &first.event,
                kind,
            )?;
            for deployment in deployments {
                execute(&mut events, tenant, None, &deployment.event)?;
            }
            let mut with_details = deployments.iter().filter(|d| !d.details.is_empty());
            if let Some(sample) = with_details.next() {
                let parent = Some(sample.event.id.as_str());
                let mut details = prepare(
                    &transaction,
                    tenant,
                    &POLICY_STATUS_DETAIL,
                    parent,
                    &sample.details[0],
                    kind,
                )?;
                for deployment in deployments {
                    for detail in &deployment.details {
                        execute(&mut details, tenant, Some(&deployment.event.id), detail)?;
                    }
                }
            }
        }
        transaction.commit().map_err(internal)
    }
}

/// The single-row `INSERT` (or upsert) for `schema`, rendered from a sample row (every value is a
/// parameter, so the text is the same for every row).
fn prepare<'c>(
    connection: &'c Connection,
    tenant: &str,
    schema: &EntitySchema,
    parent_event_id: Option<&str>,
    sample: &Entity,
    kind: LoadKind,
) -> Result<CachedStatement<'c>, StoreError> {
    let row = NewRow {
        parent_event_id,
        entity: sample,
        etag: "",
    };
    let (sql, _) = match kind {
        LoadKind::Insert => Dialect::Sqlite.insert(tenant, schema, &[row]),
        LoadKind::Upsert => Dialect::Sqlite.upsert(tenant, schema, &[row]),
    };
    connection.prepare_cached(&sql).map_err(internal)
}

/// Binds one row in the column order of [`Dialect::insert`]: tenant, parent event, id, ETag, then
/// the properties.
fn execute(
    statement: &mut Statement<'_>,
    tenant: &str,
    parent_event_id: Option<&str>,
    entity: &Entity,
) -> Result<(), StoreError> {
    let etag = new_etag();
    let mut position = 0;
    let mut bind = |value: ToSqlOutput<'_>| {
        position += 1;
        statement.raw_bind_parameter(position, value)
    };
    bind(tenant.into()).map_err(internal)?;
    if let Some(parent) = parent_event_id {
        bind(parent.into()).map_err(internal)?;
    }
    bind(entity.id.as_str().into()).map_err(internal)?;
    bind(etag.as_str().into()).map_err(internal)?;
    for value in &entity.values {
        bind(sqlite_value(value)).map_err(internal)?;
    }
    statement.raw_execute().map_err(internal)?;
    Ok(())
}

/// A value as SQLite stores it: ticks and enum members as integers, booleans as 0 or 1.
fn sqlite_value(value: &Value) -> ToSqlOutput<'_> {
    match value {
        Value::Null => ToSqlOutput::from(Null),
        Value::String(text) => ToSqlOutput::from(text.as_str()),
        Value::DateTimeOffset(instant) => ToSqlOutput::from(instant.ticks()),
        Value::Duration(span) => ToSqlOutput::from(span.ticks()),
        Value::Int32(number) => ToSqlOutput::from(i64::from(*number)),
        Value::Boolean(flag) => ToSqlOutput::from(i64::from(*flag)),
        Value::Enum(underlying) => ToSqlOutput::from(*underlying),
    }
}

/// A failure of the load, classified (a full disk is `Full`, a locked or read-only file
/// `Unavailable`).
fn internal(error: rusqlite::Error) -> StoreError {
    StoreError::classified(anyhow::Error::new(error).context("bulk load into SQLite"))
}
