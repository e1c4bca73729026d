//! The analytics' definitions over events (analytics.md §3), as pure functions: how deployment
//! states group, nearest-rank positions, time buckets and a device's first-time-right.

use super::{AUTOPILOT_EVENT, PropertyId, event};
use crate::edm::{DEPLOYMENT_STATE, TICKS_PER_SECOND};

/// Underlying values of windowsAutopilotDeploymentState members the definitions name.
pub mod state {
    pub const UNKNOWN: i64 = 0;
    pub const SUCCESS: i64 = 1;
    pub const IN_PROGRESS: i64 = 2;
    pub const FAILURE: i64 = 3;
    pub const SUCCESS_WITH_TIMEOUT: i64 = 4;
    pub const NOT_ATTEMPTED: i64 = 5;
    pub const DISABLED: i64 = 6;
    pub const SUCCESS_ON_RETRY: i64 = 7;
    /// The states of finished events: succeeded (success, successWithTimeout, successOnRetry)
    /// and failed (failure).
    pub const FINISHED: [i64; 4] = [SUCCESS, FAILURE, SUCCESS_WITH_TIMEOUT, SUCCESS_ON_RETRY];
}

/// Underlying values of the policy status detail's complianceStatus that block the Enrollment
/// Status Page: notCompliant, notInstalled, error.
pub const BLOCKING_COMPLIANCE: [i64; 3] = [3, 4, 5];

/// A property events are filtered and broken down by (analytics.md §2).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Dimension {
    /// windowsAutopilotDeploymentProfileDisplayName
    Profile,
    /// windows10EnrollmentCompletionPageConfigurationDisplayName
    Esp,
    /// enrollmentType (an enum: filtered by member name)
    EnrollmentType,
    /// osVersion
    OsVersion,
}

impl Dimension {
    /// The dimensions in the order parameters name them.
    pub const ALL: [Dimension; 4] = [
        Dimension::Profile,
        Dimension::Esp,
        Dimension::EnrollmentType,
        Dimension::OsVersion,
    ];

    /// The name of its query parameter (and of `breakdown`'s `by` value).
    pub fn parameter(self) -> &'static str {
        match self {
            Dimension::Profile => "profile",
            Dimension::Esp => "esp",
            Dimension::EnrollmentType => "enrollmentType",
            Dimension::OsVersion => "osVersion",
        }
    }

    /// The event property it is.
    pub fn property(self) -> PropertyId {
        match self {
            Dimension::Profile => event::WINDOWS_AUTOPILOT_DEPLOYMENT_PROFILE_DISPLAY_NAME,
            Dimension::Esp => {
                event::WINDOWS10_ENROLLMENT_COMPLETION_PAGE_CONFIGURATION_DISPLAY_NAME
            }
            Dimension::EnrollmentType => event::ENROLLMENT_TYPE,
            Dimension::OsVersion => event::OS_VERSION,
        }
    }

    /// The typed column holding the property.
    pub fn column(self) -> &'static str {
        AUTOPILOT_EVENT.properties[self.property().0].column
    }

    pub fn is_enum(self) -> bool {
        self == Dimension::EnrollmentType
    }
}

/// Events counted by deploymentState, indexed by the member's underlying value (0–7).
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct StateCounts(pub [u64; 8]);

impl StateCounts {
    /// Adds `count` events of the state with underlying value `state` (unknown values count as
    /// `unknown`: the schema refuses them, so this never happens with stored events).
    pub fn add(&mut self, state: i64, count: u64) {
        let slot = usize::try_from(state).ok().filter(|slot| *slot < 8);
        self.0[slot.unwrap_or(0)] += count;
    }

    fn of(&self, state: i64) -> u64 {
        self.0[state as usize]
    }

    pub fn deployments(&self) -> u64 {
        self.0.iter().sum()
    }

    pub fn succeeded(&self) -> u64 {
        self.of(state::SUCCESS) + self.timed_out()
    }

    pub fn failed(&self) -> u64 {
        self.of(state::FAILURE)
    }

