//! `graphpilot sync` (reports-and-sync.md C): pulls a tenant's Autopilot events from a Graph
//! source into a local tenant, page by page, through production's faults, and records the run.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use backon::{ExponentialBuilder, Retryable};
use rand::Rng;
use serde_json::Value as Json;

use crate::edm::DateTimeOffset;
use crate::model::decode_import;
use crate::model::sync_run::{AttemptError, Plan, RunStatus, SyncRun, plan};
use crate::store::Store;

/// Connect within this, or the attempt failed.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);
/// Answer within this, or the attempt failed.
const RESPONSE_TIMEOUT: Duration = Duration::from_secs(120);
/// The longest `Retry-After` waited.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(300);
/// Attempts of one request before the run fails.
const MAX_ATTEMPTS: usize = 8;
/// A token is renewed this long before it expires.
const TOKEN_MARGIN: Duration = Duration::from_secs(300);

/// Where a run reads from and writes to.
pub struct SyncSettings {
    /// `{source}/deviceManagement/autopilotEvents` is read; kept as given in run records.
    pub source: String,
    pub authority: String,
    pub source_tenant: String,
    pub client_id: String,
    pub client_secret: String,
    pub local_tenant: String,
    pub scope: String,
    pub ca_cert: Option<Vec<u8>>,
    pub full: bool,
    pub overlap: Duration,
    pub full_every: Duration,
}

/// Why a request failed for good (after its retries, or at once).
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct SourceError {
    pub url: String,
    pub status: Option<u16>,
    pub message: String,
    retry_after: Option<Duration>,
    retryable: bool,
}

/// A run's outcome.
#[derive(Debug, PartialEq, Eq)]
pub enum Outcome {
    Completed,
    Interrupted,
}

/// Another run holds the local tenant's lock (exit 3).
#[derive(Debug, thiserror::Error)]
#[error("another sync into local tenant '{0}' is running (its lock is held); this one did nothing")]
pub struct Locked(pub String);

/// The source's client: one request at a time, a cached token, retries as the contract says.
pub struct Source {
    http: reqwest::Client,
    settings: Arc<SyncSettings>,
    token: tokio::sync::Mutex<Option<(String, std::time::Instant)>>,
}

impl Source {
    pub fn new(settings: Arc<SyncSettings>) -> anyhow::Result<Self> {
        let mut builder = reqwest::Client::builder()
            .connect_timeout(CONNECT_TIMEOUT)
            .timeout(RESPONSE_TIMEOUT)
            .tls_built_in_native_certs(true);
        if let Some(pem) = &settings.ca_cert {
            for certificate in reqwest::Certificate::from_pem_bundle(pem)? {
                builder = builder.add_root_certificate(certificate);
            }
        }
        Ok(Self {
            http: builder.build()?,
            settings,
            token: tokio::sync::Mutex::new(None),
        })
    }

    /// A token from the authority's token endpoint (client credentials), reused until 5 minutes
    /// before it expires; `renew` forces a new one.
    async fn token(&self, renew: bool) -> Result<String, SourceError> {
        let mut cached = self.token.lock().await;
        if let (false, Some((token, until))) = (renew, cached.as_ref())
            && std::time::Instant::now() < *until
        {
            return Ok(token.clone());
        }
        let settings = &self.settings;
        let url = format!(
            "{}/{}/oauth2/v2.0/token",
            settings.authority.trim_end_matches('/'),
            settings.source_tenant
        );
        let fail = |status: Option<u16>, message: String| SourceError {
            url: url.clone(),
            status,
            message,
            retry_after: None,
            retryable: false,
        };
        let response = self
            .http
            .post(&url)
            .form(&[
                ("grant_type", "client_credentials"),
                ("client_id", settings.client_id.as_str()),
                ("client_secret", settings.client_secret.as_str()),
                ("scope", settings.scope.as_str()),
            ])
            .send()
            .await
            .map_err(|error| classify_transport(&url, &error))?;
        let status = response.status().as_u16();
        let body: Json = response.json().await.unwrap_or(Json::Null);
        if status != 200 {
            let reason = body["error_description"]
                .as_str()
                .or(body["error"].as_str())
                .unwrap_or("no reason given");
            return Err(SourceError {
                retryable: status >= 500,
                ..fail(
                    Some(status),
                    format!(
                        "the token endpoint refused the client credentials ({status}): {reason}"
                    ),
                )
            });
        }
        let token = body["access_token"]
            .as_str()
            .ok_or_else(|| {
                fail(
                    Some(status),
                    "the token endpoint answered without access_token".into(),
                )
            })?
            .to_string();
        let lifetime = Duration::from_secs(body["expires_in"].as_u64().unwrap_or(3600));
        *cached = Some((
            token.clone(),
            std::time::Instant::now() + lifetime.saturating_sub(TOKEN_MARGIN),
        ));
        Ok(token)
    }

