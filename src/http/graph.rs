//! The Graph service root: one dispatcher that authenticates, throttles, routes and answers every
//! request under `/beta`. Order of checks (api.md §4): authenticate (401) → throttle (429) → route
//! (400/405) → authorise (403) → find (404) → validate input (400/413/415).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::Response;
use futures_util::FutureExt;
use http_body_util::BodyExt;

use super::AppState;
use super::batch;
use super::context::RequestContext;
use super::error::ApiError;
use super::faults::FaultAction;
use super::journal::{Caller, Faulted};
use super::metadata;
use super::query::ResolvedQuery;
use super::response::{empty_response, entity_response, json_response, json_string, text_response};
use super::routes::{self, Route};
use super::throttle::now_ms;
use crate::auth::{Access, Principal};
use crate::model::{AUTOPILOT_EVENT, BodyError, POLICY_STATUS_DETAIL, decode_create, decode_patch};
use crate::odata::{QueryOptions, parse_query};
use crate::store::{Collection, Listing, PageRow, StoreError, StoredEntity, Target};

/// The largest request body accepted (api.md §6).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;
/// The longest query string accepted (api.md §14).
pub const MAX_QUERY_BYTES: usize = 32 * 1024;

/// Entry point for every path that is not one of the server's own (`/healthz`).
pub async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let template = route_template(request.uri().path());
    // A panic is a bug of ours: answer 500 in Graph's shape instead of dropping the connection.
    let mut response = match AssertUnwindSafe(handle(&state, request))
        .catch_unwind()
        .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(),
        Err(_) => ApiError::internal(&"a request handler panicked").into_response(),
    };
    response.extensions_mut().insert(RouteTemplate(template));
    response
}

/// The route template of a response, for metrics (a response extension).
#[derive(Clone, Copy, Debug)]
pub struct RouteTemplate(pub &'static str);

/// The template of a path under the service root; `other` for anything that is not a route.
fn route_template(path: &str) -> &'static str {
    let mut segments = path.split('/').skip(1);
    let root = segments.next().unwrap_or("");
    if !root.eq_ignore_ascii_case("beta") {
        return "other";
    }
    let rest: Vec<&str> = segments.collect();
    routes::parse(&rest).map_or("other", |route| route.template())
}

async fn handle(state: &AppState, request: Request) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let mut body = Some(body);
    let answer = answer(state, &parts, &mut body).await;
    if let Some(unread) = body {
        drain(&parts, unread, state.body_timeout).await;
    }
    answer
}

/// Reads and drops a body the answer did not need (a 401, 403, 429 or injected fault to a POST):
/// the connection then stays usable for the client's next request, where an unread body would
/// make it close under the client's feet. Bodies declared over the limit are not read; their
/// connection closes.
async fn drain(parts: &Parts, body: Body, body_timeout: std::time::Duration) {
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return;
    }
    let _ = tokio::time::timeout(
        body_timeout,
        http_body_util::Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await;
}

