//! The analytics API (analytics.md): `/graphpilot/analytics/{endpoint}` parsed into a typed
//! request (window, filters, options), answered from the store's aggregates as JSON.
//! Order of checks: credentials (401) → throttle (429) → permission (403) → endpoint (404, 405) →
//! parameters (400).

use std::sync::Arc;

use axum::body::Body;
use axum::extract::{Request, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, Method, header};
use axum::response::{IntoResponse, Response};
use percent_encoding::{AsciiSet, NON_ALPHANUMERIC, utf8_percent_encode};
use serde_json::{Value as Json, json};

use super::AppState;
use super::context::RequestContext;
use super::dashboard;
use super::error::ApiError;
use super::response::push_entity;
use super::routes::RouteTemplate;
use super::throttle::now_ms;
use crate::edm::{DEPLOYMENT_STATE, DateTimeOffset, Duration, ENROLLMENT_TYPE, Seconds};
use crate::model::analytics::{Bucket, Dimension, StateCounts, device_first_time_right, ratio};
use crate::odata::percent_decode;
use crate::store::{FilterValue, Scope, StoreError};

/// The default window: the 30 days before `to`.
const DEFAULT_WINDOW_TICKS: i64 = 30 * 86_400 * crate::edm::TICKS_PER_SECOND;
/// The most timeline buckets one request may ask for.
const MAX_BUCKETS: i64 = 1_000;
/// The most events `devices/{serial}` lists.
const MAX_DEVICE_EVENTS: u64 = 1_000;
/// Characters kept as they are in next links' query values (RFC 3986 unreserved).
const QUERY_VALUE: &AsciiSet = &NON_ALPHANUMERIC
    .remove(b'-')
    .remove(b'.')
    .remove(b'_')
    .remove(b'~');

/// The endpoints under `/graphpilot/analytics/`.
#[derive(Clone, Debug, PartialEq)]
enum Endpoint {
    Summary,
    Timeline,
    Breakdown,
    Failures,
    Stuck,
    Blockers,
    Device(String),
}

/// Parameters every endpoint takes.
const COMMON: [&str; 6] = [
    "from",
    "to",
    "profile",
    "esp",
    "enrollmentType",
    "osVersion",
];

impl Endpoint {
    /// The endpoint a path under `/graphpilot/analytics` names (the rest raw, percent-encoded).
    fn parse(rest: &str) -> Result<Self, ApiError> {
        let not_found = || {
            ApiError::not_found_path(&format!("/graphpilot/analytics{rest}"))
                .with_message(format!(
                    "No analytics endpoint at '/graphpilot/analytics{rest}'. The endpoints are \
                     summary, timeline, breakdown, failures, stuck, blockers and devices/{{serialNumber}}."
                ))
        };
        let rest = rest.strip_prefix('/').ok_or_else(not_found)?;
        Ok(match rest {
            "summary" => Endpoint::Summary,
            "timeline" => Endpoint::Timeline,
            "breakdown" => Endpoint::Breakdown,
            "failures" => Endpoint::Failures,
            "stuck" => Endpoint::Stuck,
            "blockers" => Endpoint::Blockers,
            _ => {
                let serial = rest.strip_prefix("devices/").ok_or_else(not_found)?;
                if serial.contains('/') {
                    return Err(not_found());
                }
                Endpoint::Device(percent_decode(serial).map_err(|error| {
                    ApiError::bad_request(format!("The serial number in the path: {error}"))
                })?)
            }
        })
    }

    fn name(&self) -> &'static str {
        match self {
            Endpoint::Summary => "summary",
            Endpoint::Timeline => "timeline",
            Endpoint::Breakdown => "breakdown",
            Endpoint::Failures => "failures",
            Endpoint::Stuck => "stuck",
            Endpoint::Blockers => "blockers",
            Endpoint::Device(_) => "devices/{serialNumber}",
        }
    }

    /// The parameters it takes beyond the common ones.
    fn own_parameters(&self) -> &'static [&'static str] {
        match self {
            Endpoint::Timeline => &["bucket"],
            Endpoint::Breakdown => &["by", "top"],
            Endpoint::Failures | Endpoint::Blockers => &["top"],
            Endpoint::Stuck => &["top", "olderThan", "skiptoken"],
            Endpoint::Summary | Endpoint::Device(_) => &[],
        }
    }

    fn takes(&self, name: &str) -> bool {
        COMMON.contains(&name) || self.own_parameters().contains(&name)
    }
}

