//! Bulk loads (seed, import) with deferred indexes, planner statistics, checkpoints that make
//! loads durable, and the reset of whole tenants.

use std::sync::Arc;

use sqlx::Row;

use super::apply::WriteOp;
use super::sql::{self, Dialect};
use super::transaction::Tx;
use super::{LoadKind, Store, StoreError};

/// The rollup of event counts (migrations/sqlite/0011) counted again from the events, as the
/// migration first filled it; run before its triggers come back after a load.
const RECOUNT: &str = "DELETE FROM autopilot_event_counts; \
    INSERT INTO autopilot_event_counts \
    SELECT tenant_id, event_date_time / 864000000000, deployment_state, enrollment_type, \
        device_setup_status, account_setup_status, deployment_profile_display_name, \
        esp_configuration_display_name, os_version, count(*) \
    FROM autopilot_events GROUP BY 1, 2, 3, 4, 5, 6, 7, 8, 9";

impl Store {
    /// Prepares a bulk load: when the tables are empty, their indexes are
    /// dropped (their definitions kept in `graphpilot_deferred_indexes`) so the load does not
    /// maintain them row by row; [`Store::finish_bulk_load`] builds them again in one pass. Returns
    /// whether indexes were deferred.
    pub async fn begin_bulk_load(&self) -> Result<bool, StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Ok(false);
        }
        let mut transaction = Tx::begin(&self.readers, self.dialect).await?;
        let empty: i64 = sqlx::query(
            "SELECT NOT EXISTS (SELECT 1 FROM autopilot_events) \
             AND NOT EXISTS (SELECT 1 FROM policy_status_details)",
        )
        .fetch_one(transaction.connection())
        .await?
        .try_get(0)?;
        if empty == 0 {
            transaction.rollback().await;
            return Ok(false);
        }
        // Unique ones too: while both tables are empty no key can clash with existing rows, keys
        // are random GUIDs, and the rebuild checks uniqueness anyway. The tables themselves then
        // grow by appends only.
        // The rollup's triggers too: [`Store::finish_bulk_load`] counts the loaded rows at once.
        let indexes = sqlx::query(
            "SELECT name, sql, type FROM sqlite_master WHERE type IN ('index', 'trigger') \
             AND tbl_name IN ('autopilot_events', 'policy_status_details') AND sql IS NOT NULL",
        )
        .fetch_all(transaction.connection())
        .await?;
        for index in &indexes {
            let name: String = index.try_get(0)?;
            let definition: String = index.try_get(1)?;
            let kind = if index.try_get::<String, _>(2)? == "trigger" {
                "TRIGGER"
            } else {
                "INDEX"
            };
            sqlx::query("INSERT INTO graphpilot_deferred_indexes (name, definition) VALUES (?, ?)")
                .bind(&name)
                .bind(definition)
                .execute(transaction.connection())
                .await?;
            // Index names come from our own schema, never from input.
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!("DROP {kind} \"{name}\"")))
                .execute(transaction.connection())
                .await?;
        }
        transaction.commit().await?;
        Ok(!indexes.is_empty())
    }

    /// Builds every deferred index again (also run at start, after an interrupted load).
    pub async fn finish_bulk_load(&self) -> Result<(), StoreError> {
        // A connection of its own, closed afterwards: the settings below suit only index builds.
        let mut connection = self.readers.acquire().await?.detach();
        if self.dialect == Dialect::Sqlite {
            // Index builds sort every row. SQLite's sorter is fastest with a small page cache and
            // temporary files (it merges sorted runs from them, on helper threads); the large
            // in-memory settings of the readers made a 1M-event rebuild twice as slow.
            let threads = std::thread::available_parallelism().map_or(1, usize::from);
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "PRAGMA threads = {threads}; PRAGMA cache_size = -2000; PRAGMA temp_store = FILE;"
            )))
            .execute(&mut connection)
            .await?;
        }
        let mut transaction = sqlx::Connection::begin(&mut connection).await?;
        let deferred = sqlx::query("SELECT name, definition FROM graphpilot_deferred_indexes")
            .fetch_all(&mut *transaction)
            .await?;
        let mut recount = false;
        for index in &deferred {
            let definition: String = index.try_get(1)?;
            if definition.starts_with("CREATE TRIGGER") && !recount {
                recount = true;
                sqlx::raw_sql(RECOUNT).execute(&mut *transaction).await?;
            }
            sqlx::raw_sql(sqlx::AssertSqlSafe(definition))
                .execute(&mut *transaction)
                .await?;
        }
        sqlx::query("DELETE FROM graphpilot_deferred_indexes")
            .execute(&mut *transaction)
            .await?;
        transaction.commit().await?;
        sqlx::Connection::close(connection).await?;
        Ok(())
    }

    /// Refreshes the planner's statistics (after bulk loads): without them SQLite may walk the
    /// time index instead of the state index for a keyset page, scanning ten times the rows.
    pub async fn analyze(&self) -> Result<(), StoreError> {
        let statement = match self.dialect {
            Dialect::Sqlite => "PRAGMA analysis_limit = 2000; ANALYZE;",
            Dialect::Postgres => "ANALYZE autopilot_events; ANALYZE policy_status_details;",
        };
        sqlx::raw_sql(sqlx::AssertSqlSafe(statement))
            .execute(&self.readers)
            .await?;
        Ok(())
    }

    /// Makes everything committed so far durable and folds the WAL into the database file.
    ///
    /// Bulk loads commit with `synchronous = NORMAL` and rely on this to reach the disk. When
    /// readers (a server beside) keep the checkpoint from finishing, SQLite reports it busy and
    /// need not have synced the WAL at all; a one-frame commit with `synchronous = FULL` then
    /// syncs the whole WAL, which holds every earlier commit.
    pub async fn checkpoint(&self) -> Result<(), StoreError> {
        if self.dialect != Dialect::Sqlite {
            return Ok(());
        }
        let row = sqlx::query("PRAGMA wal_checkpoint(TRUNCATE)")
            .fetch_one(&self.readers)
            .await?;
        let busy: i64 = row.try_get(0)?;
        if busy != 0 {
            let mut connection = self.readers.acquire().await?.detach();
            sqlx::raw_sql("PRAGMA synchronous = FULL")
                .execute(&mut connection)
                .await?;
            let version: i64 = sqlx::query("PRAGMA user_version")
                .fetch_one(&mut connection)
                .await?
                .try_get(0)?;
            sqlx::raw_sql(sqlx::AssertSqlSafe(format!(
                "BEGIN IMMEDIATE; PRAGMA user_version = {version}; COMMIT;"
            )))
            .execute(&mut connection)
            .await?;
            sqlx::Connection::close(connection).await?;
        }
        Ok(())
    }

    /// Loads many deployments in one transaction: new ones ([`LoadKind::Insert`], seeding), or
    /// replacing any stored under the same ids, details included ([`LoadKind::Upsert`], imports).
    pub async fn bulk_load(
        &self,
        tenant: &str,
        deployments: Vec<crate::model::Deployment>,
        kind: LoadKind,
    ) -> Result<(), StoreError> {
        if let super::Backend::Embedded(embedded) = &self.backend {
            let loader = embedded.bulk_loader.clone();
            let tenant = tenant.to_string();
            let _writing = embedded.cache.writing();
            let loaded = tokio::task::spawn_blocking(move || {
                loader
                    .lock()
                    .expect("bulk loader lock")
                    .load(&tenant, &deployments, kind)
            })
            .await
            .map_err(|error| anyhow::anyhow!("the bulk load stopped: {error}"))?;
            if kind == LoadKind::Upsert {
                // Replaced rows: cached versions of them are stale.
                embedded.cache.clear();
            }
            return loaded;
        }
        self.write(WriteOp::Bulk {
            tenant: tenant.to_string(),
            deployments: Arc::new(deployments),
            kind,
        })
        .await
        .map(drop)
    }

    /// Deletes every event and detail of `tenant`, or of every tenant; returns how many of each.
    pub async fn reset(&self, tenant: Option<&str>) -> Result<(u64, u64), StoreError> {
        self.health.check()?;
        let _writing = self.cache().map(super::cache::EntityCache::writing);
        let mut transaction = Tx::begin(&self.readers, self.dialect).await?;
        let mut deleted = [0; 2];
        for (count, schema) in deleted.iter_mut().zip([
            &crate::model::AUTOPILOT_EVENT,
            &crate::model::POLICY_STATUS_DETAIL,
        ]) {
            let (statement, values) = self.dialect.delete_tenant(schema, tenant);
            *count = sql::bind(statement, values)
                .execute(transaction.connection())
                .await?
                .rows_affected();
        }
        transaction.commit().await?;
        if let Some(cache) = self.cache() {
            cache.clear();
        }
        Ok((deleted[0], deleted[1]))
    }
}

