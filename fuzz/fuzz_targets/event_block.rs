//! The event log's block decoder over arbitrary (damaged) stored bytes: an error, never a panic or a huge
//! allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = labd_log::block::decode(data);
});
