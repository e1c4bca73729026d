//! Statement construction, shared by both backends: sea-query builds every statement once and the
//! dialect only chooses how it is rendered. [`bind`] is the one place built SQL becomes a query.

use sea_query::{
    Alias, Asterisk, Condition, Expr, ExprTrait, Func, InsertStatement, IntoCondition,
    NullOrdering, OnConflict, Order, PostgresQueryBuilder, Query, QueryStatementBuilder,
    SqliteQueryBuilder, Value as SqlValue, Values,
};
use sqlx::{Any, any::AnyArguments, query::Query as SqlxQuery};

pub mod analytics;
mod filter;
mod keyset;
pub mod rollup;

use keyset::keyset_after;
pub use keyset::{SortKeys, sort_keys};

use crate::model::{Entity, EntitySchema, Value};
use crate::odata::{Column, Predicate, Scalar, SortDirection};

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

fn insert_statement(tenant: &str, schema: &EntitySchema, rows: &[NewRow<'_>]) -> InsertStatement {
    let has_parent = rows
        .first()
        .is_some_and(|row| row.parent_event_id.is_some());
    let mut columns = vec![Alias::new("tenant_id")];
    if has_parent {
        columns.push(Alias::new("event_id"));
    }
    columns.extend(entity_columns(schema));
    let mut statement = Query::insert();
    statement.into_table(table(schema)).columns(columns);
    for row in rows {
        let mut values: Vec<Expr> = vec![tenant.into()];
        if let Some(event_id) = row.parent_event_id {
            values.push(event_id.into());
        }
        values.extend([Expr::from(row.entity.id.as_str()), row.etag.into()]);
        values.extend(
            row.entity
                .values
                .iter()
                .map(|value| Expr::val(sql_value(value))),
        );
        statement.values_panic(values);
    }
    statement
}

/// The columns an entity is read from and written to: `id`, `etag`, then one per property in
/// schema order. The typed columns are the only copy of an entity; its JSON is rendered from them.
pub fn entity_columns(schema: &EntitySchema) -> Vec<Alias> {
    entity_column_names(schema).map(Alias::new).collect()
}

/// The names of the [`entity_columns`].
pub fn entity_column_names(schema: &EntitySchema) -> impl Iterator<Item = &'static str> {
    ["id", "etag"]
        .into_iter()
        .chain(schema.properties.iter().map(|property| property.column))
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
    /// Renders any statement in this dialect: the one place the dialect picks a builder.
    fn render(self, statement: &impl QueryStatementBuilder) -> (String, Values) {
        match self {
            Dialect::Sqlite => statement.build_any(&SqliteQueryBuilder),
            Dialect::Postgres => statement.build_any(&PostgresQueryBuilder),
        }
    }

    /// `INSERT` of new entities of one schema (all with a parent event, or none), each with its
    /// typed columns and ETag.
    pub fn insert(
        self,
        tenant: &str,
        schema: &EntitySchema,
        rows: &[NewRow<'_>],
    ) -> (String, Values) {
        self.render(&insert_statement(tenant, schema, rows))
    }

    /// [`Dialect::insert`] that replaces every column but `seq` of a row whose key exists (an
    /// import upserting by id keeps the row's place in insertion order).
    pub fn upsert(
        self,
        tenant: &str,
        schema: &EntitySchema,
        rows: &[NewRow<'_>],
    ) -> (String, Values) {
        let has_parent = rows
            .first()
            .is_some_and(|row| row.parent_event_id.is_some());
        let mut key = vec![Alias::new("tenant_id")];
        if has_parent {
            key.push(Alias::new("event_id"));
        }
        key.push(Alias::new("id"));
        let mut statement = insert_statement(tenant, schema, rows);
        statement.on_conflict(
            OnConflict::columns(key)
                .update_columns(entity_columns(schema).into_iter().skip(1))
                .to_owned(),
        );
        self.render(&statement)
    }

    /// `DELETE` of the policy status details of several events (an import replaces them).
    pub fn delete_details_of_events(self, tenant: &str, event_ids: &[&str]) -> (String, Values) {
        let statement = Query::delete()
            .from_table(table(&crate::model::POLICY_STATUS_DETAIL))
            .cond_where(
                Condition::all()
                    .add(col("tenant_id").eq(tenant))
                    .add(col("event_id").is_in(event_ids.iter().copied())),
            )
            .to_owned();
        self.render(&statement)
    }

    /// `DELETE` of everything of one tenant, or of every tenant, from one table.
    pub fn delete_tenant(self, schema: &EntitySchema, tenant: Option<&str>) -> (String, Values) {
        let mut statement = Query::delete();
        statement.from_table(table(schema));
        if let Some(tenant) = tenant {
            statement.and_where(col("tenant_id").eq(tenant));
        }
        self.render(&statement)
    }

    /// `UPDATE` of an entity's ETag and the typed columns a PATCH sets (`changes`: schema
    /// position and new value), only if its ETag is still `expected_etag` when one is given.
    /// Untouched columns stay out of the statement, so indexes on them are not rewritten. Returns
    /// the [`entity_columns`] as updated (no row: nothing matched).
    pub fn update(
        self,
        tenant: &str,
        target: &Target,
        changes: &[(usize, Value)],
        expected_etag: Option<&str>,
        new_etag: &str,
    ) -> (String, Values) {
        let schema = target.schema();
        let mut statement = Query::update();
        statement
            .table(table(schema))
            .value(Alias::new("etag"), new_etag);
        for (position, value) in changes {
            let property = &schema.properties[*position];
            statement.value(Alias::new(property.column), Expr::val(sql_value(value)));
        }
        let mut condition = target_condition(tenant, target);
        if let Some(expected) = expected_etag {
            condition = condition.add(col("etag").eq(expected));
        }
        statement
            .cond_where(condition)
            .returning(Query::returning().columns(entity_columns(schema)));
        self.render(&statement)
    }

    /// `DELETE` of one entity, only if its ETag is still `expected_etag`.
    pub fn delete(self, tenant: &str, target: &Target, expected_etag: &str) -> (String, Values) {
        let mut statement = Query::delete();
        statement
            .from_table(table(target.schema()))
            .cond_where(target_condition(tenant, target).add(col("etag").eq(expected_etag)));
        self.render(&statement)
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
        self.render(&statement)
    }

    /// The [`entity_columns`] of one entity.
    pub fn select_one(self, tenant: &str, target: &Target) -> (String, Values) {
        let statement = Query::select()
            .columns(entity_columns(target.schema()))
            .from(table(target.schema()))
            .cond_where(target_condition(tenant, target))
            .to_owned();
        self.render(&statement)
    }

    /// A page of a collection: filtered, ordered (insertion order when `order` is empty; ties
    /// broken by `id`), strictly after `cursor`. Selects `seq`, the [`entity_columns`] and then the
    /// sort columns, whose values make the next cursor.
    pub fn select_page(self, tenant: &str, listing: &Listing) -> (String, Values) {
        self.page_statement(tenant, listing, entity_columns(listing.collection.schema()))
    }

    /// [`Dialect::select_page`] reading only `seq`, `id` and the sort columns: what a page whose
    /// entities are cached needs, often from an index alone.
    pub fn select_page_keys(self, tenant: &str, listing: &Listing) -> (String, Values) {
        self.page_statement(tenant, listing, vec![Alias::new("id")])
    }

    /// The [`entity_columns`] of the events with these ids (any order).
    pub fn select_events(self, tenant: &str, ids: &[&str]) -> (String, Values) {
        let schema = &crate::model::AUTOPILOT_EVENT;
        let statement = Query::select()
            .columns(entity_columns(schema))
            .from(table(schema))
            .cond_where(
                Condition::all()
                    .add(col("tenant_id").eq(tenant))
                    .add(col("id").is_in(ids.iter().copied())),
            )
            .to_owned();
        self.render(&statement)
    }

    fn page_statement(
        self,
        tenant: &str,
        listing: &Listing,
        columns: Vec<Alias>,
    ) -> (String, Values) {
        let collection = listing.collection;
        let mut condition = collection.scope(tenant);
        if let Some(filter) = listing.filter {
            condition = condition.add(self.lower(filter));
        }
        let keys = sort_keys(listing.order);
        if let Some(cursor) = listing.after {
            condition = condition.add(keyset_after(&keys, cursor));
        }
        let mut statement = Query::select();
        statement
            .column(Alias::new("seq"))
            .columns(columns)
            .from(table(collection.schema()))
            .cond_where(condition);
        match &keys {
            SortKeys::Insertion => {
                statement.order_by(Alias::new("seq"), Order::Asc);
            }
            SortKeys::Columns(keys) => {
                for (column, direction) in keys {
                    statement.column(Alias::new(column.column));
                    let order = match direction {
                        SortDirection::Ascending => Order::Asc,
                        SortDirection::Descending => Order::Desc,
                    };
                    if column.nullable {
                        // OData orders null first ascending; both dialects are told so.
                        let nulls = match direction {
                            SortDirection::Ascending => NullOrdering::First,
                            SortDirection::Descending => NullOrdering::Last,
                        };
                        statement.order_by_with_nulls(Alias::new(column.column), order, nulls);
                    } else {
                        statement.order_by(Alias::new(column.column), order);
                    }
                }
            }
        }
        // LIMIT and OFFSET as literals (integers formatted here, never request text): bound,
        // SQLite re-plans the statement at every execution to use their values.
        let (mut sql, values) = self.render(&statement);
        sql.push_str(&format!(" LIMIT {} OFFSET {}", listing.limit, listing.skip));
        (sql, values)
    }

    /// `SELECT COUNT(*)` of a collection, optionally filtered.
    pub fn count(
        self,
        tenant: &str,
        collection: &Collection,
        filter: Option<&Predicate>,
    ) -> (String, Values) {
        if let Collection::Events = collection
            && let Some(statement) = self.count_from_rollup(tenant, filter)
        {
            return statement;
        }
        let mut condition = collection.scope(tenant);
        if let Some(filter) = filter {
            condition = condition.add(self.lower(filter));
        }
        let statement = Query::select()
            .expr(Func::count(Expr::col(Asterisk)))
            .from(table(collection.schema()))
            .cond_where(condition.into_condition())
            .to_owned();
        self.render(&statement)
    }

    /// The policy status details of several events, grouped by event, each group in insertion
    /// order (for `$expand`).
    pub fn details_of(self, tenant: &str, event_ids: &[String]) -> (String, Values) {
        let statement = Query::select()
            .column(Alias::new("event_id"))
            .columns(entity_columns(&crate::model::POLICY_STATUS_DETAIL))
            .from(table(&crate::model::POLICY_STATUS_DETAIL))
            .cond_where(
                Condition::all()
                    .add(col("tenant_id").eq(tenant))
                    .add(col("event_id").is_in(event_ids.iter().map(String::as_str))),
            )
            .order_by(Alias::new("event_id"), Order::Asc)
            .order_by(Alias::new("seq"), Order::Asc)
            .to_owned();
        self.render(&statement)
    }

    /// `INSERT` of an app registration.
    pub fn insert_app(self, app: &AppRegistration) -> (String, Values) {
        let statement = Query::insert()
            .into_table(Alias::new("graphpilot_apps"))
            .columns(APP_COLUMNS.map(Alias::new))
            .values_panic([
                app.client_id.as_str().into(),
                app.tenant.as_str().into(),
                app.name.as_str().into(),
                app.secret_sha256.as_str().into(),
                app.permissions.join(" ").into(),
                app.created_at.into(),
            ])
            .to_owned();
        self.render(&statement)
    }

    /// App registrations, all or those of one client id, oldest first.
    pub fn select_apps(self, client_id: Option<&str>) -> (String, Values) {
        let mut statement = Query::select();
        statement
            .columns(APP_COLUMNS.map(Alias::new))
            .from(Alias::new("graphpilot_apps"))
            .order_by(Alias::new("created_at"), Order::Asc)
            .order_by(Alias::new("client_id"), Order::Asc);
        if let Some(client_id) = client_id {
            statement.and_where(col("client_id").eq(client_id));
        }
        self.render(&statement)
    }

    pub fn delete_app(self, client_id: &str) -> (String, Values) {
        let statement = Query::delete()
            .from_table(Alias::new("graphpilot_apps"))
            .and_where(col("client_id").eq(client_id))
            .to_owned();
        self.render(&statement)
    }
}

/// One entity to insert.
pub struct NewRow<'a> {
    pub parent_event_id: Option<&'a str>,
    pub entity: &'a Entity,
    pub etag: &'a str,
}

/// An app registration of the Entra-shaped token endpoint (client id, tenant, secret hash).
#[derive(Clone, Debug, PartialEq)]
pub struct AppRegistration {
    pub client_id: String,
    pub tenant: String,
    pub name: String,
    pub secret_sha256: String,
    pub permissions: Vec<String>,
    pub created_at: i64,
}

const APP_COLUMNS: [&str; 6] = [
    "client_id",
    "tenant_id",
    "name",
    "secret_sha256",
    "permissions",
    "created_at",
];

/// What a page is asked for.
pub struct Listing<'a> {
    pub collection: &'a Collection,
    pub filter: Option<&'a Predicate>,
    /// Empty: insertion order.
    pub order: &'a [(Column, SortDirection)],
    /// The values a previous page's last row had in the sort columns (see [`PageCursor`]).
    pub after: Option<&'a [Scalar]>,
    pub skip: u64,
    pub limit: u64,
}

/// Turns built SQL and its values into an executable query. Every value is a bound parameter; the
/// SQL text only ever comes from sea-query, never from request input.
pub fn bind(sql: String, values: Values) -> SqlxQuery<'static, Any, AnyArguments> {
    super::bound::Bound::from((sql, values)).any()
}
