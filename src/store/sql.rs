//! Statement construction, shared by both backends: sea-query builds every statement once and the
//! dialect only chooses how it is rendered. [`bind`] is the one place built SQL becomes a query.

use sea_query::{
    Alias, Asterisk, Condition, Expr, ExprTrait, Func, IntoCondition, Order, PostgresQueryBuilder,
    Query, SelectStatement, SqliteQueryBuilder, Value as SqlValue, Values,
};
use sqlx::{Any, AssertSqlSafe, any::AnyArguments, query::Query as SqlxQuery};

use crate::model::{Entity, EntitySchema, Value};

/// Which SQL dialect statements are rendered in.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dialect {
    Sqlite,
    Postgres,
}

/// The entity a statement addresses, always inside one tenant.
#[derive(Clone, Debug)]
pub enum Target {
    Event { id: String },
    Detail { event_id: String, id: String },
}

impl Target {
    pub fn schema(&self) -> &'static EntitySchema {
        match self {
            Target::Event { .. } => &crate::model::AUTOPILOT_EVENT,
            Target::Detail { .. } => &crate::model::POLICY_STATUS_DETAIL,
        }
    }

    pub fn id(&self) -> &str {
        match self {
            Target::Event { id } | Target::Detail { id, .. } => id,
        }
    }
}

/// A collection inside one tenant: all events, or the details of one event.
#[derive(Clone, Debug)]
pub enum Collection {
    Events,
    Details { event_id: String },
}

impl Collection {
    pub fn schema(&self) -> &'static EntitySchema {
        match self {
            Collection::Events => &crate::model::AUTOPILOT_EVENT,
            Collection::Details { .. } => &crate::model::POLICY_STATUS_DETAIL,
        }
    }

    /// The condition that confines a statement to this collection of this tenant.
    pub fn scope(&self, tenant: &str) -> Condition {
        let condition = Condition::all().add(col("tenant_id").eq(tenant));
        match self {
            Collection::Events => condition,
            Collection::Details { event_id } => {
                condition.add(col("event_id").eq(event_id.as_str()))
            }
        }
    }
}

pub fn col(name: &str) -> Expr {
    Expr::col(Alias::new(name))
}

fn table(schema: &EntitySchema) -> Alias {
    Alias::new(schema.table)
}

fn target_condition(tenant: &str, target: &Target) -> Condition {
    let condition = Condition::all()
        .add(col("tenant_id").eq(tenant))
        .add(col("id").eq(target.id()));
    match target {
        Target::Event { .. } => condition,
        Target::Detail { event_id, .. } => condition.add(col("event_id").eq(event_id.as_str())),
    }
}

fn sql_value(value: &Value) -> SqlValue {
    match value {
        Value::Null => SqlValue::String(None),
        Value::String(text) => SqlValue::String(Some(text.clone())),
        Value::DateTimeOffset(instant) => SqlValue::BigInt(Some(instant.ticks())),
        Value::Duration(span) => SqlValue::BigInt(Some(span.ticks())),
        Value::Int32(number) => SqlValue::BigInt(Some(i64::from(*number))),
        Value::Boolean(flag) => SqlValue::Bool(Some(*flag)),
        Value::Enum(underlying) => SqlValue::BigInt(Some(*underlying)),
    }
}

impl Dialect {
    fn render_select(self, statement: &SelectStatement) -> (String, Values) {
        match self {
            Dialect::Sqlite => statement.build(SqliteQueryBuilder),
            Dialect::Postgres => statement.build(PostgresQueryBuilder),
        }
    }

    /// `INSERT` of a new entity with all its typed columns and canonical JSON.
    pub fn insert(
        self,
        tenant: &str,
        parent_event_id: Option<&str>,
        schema: &EntitySchema,
        entity: &Entity,
        etag: &str,
    ) -> (String, Values) {
        let mut columns = vec![Alias::new("tenant_id")];
        let mut values: Vec<Expr> = vec![tenant.into()];
        if let Some(event_id) = parent_event_id {
            columns.push(Alias::new("event_id"));
            values.push(event_id.into());
        }
        columns.extend(["id", "etag", "body"].map(Alias::new));
        values.extend([
            Expr::from(entity.id.as_str()),
            etag.into(),
            entity.to_json(schema).into(),
        ]);
        for (property, value) in schema.properties.iter().zip(&entity.values) {
            columns.push(Alias::new(property.column));
            values.push(Expr::val(sql_value(value)));
        }
        let mut statement = Query::insert();
        statement
            .into_table(table(schema))
            .columns(columns)
            .values_panic(values);
        match self {
            Dialect::Sqlite => statement.build(SqliteQueryBuilder),
            Dialect::Postgres => statement.build(PostgresQueryBuilder),
        }
    }

