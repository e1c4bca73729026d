//! What the nodes of one database share through it: the signing key, the throttle budgets, and
//! the app registrations of the token endpoint.

use sqlx::Row;

use super::sql::{self, AppRegistration, Dialect};
use super::{Store, StoreError};

impl Store {
    /// The signing key every node of this database uses. On PostgreSQL (several nodes) the first
    /// node to start publishes `candidate_pem` and all nodes then use what is published; an
    /// embedded SQLite file has one node, whose data-directory key is the key.
    pub async fn shared_signing_key(&self, candidate_pem: &str) -> Result<String, StoreError> {
        if self.dialect != Dialect::Postgres {
            return Ok(candidate_pem.to_string());
        }
        sqlx::query(
            "INSERT INTO graphpilot_keys (name, pem) VALUES ('signing', $1) ON CONFLICT (name) DO NOTHING",
        )
        .bind(candidate_pem)
        .execute(&self.readers)
        .await?;
        let row = sqlx::query("SELECT pem FROM graphpilot_keys WHERE name = 'signing'")
            .fetch_one(&self.readers)
            .await?;
        Ok(row.try_get(0)?)
    }

    /// Claims up to `chunk` more of a shared throttle counter's `limit` in `window`; returns how
    /// much was granted (0 once the limit is reached). Atomic across the nodes of the database.
    pub async fn claim_throttle_budget(
        &self,
        tenant: &str,
        app: &str,
        kind: &str,
        window: i64,
        chunk: u32,
        limit: u32,
    ) -> Result<u32, StoreError> {
        self.bounded(async {
            sqlx::query(
                "INSERT INTO graphpilot_throttle (tenant_id, app, kind, time_window, used) \
                 VALUES ($1, $2, $3, $4, 0) ON CONFLICT DO NOTHING",
            )
            .bind(tenant)
            .bind(app)
            .bind(kind)
            .bind(window)
            .execute(&self.readers)
            .await?;
            let row = sqlx::query(
                "WITH previous AS (SELECT used FROM graphpilot_throttle \
                   WHERE tenant_id = $1 AND app = $2 AND kind = $3 AND time_window = $4 FOR UPDATE) \
                 UPDATE graphpilot_throttle AS counter SET used = LEAST(counter.used + $5, $6) FROM previous \
                 WHERE counter.tenant_id = $1 AND counter.app = $2 AND counter.kind = $3 AND counter.time_window = $4 \
                 RETURNING counter.used - previous.used",
            )
            .bind(tenant)
            .bind(app)
            .bind(kind)
            .bind(window)
            .bind(i64::from(chunk))
            .bind(i64::from(limit))
            .fetch_one(&self.readers)
            .await?;
            let granted: i64 = row.try_get(0)?;
            Ok(granted.max(0) as u32)
        })
        .await
    }

    /// Drops shared throttle counters of windows before `window`.
    pub async fn forget_throttle_windows_before(&self, window: i64) -> Result<(), StoreError> {
        sqlx::query("DELETE FROM graphpilot_throttle WHERE time_window < $1")
            .bind(window)
            .execute(&self.readers)
            .await?;
        Ok(())
    }

    pub async fn add_app(&self, app: &AppRegistration) -> Result<(), StoreError> {
        let (statement, values) = self.dialect.insert_app(app);
        sql::bind(statement, values).execute(&self.readers).await?;
        Ok(())
    }

    /// Every app registration, or the one with `client_id`.
    pub async fn apps(&self, client_id: Option<&str>) -> Result<Vec<AppRegistration>, StoreError> {
        let (statement, values) = self.dialect.select_apps(client_id);
        let rows = self.read_rows((statement, values)).await?;
        rows.iter()
            .map(|row| {
                let permissions: String = row.try_get(4)?;
                Ok(AppRegistration {
                    client_id: row.try_get(0)?,
                    tenant: row.try_get(1)?,
                    name: row.try_get(2)?,
                    secret_sha256: row.try_get(3)?,
                    permissions: permissions.split_whitespace().map(str::to_string).collect(),
                    created_at: row.try_get(5)?,
                })
            })
            .collect()
    }

    /// Removes an app registration; whether there was one.
    pub async fn remove_app(&self, client_id: &str) -> Result<bool, StoreError> {
        let (statement, values) = self.dialect.delete_app(client_id);
        let done = sql::bind(statement, values).execute(&self.readers).await?;
        Ok(done.rows_affected() > 0)
    }
}
