//! The HTTP layer: the router, shared state, and the middleware every request passes through.
//! Graph's resources are dispatched by [`graph::dispatch`]; the server's own paths live beside it.

mod batch;
mod context;
mod error;
mod graph;
mod identity;
mod metadata;
mod query;
mod response;
mod routes;
mod skiptoken;
pub mod throttle;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{get, post};

use crate::auth::Verifier;
use crate::store::Store;
pub use context::RequestContext;
pub use error::ApiError;
use skiptoken::SkipTokens;
use throttle::Throttle;

/// Everything a request handler may use.
pub struct AppState {
    pub store: Arc<Store>,
    /// Signs the token endpoint's tokens; its public half is the JWKS.
    pub key: crate::auth::SigningKey,
    pub verifier: Verifier,
    pub throttle: Throttle,
    pub skiptokens: SkipTokens,
    pub page_size: u64,
    /// `http` or `https`: how clients reach this server (for next links and Location).
    pub scheme: &'static str,
}

impl AppState {
    pub fn new(
        store: Arc<Store>,
        key: crate::auth::SigningKey,
        throttle: Throttle,
        page_size: u64,
        scheme: &'static str,
    ) -> Self {
        Self {
            store,
            verifier: Verifier::new(&key),
            throttle,
            skiptokens: SkipTokens::new(&key.mac_secret),
            page_size,
            scheme,
            key,
        }
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/{tenant}/oauth2/v2.0/token", post(identity::token))
        .route(
            "/{tenant}/v2.0/.well-known/openid-configuration",
            get(identity::openid_configuration),
        )
        .route("/{tenant}/discovery/v2.0/keys", get(identity::keys))
        .route(
            "/common/discovery/instance",
            get(identity::instance_discovery),
        )
        .fallback(graph::dispatch)
        .with_state(state)
        .layer(axum::middleware::from_fn(context::with_request_context))
}

/// 200 with no work behind it: the listener is bound only after the store has opened and migrated,
/// so a server that answers is ready. Being free, it also measures the HTTP stack's ceiling.
async fn healthz() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}
