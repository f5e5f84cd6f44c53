//! The columnar body of a format 2 block (metric rows as delta-coded columns) over arbitrary bytes, without
//! the zstd frame in front of it: an error, never a panic or a huge allocation.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = labd_log::block::decode_columns(data);
});
