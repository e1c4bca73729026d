//! Per-request identity: `request-id` (ours) and `client-request-id` (the caller's, else ours),
//! attached to every response, every error body and every log line of the request.

use std::sync::Arc;
use std::time::Instant;

use axum::extract::{Request, State};
use axum::http::HeaderValue;
use axum::middleware::Next;
use axum::response::Response;
use tracing::Instrument;

use super::error::{ApiError, UnstampedError};
use super::journal::{Caller, Faulted, JournalEntry};
use super::response::json_response;
use super::{AppState, MAX_HEADER_BYTES};
use crate::edm::{DateTimeOffset, TICKS_PER_SECOND};

#[derive(Clone, Debug)]
pub struct RequestContext {
    pub request_id: String,
    pub client_request_id: String,
    pub started: DateTimeOffset,
}

impl RequestContext {
    pub fn new(client_request_id: Option<&str>) -> Self {
        let request_id = uuid::Uuid::new_v4().to_string();
        let client_request_id = client_request_id
            .filter(|id| !id.is_empty() && id.len() <= 256)
            .map(str::to_string)
            .unwrap_or_else(|| request_id.clone());
        Self {
            request_id,
            client_request_id,
            started: DateTimeOffset::now(),
        }
    }

    /// The context the middleware attached to a request (a fresh one if it is missing).
    pub fn of(extensions: &axum::http::Extensions) -> Self {
        extensions
            .get::<RequestContext>()
            .cloned()
            .unwrap_or_else(|| RequestContext::new(None))
    }

    /// `scheme://host` as the client addressed this server (`Host`, or `:authority` on HTTP/2),
    /// for absolute URLs in answers; a host with unexpected characters becomes `localhost`.
    pub fn origin(parts: &axum::http::request::Parts, scheme: &str) -> String {
        let host = parts
            .headers
            .get(axum::http::header::HOST)
            .and_then(|value| value.to_str().ok())
            .or_else(|| parts.uri.authority().map(|authority| authority.as_str()))
            .filter(|host| {
                host.bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b".-:[]_".contains(&b))
            })
            .unwrap_or("localhost");
        format!("{scheme}://{host}")
    }

    /// The `innerError.date` form Graph uses: UTC to the second, without a zone designator.
    pub fn started_display(&self) -> String {
        let ticks = self.started.ticks();
        let whole = DateTimeOffset::from_ticks(ticks - ticks % TICKS_PER_SECOND)
            .unwrap_or(DateTimeOffset::MIN);
        whole.to_string().trim_end_matches('Z').to_string()
    }
}

/// Writes Graph's error body into an error response ([`ApiError`] as a response carries only its
/// code and message): the code, the message and `innerError` with the request's ids and date.
pub fn stamp(response: &mut Response, context: &RequestContext) {
    let Some(error) = response.extensions_mut().remove::<UnstampedError>() else {
        return;
    };
    let body = serde_json::json!({
        "error": {
            "code": error.code.as_str(),
            "message": &*error.message,
            "innerError": {
                "date": context.started_display(),
                "request-id": context.request_id,
                "client-request-id": context.client_request_id,
            }
        }
    });
    let mut rendered = json_response(response.status(), body.to_string());
    std::mem::swap(rendered.headers_mut(), response.headers_mut());
    rendered.headers_mut().extend(
        std::mem::take(response.headers_mut())
            .into_iter()
            .filter_map(|(name, value)| name.map(|name| (name, value))),
    );
    *rendered.extensions_mut() = std::mem::take(response.extensions_mut());
    *response = rendered;
}

