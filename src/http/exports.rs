//! Report export jobs on the wire (reports-and-sync.md A1, A4): list, create, get and delete
//! `deviceManagement/reports/exportJobs`, and the signed download link that needs no token.

use std::sync::Arc;

use aws_lc_rs::{constant_time, hmac};
use axum::body::{Body, Bytes};
use axum::extract::{Path, RawQuery, State};
use axum::http::request::Parts;
use axum::http::{HeaderValue, StatusCode, header};
use axum::response::{IntoResponse, Response};
use base64::Engine;
use base64::engine::general_purpose::URL_SAFE_NO_PAD;

use super::AppState;
use super::body::{body_error, read_json_body};
use super::context::RequestContext;
use super::error::ApiError;
use super::response::{empty_response, json_response, json_string};
use crate::edm::{DateTimeOffset, Seconds};
use crate::model::export_job::{
    EXPORT_JOB_PROPERTIES, EXPORT_JOB_TYPE, ExportJob, JobStatus, decode_job_request,
};
use crate::odata::parse_query;

const COLLECTION: &str = "deviceManagement/reports/exportJobs";

/// Signs and checks download links: an HMAC of the job id and the expiry with the server's key.
pub struct LinkSigner {
    key: hmac::Key,
}

impl LinkSigner {
    pub fn new(secret: &[u8; 32]) -> Self {
        Self {
            key: hmac::Key::new(hmac::HMAC_SHA256, secret),
        }
    }

    fn tag(&self, id: &str, expiry: &str) -> hmac::Tag {
        let mut context = hmac::Context::with_key(&self.key);
        context.update(b"export-link\n");
        context.update(id.as_bytes());
        context.update(b"\n");
        context.update(expiry.as_bytes());
        context.sign()
    }

    pub fn sign(&self, id: &str, expiry: &str) -> String {
        URL_SAFE_NO_PAD.encode(self.tag(id, expiry).as_ref())
    }

    pub fn verify(&self, id: &str, expiry: &str, signature: &str) -> bool {
        URL_SAFE_NO_PAD.decode(signature).is_ok_and(|given| {
            constant_time::verify_slices_are_equal(self.tag(id, expiry).as_ref(), &given).is_ok()
        })
    }
}

/// The requests on export jobs of one tenant.
pub struct Jobs<'a> {
    pub state: &'a AppState,
    pub tenant: &'a str,
    /// `{scheme}://{host}/beta` (or `/v1.0`).
    pub base: &'a str,
    pub parts: &'a Parts,
}

