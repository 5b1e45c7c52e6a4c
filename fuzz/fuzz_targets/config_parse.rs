//! The config parser on arbitrary text: an error with a message, never a panic.
#![no_main]

use std::path::Path;

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = airlock::config::Config::parse(text, Path::new("/nonexistent/airlock.toml"));
    }
});
