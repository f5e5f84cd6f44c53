//! The stored form of a block of events: `u32` (little endian) length of the msgpack, then zstd of the
//! msgpack array of events (named fields, so fields can be added later). Consecutive events of a run
//! share most of their bytes, which zstd removes: a metric point costs a few bytes on disk.

use labd_schemas::Event;

/// zstd level: 1 is fast and already removes the repeated field names.
const LEVEL: i32 = 1;

/// Encodes events into a block.
pub fn encode(events: &[Event]) -> Result<Vec<u8>, String> {
    let raw = rmp_serde::to_vec_named(events).map_err(|e| e.to_string())?;
    let packed = zstd::bulk::compress(&raw, LEVEL).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(4 + packed.len());
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(out)
}

/// Decodes a block; the message says what is wrong when it does not decode.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
    let Some((len, packed)) = bytes.split_first_chunk::<4>() else {
        return Err("block shorter than its header".into());
    };
    let raw = zstd::bulk::decompress(packed, u32::from_le_bytes(*len) as usize)
        .map_err(|e| e.to_string())?;
    rmp_serde::from_slice(&raw).map_err(|e| e.to_string())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::log::testing::message;

    #[test]
    fn round_trip() {
        let events = vec![message("a", "one"), message("b", "two")];
        assert_eq!(decode(&encode(&events).unwrap()).unwrap(), events);
    }

    #[test]
    fn damage_is_reported_not_panicked() {
        let mut bytes = encode(&[message("a", "one")]).unwrap();
        bytes.truncate(bytes.len() - 3);
        assert!(decode(&bytes).is_err());
        assert!(decode(&[1, 2]).is_err());
    }
}
