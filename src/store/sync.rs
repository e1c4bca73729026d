//! `graphpilot sync`'s side of the store: run records, the watermark, a page upserted in one
//! transaction with its run's counters (unchanged events left alone), and the lock per tenant.

use std::path::Path;
use std::sync::Arc;

use sqlx::Row;

use super::apply::bulk_insert;
use super::rows::entity_from_row;
use super::sql::{self, Collection, Dialect, Listing};
use super::transaction::Tx;
use super::{LoadKind, Store, StoreError};
use crate::edm::DateTimeOffset;
use crate::model::sync_run::{AttemptError, RunStatus, SyncMode, SyncRun};
use crate::model::{AUTOPILOT_EVENT, Deployment, Entity, POLICY_STATUS_DETAIL};
use crate::odata::{ID, Predicate, Scalar};

const RUN_COLUMNS: &str = "id, tenant_id, source, source_tenant, mode, status, start_ticks, \
     end_ticks, filter_from_ticks, watermark_ticks, pages, fetched, upserted, unchanged, errors_json";

fn run_from_row(row: &sqlx::any::AnyRow) -> Result<SyncRun, StoreError> {
    let corrupt =
        |what: &str| StoreError::Internal(anyhow::anyhow!("a stored sync run has {what}"));
    let instant = |ticks: Option<i64>| {
        ticks
            .map(|ticks| DateTimeOffset::from_ticks(ticks).ok_or_else(|| corrupt("bad ticks")))
            .transpose()
    };
    let mode: String = row.try_get(4)?;
    let status: String = row.try_get(5)?;
    let errors: String = row.try_get(14)?;
    Ok(SyncRun {
        id: row.try_get(0)?,
        tenant: row.try_get(1)?,
        source: row.try_get(2)?,
        source_tenant: row.try_get(3)?,
        mode: SyncMode::parse(&mode).ok_or_else(|| corrupt("a bad mode"))?,
        status: RunStatus::parse(&status).ok_or_else(|| corrupt("a bad status"))?,
        start: instant(Some(row.try_get(6)?))?.expect("some"),
        end: instant(row.try_get(7)?)?,
        filter_from: instant(row.try_get(8)?)?,
        watermark: instant(row.try_get(9)?)?,
        pages: row.try_get(10)?,
        fetched: row.try_get(11)?,
        upserted: row.try_get(12)?,
        unchanged: row.try_get(13)?,
        errors: serde_json::from_str(&errors).map_err(|_| corrupt("bad errors"))?,
    })
}

/// The runs in all, for metrics (see [`Store::sync_totals`]).
#[derive(Debug, Default)]
pub struct SyncTotals {
    pub runs: Vec<(String, i64)>,
    pub pages: i64,
    pub fetched: i64,
    pub failed_attempts: i64,
    pub oldest_watermark: Option<i64>,
}

/// Held while a run goes on: released when dropped, and by the operating system or the database
/// when the process dies.
pub enum SyncLock {
    /// An exclusive lock on a file of the data directory (SQLite).
    File(std::fs::File),
    /// A PostgreSQL session advisory lock on a connection of its own.
    Session(sqlx::pool::PoolConnection<sqlx::Any>),
}

impl Drop for SyncLock {
    fn drop(&mut self) {
        if let SyncLock::Session(connection) = self {
            // Closing the session releases its advisory locks.
            connection.close_on_drop();
        }
    }
}

