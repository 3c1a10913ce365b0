//! Fuzzes the scanner of the server's XMPP byte stream: no panic, bounded memory, and the
//! same verdict however the bytes are split (the first byte decides where the cut falls).
#![no_main]

use finesse_taskd::xmpp::scan::Scanner;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, bytes)) = data.split_first() else { return };
    let mut whole = Scanner::new(4096);
    let once = whole.feed(bytes);
    let mut split = Scanner::new(4096);
    let at = usize::from(cut) * bytes.len() / 256;
    let (a, b) = bytes.split_at(at);
    split.feed(a);
    let twice = split.feed(b);
    assert_eq!(once, twice, "a split at {at} changed the verdict");
    // Byte by byte, too.
    let mut each = Scanner::new(4096);
    for x in bytes {
        each.feed(std::slice::from_ref(x));
    }
    assert_eq!(once, each.fault());
});
