//! `graphpilot export`: a tenant's events as NDJSON, a Graph-shaped JSON page or CSV, to a file or
//! standard output, with a progress bar.

use std::io::Write;

use anyhow::Context;

use super::{bar, open_store};
use crate::cli::{ExportArgs, ExportFormat};
use crate::io::export::{ExportWalker, csv_header};
use crate::store::{Collection, Durability};

/// `graphpilot export`.
pub async fn run(args: ExportArgs) -> anyhow::Result<()> {
    let store = open_store(&args.storage, Durability::Normal).await?;
    let count = store.count(&args.tenant, &Collection::Events, None).await?;
    let mut out: Box<dyn Write> = match &args.output {
        Some(path) => Box::new(std::io::BufWriter::new(
            std::fs::File::create(path)
                .with_context(|| format!("cannot create {}", path.display()))?,
        )),
        None => Box::new(std::io::BufWriter::new(std::io::stdout().lock())),
    };
    let progress = bar(
        count as u64,
        "{spinner} exporting [{bar:40}] {human_pos}/{human_len} events ({per_sec}, eta {eta})",
    );
    match args.format {
        ExportFormat::Json => out.write_all(b"{\"value\":[\n")?,
        ExportFormat::Csv => writeln!(out, "{}", csv_header())?,
        ExportFormat::Ndjson => {}
    }
    let mut walker = ExportWalker::new(&args.tenant);
    let mut written = 0u64;
    while let Some(page) = walker.next_page(&store).await? {
        for event in &page {
            match args.format {
                ExportFormat::Ndjson => writeln!(out, "{}", event.json())?,
                ExportFormat::Json => {
                    if written > 0 {
                        out.write_all(b",\n")?;
                    }
                    out.write_all(event.json().as_bytes())?;
                }
                ExportFormat::Csv => writeln!(out, "{}", event.csv_row())?,
            }
            written += 1;
        }
        progress.set_position(written);
    }
    if args.format == ExportFormat::Json {
        out.write_all(b"\n]}\n")?;
    }
    out.flush()?;
    progress.finish_and_clear();
    store.close().await;
    if let Some(path) = &args.output {
        eprintln!(
            "exported {written} events of tenant '{}' to {}",
            args.tenant,
            path.display()
        );
    }
    Ok(())
}
