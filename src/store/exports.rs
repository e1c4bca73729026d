//! Report export jobs as stored: the job rows every node shares, their zip files in chunks, and
//! the one-snapshot read of a tenant's events that a job's report is written from.

use sqlx::Row;

use super::rows::{entity_from_row, read_scalar};
use super::sql::{self, Collection, Listing};
use super::transaction::Tx;
use super::{Store, StoreError};
use crate::edm::DateTimeOffset;
use crate::model::export_job::{ExportJob, JobStatus};
use crate::model::report::{Format, Localization};
use crate::model::{AUTOPILOT_EVENT, Entity};
use crate::odata::{Column, ID, Predicate, Scalar, SortDirection, events_since};

/// The bytes of one stored chunk of a zip file.
pub const EXPORT_CHUNK_BYTES: usize = 1 << 20;
/// Events read per statement of a report's snapshot.
const REPORT_PAGE: u64 = 1000;

const JOB_COLUMNS: &str = "id, tenant_id, report_name, filter, search, snapshot_id, select_json, \
     format, localization_type, status, request_ticks, expiration_ticks, not_before_ms, \
     url_shown, file_bytes";

fn job_from_row(row: &sqlx::any::AnyRow) -> Result<ExportJob, StoreError> {
    let corrupt =
        |what: &str| StoreError::Internal(anyhow::anyhow!("a stored export job has {what}"));
    let select: String = row.try_get(6)?;
    let format: String = row.try_get(7)?;
    let localization: String = row.try_get(8)?;
    let status: String = row.try_get(9)?;
    let ticks = |value: i64| DateTimeOffset::from_ticks(value).ok_or_else(|| corrupt("bad ticks"));
    Ok(ExportJob {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        report_name: row.try_get(2)?,
        filter: row.try_get(3)?,
        search: row.try_get(4)?,
        snapshot_id: row.try_get(5)?,
        select: serde_json::from_str(&select).map_err(|_| corrupt("a bad select"))?,
        format: Format::parse(&format).ok_or_else(|| corrupt("a bad format"))?,
        localization: Localization::parse(&localization)
            .ok_or_else(|| corrupt("a bad localizationType"))?,
        status: JobStatus::parse(&status).ok_or_else(|| corrupt("a bad status"))?,
        requested: ticks(row.try_get(10)?)?,
        expiration: row.try_get::<Option<i64>, _>(11)?.map(ticks).transpose()?,
        not_before_ms: row.try_get(12)?,
        url_shown: row.try_get::<i64, _>(13)? != 0,
        file_bytes: row.try_get(14)?,
    })
}

impl Store {
    /// Stores a new job, run by node `owner`.
    pub async fn add_export_job(
        &self,
        job: &ExportJob,
        owner: &str,
        now_ms: i64,
    ) -> Result<(), StoreError> {
        let select = serde_json::to_string(&job.select).expect("strings serialise");
        self.bounded(async {
            sqlx::query(
                "INSERT INTO graphpilot_export_jobs (id, tenant_id, report_name, filter, search, \
                 snapshot_id, select_json, format, localization_type, status, request_ticks, \
                 not_before_ms, owner, heartbeat_ms) \
                 VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)",
            )
            .bind(&job.id)
            .bind(&job.tenant)
            .bind(&job.report_name)
            .bind(&job.filter)
            .bind(&job.search)
            .bind(&job.snapshot_id)
            .bind(select)
            .bind(job.format.as_str())
            .bind(job.localization.as_str())
            .bind(job.status.as_str())
            .bind(job.requested.ticks())
            .bind(job.not_before_ms)
            .bind(owner)
            .bind(now_ms)
            .execute(&self.readers)
            .await?;
            Ok(())
        })
        .await
    }

