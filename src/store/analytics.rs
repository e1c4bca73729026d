//! The analytics' figures read from the database (analytics.md §4): aggregates computed by SQL
//! where the events are; only groups and the chosen histogram buckets' values come back.

use std::collections::{BTreeMap, BTreeSet};

use sqlx::Row;
use sqlx::any::AnyRow;

use super::sql::analytics::{self as statements, DURATION_BUCKET_TICKS, Scope, Statement};
use super::sql::{self, Dialect};
use super::transaction::Tx;
use super::{Store, StoreError, StoredEntity};
use crate::edm::{DateTimeOffset, Duration, ENROLLMENT_TYPE, POLICY_TYPE};
use crate::model::AUTOPILOT_EVENT;
use crate::model::analytics::{Dimension, PERCENTILES, StateCounts, nearest_rank};

/// The duration properties whose percentiles `summary` reports, with their columns.
pub const DURATIONS: [(&str, &str); 4] = [
    ("deploymentTotalDuration", "deployment_total_duration"),
    ("deviceSetupDuration", "device_setup_duration"),
    ("accountSetupDuration", "account_setup_duration"),
    ("deploymentDuration", "deployment_duration"),
];

/// `summary`'s figures: counts by state and, per duration property, p50/p90/p95.
pub struct Summary {
    pub states: StateCounts,
    pub durations: Vec<(&'static str, [Option<Duration>; 3])>,
}

/// One `breakdown` row.
pub struct BreakdownRow {
    pub key: Option<String>,
    pub states: StateCounts,
    pub p50: Option<Duration>,
    pub p90: Option<Duration>,
}

/// One `failures` row.
pub struct FailureRow {
    pub reason: Option<String>,
    pub count: u64,
    pub device_setup: u64,
    pub account_setup: u64,
    pub last_event_date_time: DateTimeOffset,
    pub last_event_id: String,
}

/// One stuck deployment.
pub struct StuckRow {
    pub id: String,
    pub device_serial_number: Option<String>,
    pub managed_device_name: Option<String>,
    pub profile: Option<String>,
    pub device_setup_status: i64,
    pub account_setup_status: i64,
    pub event_date_time: DateTimeOffset,
    pub deployment_start_date_time: DateTimeOffset,
}

/// One `blockers` row.
pub struct BlockerRow {
    pub display_name: Option<String>,
    /// The policyType member name.
    pub policy_type: &'static str,
    pub details: u64,
    pub affected_deployments: u64,
    pub failed_deployments: u64,
    pub top_error_code: Option<i64>,
    pub top_error_code_count: u64,
}

/// A device's history.
pub struct DeviceHistory {
    pub states: StateCounts,
    pub oldest_state: Option<i64>,
    /// Newest first, at most the limit asked for.
    pub events: Vec<StoredEntity>,
}

fn count(row: &AnyRow, index: usize) -> Result<u64, sqlx::Error> {
    Ok(u64::try_from(row.try_get::<i64, _>(index)?).unwrap_or(0))
}

fn instant(ticks: i64) -> Result<DateTimeOffset, sqlx::Error> {
    DateTimeOffset::from_ticks(ticks).ok_or_else(|| {
        sqlx::Error::Decode(format!("{ticks} ticks are outside DateTimeOffset").into())
    })
}

/// A dimension's value in a result row as the figure's key: text, or the enum member's name.
fn dimension_key(row: &AnyRow, index: usize, by: Dimension) -> Result<Option<String>, sqlx::Error> {
    if by.is_enum() {
        let value: i64 = row.try_get(index)?;
        Ok(Some(
            ENROLLMENT_TYPE
                .name_of(value)
                .unwrap_or("unknown")
                .to_string(),
        ))
    } else {
        row.try_get(index)
    }
}

/// One bucket of a duration histogram: its number, rows, and smallest and largest value.
#[derive(Clone, Copy)]
struct Bucket {
    number: i64,
    rows: u64,
    min: i64,
    max: i64,
}

/// Where a percentile's value is: known (a bucket of one value), or the `offset`-th (1-based)
/// smallest value of a bucket.
enum Pick {
    Known(i64),
    InBucket { bucket: i64, offset: u64 },
}

/// The nearest-rank pick of each percentile among a key's histogram buckets.
fn picks(buckets: &mut [Bucket], percentiles: &[u64]) -> Vec<Option<Pick>> {
    buckets.sort_by_key(|bucket| bucket.number);
    let n: u64 = buckets.iter().map(|bucket| bucket.rows).sum();
    percentiles
        .iter()
        .map(|p| {
            let rank = nearest_rank(*p, n)?;
            let mut before = 0;
            for bucket in buckets.iter() {
                if rank <= before + bucket.rows {
                    return Some(if bucket.min == bucket.max {
                        Pick::Known(bucket.min)
                    } else {
                        Pick::InBucket {
                            bucket: bucket.number,
                            offset: rank - before,
                        }
                    });
                }
                before += bucket.rows;
            }
            None
        })
        .collect()
}

/// A statement bound into a query that can be held across an await.
fn bound_query(
    statement: Statement,
) -> sqlx::query::Query<'static, sqlx::Any, sqlx::any::AnyArguments> {
    let (text, values) = statement.into_parts();
    sql::bind(text, values)
}

