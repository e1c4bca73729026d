//! Request bodies: a JSON body read within its limits (media type, size, time), the refusal of a
//! bad one in Graph's words, and the draining of a body an answer did not need.

use axum::body::{Body, Bytes};
use axum::http::header;
use axum::http::request::Parts;
use http_body_util::BodyExt;

use super::error::ApiError;
use crate::model::BodyError;

/// The largest request body accepted (api.md §6).
pub const MAX_BODY_BYTES: usize = 4 * 1024 * 1024;

/// Whether `Content-Length` announces more than [`MAX_BODY_BYTES`].
fn declared_too_large(parts: &Parts) -> bool {
    parts
        .headers
        .get(header::CONTENT_LENGTH)
        .and_then(|value| value.to_str().ok())
        .and_then(|value| value.parse::<u64>().ok())
        .is_some_and(|length| length > MAX_BODY_BYTES as u64)
}

/// Reads and drops a body the answer did not need (a 401, 403, 429 or injected fault to a POST):
/// the connection then stays usable for the client's next request, where an unread body would
/// make it close under the client's feet. Bodies declared over the limit are not read; their
/// connection closes.
pub async fn drain(parts: &Parts, body: Body, body_timeout: std::time::Duration) {
    if declared_too_large(parts) {
        return;
    }
    let _ = tokio::time::timeout(
        body_timeout,
        http_body_util::Limited::new(body, MAX_BODY_BYTES).collect(),
    )
    .await;
}

pub fn body_error(error: BodyError) -> ApiError {
    match error {
        BodyError::Malformed(message) => ApiError::bad_request(message),
        BodyError::Invalid(message) => ApiError::validation(message),
    }
}

/// Reads a JSON request body: `Content-Type: application/json` (415 otherwise), at most
/// [`MAX_BODY_BYTES`] (413 otherwise, refused before reading when `Content-Length` says so).
pub async fn read_json_body(
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
    if declared_too_large(parts) {
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
