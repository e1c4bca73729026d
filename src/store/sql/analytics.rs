//! The analytics' statements (analytics.md §4), one text for both backends: conditional sums,
//! groupings, duration histograms and window functions that SQLite and PostgreSQL both run.

use sea_query::{Value as SqlValue, Values};

use super::entity_column_names;
use super::filter::INDEXED_TEXT_BYTES;
use crate::model::AUTOPILOT_EVENT;
use crate::model::analytics::{BLOCKING_COMPLIANCE, Dimension, state};

/// Which events a statement covers: one tenant, an optional window `from ≤ eventDateTime < to`
/// (ticks), exact-match filters and, for a device's history, its serial number.
#[derive(Clone, Debug, Default)]
pub struct Scope {
    pub tenant: String,
    pub from: Option<i64>,
    pub to: Option<i64>,
    pub filters: Vec<(Dimension, FilterValue)>,
    pub serial: Option<String>,
    /// Repeat the bound of PostgreSQL's partial index on serial numbers (migrations/postgres/0007)
    /// so the planner can use it; set by the store for PostgreSQL.
    pub serial_index_bound: bool,
}

/// A filter's value: text compared exactly, or an enum member's underlying value.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum FilterValue {
    Text(String),
    Enum(i64),
}

/// SQL text with `$n` placeholders, numbered in the order they first appear (SQLite numbers
/// parameters by first appearance, PostgreSQL by their digits: both agree this way).
#[derive(Default)]
pub struct Statement {
    text: String,
    values: Vec<SqlValue>,
}

impl Statement {
    fn push(&mut self, text: &str) -> &mut Self {
        self.text.push_str(text);
        self
    }

    /// Appends a new placeholder bound to `value`.
    fn bind(&mut self, value: SqlValue) -> &mut Self {
        self.values.push(value);
        let placeholder = format!("${}", self.values.len());
        self.text.push_str(&placeholder);
        self
    }

    fn int(&mut self, value: i64) -> &mut Self {
        self.bind(SqlValue::BigInt(Some(value)))
    }

    fn text_value(&mut self, value: &str) -> &mut Self {
        self.bind(SqlValue::String(Some(value.to_string())))
    }

    /// The conditions of `scope` on the events table aliased `e`.
    fn scope(&mut self, scope: &Scope) -> &mut Self {
        self.scope_timed_by(scope, "e.event_date_time")
    }

    /// [`Statement::scope`] with the window tested on `time`: `+e.event_date_time` (a no-op in
    /// both dialects) keeps the planner from driving a join by the events' time index.
    fn scope_timed_by(&mut self, scope: &Scope, time: &str) -> &mut Self {
        self.push("e.tenant_id = ").text_value(&scope.tenant);
        if let Some(from) = scope.from {
            self.push(" AND ").push(time).push(" >= ").int(from);
        }
        if let Some(to) = scope.to {
            self.push(" AND ").push(time).push(" < ").int(to);
        }
        for (dimension, value) in &scope.filters {
            match value {
                FilterValue::Text(text) => self.text_equals(dimension.column(), text),
                FilterValue::Enum(underlying) => self
                    .push(" AND e.")
                    .push(dimension.column())
                    .push(" = ")
                    .int(*underlying),
            };
        }
        if let Some(serial) = &scope.serial {
            self.text_equals("device_serial_number", serial);
            if scope.serial_index_bound && serial.len() <= INDEXED_TEXT_BYTES {
                self.push(&format!(
                    " AND octet_length(e.device_serial_number) <= {INDEXED_TEXT_BYTES}"
                ));
            }
        }
        self
    }

    /// ` AND e.<column> = <text>`. No stored text holds NUL (bodies refuse it, PostgreSQL cannot
    /// store it): such a value matches nothing, and PostgreSQL is never asked to bind it.
    fn text_equals(&mut self, column: &str, text: &str) -> &mut Self {
        if text.contains('\0') {
            self.push(" AND 1 = 0")
        } else {
            self.push(" AND e.")
                .push(column)
                .push(" = ")
                .text_value(text)
        }
    }

