//! `/$count` of events answered from `autopilot_event_counts` (SQLite): whole days summed from the
//! triggers' rollup, the days a filter's instants fall in counted from the events themselves.

use sea_query::{Alias, Asterisk, Values};
use sea_query::{Condition, Expr, ExprTrait, Func, Query};

use super::{Dialect, col};
use crate::model::EdmType;
use crate::odata::{Column, CompareOp, Operand, Predicate, Scalar};

/// .NET ticks in a UTC day: the rollup's `day` is `event_date_time / TICKS_PER_DAY`.
pub const TICKS_PER_DAY: i64 = 864_000_000_000;

/// The events' columns the rollup keeps (besides `tenant_id` and the day).
const DIMENSIONS: [&str; 7] = [
    "deployment_state",
    "enrollment_type",
    "device_setup_status",
    "account_setup_status",
    "deployment_profile_display_name",
    "esp_configuration_display_name",
    "os_version",
];

/// Beyond this many days holding a filter's instants, the events are counted directly.
const MAX_EDGE_DAYS: usize = 16;

const DAY: Column = Column {
    name: "day",
    column: "day",
    edm: EdmType::Int32,
    nullable: false,
};

/// A filter rewritten for the rollup's rows: valid on every day but `edges`, the days that hold
/// one of the filter's instants, where `eventDateTime` terms are not constant.
#[derive(Debug, PartialEq)]
pub struct Split {
    pub rows: Predicate,
    pub edges: Vec<i64>,
}

/// `filter` as a predicate on the rollup's rows, or `None` when it reads a column the rollup
/// does not keep (or compares `eventDateTime` other than with a literal).
pub fn split(filter: &Predicate) -> Option<Split> {
    let mut edges = Vec::new();
    let rows = rewrite(filter, &mut edges)?;
    edges.sort_unstable();
    edges.dedup();
    (edges.len() <= MAX_EDGE_DAYS).then_some(Split { rows, edges })
}

fn kept(column: &Column) -> bool {
    DIMENSIONS.contains(&column.column)
}

fn is_time(column: &Column) -> bool {
    column.column == "event_date_time"
}

fn rewrite(predicate: &Predicate, edges: &mut Vec<i64>) -> Option<Predicate> {
    Some(match predicate {
        Predicate::And(terms) => Predicate::And(
            terms
                .iter()
                .map(|term| rewrite(term, edges))
                .collect::<Option<_>>()?,
        ),
        Predicate::Or(terms) => Predicate::Or(
            terms
                .iter()
                .map(|term| rewrite(term, edges))
                .collect::<Option<_>>()?,
        ),
        Predicate::Not(inner) => Predicate::Not(Box::new(rewrite(inner, edges)?)),
        Predicate::Constant(value) => Predicate::Constant(*value),
        Predicate::IsTrue(column) | Predicate::Has(column, _) | Predicate::Text(_, column, _) => {
            kept(column).then(|| predicate.clone())?
        }
        Predicate::In(column, values) if is_time(column) => {
            // Not null, so only a listed instant matches: none does outside the edge days.
            for value in values {
                if let Scalar::Integer(ticks) = value {
                    edges.push(ticks.div_euclid(TICKS_PER_DAY));
                }
            }
            Predicate::Constant(false)
        }
        Predicate::In(column, _) => kept(column).then(|| predicate.clone())?,
        Predicate::Compare(op, left, right) => match (left, right) {
            (Operand::Column(column), Operand::Value(value)) if is_time(column) => {
                time_term(*op, value, edges)?
            }
            (Operand::Value(value), Operand::Column(column)) if is_time(column) => {
                time_term(flipped(*op), value, edges)?
            }
            (Operand::Column(a), Operand::Column(b)) if !(kept(a) && kept(b)) => return None,
            (Operand::Column(column), _) | (_, Operand::Column(column)) if !kept(column) => {
                return None;
            }
            _ => predicate.clone(),
        },
    })
}

/// `value op column` as `column op' value`.
fn flipped(op: CompareOp) -> CompareOp {
    match op {
        CompareOp::Gt => CompareOp::Lt,
        CompareOp::Ge => CompareOp::Le,
        CompareOp::Lt => CompareOp::Gt,
        CompareOp::Le => CompareOp::Ge,
        other => other,
    }
}

