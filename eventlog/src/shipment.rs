//! A shipment: a run of one host's events as they travel through a federation (NATS JetStream) to a hub.
//!
//! msgpack map of [`Shipment`]: the format, the host, the range `first..=last` of the host's log it covers, the
//! sequence numbers of the events it carries when that is not every one of the range (`seqs`, absent when it is),
//! and the events as a stored [`block`]. A range is covered whole even when some of its events are not shipped
//! (a host that is also a hub does not send on what it received), so a hub sees every host's log as one
//! unbroken line of ranges and tells a duplicate or a gap from the range alone.
//!
//! Decoding is tolerant: an event this labd cannot read (a newer format version, an unknown kind) comes back as
//! [`Item::Held`] with its bytes, to be kept and reported, never dropped.

use crate::{Seq, block};
use labd_schemas::Event;
use serde::{Deserialize, Serialize};

/// The newest shipment format, read and written. Format 2 carries a format 2 (columnar) block; format 1 a
/// format 1 block. A shipment says the format of its block so that an older hub names the version it lacks.
pub const SHIPMENT_FORMAT: u16 = 2;

/// The shipment format that carries `block` as it is.
pub fn format_for(block: &[u8]) -> u16 {
    u16::from(block::format(block)).max(1)
}

/// One shipment, as sent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Shipment {
    pub format: u16,
    pub host: String,
    pub first: Seq,
    pub last: Seq,
    /// The carried events' sequence numbers when they are not all of `first..=last` (`None`: they are).
    #[serde(default)]
    pub seqs: Option<Vec<Seq>>,
    /// The events, as a stored block ([`block::encode`]).
    #[serde(with = "serde_bytes")]
    pub block: Vec<u8>,
}

/// What a shipment says about itself, readable even when its events are not.
#[derive(Clone, Debug, PartialEq, Deserialize)]
pub struct Header {
    pub format: u16,
    pub host: String,
    pub first: Seq,
    pub last: Seq,
}

/// One event of a shipment, at its sequence number on the host.
// Nearly every item is an event: boxing it would cost an allocation each for the rare held one's sake.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug, PartialEq)]
pub enum Item {
    Event(Seq, Event),
    /// An event this labd cannot read: its msgpack as the host wrote it, and why.
    Held {
        seq: Seq,
        bytes: Vec<u8>,
        reason: String,
    },
}

impl Item {
    pub fn seq(&self) -> Seq {
        match self {
            Item::Event(seq, _) | Item::Held { seq, .. } => *seq,
        }
    }
}

/// Builds a shipment of `events` (their sequence numbers in `seqs`, ascending) covering `first..=last`.
pub fn build(
    host: &str,
    first: Seq,
    last: Seq,
    seqs: &[Seq],
    events: &[Event],
) -> Result<Vec<u8>, String> {
    debug_assert_eq!(seqs.len(), events.len());
    let dense = seqs.len() as u64 == last + 1 - first;
    let shipment = Shipment {
        format: SHIPMENT_FORMAT,
        host: host.to_string(),
        first,
        last,
        seqs: (!dense).then(|| seqs.to_vec()),
        block: block::encode(events)?,
    };
    debug_assert_eq!(format_for(&shipment.block), SHIPMENT_FORMAT);
    encode(&shipment)
}

/// Encodes a shipment.
pub fn encode(shipment: &Shipment) -> Result<Vec<u8>, String> {
    rmp_serde::to_vec_named(shipment).map_err(|e| e.to_string())
}

/// Reads a shipment's header alone.
pub fn header(bytes: &[u8]) -> Result<Header, String> {
    let h: Header = rmp_serde::from_slice(bytes).map_err(|e| format!("not a shipment: {e}"))?;
    if h.first == 0 || h.last < h.first {
        return Err(format!(
            "shipment covers {}..={}, not a range of a log",
            h.first, h.last
        ));
    }
    Ok(h)
}