impl Jobs<'_> {
    fn not_found(id: &str) -> ApiError {
        ApiError::not_found(EXPORT_JOB_TYPE, id)
    }

    /// The tenant's job, or 404 (another tenant's job is not found either).
    async fn find(&self, id: &str) -> Result<ExportJob, ApiError> {
        match self.state.store.export_job(id).await {
            Ok(Some(job)) if job.tenant == self.tenant => Ok(job),
            Ok(_) => Err(Self::not_found(id)),
            Err(error) => Err(ApiError::from_store(error, "", "")),
        }
    }

    /// A job's JSON as this read shows it: a completed job's link, except on the first read
    /// after completion when `exportUrlLag` is on.
    async fn render(
        &self,
        job: &ExportJob,
    ) -> Result<serde_json::Map<String, serde_json::Value>, ApiError> {
        let url = match (job.status, job.expiration) {
            (JobStatus::Completed, Some(expiration)) => {
                let lagging = self.state.profile.quirks.export_url_lag
                    && !job.url_shown
                    && self
                        .state
                        .store
                        .mark_export_url_shown(&job.id)
                        .await
                        .map_err(|error| ApiError::from_store(error, "", ""))?;
                (!lagging).then(|| self.link(job, expiration))
            }
            _ => None,
        };
        Ok(job.to_json(url.as_deref()))
    }

    /// `{scheme}://{host}/graphpilot/exports/{id}.zip?se={expiry}&sig={signature}`.
    fn link(&self, job: &ExportJob, expiration: DateTimeOffset) -> String {
        let expiry = expiration.to_string();
        let signature = self.state.links.sign(&job.id, &expiry);
        // Ids and instants stay readable: only what a URL cannot carry is escaped.
        const LINK: &percent_encoding::AsciiSet = &percent_encoding::NON_ALPHANUMERIC
            .remove(b'-')
            .remove(b'_')
            .remove(b'.')
            .remove(b':');
        let encode = |text: &str| percent_encoding::utf8_percent_encode(text, LINK).to_string();
        format!(
            "{}/graphpilot/exports/{}.zip?se={}&sig={}",
            RequestContext::origin(self.parts, self.state.scheme),
            encode(&job.id),
            encode(&expiry),
            signature
        )
    }

    fn entity_response(
        &self,
        status: StatusCode,
        mut map: serde_json::Map<String, serde_json::Value>,
        selection: &Selection,
    ) -> Response {
        let mut body = serde_json::Map::new();
        body.insert(
            "@odata.context".into(),
            format!(
                "{}/$metadata#{COLLECTION}{}/$entity",
                self.base,
                selection.context_suffix()
            )
            .into(),
        );
        body.append(&mut map);
        json_response(status, serde_json::Value::Object(body).to_string())
    }

    /// GET on the collection: the tenant's jobs in creation order, paged.
    pub async fn list(&self) -> Result<Response, ApiError> {
        let options = parse_query(self.parts.uri.query(), self.state.profile.quirks.dollarless)
            .map_err(ApiError::bad_request)?;
        if let Some(option) = options.unsupported_here() {
            return Err(ApiError::bad_request(format!(
                "The query option '{option}' is not supported on exportJobs; use $top and follow @odata.nextLink."
            )));
        }
        let selection = Selection::resolve(options.select.as_deref())?;
        let page_size = options
            .top
            .unwrap_or(self.state.page_size)
            .min(self.state.profile.quirks.max_page_size);
        let scope = format!(
            "{}\n{COLLECTION}\n{}",
            self.tenant,
            options.carried.join("&")
        );
        let after = match &options.skiptoken {
            Some(token) => Some(
                self.state
                    .skiptokens
                    .open(&scope, token)
                    .and_then(|cursor| cursor.as_array()?.first()?.as_i64())
                    .ok_or_else(|| {
                        ApiError::bad_request(
                            "The $skiptoken is invalid, or was issued for another tenant or query; start again from the first page.",
                        )
                    })?,
            ),
            None => None,
        };
        let mut jobs = self
            .state
            .store
            .export_jobs(self.tenant, after, page_size + 1)
            .await
            .map_err(|error| ApiError::from_store(error, "", ""))?;
        let next = if jobs.len() as u64 > page_size {
            jobs.truncate(page_size as usize);
            jobs.last().map(|(seq, _)| *seq)
        } else {
            None
        };
        let mut body = String::with_capacity(jobs.len() * 600 + 256);
        body.push_str("{\"@odata.context\":");
        body.push_str(&json_string(&format!(
            "{}/$metadata#{COLLECTION}",
            self.base
        )));
        if let Some(seq) = next {
            let token = self
                .state
                .skiptokens
                .issue(&scope, &serde_json::json!([seq]));
            let mut carried = options.carried.clone();
            carried.push(format!("$skiptoken={token}"));
            let link = format!(
                "{}{}?{}",
                self.base
                    .rsplit_once('/')
                    .map_or(self.base, |(origin, _)| origin),
                self.parts.uri.path(),
                carried.join("&")
            );
            body.push_str(",\"@odata.nextLink\":");
            body.push_str(&json_string(&link));
        }
        body.push_str(",\"value\":[");
        for (index, (_, job)) in jobs.iter().enumerate() {
            if index > 0 {
                body.push(',');
            }
            let map = selection.project(self.render(job).await?);
            body.push_str(&serde_json::Value::Object(map).to_string());
        }
        body.push_str("]}");
        Ok(json_response(StatusCode::OK, body))
    }

    /// POST: a checked request becomes a `notStarted` job, run in the background.
    pub async fn create(&self, body: Body) -> Result<Response, ApiError> {
        let bytes = read_json_body(self.parts, body, self.state.body_timeout).await?;
        let request = decode_job_request(&bytes).map_err(body_error)?;
        let runner = &self.state.exports;
        let job = ExportJob::new(
            self.tenant,
            request,
            DateTimeOffset::now(),
            runner.not_before_ms(),
        );
        runner
            .submit(&job)
            .await
            .map_err(|error| ApiError::from_store(error, "", ""))?;
        let mut response =
            self.entity_response(StatusCode::CREATED, job.to_json(None), &Selection(None));
        let location = format!("{}/{COLLECTION}('{}')", self.base, job.id);
        if let Ok(location) = HeaderValue::from_str(&location) {
            response.headers_mut().insert(header::LOCATION, location);
        }
        Ok(response)
    }

    pub async fn get(&self, id: &str) -> Result<Response, ApiError> {
        let options = parse_query(self.parts.uri.query(), self.state.profile.quirks.dollarless)
            .map_err(ApiError::bad_request)?;
        let job = self.find(id).await?;
        if let Some(option) = options.unsupported_here() {
            return Err(ApiError::bad_request(format!(
                "The query option '{option}' is not supported on exportJobs."
            )));
        }
        let selection = Selection::resolve(options.select.as_deref())?;
        let map = selection.project(self.render(&job).await?);
        Ok(self.entity_response(StatusCode::OK, map, &selection))
    }

    /// DELETE: the job and its file; 404 once gone.
    pub async fn delete(&self, id: &str) -> Result<Response, ApiError> {
        let deleted = self
            .state
            .store
            .delete_export_job(self.tenant, id)
            .await
            .map_err(|error| ApiError::from_store(error, "", ""))?;
        if !deleted {
            return Err(Self::not_found(id));
        }
        Ok(empty_response(StatusCode::NO_CONTENT))
    }
}

