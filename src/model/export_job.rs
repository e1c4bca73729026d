//! Report export jobs (reports-and-sync.md A1): the `deviceManagementExportJob` as stored and on
//! the wire, and a job request body decoded into typed values, every refusal naming its fault.

use serde_json::Value as Json;

use super::body::{BodyError, parse_object};
use super::report::{AUTOPILOT_V1, Format, Localization, column_index, column_names};
use crate::edm::DateTimeOffset;

/// Intune's Autopilot v2 reports: their rows are not derivable from v1 events.
const V2_REPORTS: [&str; 3] = [
    "AutopilotV2DeploymentStatus",
    "AutopilotV2DeploymentStatusDetailedAppInfo",
    "AutopilotV2DeploymentStatusDetailedScriptInfo",
];
/// The most columns a `select` may name.
pub const MAX_SELECT: usize = 256;
/// The entity type of a job.
pub const EXPORT_JOB_TYPE: &str = "microsoft.graph.deviceManagementExportJob";
/// A job's properties, in the order its JSON has them.
pub const EXPORT_JOB_PROPERTIES: [&str; 12] = [
    "id",
    "reportName",
    "filter",
    "select",
    "format",
    "snapshotId",
    "localizationType",
    "search",
    "status",
    "url",
    "requestDateTime",
    "expirationDateTime",
];

/// Where a job is in its life.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum JobStatus {
    NotStarted,
    InProgress,
    Completed,
    Failed,
}

impl JobStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            JobStatus::NotStarted => "notStarted",
            JobStatus::InProgress => "inProgress",
            JobStatus::Completed => "completed",
            JobStatus::Failed => "failed",
        }
    }

    pub fn parse(text: &str) -> Option<JobStatus> {
        [
            JobStatus::NotStarted,
            JobStatus::InProgress,
            JobStatus::Completed,
            JobStatus::Failed,
        ]
        .into_iter()
        .find(|status| status.as_str() == text)
    }
}

/// A `deviceManagementExportJob` as stored.
#[derive(Clone, Debug, PartialEq)]
pub struct ExportJob {
    pub id: String,
    pub tenant: String,
    pub report_name: String,
    pub filter: Option<String>,
    pub search: Option<String>,
    pub snapshot_id: Option<String>,
    pub select: Vec<String>,
    pub format: Format,
    pub localization: Localization,
    pub status: JobStatus,
    pub requested: DateTimeOffset,
    pub expiration: Option<DateTimeOffset>,
    /// Unix milliseconds before which the job is not started (`exportDelay`).
    pub not_before_ms: i64,
    /// Whether a read has shown it completed (`exportUrlLag`).
    pub url_shown: bool,
    /// The zip's size, once written.
    pub file_bytes: Option<i64>,
}

impl ExportJob {
    /// A new job for a checked request, `notStarted`, with a fresh `{reportName}_{guid}` id.
    pub fn new(
        tenant: &str,
        request: JobRequest,
        requested: DateTimeOffset,
        not_before_ms: i64,
    ) -> Self {
        ExportJob {
            id: format!("{}_{}", request.report_name, uuid::Uuid::new_v4()),
            tenant: tenant.to_string(),
            report_name: request.report_name.to_string(),
            filter: request.filter,
            search: request.search,
            snapshot_id: request.snapshot_id,
            select: request.select,
            format: request.format,
            localization: request.localization,
            status: JobStatus::NotStarted,
            requested,
            expiration: None,
            not_before_ms,
            url_shown: false,
            file_bytes: None,
        }
    }

    /// The file's name inside the zip.
    pub fn entry_name(&self) -> String {
        format!("{}.{}", self.id, self.format.as_str())
    }

    /// The entity's JSON after `@odata.context`: every property, `url` as given.
    pub fn to_json(&self, url: Option<&str>) -> serde_json::Map<String, Json> {
        let never = DateTimeOffset::from_ticks(0).expect("tick 0 is 0001-01-01");
        let mut map = serde_json::Map::new();
        map.insert("@odata.type".into(), format!("#{EXPORT_JOB_TYPE}").into());
        map.insert("id".into(), self.id.clone().into());
        map.insert("reportName".into(), self.report_name.clone().into());
        map.insert("filter".into(), self.filter.clone().into());
        map.insert("select".into(), self.select.clone().into());
        map.insert("format".into(), self.format.as_str().into());
        map.insert("snapshotId".into(), self.snapshot_id.clone().into());
        map.insert("localizationType".into(), self.localization.as_str().into());
        map.insert("search".into(), self.search.clone().into());
        map.insert("status".into(), self.status.as_str().into());
        map.insert("url".into(), url.map(str::to_string).into());
        map.insert("requestDateTime".into(), self.requested.to_string().into());
        map.insert(
            "expirationDateTime".into(),
            self.expiration.unwrap_or(never).to_string().into(),
        );
        map
    }
}

