//! The analytics' figures read from the database (analytics.md §4): every aggregate is computed
//! by SQL where the events are; only groups (never events) come back, sorted here by code point.

use std::collections::BTreeMap;

use sqlx::Row;
use sqlx::any::AnyRow;

use super::sql::analytics::{self as statements, Scope, Statement};
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

/// The value at each percentile's nearest rank among `(rank, n, value)` rows.
fn percentiles_of(rows: &[(u64, u64, i64)], percentiles: &[u64]) -> Vec<Option<Duration>> {
    let n = rows.first().map_or(0, |(_, n, _)| *n);
    percentiles
        .iter()
        .map(|p| {
            let rank = nearest_rank(*p, n)?;
            rows.iter()
                .find(|(r, _, _)| *r == rank)
                .map(|(_, _, value)| Duration::from_ticks(*value))
        })
        .collect()
}

impl Store {
    /// Rendered before the future: sea-query's values are not Send.
    fn analytics_rows(
        &self,
        statement: Statement,
    ) -> impl std::future::Future<Output = Result<Vec<AnyRow>, StoreError>> + Send + '_ {
        self.read_rows(statement.into_parts())
    }

    async fn state_counts(&self, scope: &Scope) -> Result<StateCounts, StoreError> {
        let mut states = StateCounts::default();
        for row in self.analytics_rows(statements::state_counts(scope)).await? {
            states.add(row.try_get(0)?, count(&row, 1)?);
        }
        Ok(states)
    }

    pub async fn analytics_summary(&self, scope: &Scope) -> Result<Summary, StoreError> {
        let percentiles = DURATIONS.map(|(name, column)| async move {
            let rows = self
                .analytics_rows(statements::ranked_values(scope, column, &PERCENTILES))
                .await?;
            let ranked = rows
                .iter()
                .map(|row| Ok((count(row, 0)?, count(row, 1)?, row.try_get(2)?)))
                .collect::<Result<Vec<_>, sqlx::Error>>()?;
            let values = percentiles_of(&ranked, &PERCENTILES);
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
        let (state_rows, percentile_rows) = futures_util::future::try_join(
            self.analytics_rows(statements::breakdown_states(scope, by)),
            self.analytics_rows(statements::breakdown_percentiles(scope, by)),
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
        for row in &percentile_rows {
            let key = dimension_key(row, 0, by)?;
            let (rank, n, value) = (count(row, 1)?, count(row, 2)?, row.try_get::<i64, _>(3)?);
            if let Some(group) = groups.get_mut(&key) {
                if nearest_rank(50, n) == Some(rank) {
                    group.p50 = Some(Duration::from_ticks(value));
                }
                if nearest_rank(90, n) == Some(rank) {
                    group.p90 = Some(Duration::from_ticks(value));
                }
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
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
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
            .read_row(statements::stuck_count(scope, threshold).into_parts())
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
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
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
        let (states, oldest, events) = futures_util::future::try_join3(
            self.state_counts(scope),
            self.read_optional_row(statements::oldest_state(scope).into_parts()),
            self.analytics_rows(statements::newest_events(scope, limit)),
        )
        .await?;
        let oldest_state = oldest.map(|row| row.try_get(0)).transpose()?;
        let events = events
            .iter()
            .map(|row| StoredEntity::from_row(row, 0, &AUTOPILOT_EVENT))
            .collect::<Result<Vec<_>, sqlx::Error>>()?;
        Ok(DeviceHistory {
            states,
            oldest_state,
            events,
        })
    }
}