    /// `e.a, e.b, …`
    fn columns<'c>(&mut self, columns: impl IntoIterator<Item = &'c str>) -> &mut Self {
        for (position, column) in columns.into_iter().enumerate() {
            if position > 0 {
                self.push(", ");
            }
            self.push("e.").push(column);
        }
        self
    }

    fn finished(&mut self) -> &mut Self {
        self.push(" AND e.deployment_state IN (");
        for (position, value) in state::FINISHED.iter().enumerate() {
            if position > 0 {
                self.push(", ");
            }
            self.push(&value.to_string());
        }
        self.push(")")
    }

    pub fn into_parts(self) -> (String, Values) {
        (self.text, Values(self.values))
    }
}

const EVENTS: &str = " FROM autopilot_events e WHERE ";

/// One row: the number of the scope's events in each deploymentState, by underlying value 0–7
/// (conditional sums: one pass, no grouping to sort).
pub fn state_counts(scope: &Scope) -> Statement {
    let mut statement = Statement::default();
    statement.push("SELECT ");
    for state in 0..8 {
        if state > 0 {
            statement.push(", ");
        }
        statement.push(&format!(
            "COALESCE(SUM(CASE WHEN e.deployment_state = {state} THEN 1 ELSE 0 END), 0)"
        ));
    }
    statement.push(EVENTS).scope(scope);
    statement
}

/// The width of a histogram bucket of durations (10 s in ticks): percentiles are found in two
/// steps, a histogram of buckets and then the values of the buckets holding the ranks asked for.
pub const DURATION_BUCKET_TICKS: i64 = 100_000_000;

/// The optional grouping key of a duration statement: `e.<column>, ` or nothing.
fn key_column(statement: &mut Statement, by: Option<Dimension>) {
    if let Some(by) = by {
        statement.push("e.").push(by.column()).push(", ");
    }
}

/// `([key,] bucket, count, min, max)` of a duration column over the scope's finished events,
/// bucket = value / [`DURATION_BUCKET_TICKS`] (truncated: monotonic in the value, so buckets in
/// ascending order hold ascending values).
pub fn duration_histogram(scope: &Scope, by: Option<Dimension>, column: &str) -> Statement {
    let mut statement = Statement::default();
    statement.push("SELECT ");
    key_column(&mut statement, by);
    statement
        .push("e.")
        .push(column)
        .push(&format!(" / {DURATION_BUCKET_TICKS}, COUNT(*), MIN(e."))
        .push(column)
        .push("), MAX(e.")
        .push(column)
        .push(")")
        .push(EVENTS)
        .scope(scope)
        .finished()
        .push(if by.is_some() {
            " GROUP BY 1, 2"
        } else {
            " GROUP BY 1"
        });
    statement
}

/// `([key,] value)` of the scope's finished events whose duration falls in one of `buckets`.
pub fn bucket_values(
    scope: &Scope,
    by: Option<Dimension>,
    column: &str,
    buckets: &[i64],
) -> Statement {
    let mut statement = Statement::default();
    statement.push("SELECT ");
    key_column(&mut statement, by);
    statement
        .push("e.")
        .push(column)
        .push(EVENTS)
        .scope(scope)
        .finished()
        .push(" AND e.")
        .push(column)
        .push(&format!(" / {DURATION_BUCKET_TICKS} IN ("));
    for (position, bucket) in buckets.iter().enumerate() {
        if position > 0 {
            statement.push(", ");
        }
        statement.int(*bucket);
    }
    statement.push(")");
    statement
}

/// `(bucket, deploymentState, count)`: bucket = eventDateTime ticks / `bucket_ticks`.
pub fn timeline(scope: &Scope, bucket_ticks: i64) -> Statement {
    let mut statement = Statement::default();
    statement
        .push("SELECT e.event_date_time / ")
        .int(bucket_ticks)
        .push(", e.deployment_state, COUNT(*)")
        .push(EVENTS)
        .scope(scope)
        .push(" GROUP BY 1, 2");
    statement
}

