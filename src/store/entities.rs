//! Reads and writes of events and policy status details: by key (through the entity cache on
//! embedded SQLite), pages, counts, and the writes the group-commit writer applies.

use super::apply::{Precondition, WriteOp, Written};
use super::reads::{Decode, Integer};
use super::rows::{Cells, read_scalar};
use super::sql::{Collection, Listing, SortKeys, Target, sort_keys};
use super::{PageRow, Store, StoreError, StoredEntity};
use crate::model::{Entity, EntitySchema, PatchBody};
use crate::odata::{Predicate, Scalar};

/// The entity cache's hit and miss counters, registered once (a registry lookup per GET cost
/// about a tenth of a cached GET).
static CACHE_HITS: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
static CACHE_MISSES: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
static PAGE_HITS: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();
static PAGE_MISSES: std::sync::OnceLock<metrics::Counter> = std::sync::OnceLock::new();

fn cache_counter(
    slot: &'static std::sync::OnceLock<metrics::Counter>,
    result: &'static str,
) -> &'static metrics::Counter {
    slot.get_or_init(|| metrics::counter!("graphpilot_entity_cache_total", "result" => result))
}

/// The cache's generation when a page began to be read ([`Store::page_snapshot`]).
#[derive(Clone, Copy, Debug)]
pub struct PageSnapshot(u64);

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
        let entity = self
            .read_decoded_one(
                self.dialect.select_one(tenant, target),
                Entities {
                    schema: target.schema(),
                    first: 0,
                },
            )
            .await?
            .ok_or(StoreError::NotFound)?;
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

    /// One page of a collection (see [`Listing`]). On an embedded file, a page of events reads
    /// only keys and splices the entity cache's JSON when it can ([`Store::page_from_cache`]).
    pub async fn page(
        &self,
        tenant: &str,
        listing: &Listing<'_>,
    ) -> Result<Vec<PageRow>, StoreError> {
        if let (Some(cache), Collection::Events) = (self.cache(), listing.collection)
            && let Some(rows) = self.page_from_cache(cache, tenant, listing).await?
        {
            return Ok(rows);
        }
        let schema = listing.collection.schema();
        let decoder = Pages {
            schema,
            keys: sort_keys(listing.order),
            // seq, then the entity columns, then the sort columns.
            sort_columns_start: 1 + 2 + schema.properties.len(),
        };
        self.read_decoded(self.dialect.select_page(tenant, listing), decoder)
            .await
    }

    /// The body rendered earlier for this very request (`request` names everything the body is a
    /// function of besides the data), if nothing was committed since: embedded SQLite only,
    /// where this process sees every commit (others' within the cache's poll).
    pub fn ready_page(&self, tenant: &str, request: &str) -> Option<bytes::Bytes> {
        let page = self.cache()?.page(tenant, request);
        match &page {
            Some(_) => cache_counter(&PAGE_HITS, "page_hit"),
            None => cache_counter(&PAGE_MISSES, "page_miss"),
        }
        .increment(1);
        page
    }

    /// Noted before a page's first read, for [`Store::keep_page`]; `None` when there is nothing
    /// to keep pages in or a commit is under way.
    pub fn page_snapshot(&self) -> Option<PageSnapshot> {
        self.cache()?.quiet_generation().map(PageSnapshot)
    }

    /// Keeps a rendered page for [`Store::ready_page`], unless a commit began or ended since
    /// `snapshot` (then the body may mix versions and is not kept).
    pub fn keep_page(
        &self,
        tenant: &str,
        request: &str,
        snapshot: PageSnapshot,
        body: bytes::Bytes,
    ) {
        if let Some(cache) = self.cache() {
            cache.keep_page(tenant, request, snapshot.0, body);
        }
    }

    /// A page of events from the cache: keys and cursors read first (often from an index
    /// alone), then the entities the cache lacks by id, filled in for the next page. Only when no
    /// commit began or ended from the first read to the last (the cache's generation, moved at
    /// both ends of every commit): then every version spliced is the one the key read saw.
    /// `None`: a commit got in the way; the caller reads the page whole.
    async fn page_from_cache(
        &self,
        cache: &super::cache::EntityCache,
        tenant: &str,
        listing: &Listing<'_>,
    ) -> Result<Option<Vec<PageRow>>, StoreError> {
        let Some(seen) = cache.quiet_generation() else {
            return Ok(None);
        };
        let decoder = PageKeys {
            keys: sort_keys(listing.order),
        };
        let keys = self
            .read_decoded(self.dialect.select_page_keys(tenant, listing), decoder)
            .await?;
        let ids: Vec<&str> = keys.iter().map(|(id, _)| id.as_str()).collect();
        let Some(mut cached) = cache.events(tenant, &ids, seen) else {
            return Ok(None);
        };
        let missing: Vec<&str> = ids
            .iter()
            .zip(&cached)
            .filter(|(_, entity)| entity.is_none())
            .map(|(id, _)| *id)
            .collect();
        if !missing.is_empty() {
            let schema = &crate::model::AUTOPILOT_EVENT;
            let read = self
                .read_decoded(
                    self.dialect.select_events(tenant, &missing),
                    IdentifiedEntities { schema },
                )
                .await?;
            let mut read: std::collections::HashMap<String, StoredEntity> =
                read.into_iter().collect();
            for (id, slot) in ids.iter().zip(cached.iter_mut()) {
                if slot.is_none() {
                    let Some(entity) = read.remove(*id) else {
                        // Deleted by another process since the keys were read.
                        return Ok(None);
                    };
                    let target = Target::Event { id: id.to_string() };
                    cache.fill(tenant, &target, seen, &entity);
                    *slot = Some(entity);
                }
            }
        }
        if !cache.unchanged_since(seen) {
            return Ok(None);
        }
        Ok(Some(
            keys.into_iter()
                .zip(cached)
                .map(|((id, cursor), entity)| PageRow {
                    id,
                    cursor,
                    entity: entity.expect("every slot filled above"),
                })
                .collect(),
        ))
    }

    pub async fn count(
        &self,
        tenant: &str,
        collection: &Collection,
        filter: Option<&Predicate>,
    ) -> Result<i64, StoreError> {
        let statement = self.dialect.count(tenant, collection, filter);
        Ok(self
            .read_decoded_one(statement, Integer)
            .await?
            .unwrap_or(0))
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
        self.read_decoded(self.dialect.details_of(tenant, event_ids), Details)
            .await
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

/// Rows of [`sql::entity_columns`] from `first` on, as stored entities.
struct Entities {
    schema: &'static EntitySchema,
    first: usize,
}

impl Decode for Entities {
    type Out = StoredEntity;
    fn decode(&self, row: &impl Cells) -> Result<StoredEntity, StoreError> {
        StoredEntity::from_row(row, self.first, self.schema)
    }
}

/// Rows of [`Dialect::select_page`]: seq, the entity, then the sort columns (the cursor).
struct Pages {
    schema: &'static EntitySchema,
    keys: SortKeys,
    sort_columns_start: usize,
}

impl Decode for Pages {
    type Out = PageRow;
    fn decode(&self, row: &impl Cells) -> Result<PageRow, StoreError> {
        let cursor = cursor_of(row, &self.keys, self.sort_columns_start)?;
        let entity = StoredEntity::from_row(row, 1, self.schema)?;
        Ok(PageRow {
            id: entity_id(row, 1)?,
            cursor,
            entity,
        })
    }
}

/// Rows of [`Dialect::select_page_keys`]: seq, id, then the sort columns (the cursor).
struct PageKeys {
    keys: SortKeys,
}

impl Decode for PageKeys {
    type Out = (String, Vec<Scalar>);
    fn decode(&self, row: &impl Cells) -> Result<(String, Vec<Scalar>), StoreError> {
        Ok((entity_id(row, 1)?, cursor_of(row, &self.keys, 2)?))
    }
}

/// Rows of [`sql::entity_columns`], each with its id.
struct IdentifiedEntities {
    schema: &'static EntitySchema,
}

impl Decode for IdentifiedEntities {
    type Out = (String, StoredEntity);
    fn decode(&self, row: &impl Cells) -> Result<(String, StoredEntity), StoreError> {
        Ok((
            entity_id(row, 0)?,
            StoredEntity::from_row(row, 0, self.schema)?,
        ))
    }
}

/// The cursor of a page row: `seq` (column 0) in insertion order, else the sort columns from
/// `sort_columns_start` on.
fn cursor_of(
    row: &impl Cells,
    keys: &SortKeys,
    sort_columns_start: usize,
) -> Result<Vec<Scalar>, StoreError> {
    match keys {
        SortKeys::Insertion => Ok(vec![Scalar::Integer(row.integer(0)?.unwrap_or(0))]),
        SortKeys::Columns(keys) => keys
            .iter()
            .enumerate()
            .map(|(index, (column, _))| read_scalar(row, sort_columns_start + index, column.edm))
            .collect(),
    }
}

/// Rows of [`Dialect::details_of`]: the owning event's id, then the detail.
struct Details;

impl Decode for Details {
    type Out = (String, StoredEntity);
    fn decode(&self, row: &impl Cells) -> Result<(String, StoredEntity), StoreError> {
        let detail = StoredEntity::from_row(row, 1, &crate::model::POLICY_STATUS_DETAIL)?;
        Ok((entity_id(row, 0)?, detail))
    }
}

fn entity_id(row: &impl Cells, index: usize) -> Result<String, StoreError> {
    row.text(index)?
        .map(|text| text.into_owned())
        .ok_or_else(|| StoreError::Internal(anyhow::anyhow!("a stored row has no id")))
}