/// A checked job request: what the POST asked for, as sent and resolved.
#[derive(Clone, Debug, PartialEq)]
pub struct JobRequest {
    pub report_name: &'static str,
    pub filter: Option<String>,
    pub search: Option<String>,
    pub snapshot_id: Option<String>,
    /// `select` as sent.
    pub select: Vec<String>,
    /// The selected report columns (indices), in order; empty: the defaults.
    pub columns: Vec<usize>,
    pub format: Format,
    pub localization: Localization,
}
/// Properties a client may send back from a GET; they are the server's and ignored.
const READ_ONLY: [&str; 5] = [
    "id",
    "status",
    "url",
    "requestDateTime",
    "expirationDateTime",
];

/// Decodes a POST body of `…/reports/exportJobs`. A property that does not exist or a value of
/// the wrong JSON type is `Invalid` (`ModelValidationFailure`); a report, column, format or filter
/// the report refuses is `Malformed` (`BadRequest`), as Intune answers them. Both name the fault.
pub fn decode_job_request(bytes: &[u8]) -> Result<JobRequest, BodyError> {
    let members = parse_object(bytes)?;
    let invalid = |message: String| BodyError::Invalid(message);
    let refused = |message: String| BodyError::Malformed(message);
    let mut report_name = None;
    let mut filter = None;
    let mut search = None;
    let mut snapshot_id = None;
    let mut select: Option<Vec<String>> = None;
    let mut format = Format::Csv;
    let mut localization = Localization::AdditionalColumn;
    let text = |name: &str, json: &Json| -> Result<Option<String>, BodyError> {
        match json {
            Json::Null => Ok(None),
            Json::String(text) => Ok(Some(text.clone())),
            other => Err(BodyError::Invalid(format!(
                "Property '{name}' must be a string; got {other}."
            ))),
        }
    };
    for (name, json) in &members {
        match name.as_str() {
            "@odata.type" => {
                let named = json.as_str().map(|t| t.strip_prefix('#').unwrap_or(t));
                if named != Some(EXPORT_JOB_TYPE) {
                    return Err(invalid(format!(
                        "'@odata.type' must be '#{EXPORT_JOB_TYPE}' for this resource; got {json}."
                    )));
                }
            }
            annotation if annotation.contains('@') => {}
            read_only if READ_ONLY.contains(&read_only) => {}
            "reportName" => report_name = text(name, json)?,
            "filter" => filter = text(name, json)?,
            "search" => search = text(name, json)?,
            "snapshotId" => snapshot_id = text(name, json)?,
            "format" => {
                if let Some(value) = text(name, json)? {
                    format = Format::parse(&value).ok_or_else(|| {
                        refused(format!(
                            "Invalid value '{value}' for property 'format': the formats are csv and json."
                        ))
                    })?;
                }
            }
            "localizationType" => {
                if let Some(value) = text(name, json)? {
                    localization = Localization::parse(&value).ok_or_else(|| {
                        refused(format!(
                            "Invalid value '{value}' for property 'localizationType': use localizedValuesAsAdditionalColumn or replaceLocalizableValues."
                        ))
                    })?;
                }
            }
            "select" => {
                select = match json {
                    Json::Null => None,
                    Json::Array(items) => Some(
                        items
                            .iter()
                            .map(|item| {
                                item.as_str().map(str::to_string).ok_or_else(|| {
                                    invalid(format!(
                                        "Property 'select' must be an array of column names; got {item} in it."
                                    ))
                                })
                            })
                            .collect::<Result<_, _>>()?,
                    ),
                    other => {
                        return Err(invalid(format!(
                            "Property 'select' must be an array of column names; got {other}."
                        )));
                    }
                }
            }
            other => {
                return Err(invalid(format!(
                    "Property '{other}' does not exist on type '{EXPORT_JOB_TYPE}'. Property names are case-sensitive."
                )));
            }
        }
    }
    let report_name = resolve_report(report_name.as_deref())?;
    let select = select.unwrap_or_default();
    let columns = resolve_select(&select)?;
    if let Some(filter) = filter.as_deref().filter(|text| !text.is_empty()) {
        return Err(no_filters("filter", filter));
    }
    if let Some(search) = search.as_deref().filter(|text| !text.is_empty()) {
        return Err(no_filters("search", search));
    }
    if let Some(snapshot) = &snapshot_id {
        return Err(no_filters("snapshotId", snapshot));
    }
    Ok(JobRequest {
        report_name,
        filter,
        search,
        snapshot_id,
        select,
        columns,
        format,
        localization,
    })
}

