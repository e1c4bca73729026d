//! The one error type of the HTTP layer. Each variant carries Graph's status and code; rendering
//! writes Graph's error body (api.md §11) with the request's ids.

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::Response;

use super::context::RequestContext;
use super::response::json_response;
use crate::store::StoreError;

/// The `Retry-After` of a 503 or 507 caused by the database or its disk: long enough not to
/// hammer a recovering database, short enough that writes resume soon after it is back.
pub const STORAGE_RETRY_AFTER_SECONDS: u64 = 2;

#[derive(Debug)]
pub struct ApiError {
    pub status: StatusCode,
    pub code: &'static str,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

impl ApiError {
    fn new(status: StatusCode, code: &'static str, message: impl Into<String>) -> Self {
        Self {
            status,
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "BadRequest", message)
    }

    pub fn segment_not_found(segment: &str) -> Self {
        Self::bad_request(format!("Resource not found for the segment '{segment}'."))
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(StatusCode::BAD_REQUEST, "ModelValidationFailure", message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(
            StatusCode::UNAUTHORIZED,
            "InvalidAuthenticationToken",
            message,
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        )
    }

    pub fn forbidden(permissions: &[&str]) -> Self {
        Self::new(
            StatusCode::FORBIDDEN,
            "Forbidden",
            format!(
                "Application is not authorized to perform this operation. Application must have one of the following scopes: {}",
                permissions.join(", ")
            ),
        )
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "ResourceNotFound",
            format!("{what} with key '{id}' was not found."),
        )
    }

    pub fn not_found_path(path: &str) -> Self {
        Self::new(
            StatusCode::NOT_FOUND,
            "NotFound",
            format!("No resource at '{path}'. Graph is served under /beta; health at /healthz."),
        )
    }

    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        Self::new(
            StatusCode::METHOD_NOT_ALLOWED,
            "MethodNotAllowed",
            format!(
                "The HTTP method '{method}' is not allowed on this resource; allowed: {}.",
                allowed.join(", ")
            ),
        )
        .with_header(header::ALLOW, &allowed.join(", "))
    }