/// The answer to a request under the service root; takes `body` out when it reads it.
async fn answer(
    state: &AppState,
    parts: &Parts,
    body: &mut Option<Body>,
) -> Result<Response, ApiError> {
    let take_body = |body: &mut Option<Body>| body.take().unwrap_or_else(Body::empty);
    if parts
        .uri
        .query()
        .is_some_and(|query| query.len() > MAX_QUERY_BYTES)
    {
        return Err(ApiError::uri_too_long(MAX_QUERY_BYTES));
    }
    let path = parts.uri.path().to_string();
    let mut segments = path.split('/').skip(1);
    let root = segments.next().unwrap_or("");
    let rest: Vec<&str> = segments.collect();
    if root.eq_ignore_ascii_case("v1.0") {
        authenticate(state, parts)?;
        // This resource exists only in beta: name the first segment v1.0 does not have.
        let missing = match rest.first() {
            Some(first) if first.eq_ignore_ascii_case("deviceManagement") => {
                rest.get(1).copied().unwrap_or(first)
            }
            Some(first) => first,
            None => "v1.0",
        };
        return Err(ApiError::segment_not_found(missing));
    }
    if !root.eq_ignore_ascii_case("beta") {
        return Err(ApiError::not_found_path(&path));
    }
    let route = routes::parse(&rest);
    let base = service_root(parts, state.scheme);
    if matches!(route, Ok(Route::Metadata)) {
        check_method(&parts.method, &Route::Metadata)?;
        return Ok(metadata::response());
    }
    let principal = authenticate(state, parts)?;
    if let Some(caller) = parts.extensions.get::<Caller>() {
        caller.set(&principal.tenant, &principal.app);
    }
    if let Some(action) =
        state
            .faults
            .decide(&parts.method, &path, &principal.tenant, &principal.app)
    {
        match action {
            FaultAction::Delay(delay) => tokio::time::sleep(delay).await,
            FaultAction::Status {
                status,
                retry_after,
                rule,
            } => {
                let mut response = ApiError::injected(status, retry_after, &rule).into_response();
                response.extensions_mut().insert(Faulted);
                return Ok(response);
            }
            FaultAction::Reset => return Ok(connection_reset()),
        }
    }
    if matches!(route, Ok(Route::Batch)) {
        if parts.extensions.get::<batch::BatchStep>().is_some() {
            return Err(ApiError::bad_request(
                "A batch cannot contain another batch.",
            ));
        }
        // Not throttled or authorised as a whole: each step is, on its own.
        check_method(&parts.method, &Route::Batch)?;
        let context = RequestContext::of(&parts.extensions);
        let body = read_json_body(parts, take_body(body), state.body_timeout).await?;
        return batch::run(state, parts, body, &context, handle_boxed).await;
    }
    let write = matches!(
        parts.method,
        Method::POST | Method::PATCH | Method::PUT | Method::DELETE
    );
    state
        .throttle
        .admit(&principal.tenant, &principal.app, write, now_ms())
        .await
        .map_err(ApiError::too_many_requests)?;
    let route = route?;
    check_method(&parts.method, &route)?;
    let access = if write { Access::Write } else { Access::Read };
    if !principal.allows(access) {
        return Err(ApiError::forbidden(access.permissions()));
    }
    if let Some((type_name, key)) = unstorable_key(&route) {
        return Err(ApiError::not_found(&type_name, key));
    }
    let tenant = principal.tenant.as_str();
    let call = Call {
        state,
        tenant,
        base: &base,
        parts,
    };
    match (&route, parts.method.clone()) {
        (Route::ServiceDocument, _) => Ok(service_document(&base)),
        (Route::Events | Route::Details(_), Method::POST) => {
            call.create(&route, take_body(body)).await
        }
        (Route::Events | Route::Details(_), _) => call.list(&route).await,
        (Route::EventsCount | Route::DetailsCount(_), _) => call.count(&route).await,
        (Route::Event(_) | Route::Detail(..), Method::PATCH) => {
            call.update(&route, take_body(body)).await
        }
        (Route::Event(_) | Route::Detail(..), Method::DELETE) => call.delete(&route).await,
        (Route::Event(_) | Route::Detail(..), _) => call.get(&route).await,
        (Route::Metadata, _) => Ok(metadata::response()),
        (Route::Batch, _) => unreachable!("batches are answered above"),
    }
}

/// A key that no stored entity can have: NUL, which bodies refuse and PostgreSQL's text cannot
/// hold (asking it would fail). Such an entity is simply not found.
fn unstorable_key(route: &Route) -> Option<(String, &str)> {
    let nul = |key: &String| key.contains('\0');
    match route {
        Route::Event(id) | Route::Details(id) | Route::DetailsCount(id) | Route::Detail(id, _)
            if nul(id) =>
        {
            Some((AUTOPILOT_EVENT.qualified_name(), id))
        }
        Route::Detail(_, id) if nul(id) => Some((POLICY_STATUS_DETAIL.qualified_name(), id)),
        _ => None,
    }
}