/// The query string: each parameter once, each one the endpoint takes, values decoded.
struct Parameters(Vec<(String, String)>);

impl Parameters {
    fn parse(raw: Option<&str>, endpoint: &Endpoint) -> Result<Self, ApiError> {
        let mut pairs: Vec<(String, String)> = Vec::new();
        for piece in raw
            .unwrap_or("")
            .split('&')
            .filter(|piece| !piece.is_empty())
        {
            let (raw_name, raw_value) = piece.split_once('=').unwrap_or((piece, ""));
            let name = percent_decode(raw_name).map_err(|error| {
                ApiError::bad_request(format!("A query parameter's name: {error}"))
            })?;
            let value = percent_decode(raw_value).map_err(|error| {
                ApiError::bad_request(format!("The query parameter '{name}': {error}"))
            })?;
            if !endpoint.takes(&name) {
                let mut taken: Vec<&str> = COMMON.to_vec();
                taken.extend(endpoint.own_parameters());
                return Err(ApiError::bad_request(format!(
                    "The query parameter '{name}' is not supported by /graphpilot/analytics/{}; \
                     it takes {} (names are case-sensitive).",
                    endpoint.name(),
                    taken.join(", ")
                )));
            }
            if pairs.iter().any(|(seen, _)| *seen == name) {
                return Err(ApiError::bad_request(format!(
                    "The query parameter '{name}' is given more than once; give it once."
                )));
            }
            pairs.push((name, value));
        }
        Ok(Self(pairs))
    }

    fn get(&self, name: &str) -> Option<&str> {
        self.0
            .iter()
            .find(|(seen, _)| seen == name)
            .map(|(_, value)| value.as_str())
    }

    fn instant(&self, name: &str) -> Result<Option<DateTimeOffset>, ApiError> {
        self.get(name)
            .map(|text| {
                DateTimeOffset::parse(text, Seconds::Required).map_err(|error| {
                    ApiError::bad_request(format!(
                        "The query parameter '{name}' must be a DateTimeOffset with an offset and \
                         seconds, such as 2026-11-02T09:00:00Z: {error}"
                    ))
                })
            })
            .transpose()
    }

    fn top(&self, default: u64, max: u64) -> Result<u64, ApiError> {
        let Some(text) = self.get("top") else {
            return Ok(default);
        };
        text.parse::<u64>()
            .ok()
            .filter(|top| (1..=max).contains(top) && text.bytes().all(|b| b.is_ascii_digit()))
            .ok_or_else(|| {
                ApiError::bad_request(format!(
                    "The query parameter 'top' must be an integer from 1 to {max}, not '{text}'."
                ))
            })
    }

    fn filters(&self) -> Result<Vec<(Dimension, FilterValue)>, ApiError> {
        let mut filters = Vec::new();
        for dimension in Dimension::ALL {
            let Some(text) = self.get(dimension.parameter()) else {
                continue;
            };
            let value = if dimension.is_enum() {
                FilterValue::Enum(ENROLLMENT_TYPE.value_of(text).ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "The query parameter 'enrollmentType' must be a member of {} \
                         (case-sensitive): {}; not '{text}'.",
                        ENROLLMENT_TYPE.qualified_name(),
                        ENROLLMENT_TYPE.member_list()
                    ))
                })?)
            } else {
                FilterValue::Text(text.to_string())
            };
            filters.push((dimension, value));
        }
        Ok(filters)
    }

    /// Every parameter but `skiptoken`, canonical (sorted), for binding paging tokens.
    fn canonical_without_skiptoken(&self) -> String {
        let mut pairs: Vec<&(String, String)> = self
            .0
            .iter()
            .filter(|(name, _)| name != "skiptoken")
            .collect();
        pairs.sort();
        serde_json::to_string(&pairs).unwrap_or_default()
    }

    /// The query string of every parameter but `skiptoken`, encoded again.
    fn query_without_skiptoken(&self) -> String {
        self.0
            .iter()
            .filter(|(name, _)| name != "skiptoken")
            .map(|(name, value)| {
                format!(
                    "{}={}",
                    utf8_percent_encode(name, QUERY_VALUE),
                    utf8_percent_encode(value, QUERY_VALUE)
                )
            })
            .collect::<Vec<_>>()
            .join("&")
    }
}

