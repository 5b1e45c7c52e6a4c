//! The cassette loader (`replay = "FILE"`) on arbitrary text, then one lookup: an error naming
//! the file and exchange, never a panic.
#![no_main]

use std::path::Path;

use airlock::cassette::Replay;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(r) = Replay::parse(text, Path::new("/nonexistent/cassette.json")) {
        let _ = r.next("GET", "https://example.test/api/x", b"");
        let _ = r.next("POST", "https://example.test/api/x", b"{}");
    }
});