/// A response that never completes: its body fails at once, so the connection is dropped without
/// an answer (fault injection's "connection reset").
fn connection_reset() -> Response {
    let failing = futures_util::stream::once(async {
        Err::<Bytes, _>(std::io::Error::new(
            std::io::ErrorKind::ConnectionReset,
            "connection reset by fault injection",
        ))
    });
    let mut response = Response::new(Body::from_stream(failing));
    response.extensions_mut().insert(Faulted);
    response
}

/// [`handle`] behind a box: batch steps go through it, and a future cannot contain itself.
fn handle_boxed<'a>(
    state: &'a AppState,
    request: Request,
) -> std::pin::Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send + 'a>> {
    Box::pin(handle(state, request))
}

fn check_method(method: &Method, route: &Route) -> Result<(), ApiError> {
    let allowed = route.allowed_methods();
    // HEAD is GET without a body; hyper drops the body.
    let effective = if method == Method::HEAD {
        "GET"
    } else {
        method.as_str()
    };
    if allowed.contains(&effective) {
        Ok(())
    } else {
        Err(ApiError::method_not_allowed(method.as_str(), allowed))
    }
}

/// Exactly one `Authorization: Bearer <token>` header, verified.
pub(super) fn authenticate(state: &AppState, parts: &Parts) -> Result<Arc<Principal>, ApiError> {
    let mut headers = parts.headers.get_all(header::AUTHORIZATION).iter();
    let Some(value) = headers.next() else {
        return Err(ApiError::unauthenticated("Access token is empty."));
    };
    if headers.next().is_some() {
        return Err(ApiError::unauthenticated(
            "More than one Authorization header was sent; send exactly one.",
        ));
    }
    let value = value
        .to_str()
        .map_err(|_| ApiError::unauthenticated("The Authorization header is not ASCII."))?;
    let token = match value.split_once(' ') {
        Some((scheme, token)) if scheme.eq_ignore_ascii_case("Bearer") => token.trim(),
        _ => {
            return Err(ApiError::unauthenticated(
                "The Authorization header must be 'Bearer <access token>'.",
            ));
        }
    };
    if token.is_empty() {
        return Err(ApiError::unauthenticated("Access token is empty."));
    }
    state
        .verifier
        .verify(token)
        .map_err(|error| ApiError::unauthenticated(error.0))
}

/// `{scheme}://{host}/beta` as the client addressed us.
fn service_root(parts: &Parts, scheme: &str) -> String {
    format!("{}/beta", RequestContext::origin(parts, scheme))
}

fn service_document(base: &str) -> Response {
    let body = serde_json::json!({
        "@odata.context": format!("{base}/$metadata"),
        "value": [{"name": "deviceManagement", "kind": "Singleton", "url": "deviceManagement"}]
    });
    json_response(StatusCode::OK, body.to_string())
}

/// What every handler needs to know about the request.
struct Call<'a> {
    state: &'a AppState,
    tenant: &'a str,
    base: &'a str,
    parts: &'a Parts,
}