impl Store {
    /// Runs analytics work once one of the analytics' connection slots is free (within the
    /// request's deadline).
    async fn in_slot<T>(
        &self,
        work: impl std::future::Future<Output = Result<T, StoreError>>,
    ) -> Result<T, StoreError> {
        let _slot = super::health::within_deadline(async {
            self.analytics_slots
                .acquire()
                .await
                .map_err(|_| StoreError::Internal(anyhow::anyhow!("the store is closing")))
        })
        .await?;
        work.await
    }

    /// Rendered before the future: sea-query's values are not Send.
    fn analytics_rows(
        &self,
        statement: Statement,
    ) -> impl std::future::Future<Output = Result<Vec<AnyRow>, StoreError>> + Send + '_ {
        let rows = self.read_rows(statement.into_parts());
        self.in_slot(rows)
    }

    /// [`Store::analytics_rows`] for a statement of one row.
    fn analytics_row(
        &self,
        statement: Statement,
    ) -> impl std::future::Future<Output = Result<AnyRow, StoreError>> + Send + '_ {
        let row = self.read_row(statement.into_parts());
        self.in_slot(row)
    }

    async fn state_counts(&self, scope: &Scope) -> Result<StateCounts, StoreError> {
        let row = self.analytics_row(statements::state_counts(scope)).await?;
        let mut states = StateCounts::default();
        for state in 0..8 {
            states.add(state as i64, count(&row, state)?);
        }
        Ok(states)
    }

    /// Nearest-rank percentiles of a duration column over the scope's finished events, per key
    /// of `by` (one key, `None`, without): a histogram of 10-second buckets finds the bucket of
    /// each rank, then the values of just those buckets give the value. Both statements read one
    /// snapshot, so the ranks of the first are the rows of the second.
    async fn duration_percentiles(
        &self,
        scope: &Scope,
        by: Option<Dimension>,
        column: &str,
        percentiles: &[u64],
    ) -> Result<BTreeMap<Option<String>, Vec<Option<Duration>>>, StoreError> {
        let key_of = |row: &AnyRow| match by {
            Some(by) => dimension_key(row, 0, by),
            None => Ok(None),
        };
        let first = usize::from(by.is_some());
        // Bound before the future: sea-query's values are not Send, the bound query is.
        let (text, bound) = statements::duration_histogram(scope, by, column).into_parts();
        let histogram = sql::bind(text, bound);
        self.in_slot(self.bounded(async {
            let mut snapshot = Tx::begin_snapshot(&self.readers, self.dialect).await?;
            let rows = histogram.fetch_all(snapshot.connection()).await?;
            let mut histograms: BTreeMap<Option<String>, Vec<Bucket>> = BTreeMap::new();
            for row in &rows {
                histograms.entry(key_of(row)?).or_default().push(Bucket {
                    number: row.try_get(first)?,
                    rows: count(row, first + 1)?,
                    min: row.try_get(first + 2)?,
                    max: row.try_get(first + 3)?,
                });
            }
            let chosen: BTreeMap<Option<String>, Vec<Option<Pick>>> = histograms
                .into_iter()
                .map(|(key, mut buckets)| {
                    let picks = picks(&mut buckets, percentiles);
                    (key, picks)
                })
                .collect();
            let wanted: BTreeSet<i64> = chosen
                .values()
                .flatten()
                .filter_map(|pick| match pick {
                    Some(Pick::InBucket { bucket, .. }) => Some(*bucket),
                    _ => None,
                })
                .collect();
            let mut values: BTreeMap<(Option<String>, i64), Vec<i64>> = BTreeMap::new();
            if !wanted.is_empty() {
                let wanted: Vec<i64> = wanted.into_iter().collect();
                let query = bound_query(statements::bucket_values(scope, by, column, &wanted));
                for row in query.fetch_all(snapshot.connection()).await? {
                    let value: i64 = row.try_get(first)?;
                    values
                        .entry((key_of(&row)?, value / DURATION_BUCKET_TICKS))
                        .or_default()
                        .push(value);
                }
            }
            snapshot.rollback().await;
            Ok(chosen
                .into_iter()
                .map(|(key, picks)| {
                    let found = picks
                        .into_iter()
                        .map(|pick| match pick? {
                            Pick::Known(value) => Some(Duration::from_ticks(value)),
                            Pick::InBucket { bucket, offset } => {
                                let bucket_values = values.get_mut(&(key.clone(), bucket))?;
                                bucket_values.sort_unstable();
                                let at = usize::try_from(offset).ok()?.checked_sub(1)?;
                                bucket_values
                                    .get(at)
                                    .map(|value| Duration::from_ticks(*value))
                            }
                        })
                        .collect();
                    (key, found)
                })
                .collect())
        }))
        .await
    }

    pub async fn analytics_summary(&self, scope: &Scope) -> Result<Summary, StoreError> {
        let percentiles = DURATIONS.map(|(name, column)| async move {
            let mut by_key = self
                .duration_percentiles(scope, None, column, &PERCENTILES)
                .await?;
            let values = by_key.remove(&None).unwrap_or_else(|| vec![None; 3]);
            Ok::<_, StoreError>((name, [values[0], values[1], values[2]]))
        });
        let (states, durations) = futures_util::future::try_join(
            self.state_counts(scope),
            futures_util::future::try_join_all(percentiles),
        )
        .await?;
        Ok(Summary { states, durations })
    }

    /// Counts by state per bucket number (eventDateTime ticks / `bucket_ticks`); buckets without
    /// events are absent.
    pub async fn analytics_timeline(
        &self,
        scope: &Scope,
        bucket_ticks: i64,
    ) -> Result<BTreeMap<i64, StateCounts>, StoreError> {
        let mut buckets: BTreeMap<i64, StateCounts> = BTreeMap::new();
        for row in self
            .analytics_rows(statements::timeline(scope, bucket_ticks))
            .await?
        {
            buckets
                .entry(row.try_get(0)?)
                .or_default()
                .add(row.try_get(1)?, count(&row, 2)?);
        }
        Ok(buckets)
    }

    /// Every group of the dimension, in the contract's order (deployments descending, then key,
    /// null first).
    pub async fn analytics_breakdown(
        &self,
        scope: &Scope,
        by: Dimension,
    ) -> Result<Vec<BreakdownRow>, StoreError> {
        let (state_rows, percentiles) = futures_util::future::try_join(
            self.analytics_rows(statements::breakdown_states(scope, by)),
            self.duration_percentiles(scope, Some(by), "deployment_total_duration", &[50, 90]),
        )
        .await?;
        let mut groups: BTreeMap<Option<String>, BreakdownRow> = BTreeMap::new();
        for row in &state_rows {
            let key = dimension_key(row, 0, by)?;
            groups
                .entry(key.clone())
                .or_insert_with(|| BreakdownRow {
                    key,
                    states: StateCounts::default(),
                    p50: None,
                    p90: None,
                })
                .states
                .add(row.try_get(1)?, count(row, 2)?);
        }
        for (key, values) in percentiles {
            if let Some(group) = groups.get_mut(&key) {
                group.p50 = values[0];
                group.p90 = values[1];
            }
        }
        let mut rows: Vec<BreakdownRow> = groups.into_values().collect();
        // Stable: rows come in key order, so equal counts stay ordered by key.
        rows.sort_by_key(|row| std::cmp::Reverse(row.states.deployments()));
        Ok(rows)
    }

    /// Every failure reason, count descending, then reason (null first).
    pub async fn analytics_failures(&self, scope: &Scope) -> Result<Vec<FailureRow>, StoreError> {
        let mut rows = self
            .analytics_rows(statements::failures(scope))
            .await?
            .iter()
            .map(|row| {
                Ok(FailureRow {
                    reason: row.try_get(0)?,
                    count: count(row, 1)?,
                    device_setup: count(row, 2)?,
                    account_setup: count(row, 3)?,
                    last_event_date_time: instant(row.try_get(4)?)?,
                    last_event_id: row.try_get(5)?,
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.sort_by(|a, b| b.count.cmp(&a.count).then_with(|| a.reason.cmp(&b.reason)));
        Ok(rows)
    }

    /// How many events are stuck (in progress, started before `threshold` ticks).
    pub async fn analytics_stuck_count(
        &self,
        scope: &Scope,
        threshold: i64,
    ) -> Result<u64, StoreError> {
        let row = self
            .analytics_row(statements::stuck_count(scope, threshold))
            .await?;
        Ok(count(&row, 0)?)
    }

    /// Up to `limit` stuck events after the keyset position `after` (start ticks, lower-cased
    /// id), oldest start first.
    pub async fn analytics_stuck_page(
        &self,
        scope: &Scope,
        threshold: i64,
        after: Option<(i64, &str)>,
        limit: u64,
    ) -> Result<Vec<StuckRow>, StoreError> {
        self.analytics_rows(statements::stuck_page(scope, threshold, after, limit))
            .await?
            .iter()
            .map(|row| {
                Ok(StuckRow {
                    id: row.try_get(0)?,
                    device_serial_number: row.try_get(1)?,
                    managed_device_name: row.try_get(2)?,
                    profile: row.try_get(3)?,
                    device_setup_status: row.try_get(4)?,
                    account_setup_status: row.try_get(5)?,
                    event_date_time: instant(row.try_get(6)?)?,
                    deployment_start_date_time: instant(row.try_get(7)?)?,
                })
            })
            .collect::<Result<Vec<_>, sqlx::Error>>()
            .map_err(StoreError::from)
    }

    /// Every blocking (displayName, policyType), affected deployments descending, then display
    /// name (null first), then policy type name.
    pub async fn analytics_blockers(&self, scope: &Scope) -> Result<Vec<BlockerRow>, StoreError> {
        let (group_rows, code_rows) = futures_util::future::try_join(
            self.analytics_rows(statements::blockers(scope)),
            self.analytics_rows(statements::blocker_error_codes(scope)),
        )
        .await?;
        let policy_type = |value: i64| POLICY_TYPE.name_of(value).unwrap_or("unknown");
        // The non-zero code on most rows per group; ties to the smallest code.
        let mut codes: BTreeMap<(Option<String>, i64), (i64, u64)> = BTreeMap::new();
        for row in &code_rows {
            let key = (row.try_get(0)?, row.try_get(1)?);
            let (code, rows) = (row.try_get::<i64, _>(2)?, count(row, 3)?);
            let best = codes.entry(key).or_insert((code, rows));
            if rows > best.1 || (rows == best.1 && code < best.0) {
                *best = (code, rows);
            }
        }
        let mut rows = group_rows
            .iter()
            .map(|row| {
                let display_name: Option<String> = row.try_get(0)?;
                let type_value: i64 = row.try_get(1)?;
                let top = codes.get(&(display_name.clone(), type_value));
                Ok(BlockerRow {
                    display_name,
                    policy_type: policy_type(type_value),
                    details: count(row, 2)?,
                    affected_deployments: count(row, 3)?,
                    failed_deployments: count(row, 4)?,
                    top_error_code: top.map(|(code, _)| *code),
                    top_error_code_count: top.map_or(0, |(_, rows)| *rows),
                })
            })
            .collect::<Result<Vec<_>, StoreError>>()?;
        rows.sort_by(|a, b| {
            b.affected_deployments
                .cmp(&a.affected_deployments)
                .then_with(|| a.display_name.cmp(&b.display_name))
                .then_with(|| a.policy_type.cmp(b.policy_type))
        });
        Ok(rows)
    }

    /// A device's events (the scope names its serial number): counts over all of them, the state
    /// of the oldest, and the newest `limit` as stored entities.
    pub async fn analytics_device(
        &self,
        scope: &Scope,
        limit: u64,
    ) -> Result<DeviceHistory, StoreError> {
        let scope = &Scope {
            serial_index_bound: self.dialect == Dialect::Postgres,
            ..scope.clone()
        };
        let (states, oldest, events) = futures_util::future::try_join3(
            self.state_counts(scope),
            self.in_slot(self.read_optional_row(statements::oldest_state(scope).into_parts())),
            self.analytics_rows(statements::newest_events(scope, limit)),
        )
        .await?;
        let oldest_state = oldest.map(|row| row.try_get(0)).transpose()?;
        let events = events
            .iter()
            .map(|row| StoredEntity::from_row(row, 0, &AUTOPILOT_EVENT))
            .collect::<Result<Vec<_>, StoreError>>()?;
        Ok(DeviceHistory {
            states,
            oldest_state,
            events,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        /// The two-step selection (histogram, then the chosen buckets' values) picks exactly the
        /// value a full sort would, with buckets as the database forms them (truncated division).
        #[test]
        fn histogram_selection_equals_a_full_sort(
            values in proptest::collection::vec(
                prop_oneof![Just(0i64), -3 * DURATION_BUCKET_TICKS..3 * DURATION_BUCKET_TICKS, any::<i64>()],
                1..200,
            ),
        ) {
            let mut histogram: BTreeMap<i64, Bucket> = BTreeMap::new();
            for value in &values {
                let number = value / DURATION_BUCKET_TICKS;
                let bucket = histogram.entry(number).or_insert(Bucket { number, rows: 0, min: *value, max: *value });
                bucket.rows += 1;
                bucket.min = bucket.min.min(*value);
                bucket.max = bucket.max.max(*value);
            }
            // In the order a GROUP BY might return them: any.
            let mut buckets: Vec<Bucket> = histogram.into_values().rev().collect();
            let mut sorted = values.clone();
            sorted.sort_unstable();
            for (pick, p) in picks(&mut buckets, &PERCENTILES).into_iter().zip(PERCENTILES) {
                let expected = sorted[nearest_rank(p, sorted.len() as u64).unwrap() as usize - 1];
                let found = match pick.unwrap() {
                    Pick::Known(value) => value,
                    Pick::InBucket { bucket, offset } => {
                        let mut inside: Vec<i64> = values
                            .iter()
                            .copied()
                            .filter(|value| value / DURATION_BUCKET_TICKS == bucket)
                            .collect();
                        inside.sort_unstable();
                        inside[offset as usize - 1]
                    }
                };
                prop_assert_eq!(found, expected);
            }
        }
    }
}
