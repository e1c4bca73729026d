//! A built statement with its values owned and `Send` (sea-query's are not), and its binding for
//! each driver that runs it: SQLite's own (rusqlite), sqlx's PostgreSQL driver and its `Any` one.

use sea_query::{Value as SqlValue, Values};

/// A bound value of a built statement; a null keeps the type it was built with.
#[derive(Clone, Debug)]
pub(super) enum Parameter {
    Integer(Option<i64>),
    Text(Option<String>),
    Boolean(Option<bool>),
}

/// A statement's SQL text (only ever rendered by sea-query) and its values, in order.
#[derive(Clone, Debug)]
pub(super) struct Bound {
    pub sql: String,
    pub parameters: Vec<Parameter>,
}

impl From<(String, Values)> for Bound {
    fn from((sql, values): (String, Values)) -> Self {
        let parameters = values
            .into_iter()
            .map(|value| match value {
                SqlValue::Bool(flag) => Parameter::Boolean(flag),
                SqlValue::BigInt(number) => Parameter::Integer(number),
                SqlValue::Int(number) => Parameter::Integer(number.map(i64::from)),
                // LIMIT and OFFSET; the options parser keeps them within i64.
                SqlValue::BigUnsigned(number) => {
                    Parameter::Integer(number.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
                }
                SqlValue::String(text) => Parameter::Text(text.map(|t| t.to_string())),
                other => {
                    unreachable!("statements only bind booleans, integers and text, not {other:?}")
                }
            })
            .collect();
        Bound { sql, parameters }
    }
}

pub(super) type PgQuery = sqlx::query::Query<'static, sqlx::Postgres, sqlx::postgres::PgArguments>;
pub(super) type AnyQuery = sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments>;

impl Bound {
    /// The statement prepared on `connection` (kept in its cache) with every value bound, ready
    /// for `raw_query` or `raw_execute`.
    pub fn prepare_sqlite<'c>(
        &self,
        connection: &'c rusqlite::Connection,
    ) -> rusqlite::Result<rusqlite::CachedStatement<'c>> {
        use rusqlite::types::{Null, ToSqlOutput};
        let mut statement = connection.prepare_cached(&self.sql)?;
        for (position, parameter) in self.parameters.iter().enumerate() {
            let bound = match parameter {
                Parameter::Integer(Some(number)) => ToSqlOutput::from(*number),
                Parameter::Boolean(Some(flag)) => ToSqlOutput::from(i64::from(*flag)),
                Parameter::Text(Some(text)) => ToSqlOutput::from(text.as_str()),
                Parameter::Integer(None) | Parameter::Boolean(None) | Parameter::Text(None) => {
                    ToSqlOutput::from(Null)
                }
            };
            statement.raw_bind_parameter(position + 1, bound)?;
        }
        Ok(statement)
    }

    /// The statement for PostgreSQL's own driver (reads). A null is bound as text.
    pub fn postgres(self) -> PgQuery {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql));
        for parameter in self.parameters {
            query = match parameter {
                Parameter::Integer(Some(number)) => query.bind(number),
                Parameter::Text(Some(text)) => query.bind(text),
                Parameter::Boolean(Some(flag)) => query.bind(flag),
                Parameter::Integer(None) | Parameter::Boolean(None) | Parameter::Text(None) => {
                    query.bind(None::<String>)
                }
            };
        }
        query
    }

    /// The statement for sqlx's `Any` driver, every null bound with its own type (what
    /// [`super::sql::bind`] returns).
    pub fn any(self) -> AnyQuery {
        let mut query = sqlx::query(sqlx::AssertSqlSafe(self.sql));
        for parameter in self.parameters {
            query = match parameter {
                Parameter::Integer(number) => query.bind(number),
                Parameter::Text(text) => query.bind(text),
                Parameter::Boolean(flag) => query.bind(flag),
            };
        }
        query
    }
}
