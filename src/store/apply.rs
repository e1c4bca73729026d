//! A validated write ([`WriteOp`]) and how it is applied inside the writer's transaction: creates,
//! conditional updates and deletes (judged on the version read, so racing writers never both
//! win), bulk inserts, and the lock order every writer follows.

use std::sync::Arc;

use tokio::sync::mpsc;

use super::bound::Bound;
use super::cache::EntityCache;
use super::session::Session;
use super::sql::{Dialect, NewRow, Target};
use super::{LoadKind, StoreError, StoredEntity};
use crate::model::{
    AUTOPILOT_EVENT, Deployment, Entity, EntitySchema, POLICY_STATUS_DETAIL, PatchBody,
};

/// Rows per multi-row INSERT of a bulk load: under SQLite's 32,766 bound parameters.
const BULK_ROWS: usize = 500;

/// A validated write, ready to apply.
#[derive(Debug)]
pub enum WriteOp {
    CreateEvent {
        tenant: String,
        event: Entity,
        details: Vec<Entity>,
    },
    CreateDetail {
        tenant: String,
        event_id: String,
        detail: Entity,
    },
    Update {
        tenant: String,
        target: Target,
        patch: PatchBody,
        if_match: Option<Precondition>,
    },
    Delete {
        tenant: String,
        target: Target,
        if_match: Option<Precondition>,
    },
    /// Many new events with their details, in one transaction (seed and import).
    Bulk {
        tenant: String,
        deployments: Arc<Vec<Deployment>>,
        kind: LoadKind,
    },
}

/// The rows a write locks, as a sortable key: an event before its details.
pub(super) fn lock_key(op: &WriteOp) -> (String, String, String) {
    let key = |tenant: &str, event: &str, detail: &str| {
        (tenant.to_string(), event.to_string(), detail.to_string())
    };
    match op {
        WriteOp::CreateEvent { tenant, event, .. } => key(tenant, &event.id, ""),
        WriteOp::CreateDetail {
            tenant,
            event_id,
            detail,
        } => key(tenant, event_id, &detail.id),
        WriteOp::Update { tenant, target, .. } | WriteOp::Delete { tenant, target, .. } => {
            match target {
                Target::Event { id } => key(tenant, id, ""),
                Target::Detail { event_id, id } => key(tenant, event_id, id),
            }
        }
        WriteOp::Bulk { .. } => key("", "", ""),
    }
}

/// What a committed write leaves: the entity as stored (creates and updates; for deletes, the
/// version removed), or for a bulk load how many events it wrote.
#[derive(Debug)]
pub enum Written {
    Entity(StoredEntity),
    Rows { events: usize },
}

impl Written {
    /// The stored entity of an entity write.
    pub fn into_entity(self) -> Result<StoredEntity, StoreError> {
        match self {
            Written::Entity(stored) => Ok(stored),
            Written::Rows { .. } => Err(StoreError::Internal(anyhow::anyhow!(
                "a bulk load answered where an entity write was expected"
            ))),
        }
    }
}

