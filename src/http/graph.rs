//! The Graph service root: one dispatcher that authenticates, throttles, routes and answers every
//! request under `/beta`. Order of checks (api.md §4): authenticate (401) → throttle (429) → route
//! (400/405) → authorise (403) → find (404) → validate input (400/413/415).

use std::panic::AssertUnwindSafe;
use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::Response;
use futures_util::FutureExt;

use super::AppState;
use super::batch;
use super::body::{drain, read_json_body};
use super::caller::authenticate;
use super::context::RequestContext;
use super::error::ApiError;
use super::exports::Jobs;
use super::faults::FaultAction;
use super::journal::{Caller, Faulted};
use super::metadata;
use super::resources::Call;
use super::response::json_response;
use super::routes::{self, Resource, Route};
use super::throttle::now_ms;
use crate::auth::Access;
use crate::model::export_job::EXPORT_JOB_TYPE;
use crate::model::{AUTOPILOT_EVENT, POLICY_STATUS_DETAIL};

/// The longest query string accepted (api.md §14).
pub const MAX_QUERY_BYTES: usize = 32 * 1024;

/// Entry point for every path that is not one of the server's own (`/healthz`).
pub async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    // The route's template, for metrics: set once the path is parsed ("other" if it is not a
    // route).
    let mut template = "other";
    // A panic is a bug of ours: answer 500 in Graph's shape instead of dropping the connection.
    let mut response = match AssertUnwindSafe(handle(&state, request, &mut template))
        .catch_unwind()
        .await
    {
        Ok(Ok(response)) => response,
        Ok(Err(error)) => error.into_response(),
        Err(_) => ApiError::internal(&"a request handler panicked").into_response(),
    };
    response
        .extensions_mut()
        .insert(routes::RouteTemplate(template));
    response
}

async fn handle(
    state: &AppState,
    request: Request,
    template: &mut &'static str,
) -> Result<Response, ApiError> {
    let (parts, body) = request.into_parts();
    let mut body = Some(body);
    let answer = answer(state, &parts, &mut body, template).await;
    if let Some(unread) = body {
        drain(&parts, unread, state.body_timeout).await;
    }
    let mut response = answer.unwrap_or_else(IntoResponse::into_response);
    // `retryAfterOmitted`: production sometimes answers 429 without saying how long to wait.
    if response.status() == StatusCode::TOO_MANY_REQUESTS
        && response.headers().contains_key(header::RETRY_AFTER)
        && state.omit_retry_after()
    {
        response.headers_mut().remove(header::RETRY_AFTER);
    }
    Ok(response)
}

/// The answer to a request under the service root; takes `body` out when it reads it.
async fn answer(
    state: &AppState,
    parts: &Parts,
    body: &mut Option<Body>,
    template: &mut &'static str,
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
    let (version, route) = if root.eq_ignore_ascii_case("v1.0") {
        match routes::parse(&rest) {
            // The report export jobs are in v1.0 too.
            Ok(route) if route.is_export_jobs() => ("v1.0", Ok(route)),
            _ => {
                authenticate(state, parts)?;
                // Events exist only in beta: name the first segment v1.0 does not have.
                let missing = match rest.first() {
                    Some(first) if first.eq_ignore_ascii_case("deviceManagement") => {
                        rest.get(1).copied().unwrap_or(first)
                    }
                    Some(first) => first,
                    None => "v1.0",
                };
                return Err(ApiError::segment_not_found(missing));
            }
        }
    } else if root.eq_ignore_ascii_case("beta") {
        ("beta", routes::parse(&rest))
    } else {
        return Err(ApiError::not_found_path(&path));
    };
    if let Ok(route) = &route {
        *template = route.template();
    }
    let base = format!("{}/{version}", RequestContext::origin(parts, state.scheme));
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
    let access = match (route.is_export_jobs(), write) {
        (false, false) => Access::Read,
        (false, true) => Access::Write,
        (true, false) => Access::ReportRead,
        (true, true) => Access::ReportWrite,
    };
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
    match (route.resource(), parts.method.clone()) {
        (Resource::ServiceDocument, _) => Ok(service_document(&base)),
        (Resource::Metadata, _) => Ok(metadata::response()),
        // Answered above, before throttling; a step cannot get here either.
        (Resource::Batch, _) => Err(ApiError::bad_request(
            "A batch cannot contain another batch.",
        )),
        (Resource::Collection(collection), Method::POST) => {
            call.create(collection, take_body(body)).await
        }
        (Resource::Collection(collection), _) => call.list(collection).await,
        (Resource::Count(collection), _) => call.count(collection).await,
        (Resource::Entity(target), Method::PATCH) => call.update(target, take_body(body)).await,
        (Resource::Entity(target), Method::DELETE) => call.delete(target).await,
        (Resource::Entity(target), _) => call.get(target).await,
        (Resource::ExportJobs | Resource::ExportJob(_), _) => {
            let jobs = Jobs {
                state,
                tenant,
                base: &base,
                parts,
            };
            match (route.resource(), &parts.method) {
                (Resource::ExportJob(id), &Method::DELETE) => jobs.delete(&id).await,
                (Resource::ExportJob(id), _) => jobs.get(&id).await,
                (_, &Method::POST) => jobs.create(take_body(body)).await,
                _ => jobs.list().await,
            }
        }
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
        Route::ExportJob(id) if nul(id) => Some((EXPORT_JOB_TYPE.to_string(), id)),
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
    Box::pin(async move {
        let mut template = "other";
        handle(state, request, &mut template).await
    })
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

fn service_document(base: &str) -> Response {
    let body = serde_json::json!({
        "@odata.context": format!("{base}/$metadata"),
        "value": [{"name": "deviceManagement", "kind": "Singleton", "url": "deviceManagement"}]
    });
    json_response(StatusCode::OK, body.to_string())
}
