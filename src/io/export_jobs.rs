//! Running report export jobs: each job waits out `exportDelay`, takes one of two slots, writes
//! its report to a local file, stores the zip in the database and completes; restarts fail the
//! jobs a node left unfinished, and expired files are deleted.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use tokio::io::AsyncReadExt;

use super::report::{ReportSpec, read_pages, write_zip};
use crate::edm::DateTimeOffset;
use crate::model::export_job::{ExportJob, JobStatus};
use crate::store::{EXPORT_CHUNK_BYTES, Store, StoreError};

/// Jobs that run at once per node.
const SLOTS: usize = 2;
/// How often a node says it still runs its jobs, and deletes expired files.
const HOUSEKEEPING: Duration = Duration::from_secs(5);
/// A job whose node has been silent this long died with it.
const STALE_MS: i64 = 60_000;

/// How the jobs of a server run.
pub struct ExportSettings {
    /// How long a completed job's link works.
    pub ttl: Duration,
    /// How long a job stays `notStarted` at least.
    pub delay: Duration,
    /// `retentionDays`: older events are left out of the reports (0: none are).
    pub retention_days: u32,
}

/// Runs the export jobs of one node.
pub struct ExportRunner {
    store: Arc<Store>,
    /// This node, as named in the jobs it runs.
    owner: String,
    work_dir: PathBuf,
    slots: tokio::sync::Semaphore,
    pub settings: ExportSettings,
}

pub fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |elapsed| elapsed.as_millis() as i64)
}

impl ExportRunner {
    /// The runner of node `owner`, writing its files under `work_dir`; fails the jobs this node
    /// left unfinished (and those of nodes long silent) and starts the housekeeping.
    pub async fn start(
        store: Arc<Store>,
        owner: String,
        work_dir: PathBuf,
        settings: ExportSettings,
    ) -> anyhow::Result<Arc<ExportRunner>> {
        std::fs::create_dir_all(&work_dir)?;
        // Files a killed run left half-written.
        for entry in std::fs::read_dir(&work_dir)?.flatten() {
            let _ = std::fs::remove_file(entry.path());
        }
        let failed = store
            .fail_orphaned_export_jobs(&owner, now_ms() - STALE_MS)
            .await?;
        if failed > 0 {
            tracing::warn!(
                failed,
                "export jobs left unfinished by the last run are failed"
            );
        }
        let runner = Arc::new(ExportRunner {
            store,
            owner,
            work_dir,
            slots: tokio::sync::Semaphore::new(SLOTS),
            settings,
        });
        let weak = Arc::downgrade(&runner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(HOUSEKEEPING).await;
                let Some(runner) = weak.upgrade() else { return };
                runner.housekeeping().await;
            }
        });
        Ok(runner)
    }

    async fn housekeeping(&self) {
        let now = now_ms();
        let store = &self.store;
        let outcome: Result<(), StoreError> = async {
            store.heartbeat_export_jobs(&self.owner, now).await?;
            store.fail_orphaned_export_jobs("", now - STALE_MS).await?;
            store
                .forget_expired_export_files(DateTimeOffset::now())
                .await
        }
        .await;
        if let Err(error) = outcome {
            tracing::warn!(%error, "export jobs' housekeeping failed; it is tried again");
        }
    }

    /// A new job: stored as `notStarted`, then run in the background.
    pub async fn submit(self: &Arc<Self>, job: &ExportJob) -> Result<(), StoreError> {
        self.store
            .add_export_job(job, &self.owner, now_ms())
            .await?;
        let runner = self.clone();
        let job = job.clone();
        tokio::spawn(async move {
            let id = job.id.clone();
            if let Err(error) = runner.run(job).await {
                tracing::warn!(job = %id, error = %format!("{error:#}"), "an export job failed");
                // From wherever it got to (the database may have failed it before it started).
                for from in [JobStatus::NotStarted, JobStatus::InProgress] {
                    let _ = runner
                        .store
                        .set_export_status(&id, from, JobStatus::Failed, None, None, now_ms())
                        .await;
                }
            }
        });
        Ok(())
    }

    /// A job's not-before time, from now.
    pub fn not_before_ms(&self) -> i64 {
        now_ms() + self.settings.delay.as_millis() as i64
    }

    async fn run(&self, job: ExportJob) -> anyhow::Result<()> {
        let wait = job.not_before_ms - now_ms();
        if wait > 0 {
            tokio::time::sleep(Duration::from_millis(wait as u64)).await;
        }
        let _slot = self.slots.acquire().await?;
        let store = &self.store;
        if !store
            .set_export_status(
                &job.id,
                JobStatus::NotStarted,
                JobStatus::InProgress,
                None,
                None,
                now_ms(),
            )
            .await?
        {
            return Ok(()); // deleted (or failed) before it started
        }
        let started = std::time::Instant::now();
        let path = self.work_dir.join(format!("{}.zip.partial", job.id));
        let result = self.write(&job, &path).await;
        let outcome = match result {
            Ok(rows) => self.upload(&job, &path).await.map(|bytes| (rows, bytes)),
            Err(error) => Err(error),
        };
        let _ = std::fs::remove_file(&path);
        let (rows, bytes) = outcome?;
        let expiration = DateTimeOffset::from_ticks(
            DateTimeOffset::now().ticks()
                + (self.settings.ttl.as_nanos() / 100).min(i64::MAX as u128 / 2) as i64,
        )
        .unwrap_or(DateTimeOffset::from_ticks(crate::edm::MAX_TICKS).expect("max is valid"));
        let completed = store
            .set_export_status(
                &job.id,
                JobStatus::InProgress,
                JobStatus::Completed,
                Some(expiration),
                Some(bytes),
                now_ms(),
            )
            .await?;
        if !completed {
            // Deleted while it ran: its chunks went in after the delete.
            store.delete_export_job(&job.tenant, &job.id).await?;
            return Ok(());
        }
        tracing::info!(
            job = %job.id,
            rows,
            bytes,
            seconds = started.elapsed().as_secs_f64(),
            "an export job completed"
        );
        Ok(())
    }

    /// Writes the report to `path` on a blocking thread, fed from one snapshot of the store.
    async fn write(&self, job: &ExportJob, path: &std::path::Path) -> anyhow::Result<u64> {
        let spec = ReportSpec::of(job);
        let (pages, mut receive) = tokio::sync::mpsc::channel(2);
        let path = path.to_path_buf();
        let writer = tokio::task::spawn_blocking(move || {
            write_zip(&path, &spec, &mut || receive.blocking_recv())
        });
        let not_before =
            crate::profile::retention_cutoff(self.settings.retention_days, DateTimeOffset::now());
        let read = read_pages(&self.store, &job.tenant, not_before, pages).await;
        let written = writer.await??;
        read?;
        Ok(written)
    }

    /// Stores the file in chunks; its size.
    async fn upload(&self, job: &ExportJob, path: &std::path::Path) -> anyhow::Result<i64> {
        let mut file = tokio::fs::File::open(path).await?;
        let mut total = 0i64;
        let mut n = 0i64;
        loop {
            let mut chunk = Vec::with_capacity(EXPORT_CHUNK_BYTES);
            while chunk.len() < EXPORT_CHUNK_BYTES {
                let read = (&mut file)
                    .take((EXPORT_CHUNK_BYTES - chunk.len()) as u64)
                    .read_to_end(&mut chunk)
                    .await?;
                if read == 0 {
                    break;
                }
            }
            if chunk.is_empty() {
                break;
            }
            total += chunk.len() as i64;
            self.store.put_export_chunk(&job.id, n, chunk).await?;
            n += 1;
        }
        Ok(total)
    }
}