impl Call<'_> {
    fn options(&self) -> Result<QueryOptions, ApiError> {
        parse_query(self.parts.uri.query()).map_err(ApiError::bad_request)
    }

    /// 404 unless the event that owns a details collection exists.
    async fn require_event(&self, event_id: &str) -> Result<(), ApiError> {
        match self.state.store.event_exists(self.tenant, event_id).await {
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
    async fn list(&self, route: &Route) -> Result<Response, ApiError> {
        let collection = route.collection().expect("collection route");
        if let Collection::Details { event_id } = &collection {
            self.require_event(event_id).await?;
        }
        let options = self.options()?;
        let query = ResolvedQuery::resolve(collection.schema(), &options)?;
        let page_size = options.top.unwrap_or(self.state.page_size);
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
        let store = &self.state.store;
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
        Ok(json_response(StatusCode::OK, body))
    }

    /// The details of the listed events when `$expand` asks for them.
    async fn expanded_details(
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
    async fn count(&self, route: &Route) -> Result<Response, ApiError> {
        let collection = route.collection().expect("collection route");
        if let Collection::Details { event_id } = &collection {
            self.require_event(event_id).await?;
        }
        let options = self.options()?;
        let query = ResolvedQuery::resolve(collection.schema(), &options)?;
        let total = self
            .state
            .store
            .count(self.tenant, &collection, query.filter.as_ref())
            .await
            .map_err(internal)?;
        Ok(text_response(total.to_string()))
    }

    /// GET of one entity, with `$select` and `$expand` applied.
    async fn get(&self, route: &Route) -> Result<Response, ApiError> {
        let target = route.target().expect("entity route");
        let schema = target.schema();
        if let Target::Detail { event_id, .. } = &target {
            self.require_event(event_id).await?;
        }
        let entity = self
            .state
            .store
            .get(self.tenant, &target)
            .await
            .map_err(|error| ApiError::from_store(error, &schema.qualified_name(), target.id()))?;
        let options = self.options()?;
        let query = ResolvedQuery::resolve(schema, &options)?;
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

    async fn create(&self, route: &Route, body: Body) -> Result<Response, ApiError> {
        let collection = route.collection().expect("collection route");
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

    async fn update(&self, route: &Route, body: Body) -> Result<Response, ApiError> {
        let target = route.target().expect("entity route");
        let schema = target.schema();
        let store = &self.state.store;
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
        let stored = store
            .update(self.tenant, target.clone(), patch, self.if_match())
            .await
            .map_err(|error| ApiError::from_store(error, &schema.qualified_name(), target.id()))?;
        let context_url = format!(
            "{}/$metadata#{}/$entity",
            self.base,
            routes::collection_path(&collection_of(&target))
        );
        Ok(entity_response(StatusCode::OK, &context_url, &stored))
    }

    async fn delete(&self, route: &Route) -> Result<Response, ApiError> {
        let target = route.target().expect("entity route");
        let schema = target.schema();
        self.state
            .store
            .delete(self.tenant, target.clone(), self.if_match())
            .await
            .map_err(|error| ApiError::from_store(error, &schema.qualified_name(), target.id()))?;
        Ok(empty_response(StatusCode::NO_CONTENT))
    }

    fn if_match(&self) -> Option<String> {
        self.parts
            .headers
            .get(header::IF_MATCH)
            .and_then(|value| value.to_str().ok())
            .map(str::to_string)
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

fn body_error(error: BodyError) -> ApiError {
    match error {
        BodyError::Malformed(message) => ApiError::bad_request(message),
        BodyError::Invalid(message) => ApiError::validation(message),
    }
}

/// Reads a JSON request body: `Content-Type: application/json` (415 otherwise), at most
/// [`MAX_BODY_BYTES`] (413 otherwise, refused before reading when `Content-Length` says so).
async fn read_json_body(
    parts: &Parts,
    body: Body,
    body_timeout: std::time::Duration,
) -> Result<Bytes, ApiError> {
    let content_type = parts
        .headers
        .get(header::CONTENT_TYPE)
        .map(|value| value.to_str().unwrap_or("(not ASCII)"));
    let is_json = content_type.is_some_and(|value| {
        value
            .split(';')
            .next()
            .is_some_and(|media| media.trim().eq_ignore_ascii_case("application/json"))
    });
    if !is_json {
        return Err(ApiError::unsupported_media_type(content_type));
    }
    let declared = parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok());
    if declared.is_some_and(|length| length > MAX_BODY_BYTES as u64) {
        return Err(ApiError::payload_too_large(MAX_BODY_BYTES));
    }
    let collected = tokio::time::timeout(
        body_timeout,
        http_body_util::Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await
    .map_err(|_| ApiError::request_timeout(body_timeout.as_secs()))?;
    match collected {
        Ok(collected) => Ok(collected.to_bytes()),
        Err(error) if error.is::<http_body_util::LengthLimitError>() => {
            Err(ApiError::payload_too_large(MAX_BODY_BYTES))
        }
        Err(error) => Err(ApiError::bad_request(format!(
            "The request body could not be read: {error}."
        ))),
    }
}

fn internal(error: StoreError) -> ApiError {
    ApiError::from_store(error, "", "")
}
