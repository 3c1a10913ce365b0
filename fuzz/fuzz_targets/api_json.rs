//! Fuzzes the local API's JSON bodies (the three action routes): no panic, the size cap holds,
//! and every rejection is a 4xx that names a field.
#![no_main]

use finesse_taskd::api::bodies::{self, MAX_BODY, Rejection};
use libfuzzer_sys::fuzz_target;

fn check(bytes: &[u8], r: Result<(), Rejection>) {
    if let Err(e) = r {
        assert!((400..500).contains(&e.status), "{e:?}");
        assert!(!e.field.is_empty(), "{e:?}");
        if bytes.len() > MAX_BODY {
            assert_eq!(e.status, 413);
        }
    } else {
        assert!(bytes.len() <= MAX_BODY, "a body above the cap was accepted");
    }
}

fuzz_target!(|data: &[u8]| {
    check(data, bodies::dialog_action(data).map(|_| ()));
    check(data, bodies::media_state(data).map(|_| ()));
    check(data, bodies::routable(data).map(|_| ()));
});
