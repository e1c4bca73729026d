//! A bound `$filter` predicate lowered to SQL with OData's null semantics (never NULL, so `not`
//! means what it says), per dialect where string functions and bounded indexes differ.

use sea_query::{Condition, Expr, ExprTrait, Func, IntoCondition, Value as SqlValue};

use super::{Dialect, col};
use crate::model::EdmType;
use crate::odata::{Column, CompareOp, Operand, Predicate, Scalar, StringFunction};

impl Dialect {
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
                    let listed = present
                        .iter()
                        .map(|value| compared_value(Some(*column), value))
                        .collect::<Vec<Expr>>();
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
pub(super) const INDEXED_TEXT_BYTES: usize = 1024;

/// Columns whose PostgreSQL index holds only values up to [`INDEXED_TEXT_BYTES`].
const BOUNDED_TEXT_INDEXES: [&str; 3] =
    ["device_serial_number", "user_principal_name", "device_id"];

/// A cursor or literal value as a bound SQL value.
pub(super) fn scalar(value: &Scalar) -> Expr {
    match value {
        Scalar::Null => Expr::val(SqlValue::String(None)),
        Scalar::Integer(number) => Expr::val(*number),
        Scalar::Text(text) => Expr::val(text.as_str()),
        Scalar::Boolean(flag) => Expr::val(*flag),
    }
}

/// A literal compared with a column: a bound value, except a member of an enumeration, which is
/// written into the SQL as the integer it is. Partial indexes are defined by enum members
/// (`WHERE deployment_state = 3`); with the member bound, SQLite must re-plan the statement at
/// every execution to see whether such an index applies (and PostgreSQL's generic plans never
/// use one). The text stays safe (an `i64` formatted here, never request text) and the
/// statements few (one per member and shape).
fn compared_value(column: Option<Column>, value: &Scalar) -> Expr {
    match (column.map(|column| column.edm), value) {
        (Some(EdmType::Enum(_)), Scalar::Integer(member)) => Expr::cust(member.to_string()),
        _ => scalar(value),
    }
}

pub(super) fn constant(value: bool) -> Expr {
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
    let compared_column = column_of(left).or(column_of(right));
    let expression = |operand: &Operand| match operand {
        Operand::Column(column) => col(column.column),
        Operand::Value(value) => compared_value(compared_column, value),
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
