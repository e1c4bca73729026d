//! Property tests of the EDM types against jiff, an independent implementation: every instant and
//! duration in range round-trips exactly through our text form, and jiff reads that text as the
//! same value.

use jiff::tz::Offset;
use jiff::{Span, SpanRelativeTo, Timestamp};
use proptest::prelude::*;

use super::{DateTimeOffset, Duration, MAX_TICKS, Seconds};

/// Nanoseconds between 0001-01-01T00:00:00Z and the Unix epoch.
const UNIX_EPOCH_TICKS: i64 = 621_355_968_000_000_000;
/// jiff spans hold at most ±7,304,484 days; .NET's TimeSpan (and ours) reaches ±10,675,199.
const JIFF_SPAN_MAX_TICKS: i64 = 7_000_000 * 864_000_000_000;

fn jiff_timestamp(instant: DateTimeOffset) -> Timestamp {
    Timestamp::from_nanosecond(i128::from(instant.ticks() - UNIX_EPOCH_TICKS) * 100).unwrap()
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn utc_output_matches_jiff_and_parses_back(ticks in 0..=MAX_TICKS) {
        let instant = DateTimeOffset::from_ticks(ticks).unwrap();
        let text = instant.to_string();
        prop_assert_eq!(&text, &jiff_timestamp(instant).to_string());
        prop_assert_eq!(DateTimeOffset::parse(&text, Seconds::Required).unwrap(), instant);
    }

    #[test]
    fn the_fast_writer_writes_what_display_writes(ticks in 0..=MAX_TICKS) {
        let instant = DateTimeOffset::from_ticks(ticks).unwrap();
        let mut pushed = String::new();
        instant.push_to(&mut pushed);
        prop_assert_eq!(pushed, instant.to_string());
    }

    #[test]
    fn any_offset_form_written_by_jiff_parses_to_the_same_instant(
        ticks in 1_000_000_000_000_000i64..3_000_000_000_000_000_000,
        offset_minutes in -(14 * 60)..=(14 * 60),
    ) {
        let instant = DateTimeOffset::from_ticks(ticks).unwrap();
        let offset = Offset::from_seconds(offset_minutes * 60).unwrap();
        let text = jiff_timestamp(instant).display_with_offset(offset).to_string();
        prop_assert_eq!(DateTimeOffset::parse(&text, Seconds::Required).unwrap(), instant, "{}", text);
    }

    #[test]
    fn every_duration_round_trips(ticks in -i64::MAX..=i64::MAX) {
        let duration = Duration::from_ticks(ticks);
        prop_assert_eq!(Duration::parse(&duration.to_string()).unwrap(), duration);
    }

    #[test]
    fn jiff_reads_our_durations_as_the_same_length(ticks in -JIFF_SPAN_MAX_TICKS..=JIFF_SPAN_MAX_TICKS) {
        let text = Duration::from_ticks(ticks).to_string();
        let span: Span = text.parse().unwrap();
        let oracle = span.to_duration(SpanRelativeTo::days_are_24_hours()).unwrap();
        prop_assert_eq!(oracle.as_nanos(), i128::from(ticks) * 100, "{}", text);
    }

    #[test]
    fn garbage_never_panics_the_parsers(text in "\\PC{0,40}") {
        let _ = DateTimeOffset::parse(&text, Seconds::Optional);
        let _ = Duration::parse(&text);
    }
}
