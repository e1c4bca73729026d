//! JSON batching (api.md §10). Every step runs through the same dispatcher as a request of its own
//! — authenticated with the batch's token, tenant-scoped, throttled and authorised per step — in
//! an order that honours `dependsOn`; a step whose dependency failed answers 424 without running.

use std::collections::HashMap;
use std::future::Future;
use std::pin::Pin;

use axum::body::{Body, Bytes};
use axum::extract::Request;
use axum::http::request::Parts;
use axum::http::{HeaderName, HeaderValue, Method, StatusCode, header};
use axum::response::IntoResponse;
use axum::response::Response;
use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use http_body_util::BodyExt;
use serde_json::{Map, Value as Json};

use super::AppState;
use super::context::RequestContext;
use super::error::ApiError;
use super::response::json_response;

/// Characters a step URL may carry that a URI may not.
const NOT_IN_URI: &percent_encoding::AsciiSet = &percent_encoding::CONTROLS
    .add(b' ')
    .add(b'"')
    .add(b'<')
    .add(b'>')
    .add(b'`')
    .add(b'{')
    .add(b'}')
    .add(b'|')
    .add(b'\\')
    .add(b'^');

/// The most steps one batch may hold (Graph's limit).
pub const MAX_STEPS: usize = 20;

/// One request of a batch, validated.
#[derive(Debug)]
struct Step {
    id: String,
    method: Method,
    url: String,
    headers: Vec<(HeaderName, HeaderValue)>,
    body: Option<Json>,
    /// Positions of the steps this one waits for.
    depends_on: Vec<usize>,
}

/// The dispatcher a step goes through (the one behind every ordinary request).
pub type Dispatch =
    for<'a> fn(
        &'a AppState,
        Request,
    ) -> Pin<Box<dyn Future<Output = Result<Response, ApiError>> + Send + 'a>>;