pub(super) async fn apply(
    dialect: Dialect,
    connection: &mut impl Session,
    cache: Option<&EntityCache>,
    op: &WriteOp,
) -> Result<Written, StoreError> {
    match op {
        WriteOp::CreateEvent {
            tenant,
            event,
            details,
        } => {
            let etag =
                insert_one(dialect, connection, tenant, &AUTOPILOT_EVENT, None, event).await?;
            insert_details(dialect, connection, tenant, &event.id, details).await?;
            Ok(Written::Entity(StoredEntity {
                etag,
                body: event.to_json(&AUTOPILOT_EVENT).into(),
            }))
        }
        WriteOp::CreateDetail {
            tenant,
            event_id,
            detail,
        } => {
            let parent = Target::Event {
                id: event_id.clone(),
            };
            select_one(dialect, connection, tenant, &parent).await?;
            let etag = insert_one(
                dialect,
                connection,
                tenant,
                &POLICY_STATUS_DETAIL,
                Some(event_id),
                detail,
            )
            .await?;
            Ok(Written::Entity(StoredEntity {
                etag,
                body: detail.to_json(&POLICY_STATUS_DETAIL).into(),
            }))
        }
        WriteOp::Update {
            tenant,
            target,
            patch,
            if_match,
        } => {
            let schema = target.schema();
            // Without If-Match the patch applies to whatever version is current: one statement,
            // which also returns the entity as it now is.
            let Some(if_match) = if_match else {
                let statement = dialect.update(tenant, target, &patch.changes, None, &new_etag());
                return match connection.stored(statement.into(), schema).await? {
                    Some(stored) => Ok(Written::Entity(stored)),
                    None => Err(StoreError::NotFound),
                };
            };
            for attempt in 0..10 {
                // The cached version saves a read; if it is stale the conditional UPDATE below
                // changes nothing and the next attempt reads the row.
                let cached = cache
                    .filter(|_| attempt == 0)
                    .and_then(|c| c.get(tenant, target));
                let from_cache = cached.is_some();
                let current = match cached {
                    Some(current) => current,
                    None => select_one(dialect, connection, tenant, target).await?,
                };
                if let Err(failed) = check_precondition(Some(if_match), &current.etag) {
                    // Only the database's version may refuse a precondition.
                    if from_cache {
                        continue;
                    }
                    return Err(failed);
                }
                let statement = dialect.update(
                    tenant,
                    target,
                    &patch.changes,
                    Some(&current.etag),
                    &new_etag(),
                );
                if let Some(stored) = connection.stored(statement.into(), schema).await? {
                    return Ok(Written::Entity(stored));
                }
                // Changed (or deleted) since that version was read, by another node.
                if !from_cache {
                    return Err(StoreError::PreconditionFailed);
                }
            }
            Err(StoreError::Internal(anyhow::anyhow!(
                "the entity kept changing under ten consecutive attempts to update it"
            )))
        }
        WriteOp::Delete {
            tenant,
            target,
            if_match,
        } => {
            // The DELETE is conditional on the version read, as an update is: on PostgreSQL
            // another writer may change or delete the row in between, and then the answer is
            // judged again on the row as it is now (404 once it is gone, 412 once it changed
            // under an If-Match), so of two racing writes with one ETag only one wins.
            for _ in 0..10 {
                let current = select_one(dialect, connection, tenant, target).await?;
                check_precondition(if_match.as_ref(), &current.etag)?;
                // The event row first, then its details: the lock order every writer follows.
                let (statement, values) = dialect.delete(tenant, target, &current.etag);
                if connection.execute((statement, values).into()).await? == 0 {
                    continue;
                }
                if let Target::Event { id } = target {
                    connection
                        .execute(dialect.delete_details_of(tenant, id).into())
                        .await?;
                }
                return Ok(Written::Entity(current));
            }
            Err(StoreError::Internal(anyhow::anyhow!(
                "the entity kept changing under ten consecutive attempts to delete it"
            )))
        }
        WriteOp::Bulk {
            tenant,
            deployments,
            kind,
        } => {
            bulk_insert(dialect, connection, tenant, deployments, *kind).await?;
            Ok(Written::Rows {
                events: deployments.len(),
            })
        }
    }
}

/// Inserts many events and their details with multi-row statements. The statements are built
/// on a blocking thread while the previous one executes, so building and SQLite overlap.
pub(super) async fn bulk_insert(
    dialect: Dialect,
    connection: &mut impl Session,
    tenant: &str,
    deployments: &Arc<Vec<Deployment>>,
    kind: LoadKind,
) -> Result<(), StoreError> {
    let (statements, mut ready) = mpsc::channel::<Bound>(2);
    let builder = {
        let deployments = deployments.clone();
        let tenant = tenant.to_string();
        tokio::task::spawn_blocking(move || {
            build_bulk_statements(dialect, &tenant, &deployments, kind, &statements)
        })
    };
    while let Some(statement) = ready.recv().await {
        connection.execute(statement).await?;
    }
    builder
        .await
        .map_err(|error| anyhow::anyhow!("the bulk statement builder failed: {error}"))?;
    Ok(())
}