/// `eventDateTime op value` on the days other than the edges: a comparison of the day.
fn time_term(op: CompareOp, value: &Scalar, edges: &mut Vec<i64>) -> Option<Predicate> {
    let ticks = match value {
        // eventDateTime is never null: `eq null` and the orderings are false, `ne null` true.
        Scalar::Null => return Some(Predicate::Constant(op == CompareOp::Ne)),
        Scalar::Integer(ticks) => *ticks,
        _ => return None,
    };
    let day = ticks.div_euclid(TICKS_PER_DAY);
    let midnight = ticks.rem_euclid(TICKS_PER_DAY) == 0;
    let on_day = |op| {
        Predicate::Compare(
            op,
            Operand::Column(DAY),
            Operand::Value(Scalar::Integer(day)),
        )
    };
    Some(match op {
        // At midnight every event of that day is on one side: no edge.
        CompareOp::Ge if midnight => on_day(CompareOp::Ge),
        CompareOp::Lt if midnight => on_day(CompareOp::Lt),
        _ => {
            edges.push(day);
            match op {
                CompareOp::Ge | CompareOp::Gt => on_day(CompareOp::Gt),
                CompareOp::Le | CompareOp::Lt => on_day(CompareOp::Lt),
                CompareOp::Eq => Predicate::Constant(false),
                CompareOp::Ne => Predicate::Constant(true),
            }
        }
    })
}

impl Dialect {
    /// `SELECT` of the count of `tenant`'s events matching `filter` through the rollup, when it
    /// can answer it (SQLite only: PostgreSQL's nodes would contend on its rows).
    pub(super) fn count_from_rollup(
        self,
        tenant: &str,
        filter: Option<&Predicate>,
    ) -> Option<(String, Values)> {
        if self != Dialect::Sqlite {
            return None;
        }
        let always = Predicate::Constant(true);
        let Split { rows, edges } = split(filter.unwrap_or(&always))?;
        let mut whole_days = Condition::all()
            .add(col("tenant_id").eq(tenant))
            .add(self.lower(&rows));
        if !edges.is_empty() {
            whole_days = whole_days.add(col("day").is_not_in(edges.iter().copied()));
        }
        let summed = Query::select()
            .expr(Func::coalesce([
                Expr::from(Func::sum(col("n"))),
                Expr::val(0),
            ]))
            .from(Alias::new("autopilot_event_counts"))
            .cond_where(whole_days)
            .to_owned();
        let (mut sql, mut values) = self.render(&summed);
        if !edges.is_empty() {
            let on_edges = edges.iter().fold(Condition::any(), |any, day| {
                any.add(
                    Condition::all()
                        .add(col("event_date_time").gte(day * TICKS_PER_DAY))
                        .add(col("event_date_time").lt((day + 1) * TICKS_PER_DAY)),
                )
            });
            let mut condition = Condition::all()
                .add(col("tenant_id").eq(tenant))
                .add(on_edges);
            if let Some(filter) = filter {
                condition = condition.add(self.lower(filter));
            }
            let counted = Query::select()
                .expr(Func::count(Expr::col(Asterisk)))
                .from(Alias::new("autopilot_events"))
                .cond_where(condition)
                .to_owned();
            let (edge_sql, edge_values) = self.render(&counted);
            sql = format!("SELECT ({sql}) + ({edge_sql})");
            values.0.extend(edge_values.0);
        }
        Some((sql, values))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn column(name: &str) -> Column {
        Column::find(&crate::model::AUTOPILOT_EVENT, name).unwrap()
    }

    fn time(op: CompareOp, ticks: i64) -> Predicate {
        Predicate::Compare(
            op,
            Operand::Column(column("eventDateTime")),
            Operand::Value(Scalar::Integer(ticks)),
        )
    }

    #[test]
    fn a_midnight_bound_needs_no_edge_day_and_any_other_instant_makes_its_day_one() {
        let midnight = 739_000 * TICKS_PER_DAY;
        let at_midnight = split(&time(CompareOp::Ge, midnight)).unwrap();
        assert!(at_midnight.edges.is_empty());
        let later = split(&Predicate::And(vec![
            time(CompareOp::Gt, midnight),
            time(CompareOp::Lt, midnight + 5 * TICKS_PER_DAY + 1),
        ]))
        .unwrap();
        assert_eq!(later.edges, vec![739_000, 739_005]);
    }

    #[test]
    fn filters_on_columns_the_rollup_does_not_keep_are_not_answered_from_it() {
        let duration = Predicate::Compare(
            CompareOp::Gt,
            Operand::Column(column("deploymentTotalDuration")),
            Operand::Value(Scalar::Integer(1)),
        );
        assert_eq!(split(&duration), None);
        let inside_or = Predicate::Or(vec![
            time(CompareOp::Ge, 5),
            Predicate::Not(Box::new(duration)),
        ]);
        assert_eq!(split(&inside_or), None);
        let too_many_days = Predicate::Or(
            (0..=MAX_EDGE_DAYS as i64)
                .map(|day| time(CompareOp::Eq, day * TICKS_PER_DAY + 7))
                .collect(),
        );
        assert_eq!(split(&too_many_days), None);
    }
}
