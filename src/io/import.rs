//! Imports: events from NDJSON (one event per line, as `export` writes), from Graph list responses
//! saved by scripts and PowerShell (`{"value": [...]}` pages, one per file or one per line), or
//! from a JSON array. Each event is decoded as strictly as a create body, keeps its id and its
//! details' ids, and is upserted by id (so an import can be repeated, or resumed after a fix).

use std::io::BufRead;

use serde_json::Value as Json;

use crate::model::Deployment;
use crate::model::decode_import;

/// Where a record came from, for messages: a line of NDJSON, or an item of a JSON document.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Origin {
    Line(u64),
    Item(u64),
}

impl std::fmt::Display for Origin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Origin::Line(line) => write!(f, "line {line}"),
            Origin::Item(item) => write!(f, "item {item}"),
        }
    }
}

/// A record that could not be imported, and why.
#[derive(Clone, Debug, PartialEq)]
pub struct BadRecord {
    pub origin: Origin,
    pub reason: String,
}

/// Reads records from one input and hands them over in chunks.
pub struct RecordReader<R: BufRead> {
    input: R,
    /// Set when the input turned out to be one JSON document (not NDJSON): its records.
    document: Option<std::vec::IntoIter<(Origin, Json)>>,
    line: u64,
    started: bool,
}

impl<R: BufRead> RecordReader<R> {
    pub fn new(input: R) -> Self {
        Self {
            input,
            document: None,
            line: 0,
            started: false,
        }
    }

    /// The next chunk of at most `size` records: decoded deployments and bad records, in input
    /// order. `None` at the end of the input. Records are decoded on every core.
    pub fn next_chunk(
        &mut self,
        size: usize,
    ) -> std::io::Result<Option<(Vec<Deployment>, Vec<BadRecord>)>> {
        let mut raw = Vec::with_capacity(size);
        while raw.len() < size {
            let Some(record) = self.next_record()? else {
                break;
            };
            raw.push(record);
        }
        if raw.is_empty() {
            return Ok(None);
        }
        let threads = std::thread::available_parallelism().map_or(1, usize::from);
        let slice = raw.len().div_ceil(threads);
        let decoded: Vec<Vec<Result<Deployment, BadRecord>>> = std::thread::scope(|scope| {
            let workers: Vec<_> = raw
                .chunks(slice)
                .map(|part| scope.spawn(move || part.iter().map(decode).collect()))
                .collect();
            workers
                .into_iter()
                .map(|worker| worker.join().expect("a decoding thread panicked"))
                .collect()
        });
        let mut good = Vec::with_capacity(raw.len());
        let mut bad = Vec::new();
        for result in decoded.into_iter().flatten() {
            match result {
                Ok(deployment) => good.push(deployment),
                Err(record) => bad.push(record),
            }
        }
        Ok(Some((good, bad)))
    }

    /// The next record as bytes of one JSON object, or why it is not one.
    #[allow(clippy::type_complexity)]
    fn next_record(&mut self) -> std::io::Result<Option<(Origin, Result<Vec<u8>, String>)>> {
        loop {
            if let Some(items) = &mut self.document {
                match items.next() {
                    Some((origin, item)) => return Ok(Some((origin, object_bytes(item)))),
                    // A page on one line is done: back to the lines (a whole document has left
                    // the input at its end).
                    None => self.document = None,
                }
            }
            if !self.started {
                self.started = true;
                if self.starts_a_document()? {
                    let mut text = Vec::new();
                    self.input.read_to_end(&mut text)?;
                    self.document = Some(document_records(&text).into_iter());
                    continue;
                }
            }
            let mut line = Vec::new();
            if self.input.read_until(b'\n', &mut line)? == 0 {
                return Ok(None);
            }
            self.line += 1;
            let origin = Origin::Line(self.line);
            let trimmed = line.trim_ascii();
            if trimmed.is_empty() {
                continue;
            }
            // A saved Graph page on one line holds several events (events have no "value", so
            // only lines that mention it are parsed twice).
            if trimmed.starts_with(b"{")
                && trimmed.windows(7).any(|window| window == b"\"value\"")
                && let Ok(Json::Object(map)) = serde_json::from_slice::<Json>(trimmed)
                && !map.contains_key("id")
                && let Some(Json::Array(_)) = map.get("value")
            {
                let Some(Json::Array(items)) =
                    map.into_iter().find(|(k, _)| k == "value").map(|(_, v)| v)
                else {
                    unreachable!("checked above")
                };
                let records: Vec<_> = items.into_iter().map(|item| (origin, item)).collect();
                self.document = Some(records.into_iter());
                continue;
            }
            return Ok(Some((origin, Ok(trimmed.to_vec()))));
        }
    }

