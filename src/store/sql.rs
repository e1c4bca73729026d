//! Statement construction, shared by both backends: sea-query builds every statement once and the
//! dialect only chooses how it is rendered. [`bind`] is the one place built SQL becomes a query.

use sea_query::{
    Alias, Asterisk, Condition, Expr, ExprTrait, Func, InsertStatement, IntoCondition,
    NullOrdering, OnConflict, Order, PostgresQueryBuilder, Query, QueryStatementBuilder,
    SqliteQueryBuilder, Value as SqlValue, Values,
};
use sqlx::{Any, AssertSqlSafe, any::AnyArguments, query::Query as SqlxQuery};

use crate::model::{Entity, EntitySchema, Value};
use crate::odata::{
    Column, CompareOp, ID, Operand, Predicate, Scalar, SortDirection, StringFunction,
};

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
    ["id", "etag"]
        .into_iter()
        .chain(schema.properties.iter().map(|property| property.column))
        .map(Alias::new)
        .collect()
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

    /// `UPDATE` of an entity's ETag and the typed columns at `changed` positions, only if
    /// its ETag is still `expected_etag`. Untouched columns stay out of the statement, so indexes
    /// on them are not rewritten.
    pub fn update(
        self,
        tenant: &str,
        target: &Target,
        entity: &Entity,
        changed: &[usize],
        expected_etag: &str,
        new_etag: &str,
    ) -> (String, Values) {
        let schema = target.schema();
        let mut statement = Query::update();
        statement
            .table(table(schema))
            .value(Alias::new("etag"), new_etag);
        for &position in changed {
            let property = &schema.properties[position];
            statement.value(
                Alias::new(property.column),
                Expr::val(sql_value(&entity.values[position])),
            );
        }
        statement.cond_where(target_condition(tenant, target).add(col("etag").eq(expected_etag)));
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
            .columns(entity_columns(collection.schema()))
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
        statement.limit(listing.limit).offset(listing.skip);
        self.render(&statement)
    }

    /// `SELECT COUNT(*)` of a collection, optionally filtered.
    pub fn count(
        self,
        tenant: &str,
        collection: &Collection,
        filter: Option<&Predicate>,
    ) -> (String, Values) {
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

    /// A bound predicate as SQL that is never NULL: OData's two-valued logic, so `not` means what
    /// it says even where columns are null.
    pub fn lower(self, predicate: &Predicate) -> Condition {
        match predicate {
            Predicate::And(terms) => terms
                .iter()
                .fold(Condition::all(), |all, term| all.add(self.lower(term))),
            Predicate::Or(terms) => terms
                .iter()
                .fold(Condition::any(), |any, term| any.add(self.lower(term))),
            Predicate::Not(inner) => self.lower(inner).not(),
            Predicate::Constant(value) => constant(*value).into_condition(),
            Predicate::IsTrue(column) => guarded(*column, col(column.column).eq(true)),
            Predicate::Has(column, value) => col(column.column)
                .bit_and(*value)
                .eq(*value)
                .into_condition(),
            Predicate::In(column, values) => {
                let present: Vec<Scalar> = values
                    .iter()
                    .filter(|value| **value != Scalar::Null)
                    .cloned()
                    .collect();
                let mut any = Condition::any();
                if !present.is_empty() {
                    let listed = present.iter().map(scalar).collect::<Vec<Expr>>();
                    let test = guarded(*column, col(column.column).is_in(listed));
                    any = any.add(self.with_index_bound(test, *column, &present));
                }
                if values.contains(&Scalar::Null) {
                    any = any.add(col(column.column).is_null());
                }
                if any.is_empty() {
                    return constant(false).into_condition();
                }
                any
            }
            Predicate::Text(function, column, needle) => {
                if needle.is_empty() {
                    return guarded(*column, constant(true));
                }
                let subject = col(column.column);
                let needle_value = || Expr::val(needle.as_str());
                let test = match (self, function) {
                    (Dialect::Sqlite, StringFunction::StartsWith) => Func::cust("substr")
                        .arg(subject)
                        .arg(1)
                        .arg(Func::cust("length").arg(needle_value()))
                        .eq(needle_value()),
                    (Dialect::Sqlite, StringFunction::EndsWith) => Func::cust("substr")
                        .arg(subject)
                        .arg(Expr::val(0).sub(Func::cust("length").arg(needle_value())))
                        .eq(needle_value()),
                    (Dialect::Sqlite, StringFunction::Contains) => {
                        Func::cust("instr").arg(subject).arg(needle_value()).gt(0)
                    }
                    (Dialect::Postgres, StringFunction::StartsWith) => Func::cust("left")
                        .arg(subject)
                        .arg(Func::cust("char_length").arg(needle_value()))
                        .eq(needle_value()),
                    (Dialect::Postgres, StringFunction::EndsWith) => Func::cust("right")
                        .arg(subject)
                        .arg(Func::cust("char_length").arg(needle_value()))
                        .eq(needle_value()),
                    (Dialect::Postgres, StringFunction::Contains) => {
                        Func::cust("strpos").arg(subject).arg(needle_value()).gt(0)
                    }
                };
                guarded(*column, test)
            }
            Predicate::Compare(op, left, right) => {
                let compared = compare(*op, left, right);
                match (op, left, right) {
                    (CompareOp::Eq, Operand::Column(column), Operand::Value(value))
                    | (CompareOp::Eq, Operand::Value(value), Operand::Column(column)) => {
                        self.with_index_bound(compared, *column, std::slice::from_ref(value))
                    }
                    _ => compared,
                }
            }
        }
    }

    /// On PostgreSQL, text columns are indexed only where a value has at most
    /// [`INDEXED_TEXT_BYTES`] (migrations/postgres/0007): an equality with short values repeats
    /// that bound, as SQL text, so the planner can prove the partial index covers it.
    fn with_index_bound(self, test: Condition, column: Column, values: &[Scalar]) -> Condition {
        let short = |value: &Scalar| match value {
            Scalar::Text(text) => text.len() <= INDEXED_TEXT_BYTES,
            _ => false,
        };
        if self != Dialect::Postgres
            || !BOUNDED_TEXT_INDEXES.contains(&column.column)
            || values.is_empty()
            || !values.iter().all(short)
        {
            return test;
        }
        Condition::all().add(test).add(Expr::cust(format!(
            "octet_length(\"{}\") <= {INDEXED_TEXT_BYTES}",
            column.column
        )))
    }
}

