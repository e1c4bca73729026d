//! Fuzzes the DateTimeOffset and Duration parsers: any text gives a value or an error (never a
//! panic or an overflow), and every value parsed prints to a form that parses back to itself.
#![no_main]

use graphpilot::edm::{DateTimeOffset, Duration, Seconds};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    for seconds in [Seconds::Required, Seconds::Optional] {
        if let Ok(instant) = DateTimeOffset::parse(text, seconds) {
            let printed = instant.to_string();
            assert_eq!(DateTimeOffset::parse(&printed, Seconds::Required), Ok(instant), "{printed}");
        }
    }
    if let Ok(span) = Duration::parse(text) {
        let printed = span.to_string();
        assert_eq!(Duration::parse(&printed), Ok(span), "{printed}");
    }
    if let Some(span) = Duration::from_python_timedelta(text) {
        assert_eq!(Duration::parse(&span.to_string()), Ok(span));
    }
});