    /// Whether the input is one JSON document (an array, or an object spread over several lines
    /// such as a pretty-printed page) rather than NDJSON.
    fn starts_a_document(&mut self) -> std::io::Result<bool> {
        let buffer = self.input.fill_buf()?;
        let text = buffer
            .iter()
            .position(|b| !b.is_ascii_whitespace())
            .map(|start| &buffer[start..]);
        Ok(match text {
            Some([b'[', ..]) => true,
            Some(rest @ [b'{', ..]) => {
                // NDJSON when the first line is a whole JSON value.
                let first_line = rest.split(|&b| b == b'\n').next().unwrap_or(rest);
                serde_json::from_slice::<serde::de::IgnoredAny>(first_line).is_err()
            }
            _ => false,
        })
    }
}

/// One raw record decoded, or why it is bad.
fn decode((origin, record): &(Origin, Result<Vec<u8>, String>)) -> Result<Deployment, BadRecord> {
    let bytes = record.as_ref().map_err(|reason| BadRecord {
        origin: *origin,
        reason: reason.clone(),
    })?;
    decode_import(bytes).map_err(|error| BadRecord {
        origin: *origin,
        reason: match error {
            crate::model::BodyError::Malformed(reason)
            | crate::model::BodyError::Invalid(reason) => reason,
        },
    })
}

/// The events of one JSON document: an array of events, or a page with a `value` array.
fn document_records(text: &[u8]) -> Vec<(Origin, Json)> {
    match serde_json::from_slice::<Json>(text) {
        Ok(Json::Array(items)) => numbered(items),
        Ok(Json::Object(mut map)) if matches!(map.get("value"), Some(Json::Array(_))) => {
            match map.remove("value") {
                Some(Json::Array(items)) => numbered(items),
                _ => unreachable!("checked above"),
            }
        }
        Ok(Json::Object(map)) => vec![(Origin::Item(1), Json::Object(map))],
        Ok(_) => vec![(
            Origin::Item(1),
            Json::String(
                "the document is neither an array of events nor a page with 'value'".into(),
            ),
        )],
        Err(error) => vec![(
            Origin::Line(error.line() as u64),
            Json::String(format!("not valid JSON: {error}")),
        )],
    }
}

fn numbered(items: Vec<Json>) -> Vec<(Origin, Json)> {
    items
        .into_iter()
        .zip(1..)
        .map(|(item, n)| (Origin::Item(n), item))
        .collect()
}

/// An item of a document as bytes for the strict decoder; a string item carries a reading error.
fn object_bytes(item: Json) -> Result<Vec<u8>, String> {
    match item {
        Json::Object(_) => Ok(item.to_string().into_bytes()),
        Json::String(reason) => Err(reason),
        other => Err(format!("expected an event object, found {other}")),
    }
}

/// What to do with a record that cannot be imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OnError {
    /// Report it with its line number and import the rest.
    Skip,
    /// Import nothing: every input is checked before the first record is written.
    Stop,
}

/// How an import went.
#[derive(Debug, Default, serde::Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportReport {
    pub imported: u64,
    pub details: u64,
    pub skipped: u64,
    /// Seconds spent checking every record, loading rows, and building indexes and statistics.
    pub check_seconds: f64,
    pub load_seconds: f64,
    pub index_seconds: f64,
    /// The first bad records (at most [`REPORTED_BAD`]), with where they were.
    pub errors: Vec<ReportedBad>,
}

