//! The tenant-data commands: `import`, `export`, `reset` (straight on the database, beside a
//! running server) and `requests` (a client of the running server's admin API).

use std::io::Write;
use std::path::Path;
use std::sync::Arc;

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::auth::{ADMIN_ROLE, SigningKey, TokenRequest, mint};
use crate::cli::{ExportArgs, ExportFormat, ImportArgs, RequestsArgs, ResetArgs, StorageArgs};
use crate::io::export::{ExportWalker, csv_header};
use crate::io::import::import as import_records;
use crate::store::{Collection, Durability, Store};

async fn open_store(storage: &StorageArgs, durability: Durability) -> anyhow::Result<Arc<Store>> {
    let url = Store::url_for(&storage.data_dir, storage.database.as_deref())?;
    Store::open(&url, durability).await
}

fn bar(length: u64, template: &str) -> ProgressBar {
    ProgressBar::new(length).with_style(
        ProgressStyle::with_template(template)
            .expect("valid template")
            .progress_chars("=> "),
    )
}

/// `graphpilot import`.
pub async fn import(args: ImportArgs) -> anyhow::Result<()> {
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
        args.on_error,
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

/// `graphpilot export`.
pub async fn export(args: ExportArgs) -> anyhow::Result<()> {
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

/// `graphpilot reset`.
pub async fn reset(args: ResetArgs) -> anyhow::Result<()> {
    let store = open_store(&args.storage, Durability::Full).await?;
    let tenant = if args.all {
        None
    } else {
        args.tenant.as_deref()
    };
    let (events, details) = store.reset(tenant).await?;
    store.close().await;
    match tenant {
        Some(tenant) => println!(
            "deleted {events} events and {details} policy status details of tenant '{tenant}'"
        ),
        None => {
            println!("deleted {events} events and {details} policy status details of every tenant")
        }
    }
    Ok(())
}

/// `graphpilot requests [--tail]`.
pub async fn requests(args: RequestsArgs) -> anyhow::Result<()> {
    let key = SigningKey::load_or_create(&args.data_dir)?;
    let token = mint(
        &key,
        &TokenRequest {
            tenant: "graphpilot",
            app: "graphpilot-cli",
            roles: vec![ADMIN_ROLE.to_string()],
            scopes: Vec::new(),
            user: None,
            expires_in: 3600,
        },
    )?;
    let client = http_client(&args.data_dir)?;
    let base = args.url.trim_end_matches('/').trim_end_matches("/beta");
    let mut after: Option<u64> = None;
    let mut first = true;
    loop {
        let mut query: Vec<(&str, String)> = vec![("top", args.top.to_string())];
        if let Some(after) = after {
            query = vec![("after", after.to_string()), ("top", "10000".into())];
        }
        for (name, value) in [
            ("tenant", &args.tenant),
            ("app", &args.app),
            ("path", &args.path),
        ] {
            if let Some(value) = value {
                query.push((name, value.clone()));
            }
        }
        if let Some(status) = args.status {
            query.push(("status", status.to_string()));
        }
        let response = client
            .get(format!("{base}/graphpilot/requests"))
            .bearer_auth(&token)
            .query(&query)
            .send()
            .await
            .with_context(|| format!("cannot reach graphpilot at {base} (is it running? --url)"))?;
        let status = response.status();
        let body: serde_json::Value = response.json().await.context("unexpected answer")?;
        anyhow::ensure!(
            status.is_success(),
            "the server refused: {status} {}",
            body["error"]["message"]
        );
        let entries = body["value"].as_array().cloned().unwrap_or_default();
        if first && entries.is_empty() && !args.tail {
            println!("no requests recorded yet");
        }
        for entry in &entries {
            println!("{}", journal_line(entry));
            after = entry["sequence"].as_u64().or(after);
        }
        first = false;
        if !args.tail {
            return Ok(());
        }
        if after.is_none() {
            after = Some(0);
        }
        tokio::time::sleep(std::time::Duration::from_millis(500)).await;
    }
}

fn journal_line(entry: &serde_json::Value) -> String {
    let text = |name: &str| entry[name].as_str().unwrap_or("-").to_string();
    let flag = if entry["faulted"] == true {
        " FAULT"
    } else if entry["throttled"] == true {
        " THROTTLED"
    } else {
        ""
    };
    let query = entry["query"]
        .as_str()
        .map(|q| format!("?{q}"))
        .unwrap_or_default();
    format!(
        "{} {} {} {}{} {:.1}ms tenant={} app={} request-id={}{flag}",
        text("time"),
        entry["status"],
        text("method"),
        text("path"),
        query,
        entry["latencyMs"].as_f64().unwrap_or_default(),
        text("tenant"),
        text("app"),
        text("requestId"),
    )
}

/// An HTTP client that also trusts the data directory's local CA (servers run with --tls).
fn http_client(data_dir: &Path) -> anyhow::Result<reqwest::Client> {
    let mut builder = reqwest::Client::builder();
    let ca = crate::tls::tls_dir(data_dir).join("ca.pem");
    if ca.exists() {
        let pem = std::fs::read(&ca)?;
        builder = builder.add_root_certificate(reqwest::Certificate::from_pem(&pem)?);
    }
    Ok(builder.build()?)
}
