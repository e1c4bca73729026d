//! The emulator's own controls, outside the Graph root under `/graphpilot/`: reset, seed, export,
//! import and the request journal (docs/admin.md; OpenAPI at `/graphpilot/openapi.json`). Errors
//! are Graph-shaped; every endpoint but the OpenAPI document needs a token with the
//! `graphpilot.Admin` role (`graphpilot token --admin`): no token 401, an ordinary one 403.

use std::sync::Arc;

use axum::body::{Body, Bytes};
use axum::extract::State;
use axum::http::{StatusCode, header};
use axum::response::Response;
use futures_util::stream;
use serde::Deserialize;
use serde_json::json;

use super::AppState;
use super::error::ApiError;
use super::extract::{AdminCaller, PathValue, QueryValues};
use super::faults::FaultRule;
use super::journal::JournalFilter;
use super::response::json_response;
use crate::edm::{DateTimeOffset, Seconds};
use crate::io::export::ExportWalker;
use crate::io::import::{ImportReport, OnError, import};
use crate::io::seed::{Scenario, SeedPlan, seed_tenant};

/// The largest import body the API takes; bigger imports go through `graphpilot import`.
const MAX_IMPORT_BYTES: usize = 256 * 1024 * 1024;

fn tenant_name(tenant: &str) -> Result<(), ApiError> {
    if tenant.is_empty() || tenant.len() > 256 || tenant.contains('\0') {
        return Err(ApiError::bad_request(
            "A tenant name is 1 to 256 characters, none of them NUL.",
        ));
    }
    Ok(())
}

/// `DELETE /graphpilot/tenants/{tenant}`: every event and detail of one tenant.
pub async fn reset_tenant(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
    PathValue(tenant): PathValue<String>,
) -> Result<Response, ApiError> {
    tenant_name(&tenant)?;
    reset(&state, Some(&tenant)).await
}

/// `DELETE /graphpilot/tenants`: everything of every tenant.
pub async fn reset_all(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    reset(&state, None).await
}

async fn reset(state: &AppState, tenant: Option<&str>) -> Result<Response, ApiError> {
    let (events, details) = state
        .store
        .reset(tenant)
        .await
        .map_err(|error| ApiError::from_store(error, "", ""))?;
    let body =
        json!({"tenant": tenant, "deletedEvents": events, "deletedPolicyStatusDetails": details});
    Ok(json_response(StatusCode::OK, body.to_string()))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields, rename_all = "camelCase")]
struct SeedRequest {
    count: u64,
    #[serde(default = "default_seed")]
    seed: u64,
    #[serde(default)]
    scenario: Scenario,
    /// The latest event time (ISO 8601); now when absent.
    end: Option<String>,
}

fn default_seed() -> u64 {
    1
}

/// The most events one seed request may create.
const MAX_SEED: u64 = 1_000_000;