#[cfg(test)]
mod bulk_load_tests {
    use super::*;
    use crate::store::Durability;

    async fn index_names(store: &Store) -> Vec<String> {
        sqlx::query(
            "SELECT name FROM sqlite_master WHERE type = 'index' AND sql IS NOT NULL \
             AND tbl_name IN ('autopilot_events', 'policy_status_details') ORDER BY name",
        )
        .fetch_all(&store.readers)
        .await
        .unwrap()
        .iter()
        .map(|row| row.try_get(0).unwrap())
        .collect()
    }

    #[tokio::test]
    async fn indexes_deferred_by_a_bulk_load_come_back_even_after_an_interrupted_one() {
        let directory = tempfile::tempdir().unwrap();
        let url = Store::sqlite_url(directory.path());
        let store = Store::open(&url, Durability::Normal).await.unwrap();
        let all = index_names(&store).await;
        assert!(all.len() >= 10, "{all:?}");
        assert!(store.begin_bulk_load().await.unwrap());
        assert!(index_names(&store).await.is_empty());
        store.finish_bulk_load().await.unwrap();
        assert_eq!(index_names(&store).await, all);
        // Interrupted: the indexes are dropped and the process goes away before rebuilding.
        assert!(store.begin_bulk_load().await.unwrap());
        store.close().await;
        let reopened = Store::open(&url, Durability::Normal).await.unwrap();
        assert_eq!(index_names(&reopened).await, all);
        reopened.close().await;
    }
}