fn no_filters(property: &str, value: &str) -> BodyError {
    BodyError::Malformed(format!(
        "Property '{property}' ('{value}') cannot be used: there are no filters for this report \
         ({AUTOPILOT_V1} exports every stored event); leave '{property}' out or empty."
    ))
}

fn resolve_report(name: Option<&str>) -> Result<&'static str, BodyError> {
    let Some(name) = name.filter(|name| !name.is_empty()) else {
        return Err(BodyError::Malformed(format!(
            "Property 'reportName' is required; the supported reports are: {AUTOPILOT_V1}."
        )));
    };
    if name.eq_ignore_ascii_case(AUTOPILOT_V1) {
        return Ok(AUTOPILOT_V1);
    }
    if let Some(v2) = V2_REPORTS.iter().find(|v2| v2.eq_ignore_ascii_case(name)) {
        return Err(BodyError::Malformed(format!(
            "Report '{v2}' is not supported: graphpilot records Autopilot v1 deployment events \
             only, and v2's phases, result codes and app and script rows cannot be derived from \
             them (none are invented). Use {AUTOPILOT_V1}."
        )));
    }
    Err(BodyError::Malformed(format!(
        "Property 'reportName' names an unknown report '{name}'; the supported reports are: {AUTOPILOT_V1}."
    )))
}

fn resolve_select(select: &[String]) -> Result<Vec<usize>, BodyError> {
    if select.len() > MAX_SELECT {
        return Err(BodyError::Malformed(format!(
            "Property 'select' names {} columns; at most {MAX_SELECT} are allowed.",
            select.len()
        )));
    }
    let mut columns = Vec::with_capacity(select.len());
    for name in select {
        if name.to_ascii_lowercase().ends_with("_loc") {
            return Err(BodyError::Malformed(format!(
                "Column '{name}' in 'select' cannot be selected: '_loc' columns follow their enum \
                 column by themselves with localizationType localizedValuesAsAdditionalColumn."
            )));
        }
        let index = column_index(name).ok_or_else(|| {
                BodyError::Malformed(format!(
                    "Column '{name}' in 'select' is not a column of {AUTOPILOT_V1}; the columns are: {}.",
                    column_names()
                ))
            })?;
        if columns.contains(&index) {
            return Err(BodyError::Malformed(format!(
                "Column '{name}' appears more than once in 'select'."
            )));
        }
        columns.push(index);
    }
    Ok(columns)
}
#[cfg(test)]
mod tests {
    use super::*;

    fn decode(body: &str) -> Result<JobRequest, BodyError> {
        decode_job_request(body.as_bytes())
    }

    fn message(result: Result<JobRequest, BodyError>) -> String {
        match result.unwrap_err() {
            BodyError::Invalid(message) | BodyError::Malformed(message) => message,
        }
    }

    #[test]
    fn defaults_and_case_insensitive_values() {
        let job =
            decode(r#"{"reportName":"autopilotv1deploymentstatus","format":"JSON","localizationType":"ReplaceLocalizableValues","filter":"","id":"x"}"#)
                .unwrap();
        assert_eq!(job.report_name, AUTOPILOT_V1);
        assert_eq!(job.format, Format::Json);
        assert_eq!(job.localization, Localization::Replace);
        assert_eq!(job.filter.as_deref(), Some(""));
    }

    #[test]
    fn refusals_name_what_is_wrong() {
        assert!(message(decode("{}")).contains("reportName"));
        assert!(message(decode(r#"{"reportName":"Devices"}"#)).contains("'Devices'"));
        assert!(
            message(decode(r#"{"reportName":"AutopilotV2DeploymentStatus"}"#))
                .contains("AutopilotV2DeploymentStatus")
        );
        let v1 = |rest: &str| decode(&format!(r#"{{"reportName":"{AUTOPILOT_V1}",{rest}}}"#));
        assert!(message(v1(r#""select":["Nope"]"#)).contains("'Nope'"));
        assert!(message(v1(r#""select":["OS","os"]"#)).contains("'os'"));
        assert!(message(v1(r#""select":["DeploymentState_loc"]"#)).contains("_loc"));
        assert!(message(v1(r#""format":"pdf""#)).contains("'pdf'"));
        assert!(message(v1(r#""localizationType":"x""#)).contains("'x'"));
        assert!(message(v1(r#""filter":"a eq 'b'""#)).contains("no filters"));
        assert!(message(v1(r#""snapshotId":"s""#)).contains("snapshotId"));
        assert!(message(v1(r#""colour":"red""#)).contains("'colour'"));
        let many: Vec<String> = (0..257).map(|_| "\"OS\"".to_string()).collect();
        assert!(message(v1(&format!(r#""select":[{}]"#, many.join(",")))).contains("256"));
    }
}
