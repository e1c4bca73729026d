//! Fuzzes the `$filter` lexer, parser and binder: any input must give a value or an error, never
//! a panic, a hang or a stack overflow.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = graphpilot::odata::parse_filter(text);
        let _ = graphpilot::odata::bind_filter(&graphpilot::model::AUTOPILOT_EVENT, text);
        let _ = graphpilot::odata::bind_filter(&graphpilot::model::POLICY_STATUS_DETAIL, text);
    }
});