/// The window `from ≤ eventDateTime < to`: `to` defaults to the request's arrival, `from` to 30
/// days before `to`.
fn window(
    from: Option<DateTimeOffset>,
    to: Option<DateTimeOffset>,
    now: DateTimeOffset,
) -> Result<(DateTimeOffset, DateTimeOffset), ApiError> {
    let to = to.unwrap_or(now);
    let from = from.unwrap_or_else(|| {
        DateTimeOffset::from_ticks((to.ticks() - DEFAULT_WINDOW_TICKS).max(0))
            .unwrap_or(DateTimeOffset::MIN)
    });
    if from >= to {
        return Err(ApiError::bad_request(format!(
            "The query parameter 'from' ({from}) must be earlier than 'to' ({to})."
        )));
    }
    Ok((from, to))
}

fn store_error(error: StoreError) -> ApiError {
    ApiError::from_store(error, "analytics", "")
}

fn duration(value: Option<Duration>) -> Json {
    value.map_or(Json::Null, |span| Json::String(span.to_string()))
}

fn rate(value: Option<f64>) -> Json {
    value.map_or(Json::Null, Json::from)
}

fn counts(states: &StateCounts) -> serde_json::Map<String, Json> {
    let mut map = serde_json::Map::new();
    map.insert("deployments".into(), states.deployments().into());
    map.insert("succeeded".into(), states.succeeded().into());
    map.insert("failed".into(), states.failed().into());
    map.insert("inProgress".into(), states.in_progress().into());
    map.insert("other".into(), states.other().into());
    map
}

fn json_answer(body: String) -> Response {
    let mut response = Response::new(Body::from(body));
    response.headers_mut().insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/json; charset=utf-8"),
    );
    response
}

/// Entry point for every request under `/graphpilot/analytics`.
pub async fn dispatch(State(state): State<Arc<AppState>>, request: Request) -> Response {
    let (parts, _body) = request.into_parts();
    let mut template = "/graphpilot/analytics/{endpoint}";
    let mut response = match answer(&state, &parts, &mut template).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    };
    response.extensions_mut().insert(RouteTemplate(template));
    response
}

async fn answer(
    state: &AppState,
    parts: &Parts,
    template: &mut &'static str,
) -> Result<Response, ApiError> {
    let reader = dashboard::reader(state, parts).await?;
    state
        .throttle
        .admit(&reader.tenant, &reader.app, false, now_ms())
        .await
        .map_err(ApiError::too_many_requests)?;
    if !reader.may_read {
        return Err(ApiError::forbidden(crate::auth::Access::Read.permissions()));
    }
    let rest = parts
        .uri
        .path()
        .strip_prefix("/graphpilot/analytics")
        .unwrap_or("");
    let endpoint = Endpoint::parse(rest)?;
    *template = match endpoint {
        Endpoint::Summary => "/graphpilot/analytics/summary",
        Endpoint::Timeline => "/graphpilot/analytics/timeline",
        Endpoint::Breakdown => "/graphpilot/analytics/breakdown",
        Endpoint::Failures => "/graphpilot/analytics/failures",
        Endpoint::Stuck => "/graphpilot/analytics/stuck",
        Endpoint::Blockers => "/graphpilot/analytics/blockers",
        Endpoint::Device(_) => "/graphpilot/analytics/devices/{serialNumber}",
    };
    if parts.method != Method::GET && parts.method != Method::HEAD {
        return Err(ApiError::method_not_allowed(
            parts.method.as_str(),
            &["GET"],
        ));
    }
    if parts
        .uri
        .query()
        .is_some_and(|query| query.len() > super::graph::MAX_QUERY_BYTES)
    {
        return Err(ApiError::uri_too_long(super::graph::MAX_QUERY_BYTES));
    }
    let parameters = Parameters::parse(parts.uri.query(), &endpoint)?;
    let now = RequestContext::of(&parts.extensions).started;
    let query = Query {
        state,
        parts,
        tenant: &reader.tenant,
        parameters: &parameters,
        now,
    };
    let body = match &endpoint {
        Endpoint::Summary => query.summary().await?,
        Endpoint::Timeline => query.timeline().await?,
        Endpoint::Breakdown => query.breakdown().await?,
        Endpoint::Failures => query.failures().await?,
        Endpoint::Stuck => query.stuck().await?,
        Endpoint::Blockers => query.blockers().await?,
        Endpoint::Device(serial) => query.device(serial).await?,
    };
    Ok(json_answer(body))
}