/// The longest text value (bytes) PostgreSQL's indexes on [`BOUNDED_TEXT_INDEXES`] hold.
const INDEXED_TEXT_BYTES: usize = 1024;
/// Columns whose PostgreSQL index holds only values up to [`INDEXED_TEXT_BYTES`].
const BOUNDED_TEXT_INDEXES: [&str; 3] =
    ["device_serial_number", "user_principal_name", "device_id"];

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

/// The effective sort: insertion order, or the given columns completed by `id` as the tiebreaker
/// (in the direction of the last key, so one index serves the whole order).
pub enum SortKeys {
    Insertion,
    Columns(Vec<(Column, SortDirection)>),
}

pub fn sort_keys(order: &[(Column, SortDirection)]) -> SortKeys {
    if order.is_empty() {
        return SortKeys::Insertion;
    }
    let mut keys = Vec::new();
    for (column, direction) in order {
        keys.push((*column, *direction));
        if column.column == ID.column {
            return SortKeys::Columns(keys);
        }
    }
    let last = order
        .last()
        .map(|(_, direction)| *direction)
        .unwrap_or(SortDirection::Ascending);
    keys.push((ID, last));
    SortKeys::Columns(keys)
}

/// Rows strictly after `cursor` in the sort order (nulls first ascending, last descending).
fn keyset_after(keys: &SortKeys, cursor: &[Scalar]) -> Condition {
    let keys = match keys {
        SortKeys::Insertion => {
            let seq = match cursor.first() {
                Some(Scalar::Integer(seq)) => *seq,
                _ => i64::MAX,
            };
            return col("seq").gt(seq).into_condition();
        }
        SortKeys::Columns(keys) => keys,
    };
    // One direction and no nulls: a row-value comparison, which both databases turn into a single
    // index seek (the OR expansion below makes SQLite scan from the start of the range).
    let uniform = keys
        .iter()
        .all(|(column, direction)| !column.nullable && *direction == keys[0].1);
    if uniform && !cursor.contains(&Scalar::Null) {
        let columns = Expr::tuple(keys.iter().map(|(column, _)| col(column.column)));
        let values = Expr::tuple(cursor.iter().map(scalar));
        return match keys[0].1 {
            SortDirection::Ascending => columns.gt(values),
            SortDirection::Descending => columns.lt(values),
        }
        .into_condition();
    }
    let mut any = Condition::any();
    for (index, ((column, direction), value)) in keys.iter().zip(cursor).enumerate() {
        let mut branch = Condition::all();
        for ((earlier, _), earlier_value) in keys[..index].iter().zip(cursor) {
            branch = branch.add(match earlier_value {
                Scalar::Null => col(earlier.column).is_null(),
                value => col(earlier.column).eq(scalar(value)),
            });
        }
        let after = match (direction, value) {
            (SortDirection::Ascending, Scalar::Null) => col(column.column).is_not_null(),
            (SortDirection::Ascending, value) => col(column.column).gt(scalar(value)),
            (SortDirection::Descending, Scalar::Null) => constant(false),
            (SortDirection::Descending, value) if column.nullable => col(column.column)
                .lt(scalar(value))
                .or(col(column.column).is_null()),
            (SortDirection::Descending, value) => col(column.column).lt(scalar(value)),
        };
        any = any.add(branch.add(after));
    }
    // A redundant bound on the first key lets the planner range-scan its index.
    let mut condition = Condition::all();
    if let (Some((first, direction)), Some(value)) = (keys.first(), cursor.first())
        && !first.nullable
        && *value != Scalar::Null
    {
        condition = condition.add(match direction {
            SortDirection::Ascending => col(first.column).gte(scalar(value)),
            SortDirection::Descending => col(first.column).lte(scalar(value)),
        });
    }
    condition.add(any)
}