/// Sends the INSERT statements of a bulk load, events first; stops early if nobody listens.
fn build_bulk_statements(
    dialect: Dialect,
    tenant: &str,
    deployments: &[Deployment],
    kind: LoadKind,
    statements: &mpsc::Sender<Bound>,
) {
    let send = |statement: (String, sea_query::Values)| statements.blocking_send(statement.into());
    let rows_statement = |schema, rows: &[NewRow<'_>]| match kind {
        LoadKind::Insert => dialect.insert(tenant, schema, rows),
        LoadKind::Upsert => dialect.upsert(tenant, schema, rows),
    };
    if kind == LoadKind::Upsert {
        for chunk in deployments.chunks(BULK_ROWS) {
            let ids: Vec<&str> = chunk.iter().map(|d| d.event.id.as_str()).collect();
            if send(dialect.delete_details_of_events(tenant, &ids)).is_err() {
                return;
            }
        }
    }
    for chunk in deployments.chunks(BULK_ROWS) {
        let etags: Vec<String> = chunk.iter().map(|_| new_etag()).collect();
        let rows: Vec<NewRow> = chunk
            .iter()
            .zip(&etags)
            .map(|(deployment, etag)| NewRow {
                parent_event_id: None,
                entity: &deployment.event,
                etag,
            })
            .collect();
        if send(rows_statement(&AUTOPILOT_EVENT, &rows)).is_err() {
            return;
        }
    }
    let details: Vec<(&str, &Entity)> = deployments
        .iter()
        .flat_map(|d| {
            d.details
                .iter()
                .map(move |detail| (d.event.id.as_str(), detail))
        })
        .collect();
    for chunk in details.chunks(BULK_ROWS * 2) {
        let etags: Vec<String> = chunk.iter().map(|_| new_etag()).collect();
        let rows: Vec<NewRow> = chunk
            .iter()
            .zip(&etags)
            .map(|((event_id, detail), etag)| NewRow {
                parent_event_id: Some(event_id),
                entity: detail,
                etag,
            })
            .collect();
        if send(rows_statement(&POLICY_STATUS_DETAIL, &rows)).is_err() {
            return;
        }
    }
}

/// Inserts one new entity with a fresh ETag, which it returns.
async fn insert_one(
    dialect: Dialect,
    connection: &mut impl Session,
    tenant: &str,
    schema: &EntitySchema,
    parent_event_id: Option<&str>,
    entity: &Entity,
) -> Result<String, StoreError> {
    let etag = new_etag();
    let row = NewRow {
        parent_event_id,
        entity,
        etag: &etag,
    };
    connection
        .execute(dialect.insert(tenant, schema, &[row]).into())
        .await?;
    Ok(etag)
}

/// Inserts the details of one new event.
async fn insert_details(
    dialect: Dialect,
    connection: &mut impl Session,
    tenant: &str,
    event_id: &str,
    details: &[Entity],
) -> Result<(), StoreError> {
    if details.is_empty() {
        return Ok(());
    }
    let etags: Vec<String> = details.iter().map(|_| new_etag()).collect();
    let rows: Vec<NewRow> = details
        .iter()
        .zip(&etags)
        .map(|(detail, etag)| NewRow {
            parent_event_id: Some(event_id),
            entity: detail,
            etag,
        })
        .collect();
    for chunk in rows.chunks(BULK_ROWS * 2) {
        connection
            .execute(dialect.insert(tenant, &POLICY_STATUS_DETAIL, chunk).into())
            .await?;
    }
    Ok(())
}

pub(super) async fn select_one(
    dialect: Dialect,
    connection: &mut impl Session,
    tenant: &str,
    target: &Target,
) -> Result<StoredEntity, StoreError> {
    connection
        .stored(dialect.select_one(tenant, target).into(), target.schema())
        .await?
        .ok_or(StoreError::NotFound)
}

/// What an `If-Match` header asks of the stored version (RFC 9110 §13.1.1), parsed by the HTTP
/// layer: any existing version (`*`), or one of the listed entity tags. Tags compare by their
/// opaque part, so a weak and a strong form of one tag match (as Graph's do).
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Precondition {
    AnyVersion,
    OneOf(Vec<String>),
}

impl Precondition {
    fn holds(&self, current: &str) -> bool {
        match self {
            Precondition::AnyVersion => true,
            Precondition::OneOf(tags) => tags.iter().any(|tag| opaque(tag) == opaque(current)),
        }
    }
}

fn opaque(tag: &str) -> &str {
    tag.trim().trim_start_matches("W/")
}

fn check_precondition(if_match: Option<&Precondition>, current: &str) -> Result<(), StoreError> {
    match if_match {
        Some(precondition) if !precondition.holds(current) => Err(StoreError::PreconditionFailed),
        _ => Ok(()),
    }
}

/// A fresh weak entity tag.
pub(super) fn new_etag() -> String {
    format!("W/\"{:016x}\"", rand::random::<u64>())
}