/// `$select` on export jobs: the named properties (matched case-insensitively), with `id` and
/// `@odata.type` always; `None` is every property.
struct Selection(Option<Vec<&'static str>>);

impl Selection {
    fn resolve(names: Option<&[String]>) -> Result<Self, ApiError> {
        let Some(names) = names else {
            return Ok(Selection(None));
        };
        let mut selected = Vec::new();
        for name in names {
            if name == "*" {
                return Ok(Selection(None));
            }
            let canonical = EXPORT_JOB_PROPERTIES
                .iter()
                .find(|property| property.eq_ignore_ascii_case(name))
                .ok_or_else(|| {
                    ApiError::bad_request(format!(
                        "Could not find a property named '{name}' on type '{EXPORT_JOB_TYPE}' ($select)."
                    ))
                })?;
            if !selected.contains(canonical) {
                selected.push(*canonical);
            }
        }
        Ok(Selection(Some(selected)))
    }

    fn project(
        &self,
        map: serde_json::Map<String, serde_json::Value>,
    ) -> serde_json::Map<String, serde_json::Value> {
        match &self.0 {
            None => map,
            Some(selected) => map
                .into_iter()
                .filter(|(name, _)| {
                    name == "@odata.type" || name == "id" || selected.contains(&name.as_str())
                })
                .collect(),
        }
    }

    fn context_suffix(&self) -> String {
        self.0
            .as_ref()
            .map(|names| format!("({})", names.join(",")))
            .unwrap_or_default()
    }
}

/// `GET /graphpilot/exports/{id}.zip?se=…&sig=…`: the zip, to whoever holds the link. Like a
/// blob SAS: no token needed (one sent is ignored), not throttled.
pub async fn download(
    State(state): State<Arc<AppState>>,
    Path(file): Path<String>,
    RawQuery(query): RawQuery,
) -> Response {
    match serve_download(&state, &file, query.as_deref()).await {
        Ok(response) => response,
        Err(error) => error.into_response(),
    }
}

async fn serve_download(
    state: &AppState,
    file: &str,
    query: Option<&str>,
) -> Result<Response, ApiError> {
    let refused = || {
        ApiError::link_refused(
            "Server failed to authenticate the request. Make sure the link is used exactly as the export job's url gives it (id, se and sig unchanged).",
        )
    };
    let id = file.strip_suffix(".zip").ok_or_else(refused)?;
    let pairs: Vec<(String, String)> =
        serde_urlencoded::from_str(query.unwrap_or("")).map_err(|_| refused())?;
    let value = |name: &str| {
        pairs
            .iter()
            .find(|(key, _)| key == name)
            .map(|(_, value)| value.as_str())
    };
    let (Some(expiry), Some(signature)) = (value("se"), value("sig")) else {
        return Err(refused());
    };
    if !state.links.verify(id, expiry, signature) {
        return Err(refused());
    }
    let expires = DateTimeOffset::parse(expiry, Seconds::Required).map_err(|_| refused())?;
    if DateTimeOffset::now() >= expires {
        return Err(ApiError::link_refused(format!(
            "Server failed to authenticate the request: the link expired at {expiry}. Create a new export job for a fresh link."
        )));
    }
    let job = state
        .store
        .export_job(id)
        .await
        .map_err(|error| ApiError::from_store(error, "", ""))?
        .filter(|job| job.status == JobStatus::Completed)
        .ok_or_else(|| ApiError::not_found(EXPORT_JOB_TYPE, id))?;
    let length = job.file_bytes.unwrap_or(0);
    // The first chunk now: a file already gone is a 404, not a broken download.
    let first = state
        .store
        .export_chunk(id, 0)
        .await
        .map_err(|error| ApiError::from_store(error, "", ""))?
        .ok_or_else(|| ApiError::not_found(EXPORT_JOB_TYPE, id))?;
    let store = state.store.clone();
    let id_owned = id.to_string();
    let rest = futures_util::stream::unfold(1i64, move |n| {
        let store = store.clone();
        let id = id_owned.clone();
        async move {
            match store.export_chunk(&id, n).await {
                Ok(Some(bytes)) => Some((Ok::<Bytes, std::io::Error>(Bytes::from(bytes)), n + 1)),
                Ok(None) => None,
                Err(error) => Some((Err(std::io::Error::other(error.to_string())), i64::MAX)),
            }
        }
    });
    let first = futures_util::stream::once(async move { Ok(Bytes::from(first)) });
    let body = Body::from_stream(futures_util::StreamExt::chain(first, rest));
    let mut response = Response::new(body);
    let headers = response.headers_mut();
    headers.insert(
        header::CONTENT_TYPE,
        HeaderValue::from_static("application/zip"),
    );
    if let Ok(value) = HeaderValue::from_str(&length.to_string()) {
        headers.insert(header::CONTENT_LENGTH, value);
    }
    if let Ok(value) = HeaderValue::from_str(&format!("attachment; filename=\"{}.zip\"", job.id)) {
        headers.insert(header::CONTENT_DISPOSITION, value);
    }
    Ok(response)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_link_verifies_only_unchanged() {
        let links = LinkSigner::new(&[3; 32]);
        let signature = links.sign("job", "2026-01-01T00:00:00Z");
        assert!(links.verify("job", "2026-01-01T00:00:00Z", &signature));
        assert!(!links.verify("job2", "2026-01-01T00:00:00Z", &signature));
        assert!(!links.verify("job", "2027-01-01T00:00:00Z", &signature));
        assert!(!links.verify("job", "2026-01-01T00:00:00Z", "AAAA"));
    }
}