/// One analytics request being answered.
struct Query<'a> {
    state: &'a AppState,
    parts: &'a Parts,
    tenant: &'a str,
    parameters: &'a Parameters,
    now: DateTimeOffset,
}

impl Query<'_> {
    /// The window (defaulted) and the scope it gives with the filters.
    fn scope(&self) -> Result<(DateTimeOffset, DateTimeOffset, Scope), ApiError> {
        let from = self.parameters.instant("from")?;
        let to = self.parameters.instant("to")?;
        let filters = self.parameters.filters()?;
        let (from, to) = window(from, to, self.now)?;
        Ok((from, to, self.scope_of(Some((from, to)), filters)))
    }

    fn scope_of(
        &self,
        window: Option<(DateTimeOffset, DateTimeOffset)>,
        filters: Vec<(Dimension, FilterValue)>,
    ) -> Scope {
        Scope {
            tenant: self.tenant.to_string(),
            from: window.map(|(from, _)| from.ticks()),
            to: window.map(|(_, to)| to.ticks()),
            filters,
            serial: None,
            serial_index_bound: false,
        }
    }

    async fn summary(&self) -> Result<String, ApiError> {
        let (from, to, scope) = self.scope()?;
        let summary = self
            .state
            .store
            .analytics_summary(&scope)
            .await
            .map_err(store_error)?;
        let states = &summary.states;
        let mut body = serde_json::Map::new();
        body.insert("from".into(), from.to_string().into());
        body.insert("to".into(), to.to_string().into());
        body.extend(counts(states));
        body.insert("finished".into(), states.finished().into());
        body.insert("successRate".into(), rate(states.success_rate()));
        body.insert("firstTimeRight".into(), rate(states.first_time_right()));
        body.insert("timedOut".into(), states.timed_out().into());
        let by_state: serde_json::Map<String, Json> = states
            .by_member()
            .map(|(name, count)| (name.to_string(), count.into()))
            .collect();
        body.insert("states".into(), by_state.into());
        let durations: serde_json::Map<String, Json> = summary
            .durations
            .iter()
            .map(|(name, [p50, p90, p95])| {
                (
                    name.to_string(),
                    json!({"p50": duration(*p50), "p90": duration(*p90), "p95": duration(*p95)}),
                )
            })
            .collect();
        body.insert("durations".into(), durations.into());
        Ok(Json::Object(body).to_string())
    }

    async fn timeline(&self) -> Result<String, ApiError> {
        let bucket = match self.parameters.get("bucket") {
            None | Some("day") => Bucket::Day,
            Some("week") => Bucket::Week,
            Some(other) => {
                return Err(ApiError::bad_request(format!(
                    "The query parameter 'bucket' must be 'day' or 'week', not '{other}'."
                )));
            }
        };
        let (from, to, scope) = self.scope()?;
        let (first, last) = bucket.span(from.ticks(), to.ticks());
        if last - first + 1 > MAX_BUCKETS {
            return Err(ApiError::bad_request(format!(
                "The window holds {} buckets of a {}; at most {MAX_BUCKETS} are answered: choose \
                 a larger 'bucket' or a shorter window.",
                last - first + 1,
                bucket.name()
            )));
        }
        let buckets = self
            .state
            .store
            .analytics_timeline(&scope, bucket.ticks())
            .await
            .map_err(store_error)?;
        let at = |number: i64| {
            DateTimeOffset::from_ticks(number * bucket.ticks())
                .map_or(Json::Null, |instant| instant.to_string().into())
        };
        let rows: Vec<Json> = (first..=last)
            .map(|number| {
                let states = buckets.get(&number).copied().unwrap_or_default();
                let mut row = serde_json::Map::new();
                row.insert("start".into(), at(number));
                // The last bucket of the calendar ends past 9999-12-31: its end is the largest instant.
                row.insert(
                    "end".into(),
                    DateTimeOffset::from_ticks(
                        ((number + 1) * bucket.ticks()).min(crate::edm::MAX_TICKS),
                    )
                    .map_or(Json::Null, |instant| instant.to_string().into()),
                );
                row.extend(counts(&states));
                row.insert("timedOut".into(), states.timed_out().into());
                row.insert("successRate".into(), rate(states.success_rate()));
                Json::Object(row)
            })
            .collect();
        Ok(json!({"from": from.to_string(), "to": to.to_string(), "bucket": bucket.name(), "rows": rows})
            .to_string())
    }

    async fn breakdown(&self) -> Result<String, ApiError> {
        let by = match self.parameters.get("by") {
            None => {
                return Err(ApiError::bad_request(
                    "The query parameter 'by' is required: profile, esp, enrollmentType or osVersion.",
                ));
            }
            Some(text) => Dimension::ALL
                .into_iter()
                .find(|dimension| dimension.parameter() == text)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "The query parameter 'by' must be profile, esp, enrollmentType or \
                         osVersion, not '{text}'."
                    ))
                })?,
        };
        let top = self.parameters.top(20, 100)?;
        let (from, to, scope) = self.scope()?;
        let groups = self
            .state
            .store
            .analytics_breakdown(&scope, by)
            .await
            .map_err(store_error)?;
        let rows: Vec<Json> = groups
            .iter()
            .take(top as usize)
            .map(|group| {
                let mut row = serde_json::Map::new();
                row.insert(
                    "key".into(),
                    group.key.clone().map_or(Json::Null, Json::from),
                );
                row.extend(counts(&group.states));
                row.insert("successRate".into(), rate(group.states.success_rate()));
                row.insert("p50".into(), duration(group.p50));
                row.insert("p90".into(), duration(group.p90));
                Json::Object(row)
            })
            .collect();
        Ok(
            json!({"from": from.to_string(), "to": to.to_string(), "by": by.parameter(),
                  "groups": groups.len(), "rows": rows})
            .to_string(),
        )
    }

    async fn failures(&self) -> Result<String, ApiError> {
        let top = self.parameters.top(20, 100)?;
        let (from, to, scope) = self.scope()?;
        let groups = self
            .state
            .store
            .analytics_failures(&scope)
            .await
            .map_err(store_error)?;
        let failed: u64 = groups.iter().map(|group| group.count).sum();
        let rows: Vec<Json> = groups
            .iter()
            .take(top as usize)
            .map(|group| {
                json!({
                    "reason": group.reason,
                    "count": group.count,
                    "share": rate(ratio(group.count, failed)),
                    "phases": {
                        "deviceSetup": group.device_setup,
                        "accountSetup": group.account_setup,
                        "unknown": group.count - group.device_setup - group.account_setup,
                    },
                    "lastEventDateTime": group.last_event_date_time.to_string(),
                    "lastEventId": group.last_event_id,
                })
            })
            .collect();
        Ok(
            json!({"from": from.to_string(), "to": to.to_string(), "failed": failed,
                  "groups": groups.len(), "rows": rows})
            .to_string(),
        )
    }

    async fn stuck(&self) -> Result<String, ApiError> {
        let top = self.parameters.top(50, 1000)?;
        let older_than = match self.parameters.get("olderThan") {
            None => Duration::from_ticks(2 * 3600 * crate::edm::TICKS_PER_SECOND),
            Some(text) => Duration::parse(text)
                .ok()
                .filter(|span| span.ticks() >= 0)
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "The query parameter 'olderThan' must be a Duration that is not \
                         negative, such as PT2H or P1DT12H, not '{text}'."
                    ))
                })?,
        };
        let filters = self.parameters.filters()?;
        let scope_key = format!(
            "{}|analytics/stuck|{}",
            self.tenant,
            self.parameters.canonical_without_skiptoken()
        );
        let (from, to, as_of, after) = match self.parameters.get("skiptoken") {
            Some(token) => {
                let refused = || {
                    ApiError::bad_request(
                        "The query parameter 'skiptoken' is not valid here: use the nextLink of \
                         the previous page as it is, with the same parameters.",
                    )
                };
                let cursor = self
                    .state
                    .skiptokens
                    .open(&scope_key, token)
                    .ok_or_else(refused)?;
                let cursor: StuckCursor = serde_json::from_value(cursor).map_err(|_| refused())?;
                let instant = |ticks: i64| DateTimeOffset::from_ticks(ticks).ok_or_else(refused);
                (
                    instant(cursor.from)?,
                    instant(cursor.to)?,
                    instant(cursor.as_of)?,
                    Some((cursor.start, cursor.id)),
                )
            }
            None => {
                let from = self.parameters.instant("from")?;
                let to = self.parameters.instant("to")?;
                let (from, to) = window(from, to, self.now)?;
                (from, to, self.now, None)
            }
        };
        let scope = self.scope_of(Some((from, to)), filters);
        let threshold = as_of.ticks().saturating_sub(older_than.ticks());
        let store = &self.state.store;
        let (count, mut rows) = futures_util::future::try_join(
            store.analytics_stuck_count(&scope, threshold),
            store.analytics_stuck_page(
                &scope,
                threshold,
                after.as_ref().map(|(start, id)| (*start, id.as_str())),
                top + 1,
            ),
        )
        .await
        .map_err(store_error)?;
        let more = rows.len() as u64 > top;
        rows.truncate(top as usize);
        let name_of = |value: i64| DEPLOYMENT_STATE.name_of(value).unwrap_or("unknown");
        let value: Vec<Json> = rows
            .iter()
            .map(|row| {
                json!({
                    "id": row.id,
                    "deviceSerialNumber": row.device_serial_number,
                    "managedDeviceName": row.managed_device_name,
                    "windowsAutopilotDeploymentProfileDisplayName": row.profile,
                    "deviceSetupStatus": name_of(row.device_setup_status),
                    "accountSetupStatus": name_of(row.account_setup_status),
                    "eventDateTime": row.event_date_time.to_string(),
                    "deploymentStartDateTime": row.deployment_start_date_time.to_string(),
                    "age": Duration::from_ticks(as_of.ticks() - row.deployment_start_date_time.ticks()).to_string(),
                })
            })
            .collect();
        let mut body = serde_json::Map::new();
        body.insert("from".into(), from.to_string().into());
        body.insert("to".into(), to.to_string().into());
        body.insert("asOf".into(), as_of.to_string().into());
        body.insert("olderThan".into(), older_than.to_string().into());
        body.insert("count".into(), count.into());
        body.insert("value".into(), value.into());
        if let (true, Some(last)) = (more, rows.last()) {
            let cursor = StuckCursor {
                from: from.ticks(),
                to: to.ticks(),
                as_of: as_of.ticks(),
                start: last.deployment_start_date_time.ticks(),
                id: last.id.to_lowercase(),
            };
            let token = self.state.skiptokens.issue(
                &scope_key,
                &serde_json::to_value(&cursor).unwrap_or_default(),
            );
            let query = self.parameters.query_without_skiptoken();
            let separator = if query.is_empty() { "" } else { "&" };
            let link = format!(
                "{}/graphpilot/analytics/stuck?{query}{separator}skiptoken={}",
                RequestContext::origin(self.parts, self.state.scheme),
                utf8_percent_encode(&token, QUERY_VALUE)
            );
            body.insert("nextLink".into(), link.into());
        }
        Ok(Json::Object(body).to_string())
    }

    async fn blockers(&self) -> Result<String, ApiError> {
        let top = self.parameters.top(20, 100)?;
        let (from, to, scope) = self.scope()?;
        let groups = self
            .state
            .store
            .analytics_blockers(&scope)
            .await
            .map_err(store_error)?;
        let rows: Vec<Json> = groups
            .iter()
            .take(top as usize)
            .map(|group| {
                json!({
                    "displayName": group.display_name,
                    "policyType": group.policy_type,
                    "details": group.details,
                    "affectedDeployments": group.affected_deployments,
                    "failedDeployments": group.failed_deployments,
                    "topErrorCode": group.top_error_code,
                    "topErrorCodeCount": group.top_error_code_count,
                })
            })
            .collect();
        Ok(json!({"from": from.to_string(), "to": to.to_string(), "groups": groups.len(), "rows": rows})
            .to_string())
    }

    async fn device(&self, serial: &str) -> Result<String, ApiError> {
        let from = self.parameters.instant("from")?;
        let to = self.parameters.instant("to")?;
        let filters = self.parameters.filters()?;
        let window = match (from, to) {
            (None, None) => None,
            _ => Some(window(from, to, self.now)?),
        };
        let mut scope = self.scope_of(window, filters);
        scope.serial = Some(serial.to_string());
        let history = self
            .state
            .store
            .analytics_device(&scope, MAX_DEVICE_EVENTS)
            .await
            .map_err(store_error)?;
        let states = &history.states;
        let attempts = states.deployments();
        let head = json!({
            "deviceSerialNumber": serial,
            "from": window.map(|(from, _)| from.to_string()),
            "to": window.map(|(_, to)| to.to_string()),
            "attempts": attempts,
            "succeeded": states.succeeded(),
            "failed": states.failed(),
            "inProgress": states.in_progress(),
            "other": states.other(),
            "firstTimeRight": device_first_time_right(attempts, history.oldest_state),
        })
        .to_string();
        // The events are spliced as a GET shows them, without `@odata.context`.
        let mut body = String::with_capacity(head.len() + history.events.len() * 1_500);
        body.push_str(&head[..head.len() - 1]);
        body.push_str(",\"value\":[");
        for (position, event) in history.events.iter().enumerate() {
            if position > 0 {
                body.push(',');
            }
            push_entity(&mut body, None, event);
        }
        body.push_str("]}");
        Ok(body)
    }
}

