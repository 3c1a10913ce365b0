//! Fuzzes every REST response parser: Media, Dialogs, SystemInfo and ApiErrors. No panic.
#![no_main]

use finesse_taskd::finesse::model::{ApiErrors, Dialogs, Media, SystemInfo};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    if let Ok(m) = Media::parse(text) {
        let _ = (m.mrd(), m.limit(), m.reason(), m.is_routable(), m.state().len());
    }
    if let Ok(d) = Dialogs::parse(text) {
        for x in &d.dialogs {
            let _ = (x.mrd(), x.participant_state().len());
        }
    }
    let _ = SystemInfo::parse(text).map(|s| s.in_service());
    let _ = ApiErrors::parse(text).map(|e| e.errors.iter().any(|x| x.is_already_logged_in()));
});