    /// A page of a tenant's jobs in creation order, after the job with sequence `after`; each
    /// with its sequence number (the cursor).
    pub async fn export_jobs(
        &self,
        tenant: &str,
        after: Option<i64>,
        limit: u64,
    ) -> Result<Vec<(i64, ExportJob)>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS}, seq FROM graphpilot_export_jobs \
                 WHERE tenant_id = $1 AND seq > $2 ORDER BY seq LIMIT $3"
            )))
            .bind(tenant)
            .bind(after.unwrap_or(0))
            .bind(i64::try_from(limit).unwrap_or(i64::MAX))
            .fetch_all(&self.readers)
            .await?;
            rows.iter()
                .map(|row| Ok((row.try_get(15)?, job_from_row(row)?)))
                .collect()
        })
        .await
    }

    /// A job by id (of any tenant: the caller checks whose it is).
    pub async fn export_job(&self, id: &str) -> Result<Option<ExportJob>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {JOB_COLUMNS} FROM graphpilot_export_jobs WHERE id = $1"
            )))
            .bind(id)
            .fetch_optional(&self.readers)
            .await?;
            row.as_ref().map(job_from_row).transpose()
        })
        .await
    }

    /// Notes that a read has shown the job completed; whether this read was the first.
    pub async fn mark_export_url_shown(&self, id: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "UPDATE graphpilot_export_jobs SET url_shown = 1 WHERE id = $1 AND url_shown = 0",
            )
            .bind(id)
            .execute(&self.readers)
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    /// Moves a job from `from` to `to` (with its expiry and file size when completing); false
    /// when it is no longer in `from` (deleted, or failed at a restart).
    pub async fn set_export_status(
        &self,
        id: &str,
        from: JobStatus,
        to: JobStatus,
        expiration: Option<DateTimeOffset>,
        file_bytes: Option<i64>,
        now_ms: i64,
    ) -> Result<bool, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "UPDATE graphpilot_export_jobs SET status = $1, expiration_ticks = $2, \
                 file_bytes = $3, heartbeat_ms = $4 WHERE id = $5 AND status = $6",
            )
            .bind(to.as_str())
            .bind(expiration.map(DateTimeOffset::ticks))
            .bind(file_bytes)
            .bind(now_ms)
            .bind(id)
            .bind(from.as_str())
            .execute(&self.readers)
            .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    /// Deletes a tenant's job and its file; whether there was one.
    pub async fn delete_export_job(&self, tenant: &str, id: &str) -> Result<bool, StoreError> {
        self.bounded(async {
            let done =
                sqlx::query("DELETE FROM graphpilot_export_jobs WHERE tenant_id = $1 AND id = $2")
                    .bind(tenant)
                    .bind(id)
                    .execute(&self.readers)
                    .await?;
            sqlx::query("DELETE FROM graphpilot_export_chunks WHERE job_id = $1")
                .bind(id)
                .execute(&self.readers)
                .await?;
            Ok(done.rows_affected() > 0)
        })
        .await
    }

    /// Fails the unfinished jobs of node `owner` (at its start: they died with its last run) and
    /// those whose node has not been heard of since `stale_before_ms`; returns how many.
    pub async fn fail_orphaned_export_jobs(
        &self,
        owner: &str,
        stale_before_ms: i64,
    ) -> Result<u64, StoreError> {
        self.bounded(async {
            let done = sqlx::query(
                "UPDATE graphpilot_export_jobs SET status = 'failed' \
                 WHERE status IN ('notStarted', 'inProgress') AND (owner = $1 OR heartbeat_ms < $2)",
            )
            .bind(owner)
            .bind(stale_before_ms)
            .execute(&self.readers)
            .await?;
            sqlx::query(
                "DELETE FROM graphpilot_export_chunks WHERE job_id IN \
                 (SELECT id FROM graphpilot_export_jobs WHERE status = 'failed')",
            )
            .execute(&self.readers)
            .await?;
            Ok(done.rows_affected())
        })
        .await
    }

    /// Says node `owner` still runs its unfinished jobs.
    pub async fn heartbeat_export_jobs(&self, owner: &str, now_ms: i64) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "UPDATE graphpilot_export_jobs SET heartbeat_ms = $1 \
                 WHERE owner = $2 AND status IN ('notStarted', 'inProgress')",
            )
            .bind(now_ms)
            .bind(owner)
            .execute(&self.readers)
            .await?;
            Ok(())
        })
        .await
    }

    /// Deletes the files of jobs that expired before `now` (the jobs stay until DELETE).
    pub async fn forget_expired_export_files(&self, now: DateTimeOffset) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query(
                "DELETE FROM graphpilot_export_chunks WHERE job_id IN \
                 (SELECT id FROM graphpilot_export_jobs WHERE expiration_ticks < $1)",
            )
            .bind(now.ticks())
            .execute(&self.readers)
            .await?;
            Ok(())
        })
        .await
    }

    /// Stores chunk `n` of a job's file (replacing one of an earlier, failed attempt).
    pub async fn put_export_chunk(
        &self,
        id: &str,
        n: i64,
        bytes: Vec<u8>,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("DELETE FROM graphpilot_export_chunks WHERE job_id = $1 AND n = $2")
                .bind(id)
                .bind(n)
                .execute(&self.readers)
                .await?;
            sqlx::query(
                "INSERT INTO graphpilot_export_chunks (job_id, n, bytes) VALUES ($1, $2, $3)",
            )
            .bind(id)
            .bind(n)
            .bind(bytes)
            .execute(&self.readers)
            .await?;
            Ok(())
        })
        .await
    }

    /// Chunk `n` of a job's file, if there is one.
    pub async fn export_chunk(&self, id: &str, n: i64) -> Result<Option<Vec<u8>>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(
                "SELECT bytes FROM graphpilot_export_chunks WHERE job_id = $1 AND n = $2",
            )
            .bind(id)
            .bind(n)
            .fetch_optional(&self.readers)
            .await?;
            Ok(row.map(|row| row.try_get(0)).transpose()?)
        })
        .await
    }

    /// Opens one snapshot of a tenant's events for a report (see [`ReportSnapshot`]).
    pub async fn report_snapshot(
        &self,
        tenant: &str,
        not_before: Option<i64>,
    ) -> Result<ReportSnapshot<'_>, StoreError> {
        self.health.check()?;
        let tx = Tx::begin_snapshot(&self.readers, self.dialect).await?;
        let event_date_time =
            Column::find(&AUTOPILOT_EVENT, "eventDateTime").expect("events have eventDateTime");
        Ok(ReportSnapshot {
            store: self,
            tx,
            tenant: tenant.to_string(),
            filter: not_before.map(events_since),
            order: vec![
                (event_date_time, SortDirection::Descending),
                (ID, SortDirection::Descending),
            ],
            after: None,
            done: false,
        })
    }
}

