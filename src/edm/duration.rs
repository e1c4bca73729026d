//! `Edm.Duration` as exact signed ticks (100 ns), printed the way .NET's `XmlConvert.ToString(TimeSpan)`
//! prints it, since that is what Graph returns (`PT3M0.3227266S`, `P1DT2H`, `PT0S`).

use std::fmt;

use super::datetime_offset::{Cursor, TICKS_PER_SECOND, write_fraction};

const TICKS_PER_MINUTE: i64 = 60 * TICKS_PER_SECOND;
const TICKS_PER_HOUR: i64 = 60 * TICKS_PER_MINUTE;
const TICKS_PER_DAY: i64 = 24 * TICKS_PER_HOUR;

/// A signed span of time, exact to 100 ns, within .NET `TimeSpan`'s range.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Duration(i64);

impl Duration {
    pub const ZERO: Duration = Duration(0);

    pub fn from_ticks(ticks: i64) -> Self {
        Self(ticks)
    }

    pub fn ticks(self) -> i64 {
        self.0
    }

    /// Parses `[-]P[nD][T[nH][nM][n[.fffffff]S]]`. Years, months and weeks are rejected because
    /// their length in ticks is not fixed.
    pub fn parse(text: &str) -> Result<Self, String> {
        Self::parse_iso(text).map_err(|reason| match python_timedelta(text) {
            Some(iso) => format!(
                "'{text}' looks like a Python timedelta; durations use ISO 8601, e.g. '{iso}'"
            ),
            None => format!(
                "{reason}; durations use ISO 8601 form [-]P[nD][T[nH][nM][n[.fffffff]S]], e.g. 'PT3M0.3227266S'"
            ),
        })
    }

    /// Python's `str(timedelta)` form (`0:03:00.322727`, `1 day, 2:00:00`), which the official
    /// Python SDK writes for durations: accepted only where files saved by it are read (imports).
    pub fn from_python_timedelta(text: &str) -> Option<Self> {
        python_timedelta(text)
    }

    fn parse_iso(text: &str) -> Result<Self, String> {
        let mut cursor = Cursor::new(text);
        let negative = cursor.peek() == Some(b'-');
        if negative {
            cursor.bump();
        }
        if cursor.bump() != Some(b'P') {
            return Err("a duration starts with 'P'".into());
        }
        let overflow = || "the duration is out of range".to_string();
        let mut ticks: i64 = 0;
        let mut components = 0;
        let mut in_time = false;
        // Designators must appear in this order; each at most once.
        let mut last_rank = 0;
        loop {
            if cursor.at_end() {
                break;
            }
            if cursor.peek() == Some(b'T') {
                if in_time {
                    return Err("'T' appears twice".into());
                }
                cursor.bump();
                in_time = true;
                if cursor.at_end() {
                    return Err("'T' must be followed by hours, minutes or seconds".into());
                }
                continue;
            }
            let whole = cursor.take_while(|b| b.is_ascii_digit());
            if whole.is_empty() {
                return Err("expected a number".into());
            }
            let mut fraction_ticks = 0;
            let mut has_fraction = false;
            if cursor.peek() == Some(b'.') {
                cursor.bump();
                let digits = cursor.take_while(|b| b.is_ascii_digit());
                if digits.is_empty() || digits.len() > 7 {
                    return Err("seconds take 1 to 7 fractional digits".into());
                }
                fraction_ticks = digits.parse::<i64>().map_err(|_| overflow())?
                    * 10_i64.pow(7 - digits.len() as u32);
                has_fraction = true;
            }
            let value: i64 = whole.parse().map_err(|_| overflow())?;
            let (rank, unit) = match (cursor.bump(), in_time) {
                (Some(b'D'), false) => (1, TICKS_PER_DAY),
                (Some(b'H'), true) => (2, TICKS_PER_HOUR),
                (Some(b'M'), true) => (3, TICKS_PER_MINUTE),
                (Some(b'S'), true) => (4, TICKS_PER_SECOND),
                (Some(b'Y' | b'W'), _) | (Some(b'M'), false) => {
                    return Err("years, months and weeks are not allowed".into());
                }
                _ => return Err("expected D, or after 'T' one of H, M, S".into()),
            };
            if rank <= last_rank {
                return Err("components must appear once each, in the order D, H, M, S".into());
            }
            if has_fraction && rank != 4 {
                return Err("only seconds may have a fraction".into());
            }
            last_rank = rank;
            components += 1;
            ticks = value
                .checked_mul(unit)
                .and_then(|t| t.checked_add(fraction_ticks))
                .and_then(|t| ticks.checked_add(t))
                .ok_or_else(overflow)?;
        }
        if components == 0 {
            return Err("a duration needs at least one component".into());
        }
        Ok(Self(if negative { -ticks } else { ticks }))
    }
}

