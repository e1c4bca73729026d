//! Reads and writes of events and policy status details: by key (through the entity cache on
//! embedded SQLite), pages, counts, and the writes the group-commit writer applies.

use sqlx::Row;

use super::apply::{Precondition, WriteOp, Written};
use super::rows::read_scalar;
use super::sql::{Collection, Listing, SortKeys, Target, sort_keys};
use super::{PageRow, Store, StoreError, StoredEntity};
use crate::model::{Entity, PatchBody};
use crate::odata::{Predicate, Scalar};

/// The entity cache's hit and miss counters, registered once (a registry lookup per GET cost
/// about a tenth of a cached GET).
static CACHE_HITS: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
static CACHE_MISSES: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();

fn cache_counter(
    slot: &'static std::sync::OnceLock<metrics::Counter>,
    result: &'static str,
) -> &'static metrics::Counter {
    slot.get_or_init(|| metrics::counter!("graphpilot_entity_cache_total", "result" => result))
}

impl Store {
    pub async fn get(&self, tenant: &str, target: &Target) -> Result<StoredEntity, StoreError> {
        let generation = match self.cache() {
            Some(cache) => match cache.get(tenant, target) {
                Some(entity) => {
                    cache_counter(&CACHE_HITS, "hit").increment(1);
                    return Ok(entity);
                }
                None => {
                    cache_counter(&CACHE_MISSES, "miss").increment(1);
                    Some(cache.generation())
                }
            },
            None => None,
        };
        let (sql, values) = self.dialect.select_one(tenant, target);
        let row = self
            .read_optional_row((sql, values))
            .await?
            .ok_or(StoreError::NotFound)?;
        let entity = StoredEntity::from_row(&row, 0, target.schema())?;
        if let (Some(cache), Some(generation)) = (self.cache(), generation) {
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
        let rows = self.read_rows((statement, values)).await?;
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
        let row = self.read_row((statement, values)).await?;
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
        let rows = self.read_rows((statement, values)).await?;
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
        .and_then(Written::into_entity)
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
        .and_then(Written::into_entity)
    }

    /// Applies a PATCH atomically: read, change, write, all inside the writer's transaction.
    pub async fn update(
        &self,
        tenant: &str,
        target: Target,
        patch: PatchBody,
        if_match: Option<Precondition>,
    ) -> Result<StoredEntity, StoreError> {
        self.write(WriteOp::Update {
            tenant: tenant.to_string(),
            target,
            patch,
            if_match,
        })
        .await
        .and_then(Written::into_entity)
    }

    /// Deletes an entity (an event takes its details with it).
    pub async fn delete(
        &self,
        tenant: &str,
        target: Target,
        if_match: Option<Precondition>,
    ) -> Result<(), StoreError> {
        self.write(WriteOp::Delete {
            tenant: tenant.to_string(),
            target,
            if_match,
        })
        .await
        .map(drop)
    }
}
