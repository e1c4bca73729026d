//! Path → [`Route`] under the service root (api.md §1): segments match case-insensitively, keys may
//! be written `/{id}` or `('{id}')`, and anything unknown names the segment at fault.

use super::error::ApiError;
use crate::odata::percent_decode;
use crate::store::{Collection, Target};

/// The route template of a response, for metrics (a response extension).
#[derive(Clone, Copy, Debug)]
pub struct RouteTemplate(pub &'static str);

/// What a route addresses.
#[derive(Debug)]
pub enum Resource {
    ServiceDocument,
    Metadata,
    Batch,
    Collection(Collection),
    Count(Collection),
    Entity(Target),
    /// `deviceManagement/reports/exportJobs`.
    ExportJobs,
    ExportJob(String),
}

#[derive(Debug, PartialEq)]
pub enum Route {
    ServiceDocument,
    Metadata,
    Batch,
    Events,
    EventsCount,
    Event(String),
    Details(String),
    DetailsCount(String),
    Detail(String, String),
    ExportJobs,
    ExportJob(String),
}

impl Route {
    /// The route's template, for metrics labels (never the ids themselves: one series a route).
    pub fn template(&self) -> &'static str {
        match self {
            Route::ServiceDocument => "/beta",
            Route::Metadata => "/beta/$metadata",
            Route::Batch => "/beta/$batch",
            Route::Events => "/beta/deviceManagement/autopilotEvents",
            Route::EventsCount => "/beta/deviceManagement/autopilotEvents/$count",
            Route::Event(_) => "/beta/deviceManagement/autopilotEvents/{id}",
            Route::Details(_) => "/beta/deviceManagement/autopilotEvents/{id}/policyStatusDetails",
            Route::DetailsCount(_) => {
                "/beta/deviceManagement/autopilotEvents/{id}/policyStatusDetails/$count"
            }
            Route::Detail(..) => {
                "/beta/deviceManagement/autopilotEvents/{id}/policyStatusDetails/{detailId}"
            }
            Route::ExportJobs => "/beta/deviceManagement/reports/exportJobs",
            Route::ExportJob(_) => "/beta/deviceManagement/reports/exportJobs/{id}",
        }
    }

    /// The methods this route answers.
    pub fn allowed_methods(&self) -> &'static [&'static str] {
        match self {
            Route::ServiceDocument
            | Route::Metadata
            | Route::EventsCount
            | Route::DetailsCount(_) => &["GET"],
            Route::Events | Route::Details(_) | Route::ExportJobs => &["GET", "POST"],
            Route::ExportJob(_) => &["GET", "DELETE"],
            Route::Batch => &["POST"],
            Route::Event(_) | Route::Detail(..) => &["GET", "PATCH", "DELETE"],
        }
    }

    /// What the route addresses, typed: handlers take this, never the route's raw shape.
    pub fn resource(&self) -> Resource {
        match self {
            Route::ServiceDocument => Resource::ServiceDocument,
            Route::Metadata => Resource::Metadata,
            Route::Batch => Resource::Batch,
            Route::Events => Resource::Collection(Collection::Events),
            Route::EventsCount => Resource::Count(Collection::Events),
            Route::Details(event_id) => Resource::Collection(Collection::Details {
                event_id: event_id.clone(),
            }),
            Route::DetailsCount(event_id) => Resource::Count(Collection::Details {
                event_id: event_id.clone(),
            }),
            Route::Event(id) => Resource::Entity(Target::Event { id: id.clone() }),
            Route::Detail(event_id, id) => Resource::Entity(Target::Detail {
                event_id: event_id.clone(),
                id: id.clone(),
            }),
            Route::ExportJobs => Resource::ExportJobs,
            Route::ExportJob(id) => Resource::ExportJob(id.clone()),
        }
    }

    /// Whether the route is one of the report export jobs' (served under `/v1.0` too).
    pub fn is_export_jobs(&self) -> bool {
        matches!(self, Route::ExportJobs | Route::ExportJob(_))
    }
}

/// The path of a collection relative to the service root, as used in context URLs.
pub fn collection_path(collection: &Collection) -> String {
    match collection {
        Collection::Events => "deviceManagement/autopilotEvents".into(),
        Collection::Details { event_id } => format!(
            "deviceManagement/autopilotEvents('{}')/policyStatusDetails",
            event_id.replace('\'', "''")
        ),
    }
}