impl Store {
    /// The lock of local tenant `tenant`, if no other run holds it.
    pub async fn try_sync_lock(
        &self,
        tenant: &str,
        lock_dir: &Path,
    ) -> Result<Option<SyncLock>, StoreError> {
        match self.dialect {
            Dialect::Sqlite => {
                let name = format!("sync-{}.lock", hex_of(tenant));
                let file = std::fs::OpenOptions::new()
                    .create(true)
                    .truncate(false)
                    .write(true)
                    .open(lock_dir.join(name))
                    .map_err(|error| StoreError::Internal(error.into()))?;
                match file.try_lock() {
                    Ok(()) => Ok(Some(SyncLock::File(file))),
                    Err(std::fs::TryLockError::WouldBlock) => Ok(None),
                    Err(std::fs::TryLockError::Error(error)) => {
                        Err(StoreError::Internal(error.into()))
                    }
                }
            }
            Dialect::Postgres => {
                let mut connection = self.readers.acquire().await?;
                let row = sqlx::query("SELECT pg_try_advisory_lock(hashtextextended($1, 7))")
                    .bind(format!("graphpilot sync {tenant}"))
                    .fetch_one(&mut *connection)
                    .await?;
                let held: bool = row.try_get(0)?;
                if held {
                    Ok(Some(SyncLock::Session(connection)))
                } else {
                    Ok(None)
                }
            }
        }
    }

    /// Runs of `tenant` still `running` (their process died): `interrupted`; how many.
    pub async fn interrupt_left_over_sync_runs(&self, tenant: &str) -> Result<u64, StoreError> {
        let done = sqlx::query(
            "UPDATE graphpilot_sync_runs SET status = 'interrupted' \
             WHERE tenant_id = $1 AND status = 'running'",
        )
        .bind(tenant)
        .execute(&self.readers)
        .await?;
        Ok(done.rows_affected())
    }

