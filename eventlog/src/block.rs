//! The stored form of a block of events: `u32` (little endian) length of the msgpack, then zstd of the
//! msgpack array of events (named fields, so fields can be added later). Consecutive events of a run
//! share most of their bytes, which zstd removes: a metric point costs a few bytes on disk.

use labd_schemas::Event;

/// zstd level: 1 is fast and already removes the repeated field names.
const LEVEL: i32 = 1;

/// Largest block (uncompressed): far above 1024 events of a 1 MiB line each. A header that says more is
/// damage, and is refused before anything is allocated for it.
const MAX_RAW: usize = 1 << 30;

/// Encodes events into a block.
pub fn encode(events: &[Event]) -> Result<Vec<u8>, String> {
    let raw = rmp_serde::to_vec_named(events).map_err(|e| e.to_string())?;
    if raw.len() > MAX_RAW {
        return Err(format!(
            "{} events take {} bytes, more than a block holds ({MAX_RAW})",
            events.len(),
            raw.len()
        ));
    }
    let packed = zstd::bulk::compress(&raw, LEVEL).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(4 + packed.len());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(out)
}

/// Decodes a block; the message says what is wrong when it does not decode.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let raw = unpack(bytes)?;
    rmp_serde::from_slice(&raw).map_err(|e| e.to_string())
}

/// The block's msgpack array of events, decompressed and checked against its header.
pub fn unpack(bytes: &[u8]) -> Result<Vec<u8>, String> {
    let Some((len, packed)) = bytes.split_first_chunk::<4>() else {
        return Err("block shorter than its header".into());
    };
    let len = u32::from_le_bytes(*len) as usize;
    if len > MAX_RAW {
        return Err(format!(
            "block header says {len} bytes, more than any block holds (damaged)"
        ));
    }
    match zstd::zstd_safe::get_frame_content_size(packed) {
        Ok(Some(n)) if n != len as u64 => {
            return Err(format!(
                "block header says {len} bytes, its zstd frame {n} (damaged)"
            ));
        }
        Ok(_) => {}
        Err(_) => return Err("block is not a zstd frame (damaged)".into()),
    }
    zstd::bulk::decompress(packed, len).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::message;

    /// Regression (fuzz target `event_block`): a damaged header claiming gigabytes was allocated before the
    /// frame was looked at.
    #[test]
    fn a_damaged_length_is_refused_before_allocating() {
        let mut block = encode(&[message("a", "one")]).unwrap();
        block[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&block).unwrap_err().contains("damaged"));
        block[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(decode(&block).unwrap_err().contains("damaged"));
        assert!(
            decode(&[1, 0, 0, 0, 9, 9, 9])
                .unwrap_err()
                .contains("damaged")
        );
    }

    #[test]
    fn round_trip() {
        let events = vec![message("a", "one"), message("b", "two")];
        assert_eq!(decode(&encode(&events).unwrap()).unwrap(), events);
    }

    proptest::proptest! {
        /// Metric values, axes and config numbers are stored with their bits: any f64, any i64 or u64.
        #[test]
        fn numbers_keep_their_bits(
            v in proptest::num::f64::ANY,
            e in proptest::num::f64::ANY,
            w in proptest::num::f64::ANY,
            i in proptest::num::i64::ANY,
            u in proptest::num::u64::ANY,
        ) {
            use labd_schemas::event::{ExperimentCreated, MetricsLogged};
            use labd_schemas::{EventKind, ExperimentId, Source};
            let exp = ExperimentId("x".into());
            let events = vec![
                Event::new(0, Source::Daemon, EventKind::ExperimentCreated(ExperimentCreated {
                    exp: exp.clone(),
                    name: "x".into(),
                    description: None,
                    tags: Vec::new(),
                    config: serde_json::json!({"i": i, "u": u, "f": serde_json::Number::from_f64(v)}),
                    config_hash: String::new(),
                    host: String::new(),
                    started: 0,
                    extra: Default::default(),
                })),
                Event::new(0, Source::Daemon, EventKind::MetricsLogged(MetricsLogged {
                    exp,
                    split: None,
                    step: Some(i),
                    epoch: Some(e),
                    wall_time: Some(w),
                    x: [("t".to_string(), v)].into(),
                    values: [("v".to_string(), v)].into(),
                    extra: Default::default(),
                })),
            ];
            let back = decode(&encode(&events).unwrap()).unwrap();
            let EventKind::ExperimentCreated(c) = &back[0].kind else { panic!("created") };
            proptest::prop_assert_eq!(c.config["i"].as_i64(), Some(i));
            proptest::prop_assert_eq!(c.config["u"].as_u64(), Some(u));
            if v.is_finite() {
                proptest::prop_assert_eq!(c.config["f"].as_f64().map(f64::to_bits), Some(v.to_bits()));
            }
            let EventKind::MetricsLogged(m) = &back[1].kind else { panic!("metrics") };
            proptest::prop_assert_eq!(m.values["v"].to_bits(), v.to_bits());
            proptest::prop_assert_eq!(m.x["t"].to_bits(), v.to_bits());
            proptest::prop_assert_eq!(m.epoch.map(f64::to_bits), Some(e.to_bits()));
            proptest::prop_assert_eq!(m.wall_time.map(f64::to_bits), Some(w.to_bits()));
            proptest::prop_assert_eq!(m.step, Some(i));
        }
    }

    #[test]
    fn damage_is_reported_not_panicked() {
        let mut bytes = encode(&[message("a", "one")]).unwrap();
        bytes.truncate(bytes.len() - 3);
        assert!(decode(&bytes).is_err());
        assert!(decode(&[1, 2]).is_err());
    }
}
