//! Fuzzes the config loader on arbitrary TOML text: an error or a config, never a panic.
#![no_main]

use finesse_taskd::config::Config;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else { return };
    let _ = Config::parse(std::path::Path::new("fuzz.toml"), text);
});
