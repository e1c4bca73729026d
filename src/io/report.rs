//! Report files (reports-and-sync.md A2, A3): a job's events, read in one snapshot, written as CSV
//! (BOM, CRLF, RFC 4180) or JSON into a zip of one entry, streamed page by page in flat memory.

use std::cell::RefCell;
use std::io::Write;
use std::path::Path;

use zip::write::SimpleFileOptions;

use crate::model::Entity;
use crate::model::export_job::ExportJob;
use crate::model::report::{Cell, Format, OutputColumn, output_columns, select_columns};
use crate::store::{Store, StoreError};

/// What a report file needs besides the store.
pub struct ReportSpec {
    pub columns: Vec<OutputColumn>,
    pub format: Format,
    pub entry_name: String,
}

impl ReportSpec {
    pub fn of(job: &ExportJob) -> Self {
        ReportSpec {
            columns: output_columns(&select_columns(&job.select), job.localization),
            format: job.format,
            entry_name: job.entry_name(),
        }
    }
}

/// Writes the rows of `pages` into a zip at `path`; returns the rows written. Blocking: run it on
/// a blocking thread, fed by [`read_pages`].
pub fn write_zip(
    path: &Path,
    spec: &ReportSpec,
    pages: &mut dyn FnMut() -> Option<Vec<Entity>>,
) -> anyhow::Result<u64> {
    let file = std::fs::File::create(path)?;
    let mut zip = zip::ZipWriter::new(std::io::BufWriter::with_capacity(1 << 16, file));
    let options = SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated)
        .large_file(true);
    zip.start_file(spec.entry_name.as_str(), options)?;
    let rows = match spec.format {
        Format::Csv => write_csv(&mut zip, &spec.columns, pages)?,
        Format::Json => write_json(&mut zip, &spec.columns, pages)?,
    };
    let mut inner = zip.finish()?;
    inner.flush()?;
    inner.get_mut().sync_all()?;
    Ok(rows)
}

/// UTF-8 with BOM, a header, CRLF after every record; fields quoted only when they hold `"`,
/// `,`, CR or LF.
pub fn write_csv<W: Write>(
    out: &mut W,
    columns: &[OutputColumn],
    pages: &mut dyn FnMut() -> Option<Vec<Entity>>,
) -> anyhow::Result<u64> {
    out.write_all(b"\xEF\xBB\xBF")?;
    let out = RefCell::new(out);
    let mut writer = csv::WriterBuilder::new()
        .terminator(csv::Terminator::CRLF)
        .quote_style(csv::QuoteStyle::Necessary)
        .from_writer(Shared(&out));
    let writer = &mut writer;
    let out = &out;
    write_csv_record(
        writer,
        out,
        columns.iter().map(|column| column.name.as_str()),
    )?;
    let mut rows = 0;
    // One reused buffer per column: no allocation per row.
    let mut fields: Vec<String> = vec![String::new(); columns.len()];
    while let Some(page) = pages() {
        for event in &page {
            for (field, column) in fields.iter_mut().zip(columns) {
                field.clear();
                match column.cell(event) {
                    Cell::Empty => {}
                    Cell::Text(text) => field.push_str(&text),
                    Cell::Integer(value) => {
                        use std::fmt::Write as _;
                        let _ = write!(field, "{value}");
                    }
                }
            }
            write_csv_record(writer, out, fields.iter().map(String::as_str))?;
            rows += 1;
        }
    }
    writer.flush()?;
    Ok(rows)
}

/// The file under the csv writer, shared so that a record the csv crate would not write as the
/// contract says can be written past it.
struct Shared<'a, W>(&'a RefCell<W>);

impl<W: Write> Write for Shared<'_, W> {
    fn write(&mut self, bytes: &[u8]) -> std::io::Result<usize> {
        self.0.borrow_mut().write(bytes)
    }

    fn flush(&mut self) -> std::io::Result<()> {
        self.0.borrow_mut().flush()
    }
}

/// One record. A record of one empty field is written as an empty line: the csv crate would
/// write `""` (so that a reader sees a field), and the contract quotes only what needs it.
fn write_csv_record<'a, W: Write>(
    writer: &mut csv::Writer<Shared<'_, W>>,
    out: &RefCell<W>,
    fields: impl Iterator<Item = &'a str> + Clone,
) -> anyhow::Result<()> {
    let mut probe = fields.clone();
    if let (Some(""), None) = (probe.next(), probe.next()) {
        writer.flush()?;
        out.borrow_mut().write_all(b"\r\n")?;
        return Ok(());
    }
    writer.write_record(fields)?;
    Ok(())
}