/// Where the next page of `stuck` starts, and the first page's window and `asOf`.
#[derive(serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
struct StuckCursor {
    from: i64,
    to: i64,
    #[serde(rename = "asOf")]
    as_of: i64,
    start: i64,
    id: String,
}

#[cfg(test)]
mod tests {
    use super::*;
    use axum::http::StatusCode;

    #[test]
    fn endpoints_parse_and_unknown_ones_are_not_found() {
        assert_eq!(Endpoint::parse("/summary").unwrap(), Endpoint::Summary);
        assert_eq!(
            Endpoint::parse("/devices/5CG%2F1+2").unwrap(),
            Endpoint::Device("5CG/1+2".into())
        );
        for rest in [
            "",
            "/",
            "/Summary",
            "/devices",
            "/devices/a/b",
            "/summary/x",
        ] {
            assert_eq!(
                Endpoint::parse(rest).unwrap_err().status(),
                StatusCode::NOT_FOUND,
                "{rest}"
            );
        }
    }

    #[test]
    fn parameters_are_named_when_unknown_repeated_or_not_taken() {
        let message = |raw: &str, endpoint: Endpoint| {
            Parameters::parse(Some(raw), &endpoint)
                .err()
                .map(|error| error.message)
                .unwrap_or_default()
        };
        assert!(message("From=x", Endpoint::Summary).contains("'From'"));
        assert!(message("top=1&top=2", Endpoint::Failures).contains("'top'"));
        assert!(message("bucket=day", Endpoint::Summary).contains("'bucket'"));
        let parsed = Parameters::parse(Some("profile=a+b%2Bc"), &Endpoint::Summary).unwrap();
        assert_eq!(parsed.get("profile"), Some("a+b+c"));
    }

    #[test]
    fn the_default_window_is_the_30_days_before_to() {
        let now = DateTimeOffset::parse("2026-12-02T09:00:00Z", Seconds::Required).unwrap();
        let (from, to) = window(None, None, now).unwrap();
        assert_eq!(to, now);
        assert_eq!(from.to_string(), "2026-11-02T09:00:00Z");
        assert!(window(Some(now), Some(now), now).is_err());
    }
}