    /// One attempt of a GET: the JSON body and the source's request-id, or why not. A 401 gets
    /// one new token and one more try within the attempt.
    async fn attempt(&self, url: &str) -> Result<(Json, String), SourceError> {
        let mut renewed = false;
        loop {
            let token = self.token(renewed).await?;
            let response = self
                .http
                .get(url)
                .bearer_auth(&token)
                .send()
                .await
                .map_err(|error| classify_transport(url, &error))?;
            let status = response.status().as_u16();
            if status == 401 && !renewed {
                renewed = true;
                continue;
            }
            let request_id = response
                .headers()
                .get("request-id")
                .and_then(|value| value.to_str().ok())
                .unwrap_or("")
                .to_string();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|value| value.to_str().ok())
                .and_then(|text| text.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            let body = response
                .bytes()
                .await
                .map_err(|error| classify_transport(url, &error))?;
            if status == 200 {
                let json = serde_json::from_slice(&body).map_err(|error| SourceError {
                    url: url.to_string(),
                    status: Some(status),
                    message: format!("the page is not JSON: {error}"),
                    retry_after: None,
                    retryable: true,
                })?;
                return Ok((json, request_id));
            }
            let detail: Json = serde_json::from_slice(&body).unwrap_or(Json::Null);
            let message = detail["error"]["message"].as_str().map_or_else(
                || format!("HTTP {status}"),
                |text| format!("HTTP {status}: {text}"),
            );
            return Err(SourceError {
                url: url.to_string(),
                status: Some(status),
                message,
                retry_after: if status == 429 || status == 503 {
                    retry_after
                } else {
                    None
                },
                retryable: status == 429 || status >= 500,
            });
        }
    }

    /// A GET with the contract's retries: `Retry-After` (≤ 300 s) on 429 and 503; 1, 2, 4 … s
    /// (±20 %, ≤ 60 s) otherwise; at most 8 attempts. Every failed attempt goes to `failed`.
    pub async fn get(
        &self,
        url: &str,
        failed: &(dyn Fn(&SourceError) + Sync),
    ) -> Result<(Json, String), SourceError> {
        let backoff = ExponentialBuilder::new()
            .with_min_delay(Duration::from_secs(1))
            .with_factor(2.0)
            .with_max_delay(Duration::from_secs(60))
            .with_max_times(MAX_ATTEMPTS - 1);
        (|| self.attempt(url))
            .retry(backoff)
            .sleep(tokio::time::sleep)
            .when(|error: &SourceError| error.retryable)
            .notify(|error: &SourceError, _| failed(error))
            .adjust(|error: &SourceError, delay| {
                let delay = delay?;
                Some(match error.retry_after {
                    Some(wait) => wait.min(MAX_RETRY_AFTER),
                    None => delay.mul_f64(rand::rng().random_range(0.8..=1.2)),
                })
            })
            .await
    }
}

/// A transport failure: timeouts and dropped connections are retried, certificate errors not.
fn classify_transport(url: &str, error: &reqwest::Error) -> SourceError {
    let mut chain = format!("{error}");
    let mut source = std::error::Error::source(error);
    while let Some(cause) = source {
        chain.push_str(": ");
        chain.push_str(&cause.to_string());
        source = cause.source();
    }
    let certificate = chain.contains("certificate") || chain.contains("UnknownIssuer");
    SourceError {
        url: url.to_string(),
        status: None,
        message: if certificate {
            format!(
                "the source's TLS certificate is not trusted ({chain}); give its CA with --ca-cert"
            )
        } else {
            chain
        },
        retry_after: None,
        retryable: !certificate,
    }
}

