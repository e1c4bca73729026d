//! Read statements run and decoded the same way on both backends: a [`Decode`] turns any
//! driver's row ([`Cells`]) into a value; each backend runs it through its own driver.

use sea_query::Values;

use super::bound::Bound;
use super::rows::Cells;
use super::sqlite_reads::SqliteReaders;
use super::{Backend, Store, StoreError};

/// Turns one result row, of any driver, into a value.
pub(super) trait Decode: Send + Sync + 'static {
    type Out: Send + 'static;
    fn decode(&self, row: &impl Cells) -> Result<Self::Out, StoreError>;
}

/// Runs a statement on a native SQLite connection: prepared once per connection, bound, every
/// row decoded where it lies.
fn sqlite_rows<D: Decode>(
    connection: &rusqlite::Connection,
    statement: &Bound,
    decoder: &D,
) -> Result<Vec<D::Out>, StoreError> {
    let mut statement = statement.prepare_sqlite(connection)?;
    let mut rows = statement.raw_query();
    let mut decoded = Vec::new();
    while let Some(row) = rows.next()? {
        decoded.push(decoder.decode(row)?);
    }
    Ok(decoded)
}

impl Store {
    /// A read statement's rows, decoded, within the request's deadline (see [`Store::bounded`]).
    pub(super) fn read_decoded<D: Decode>(
        &self,
        (sql, values): (String, Values),
        decoder: D,
    ) -> impl Future<Output = Result<Vec<D::Out>, StoreError>> + Send + '_ {
        // Converted before the future: sea-query's values are not Send.
        let statement = Bound::from((sql, values));
        let work = match &self.backend {
            Backend::Embedded(embedded) => ReadOn::Sqlite(embedded.readers.clone(), statement),
            Backend::Shared(pool) => ReadOn::Postgres(pool.clone(), statement),
        };
        async move {
            match work {
                ReadOn::Sqlite(readers, statement) => {
                    self.bounded(
                        readers
                            .read(move |connection| sqlite_rows(connection, &statement, &decoder)),
                    )
                    .await
                }
                ReadOn::Postgres(pool, statement) => {
                    let rows = self
                        .bounded(async move { Ok(postgres_rows(&pool, statement).await?) })
                        .await?;
                    rows.iter().map(|row| decoder.decode(row)).collect()
                }
            }
        }
    }

    /// A read statement's first row, decoded, if there is one.
    pub(super) fn read_decoded_one<D: Decode>(
        &self,
        statement: (String, Values),
        decoder: D,
    ) -> impl Future<Output = Result<Option<D::Out>, StoreError>> + Send + '_ {
        let rows = self.read_decoded(statement, decoder);
        async move { Ok(rows.await?.into_iter().next()) }
    }
}

/// Where a read runs, bound for it: the embedded file's native readers, or PostgreSQL's native
/// pool.
enum ReadOn {
    Sqlite(std::sync::Arc<SqliteReaders>, Bound),
    Postgres(sqlx::PgPool, Bound),
}

/// A statement's rows through PostgreSQL's own pool. Its connections are not pinged before each
/// use (a round trip per read, a fifth of a GET at one connection): one the server dropped (a
/// restart) fails at once without reaching it, and the read, which changes nothing, runs again
/// on another: once per connection the pool holds, and once more on a new one.
async fn postgres_rows(
    pool: &sqlx::PgPool,
    statement: Bound,
) -> Result<Vec<sqlx::postgres::PgRow>, sqlx::Error> {
    let mut retried = 0;
    loop {
        match statement.clone().postgres().fetch_all(pool).await {
            Err(error)
                if retried <= pool.size() && super::health::dropped_by_the_server(&error) =>
            {
                retried += 1;
            }
            rows => return rows,
        }
    }
}

/// A single integer column (counts).
pub(super) struct Integer;

impl Decode for Integer {
    type Out = i64;
    fn decode(&self, row: &impl Cells) -> Result<i64, StoreError> {
        Ok(row.integer(0)?.unwrap_or(0))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::odata::{Column, SortDirection, bind_filter};
    use crate::store::bound::Parameter;
    use crate::store::{Collection, Dialect, Durability, Listing};

    /// A cached statement SQLite must re-plan at every execution costs a parse and a plan each
    /// time (a tenth of a page's CPU, measured): the statements of a filtered page (its keys, the
    /// whole rows) and a count must run again as they were prepared.
    #[tokio::test]
    async fn page_and_count_statements_are_not_replanned_when_run_again() {
        let directory = tempfile::tempdir().unwrap();
        let store = Store::open(&Store::sqlite_url(directory.path()), Durability::Normal)
            .await
            .unwrap();
        let schema = &crate::model::AUTOPILOT_EVENT;
        let filter = bind_filter(
            schema,
            "deploymentState eq 'failure' and enrollmentType eq 'offlineDomainJoined'",
        )
        .unwrap();
        let order: Vec<(Column, SortDirection)> = vec![(
            Column::find(schema, "eventDateTime").unwrap(),
            SortDirection::Descending,
        )];
        let collection = Collection::Events;
        let listing = Listing {
            collection: &collection,
            filter: Some(&filter),
            order: &order,
            after: None,
            skip: 0,
            limit: 51,
        };
        let connection =
            rusqlite::Connection::open(directory.path().join("graphpilot.db")).unwrap();
        for (sql, values) in [
            Dialect::Sqlite.select_page_keys("t", &listing),
            Dialect::Sqlite.select_page("t", &listing),
            Dialect::Sqlite.count("t", &collection, Some(&filter)),
        ] {
            let mut bound = Bound::from((sql.clone(), values));
            for tenant in ["t", "u", "t"] {
                bound.parameters[0] = Parameter::Text(Some(tenant.to_string()));
                let mut statement = bound.prepare_sqlite(&connection).unwrap();
                let mut rows = statement.raw_query();
                while rows.next().unwrap().is_some() {}
                drop(rows);
                assert_eq!(
                    statement.get_status(rusqlite::StatementStatus::RePrepare),
                    0,
                    "re-planned: {sql}"
                );
            }
        }
        store.close().await;
    }
}
