//! Fuzzes the JSON body decoders (create with deep insert, PATCH, import records): any bytes must
//! give a decoded body or a `BodyError`, never a panic, a hang or a stack overflow; and what a
//! create accepts must survive its own JSON rendering.
#![no_main]

use graphpilot::model::{
    AUTOPILOT_EVENT, POLICY_STATUS_DETAIL, decode_create, decode_import, decode_patch,
    decode_stored,
};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(body) = decode_create(&AUTOPILOT_EVENT, data, true) {
        let json = body.event.to_json(&AUTOPILOT_EVENT);
        assert_eq!(decode_stored(&AUTOPILOT_EVENT, &json).unwrap(), body.event);
    }
    let _ = decode_create(&POLICY_STATUS_DETAIL, data, false);
    let _ = decode_patch(&AUTOPILOT_EVENT, data, "key");
    let _ = decode_patch(&POLICY_STATUS_DETAIL, data, "key");
    let _ = decode_import(data);
});