/// Runs a batch whose envelope arrived as `parts` + `body` (already authenticated).
pub async fn run(
    state: &AppState,
    parts: &Parts,
    body: Bytes,
    context: &RequestContext,
    dispatch: Dispatch,
) -> Result<Response, ApiError> {
    let steps = parse(&body)?;
    let order = execution_order(&steps)?;
    let mut statuses: Vec<Option<StatusCode>> = vec![None; steps.len()];
    let mut answers: Vec<Option<Json>> = vec![None; steps.len()];
    for position in order {
        let step = &steps[position];
        let failed = step
            .depends_on
            .iter()
            .find(|&&dependency| !statuses[dependency].is_some_and(|status| status.is_success()));
        let mut response = match failed {
            Some(&dependency) => ApiError::failed_dependency(&steps[dependency].id).into_response(),
            None => match step_request(parts, step, context) {
                Ok(request) => match dispatch(state, request).await {
                    Ok(response) => response,
                    Err(error) => error.into_response(),
                },
                Err(error) => error.into_response(),
            },
        };
        super::context::stamp(&mut response, context);
        statuses[position] = Some(response.status());
        answers[position] = Some(step_answer(&step.id, response).await);
    }
    let body = serde_json::json!({ "responses": answers });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// Validates the envelope: 1…20 steps with unique ids (case-insensitively), a method and a
/// relative URL each, a Content-Type wherever there is a body, and `dependsOn` naming steps of
/// this batch.
fn parse(body: &[u8]) -> Result<Vec<Step>, ApiError> {
    let envelope: Json = serde_json::from_slice(body).map_err(|error| {
        ApiError::bad_request(format!(
            "The batch request body is not valid JSON: {error}."
        ))
    })?;
    let Some(requests) = envelope.get("requests").and_then(Json::as_array) else {
        return Err(ApiError::bad_request(
            "The batch request body must be a JSON object with a 'requests' array.",
        ));
    };
    if requests.is_empty() || requests.len() > MAX_STEPS {
        return Err(ApiError::bad_request(format!(
            "A batch holds 1 to {MAX_STEPS} requests; this one has {}.",
            requests.len()
        )));
    }
    let mut positions: HashMap<String, usize> = HashMap::new();
    let mut raw_dependencies = Vec::with_capacity(requests.len());
    let mut steps = Vec::with_capacity(requests.len());
    for (position, request) in requests.iter().enumerate() {
        let Some(request) = request.as_object() else {
            return Err(ApiError::bad_request(format!(
                "Batch request {} is not a JSON object.",
                position + 1
            )));
        };
        let id = step_string(request, "id", position)?;
        if positions
            .insert(id.to_ascii_lowercase(), position)
            .is_some()
        {
            return Err(ApiError::bad_request(format!(
                "Batch request ids must be unique; '{id}' appears more than once."
            )));
        }
        let method_text = step_string(request, "method", position)?;
        let method = match method_text.to_ascii_uppercase().as_str() {
            "GET" => Method::GET,
            "POST" => Method::POST,
            "PATCH" => Method::PATCH,
            "PUT" => Method::PUT,
            "DELETE" => Method::DELETE,
            _ => {
                return Err(ApiError::bad_request(format!(
                    "Batch request '{id}' has the method '{method_text}'; use GET, POST, PATCH, PUT or DELETE."
                )));
            }
        };
        let url = step_string(request, "url", position)?;
        let headers = step_headers(request, &id)?;
        let body = request.get("body").filter(|body| !body.is_null()).cloned();
        if body.is_some() && !headers.iter().any(|(name, _)| name == header::CONTENT_TYPE) {
            return Err(ApiError::bad_request(format!(
                "Batch request '{id}' has a body but no Content-Type header."
            )));
        }
        raw_dependencies.push(match request.get("dependsOn") {
            None | Some(Json::Null) => Vec::new(),
            Some(Json::Array(items)) => items
                .iter()
                .map(|item| {
                    item.as_str().map(str::to_string).ok_or_else(|| {
                        ApiError::bad_request(format!(
                            "The dependsOn of batch request '{id}' must list request ids (strings)."
                        ))
                    })
                })
                .collect::<Result<_, _>>()?,
            Some(_) => {
                return Err(ApiError::bad_request(format!(
                    "The dependsOn of batch request '{id}' must be an array of request ids."
                )));
            }
        });
        steps.push(Step {
            id,
            method,
            url,
            headers,
            body,
            depends_on: Vec::new(),
        });
    }
    for (step, dependencies) in steps.iter_mut().zip(raw_dependencies) {
        for dependency in dependencies {
            match positions.get(&dependency.to_ascii_lowercase()) {
                Some(&position) => step.depends_on.push(position),
                None => {
                    return Err(ApiError::bad_request(format!(
                        "Batch request '{}' depends on '{dependency}', which is not in the batch.",
                        step.id
                    )));
                }
            }
        }
    }
    Ok(steps)
}

fn step_string(
    request: &Map<String, Json>,
    name: &str,
    position: usize,
) -> Result<String, ApiError> {
    match request.get(name) {
        Some(Json::String(text)) if !text.is_empty() => Ok(text.clone()),
        _ => Err(ApiError::bad_request(format!(
            "Batch request {} needs a non-empty string '{name}'.",
            position + 1
        ))),
    }
}

fn step_headers(
    request: &Map<String, Json>,
    id: &str,
) -> Result<Vec<(HeaderName, HeaderValue)>, ApiError> {
    let invalid = || {
        ApiError::bad_request(format!(
            "The headers of batch request '{id}' must be an object of header names and string values."
        ))
    };
    let Some(headers) = request.get("headers").filter(|h| !h.is_null()) else {
        return Ok(Vec::new());
    };
    let headers = headers.as_object().ok_or_else(invalid)?;
    headers
        .iter()
        .map(|(name, value)| {
            let name = HeaderName::from_bytes(name.as_bytes()).map_err(|_| invalid())?;
            let value = value
                .as_str()
                .and_then(|value| HeaderValue::from_str(value).ok())
                .ok_or_else(invalid)?;
            Ok((name, value))
        })
        .collect()
}

/// Steps in input order, each after the steps it depends on; a cycle is refused before anything
/// runs.
fn execution_order(steps: &[Step]) -> Result<Vec<usize>, ApiError> {
    let mut done = vec![false; steps.len()];
    let mut order = Vec::with_capacity(steps.len());
    while order.len() < steps.len() {
        let ready = (0..steps.len()).find(|&position| {
            !done[position]
                && steps[position]
                    .depends_on
                    .iter()
                    .all(|&dependency| done[dependency])
        });
        let Some(position) = ready else {
            // Not every step is done (the loop's condition), and none is ready: a cycle.
            let stuck = (0..steps.len()).find(|&position| !done[position]);
            let through = stuck.map_or("?", |position| steps[position].id.as_str());
            return Err(ApiError::bad_request(format!(
                "The dependsOn of the batch form a cycle through request '{through}'."
            )));
        };
        done[position] = true;
        order.push(position);
    }
    Ok(order)
}

/// The step as a request under the service root, carrying the batch's credentials, host and
/// client-request-id.
fn step_request(
    envelope: &Parts,
    step: &Step,
    context: &RequestContext,
) -> Result<Request, ApiError> {
    // Graph documents relative URLs, but the official Python SDK sends absolute ones: their path
    // and query are used, whatever the host.
    let url = match step.url.split_once("://") {
        Some((scheme, rest))
            if scheme.eq_ignore_ascii_case("https") || scheme.eq_ignore_ascii_case("http") =>
        {
            rest.find('/').map_or("", |path| &rest[path..])
        }
        _ => step.url.as_str(),
    };
    // The SDKs' batch builders keep the version segment (`/beta/deviceManagement/…`); Graph
    // accepts both forms, and `/v1.0/…` answers as v1.0 does.
    let relative = url.trim_start_matches('/');
    let (root, relative) = match relative.split_once('/') {
        Some((first, rest))
            if first.eq_ignore_ascii_case("beta") || first.eq_ignore_ascii_case("v1.0") =>
        {
            (first, rest)
        }
        _ => ("beta", relative),
    };
    // A step that addresses `$batch`, however spelled, is refused by the dispatcher once its path
    // is parsed (see `BatchStep`).
    // Batch URLs are often written as people read them (`$filter=state eq 'failure'`): escape
    // what a URI may not hold; escapes already present stay as they are.
    let escaped = percent_encoding::utf8_percent_encode(relative, NOT_IN_URI);
    let mut request = Request::builder()
        .method(step.method.clone())
        .uri(format!("/{root}/{escaped}"));
    for (name, value) in &step.headers {
        request = request.header(name, value);
    }
    for name in [header::AUTHORIZATION, header::HOST] {
        for value in envelope.headers.get_all(&name) {
            request = request.header(&name, value);
        }
    }
    let body = match &step.body {
        Some(body) => Body::from(body.to_string()),
        None => Body::empty(),
    };
    let mut request = request.body(body).map_err(|_| {
        ApiError::bad_request(format!(
            "The url of batch request '{}' is not a valid URL: '{}'.",
            step.id, step.url
        ))
    })?;
    request.extensions_mut().insert(context.clone());
    request.extensions_mut().insert(BatchStep);
    Ok(request)
}

/// Marks a request as a step of a batch: the dispatcher refuses to route one to the batch
/// endpoint, however its URL spelled it (`%24batch`, other case, absolute, with a version).
#[derive(Clone, Copy, Debug)]
pub struct BatchStep;

/// `{id, status, headers, body}` of one step: JSON bodies as JSON, others base64-encoded.
async fn step_answer(id: &str, response: Response) -> Json {
    let (parts, body) = response.into_parts();
    let bytes = body
        .collect()
        .await
        .map(|b| b.to_bytes())
        .unwrap_or_default();
    let mut headers = Map::new();
    for (name, value) in &parts.headers {
        if name == header::CONTENT_LENGTH {
            continue;
        }
        if let Ok(value) = value.to_str() {
            headers.insert(
                graph_header_name(name.as_str()),
                Json::String(value.to_string()),
            );
        }
    }
    let mut answer = Map::new();
    answer.insert("id".into(), Json::String(id.to_string()));
    answer.insert("status".into(), Json::from(parts.status.as_u16()));
    answer.insert("headers".into(), Json::Object(headers));
    if !bytes.is_empty() {
        let is_json = parts
            .headers
            .get(header::CONTENT_TYPE)
            .and_then(|value| value.to_str().ok())
            .is_some_and(|value| value.starts_with("application/json"));
        // Graph base64-encodes every body that is not JSON (`$count`'s text/plain included).
        let encoded = || Json::String(STANDARD.encode(&bytes));
        let body = if is_json {
            serde_json::from_slice(&bytes).unwrap_or_else(|_| encoded())
        } else {
            encoded()
        };
        answer.insert("body".into(), body);
    }
    Json::Object(answer)
}

/// Header names as Graph writes them inside batch responses (`Content-Type`, `ETag`, …); the SDKs
/// look some of them up case-sensitively. Graph's own ids stay lower-case (`request-id`).
fn graph_header_name(name: &str) -> String {
    match name {
        "etag" => "ETag".into(),
        "odata-version" => "OData-Version".into(),
        "www-authenticate" => "WWW-Authenticate".into(),
        "request-id" | "client-request-id" => name.into(),
        _ => name
            .split('-')
            .map(|part| {
                let mut chars = part.chars();
                chars.next().map_or_else(String::new, |first| {
                    first.to_ascii_uppercase().to_string() + chars.as_str()
                })
            })
            .collect::<Vec<_>>()
            .join("-"),
    }
}