    pub async fn start_sync_run(&self, run: &SyncRun) -> Result<(), StoreError> {
        sqlx::query(
            "INSERT INTO graphpilot_sync_runs (id, tenant_id, source, source_tenant, mode, status, \
             start_ticks, filter_from_ticks) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        )
        .bind(&run.id)
        .bind(&run.tenant)
        .bind(&run.source)
        .bind(&run.source_tenant)
        .bind(run.mode.as_str())
        .bind(run.status.as_str())
        .bind(run.start.ticks())
        .bind(run.filter_from.map(DateTimeOffset::ticks))
        .execute(&self.readers)
        .await?;
        Ok(())
    }

    /// W for (tenant, source, source tenant): the largest eventDateTime completed runs received,
    /// and when the last completed full run started.
    pub async fn sync_watermark(
        &self,
        tenant: &str,
        source: &str,
        source_tenant: &str,
    ) -> Result<(Option<DateTimeOffset>, Option<DateTimeOffset>), StoreError> {
        let row = sqlx::query(
            "SELECT MAX(watermark_ticks), \
             MAX(CASE WHEN mode = 'full' THEN start_ticks END) FROM graphpilot_sync_runs \
             WHERE tenant_id = $1 AND source = $2 AND source_tenant = $3 AND status = 'completed'",
        )
        .bind(tenant)
        .bind(source)
        .bind(source_tenant)
        .fetch_one(&self.readers)
        .await?;
        let instant = |index: usize| -> Result<Option<DateTimeOffset>, StoreError> {
            Ok(row
                .try_get::<Option<i64>, _>(index)?
                .and_then(DateTimeOffset::from_ticks))
        };
        Ok((instant(0)?, instant(1)?))
    }

    /// Records a failed attempt of run `id`.
    pub async fn add_sync_error(&self, id: &str, error: &AttemptError) -> Result<(), StoreError> {
        let mut tx = Tx::begin(&self.readers, self.dialect).await?;
        let row = sqlx::query("SELECT errors_json FROM graphpilot_sync_runs WHERE id = $1")
            .bind(id)
            .fetch_one(tx.connection())
            .await?;
        let mut errors: Vec<AttemptError> =
            serde_json::from_str(&row.try_get::<String, _>(0)?).unwrap_or_default();
        errors.push(error.clone());
        sqlx::query(
            "UPDATE graphpilot_sync_runs SET errors_json = $1, \
             failed_attempts = failed_attempts + 1 WHERE id = $2",
        )
        .bind(serde_json::to_string(&errors).expect("errors serialise"))
        .bind(id)
        .execute(tx.connection())
        .await?;
        tx.commit().await
    }

    /// Ends run `id` as `status` (`endDateTime` set for completed and failed runs). Its
    /// `watermark` becomes W after the run: for a completed run the larger of `before` (W when it
    /// started) and what it received; for any other, `before` (it does not move W).
    pub async fn finish_sync_run(
        &self,
        id: &str,
        status: RunStatus,
        end: DateTimeOffset,
        before: Option<DateTimeOffset>,
    ) -> Result<(), StoreError> {
        let end = matches!(status, RunStatus::Completed | RunStatus::Failed).then_some(end.ticks());
        let before = before.map(DateTimeOffset::ticks);
        let statement = if status == RunStatus::Completed {
            "UPDATE graphpilot_sync_runs SET status = $1, end_ticks = $2,              watermark_ticks = CASE WHEN $3 IS NULL THEN watermark_ticks                WHEN watermark_ticks IS NULL OR watermark_ticks < $3 THEN $3                ELSE watermark_ticks END WHERE id = $4"
        } else {
            "UPDATE graphpilot_sync_runs SET status = $1, end_ticks = $2, watermark_ticks = $3              WHERE id = $4"
        };
        sqlx::query(statement)
            .bind(status.as_str())
            .bind(end)
            .bind(before)
            .bind(id)
            .execute(&self.readers)
            .await?;
        Ok(())
    }

    /// What `/metrics` shows of the runs: records by status, pages, events and failed attempts
    /// in all, and the oldest of the watermarks (each local tenant, source and source tenant's
    /// W), as ticks.
    pub async fn sync_totals(&self) -> Result<SyncTotals, StoreError> {
        self.bounded(async {
            let mut totals = SyncTotals::default();
            for row in sqlx::query(
                // PostgreSQL's SUM of BIGINT is NUMERIC: cast back.
                "SELECT status, COUNT(*), CAST(COALESCE(SUM(pages), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(fetched), 0) AS BIGINT), \
                 CAST(COALESCE(SUM(failed_attempts), 0) AS BIGINT) \
                 FROM graphpilot_sync_runs GROUP BY status",
            )
            .fetch_all(&self.readers)
            .await?
            {
                let status: String = row.try_get(0)?;
                totals.runs.push((status, row.try_get(1)?));
                totals.pages += row.try_get::<i64, _>(2)?;
                totals.fetched += row.try_get::<i64, _>(3)?;
                totals.failed_attempts += row.try_get::<i64, _>(4)?;
            }
            let row = sqlx::query(
                "SELECT MIN(w) FROM (SELECT MAX(watermark_ticks) AS w FROM graphpilot_sync_runs \
                 WHERE status = 'completed' GROUP BY tenant_id, source, source_tenant) AS marks",
            )
            .fetch_one(&self.readers)
            .await?;
            totals.oldest_watermark = row.try_get(0)?;
            Ok(totals)
        })
        .await
    }

    /// Run records, newest first; of one local tenant, or all.
    pub async fn sync_runs(&self, tenant: Option<&str>) -> Result<Vec<SyncRun>, StoreError> {
        self.bounded(async {
            let rows = sqlx::query(sqlx::AssertSqlSafe(format!(
                "SELECT {RUN_COLUMNS} FROM graphpilot_sync_runs \
                 WHERE ($1 = '' OR tenant_id = $1) ORDER BY seq DESC"
            )))
            .bind(tenant.unwrap_or(""))
            .fetch_all(&self.readers)
            .await?;
            rows.iter().map(run_from_row).collect()
        })
        .await
    }

    /// One page of the source: its events upserted by id with their details (ids kept), except
    /// those equal to the stored ones, in one transaction with run `run_id`'s counters and
    /// watermark. Returns (upserted, unchanged).
    pub async fn sync_page(
        &self,
        tenant: &str,
        run_id: &str,
        page: Vec<Deployment>,
    ) -> Result<(u64, u64), StoreError> {
        self.health.check()?;
        let fetched = page.len() as i64;
        let newest = page
            .iter()
            .filter_map(|deployment| {
                match &deployment.event.values[crate::model::event::EVENT_DATE_TIME.0] {
                    crate::model::Value::DateTimeOffset(at) => Some(at.ticks()),
                    _ => None,
                }
            })
            .max();
        let mut tx = Tx::begin(&self.readers, self.dialect).await?;
        let stored = self.stored_deployments(&mut tx, tenant, &page).await?;
        let changed: Vec<Deployment> = page
            .into_iter()
            .filter(|deployment| {
                stored
                    .get(&deployment.event.id)
                    .is_none_or(|(event, details)| !same(deployment, event, details))
            })
            .collect();
        let upserted = changed.len() as i64;
        if !changed.is_empty() {
            bulk_insert(
                self.dialect,
                &mut tx,
                tenant,
                &Arc::new(changed),
                LoadKind::Upsert,
            )
            .await?;
        }
        sqlx::query(
            "UPDATE graphpilot_sync_runs SET pages = pages + 1, fetched = fetched + $1, \
             upserted = upserted + $2, unchanged = unchanged + $3, \
             watermark_ticks = CASE WHEN $4 IS NULL THEN watermark_ticks \
               WHEN watermark_ticks IS NULL OR watermark_ticks < $4 THEN $4 \
               ELSE watermark_ticks END \
             WHERE id = $5",
        )
        .bind(fetched)
        .bind(upserted)
        .bind(fetched - upserted)
        .bind(newest)
        .bind(run_id)
        .execute(tx.connection())
        .await?;
        tx.commit().await?;
        Ok((upserted as u64, (fetched - upserted) as u64))
    }

    /// The stored events of a page's ids, with their details.
    async fn stored_deployments(
        &self,
        tx: &mut Tx,
        tenant: &str,
        page: &[Deployment],
    ) -> Result<std::collections::HashMap<String, (Entity, Vec<Entity>)>, StoreError> {
        let ids: Vec<String> = page.iter().map(|d| d.event.id.clone()).collect();
        let mut stored = std::collections::HashMap::new();
        if ids.is_empty() {
            return Ok(stored);
        }
        let filter = Predicate::In(ID, ids.iter().cloned().map(Scalar::Text).collect());
        let (statement, values) = self.dialect.select_page(
            tenant,
            &Listing {
                collection: &Collection::Events,
                filter: Some(&filter),
                order: &[],
                after: None,
                skip: 0,
                limit: ids.len() as u64,
            },
        );
        for row in sql::bind(statement, values)
            .fetch_all(tx.connection())
            .await?
        {
            let event = entity_from_row(&row, 1, &AUTOPILOT_EVENT)?;
            stored.insert(event.id.clone(), (event, Vec::new()));
        }
        let (statement, values) = self.dialect.details_of(tenant, &ids);
        for row in sql::bind(statement, values)
            .fetch_all(tx.connection())
            .await?
        {
            let event_id: String = row.try_get(0)?;
            let detail = entity_from_row(&row, 1, &POLICY_STATUS_DETAIL)?;
            if let Some((_, details)) = stored.get_mut(&event_id) {
                details.push(detail);
            }
        }
        Ok(stored)
    }
}

/// Whether a deployment from the source equals the stored one: every property, and the same
/// details by id (in any order).
fn same(deployment: &Deployment, event: &Entity, details: &[Entity]) -> bool {
    if deployment.event != *event || deployment.details.len() != details.len() {
        return false;
    }
    let mut incoming: Vec<&Entity> = deployment.details.iter().collect();
    let mut kept: Vec<&Entity> = details.iter().collect();
    incoming.sort_by(|a, b| a.id.cmp(&b.id));
    kept.sort_by(|a, b| a.id.cmp(&b.id));
    incoming == kept
}

fn hex_of(text: &str) -> String {
    text.bytes().map(|byte| format!("{byte:02x}")).collect()
}
