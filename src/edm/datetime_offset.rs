//! `Edm.DateTimeOffset` as exact UTC ticks (100 ns since 0001-01-01T00:00:00Z), the unit .NET and
//! therefore Graph use. Input accepts any offset and 0–7 fractional digits; output is always UTC with
//! `Z` and the fraction trimmed of trailing zeros (api.md §5).

use std::fmt;

/// 100-nanosecond ticks in one second.
pub const TICKS_PER_SECOND: i64 = 10_000_000;
const SECONDS_PER_DAY: i64 = 86_400;
/// Ticks of 9999-12-31T23:59:59.9999999Z, the largest representable instant.
pub const MAX_TICKS: i64 = 3_155_378_975_999_999_999;

/// An instant, exact to 100 ns, in UTC.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct DateTimeOffset(i64);

/// Whether a literal must carry seconds: bodies require them, `$filter` literals do not (OData ABNF).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Seconds {
    Required,
    Optional,
}

impl DateTimeOffset {
    /// `0001-01-01T00:00:00Z`, Graph's value for an unset non-nullable DateTimeOffset.
    pub const MIN: DateTimeOffset = DateTimeOffset(0);

    pub fn from_ticks(ticks: i64) -> Option<Self> {
        (0..=MAX_TICKS).contains(&ticks).then_some(Self(ticks))
    }

    pub fn ticks(self) -> i64 {
        self.0
    }

    /// The current instant (system clock).
    pub fn now() -> Self {
        let since_unix = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .unwrap_or_default();
        let unix_epoch_ticks = days_from_civil(1970, 1, 1) * SECONDS_PER_DAY * TICKS_PER_SECOND;
        Self(unix_epoch_ticks + (since_unix.as_nanos() / 100) as i64)
    }

    /// Parses `YYYY-MM-DDThh:mm[:ss[.fffffff]](Z|±hh:mm)`.
    pub fn parse(text: &str, seconds: Seconds) -> Result<Self, String> {
        let mut cursor = Cursor::new(text);
        let year = cursor.digits(4, "a four-digit year")?;
        cursor.expect(b'-')?;
        let month = cursor.digits(2, "a two-digit month")?;
        cursor.expect(b'-')?;
        let day = cursor.digits(2, "a two-digit day")?;
        cursor.expect(b'T')?;
        let hour = cursor.digits(2, "a two-digit hour")?;
        cursor.expect(b':')?;
        let minute = cursor.digits(2, "two-digit minutes")?;
        let mut second = 0;
        let mut fraction_ticks = 0;
        if cursor.peek() == Some(b':') {
            cursor.bump();
            second = cursor.digits(2, "two-digit seconds")?;
            if cursor.peek() == Some(b'.') {
                cursor.bump();
                let digits = cursor.take_while(|b| b.is_ascii_digit());
                if digits.is_empty() {
                    return Err("a decimal point must be followed by digits".into());
                }
                if digits.len() > 7 {
                    return Err("at most 7 fractional digits (100 ns) are allowed".into());
                }
                let value: i64 = digits.parse().map_err(|_| "invalid fraction")?;
                fraction_ticks = value * 10_i64.pow(7 - digits.len() as u32);
            }
        } else if seconds == Seconds::Required {
            return Err("seconds are required (hh:mm:ss)".into());
        }
        let offset_minutes = match cursor.bump() {
            Some(b'Z') => 0,
            Some(sign @ (b'+' | b'-')) => {
                let hours = cursor.digits(2, "a two-digit offset hour")?;
                cursor.expect(b':')?;
                let minutes = cursor.digits(2, "two-digit offset minutes")?;
                if minutes > 59 || hours * 60 + minutes > 14 * 60 {
                    return Err("the offset must be between -14:00 and +14:00".into());
                }
                let total = hours * 60 + minutes;
                if sign == b'-' { -total } else { total }
            }
            _ => return Err("a time zone offset ('Z' or ±hh:mm) is required".into()),
        };
        if !cursor.at_end() {
            return Err("unexpected characters after the offset".into());
        }
        if year == 0 || !(1..=12).contains(&month) || day == 0 || day > days_in_month(year, month) {
            return Err("the date does not exist".into());
        }
        if hour > 23 || minute > 59 || second > 59 {
            return Err("the time of day is out of range".into());
        }
        let local_seconds = days_from_civil(year, month, day) * SECONDS_PER_DAY
            + hour * 3600
            + minute * 60
            + second;
        let utc_ticks = (local_seconds - offset_minutes * 60) * TICKS_PER_SECOND + fraction_ticks;
        Self::from_ticks(utc_ticks).ok_or_else(|| {
            "the instant is outside 0001-01-01T00:00:00Z … 9999-12-31T23:59:59.9999999Z".into()
        })
    }
}

