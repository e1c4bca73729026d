//! What the writer needs of a transaction, whichever driver holds it: a statement run, one stored
//! entity read, commit and rollback; here for sqlx's [`Tx`] on a pool (PostgreSQL's writers).

use sqlx::AnyPool;

use super::bound::Bound;
use super::health::dropped_by_the_server;
use super::sql::Dialect;
use super::transaction::Tx;
use super::{StoreError, StoredEntity};
use crate::model::EntitySchema;

/// An open transaction the writer applies writes in. Dropping it uncommitted ends it without
/// committing anything (its connection is closed).
pub(super) trait Session {
    /// Runs a statement; how many rows it changed.
    async fn execute(&mut self, statement: Bound) -> Result<u64, StoreError>;
    /// The first row of a statement that selects [`super::sql::entity_columns`] of `schema`.
    async fn stored(
        &mut self,
        statement: Bound,
        schema: &'static EntitySchema,
    ) -> Result<Option<StoredEntity>, StoreError>;
    /// Commits: on success everything it wrote is durable (as the connection's synchronous
    /// setting defines it).
    async fn commit(self) -> Result<(), StoreError>;
    async fn rollback(self);
}

/// Where a writer's transactions begin.
pub(super) trait Sessions {
    type Session: Session;
    async fn begin(&self) -> Result<Self::Session, StoreError>;
}

/// Transactions on connections of an sqlx pool.
#[derive(Clone)]
pub(super) struct PoolSessions {
    pub pool: AnyPool,
    pub dialect: Dialect,
}

impl Sessions for PoolSessions {
    type Session = Tx;
    /// Connections are not pinged when taken from the pool: a BEGIN on one the server dropped (a
    /// restart) fails at once, and runs again on another, once per pooled connection at most and
    /// once more on a new one.
    async fn begin(&self) -> Result<Tx, StoreError> {
        let mut retried = 0;
        loop {
            match Tx::begin(&self.pool, self.dialect).await {
                Err(StoreError::Unavailable(cause))
                    if retried <= self.pool.size()
                        && cause
                            .downcast_ref::<sqlx::Error>()
                            .is_some_and(dropped_by_the_server) =>
                {
                    retried += 1;
                }
                begun => return begun,
            }
        }
    }
}

impl Session for Tx {
    async fn execute(&mut self, statement: Bound) -> Result<u64, StoreError> {
        let query = statement.any();
        Ok(query.execute(self.connection()).await?.rows_affected())
    }

    async fn stored(
        &mut self,
        statement: Bound,
        schema: &'static EntitySchema,
    ) -> Result<Option<StoredEntity>, StoreError> {
        let query = statement.any();
        match query.fetch_optional(self.connection()).await? {
            Some(row) => Ok(Some(StoredEntity::from_row(&row, 0, schema)?)),
            None => Ok(None),
        }
    }

    async fn commit(self) -> Result<(), StoreError> {
        Tx::commit(self).await
    }

    async fn rollback(self) {
        Tx::rollback(self).await
    }
}