#[derive(Debug, serde::Serialize)]
pub struct ReportedBad {
    pub input: String,
    #[serde(rename = "at")]
    pub origin: String,
    pub reason: String,
}

/// Bad records listed in a report; the rest are only counted.
pub const REPORTED_BAD: usize = 100;
/// Records per transaction.
const IMPORT_CHUNK: usize = 10_000;

/// Imports `inputs` (each opened by `open`, twice: once to check every record and find the last
/// occurrence of each id, once to load) into `tenant`. `progress` hears how many records were
/// loaded so far. Under [`OnError::Stop`] a bad record fails the import before anything is
/// written. Into empty tables the load is a plain insert with indexes built at the end (the first
/// pass made the ids unique); otherwise events are upserted by id.
pub async fn import<R, O>(
    store: &std::sync::Arc<crate::store::Store>,
    tenant: &str,
    inputs: &[String],
    open: O,
    on_error: OnError,
    progress: impl Fn(u64),
) -> anyhow::Result<ImportReport>
where
    R: BufRead,
    O: Fn(&str) -> std::io::Result<R>,
{
    use crate::store::LoadKind;
    let mut report = ImportReport::default();
    let clock = std::time::Instant::now();
    // Pass 1: every record decoded; the position of each id's last occurrence.
    let mut last = std::collections::HashMap::new();
    let mut position = 0u64;
    for input in inputs {
        let mut reader = RecordReader::new(open(input)?);
        while let Some((good, bad)) = reader.next_chunk(IMPORT_CHUNK)? {
            for deployment in good {
                position += 1;
                last.insert(deployment.event.id, position);
            }
            for record in bad {
                report.skipped += 1;
                if report.errors.len() < REPORTED_BAD {
                    report.errors.push(ReportedBad {
                        input: input.to_string(),
                        origin: record.origin.to_string(),
                        reason: record.reason,
                    });
                }
            }
        }
    }
    if on_error == OnError::Stop
        && let Some(first) = report.errors.first()
    {
        anyhow::bail!(
            "{} bad record(s), nothing imported; the first: {} {}: {} (fix them, or use --on-error skip)",
            report.skipped,
            first.input,
            first.origin,
            first.reason
        );
    }
    report.check_seconds = clock.elapsed().as_secs_f64();
    // Pass 2: load the last occurrence of each id.
    let deferred = store.begin_bulk_load().await?;
    let kind = if deferred {
        LoadKind::Insert
    } else {
        LoadKind::Upsert
    };
    let loaded: anyhow::Result<()> = async {
        let mut pending: Option<tokio::task::JoinHandle<Result<(), crate::store::StoreError>>> =
            None;
        let mut position = 0u64;
        for input in inputs {
            let mut reader = RecordReader::new(open(input)?);
            while let Some((good, _)) = reader.next_chunk(IMPORT_CHUNK)? {
                let chunk: Vec<Deployment> = good
                    .into_iter()
                    .filter(|deployment| {
                        position += 1;
                        last.get(&deployment.event.id) == Some(&position)
                    })
                    .map(without_repeated_details)
                    .collect();
                report.imported += chunk.len() as u64;
                report.details += chunk.iter().map(|d| d.details.len() as u64).sum::<u64>();
                if let Some(task) = pending.take() {
                    task.await??;
                }
                let (store, tenant) = (store.clone(), tenant.to_string());
                pending = Some(tokio::spawn(async move {
                    store.bulk_load(&tenant, chunk, kind).await
                }));
                progress(report.imported);
            }
        }
        if let Some(task) = pending.take() {
            task.await??;
        }
        Ok(())
    }
    .await;
    report.load_seconds = clock.elapsed().as_secs_f64() - report.check_seconds;
    if deferred {
        // Also after a failed load (a full disk): the server must not go on without indexes.
        let rebuilt = store.finish_bulk_load().await;
        if loaded.is_ok() {
            rebuilt?;
            store.analyze().await?;
        }
    }
    loaded?;
    store.checkpoint().await?;
    report.index_seconds =
        clock.elapsed().as_secs_f64() - report.check_seconds - report.load_seconds;
    Ok(report)
}