/// One run: plan from the watermark, pull every page, store each in one transaction, record it.
/// `stop` is checked at page boundaries (SIGTERM/SIGINT).
pub async fn run_once(
    store: &Store,
    source: &Source,
    settings: &SyncSettings,
    stop: &AtomicBool,
    progress: &dyn Fn(&SyncRun, &str),
) -> anyhow::Result<(Outcome, SyncRun)> {
    let tenant = &settings.local_tenant;
    store.interrupt_left_over_sync_runs(tenant).await?;
    let (watermark, last_full) = store
        .sync_watermark(tenant, &settings.source, &settings.source_tenant)
        .await?;
    let now = DateTimeOffset::now();
    let Plan { mode, filter_from } = plan(
        now,
        settings.full,
        watermark,
        last_full,
        settings.full_every,
        settings.overlap,
    );
    let mut run = SyncRun {
        id: uuid::Uuid::new_v4().to_string(),
        tenant: tenant.clone(),
        source: settings.source.clone(),
        source_tenant: settings.source_tenant.clone(),
        mode,
        status: RunStatus::Running,
        start: now,
        end: None,
        filter_from,
        watermark: None,
        pages: 0,
        fetched: 0,
        upserted: 0,
        unchanged: 0,
        errors: Vec::new(),
    };
    store.start_sync_run(&run).await?;
    let result = pull(store, source, settings, stop, &mut run, progress).await;
    let status = match &result {
        Ok(Outcome::Completed) => RunStatus::Completed,
        Ok(Outcome::Interrupted) => RunStatus::Interrupted,
        Err(_) => RunStatus::Failed,
    };
    store
        .finish_sync_run(&run.id, status, DateTimeOffset::now(), watermark)
        .await?;
    let stored = store
        .sync_runs(Some(tenant))
        .await?
        .into_iter()
        .find(|stored| stored.id == run.id)
        .unwrap_or(run);
    result.map(|outcome| (outcome, stored))
}

