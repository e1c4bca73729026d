//! Dashboard sign-in state shared by every node of one database: one-time codes and sessions,
//! each known only by the SHA-256 hash of its secret, each with an expiry in Unix seconds.

use sqlx::Row;

use super::{Store, StoreError};

/// A dashboard session: whose analytics it reads, and until when.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct DashboardSession {
    pub tenant: String,
    /// The app of the token it was opened with, or `dashboard` for a one-time code.
    pub app: String,
    pub expires_at: i64,
}

impl Store {
    /// Stores a one-time code (its hash) for `tenant`, valid until `expires_at`; forgets codes
    /// and sessions that have expired.
    pub async fn add_dashboard_code(
        &self,
        code_sha256: &str,
        tenant: &str,
        expires_at: i64,
        now: i64,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            self.forget_expired_sign_ins(now).await?;
            sqlx::query(
                "INSERT INTO graphpilot_dashboard_codes (code_sha256, tenant_id, expires_at) \
                 VALUES ($1, $2, $3)",
            )
            .bind(code_sha256)
            .bind(tenant)
            .bind(expires_at)
            .execute(&self.readers)
            .await?;
            Ok(())
        })
        .await
    }

    /// Uses up a one-time code: its tenant if it existed and had not expired. A code is taken
    /// once, whatever the outcome (one DELETE: two nodes cannot both take it).
    pub async fn take_dashboard_code(
        &self,
        code_sha256: &str,
        now: i64,
    ) -> Result<Option<String>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(
                "DELETE FROM graphpilot_dashboard_codes WHERE code_sha256 = $1 \
                 RETURNING tenant_id, expires_at",
            )
            .bind(code_sha256)
            .fetch_optional(&self.readers)
            .await?;
            let Some(row) = row else { return Ok(None) };
            let expires_at: i64 = row.try_get(1)?;
            Ok((now < expires_at).then(|| row.try_get(0)).transpose()?)
        })
        .await
    }

    pub async fn add_dashboard_session(
        &self,
        session_sha256: &str,
        session: &DashboardSession,
        now: i64,
    ) -> Result<(), StoreError> {
        self.bounded(async {
            self.forget_expired_sign_ins(now).await?;
            sqlx::query(
                "INSERT INTO graphpilot_dashboard_sessions \
                 (session_sha256, tenant_id, app, expires_at) VALUES ($1, $2, $3, $4)",
            )
            .bind(session_sha256)
            .bind(&session.tenant)
            .bind(&session.app)
            .bind(session.expires_at)
            .execute(&self.readers)
            .await?;
            Ok(())
        })
        .await
    }

    /// The session with this hash, if it has not expired or been ended.
    pub async fn dashboard_session(
        &self,
        session_sha256: &str,
        now: i64,
    ) -> Result<Option<DashboardSession>, StoreError> {
        self.bounded(async {
            let row = sqlx::query(
                "SELECT tenant_id, app, expires_at FROM graphpilot_dashboard_sessions \
                 WHERE session_sha256 = $1 AND expires_at > $2",
            )
            .bind(session_sha256)
            .bind(now)
            .fetch_optional(&self.readers)
            .await?;
            row.map(|row| {
                Ok(DashboardSession {
                    tenant: row.try_get(0)?,
                    app: row.try_get(1)?,
                    expires_at: row.try_get(2)?,
                })
            })
            .transpose()
        })
        .await
    }

    /// Ends a session (signing out); ending one that is gone is no error.
    pub async fn end_dashboard_session(&self, session_sha256: &str) -> Result<(), StoreError> {
        self.bounded(async {
            sqlx::query("DELETE FROM graphpilot_dashboard_sessions WHERE session_sha256 = $1")
                .bind(session_sha256)
                .execute(&self.readers)
                .await?;
            Ok(())
        })
        .await
    }

    async fn forget_expired_sign_ins(&self, now: i64) -> Result<(), StoreError> {
        for table in [
            "graphpilot_dashboard_codes",
            "graphpilot_dashboard_sessions",
        ] {
            sqlx::query(sqlx::AssertSqlSafe(format!(
                "DELETE FROM {table} WHERE expires_at <= $1"
            )))
            .bind(now)
            .execute(&self.readers)
            .await?;
        }
        Ok(())
    }
}