/// An event whose details repeat an id keeps the last of them.
fn without_repeated_details(mut deployment: Deployment) -> Deployment {
    let mut seen = std::collections::HashSet::new();
    deployment.details.reverse();
    deployment
        .details
        .retain(|detail| seen.insert(detail.id.clone()));
    deployment.details.reverse();
    deployment
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read(text: &str) -> (Vec<String>, Vec<BadRecord>) {
        let mut reader = RecordReader::new(text.as_bytes());
        let mut ids = Vec::new();
        let mut bad = Vec::new();
        while let Some((good, wrong)) = reader.next_chunk(2).unwrap() {
            ids.extend(good.into_iter().map(|d| d.event.id));
            bad.extend(wrong);
        }
        (ids, bad)
    }

    #[test]
    fn ndjson_lines_are_records_and_bad_ones_are_reported_by_line() {
        let text = "{\"id\":\"a\"}\n\n{\"id\":\"b\",\"deploymentState\":\"nope\"}\n{oops\n{\"id\":\"c\",\"policyStatusDetails\":[{\"id\":\"d1\"}]}\n";
        let (ids, bad) = read(text);
        assert_eq!(ids, ["a", "c"]);
        assert_eq!(bad.len(), 2);
        assert_eq!(bad[0].origin, Origin::Line(3));
        assert!(
            bad[0].reason.contains("deploymentState"),
            "{}",
            bad[0].reason
        );
        assert_eq!(bad[1].origin, Origin::Line(4));
    }

    #[test]
    fn pages_and_arrays_saved_by_scripts_are_read() {
        let page = "{\n  \"@odata.context\": \"x\",\n  \"value\": [\n    {\"id\": \"a\", \"@odata.etag\": \"W/\\\"1\\\"\"},\n    {\"id\": \"b\"}\n  ],\n  \"@odata.nextLink\": \"y\"\n}\n";
        assert_eq!(read(page).0, ["a", "b"]);
        assert_eq!(
            read("[{\"id\":\"a\"},{\"id\":\"b\"},{\"id\":\"c\"}]").0,
            ["a", "b", "c"]
        );
        let pages = "{\"value\":[{\"id\":\"a\"}]}\n{\"value\":[{\"id\":\"b\"},{\"id\":\"c\"}]}\n";
        assert_eq!(read(pages).0, ["a", "b", "c"]);
        let (ids, bad) = read("[{\"id\":\"a\"}, 3]");
        assert_eq!(ids, ["a"]);
        assert_eq!(bad[0].origin, Origin::Item(2));
    }

    #[test]
    fn durations_written_by_the_python_sdk_are_read() {
        let mut reader = RecordReader::new(
            "{\"id\":\"a\",\"deploymentDuration\":\"0:12:03.500000\",\"deploymentTotalDuration\":\"1 day, 0:00:00\"}\n"
                .as_bytes(),
        );
        let (good, bad) = reader.next_chunk(10).unwrap().unwrap();
        assert!(bad.is_empty(), "{bad:?}");
        let json = good[0].event.to_json(&crate::model::AUTOPILOT_EVENT);
        assert!(
            json.contains("\"deploymentDuration\":\"PT12M3.5S\""),
            "{json}"
        );
        assert!(
            json.contains("\"deploymentTotalDuration\":\"P1D\""),
            "{json}"
        );
    }

    #[test]
    fn an_event_without_an_id_is_refused() {
        let (ids, bad) = read("{\"deviceSerialNumber\":\"x\"}\n");
        assert!(ids.is_empty());
        assert!(bad[0].reason.contains("'id'"));
    }
}
