//! Fuzzes the `<Update>` notification decoder with escaped and unescaped input: no panic, and
//! a decoded update decodes the same way again from its escaped form.
#![no_main]

use finesse_taskd::finesse::model::Update;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let plain = Update::decode(text);
    // The same document doubly escaped must give the same answer.
    let escaped = text.replace('&', "&amp;").replace('<', "&lt;").replace('>', "&gt;");
    if text.trim_start().starts_with('<') {
        let again = Update::decode(&escaped);
        assert_eq!(plain.is_ok(), again.is_ok(), "escaped and plain forms disagree");
        if let (Ok(a), Ok(b)) = (plain, again) {
            assert_eq!(a, b);
        }
    }
});