    /// `UPDATE` of every column of an entity, only if its ETag is still `expected_etag`.
    pub fn update(
        self,
        tenant: &str,
        target: &Target,
        entity: &Entity,
        expected_etag: &str,
        new_etag: &str,
    ) -> (String, Values) {
        let schema = target.schema();
        let mut statement = Query::update();
        statement
            .table(table(schema))
            .value(Alias::new("etag"), new_etag)
            .value(Alias::new("body"), entity.to_json(schema));
        for (property, value) in schema.properties.iter().zip(&entity.values) {
            statement.value(Alias::new(property.column), Expr::val(sql_value(value)));
        }
        statement.cond_where(target_condition(tenant, target).add(col("etag").eq(expected_etag)));
        match self {
            Dialect::Sqlite => statement.build(SqliteQueryBuilder),
            Dialect::Postgres => statement.build(PostgresQueryBuilder),
        }
    }

    /// `DELETE` of one entity, or of every detail of an event when `target` is that event.
    pub fn delete(self, tenant: &str, target: &Target) -> (String, Values) {
        let mut statement = Query::delete();
        statement
            .from_table(table(target.schema()))
            .cond_where(target_condition(tenant, target));
        self.render_delete(statement)
    }

    pub fn delete_details_of(self, tenant: &str, event_id: &str) -> (String, Values) {
        let mut statement = Query::delete();
        statement
            .from_table(table(&crate::model::POLICY_STATUS_DETAIL))
            .cond_where(
                Collection::Details {
                    event_id: event_id.to_string(),
                }
                .scope(tenant),
            );
        self.render_delete(statement)
    }

    fn render_delete(self, statement: sea_query::DeleteStatement) -> (String, Values) {
        match self {
            Dialect::Sqlite => statement.build(SqliteQueryBuilder),
            Dialect::Postgres => statement.build(PostgresQueryBuilder),
        }
    }

    /// `SELECT etag, body` of one entity.
    pub fn select_one(self, tenant: &str, target: &Target) -> (String, Values) {
        let statement = Query::select()
            .columns(["etag", "body"].map(Alias::new))
            .from(table(target.schema()))
            .cond_where(target_condition(tenant, target))
            .to_owned();
        self.render_select(&statement)
    }

    /// A page of a collection in insertion order, after the cursor `after_seq`.
    pub fn select_page(
        self,
        tenant: &str,
        collection: &Collection,
        filter: Option<Condition>,
        after_seq: Option<i64>,
        skip: u64,
        limit: u64,
    ) -> (String, Values) {
        let mut condition = collection.scope(tenant);
        if let Some(filter) = filter {
            condition = condition.add(filter);
        }
        if let Some(seq) = after_seq {
            condition = condition.add(col("seq").gt(seq));
        }
        let statement = Query::select()
            .columns(["seq", "etag", "body"].map(Alias::new))
            .from(table(collection.schema()))
            .cond_where(condition)
            .order_by(Alias::new("seq"), Order::Asc)
            .limit(limit)
            .offset(skip)
            .to_owned();
        self.render_select(&statement)
    }

    /// `SELECT COUNT(*)` of a collection, optionally filtered.
    pub fn count(
        self,
        tenant: &str,
        collection: &Collection,
        filter: Option<Condition>,
    ) -> (String, Values) {
        let mut condition = collection.scope(tenant);
        if let Some(filter) = filter {
            condition = condition.add(filter);
        }
        let statement = Query::select()
            .expr(Func::count(Expr::col(Asterisk)))
            .from(table(collection.schema()))
            .cond_where(condition.into_condition())
            .to_owned();
        self.render_select(&statement)
    }
}

/// Turns built SQL and its values into an executable query. Every value is a bound parameter; the
/// SQL text only ever comes from sea-query, never from request input.
pub fn bind(sql: String, values: Values) -> SqlxQuery<'static, Any, AnyArguments> {
    let mut query = sqlx::query(AssertSqlSafe(sql));
    for value in values {
        query = match value {
            SqlValue::Bool(flag) => query.bind(flag),
            SqlValue::BigInt(number) => query.bind(number),
            SqlValue::Int(number) => query.bind(number.map(i64::from)),
            // LIMIT and OFFSET; the options parser keeps them within i64.
            SqlValue::BigUnsigned(number) => {
                query.bind(number.map(|n| i64::try_from(n).unwrap_or(i64::MAX)))
            }
            SqlValue::String(text) => query.bind(text),
            other => {
                unreachable!("statements only bind booleans, integers and text, not {other:?}")
            }
        };
    }
    query
}
