//! One run-log line, as `labctl validate` and the run-log source parse it.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(text) = std::str::from_utf8(data) {
        let _ = labd_schemas::runlog::parse_line(text);
    }
});
