//! Response builders with Graph's headers (api.md §5). Entity bodies are spliced from the stored
//! canonical JSON rather than re-encoded.

use axum::body::Body;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::Response;

use crate::store::StoredEntity;

pub const ODATA_JSON: &str = "application/json;odata.metadata=minimal;odata.streaming=true;IEEE754Compatible=false;charset=utf-8";

pub fn json_response(status: StatusCode, body: String) -> Response {
    json_bytes_response(status, bytes::Bytes::from(body))
}

/// [`json_response`] of a body already in shareable bytes (a kept page).
pub fn json_bytes_response(status: StatusCode, body: bytes::Bytes) -> Response {
    let mut response = Response::new(Body::from(body));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(header::CONTENT_TYPE, HeaderValue::from_static(ODATA_JSON));
    headers.insert("OData-Version", HeaderValue::from_static("4.0"));
    response
}

pub fn text_response(body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("text/plain;charset=utf-8"),
    );
    response
        .headers_mut()
        .insert("OData-Version", HeaderValue::from_static("4.0"));
    response
}

pub fn empty_response(status: StatusCode) -> Response {
    let mut response = Response::new(Body::empty());
    *response.status_mut() = status;
    response
}

/// Appends the annotations and properties of a stored entity to `out` as one JSON object, with
/// `@odata.context` first when given.
pub fn push_entity(out: &mut String, context_url: Option<&str>, entity: &StoredEntity) {
    out.push('{');
    if let Some(context_url) = context_url {
        out.push_str("\"@odata.context\":");
        out.push_str(&json_string(context_url));
        out.push(',');
    }
    out.push_str("\"@odata.etag\":");
    out.push_str(&json_string(&entity.etag));
    out.push(',');
    // The stored body is an object: splice its members after ours.
    out.push_str(&entity.body[1..]);
}

/// A single-entity response with its `ETag` header.
pub fn entity_response(status: StatusCode, context_url: &str, entity: &StoredEntity) -> Response {
    let mut body = String::with_capacity(entity.body.len() + context_url.len() + 64);
    push_entity(&mut body, Some(context_url), entity);
    let mut response = json_response(status, body);
    if let Ok(etag) = HeaderValue::from_str(&entity.etag) {
        response.headers_mut().insert(header::ETAG, etag);
    }
    response
}

pub fn json_string(text: &str) -> String {
    serde_json::to_string(text).expect("strings always serialise")
}
