//! Who is calling: exactly one `Authorization: Bearer <token>` header, verified into the caller's
//! principal (tenant, app, permissions), or a Graph 401.

use std::sync::Arc;

use axum::http::header;
use axum::http::request::Parts;

use super::AppState;
use super::error::ApiError;
use crate::auth::Principal;

/// Exactly one `Authorization: Bearer <token>` header, verified.
pub fn authenticate(state: &AppState, parts: &Parts) -> Result<Arc<Principal>, ApiError> {
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
