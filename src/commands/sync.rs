//! `graphpilot sync`: one run, or a run every `--every` until SIGTERM/SIGINT, into the local
//! tenant under its lock; `--status` prints the run records.

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};

use anyhow::Context;

use super::{bar, open_store};
use crate::cli::SyncArgs;
use crate::io::sync::{Locked, Outcome, Source, SyncSettings, run_once};
use crate::model::sync_run::SyncRun;
use crate::store::Durability;

pub async fn run(args: SyncArgs) -> anyhow::Result<()> {
    if !args.status {
        super::serve::init_direct_logging(crate::cli::LogFormat::Pretty);
    }
    let store = open_store(&args.storage, Durability::Full).await?;
    if args.status {
        let runs = store.sync_runs(args.tenant.as_deref()).await?;
        if args.json {
            let value: Vec<_> = runs.iter().map(SyncRun::to_json).collect();
            println!("{}", serde_json::json!({ "value": value }));
        } else if runs.is_empty() {
            println!("no sync runs yet");
        } else {
            for run in &runs {
                println!("{}", status_line(run));
            }
        }
        store.close().await;
        return Ok(());
    }
    let required = |value: &Option<String>, flag: &str| {
        value.clone().with_context(|| format!("{flag} is required"))
    };
    let source_tenant = required(&args.tenant, "--tenant")?;
    let ca_cert = match &args.ca_cert {
        Some(path) => Some(
            std::fs::read(path)
                .with_context(|| format!("cannot read --ca-cert {}", path.display()))?,
        ),
        None => None,
    };
    let settings = Arc::new(SyncSettings {
        source: required(&args.source, "--source")?,
        authority: required(&args.authority, "--authority")?,
        local_tenant: args
            .local_tenant
            .clone()
            .unwrap_or_else(|| source_tenant.clone()),
        source_tenant,
        client_id: required(&args.client_id, "--client-id")?,
        client_secret: required(&args.client_secret, "--client-secret")?,
        scope: args.scope.clone(),
        ca_cert,
        full: args.full,
        overlap: args.overlap,
        full_every: args.full_every,
    });
    let Some(lock) = store
        .try_sync_lock(&settings.local_tenant, &args.storage.data_dir)
        .await?
    else {
        return Err(Locked(settings.local_tenant.clone()).into());
    };
    let stop = Arc::new(AtomicBool::new(false));
    tokio::spawn(stop_on_signal(stop.clone()));
    let source = Source::new(settings.clone())?;
    let result = loop {
        let started = tokio::time::Instant::now();
        let progress = bar(0, "{spinner} syncing: {msg}");
        let report = |run: &SyncRun, request_id: &str| {
            tracing::info!(
                run = %run.id,
                page = run.pages,
                fetched = run.fetched,
                upserted = run.upserted,
                unchanged = run.unchanged,
                source_request_id = request_id,
                "page stored"
            );
            progress.set_message(format!(
                "{} pages, {} events ({} new or changed, {} unchanged)",
                run.pages, run.fetched, run.upserted, run.unchanged
            ));
            progress.tick();
        };
        let outcome = run_once(&store, &source, &settings, &stop, &report).await;
        progress.finish_and_clear();
        let failed = match &outcome {
            Ok((Outcome::Completed, run)) | Ok((Outcome::Interrupted, run)) => {
                eprintln!("{}", status_line(run));
                None
            }
            Err(error) => {
                eprintln!("graphpilot: the sync run failed: {error:#}");
                Some(outcome.unwrap_err())
            }
        };
        let Some(every) = args.every else {
            break failed.map_or(Ok(()), Err);
        };
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
        // The next run starts one interval after this one started; a stop ends the wait.
        let next = started + every;
        while tokio::time::Instant::now() < next && !stop.load(Ordering::SeqCst) {
            tokio::time::sleep_until(
                next.min(tokio::time::Instant::now() + std::time::Duration::from_millis(200)),
            )
            .await;
        }
        if stop.load(Ordering::SeqCst) {
            break Ok(());
        }
    };
    // Released before the store closes: on PostgreSQL it holds one of the pool's connections.
    drop(lock);
    store.close().await;
    result
}

/// A run record on one line, for people.
fn status_line(run: &SyncRun) -> String {
    let instant = |value: Option<crate::edm::DateTimeOffset>| {
        value.map_or_else(|| "-".to_string(), |at| at.to_string())
    };
    format!(
        "{} {:<11} {:<11} tenant {} from {} ({}) started {} ended {} from {} watermark {}: {} pages, {} fetched, {} upserted, {} unchanged, {} failed attempts",
        run.id,
        run.status.as_str(),
        run.mode.as_str(),
        run.tenant,
        run.source,
        run.source_tenant,
        run.start,
        instant(run.end),
        instant(run.filter_from),
        instant(run.watermark),
        run.pages,
        run.fetched,
        run.upserted,
        run.unchanged,
        run.errors.len()
    )
}

/// Sets `stop` on SIGTERM or SIGINT: the run ends at the next page boundary.
async fn stop_on_signal(stop: Arc<AtomicBool>) {
    super::stop_signal().await;
    stop.store(true, Ordering::SeqCst);
}