/// UTF-8 without BOM: an array of objects with the columns as keys in order; enum values as
/// integers, empty cells as null, everything else as strings.
pub fn write_json<W: Write>(
    out: &mut W,
    columns: &[OutputColumn],
    pages: &mut dyn FnMut() -> Option<Vec<Entity>>,
) -> anyhow::Result<u64> {
    let keys: Vec<String> = columns
        .iter()
        .map(|column| serde_json::to_string(&column.name).expect("strings serialise"))
        .collect();
    let mut out = std::io::BufWriter::with_capacity(1 << 16, out);
    out.write_all(b"[")?;
    let mut rows = 0u64;
    let mut line = String::with_capacity(4096);
    while let Some(page) = pages() {
        for event in &page {
            line.clear();
            if rows > 0 {
                line.push(',');
            }
            line.push('{');
            for (index, (column, key)) in columns.iter().zip(&keys).enumerate() {
                if index > 0 {
                    line.push(',');
                }
                line.push_str(key);
                line.push(':');
                match column.cell(event) {
                    Cell::Empty => line.push_str("null"),
                    Cell::Integer(value) => line.push_str(&value.to_string()),
                    Cell::Text(text) => line.push_str(
                        &serde_json::to_string(text.as_ref()).expect("strings serialise"),
                    ),
                }
            }
            line.push('}');
            out.write_all(line.as_bytes())?;
            rows += 1;
        }
    }
    out.write_all(b"]")?;
    out.flush()?;
    Ok(rows)
}

/// Reads a tenant's events in one snapshot (only `not_before` and later when retention is on)
/// and sends each page to the file's writer until it stops taking them; the snapshot ends
/// either way.
pub async fn read_pages(
    store: &Store,
    tenant: &str,
    not_before: Option<i64>,
    pages: tokio::sync::mpsc::Sender<Vec<Entity>>,
) -> Result<(), StoreError> {
    let mut snapshot = store.report_snapshot(tenant, not_before).await?;
    let result = async {
        loop {
            let page = snapshot.next_page().await?;
            if page.is_empty() || pages.send(page).await.is_err() {
                return Ok(());
            }
        }
    }
    .await;
    snapshot.close().await;
    result
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::model::AUTOPILOT_EVENT;
    use crate::model::Value;
    use crate::model::report::Localization;

    fn event(serial: Option<&str>) -> Entity {
        let mut event = Entity::with_id(&AUTOPILOT_EVENT, "e".into());
        let (position, _) = AUTOPILOT_EVENT.property("deviceSerialNumber").unwrap();
        event.values[position] = serial.map_or(Value::Null, |text| Value::String(text.into()));
        event
    }

    fn csv_of(columns: &[&str], events: Vec<Entity>) -> String {
        let names: Vec<String> = columns.iter().map(|name| name.to_string()).collect();
        let columns = output_columns(&select_columns(&names), Localization::AdditionalColumn);
        let mut out = std::io::Cursor::new(Vec::new());
        let mut pages = Some(events);
        write_csv(&mut out, &columns, &mut || pages.take()).unwrap();
        String::from_utf8(out.into_inner()).unwrap()
    }

    #[test]
    fn csv_quotes_only_what_needs_it_and_ends_every_record_with_crlf() {
        let text = csv_of(
            &["DeviceSerialNumber", "OS"],
            vec![
                event(Some("a,b")),
                event(Some("say \"hi\"")),
                event(Some("line\nbreak")),
                event(Some(" padded ")),
                event(None),
            ],
        );
        assert_eq!(
            text,
            "\u{feff}DeviceSerialNumber,OS\r\n\"a,b\",Windows\r\n\"say \"\"hi\"\"\",Windows\r\n\"line\nbreak\",Windows\r\n padded ,Windows\r\n,Windows\r\n"
        );
        assert_eq!(
            csv_of(&["DeviceSerialNumber"], vec![event(None)]),
            "\u{feff}DeviceSerialNumber\r\n\r\n"
        );
        assert_eq!(csv_of(&["OS"], vec![]), "\u{feff}OS\r\n");
    }

    #[test]
    fn json_writes_enum_values_as_numbers_and_empty_as_null() {
        let names = vec![
            "DeploymentState".to_string(),
            "DeviceSerialNumber".to_string(),
        ];
        let columns = output_columns(&select_columns(&names), Localization::AdditionalColumn);
        let mut out = Vec::new();
        let mut pages = Some(vec![event(None)]);
        write_json(&mut out, &columns, &mut || pages.take()).unwrap();
        assert_eq!(
            String::from_utf8(out).unwrap(),
            r#"[{"DeploymentState":0,"DeploymentState_loc":"Unknown","DeviceSerialNumber":null}]"#
        );
    }
}
