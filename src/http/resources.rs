//! The Graph resources' handlers: collections of events and of their policy status details
//! (list, count, create) and single entities (get, update, delete), answered in Graph's shapes.

use axum::body::Body;
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use super::AppState;
use super::body::{body_error, read_json_body};
use super::error::ApiError;
use super::query::ResolvedQuery;
use super::response::{
    empty_response, entity_response, json_bytes_response, json_response, json_string, text_response,
};
use super::routes;
use crate::edm::DateTimeOffset;
use crate::model::{AUTOPILOT_EVENT, decode_create, decode_patch};
use crate::odata::{
    CompareOp, ID, Operand, Predicate, QueryOptions, Scalar, events_since, parse_query,
};
use crate::profile::Quirks;
use crate::store::{Collection, Listing, PageRow, Precondition, StoreError, StoredEntity, Target};

/// What every handler needs to know about the request.
pub struct Call<'a> {
    pub state: &'a AppState,
    pub tenant: &'a str,
    pub base: &'a str,
    pub parts: &'a Parts,
}

impl Call<'_> {
    pub(super) fn options(&self) -> Result<QueryOptions, ApiError> {
        parse_query(self.parts.uri.query(), self.quirks().dollarless).map_err(ApiError::bad_request)
    }

    fn quirks(&self) -> &Quirks {
        &self.state.profile.quirks
    }

    /// Binds the request's options to `schema` under the server's quirks.
    fn resolve(
        &self,
        schema: &'static crate::model::EntitySchema,
        options: &QueryOptions,
    ) -> Result<ResolvedQuery, ApiError> {
        ResolvedQuery::resolve(schema, options, self.quirks())
    }

    /// 404 unless the event that owns a details collection exists (and, with `retentionDays`,
    /// is still served).
    pub(super) async fn require_event(&self, event_id: &str) -> Result<(), ApiError> {
        let found = match self.quirks().retention_cutoff_ticks(DateTimeOffset::now()) {
            None => self.state.store.event_exists(self.tenant, event_id).await,
            Some(cutoff) => {
                let this_one = Predicate::And(vec![
                    Predicate::Compare(
                        CompareOp::Eq,
                        Operand::Column(ID),
                        Operand::Value(Scalar::Text(event_id.to_string())),
                    ),
                    events_since(cutoff),
                ]);
                self.state
                    .store
                    .count(self.tenant, &Collection::Events, Some(&this_one))
                    .await
                    .map(|count| count > 0)
            }
        };
        match found {
            Ok(true) => Ok(()),
            Ok(false) => Err(ApiError::not_found(
                &AUTOPILOT_EVENT.qualified_name(),
                event_id,
            )),
            Err(error) => Err(internal(error)),
        }
    }

    /// GET on a collection: one page, filtered and ordered as asked, with a keyset `$skiptoken`
    /// next link when more rows follow (api.md §7, §8).
    pub(super) async fn list(&self, collection: Collection) -> Result<Response, ApiError> {
        // A page is a function of the tenant, the request's URL (its base for the links) and the
        // data, unless retention hides events by the clock: then it is rendered every time.
        let ready_key = (self.quirks().retention_days == 0)
            .then(|| format!("{}\n{}", self.base, self.parts.uri));
        let store = &self.state.store;
        if let Some(key) = &ready_key
            && let Some(body) = store.ready_page(self.tenant, key)
        {
            return Ok(json_bytes_response(StatusCode::OK, body));
        }
        let snapshot = ready_key.as_ref().and_then(|_| store.page_snapshot());
        if let Collection::Details { event_id } = &collection {
            self.require_event(event_id).await?;
        }
        let options = self.options()?;
        let query = self.resolve(collection.schema(), &options)?;
        // `maxPageSize`: no page is larger, whatever `$top` says (the rest follows by nextLink).
        let page_size = options
            .top
            .unwrap_or(self.state.page_size)
            .min(self.quirks().max_page_size);
        let scope = format!(
            "{}\n{}\n{}",
            self.tenant,
            routes::collection_path(&collection),
            options.carried.join("&")
        );
        let after = match &options.skiptoken {
            Some(token) => Some(
                self.state
                    .skiptokens
                    .open(&scope, token)
                    .and_then(|cursor| query.cursor_from_json(&cursor))
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "The $skiptoken is invalid, or was issued for another tenant or query; start again from the first page.",
                        )
                    })?,
            ),
            None => None,
        };
        // The offset applies to the first page only; next links continue from the cursor.
        let skip = if after.is_some() {
            0
        } else {
            options.skip.unwrap_or(0)
        };
        let mut rows = store
            .page(
                self.tenant,
                &Listing {
                    collection: &collection,
                    filter: query.filter.as_ref(),
                    order: &query.order,
                    after: after.as_deref(),
                    skip,
                    limit: page_size + 1,
                },
            )
            .await
            .map_err(internal)?;
        let next_cursor = if rows.len() as u64 > page_size {
            rows.truncate(page_size as usize);
            rows.last()
                .map(|row| ResolvedQuery::cursor_json(&row.cursor))
        } else {
            None
        };
        let details = self.expanded_details(&query, &rows).await?;
        let mut body = String::with_capacity(rows.len() * 1400 + 256);
        body.push_str("{\"@odata.context\":");
        body.push_str(&json_string(&format!(
            "{}/$metadata#{}{}",
            self.base,
            routes::collection_path(&collection),
            query.context_suffix()
        )));
        if options.count {
            let total = store
                .count(self.tenant, &collection, query.filter.as_ref())
                .await
                .map_err(internal)?;
            body.push_str(&format!(",\"@odata.count\":{total}"));
        }
        if let Some(cursor) = next_cursor {
            let token = self.state.skiptokens.issue(&scope, &cursor);
            let mut carried = options.carried.clone();
            carried.push(format!("$skiptoken={token}"));
            let next = format!(
                "{}{}?{}",
                self.base,
                &self.parts.uri.path()[5..],
                carried.join("&")
            );
            body.push_str(",\"@odata.nextLink\":");
            body.push_str(&json_string(&next));
        }
        body.push_str(",\"value\":[");
        for (index, row) in rows.iter().enumerate() {
            if index > 0 {
                body.push(',');
            }
            let inline = details.as_ref().map(|all| {
                all.iter()
                    .filter(|(event_id, _)| *event_id == row.id)
                    .map(|(_, detail)| detail)
                    .collect::<Vec<_>>()
            });
            query.render(&mut body, &row.entity, inline.as_deref())?;
        }
        body.push_str("]}");
        let body = bytes::Bytes::from(body);
        if let (Some(key), Some(snapshot)) = (ready_key, snapshot) {
            store.keep_page(self.tenant, &key, snapshot, body.clone());
        }
        Ok(json_bytes_response(StatusCode::OK, body))
    }

    /// The details of the listed events when `$expand` asks for them.
    pub(super) async fn expanded_details(
        &self,
        query: &ResolvedQuery,
        rows: &[PageRow],
    ) -> Result<Option<Vec<(String, StoredEntity)>>, ApiError> {
        if query.expand.is_none() {
            return Ok(None);
        }
        let ids: Vec<String> = rows.iter().map(|row| row.id.clone()).collect();
        let details = self
            .state
            .store
            .details_of(self.tenant, &ids)
            .await
            .map_err(internal)?;
        Ok(Some(details))
    }

    /// `/$count`: the number of matches (honouring `$filter`) as text/plain.
    pub(super) async fn count(&self, collection: Collection) -> Result<Response, ApiError> {
        if let Collection::Details { event_id } = &collection {
            self.require_event(event_id).await?;
        }
        let options = self.options()?;
        let query = self.resolve(collection.schema(), &options)?;
        let total = self
            .state
            .store
            .count(self.tenant, &collection, query.filter.as_ref())
            .await
            .map_err(internal)?;
        Ok(text_response(total.to_string()))
    }

    /// GET of one entity, with `$select` and `$expand` applied.
    pub(super) async fn get(&self, target: Target) -> Result<Response, ApiError> {
        let schema = target.schema();
        self.require_served(&target).await?;
        let entity = self
            .state
            .store
            .get(self.tenant, &target)
            .await
            .map_err(|error| ApiError::from_store(error, &schema.qualified_name(), target.id()))?;
        let options = self.options()?;
        let query = self.resolve(schema, &options)?;
        let context_url = format!(
            "{}/$metadata#{}{}/$entity",
            self.base,
            routes::collection_path(&collection_of(&target)),
            query.context_suffix()
        );
        if query.select.is_none() && query.expand.is_none() {
            return Ok(entity_response(StatusCode::OK, &context_url, &entity));
        }
        let details = if query.expand.is_some() {
            self.state
                .store
                .details_of(self.tenant, &[target.id().to_string()])
                .await
                .map_err(internal)?
        } else {
            Vec::new()
        };
        let inline: Vec<&StoredEntity> = details.iter().map(|(_, detail)| detail).collect();
        let mut rendered = String::new();
        query.render(&mut rendered, &entity, Some(&inline))?;
        let mut body = String::with_capacity(rendered.len() + context_url.len() + 32);
        body.push_str("{\"@odata.context\":");
        body.push_str(&json_string(&context_url));
        body.push(',');
        body.push_str(&rendered[1..]);
        let mut response = json_response(StatusCode::OK, body);
        if let Ok(etag) = HeaderValue::from_str(&entity.etag) {
            response.headers_mut().insert(header::ETAG, etag);
        }
        Ok(response)
    }

    pub(super) async fn create(
        &self,
        collection: Collection,
        body: Body,
    ) -> Result<Response, ApiError> {
        let schema = collection.schema();
        let store = &self.state.store;
        let decoded = match read_json_body(self.parts, body, self.state.body_timeout).await {
            Ok(bytes) => decode_create(schema, &bytes, matches!(collection, Collection::Events))
                .map_err(body_error),
            Err(error) => Err(error),
        };
        let stored_result = match (&collection, decoded) {
            (Collection::Details { event_id }, Err(error)) => {
                // A missing parent outranks a bad body.
                self.require_event(event_id).await?;
                return Err(error);
            }
            (_, Err(error)) => return Err(error),
            (Collection::Events, Ok(body)) => {
                let id = body.event.id.clone();
                store
                    .create_event(self.tenant, body.event, body.details)
                    .await
                    .map(|stored| (id, stored))
            }
            (Collection::Details { event_id }, Ok(body)) => {
                if self.retention_on() {
                    self.require_event(event_id).await?;
                }
                let id = body.event.id.clone();
                store
                    .create_detail(self.tenant, event_id, body.event)
                    .await
                    .map(|stored| (id, stored))
            }
        };
        let (id, stored) = stored_result.map_err(|error| {
            let parent = match &collection {
                Collection::Details { event_id } => event_id.as_str(),
                Collection::Events => "",
            };
            ApiError::from_store(error, &AUTOPILOT_EVENT.qualified_name(), parent)
        })?;
        let path = routes::collection_path(&collection);
        let context_url = format!("{}/$metadata#{path}/$entity", self.base);
        let mut response = entity_response(StatusCode::CREATED, &context_url, &stored);
        let location = format!("{}/{path}('{id}')", self.base);
        if let Ok(location) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    }

    pub(super) async fn update(&self, target: Target, body: Body) -> Result<Response, ApiError> {
        let schema = target.schema();
        let store = &self.state.store;
        if self.retention_on() {
            self.require_served(&target).await?;
        }
        let decoded = match read_json_body(self.parts, body, self.state.body_timeout).await {
            Ok(bytes) => decode_patch(schema, &bytes, target.id()).map_err(body_error),
            Err(error) => Err(error),
        };
        let patch = match decoded {
            Ok(patch) => patch,
            Err(error) => {
                // A missing entity outranks a bad body.
                if let Err(StoreError::NotFound) = store.get(self.tenant, &target).await {
                    return Err(ApiError::not_found(&schema.qualified_name(), target.id()));
                }
                return Err(error);
            }
        };
        let precondition = self.precondition(&target).await?;
        let stored = store
            .update(self.tenant, target.clone(), patch, precondition)
            .await
            .map_err(|error| ApiError::from_store(error, &schema.qualified_name(), target.id()))?;
        let context_url = format!(
            "{}/$metadata#{}/$entity",
            self.base,
            routes::collection_path(&collection_of(&target))
        );
        Ok(entity_response(StatusCode::OK, &context_url, &stored))
    }

    pub(super) async fn delete(&self, target: Target) -> Result<Response, ApiError> {
        let schema = target.schema();
        if self.retention_on() {
            self.require_served(&target).await?;
        }
        let precondition = self.precondition(&target).await?;
        self.state
            .store
            .delete(self.tenant, target.clone(), precondition)
            .await
            .map_err(|error| ApiError::from_store(error, &schema.qualified_name(), target.id()))?;
        Ok(empty_response(StatusCode::NO_CONTENT))
    }

    fn retention_on(&self) -> bool {
        self.quirks().retention_days > 0
    }

    /// 404 for an entity `retentionDays` hides (an old event, or a detail of one); a detail's
    /// event must exist whatever the quirk.
    async fn require_served(&self, target: &Target) -> Result<(), ApiError> {
        match target {
            Target::Detail { event_id, .. } => self.require_event(event_id).await,
            Target::Event { id } if self.retention_on() => self.require_event(id).await,
            Target::Event { .. } => Ok(()),
        }
    }

    /// `If-Match`, parsed: `*` alone, or a list of entity tags. A list that holds `*` among
    /// tags (RFC 9110 allows `*` only alone) or a header that is not ASCII is a 400, judged after
    /// the entity is found (404 first).
    pub(super) async fn precondition(
        &self,
        target: &Target,
    ) -> Result<Option<Precondition>, ApiError> {
        let Some(value) = self.parts.headers.get(header::IF_MATCH) else {
            return Ok(None);
        };
        let parsed = value.to_str().ok().and_then(|text| {
            let tags: Vec<&str> = text.split(',').map(str::trim).collect();
            match tags.as_slice() {
                ["*"] => Some(Precondition::AnyVersion),
                tags if tags.iter().any(|tag| *tag == "*" || tag.is_empty()) => None,
                tags => Some(Precondition::OneOf(
                    tags.iter().map(|tag| tag.to_string()).collect(),
                )),
            }
        });
        match parsed {
            Some(precondition) => Ok(Some(precondition)),
            None => {
                let schema = target.schema();
                if let Err(StoreError::NotFound) = self.state.store.get(self.tenant, target).await {
                    return Err(ApiError::not_found(&schema.qualified_name(), target.id()));
                }
                Err(ApiError::bad_request(
                    "If-Match must be '*' alone or a list of entity tags such as W/\"…\" (from an ETag).",
                ))
            }
        }
    }
}

fn collection_of(target: &Target) -> Collection {
    match target {
        Target::Event { .. } => Collection::Events,
        Target::Detail { event_id, .. } => Collection::Details {
            event_id: event_id.clone(),
        },
    }
}

fn internal(error: StoreError) -> ApiError {
    ApiError::from_store(error, "", "")
}