    pub fn in_progress(&self) -> u64 {
        self.of(state::IN_PROGRESS)
    }

    pub fn other(&self) -> u64 {
        self.of(state::UNKNOWN) + self.of(state::NOT_ATTEMPTED) + self.of(state::DISABLED)
    }

    pub fn finished(&self) -> u64 {
        self.succeeded() + self.failed()
    }

    /// successWithTimeout + successOnRetry.
    pub fn timed_out(&self) -> u64 {
        self.of(state::SUCCESS_WITH_TIMEOUT) + self.of(state::SUCCESS_ON_RETRY)
    }

    /// Events in state `success` only.
    pub fn first_time(&self) -> u64 {
        self.of(state::SUCCESS)
    }

    /// succeeded / finished, `None` when nothing finished.
    pub fn success_rate(&self) -> Option<f64> {
        ratio(self.succeeded(), self.finished())
    }

    /// success / finished, `None` when nothing finished.
    pub fn first_time_right(&self) -> Option<f64> {
        ratio(self.first_time(), self.finished())
    }

    /// Every member name with its count, in declaration order.
    pub fn by_member(&self) -> impl Iterator<Item = (&'static str, u64)> + '_ {
        DEPLOYMENT_STATE
            .members
            .iter()
            .map(|(name, value)| (*name, self.of(*value)))
    }
}

/// `a / b` as an IEEE double, `None` when `b` is 0.
pub fn ratio(a: u64, b: u64) -> Option<f64> {
    (b > 0).then(|| a as f64 / b as f64)
}

/// The 1-based rank of percentile `p` (nearest rank) among `n` ascending values:
/// ⌈p·n/100⌉, and at least 1. `None` when there are no values.
pub fn nearest_rank(p: u64, n: u64) -> Option<u64> {
    (n > 0).then(|| (p * n).div_ceil(100).max(1))
}

/// The percentiles every duration figure reports.
pub const PERCENTILES: [u64; 3] = [50, 90, 95];

/// A timeline's bucket size.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Bucket {
    /// UTC days.
    Day,
    /// ISO weeks, Monday 00:00:00Z to the next Monday.
    Week,
}

impl Bucket {
    pub fn name(self) -> &'static str {
        match self {
            Bucket::Day => "day",
            Bucket::Week => "week",
        }
    }

    /// The bucket's length in ticks. Tick 0 (0001-01-01) is a Monday at midnight UTC, so the
    /// bucket of an instant is its ticks divided by this length, rounded down.
    pub fn ticks(self) -> i64 {
        let day = 86_400 * TICKS_PER_SECOND;
        match self {
            Bucket::Day => day,
            Bucket::Week => 7 * day,
        }
    }

    /// The buckets that meet the window `from ≤ t < to` (`from < to`): the first and last
    /// bucket numbers.
    pub fn span(self, from: i64, to: i64) -> (i64, i64) {
        (from / self.ticks(), (to - 1) / self.ticks())
    }
}

/// A failed event's phase (analytics.md §3).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Phase {
    DeviceSetup,
    AccountSetup,
    Unknown,
}

impl Phase {
    pub fn of(device_setup_status: i64, account_setup_status: i64) -> Self {
        if device_setup_status == state::FAILURE {
            Phase::DeviceSetup
        } else if account_setup_status == state::FAILURE {
            Phase::AccountSetup
        } else {
            Phase::Unknown
        }
    }
}

