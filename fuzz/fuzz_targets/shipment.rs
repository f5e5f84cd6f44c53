//! A shipment from another host's labd, as a hub reads it off NATS: any bytes give events, held events or a
//! clear error, never a panic or an allocation the bytes do not justify.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let _ = labd_log::shipment::decode(data);
});
