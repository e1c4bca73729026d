//! Extractors that refuse in Graph's error shape and in the contract's order of checks: the
//! caller first (401, then 403), then path values, then the query string (400).

use std::sync::Arc;

use axum::extract::{FromRequestParts, Path};
use axum::http::request::Parts;
use serde::de::DeserializeOwned;

use super::AppState;
use super::caller::authenticate;
use super::error::ApiError;
use super::journal::Caller;
use crate::auth::ADMIN_ROLE;

/// A caller whose token carries the `graphpilot.Admin` role.
pub struct AdminCaller;

impl FromRequestParts<Arc<AppState>> for AdminCaller {
    type Rejection = ApiError;

    async fn from_request_parts(
        parts: &mut Parts,
        state: &Arc<AppState>,
    ) -> Result<Self, Self::Rejection> {
        let principal = authenticate(state, parts)?;
        if let Some(caller) = parts.extensions.get::<Caller>() {
            caller.set(&principal.tenant, &principal.app);
        }
        if principal.permissions.iter().any(|role| role == ADMIN_ROLE) {
            Ok(AdminCaller)
        } else {
            Err(ApiError::forbidden(&[ADMIN_ROLE]))
        }
    }
}

/// Path values, refused as a Graph 400 (axum's own rejection is plain text).
pub struct PathValue<T>(pub T);

impl<T, S> FromRequestParts<S> for PathValue<T>
where
    T: DeserializeOwned + Send,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, state: &S) -> Result<Self, Self::Rejection> {
        Path::<T>::from_request_parts(parts, state)
            .await
            .map(|Path(value)| PathValue(value))
            .map_err(|rejection| {
                ApiError::bad_request(format!("A value in the path is not valid: {rejection}."))
            })
    }
}

/// The query string as `T`, refused as a Graph 400 naming what is wrong.
pub struct QueryValues<T>(pub T);

impl<T, S> FromRequestParts<S> for QueryValues<T>
where
    T: DeserializeOwned,
    S: Send + Sync,
{
    type Rejection = ApiError;

    async fn from_request_parts(parts: &mut Parts, _: &S) -> Result<Self, Self::Rejection> {
        serde_urlencoded::from_str(parts.uri.query().unwrap_or(""))
            .map(QueryValues)
            .map_err(|error| {
                ApiError::bad_request(format!("The query string is not valid: {error}."))
            })
    }
}