/// `POST /graphpilot/tenants/{tenant}/seed`: the deterministic generator of `graphpilot seed`.
pub async fn seed(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
    PathValue(tenant): PathValue<String>,
    body: Body,
) -> Result<Response, ApiError> {
    tenant_name(&tenant)?;
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::payload_too_large(64 * 1024))?;
    let request: SeedRequest = serde_json::from_slice(&bytes).map_err(|error| {
        ApiError::bad_request(format!(
            "The seed request must be {{\"count\": N, \"seed\"?: S, \"scenario\"?: \"mostlyHealthy\"|\"badRollout\"|\"stuckInProgress\", \"end\"?: \"2026-11-01T00:00:00Z\"}}: {error}"
        ))
    })?;
    if request.count == 0 || request.count > MAX_SEED {
        return Err(ApiError::bad_request(format!(
            "'count' is 1 to {MAX_SEED}; seed more with `graphpilot seed`."
        )));
    }
    let end = match &request.end {
        None => DateTimeOffset::now(),
        Some(text) => DateTimeOffset::parse(text, Seconds::Required).map_err(|reason| {
            ApiError::bad_request(format!("'end' is not a DateTimeOffset: {reason}"))
        })?,
    };
    let plan = SeedPlan {
        tenant: tenant.clone(),
        count: request.count,
        seed: request.seed,
        scenario: request.scenario,
        end,
    };
    let outcome = seed_tenant(&state.store, &plan, |_| {})
        .await
        .map_err(|error| ApiError::from_store(error, "", ""))?;
    let body = json!({
        "tenant": tenant,
        "events": outcome.events,
        "policyStatusDetails": outcome.details,
        "seed": request.seed,
        "scenario": request.scenario,
    });
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// `GET /graphpilot/tenants/{tenant}/export`: NDJSON, streamed page by page.
pub async fn export(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
    PathValue(tenant): PathValue<String>,
) -> Result<Response, ApiError> {
    let streaming_state = state.clone();
    tenant_name(&tenant)?;
    let walker = ExportWalker::new(&tenant);
    let lines = stream::unfold(
        (walker, streaming_state),
        |(mut walker, state)| async move {
            match walker.next_page(&state.store).await {
                Ok(Some(page)) => {
                    let mut chunk = String::with_capacity(page.len() * 2048);
                    for event in &page {
                        chunk.push_str(&event.json());
                        chunk.push('\n');
                    }
                    Some((Ok::<_, std::io::Error>(Bytes::from(chunk)), (walker, state)))
                }
                Ok(None) => None,
                Err(error) => {
                    // Headers are gone: cut the stream so the client sees it incomplete.
                    tracing::error!(error = %error, "export failed mid-stream");
                    Some((
                        Err(std::io::Error::other(error.to_string())),
                        (walker, state),
                    ))
                }
            }
        },
    );
    let mut response = Response::new(Body::from_stream(lines));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        "application/x-ndjson".parse().expect("static"),
    );
    Ok(response)
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct ImportOptions {
    on_error: Option<OnError>,
}

/// `POST /graphpilot/tenants/{tenant}/import`: NDJSON (or a saved page, or an array), upserted by
/// id; `?onError=skip` imports the good records, the default `stop` imports nothing when one is
/// bad.
pub async fn import_records(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
    PathValue(tenant): PathValue<String>,
    QueryValues(options): QueryValues<ImportOptions>,
    body: Body,
) -> Result<Response, ApiError> {
    tenant_name(&tenant)?;
    let bytes = axum::body::to_bytes(body, MAX_IMPORT_BYTES)
        .await
        .map_err(|_| ApiError::payload_too_large(MAX_IMPORT_BYTES))?;
    let on_error = options.on_error.unwrap_or(OnError::Stop);
    let inputs = ["request body".to_string()];
    let outcome: anyhow::Result<ImportReport> = import(
        &state.store,
        &tenant,
        &inputs,
        |_| Ok(&bytes[..]),
        on_error,
        |_| {},
    )
    .await;
    match outcome {
        Ok(report) => Ok(json_response(
            StatusCode::OK,
            serde_json::to_string(&report).expect("serialisable"),
        )),
        Err(error) => match error.downcast_ref::<crate::store::StoreError>() {
            Some(_) => Err(ApiError::from_failure(&error)),
            None => Err(ApiError::validation(error.to_string())),
        },
    }
}

#[derive(Deserialize, Default)]
#[serde(rename_all = "camelCase")]
pub struct JournalQuery {
    tenant: Option<String>,
    app: Option<String>,
    status: Option<u16>,
    path: Option<String>,
    since: Option<String>,
    until: Option<String>,
    after: Option<u64>,
    top: Option<usize>,
}