    /// A batch step that did not run because a step it depends on failed (api.md §10).
    pub fn failed_dependency(dependency: &str) -> Self {
        Self::new(
            StatusCode::FAILED_DEPENDENCY,
            "FailedDependency",
            format!("Not run: it depends on batch request '{dependency}', which failed."),
        )
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            StatusCode::PRECONDITION_FAILED,
            "PreconditionFailed",
            "The entity has changed since the ETag in If-Match was issued; read it again and retry.",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::PAYLOAD_TOO_LARGE,
            "RequestEntityTooLarge",
            format!("The request body is larger than the {limit}-byte limit."),
        )
    }

    pub fn uri_too_long(limit: usize) -> Self {
        Self::new(
            StatusCode::URI_TOO_LONG,
            "RequestUriTooLong",
            format!(
                "The query string is longer than {limit} bytes; shorten the $filter or split the request."
            ),
        )
    }

    pub fn header_fields_too_large(limit: usize) -> Self {
        Self::new(
            StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            "RequestHeaderFieldsTooLarge",
            format!("The request's headers are larger than the {limit}-byte limit."),
        )
    }

    pub fn request_timeout(seconds: u64) -> Self {
        Self::new(
            StatusCode::REQUEST_TIMEOUT,
            "RequestTimeout",
            format!("The request body did not arrive within {seconds} seconds."),
        )
    }

    pub fn unsupported_media_type(found: Option<&str>) -> Self {
        Self::new(
            StatusCode::UNSUPPORTED_MEDIA_TYPE,
            "UnsupportedMediaType",
            match found {
                Some(found) => format!(
                    "Content-Type '{found}' is not supported; send the body as 'application/json'."
                ),
                None => "The request has a body but no Content-Type; send 'Content-Type: application/json'.".into(),
            },
        )
    }

    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        Self::new(
            StatusCode::TOO_MANY_REQUESTS,
            "TooManyRequests",
            format!(
                "Too many requests for this application or tenant; retry after {retry_after_seconds} seconds."
            ),
        )
        .with_header(header::RETRY_AFTER, &retry_after_seconds.to_string())
    }

    /// A failure injected on purpose (fault injection): the status a real service would answer,
    /// with its usual code, and a message that says it was injected.
    pub fn injected(status: StatusCode, retry_after: Option<u64>, rule: &str) -> Self {
        let code = match status.as_u16() {
            429 => "TooManyRequests",
            502 => "BadGateway",
            503 => "ServiceUnavailable",
            504 => "GatewayTimeout",
            507 => "InsufficientStorage",
            _ => "InternalServerError",
        };
        let error = Self::new(
            status,
            code,
            format!("Injected by graphpilot fault rule '{rule}'."),
        );
        match retry_after {
            Some(seconds) => error.with_header(header::RETRY_AFTER, &seconds.to_string()),
            None => error,
        }
    }

    /// A failure of ours: logged with its cause, shown to the caller without internals.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            StatusCode::INTERNAL_SERVER_ERROR,
            "InternalServerError",
            "An internal error occurred; the request-id identifies it in the server log.",
        )
    }

    /// 503: the database is down, restarting, read-only or locked past the deadline; nothing
    /// was changed, and the same request may succeed after `Retry-After` (docs/operations.md).
    pub fn service_unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "answered 503: the database is unavailable");
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            "The service is temporarily unavailable: its database cannot be reached or cannot take writes right now. Nothing was changed; retry after the number of seconds in Retry-After.",
        )
        .with_header(header::RETRY_AFTER, &STORAGE_RETRY_AFTER_SECONDS.to_string())
    }

    /// 504: the deadline passed while the write was being committed (a stalled disk); it may
    /// or may not take effect, as with any gateway timeout.
    pub fn outcome_unknown(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "answered 504: a commit outlasted the request deadline");
        Self::new(
            StatusCode::GATEWAY_TIMEOUT,
            "GatewayTimeout",
            "The write was being committed when the request deadline passed (the storage is slow); it may or may not take effect. Read the entity before retrying.",
        )
        .with_header(header::RETRY_AFTER, &STORAGE_RETRY_AFTER_SECONDS.to_string())
    }

    /// `/healthz` while the database is down.
    pub fn not_ready(for_seconds: u64, cause: &str) -> Self {
        Self::new(
            StatusCode::SERVICE_UNAVAILABLE,
            "ServiceUnavailable",
            format!("Not ready: the database has been unreachable for {for_seconds} s ({cause}). Requests get 503 until it is back; /livez says whether the process itself is up."),
        )
        .with_header(header::RETRY_AFTER, &STORAGE_RETRY_AFTER_SECONDS.to_string())
    }

    /// 507: the disk under the database is full; nothing was changed, reads still work, and
    /// writes succeed again once space is freed (docs/decisions.md).
    pub fn insufficient_storage(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "answered 507: the storage is full");
        Self::new(
            StatusCode::INSUFFICIENT_STORAGE,
            "InsufficientStorage",
            "The service's storage is full, so the write was not made; nothing was changed. Reads still work; retry once space is freed (Retry-After suggests when to try).",
        )
        .with_header(header::RETRY_AFTER, &STORAGE_RETRY_AFTER_SECONDS.to_string())
    }

    /// Maps a store failure, naming what was not found.
    pub fn from_store(error: StoreError, what: &str, id: &str) -> Self {
        match error {
            StoreError::NotFound => Self::not_found(what, id),
            StoreError::PreconditionFailed => Self::precondition_failed(),
            StoreError::Unavailable(cause) => Self::service_unavailable(&format!("{cause:#}")),
            StoreError::Full(cause) => Self::insufficient_storage(&format!("{cause:#}")),
            StoreError::OutcomeUnknown(cause) => Self::outcome_unknown(&format!("{cause:#}")),
            StoreError::Internal(cause) => Self::internal(&format!("{cause:#}")),
        }
    }

    /// Maps a failure of work that is not about one entity (admin and bulk work).
    pub fn from_failure(error: &anyhow::Error) -> Self {
        match error.downcast_ref::<StoreError>() {
            Some(StoreError::Unavailable(cause)) => {
                Self::service_unavailable(&format!("{cause:#}"))
            }
            Some(StoreError::Full(cause)) => Self::insufficient_storage(&format!("{cause:#}")),
            _ => match crate::store::kind_of_any(error) {
                crate::store::FailureKind::Full => {
                    Self::insufficient_storage(&format!("{error:#}"))
                }
                crate::store::FailureKind::Unavailable => {
                    Self::service_unavailable(&format!("{error:#}"))
                }
                _ => Self::internal(&format!("{error:#}")),
            },
        }
    }

    /// Graph's error body, with the request's ids and the time.
    pub fn into_response(self, context: &RequestContext) -> Response {
        let body = serde_json::json!({
            "error": {
                "code": self.code,
                "message": self.message,
                "innerError": {
                    "date": context.started_display(),
                    "request-id": context.request_id,
                    "client-request-id": context.client_request_id,
                }
            }
        });
        let mut response = json_response(self.status, body.to_string());
        response.headers_mut().extend(self.headers);
        response
    }
}