/// `(key, deploymentState, count)` by a dimension.
pub fn breakdown_states(scope: &Scope, by: Dimension) -> Statement {
    let mut statement = Statement::default();
    statement
        .push("SELECT e.")
        .push(by.column())
        .push(", e.deployment_state, COUNT(*)")
        .push(EVENTS)
        .scope(scope)
        .push(" GROUP BY 1, 2");
    statement
}

/// One row per failure reason (null and `""` are one, null): `(reason, count, deviceSetup,
/// accountSetup, lastEventDateTime, lastEventId)`, the last event being the latest, ties to the
/// smallest lower-cased id.
pub fn failures(scope: &Scope) -> Statement {
    let mut statement = Statement::default();
    statement
        .push(
            "SELECT y.reason, y.n, y.device, y.account, y.event_date_time, y.id FROM (\
             SELECT x.reason, x.id, x.event_date_time, \
             ROW_NUMBER() OVER (PARTITION BY x.reason ORDER BY x.event_date_time DESC, LOWER(x.id)) AS rn, \
             COUNT(*) OVER (PARTITION BY x.reason) AS n, \
             SUM(x.device) OVER (PARTITION BY x.reason) AS device, \
             SUM(x.account) OVER (PARTITION BY x.reason) AS account FROM (\
             SELECT CASE WHEN e.enrollment_failure_details = '' THEN NULL \
             ELSE e.enrollment_failure_details END AS reason, e.id, e.event_date_time, ",
        )
        .push(&format!(
            "CASE WHEN e.device_setup_status = {f} THEN 1 ELSE 0 END AS device, \
             CASE WHEN e.device_setup_status <> {f} AND e.account_setup_status = {f} THEN 1 ELSE 0 END AS account",
            f = state::FAILURE
        ))
        .push(EVENTS)
        .scope(scope)
        .push(&format!(" AND e.deployment_state = {}", state::FAILURE))
        .push(") x) y WHERE y.rn = 1");
    statement
}

/// The condition of stuck events: in progress, started strictly before `threshold` ticks.
fn stuck_condition(statement: &mut Statement, scope: &Scope, threshold: i64) {
    statement
        .scope(scope)
        .push(&format!(
            " AND e.deployment_state = {} AND e.deployment_start_date_time < ",
            state::IN_PROGRESS
        ))
        .int(threshold);
}

pub fn stuck_count(scope: &Scope, threshold: i64) -> Statement {
    let mut statement = Statement::default();
    statement.push("SELECT COUNT(*)").push(EVENTS);
    stuck_condition(&mut statement, scope, threshold);
    statement
}

/// The columns a stuck row shows, in this order.
pub const STUCK_COLUMNS: [&str; 8] = [
    "id",
    "device_serial_number",
    "managed_device_name",
    "deployment_profile_display_name",
    "device_setup_status",
    "account_setup_status",
    "event_date_time",
    "deployment_start_date_time",
];

/// Up to `limit` stuck events after `after` (start ticks, lower-cased id), oldest start first.
pub fn stuck_page(
    scope: &Scope,
    threshold: i64,
    after: Option<(i64, &str)>,
    limit: u64,
) -> Statement {
    let mut statement = Statement::default();
    statement
        .push("SELECT ")
        .columns(STUCK_COLUMNS)
        .push(EVENTS);
    stuck_condition(&mut statement, scope, threshold);
    if let Some((start, id)) = after {
        statement
            .push(" AND (e.deployment_start_date_time > ")
            .int(start)
            .push(" OR (e.deployment_start_date_time = ")
            .int(start)
            .push(" AND LOWER(e.id) > ")
            .text_value(id)
            .push("))");
    }
    statement
        .push(" ORDER BY e.deployment_start_date_time, LOWER(e.id) LIMIT ")
        .int(i64::try_from(limit).unwrap_or(i64::MAX));
    statement
}