impl fmt::Display for Duration {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        if self.0 == 0 {
            return f.write_str("PT0S");
        }
        if self.0 < 0 {
            f.write_str("-")?;
        }
        let ticks = self.0.unsigned_abs();
        let (day, hour, minute, second) = (
            TICKS_PER_DAY as u64,
            TICKS_PER_HOUR as u64,
            TICKS_PER_MINUTE as u64,
            TICKS_PER_SECOND as u64,
        );
        let days = ticks / day;
        let hours = ticks % day / hour;
        let minutes = ticks % hour / minute;
        let seconds = ticks % minute / second;
        let fraction = ticks % second;
        f.write_str("P")?;
        if days > 0 {
            write!(f, "{days}D")?;
        }
        if hours > 0 || minutes > 0 || seconds > 0 || fraction > 0 {
            f.write_str("T")?;
            if hours > 0 {
                write!(f, "{hours}H")?;
            }
            if minutes > 0 {
                write!(f, "{minutes}M")?;
            }
            if seconds > 0 || fraction > 0 {
                write!(f, "{seconds}")?;
                write_fraction(f, fraction as i64)?;
                f.write_str("S")?;
            }
        }
        Ok(())
    }
}

/// Recognises Python's `str(timedelta)` output (`0:03:00.322727`, `1 day, 2:00:00`), so that an
/// error can show the ISO form the client should have sent.
fn python_timedelta(text: &str) -> Option<Duration> {
    let (days, clock) = match text.split_once(", ") {
        Some((days, clock)) => {
            let count = days
                .strip_suffix(" days")
                .or_else(|| days.strip_suffix(" day"))?;
            (count.trim().parse::<i64>().ok()?, clock)
        }
        None => (0, text),
    };
    let mut parts = clock.split(':');
    let hours: i64 = parts.next()?.parse().ok()?;
    let minutes: i64 = parts.next()?.parse().ok()?;
    let seconds_text = parts.next()?;
    if parts.next().is_some() || !seconds_text.starts_with(|c: char| c.is_ascii_digit()) {
        return None;
    }
    let (whole, fraction) = seconds_text.split_once('.').unwrap_or((seconds_text, ""));
    let seconds: i64 = whole.parse().ok()?;
    if fraction.len() > 7 || !fraction.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let fraction_ticks = if fraction.is_empty() {
        0
    } else {
        fraction.parse::<i64>().ok()? * 10_i64.pow(7 - fraction.len() as u32)
    };
    let ticks = days
        .checked_mul(TICKS_PER_DAY)?
        .checked_add(hours.checked_mul(TICKS_PER_HOUR)?)?
        .checked_add(minutes.checked_mul(TICKS_PER_MINUTE)?)?
        .checked_add(seconds.checked_mul(TICKS_PER_SECOND)?)?
        .checked_add(fraction_ticks)?;
    Some(Duration(ticks))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn round_trip(text: &str) -> String {
        Duration::parse(text).unwrap().to_string()
    }

    #[test]
    fn dotnet_forms_print_back_unchanged() {
        for text in [
            "PT3M0.3227266S",
            "PT3M29.4901414S",
            "PT54.2271471S",
            "P1DT2H",
            "PT0S",
            "-PT1M32.1347897S",
            "P10675199DT2H48M5.4775807S",
        ] {
            assert_eq!(round_trip(text), text);
        }
    }

    #[test]
    fn other_valid_forms_are_normalised() {
        assert_eq!(round_trip("PT90M"), "PT1H30M");
        assert_eq!(round_trip("P0D"), "PT0S");
        assert_eq!(round_trip("PT1.5S"), "PT1.5S");
        assert_eq!(round_trip("PT0.0000001S"), "PT0.0000001S");
        assert_eq!(round_trip("P2D"), "P2D");
    }

    #[test]
    fn invalid_forms_are_rejected_with_a_reason() {
        for (input, reason) in [
            ("P1Y", "years, months and weeks"),
            ("P1M", "years, months and weeks"),
            ("P1W", "years, months and weeks"),
            ("P", "at least one component"),
            ("PT", "must be followed"),
            ("PT1.12345678S", "1 to 7 fractional"),
            ("PT1.5M", "only seconds"),
            ("PT1S2M", "in the order"),
            ("1H", "starts with 'P'"),
            ("", "starts with 'P'"),
            ("P99999999999999999999D", "out of range"),
            ("P10675200D", "out of range"),
        ] {
            let error = Duration::parse(input).unwrap_err();
            assert!(error.contains(reason), "{input}: {error}");
        }
    }

    /// Found by the `filter` fuzz target: a timedelta-looking duration with huge seconds overflowed
    /// while the error message was being written.
    #[test]
    fn fuzz_crash_91525e04_huge_timedelta_seconds_are_rejected_without_overflow() {
        let error = Duration::parse("00:00:08999999999999999999.9").unwrap_err();
        assert!(error.contains("ISO 8601"), "{error}");
        assert!(Duration::parse("99999999999 days, 0:00:00").is_err());
    }

    #[test]
    fn python_timedelta_strings_are_rejected_with_the_iso_form() {
        let error = Duration::parse("0:03:00.322727").unwrap_err();
        assert!(error.contains("'PT3M0.322727S'"), "{error}");
        let error = Duration::parse("1 day, 2:00:00").unwrap_err();
        assert!(error.contains("'P1DT2H'"), "{error}");
    }
}
