//! The HTTP layer: the router, shared state, and the middleware every request passes through.
//! Graph's resources are dispatched by [`graph::dispatch`]; the server's own paths live beside it.

mod admin;
mod analytics;
mod batch;
mod body;
mod caller;
mod context;
mod dashboard;
mod error;
mod exports;
mod extract;
pub mod faults;
mod graph;
mod identity;
pub mod journal;
mod metadata;
pub mod metrics;
mod query;
mod resources;
mod response;
mod routes;
mod skiptoken;
pub mod throttle;

use std::sync::Arc;

use axum::Router;
use axum::http::StatusCode;
use axum::response::{IntoResponse, Response};
use axum::routing::{any, delete, get, post};

use crate::auth::Verifier;
use crate::store::Store;
pub use context::RequestContext;
pub use error::ApiError;
use journal::Journal;
use skiptoken::SkipTokens;
use throttle::Throttle;

/// The most header bytes a request may carry (Graph-shaped 431 beyond).
pub const MAX_HEADER_BYTES: usize = 64 * 1024;

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
    pub journal: Journal,
    pub faults: faults::Faults,
    /// How long a client may take to send a request body.
    pub body_timeout: std::time::Duration,
    /// How long a request may take in all (see [`context::with_request_context`]).
    pub request_timeout: std::time::Duration,
    /// Whether `/metrics` needs a `graphpilot.Admin` token.
    pub metrics_need_token: bool,
    /// The production profile's quirks in effect.
    pub profile: crate::profile::Profile,
    /// Draws whether a 429 goes without `Retry-After` (`retryAfterOmitted`, seeded by `seed`).
    retry_after_draws: std::sync::Mutex<rand_chacha::ChaCha8Rng>,
    /// Signs the export jobs' download links.
    pub links: exports::LinkSigner,
    pub exports: Arc<crate::io::export_jobs::ExportRunner>,
}

/// How a server behaves towards its clients (from `serve`'s flags).
pub struct Settings {
    pub page_size: u64,
    pub scheme: &'static str,
    pub journal_size: usize,
    pub faults: faults::Faults,
    pub body_timeout: std::time::Duration,
    pub request_timeout: std::time::Duration,
    pub metrics_need_token: bool,
    pub profile: crate::profile::Profile,
    pub exports: Arc<crate::io::export_jobs::ExportRunner>,
}

impl AppState {
    pub fn new(
        store: Arc<Store>,
        key: crate::auth::SigningKey,
        throttle: Throttle,
        settings: Settings,
    ) -> Self {
        use rand::SeedableRng;
        Self {
            retry_after_draws: std::sync::Mutex::new(rand_chacha::ChaCha8Rng::seed_from_u64(
                settings.profile.quirks.seed as u64,
            )),
            links: exports::LinkSigner::new(&key.mac_secret),
            profile: settings.profile,
            exports: settings.exports,
            store,
            verifier: Verifier::new(&key),
            throttle,
            skiptokens: SkipTokens::new(&key.mac_secret),
            page_size: settings.page_size,
            scheme: settings.scheme,
            key,
            journal: Journal::new(settings.journal_size),
            faults: settings.faults,
            body_timeout: settings.body_timeout,
            request_timeout: settings.request_timeout,
            metrics_need_token: settings.metrics_need_token,
        }
    }

    /// Whether this 429 goes without `Retry-After` (`retryAfterOmitted`): one draw per 429 from
    /// a generator seeded by `seed`, so a run is reproducible.
    pub fn omit_retry_after(&self) -> bool {
        use rand::Rng;
        let chance = self.profile.quirks.retry_after_omitted;
        if chance <= 0.0 {
            return false;
        }
        let mut draws = self
            .retry_after_draws
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        draws.random::<f64>() < chance
    }
}

pub fn router(state: Arc<AppState>) -> Router {
    Router::new()
        .route("/healthz", get(healthz))
        .route("/livez", get(livez))
        .route("/metrics", get(metrics::scrape))
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
        .route("/graphpilot/openapi.json", get(admin::openapi))
        .route("/graphpilot/requests", get(admin::requests))
        .route(
            "/graphpilot/faults",
            get(admin::list_faults)
                .post(admin::add_fault)
                .delete(admin::clear_faults),
        )
        .route("/graphpilot/faults/{id}", delete(admin::remove_fault))
        .route("/graphpilot/tenants", delete(admin::reset_all))
        .route("/graphpilot/tenants/{tenant}", delete(admin::reset_tenant))
        .route("/graphpilot/tenants/{tenant}/seed", post(admin::seed))
        .route("/graphpilot/tenants/{tenant}/export", get(admin::export))
        .route(
            "/graphpilot/tenants/{tenant}/import",
            post(admin::import_records),
        )
        .route("/graphpilot/profile", get(admin::profile))
        .route("/graphpilot/sync/runs", get(admin::sync_runs))
        .route("/graphpilot/exports/{file}", get(exports::download))
        .route("/graphpilot/analytics", any(analytics::dispatch))
        .route("/graphpilot/analytics/{*rest}", any(analytics::dispatch))
        .route("/dashboard", get(dashboard::page))
        .route("/dashboard/signin", get(dashboard::sign_in_with_code))
        .route("/dashboard/session", post(dashboard::sign_in_with_token))
        .route("/dashboard/signout", post(dashboard::sign_out))
        .route("/dashboard/dashboard.js", get(dashboard::script))
        .route("/dashboard/dashboard.css", get(dashboard::style))
        .route("/dashboard/icon.svg", get(dashboard::icon))
        .fallback(graph::dispatch)
        .with_state(state.clone())
        .layer(axum::middleware::from_fn_with_state(
            state,
            context::with_request_context,
        ))
}

/// Readiness: 200 while the database answers (it watches every store call, so this costs
/// nothing); 503 in Graph's error shape while it is down. The listener is bound only after the
/// store has opened and migrated, so a server that answers has been ready once. Being free, it
/// also measures the HTTP stack's ceiling.
async fn healthz(axum::extract::State(state): axum::extract::State<Arc<AppState>>) -> Response {
    use crate::store::Readiness;
    match state.store.readiness() {
        Readiness::Ready => (StatusCode::OK, "ok\n").into_response(),
        // Reads are served and nothing is lost: ready, saying what is refused.
        Readiness::WritesRefused { for_seconds, .. } => (
            StatusCode::OK,
            format!("ok: reads served; writes refused for {for_seconds} s: the storage is full\n"),
        )
            .into_response(),
        Readiness::Down { for_seconds, cause } => {
            ApiError::not_ready(for_seconds, &cause).into_response()
        }
    }
}

/// Liveness: 200 as long as the process serves HTTP, whatever its database does.
async fn livez() -> Response {
    (StatusCode::OK, "ok\n").into_response()
}