/// Our own routes' templates as `'static` labels.
fn own_template(matched: &str) -> Option<&'static str> {
    const OWN: [&str; 14] = [
        "/healthz",
        "/livez",
        "/metrics",
        "/{tenant}/oauth2/v2.0/token",
        "/{tenant}/v2.0/.well-known/openid-configuration",
        "/{tenant}/discovery/v2.0/keys",
        "/common/discovery/instance",
        "/graphpilot/openapi.json",
        "/graphpilot/requests",
        "/graphpilot/faults",
        "/graphpilot/faults/{id}",
        "/graphpilot/tenants",
        "/graphpilot/tenants/{tenant}",
        "/graphpilot/tenants/{tenant}/seed",
    ];
    const MORE: [&str; 2] = [
        "/graphpilot/tenants/{tenant}/export",
        "/graphpilot/tenants/{tenant}/import",
    ];
    OWN.iter()
        .chain(MORE.iter())
        .find(|own| **own == matched)
        .copied()
}

/// Admin bulk work (seed, import, export, reset of whole tenants) runs for as long as it takes.
fn is_unbounded(path: &str) -> bool {
    path.starts_with("/graphpilot/tenants")
}

/// Middleware: creates the context, runs the request inside a span that carries the request-id,
/// stamps the ids on the response, writes one access-log line and one journal entry.
pub async fn with_request_context(
    State(state): State<Arc<AppState>>,
    mut request: Request,
    next: Next,
) -> Response {
    let client_request_id = request
        .headers()
        .get("client-request-id")
        .and_then(|value| value.to_str().ok());
    let context = RequestContext::new(client_request_id);
    request.extensions_mut().insert(context.clone());
    let caller = Caller::default();
    request.extensions_mut().insert(caller.clone());
    let span = tracing::info_span!("request", request_id = %context.request_id);
    let method = request.method().clone();
    // Our own paths' templates (Graph's come back with the response).
    let route = request
        .extensions()
        .get::<axum::extract::MatchedPath>()
        .and_then(|matched| own_template(matched.as_str()));
    let path = request.uri().path().to_string();
    let query = request.uri().query().map(str::to_string);
    let clock = Instant::now();
    let header_bytes: usize = request
        .headers()
        .iter()
        .map(|(name, value)| name.as_str().len() + value.len() + 4)
        .sum();
    let mut response = if header_bytes > MAX_HEADER_BYTES {
        axum::response::IntoResponse::into_response(ApiError::header_fields_too_large(
            MAX_HEADER_BYTES,
        ))
    } else if is_unbounded(&path) {
        next.run(request).instrument(span.clone()).await
    } else {
        // Store calls below see the deadline and answer 503 past it (store::health).
        let deadline = std::time::Instant::now() + state.request_timeout;
        crate::store::health::DEADLINE
            .scope(deadline, next.run(request).instrument(span.clone()))
            .await
    };
    stamp(&mut response, &context);
    let elapsed = clock.elapsed().as_secs_f64();
    let latency_ms = elapsed * 1000.0;
    let status = response.status().as_u16();
    let faulted = response.extensions().get::<Faulted>().is_some();
    let template = response
        .extensions()
        .get::<super::routes::RouteTemplate>()
        .map(|template| template.0)
        .or(route)
        .unwrap_or("other");
    super::metrics::record_request(template, &method, status, elapsed);
    if faulted {
        super::metrics::record_refusal(template, "faulted");
    } else if status == 429 {
        super::metrics::record_refusal(template, "throttled");
    }
    let (tenant, app) = caller.get().unzip();
    let headers = response.headers_mut();
    if let Ok(value) = HeaderValue::from_str(&context.request_id) {
        headers.insert("request-id", value);
    }
    if let Ok(value) = HeaderValue::from_str(&context.client_request_id) {
        headers.insert("client-request-id", value);
    }
    span.in_scope(|| {
        tracing::info!(
            %method,
            path,
            status,
            latency_ms,
            client_request_id = %context.client_request_id,
            "request finished"
        );
    });
    state.journal.record(
        context.started,
        JournalEntry {
            sequence: 0,
            time: context.started,
            request_id: context.request_id,
            client_request_id: context.client_request_id,
            tenant,
            app,
            method: method.to_string(),
            path,
            query,
            status,
            latency_ms,
            throttled: status == 429 && !faulted,
            faulted,
        },
    );
    response
}
