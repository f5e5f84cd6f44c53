//! Decoding one stored event (msgpack) from arbitrary bytes; what decodes must encode again and decode to the
//! same event.
#![no_main]
use labd_schemas::Event;
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(event) = rmp_serde::from_slice::<Event>(data) {
        let again = rmp_serde::to_vec_named(&event).expect("a decoded event encodes");
        let back: Event = rmp_serde::from_slice(&again).expect("an encoded event decodes");
        assert_eq!(
            rmp_serde::to_vec_named(&back).expect("encodes"),
            again,
            "the round trip changed the event"
        );
    }
});