/// A tenant's events by `eventDateTime` desc, `id` desc, read page by page inside one read-only
/// transaction: every page sees the database as it was at the first read.
pub struct ReportSnapshot<'a> {
    store: &'a Store,
    tx: Tx,
    tenant: String,
    filter: Option<Predicate>,
    order: Vec<(Column, SortDirection)>,
    after: Option<Vec<Scalar>>,
    done: bool,
}

impl ReportSnapshot<'_> {
    /// The next events, or an empty page once all were read.
    pub async fn next_page(&mut self) -> Result<Vec<Entity>, StoreError> {
        if self.done {
            return Ok(Vec::new());
        }
        let listing = Listing {
            collection: &Collection::Events,
            filter: self.filter.as_ref(),
            order: &self.order,
            after: self.after.as_deref(),
            skip: 0,
            limit: REPORT_PAGE,
        };
        let (statement, values) = self.store.dialect.select_page(&self.tenant, &listing);
        let rows = sql::bind(statement, values)
            .fetch_all(self.tx.connection())
            .await?;
        if (rows.len() as u64) < REPORT_PAGE {
            self.done = true;
        }
        let sort_start = 1 + 2 + AUTOPILOT_EVENT.properties.len();
        let mut events = Vec::with_capacity(rows.len());
        for (index, row) in rows.iter().enumerate() {
            if index + 1 == rows.len() {
                self.after = Some(
                    self.order
                        .iter()
                        .enumerate()
                        .map(|(offset, (column, _))| {
                            read_scalar(row, sort_start + offset, column.edm)
                        })
                        .collect::<Result<_, _>>()?,
                );
            }
            events.push(entity_from_row(row, 1, &AUTOPILOT_EVENT)?);
        }
        Ok(events)
    }

    /// Ends the snapshot.
    pub async fn close(self) {
        self.tx.rollback().await;
    }
}