/// Parses the segments after `/beta`.
pub fn parse(raw_segments: &[&str]) -> Result<Route, ApiError> {
    let mut segments = Vec::with_capacity(raw_segments.len());
    for raw in raw_segments {
        segments.push(percent_decode(raw).map_err(ApiError::bad_request)?);
    }
    // One trailing slash is tolerated.
    if segments.last().is_some_and(String::is_empty) {
        segments.pop();
    }
    let mut rest = segments.iter().map(String::as_str);
    let Some(first) = rest.next() else {
        return Ok(Route::ServiceDocument);
    };
    if first.eq_ignore_ascii_case("$metadata") {
        return finish(rest, Route::Metadata);
    }
    if first.eq_ignore_ascii_case("$batch") {
        return finish(rest, Route::Batch);
    }
    if !first.eq_ignore_ascii_case("deviceManagement") {
        return Err(ApiError::segment_not_found(first));
    }
    let Some(second) = rest.next() else {
        return Err(ApiError::segment_not_found(first));
    };
    let (name, key) = split_key(second)?;
    if name.eq_ignore_ascii_case("reports") && key.is_none() {
        return parse_export_jobs(second, rest);
    }
    if !name.eq_ignore_ascii_case("autopilotEvents") {
        return Err(ApiError::segment_not_found(second));
    }
    let event_id = match key {
        Some(key) => key,
        None => match rest.next() {
            None => return Ok(Route::Events),
            Some(count) if count.eq_ignore_ascii_case("$count") => {
                return finish(rest, Route::EventsCount);
            }
            Some(key) => key.to_string(),
        },
    };
    let Some(third) = rest.next() else {
        return Ok(Route::Event(event_id));
    };
    let (name, key) = split_key(third)?;
    if !name.eq_ignore_ascii_case(crate::model::DETAILS_NAVIGATION) {
        return Err(ApiError::segment_not_found(third));
    }
    let detail_id = match key {
        Some(key) => key,
        None => match rest.next() {
            None => return Ok(Route::Details(event_id)),
            Some(count) if count.eq_ignore_ascii_case("$count") => {
                return finish(rest, Route::DetailsCount(event_id));
            }
            Some(key) => key.to_string(),
        },
    };
    finish(rest, Route::Detail(event_id, detail_id))
}

/// The segments after `deviceManagement/reports`.
fn parse_export_jobs<'a>(
    reports: &str,
    mut rest: impl Iterator<Item = &'a str>,
) -> Result<Route, ApiError> {
    let Some(third) = rest.next() else {
        return Err(ApiError::segment_not_found(reports));
    };
    let (name, key) = split_key(third)?;
    if !name.eq_ignore_ascii_case("exportJobs") {
        return Err(ApiError::segment_not_found(third));
    }
    let id = match key {
        Some(key) => key,
        None => match rest.next() {
            None => return Ok(Route::ExportJobs),
            Some(key) => key.to_string(),
        },
    };
    finish(rest, Route::ExportJob(id))
}

fn finish<'a>(mut rest: impl Iterator<Item = &'a str>, route: Route) -> Result<Route, ApiError> {
    match rest.next() {
        None => Ok(route),
        Some(extra) => Err(ApiError::segment_not_found(extra)),
    }
}

/// Splits `name('key')` (or `name(id='key')`) into its name and unescaped key.
fn split_key(segment: &str) -> Result<(&str, Option<String>), ApiError> {
    let Some(open) = segment.find('(') else {
        return Ok((segment, None));
    };
    let name = &segment[..open];
    let inner = segment[open + 1..].strip_suffix(')').ok_or_else(|| {
        ApiError::bad_request(format!(
            "The key in segment '{segment}' is missing its closing ')'."
        ))
    })?;
    let inner = inner.strip_prefix("id=").unwrap_or(inner);
    let quoted = inner
        .strip_prefix('\'')
        .and_then(|rest| rest.strip_suffix('\''))
        .filter(|body| !body.replace("''", "").contains('\''))
        .ok_or_else(|| {
            ApiError::bad_request(format!(
                "Bad key in segment '{segment}': a string key is written in single quotes, e.g. ('0d5f…')."
            ))
        })?;
    Ok((name, Some(quoted.replace("''", "'"))))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn route(path: &str) -> Result<Route, ApiError> {
        let segments: Vec<&str> = path.split('/').collect();
        parse(&segments)
    }

    #[test]
    fn segments_are_case_insensitive_and_keys_take_both_forms() {
        assert_eq!(
            route("DeviceManagement/AutopilotEvents").unwrap(),
            Route::Events
        );
        assert_eq!(
            route("deviceManagement/autopilotEvents/$COUNT").unwrap(),
            Route::EventsCount
        );
        assert_eq!(
            route("deviceManagement/autopilotEvents/abc").unwrap(),
            Route::Event("abc".into())
        );
        assert_eq!(
            route("deviceManagement/autopilotEvents('abc')").unwrap(),
            Route::Event("abc".into())
        );
        assert_eq!(
            route("deviceManagement/autopilotEvents('a''b')").unwrap(),
            Route::Event("a'b".into())
        );
        assert_eq!(
            route("deviceManagement/autopilotEvents('e')/policyStatusDetails('d')").unwrap(),
            Route::Detail("e".into(), "d".into())
        );
        assert_eq!(
            route("deviceManagement/autopilotEvents/e/policyStatusDetails/$count").unwrap(),
            Route::DetailsCount("e".into())
        );
        assert_eq!(
            route("deviceManagement/Reports/exportJobs").unwrap(),
            Route::ExportJobs
        );
        assert_eq!(
            route("deviceManagement/reports/exportJobs('A_b')").unwrap(),
            Route::ExportJob("A_b".into())
        );
        assert_eq!(
            route("deviceManagement/reports/exportJobs/A_b").unwrap(),
            Route::ExportJob("A_b".into())
        );
        assert!(route("deviceManagement/reports/getReportFilters").is_err());
    }

    #[test]
    fn unknown_segments_are_named() {
        for (path, segment) in [
            ("users", "users"),
            ("deviceManagement/managedDevices", "managedDevices"),
            ("deviceManagement/autopilotEvents/e/deviceId", "deviceId"),
            ("deviceManagement/autopilotEvents/$count/x", "x"),
        ] {
            let error = route(path).unwrap_err();
            assert!(
                error.message.contains(&format!("'{segment}'")),
                "{path}: {}",
                error.message
            );
        }
        assert!(route("deviceManagement/autopilotEvents('abc)").is_err());
    }
}
