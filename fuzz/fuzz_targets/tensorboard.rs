//! The tensorboard source over arbitrary bytes, read in two goes split where the input's first two bytes say.
#![no_main]
use labd_sources::{Format, read_in_two};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((head, body)) = data.split_first_chunk::<2>() else {
        return;
    };
    read_in_two(
        Format::TensorBoard,
        body,
        u16::from_le_bytes(*head) as usize,
    );
});