impl fmt::Display for DateTimeOffset {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let total_seconds = self.0.div_euclid(TICKS_PER_SECOND);
        let fraction = self.0.rem_euclid(TICKS_PER_SECOND);
        let days = total_seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = total_seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        write!(
            f,
            "{year:04}-{month:02}-{day:02}T{:02}:{:02}:{:02}",
            second_of_day / 3600,
            second_of_day / 60 % 60,
            second_of_day % 60
        )?;
        write_fraction(f, fraction)?;
        f.write_str("Z")
    }
}

impl DateTimeOffset {
    /// Appends the same text as [`fmt::Display`] to `out`, digit by digit: a page of events
    /// renders hundreds of instants, and the formatting machinery was a tenth of its CPU.
    pub fn push_to(&self, out: &mut String) {
        let total_seconds = self.0.div_euclid(TICKS_PER_SECOND);
        let fraction = self.0.rem_euclid(TICKS_PER_SECOND);
        let days = total_seconds.div_euclid(SECONDS_PER_DAY);
        let second_of_day = total_seconds.rem_euclid(SECONDS_PER_DAY);
        let (year, month, day) = civil_from_days(days);
        if !(0..=9999).contains(&year) {
            use fmt::Write;
            let _ = write!(out, "{self}");
            return;
        }
        let mut text = *b"0000-00-00T00:00:00.0000000Z";
        let mut put = |at: usize, width: usize, mut number: u64| {
            for slot in text[at..at + width].iter_mut().rev() {
                *slot = b'0' + (number % 10) as u8;
                number /= 10;
            }
        };
        put(0, 4, year as u64);
        put(5, 2, month as u64);
        put(8, 2, day as u64);
        put(11, 2, (second_of_day / 3600) as u64);
        put(14, 2, (second_of_day / 60 % 60) as u64);
        put(17, 2, (second_of_day % 60) as u64);
        put(20, 7, fraction as u64);
        let end = if fraction == 0 {
            19
        } else {
            20 + text[20..27]
                .iter()
                .rposition(|&d| d != b'0')
                .map_or(0, |last| last + 1)
        };
        out.push_str(std::str::from_utf8(&text[..end]).expect("ASCII digits"));
        out.push('Z');
    }
}

/// Writes `.fffffff` with trailing zeros trimmed, or nothing for a whole second.
pub(crate) fn write_fraction(f: &mut fmt::Formatter<'_>, fraction_ticks: i64) -> fmt::Result {
    if fraction_ticks == 0 {
        return Ok(());
    }
    // Seven digits on the stack, trailing zeros trimmed (a page renders thousands of these).
    let mut digits = [b'0'; 7];
    let mut rest = fraction_ticks.unsigned_abs();
    for digit in digits.iter_mut().rev() {
        *digit = b'0' + (rest % 10) as u8;
        rest /= 10;
    }
    let used = digits
        .iter()
        .rposition(|&d| d != b'0')
        .map_or(0, |last| last + 1);
    f.write_str(".")?;
    f.write_str(std::str::from_utf8(&digits[..used]).expect("ASCII digits"))
}

fn is_leap(year: i64) -> bool {
    year % 4 == 0 && (year % 100 != 0 || year % 400 == 0)
}

fn days_in_month(year: i64, month: i64) -> i64 {
    match month {
        2 if is_leap(year) => 29,
        2 => 28,
        4 | 6 | 9 | 11 => 30,
        _ => 31,
    }
}

/// Days since 0001-01-01 of a proleptic Gregorian date (Howard Hinnant's algorithm, shifted).
fn days_from_civil(year: i64, month: i64, day: i64) -> i64 {
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    // 719_468 days separate 0000-03-01 from 1970-01-01; 719_162 separate 0001-01-01 from 1970-01-01.
    era * 146_097 + doe - 719_468 + 719_162
}

fn civil_from_days(days_since_0001: i64) -> (i64, i64, i64) {
    let z = days_since_0001 - 719_162 + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    (year, month, day)
}