/// A device's first-time-right from its attempts and the state of the oldest one:
/// `true` if the oldest succeeded first time; `None` with no attempt, or one that has not
/// finished; `false` otherwise.
pub fn device_first_time_right(attempts: u64, oldest_state: Option<i64>) -> Option<bool> {
    let oldest = oldest_state?;
    if oldest == state::SUCCESS {
        return Some(true);
    }
    if attempts == 1 && !state::FINISHED.contains(&oldest) {
        return None;
    }
    Some(false)
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    #[test]
    fn states_group_as_the_contract_says() {
        let mut counts = StateCounts::default();
        for (value, count) in [(0, 8), (1, 147), (2, 20), (3, 30), (4, 21), (5, 6), (6, 6)] {
            counts.add(value, count);
        }
        counts.add(7, 12);
        assert_eq!(counts.deployments(), 250);
        assert_eq!(counts.succeeded(), 180);
        assert_eq!(counts.failed(), 30);
        assert_eq!(counts.in_progress(), 20);
        assert_eq!(counts.other(), 20);
        assert_eq!(counts.finished(), 210);
        assert_eq!(counts.timed_out(), 33);
        assert_eq!(counts.success_rate(), Some(180.0 / 210.0));
        assert_eq!(counts.first_time_right(), Some(0.7));
        assert_eq!(StateCounts::default().success_rate(), None);
    }

    #[test]
    fn nearest_rank_is_the_ceiling_of_p_n_over_100() {
        assert_eq!(nearest_rank(50, 0), None);
        assert_eq!(nearest_rank(50, 1), Some(1));
        assert_eq!(nearest_rank(95, 1), Some(1));
        assert_eq!(nearest_rank(50, 10), Some(5));
        assert_eq!(nearest_rank(90, 10), Some(9));
        assert_eq!(nearest_rank(95, 10), Some(10));
        assert_eq!(nearest_rank(95, 20), Some(19));
        assert_eq!(nearest_rank(50, 3), Some(2));
    }

    proptest! {
        #[test]
        fn nearest_rank_is_the_smallest_value_with_p_percent_at_or_below(
            mut values in proptest::collection::vec(-50i64..50, 1..60),
            p in prop::sample::select(vec![50u64, 90, 95]),
        ) {
            values.sort_unstable();
            let n = values.len() as u64;
            let chosen = values[nearest_rank(p, n).unwrap() as usize - 1];
            // The definition itself: the smallest v with at least p % of values ≤ v.
            let expected = values
                .iter()
                .copied()
                .find(|v| 100 * values.iter().filter(|w| *w <= v).count() as u64 >= p * n)
                .unwrap();
            prop_assert_eq!(chosen, expected);
        }
    }

    #[test]
    fn weeks_start_on_monday_and_days_at_midnight() {
        use crate::edm::{DateTimeOffset, Seconds};
        let at = |text: &str| {
            DateTimeOffset::parse(text, Seconds::Required)
                .unwrap()
                .ticks()
        };
        // 2026-11-30 is a Monday.
        let monday = at("2026-11-30T00:00:00Z");
        assert_eq!(
            at("2026-12-06T23:59:59Z") / Bucket::Week.ticks(),
            monday / Bucket::Week.ticks()
        );
        assert_eq!(monday % Bucket::Week.ticks(), 0);
        assert_eq!(at("2026-12-07T00:00:00Z") % Bucket::Week.ticks(), 0);
        let (first, last) =
            Bucket::Day.span(at("2026-11-30T06:00:00Z"), at("2026-12-01T06:00:00Z"));
        assert_eq!(last - first, 1);
        let (first, last) =
            Bucket::Day.span(at("2026-11-30T00:00:00Z"), at("2026-12-01T00:00:00Z"));
        assert_eq!(last - first, 0);
    }

    #[test]
    fn first_time_right_of_a_device() {
        assert_eq!(device_first_time_right(0, None), None);
        assert_eq!(device_first_time_right(1, Some(state::SUCCESS)), Some(true));
        assert_eq!(device_first_time_right(1, Some(state::IN_PROGRESS)), None);
        assert_eq!(
            device_first_time_right(2, Some(state::IN_PROGRESS)),
            Some(false)
        );
        assert_eq!(
            device_first_time_right(1, Some(state::FAILURE)),
            Some(false)
        );
        assert_eq!(
            device_first_time_right(1, Some(state::SUCCESS_ON_RETRY)),
            Some(false)
        );
    }

    #[test]
    fn the_phase_of_a_failure() {
        assert_eq!(Phase::of(3, 3), Phase::DeviceSetup);
        assert_eq!(Phase::of(1, 3), Phase::AccountSetup);
        assert_eq!(Phase::of(1, 1), Phase::Unknown);
    }
}