async fn pull(
    store: &Store,
    source: &Source,
    settings: &SyncSettings,
    stop: &AtomicBool,
    run: &mut SyncRun,
    progress: &dyn Fn(&SyncRun, &str),
) -> anyhow::Result<Outcome> {
    let events = format!(
        "{}/deviceManagement/autopilotEvents",
        settings.source.trim_end_matches('/')
    );
    let filter = run.filter_from.map(|from| {
        format!(
            "$filter={}",
            percent_encoding::utf8_percent_encode(
                &format!("eventDateTime ge {from}"),
                percent_encoding::NON_ALPHANUMERIC
            )
        )
    });
    let query = |expand: bool| {
        let mut parts = Vec::new();
        if expand {
            parts.push("$expand=policyStatusDetails".to_string());
        }
        parts.extend(filter.clone());
        if parts.is_empty() {
            events.clone()
        } else {
            format!("{events}?{}", parts.join("&"))
        }
    };
    let run_id = run.id.clone();
    let (errors_tx, mut errors_rx) = tokio::sync::mpsc::unbounded_channel::<AttemptError>();
    let record = move |error: &SourceError| {
        let _ = errors_tx.send(AttemptError {
            date_time: DateTimeOffset::now().to_string(),
            url: error.url.clone(),
            status: error.status,
            message: error.message.clone(),
        });
    };
    let mut unknown = std::collections::BTreeSet::new();
    let mut expand = true;
    let mut next = Some(query(true));
    let mut first = true;
    while let Some(url) = next.take() {
        if stop.load(Ordering::SeqCst) {
            return Ok(Outcome::Interrupted);
        }
        let answer = source.get(&url, &record).await;
        while let Ok(error) = errors_rx.try_recv() {
            store.add_sync_error(&run_id, &error).await?;
            run.errors.push(error);
        }
        let (page, request_id) = match answer {
            Err(error) if first && expand && error.status == Some(400) && error.url == url => {
                // The source refuses $expand: details come event by event.
                expand = false;
                next = Some(query(false));
                continue;
            }
            Err(error) => {
                store
                    .add_sync_error(
                        &run_id,
                        &AttemptError {
                            date_time: DateTimeOffset::now().to_string(),
                            url: error.url.clone(),
                            status: error.status,
                            message: error.message.clone(),
                        },
                    )
                    .await?;
                anyhow::bail!("GET {} failed: {}", error.url, error.message);
            }
            Ok(answer) => answer,
        };
        first = false;
        let mut deployments = Vec::new();
        for mut event in page["value"].as_array().cloned().unwrap_or_default() {
            if !expand {
                let id = event["id"].as_str().unwrap_or("").to_string();
                let details = details_of(source, &events, &id, &record).await;
                while let Ok(error) = errors_rx.try_recv() {
                    store.add_sync_error(&run_id, &error).await?;
                    run.errors.push(error);
                }
                event["policyStatusDetails"] = Json::Array(details?);
            }
            for name in keep_known(&mut event) {
                if unknown.insert(name.clone()) {
                    tracing::warn!(
                        property = %name,
                        "the source sends a property graphpilot does not know; it is not stored"
                    );
                }
            }
            let bytes = serde_json::to_vec(&event)?;
            let deployment = decode_import(&bytes).map_err(|error| {
                anyhow::anyhow!("the source sent an event graphpilot cannot store: {error:?}")
            })?;
            deployments.push(deployment);
        }
        let count = deployments.len() as i64;
        let (upserted, unchanged) = store.sync_page(&run.tenant, &run_id, deployments).await?;
        run.pages += 1;
        run.fetched += count;
        run.upserted += upserted as i64;
        run.unchanged += unchanged as i64;
        progress(run, &request_id);
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    Ok(Outcome::Completed)
}

/// Removes the properties of an event (and of its details) that graphpilot's model does not have
/// (Graph adds properties over time: a new one must not stop the sync); returns their names.
fn keep_known(event: &mut Json) -> Vec<String> {
    fn strip(object: &mut Json, schema: &crate::model::EntitySchema, keep: &[&str]) -> Vec<String> {
        let Some(map) = object.as_object_mut() else {
            return Vec::new();
        };
        let unknown: Vec<String> = map
            .keys()
            .filter(|name| {
                !(name.contains('@')
                    || keep.contains(&name.as_str())
                    || schema.property(name).is_some())
            })
            .cloned()
            .collect();
        for name in &unknown {
            map.remove(name);
        }
        unknown
    }
    let mut unknown = strip(
        event,
        &crate::model::AUTOPILOT_EVENT,
        &["id", crate::model::DETAILS_NAVIGATION],
    );
    if let Some(details) = event
        .get_mut(crate::model::DETAILS_NAVIGATION)
        .and_then(Json::as_array_mut)
    {
        for detail in details {
            unknown.extend(
                strip(detail, &crate::model::POLICY_STATUS_DETAIL, &["id"])
                    .into_iter()
                    .map(|name| format!("{}/{name}", crate::model::DETAILS_NAVIGATION)),
            );
        }
    }
    unknown
}

/// An event's details, every page of them.
async fn details_of(
    source: &Source,
    events: &str,
    id: &str,
    record: &(dyn Fn(&SourceError) + Sync),
) -> anyhow::Result<Vec<Json>> {
    let mut details = Vec::new();
    let mut next = Some(format!(
        "{events}/{}/policyStatusDetails",
        percent_encoding::utf8_percent_encode(id, percent_encoding::NON_ALPHANUMERIC)
    ));
    while let Some(url) = next.take() {
        let (page, _) = source
            .get(&url, record)
            .await
            .map_err(|error| anyhow::anyhow!("GET {} failed: {}", error.url, error.message))?;
        details.extend(page["value"].as_array().cloned().unwrap_or_default());
        next = page["@odata.nextLink"].as_str().map(str::to_string);
    }
    Ok(details)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn properties_the_model_lacks_are_dropped_and_named() {
        let mut event = serde_json::json!({
            "@odata.etag": "W/\"1\"", "id": "e", "deviceId": "d", "brandNewProperty": 1,
            "policyStatusDetails": [{"id": "p", "displayName": "x", "anotherNewOne": true}]
        });
        let unknown = keep_known(&mut event);
        assert_eq!(
            unknown,
            ["brandNewProperty", "policyStatusDetails/anotherNewOne"]
        );
        assert!(event.get("brandNewProperty").is_none());
        assert_eq!(event["deviceId"], "d");
        assert_eq!(event["policyStatusDetails"][0]["displayName"], "x");
        assert!(decode_import(&serde_json::to_vec(&event).unwrap()).is_ok());
    }
}