/// A byte cursor shared by the EDM parsers.
pub(crate) struct Cursor<'a> {
    text: &'a str,
    position: usize,
}

impl<'a> Cursor<'a> {
    pub(crate) fn new(text: &'a str) -> Self {
        Self { text, position: 0 }
    }

    pub(crate) fn peek(&self) -> Option<u8> {
        self.text.as_bytes().get(self.position).copied()
    }

    pub(crate) fn bump(&mut self) -> Option<u8> {
        let byte = self.peek()?;
        self.position += 1;
        Some(byte)
    }

    pub(crate) fn at_end(&self) -> bool {
        self.position == self.text.len()
    }

    pub(crate) fn expect(&mut self, wanted: u8) -> Result<(), String> {
        match self.bump() {
            Some(found) if found == wanted => Ok(()),
            _ => Err(format!(
                "expected '{}' at position {}",
                wanted as char, self.position
            )),
        }
    }

    pub(crate) fn take_while(&mut self, keep: impl Fn(u8) -> bool) -> &'a str {
        let start = self.position;
        while self.peek().is_some_and(&keep) {
            self.position += 1;
        }
        &self.text[start..self.position]
    }

    fn digits(&mut self, count: usize, what: &str) -> Result<i64, String> {
        let start = self.position;
        let digits = self.take_while(|b| b.is_ascii_digit());
        if digits.len() != count {
            return Err(format!("expected {what} at position {start}"));
        }
        Ok(digits.parse().expect("ASCII digits fit an i64"))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn utc(text: &str) -> String {
        DateTimeOffset::parse(text, Seconds::Required)
            .unwrap()
            .to_string()
    }

    #[test]
    fn offsets_are_normalised_to_utc_with_trimmed_fraction() {
        assert_eq!(
            utc("2016-12-31T23:56:50.5526409+03:00"),
            "2016-12-31T20:56:50.5526409Z"
        );
        assert_eq!(
            utc("2017-01-01T00:00:05.810584+03:00"),
            "2016-12-31T21:00:05.810584Z"
        );
        assert_eq!(utc("2017-01-01T00:00:43.0000000Z"), "2017-01-01T00:00:43Z");
        assert_eq!(utc("2017-01-01T00:00:43.5-01:30"), "2017-01-01T01:30:43.5Z");
    }

    #[test]
    fn the_whole_range_is_accepted_and_nothing_beyond() {
        assert_eq!(utc("0001-01-01T00:00:00Z"), "0001-01-01T00:00:00Z");
        assert_eq!(
            utc("9999-12-31T23:59:59.9999999Z"),
            "9999-12-31T23:59:59.9999999Z"
        );
        assert_eq!(
            DateTimeOffset::parse("9999-12-31T23:59:59.9999999Z", Seconds::Required)
                .unwrap()
                .ticks(),
            MAX_TICKS
        );
        assert!(DateTimeOffset::parse("0001-01-01T00:00:00+00:01", Seconds::Required).is_err());
        assert!(DateTimeOffset::parse("9999-12-31T23:59:59-00:01", Seconds::Required).is_err());
    }

    #[test]
    fn invalid_forms_are_rejected_with_a_reason() {
        for (input, reason) in [
            ("2021-02-29T00:00:00Z", "does not exist"),
            ("2021-01-01T24:00:00Z", "out of range"),
            ("2021-01-01T00:00:00", "offset"),
            ("2021-01-01T00:00Z", "seconds are required"),
            ("2021-01-01T00:00:00.12345678Z", "7 fractional"),
            ("2021-01-01T00:00:00.Z", "followed by digits"),
            ("2021-01-01 00:00:00Z", "expected 'T'"),
            ("2021-01-01T00:00:00+15:00", "offset must be"),
            ("2021-01-01T00:00:00Zjunk", "unexpected characters"),
            ("21-01-01T00:00:00Z", "four-digit year"),
            ("", "four-digit year"),
        ] {
            let error = DateTimeOffset::parse(input, Seconds::Required).unwrap_err();
            assert!(error.contains(reason), "{input}: {error}");
        }
    }

    #[test]
    fn filter_literals_may_omit_seconds() {
        let parsed = DateTimeOffset::parse("2021-03-01T00:00Z", Seconds::Optional).unwrap();
        assert_eq!(parsed.to_string(), "2021-03-01T00:00:00Z");
    }
}
