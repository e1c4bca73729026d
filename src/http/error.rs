//! The one error type of the HTTP layer: [`ApiError`] carries Graph's code (and so its status) and
//! a message; as an axum response it is Graph's error body, whose `innerError` ids the request
//! middleware stamps (api.md §11).

use std::sync::Arc;

use axum::http::{HeaderName, HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};

use crate::store::StoreError;

/// Graph's error codes that graphpilot answers with, each with its status.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum ErrorCode {
    BadRequest,
    ModelValidationFailure,
    InvalidAuthenticationToken,
    Forbidden,
    /// A download link (blob SAS) whose signature or expiry does not hold.
    AuthenticationFailed,
    ResourceNotFound,
    NotFound,
    MethodNotAllowed,
    RequestTimeout,
    PreconditionFailed,
    RequestEntityTooLarge,
    RequestUriTooLong,
    UnsupportedMediaType,
    FailedDependency,
    TooManyRequests,
    RequestHeaderFieldsTooLarge,
    InternalServerError,
    BadGateway,
    ServiceUnavailable,
    GatewayTimeout,
    InsufficientStorage,
}

impl ErrorCode {
    pub fn status(self) -> StatusCode {
        match self {
            ErrorCode::BadRequest | ErrorCode::ModelValidationFailure => StatusCode::BAD_REQUEST,
            ErrorCode::InvalidAuthenticationToken => StatusCode::UNAUTHORIZED,
            ErrorCode::Forbidden | ErrorCode::AuthenticationFailed => StatusCode::FORBIDDEN,
            ErrorCode::ResourceNotFound | ErrorCode::NotFound => StatusCode::NOT_FOUND,
            ErrorCode::MethodNotAllowed => StatusCode::METHOD_NOT_ALLOWED,
            ErrorCode::RequestTimeout => StatusCode::REQUEST_TIMEOUT,
            ErrorCode::PreconditionFailed => StatusCode::PRECONDITION_FAILED,
            ErrorCode::RequestEntityTooLarge => StatusCode::PAYLOAD_TOO_LARGE,
            ErrorCode::RequestUriTooLong => StatusCode::URI_TOO_LONG,
            ErrorCode::UnsupportedMediaType => StatusCode::UNSUPPORTED_MEDIA_TYPE,
            ErrorCode::FailedDependency => StatusCode::FAILED_DEPENDENCY,
            ErrorCode::TooManyRequests => StatusCode::TOO_MANY_REQUESTS,
            ErrorCode::RequestHeaderFieldsTooLarge => StatusCode::REQUEST_HEADER_FIELDS_TOO_LARGE,
            ErrorCode::InternalServerError => StatusCode::INTERNAL_SERVER_ERROR,
            ErrorCode::BadGateway => StatusCode::BAD_GATEWAY,
            ErrorCode::ServiceUnavailable => StatusCode::SERVICE_UNAVAILABLE,
            ErrorCode::GatewayTimeout => StatusCode::GATEWAY_TIMEOUT,
            ErrorCode::InsufficientStorage => StatusCode::INSUFFICIENT_STORAGE,
        }
    }

    pub fn as_str(self) -> &'static str {
        match self {
            ErrorCode::BadRequest => "BadRequest",
            ErrorCode::ModelValidationFailure => "ModelValidationFailure",
            ErrorCode::InvalidAuthenticationToken => "InvalidAuthenticationToken",
            ErrorCode::Forbidden => "Forbidden",
            ErrorCode::AuthenticationFailed => "AuthenticationFailed",
            ErrorCode::ResourceNotFound => "ResourceNotFound",
            ErrorCode::NotFound => "NotFound",
            ErrorCode::MethodNotAllowed => "MethodNotAllowed",
            ErrorCode::RequestTimeout => "RequestTimeout",
            ErrorCode::PreconditionFailed => "PreconditionFailed",
            ErrorCode::RequestEntityTooLarge => "RequestEntityTooLarge",
            ErrorCode::RequestUriTooLong => "RequestUriTooLong",
            ErrorCode::UnsupportedMediaType => "UnsupportedMediaType",
            ErrorCode::FailedDependency => "FailedDependency",
            ErrorCode::TooManyRequests => "TooManyRequests",
            ErrorCode::RequestHeaderFieldsTooLarge => "RequestHeaderFieldsTooLarge",
            ErrorCode::InternalServerError => "InternalServerError",
            ErrorCode::BadGateway => "BadGateway",
            ErrorCode::ServiceUnavailable => "ServiceUnavailable",
            ErrorCode::GatewayTimeout => "GatewayTimeout",
            ErrorCode::InsufficientStorage => "InsufficientStorage",
        }
    }
}