/// Reads a shipment: its header and its events. An error means the shipment as a whole is unreadable (its
/// header, when that reads, says which range of which host it was); single unreadable events are
/// [`Item::Held`].
pub fn decode(bytes: &[u8]) -> Result<(Header, Vec<Item>), String> {
    let h = header(bytes)?;
    if h.format > SHIPMENT_FORMAT {
        return Err(format!(
            "shipment format {} (this labd reads up to {SHIPMENT_FORMAT})",
            h.format
        ));
    }
    let s: Shipment = rmp_serde::from_slice(bytes).map_err(|e| format!("not a shipment: {e}"))?;
    let items = block::decode_tolerant(&s.block)?;
    let named = s
        .seqs
        .as_ref()
        .map_or(h.last - h.first + 1, |s| s.len() as u64);
    if named != items.len() as u64 {
        return Err(format!(
            "shipment of {}..={} names {named} events but carries {}",
            h.first,
            h.last,
            items.len()
        ));
    }
    let seqs: Vec<Seq> = match s.seqs {
        Some(seqs) => seqs,
        None => (h.first..=h.last).collect(),
    };
    let mut prev = h.first - 1;
    for &seq in &seqs {
        if seq <= prev || seq > h.last {
            return Err(format!(
                "shipment of {}..={}: sequence {seq} out of order or outside its range",
                h.first, h.last
            ));
        }
        prev = seq;
    }
    let items = seqs
        .into_iter()
        .zip(items)
        .map(|(seq, item)| match item {
            Ok(event) => Item::Event(seq, event),
            Err((bytes, reason)) => Item::Held { seq, bytes, reason },
        })
        .collect();
    Ok((h, items))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::testing::message;
    use labd_schemas::event::EVENT_FORMAT_VERSION;

    #[test]
    fn a_shipment_reads_back_with_its_sequence_numbers() {
        let events = vec![message("a", "one"), message("a", "two")];
        let dense = build("gpu7", 5, 6, &[5, 6], &events).unwrap();
        let (h, items) = decode(&dense).unwrap();
        assert_eq!((h.host.as_str(), h.first, h.last), ("gpu7", 5, 6));
        assert_eq!(
            items,
            vec![
                Item::Event(5, events[0].clone()),
                Item::Event(6, events[1].clone())
            ]
        );
        // A range whose event 6 is not shipped (received from elsewhere).
        let sparse = build("gpu7", 5, 7, &[5, 7], &events).unwrap();
        let (_, items) = decode(&sparse).unwrap();
        assert_eq!(items.iter().map(Item::seq).collect::<Vec<_>>(), vec![5, 7]);
        // Nothing of its own in a range: an empty shipment still covers it.
        let empty = build("gpu7", 8, 9, &[], &[]).unwrap();
        assert_eq!(decode(&empty).unwrap().1, vec![]);
    }

    const SAMPLE_V1: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/shipment-v1.bin");

    /// Hosts and hubs run different labd versions: a shipment of format 1, as written once, must keep reading.
    #[test]
    fn a_stored_shipment_of_format_1_keeps_reading() {
        let events = vec![
            message("a", "one"),
            message("b", "two"),
            message("a", "three"),
        ];
        if std::env::var_os("LABD_WRITE_SAMPLES").is_some()
            && !std::path::Path::new(SAMPLE_V1).exists()
        {
            let bytes = build("gpu7", 40, 43, &[40, 41, 43], &events).unwrap();
            std::fs::create_dir_all(std::path::Path::new(SAMPLE_V1).parent().unwrap()).unwrap();
            std::fs::write(SAMPLE_V1, bytes).unwrap();
        }
        let bytes = std::fs::read(SAMPLE_V1)
            .expect("samples/shipment-v1.bin (LABD_WRITE_SAMPLES=1 writes it once)");
        let (h, items) = decode(&bytes).unwrap();
        assert_eq!(
            (h.format, h.host.as_str(), h.first, h.last),
            (1, "gpu7", 40, 43)
        );
        let want: Vec<Item> = [40, 41, 43]
            .into_iter()
            .zip(events)
            .map(|(seq, e)| Item::Event(seq, e))
            .collect();
        assert_eq!(items, want);
    }

    #[test]
    fn an_event_of_a_newer_format_or_kind_is_held_with_its_bytes() {
        let mut newer = message("a", "from the future");
        newer.v = EVENT_FORMAT_VERSION + 1;
        let known = message("a", "today");
        let mut raw = rmp_serde::to_vec_named(&vec![known.clone(), newer]).unwrap();
        // An unknown kind: rename the tag of a third event in its msgpack.
        let odd = rmp_serde::to_vec_named(&message("a", "odd")).unwrap();
        let tag = b"message_logged";
        let at = odd.windows(tag.len()).position(|w| w == tag).unwrap();
        let mut odd_renamed = odd.clone();
        odd_renamed[at..at + tag.len()].copy_from_slice(b"message_zogged");
        // Re-frame as an array of three.
        raw[0] = 0x93;
        raw.extend_from_slice(&odd_renamed);
        let items = block::tolerant_events(&raw).unwrap();
        assert_eq!(items[0], Ok(known));
        let (bytes, reason) = items[1].clone().unwrap_err();
        assert!(reason.contains("format v2"), "{reason}");
        let back: Event = rmp_serde::from_slice(&bytes).unwrap();
        assert_eq!(back.v, EVENT_FORMAT_VERSION + 1);
        let (bytes, reason) = items[2].clone().unwrap_err();
        assert!(reason.contains("does not read"), "{reason}");
        assert_eq!(bytes, odd_renamed);
    }

    #[test]
    fn damaged_shipments_are_refused_with_a_reason() {
        assert!(decode(b"\x93junk").unwrap_err().contains("not a shipment"));
        let events = vec![message("a", "one")];
        let mut s = Shipment {
            format: SHIPMENT_FORMAT,
            host: "h".into(),
            first: 3,
            last: 4,
            seqs: None,
            block: block::encode(&events).unwrap(),
        };
        let e = decode(&encode(&s).unwrap()).unwrap_err();
        assert!(e.contains("names 2 events but carries 1"), "{e}");
        s.seqs = Some(vec![9]);
        let e = decode(&encode(&s).unwrap()).unwrap_err();
        assert!(e.contains("outside its range"), "{e}");
        s.format = SHIPMENT_FORMAT + 1;
        let e = decode(&encode(&s).unwrap()).unwrap_err();
        assert!(e.contains("shipment format 3"), "{e}");
        // The header still says what it was.
        assert_eq!(header(&encode(&s).unwrap()).unwrap().first, 3);
    }
}