/// `GET /graphpilot/requests`: the journal, oldest first, filtered.
pub async fn requests(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
    QueryValues(query): QueryValues<JournalQuery>,
) -> Result<Response, ApiError> {
    let instant = |name: &str, text: &Option<String>| {
        text.as_deref()
            .map(|text| {
                DateTimeOffset::parse(text, Seconds::Required).map_err(|reason| {
                    ApiError::bad_request(format!("'{name}' is not a DateTimeOffset: {reason}"))
                })
            })
            .transpose()
    };
    let filter = JournalFilter {
        tenant: query.tenant.clone(),
        app: query.app.clone(),
        status: query.status,
        path: query.path.clone(),
        since: instant("since", &query.since)?,
        until: instant("until", &query.until)?,
        after: query.after,
        limit: query
            .top
            .unwrap_or(100)
            .clamp(1, state.journal.capacity().max(1)),
    };
    let entries = state.journal.query(&filter);
    let body = json!({"capacity": state.journal.capacity(), "value": entries});
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// `GET /graphpilot/profile`: the profile and the effective value of every quirk.
pub async fn profile(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    Ok(json_response(
        StatusCode::OK,
        state.profile.to_json().to_string(),
    ))
}

/// `GET /graphpilot/sync/runs[?tenant=L]`: `graphpilot sync`'s run records, newest first.
pub async fn sync_runs(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
    axum::extract::RawQuery(query): axum::extract::RawQuery,
) -> Result<Response, ApiError> {
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.as_deref().unwrap_or(""))
            .map_err(|_| ApiError::bad_request("The query string is not valid."))?;
    let mut tenant = None;
    for (name, value) in &pairs {
        match name.as_str() {
            "tenant" => tenant = Some(value.as_str()),
            other => {
                return Err(ApiError::bad_request(format!(
                    "Unknown query parameter '{other}'; /graphpilot/sync/runs takes tenant."
                )));
            }
        }
    }
    let runs = state
        .store
        .sync_runs(tenant)
        .await
        .map_err(|error| ApiError::from_store(error, "", ""))?;
    let value: Vec<_> = runs
        .iter()
        .map(crate::model::sync_run::SyncRun::to_json)
        .collect();
    Ok(json_response(
        StatusCode::OK,
        json!({ "value": value }).to_string(),
    ))
}

/// `GET /graphpilot/faults`: the rules in force, with how often each matched and fired.
pub async fn list_faults(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let body = json!({"value": state.faults.list()});
    Ok(json_response(StatusCode::OK, body.to_string()))
}

/// `POST /graphpilot/faults`: adds a rule (the fields of a `[[rules]]` table, as JSON).
pub async fn add_fault(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
    body: Body,
) -> Result<Response, ApiError> {
    let bytes = axum::body::to_bytes(body, 64 * 1024)
        .await
        .map_err(|_| ApiError::payload_too_large(64 * 1024))?;
    let rule: FaultRule = serde_json::from_slice(&bytes)
        .map_err(|error| ApiError::bad_request(format!("Not a fault rule: {error}.")))?;
    let listed = state.faults.add(rule).map_err(ApiError::bad_request)?;
    let body = serde_json::to_string(&listed).map_err(|error| ApiError::internal(&error))?;
    Ok(json_response(StatusCode::CREATED, body))
}

/// `DELETE /graphpilot/faults`: removes every rule.
pub async fn clear_faults(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
) -> Result<Response, ApiError> {
    let removed = state.faults.clear(None);
    Ok(json_response(
        StatusCode::OK,
        json!({"removed": removed}).to_string(),
    ))
}

/// `DELETE /graphpilot/faults/{id}`: removes one rule.
pub async fn remove_fault(
    _: AdminCaller,
    State(state): State<Arc<AppState>>,
    PathValue(id): PathValue<String>,
) -> Result<Response, ApiError> {
    let removed = id
        .parse::<u64>()
        .ok()
        .map_or(0, |id| state.faults.clear(Some(id)));
    if removed == 0 {
        return Err(ApiError::not_found("fault rule", &id));
    }
    Ok(json_response(
        StatusCode::OK,
        json!({"removed": removed}).to_string(),
    ))
}

/// `GET /graphpilot/openapi.json` (no token needed).
pub async fn openapi() -> Response {
    json_response(StatusCode::OK, OPENAPI.to_string())
}

const OPENAPI: &str = include_str!("openapi.json");