/// The `Retry-After` of a 503 or 507 caused by the database or its disk: long enough not to
/// hammer a recovering database, short enough that writes resume soon after it is back.
pub const STORAGE_RETRY_AFTER_SECONDS: u64 = 2;

#[derive(Debug)]
pub struct ApiError {
    pub code: ErrorCode,
    pub message: String,
    pub headers: Vec<(HeaderName, HeaderValue)>,
}

/// What an error response still needs its body written from: the request middleware (which knows
/// the request's ids) writes it (`http/context.rs`).
#[derive(Clone, Debug)]
pub struct UnstampedError {
    pub code: ErrorCode,
    pub message: Arc<str>,
}

impl ApiError {
    fn new(code: ErrorCode, message: impl Into<String>) -> Self {
        Self {
            code,
            message: message.into(),
            headers: Vec::new(),
        }
    }

    pub fn status(&self) -> StatusCode {
        self.code.status()
    }

    fn with_header(mut self, name: HeaderName, value: &str) -> Self {
        if let Ok(value) = HeaderValue::from_str(value) {
            self.headers.push((name, value));
        }
        self
    }

    pub fn bad_request(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::BadRequest, message)
    }

    pub fn segment_not_found(segment: &str) -> Self {
        Self::bad_request(format!("Resource not found for the segment '{segment}'."))
    }

    pub fn validation(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::ModelValidationFailure, message)
    }

    pub fn unauthenticated(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::InvalidAuthenticationToken,
            message,
        )
        .with_header(
            header::WWW_AUTHENTICATE,
            "Bearer realm=\"\", authorization_uri=\"https://login.microsoftonline.com/common/oauth2/authorize\", client_id=\"00000003-0000-0000-c000-000000000000\"",
        )
    }

    pub fn forbidden(permissions: &[&str]) -> Self {
        Self::new(
            ErrorCode::Forbidden,
            format!(
                "Application is not authorized to perform this operation. Application must have one of the following scopes: {}",
                permissions.join(", ")
            ),
        )
    }

    /// 403 for a reason other than a missing permission.
    pub fn forbidden_because(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::Forbidden, message)
    }

    /// The same error with another message.
    pub fn with_message(mut self, message: impl Into<String>) -> Self {
        self.message = message.into();
        self
    }

    pub fn not_found(what: &str, id: &str) -> Self {
        Self::new(
            ErrorCode::ResourceNotFound,
            format!("{what} with key '{id}' was not found."),
        )
    }

    /// A download link that does not authenticate (changed, incomplete or expired).
    pub fn link_refused(message: impl Into<String>) -> Self {
        Self::new(ErrorCode::AuthenticationFailed, message)
    }

    pub fn not_found_path(path: &str) -> Self {
        Self::new(
            ErrorCode::NotFound,
            format!("No resource at '{path}'. Graph is served under /beta; health at /healthz."),
        )
    }

    pub fn method_not_allowed(method: &str, allowed: &[&str]) -> Self {
        Self::new(
            ErrorCode::MethodNotAllowed,
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
            ErrorCode::FailedDependency,
            format!("Not run: it depends on batch request '{dependency}', which failed."),
        )
    }

    pub fn precondition_failed() -> Self {
        Self::new(
            ErrorCode::PreconditionFailed,
            "The entity has changed since the ETag in If-Match was issued; read it again and retry.",
        )
    }

    pub fn payload_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::RequestEntityTooLarge,
            format!("The request body is larger than the {limit}-byte limit."),
        )
    }

    pub fn uri_too_long(limit: usize) -> Self {
        Self::new(
            ErrorCode::RequestUriTooLong,
            format!(
                "The query string is longer than {limit} bytes; shorten the $filter or split the request."
            ),
        )
    }

    pub fn header_fields_too_large(limit: usize) -> Self {
        Self::new(
            ErrorCode::RequestHeaderFieldsTooLarge,
            format!("The request's headers are larger than the {limit}-byte limit."),
        )
    }

    pub fn request_timeout(seconds: u64) -> Self {
        Self::new(
            ErrorCode::RequestTimeout,
            format!("The request body did not arrive within {seconds} seconds."),
        )
    }

    pub fn unsupported_media_type(found: Option<&str>) -> Self {
        Self::new(ErrorCode::UnsupportedMediaType,
            match found {
                Some(found) => format!(
                    "Content-Type '{found}' is not supported; send the body as 'application/json'."
                ),
                None => "The request has a body but no Content-Type; send 'Content-Type: application/json'.".into(),
            },
        )
    }

    pub fn too_many_requests(retry_after_seconds: u64) -> Self {
        Self::new(ErrorCode::TooManyRequests,
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
            429 => ErrorCode::TooManyRequests,
            502 => ErrorCode::BadGateway,
            503 => ErrorCode::ServiceUnavailable,
            504 => ErrorCode::GatewayTimeout,
            507 => ErrorCode::InsufficientStorage,
            _ => ErrorCode::InternalServerError,
        };
        let error = Self::new(code, format!("Injected by graphpilot fault rule '{rule}'."));
        match retry_after {
            Some(seconds) => error.with_header(header::RETRY_AFTER, &seconds.to_string()),
            None => error,
        }
    }

    /// A failure of ours: logged with its cause, shown to the caller without internals.
    pub fn internal(cause: &dyn std::fmt::Display) -> Self {
        tracing::error!(error = %cause, "internal error");
        Self::new(
            ErrorCode::InternalServerError,
            "An internal error occurred; the request-id identifies it in the server log.",
        )
    }

    /// 503: the database is down, restarting, read-only or locked past the deadline; nothing
    /// was changed, and the same request may succeed after `Retry-After` (docs/operations.md).
    pub fn service_unavailable(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "answered 503: the database is unavailable");
        Self::new(ErrorCode::ServiceUnavailable,
            "The service is temporarily unavailable: its database cannot be reached or cannot take writes right now. Nothing was changed; retry after the number of seconds in Retry-After.",
        )
        .with_header(header::RETRY_AFTER, &STORAGE_RETRY_AFTER_SECONDS.to_string())
    }

    /// 504: the deadline passed while the write was being committed (a stalled disk); it may
    /// or may not take effect, as with any gateway timeout.
    pub fn outcome_unknown(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "answered 504: a commit outlasted the request deadline");
        Self::new(ErrorCode::GatewayTimeout,
            "The write was being committed when the request deadline passed (the storage is slow); it may or may not take effect. Read the entity before retrying.",
        )
        .with_header(header::RETRY_AFTER, &STORAGE_RETRY_AFTER_SECONDS.to_string())
    }

    /// `/healthz` while the database is down.
    pub fn not_ready(for_seconds: u64, cause: &str) -> Self {
        Self::new(ErrorCode::ServiceUnavailable,
            format!("Not ready: the database has been unreachable for {for_seconds} s ({cause}). Requests get 503 until it is back; /livez says whether the process itself is up."),
        )
        .with_header(header::RETRY_AFTER, &STORAGE_RETRY_AFTER_SECONDS.to_string())
    }

    /// 507: the disk under the database is full; nothing was changed, reads still work, and
    /// writes succeed again once space is freed (docs/decisions.md).
    pub fn insufficient_storage(cause: &dyn std::fmt::Display) -> Self {
        tracing::warn!(error = %cause, "answered 507: the storage is full");
        Self::new(ErrorCode::InsufficientStorage,
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
}

impl IntoResponse for ApiError {
    /// The status and headers; the body is written by the request middleware, which stamps the
    /// request's ids into it (a response that never passes it, as in a batch step, is stamped by
    /// whoever collects it).
    fn into_response(self) -> Response {
        let mut response = self.code.status().into_response();
        response.headers_mut().extend(self.headers);
        response.extensions_mut().insert(UnstampedError {
            code: self.code,
            message: self.message.into(),
        });
        response
    }
}