fn scalar(value: &Scalar) -> Expr {
    match value {
        Scalar::Null => Expr::val(SqlValue::String(None)),
        Scalar::Integer(number) => Expr::val(*number),
        Scalar::Text(text) => Expr::val(text.as_str()),
        Scalar::Boolean(flag) => Expr::val(*flag),
    }
}

fn constant(value: bool) -> Expr {
    Expr::cust(if value { "1 = 1" } else { "1 = 0" })
}

/// `test`, made false (not NULL) where a nullable column is null.
fn guarded(column: Column, test: Expr) -> Condition {
    if column.nullable {
        Condition::all()
            .add(col(column.column).is_not_null())
            .add(test)
    } else {
        test.into_condition()
    }
}

fn operator(op: CompareOp, left: Expr, right: Expr) -> Expr {
    match op {
        CompareOp::Eq => left.eq(right),
        CompareOp::Ne => left.ne(right),
        CompareOp::Gt => left.gt(right),
        CompareOp::Ge => left.gte(right),
        CompareOp::Lt => left.lt(right),
        CompareOp::Le => left.lte(right),
    }
}

/// A comparison with OData's null rules: `eq null` matches nulls, `ne null` non-nulls; a null
/// operand makes `eq` false, `ne` true and the ordering comparisons false.
fn compare(op: CompareOp, left: &Operand, right: &Operand) -> Condition {
    let column_of = |operand: &Operand| match operand {
        Operand::Column(column) => Some(*column),
        Operand::Value(_) => None,
    };
    let expression = |operand: &Operand| match operand {
        Operand::Column(column) => col(column.column),
        Operand::Value(value) => scalar(value),
    };
    let is_null_literal = |operand: &Operand| matches!(operand, Operand::Value(Scalar::Null));
    if is_null_literal(left) || is_null_literal(right) {
        let other = if is_null_literal(left) { right } else { left };
        return match (op, column_of(other)) {
            (CompareOp::Eq, Some(column)) => col(column.column).is_null().into_condition(),
            (CompareOp::Ne, Some(column)) => col(column.column).is_not_null().into_condition(),
            _ => constant(false).into_condition(),
        };
    }
    let nullable: Vec<Column> = [left, right]
        .into_iter()
        .filter_map(column_of)
        .filter(|column| column.nullable)
        .collect();
    let test = operator(op, expression(left), expression(right));
    let both_present = nullable.iter().fold(Condition::all(), |all, column| {
        all.add(col(column.column).is_not_null())
    });
    let equal = |test: Expr| {
        let mut equal = Condition::any().add(both_present.clone().add(test));
        if nullable.len() == 2 {
            equal = equal.add(
                Condition::all()
                    .add(col(nullable[0].column).is_null())
                    .add(col(nullable[1].column).is_null()),
            );
        }
        equal
    };
    match op {
        CompareOp::Eq => equal(test),
        CompareOp::Ne => equal(operator(CompareOp::Eq, expression(left), expression(right))).not(),
        _ => both_present.add(test),
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
