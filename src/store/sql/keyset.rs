//! Keyset paging: the effective sort (the requested keys completed by `id`) and the condition for
//! the rows strictly after a cursor, so pages never repeat or skip a row while others write.

use sea_query::{Condition, Expr, ExprTrait, IntoCondition};

use super::col;
use super::filter::{constant, scalar};
use crate::odata::{Column, ID, Scalar, SortDirection};

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
pub(super) fn keyset_after(keys: &SortKeys, cursor: &[Scalar]) -> Condition {
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
