//! Imports: events from NDJSON (one event per line, as `export` writes), from Graph list responses
//! saved by scripts and PowerShell (`{"value": [...]}` pages, one per file or one per line), or
//! from a JSON array. Each event is decoded as strictly as a create body, keeps its id and its
//! details' ids, and is upserted by id (so an import can be repeated, or resumed after a fix).

use std::io::BufRead;

use serde_json::Value as Json;

use crate::io::seed::Deployment;
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

    /// The next chunk of at most `size` records: decoded deployments and bad records. `None` at
    /// the end of the input.
    pub fn next_chunk(
        &mut self,
        size: usize,
    ) -> std::io::Result<Option<(Vec<Deployment>, Vec<BadRecord>)>> {
        let mut good = Vec::with_capacity(size);
        let mut bad = Vec::new();
        let mut any = false;
        while good.len() + bad.len() < size {
            let Some((origin, record)) = self.next_record()? else {
                break;
            };
            any = true;
            match record {
                Ok(bytes) => match decode_import(&bytes) {
                    Ok(body) => good.push(Deployment {
                        event: body.entity,
                        details: body.details,
                    }),
                    Err(error) => bad.push(BadRecord {
                        origin,
                        reason: match error {
                            crate::model::BodyError::Malformed(reason)
                            | crate::model::BodyError::Invalid(reason) => reason,
                        },
                    }),
                },
                Err(reason) => bad.push(BadRecord { origin, reason }),
            }
        }
        Ok(any.then_some((good, bad)))
    }

    /// The next record as bytes of one JSON object, or why it is not one.
    #[allow(clippy::type_complexity)]
    fn next_record(&mut self) -> std::io::Result<Option<(Origin, Result<Vec<u8>, String>)>> {
        loop {
            if let Some(items) = &mut self.document {
                return Ok(items
                    .next()
                    .map(|(origin, item)| (origin, object_bytes(item))));
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
            // A saved Graph page on one line holds several events.
            if trimmed.starts_with(b"{")
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
    fn an_event_without_an_id_is_refused() {
        let (ids, bad) = read("{\"deviceSerialNumber\":\"x\"}\n");
        assert!(ids.is_empty());
        assert!(bad[0].reason.contains("'id'"));
    }
}

/// What to do with a record that cannot be imported.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum, serde::Deserialize)]
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

/// Imports `inputs` (each opened by `open`, twice for [`OnError::Stop`]: once to check, once to
/// load) into `tenant`. `progress` hears how many records were read so far. Fails, having written
/// nothing, when a record is bad under [`OnError::Stop`].
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
    let mut report = ImportReport::default();
    let note = |report: &mut ImportReport, input: &str, bad: Vec<BadRecord>| {
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
    };
    if on_error == OnError::Stop {
        for input in inputs {
            let mut reader = RecordReader::new(open(input)?);
            while let Some((_, bad)) = reader.next_chunk(IMPORT_CHUNK)? {
                note(&mut report, input, bad);
            }
        }
        if let Some(first) = report.errors.first() {
            anyhow::bail!(
                "{} bad record(s), nothing imported; the first: {} {}: {} (fix them, or use --on-error skip)",
                report.skipped,
                first.input,
                first.origin,
                first.reason
            );
        }
    }
    let deferred = store
        .begin_bulk_load(crate::store::LoadKind::Upsert)
        .await?;
    let mut pending: Option<tokio::task::JoinHandle<Result<(), crate::store::StoreError>>> = None;
    let mut read = 0;
    for input in inputs {
        let mut reader = RecordReader::new(open(input)?);
        while let Some((good, bad)) = reader.next_chunk(IMPORT_CHUNK)? {
            read += (good.len() + bad.len()) as u64;
            note(&mut report, input, bad);
            let chunk = last_of_each_id(good);
            report.imported += chunk.len() as u64;
            report.details += chunk.iter().map(|d| d.details.len() as u64).sum::<u64>();
            if let Some(task) = pending.take() {
                task.await??;
            }
            let (store, tenant) = (store.clone(), tenant.to_string());
            pending = Some(tokio::spawn(async move {
                store
                    .bulk_load(&tenant, chunk, crate::store::LoadKind::Upsert)
                    .await
            }));
            progress(read);
        }
    }
    if let Some(task) = pending.take() {
        task.await??;
    }
    if deferred {
        store.finish_bulk_load().await?;
        store.analyze().await?;
    }
    store.checkpoint().await?;
    Ok(report)
}

/// The last record of each id in a chunk (an input may repeat an event; the later one wins, as it
/// would across chunks), and of each detail id within an event.
fn last_of_each_id(chunk: Vec<Deployment>) -> Vec<Deployment> {
    let mut last = std::collections::HashMap::with_capacity(chunk.len());
    for (position, deployment) in chunk.iter().enumerate() {
        last.insert(deployment.event.id.clone(), position);
    }
    chunk
        .into_iter()
        .enumerate()
        .filter(|(position, deployment)| last[&deployment.event.id] == *position)
        .map(|(_, mut deployment)| {
            let mut seen = std::collections::HashSet::new();
            deployment.details.reverse();
            deployment
                .details
                .retain(|detail| seen.insert(detail.id.clone()));
            deployment.details.reverse();
            deployment
        })
        .collect()
}
