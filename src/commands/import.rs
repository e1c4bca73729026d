//! `graphpilot import`: NDJSON, saved Graph pages or arrays of events into a tenant, straight on
//! the database (beside a running server), with a progress bar by bytes read.

use std::sync::Arc;

use anyhow::Context;

use super::{bar, open_store};
use crate::cli::ImportArgs;
use crate::io::import::import as import_records;
use crate::store::Durability;

/// `graphpilot import`.
pub async fn run(args: ImportArgs) -> anyhow::Result<()> {
    let store = open_store(&args.storage, Durability::Normal).await?;
    let total: u64 = args
        .files
        .iter()
        .map(|file| std::fs::metadata(file).map(|m| m.len()))
        .sum::<std::io::Result<u64>>()
        .context("cannot read an input file")?;
    let progress = bar(
        total,
        "{spinner} importing [{bar:40}] {binary_bytes}/{binary_total_bytes} ({binary_bytes_per_sec}, eta {eta}) {msg}",
    );
    let inputs: Vec<String> = args.files.iter().map(|f| f.display().to_string()).collect();
    // Progress by bytes: records are counted as read, bytes are what the bar knows the total of.
    let read_bytes = Arc::new(std::sync::atomic::AtomicU64::new(0));
    let open = {
        let read_bytes = read_bytes.clone();
        move |input: &str| {
            let file = std::fs::File::open(input)?;
            Ok(std::io::BufReader::with_capacity(
                1 << 20,
                CountingReader {
                    inner: file,
                    count: read_bytes.clone(),
                },
            ))
        }
    };
    let clock = std::time::Instant::now();
    let report = import_records(
        &store,
        &args.tenant,
        &inputs,
        open,
        args.on_error.into(),
        |records| {
            progress.set_position(
                read_bytes
                    .load(std::sync::atomic::Ordering::Relaxed)
                    .min(total),
            );
            progress.set_message(format!("{records} records"));
        },
    )
    .await;
    progress.finish_and_clear();
    store.close().await;
    let report = report?;
    for bad in &report.errors {
        eprintln!("skipped {} {}: {}", bad.input, bad.origin, bad.reason);
    }
    if report.skipped as usize > report.errors.len() {
        eprintln!(
            "… and {} more",
            report.skipped as usize - report.errors.len()
        );
    }
    println!(
        "imported {} events and {} policy status details into tenant '{}' in {:.1} s ({} skipped; \
         check {:.1} s, load {:.1} s, indexes and checkpoint {:.1} s)",
        report.imported,
        report.details,
        args.tenant,
        clock.elapsed().as_secs_f64(),
        report.skipped,
        report.check_seconds,
        report.load_seconds,
        report.index_seconds,
    );
    Ok(())
}

/// Counts the bytes read through it (for the progress bar).
struct CountingReader<R> {
    inner: R,
    count: Arc<std::sync::atomic::AtomicU64>,
}

impl<R: std::io::Read> std::io::Read for CountingReader<R> {
    fn read(&mut self, buffer: &mut [u8]) -> std::io::Result<usize> {
        let read = self.inner.read(buffer)?;
        self.count
            .fetch_add(read as u64, std::sync::atomic::Ordering::Relaxed);
        Ok(read)
    }
}