/// The join of blocking policy status details with their events in scope. It is driven by the
/// details' partial index (a small share of all details) with each event found by its key: the
/// window's events are many more than the blocking details of all time.
fn blocking_details(statement: &mut Statement, scope: &Scope) {
    statement
        .push(
            " FROM policy_status_details d JOIN autopilot_events e \
             ON e.tenant_id = d.tenant_id AND e.id = d.event_id WHERE ",
        )
        .scope_timed_by(scope, "+e.event_date_time")
        // Written as literals, exactly as the partial index `policy_status_details_blocking`
        // states them, so both databases can use it (a bound value could not prove it applies).
        .push(&format!(
            " AND d.tenant_id = e.tenant_id AND d.tracked_on_enrollment_status = TRUE \
             AND d.compliance_status IN ({}, {}, {})",
            BLOCKING_COMPLIANCE[0], BLOCKING_COMPLIANCE[1], BLOCKING_COMPLIANCE[2]
        ));
}

/// `(displayName, policyType, details, affectedDeployments, failedDeployments)`.
pub fn blockers(scope: &Scope) -> Statement {
    let mut statement = Statement::default();
    statement.push(&format!(
        "SELECT d.display_name, d.policy_type, COUNT(*), COUNT(DISTINCT d.event_id), \
         COUNT(DISTINCT CASE WHEN e.deployment_state = {} THEN d.event_id END)",
        state::FAILURE
    ));
    blocking_details(&mut statement, scope);
    statement.push(" GROUP BY d.display_name, d.policy_type");
    statement
}

/// `(displayName, policyType, errorCode, rows)` of the blocking details' non-zero error codes.
pub fn blocker_error_codes(scope: &Scope) -> Statement {
    let mut statement = Statement::default();
    statement.push("SELECT d.display_name, d.policy_type, d.error_code, COUNT(*)");
    blocking_details(&mut statement, scope);
    statement.push(" AND d.error_code <> 0 GROUP BY d.display_name, d.policy_type, d.error_code");
    statement
}

/// The scope's events as entities (the [`entity_column_names`]), newest first, ties by lower-cased id
/// descending, at most `limit`.
pub fn newest_events(scope: &Scope, limit: u64) -> Statement {
    let mut statement = Statement::default();
    statement
        .push("SELECT ")
        .columns(entity_column_names(&AUTOPILOT_EVENT))
        .push(EVENTS)
        .scope(scope)
        .push(" ORDER BY e.event_date_time DESC, LOWER(e.id) DESC LIMIT ")
        .int(i64::try_from(limit).unwrap_or(i64::MAX));
    statement
}

/// The deploymentState of the scope's oldest event (eventDateTime, then lower-cased id).
pub fn oldest_state(scope: &Scope) -> Statement {
    let mut statement = Statement::default();
    statement
        .push("SELECT e.deployment_state")
        .push(EVENTS)
        .scope(scope)
        .push(" ORDER BY e.event_date_time, LOWER(e.id) LIMIT 1");
    statement
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn placeholders_are_numbered_in_order_of_appearance() {
        let scope = Scope {
            tenant: "t".into(),
            from: Some(1),
            to: Some(2),
            filters: vec![
                (Dimension::EnrollmentType, FilterValue::Enum(6)),
                (Dimension::Profile, FilterValue::Text("P".into())),
                (Dimension::OsVersion, FilterValue::Text("a\0b".into())),
            ],
            serial: None,
            serial_index_bound: false,
        };
        let (text, values) = stuck_page(&scope, 9, Some((3, "x")), 10).into_parts();
        let mut next = 1;
        let mut rest = text.as_str();
        while let Some(at) = rest.find('$') {
            let digits: String = rest[at + 1..]
                .chars()
                .take_while(char::is_ascii_digit)
                .collect();
            let number: usize = digits.parse().unwrap();
            assert!(number <= next, "{text}");
            if number == next {
                next += 1;
            }
            rest = &rest[at + 1..];
        }
        assert_eq!(next - 1, values.0.len());
        assert!(
            text.contains("1 = 0"),
            "a NUL value matches nothing: {text}"
        );
    }
}
