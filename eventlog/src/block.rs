//! The stored form of a block of events.
//!
//! Format 2 (written since labd 0.2): the magic `LB\x02\xff`, the `u32` (little endian) length of the body,
//! then zstd of the [`columns`] body: metric rows as delta-coded columns, other events as a msgpack array.
//! Format 1 (still read): the `u32` length of the msgpack, then zstd of the msgpack array of events (named
//! fields). A format 1 length never has its top byte at 0xff, so the two are told apart by the fourth byte.

use crate::columns;
use labd_schemas::Event;
use labd_schemas::event::EVENT_FORMAT_VERSION;

/// zstd level: a fast negative one (`--fast=3`). The columns have already removed what repeats, so zstd has
/// little left to find: on labd-bench's 4 M-point corpus the blocks are 3.6 bytes a point instead of level 1's
/// 3.1 (the database file stays at 5.2), and compressing them takes a fifth of level 1's time (9 ms instead of
/// 50 for the 1,000 blocks), on the writer's thread, which is half of ingest's two.
const LEVEL: i32 = -3;

/// Largest block (uncompressed): far above 1024 events of a 1 MiB line each. A header that says more is
/// damage, and is refused before anything is allocated for it.
const MAX_RAW: usize = 1 << 30;

/// The block format this labd writes, and the newest it reads.
pub const BLOCK_FORMAT: u8 = 2;

const MAGIC: [u8; 2] = *b"LB";

/// The format of a stored block (1 or 2, or a newer one this labd cannot read).
pub fn format(bytes: &[u8]) -> u8 {
    match bytes {
        [a, b, f, 0xff, ..] if [*a, *b] == MAGIC => *f,
        _ => 1,
    }
}

/// Encodes events into a block (format 2).
pub fn encode(events: &[Event]) -> Result<Vec<u8>, String> {
    let raw = columns::encode(events, EVENT_FORMAT_VERSION)?;
    let mut out = Vec::with_capacity(8 + raw.len() / 4);
    out.extend_from_slice(&MAGIC);
    out.extend_from_slice(&[BLOCK_FORMAT, 0xff]);
    frame(&raw, events.len(), &mut out)?;
    Ok(out)
}

/// Encodes events into a format 1 block (msgpack array), as labd 0.1 wrote them.
pub fn encode_v1(events: &[Event]) -> Result<Vec<u8>, String> {
    let raw = rmp_serde::to_vec_named(events).map_err(|e| e.to_string())?;
    let mut out = Vec::new();
    frame(&raw, events.len(), &mut out)?;
    Ok(out)
}

/// Appends the length of `raw` and its zstd frame.
fn frame(raw: &[u8], events: usize, out: &mut Vec<u8>) -> Result<(), String> {
    if raw.len() > MAX_RAW {
        return Err(format!(
            "{events} events take {} bytes, more than a block holds ({MAX_RAW})",
            raw.len()
        ));
    }
    // One compression context a thread, kept: a new one per block costs its tables' allocation and clearing.
    thread_local! {
        static COMPRESSOR: std::cell::RefCell<Option<zstd::bulk::Compressor<'static>>> =
            const { std::cell::RefCell::new(None) };
    }
    let packed = COMPRESSOR.with_borrow_mut(|c| {
        let c = match c {
            Some(c) => c,
            None => c.insert(zstd::bulk::Compressor::new(LEVEL)?),
        };
        c.compress(raw)
    });
    let packed = packed.map_err(|e| e.to_string())?;
    out.extend_from_slice(&(raw.len() as u32).to_le_bytes());
    out.extend_from_slice(&packed);
    Ok(())
}

/// Decodes a block; the message says what is wrong when it does not decode.
pub fn decode(bytes: &[u8]) -> Result<Vec<Event>, String> {
    match format(bytes) {
        1 => {
            let raw = unpack(bytes)?;
            rmp_serde::from_slice(&raw).map_err(|e| e.to_string())
        }
        2 => {
            let body = columns::decode(&unpack(&bytes[4..])?)?;
            let others: Vec<Event> =
                rmp_serde::from_slice(&body.others).map_err(|e| e.to_string())?;
            merge(body.rows, others, |e| e)
        }
        f => Err(newer(f)),
    }
}

fn newer(f: u8) -> String {
    format!("block format {f} (this labd reads up to {BLOCK_FORMAT})")
}

/// Puts the other events into the rows' gaps, in order, each row made an item by `row`.
fn merge<T>(
    rows: Vec<Option<Event>>,
    others: Vec<T>,
    row: impl Fn(Event) -> T,
) -> Result<Vec<T>, String> {
    let gaps = rows.iter().filter(|r| r.is_none()).count();
    if gaps != others.len() {
        return Err(format!(
            "columnar block: {gaps} events are not columns but {} are stored beside them (damaged)",
            others.len()
        ));
    }
    let mut others = others.into_iter();
    Ok(rows
        .into_iter()
        .map(|r| match r {
            Some(e) => row(e),
            // Counted above: one for each gap.
            None => others.next().unwrap_or_else(|| unreachable!()),
        })
        .collect())
}

/// An event that reads, or one that does not with its msgpack and the reason.
pub type Tolerant = Result<Event, (Vec<u8>, String)>;

/// Decodes a block event by event: an event this labd cannot read (a newer format version, an unknown kind)
/// comes back as its bytes and the reason instead of failing the block. An error means the block as a whole
/// does not read.
pub fn decode_tolerant(bytes: &[u8]) -> Result<Vec<Tolerant>, String> {
    match format(bytes) {
        1 => tolerant_events(&unpack(bytes)?),
        2 => {
            let body = columns::decode(&unpack(&bytes[4..])?)?;
            let others = tolerant_events(&body.others)?;
            merge(body.rows, others, Ok)
        }
        f => Err(newer(f)),
    }
}

/// The events of a msgpack array; each that does not read (or is of a newer format) as its bytes and the reason.
pub(crate) fn tolerant_events(raw: &[u8]) -> Result<Vec<Tolerant>, String> {
    // The common case: every event reads, in one pass.
    if let Ok(events) = rmp_serde::from_slice::<Vec<Event>>(raw)
        && events.iter().all(|e| e.v <= EVENT_FORMAT_VERSION)
    {
        return Ok(events.into_iter().map(Ok).collect());
    }
    let value = rmpv::decode::read_value(&mut &raw[..])
        .map_err(|e| format!("events are not msgpack: {e}"))?;
    let rmpv::Value::Array(values) = value else {
        return Err("events are not a msgpack array".into());
    };
    let mut out = Vec::with_capacity(values.len());
    for value in values {
        let mut bytes = Vec::new();
        rmpv::encode::write_value(&mut bytes, &value).map_err(|e| e.to_string())?;
        let version = value
            .as_map()
            .and_then(|m| m.iter().find(|(k, _)| k.as_str() == Some("v")))
            .and_then(|(_, v)| v.as_u64());
        let item = match version {
            Some(v) if v > u64::from(EVENT_FORMAT_VERSION) => Err((
                bytes,
                format!("event format v{v} (this labd reads up to v{EVENT_FORMAT_VERSION})"),
            )),
            _ => match rmp_serde::from_slice::<Event>(&bytes) {
                Ok(e) => Ok(e),
                Err(e) => Err((bytes, format!("event does not read: {e}"))),
            },
        };
        out.push(item);
    }
    Ok(out)
}

/// Decodes a columnar body alone (no frame, no zstd), answering how many events it holds: the fuzz target
/// `block_columns` feeds it arbitrary bytes.
#[doc(hidden)]
pub fn decode_columns(raw: &[u8]) -> Result<usize, String> {
    let body = columns::decode(raw)?;
    let others = tolerant_events(&body.others)?;
    Ok(body.rows.len() + others.len())
}

/// The body of a block's frame (`u32` length, zstd), decompressed and checked against its header.
fn unpack(bytes: &[u8]) -> Result<Vec<u8>, String> {
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
        let mut block = encode_v1(&[message("a", "one")]).unwrap();
        block[..4].copy_from_slice(&u32::MAX.to_le_bytes());
        assert!(decode(&block).unwrap_err().contains("damaged"));
        block[..4].copy_from_slice(&1000u32.to_le_bytes());
        assert!(decode(&block).unwrap_err().contains("damaged"));
        let mut block = encode(&[message("a", "one")]).unwrap();
        block[4..8].copy_from_slice(&(1u32 << 31).to_le_bytes());
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
        assert_eq!(decode(&encode_v1(&events).unwrap()).unwrap(), events);
        assert_eq!(format(&encode_v1(&events).unwrap()), 1);
        assert_eq!(format(&encode(&events).unwrap()), 2);
        let mut newer = encode(&events).unwrap();
        newer[2] = 3;
        assert_eq!(
            decode(&newer).unwrap_err(),
            "block format 3 (this labd reads up to 2)"
        );
    }

    /// Metric rows of several runs and files, interleaved with other events, with and without every optional
    /// field, come back equal: the columns and the msgpack beside them are merged in order.
    #[test]
    fn columns_and_other_events_interleave() {
        use labd_schemas::event::MetricsLogged;
        use labd_schemas::{EventKind, ExperimentId, Origin, Source};
        let row = |exp: &str, step: Option<i64>, v: f64, file: Option<(&str, u64)>| {
            let source = match file {
                Some((path, line)) => Source::File {
                    path: path.into(),
                    first_line: line,
                    last_line: line + u64::from(step.is_none()),
                },
                None => Source::Http {
                    request: "POST /experiments/x/metrics".into(),
                },
            };
            let mut e = Event::new(
                1_700_000_000_000_000i64.wrapping_add(step.unwrap_or(-5).wrapping_mul(1_000)),
                source,
                EventKind::MetricsLogged(MetricsLogged {
                    exp: ExperimentId(exp.into()),
                    split: step.map(|_| "train".to_string()),
                    step,
                    epoch: step.map(|s| s as f64 / 10.0),
                    wall_time: step.map(|s| 1_760_000_000.0 + s as f64 * 0.5),
                    x: if step == Some(3) {
                        [("tokens".to_string(), 4096.0)].into()
                    } else {
                        Default::default()
                    },
                    values: [("loss".to_string(), v), ("acc".to_string(), 1.0 - v)].into(),
                    extra: Default::default(),
                }),
            );
            if exp == "hub" {
                e.origin = Some(Box::new(Origin {
                    host: "gpu7".into(),
                    seq: 40 + step.unwrap_or(0) as u64,
                    id: step.filter(|s| s % 2 == 0).map(|_| "hub@gpu7".to_string()),
                }));
            }
            e
        };
        let mut extra = row("b", Some(9), 0.25, Some(("b.jsonl", 90)));
        if let EventKind::MetricsLogged(m) = &mut extra.kind {
            m.extra
                .insert("note".into(), serde_json::json!("kept as msgpack"));
        }
        let events = vec![
            message("a", "start"),
            row("a", Some(0), 0.683147, Some(("a.jsonl", 2))),
            row("a", Some(1), 0.5, Some(("a.jsonl", 3))),
            row("b", Some(3), f64::NAN, Some(("b.jsonl", 7))),
            message("b", "between"),
            row("a", Some(2), -0.0, Some(("a.jsonl", 4))),
            row("a", None, 0.1 + 0.2, None),
            extra,
            row("hub", Some(2), f64::INFINITY, Some(("gpu7:a.jsonl", 1))),
            row("hub", Some(7), 1e-300, None),
            row(
                "a",
                Some(i64::MIN),
                f64::MIN_POSITIVE,
                Some(("a.jsonl", u64::MAX - 1)),
            ),
            row("a", Some(i64::MAX), 5.0, Some(("a.jsonl", 0))),
        ];
        let back = decode(&encode(&events).unwrap()).unwrap();
        assert_eq!(back.len(), events.len());
        for (a, b) in events.iter().zip(&back) {
            // Bitwise: NaN equals NaN, -0.0 is not 0.0.
            assert_eq!(
                rmp_serde::to_vec_named(a).unwrap(),
                rmp_serde::to_vec_named(b).unwrap(),
                "{a:?}"
            );
        }
        let tolerant = decode_tolerant(&encode(&events).unwrap()).unwrap();
        assert!(tolerant.iter().all(Result::is_ok));
        assert_eq!(tolerant.len(), events.len());
    }

    const SAMPLE_V2: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/samples/block-v2.bin");

    /// Logs and hubs outlive labd versions: a block of format 2, as written once, must keep reading.
    #[test]
    fn a_stored_block_of_format_2_keeps_reading() {
        use labd_schemas::event::MetricsLogged;
        use labd_schemas::{EventKind, ExperimentId, Source};
        let mut events = vec![message("a", "one")];
        for (step, v) in [(0i64, 0.683147), (1, f64::NAN), (2, 0.1 + 0.2)] {
            events.push(Event::new(
                1_765_000_000_000_000 + step,
                Source::File {
                    path: "/inbox/a.jsonl".into(),
                    first_line: step as u64 + 2,
                    last_line: step as u64 + 2,
                },
                EventKind::MetricsLogged(MetricsLogged {
                    exp: ExperimentId("a".into()),
                    split: Some("train".into()),
                    step: Some(step),
                    epoch: Some(0.5 * step as f64),
                    wall_time: Some(1_760_000_000.25 + step as f64),
                    x: [("tokens".to_string(), 512.0 * step as f64)].into(),
                    values: [("loss".to_string(), v)].into(),
                    extra: Default::default(),
                }),
            ));
        }
        if std::env::var_os("LABD_WRITE_SAMPLES").is_some()
            && !std::path::Path::new(SAMPLE_V2).exists()
        {
            std::fs::write(SAMPLE_V2, encode(&events).unwrap()).unwrap();
        }
        let bytes = std::fs::read(SAMPLE_V2)
            .expect("samples/block-v2.bin (LABD_WRITE_SAMPLES=1 writes it once)");
        assert_eq!(format(&bytes), 2);
        let back = decode(&bytes).unwrap();
        assert_eq!(
            rmp_serde::to_vec_named(&back).unwrap(),
            rmp_serde::to_vec_named(&events).unwrap()
        );
    }

    /// Encode and decode time of both formats (not a check: `cargo test --release -p labd-log -- --ignored
    /// block_speed --nocapture`).
    #[test]
    #[ignore]
    fn block_speed() {
        let events = bench_rows();
        for (name, enc) in [
            (
                "format 1",
                encode_v1 as fn(&[Event]) -> Result<Vec<u8>, String>,
            ),
            ("format 2", encode),
        ] {
            let t = std::time::Instant::now();
            let mut bytes = Vec::new();
            for _ in 0..200 {
                bytes = enc(&events).unwrap();
            }
            let e = t.elapsed().as_secs_f64() / 200.0;
            let t = std::time::Instant::now();
            for _ in 0..200 {
                assert_eq!(decode(&bytes).unwrap().len(), events.len());
            }
            let d = t.elapsed().as_secs_f64() / 200.0;
            eprintln!(
                "{name}: encode {:.0} ns a row, decode {:.0} ns a row, {} bytes",
                e * 1e9 / events.len() as f64,
                d * 1e9 / events.len() as f64,
                bytes.len()
            );
        }
    }

    fn bench_rows() -> Vec<Event> {
        use labd_schemas::event::MetricsLogged;
        use labd_schemas::{EventKind, ExperimentId, Source};
        let mut seed = 7u64;
        (0..1024i64)
            .map(|step| {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                let noise = (seed >> 11) as f64 / (1u64 << 53) as f64 * 0.05;
                let v = |k: f64| ((k / (1.0 + step as f64 * 0.01) + noise) * 1e6).round() / 1e6;
                Event::new(
                    1_765_000_000_000_000 + step * 3,
                    Source::File {
                        path: "/data/inbox/run00001.jsonl".into(),
                        first_line: step as u64 + 2,
                        last_line: step as u64 + 2,
                    },
                    EventKind::MetricsLogged(MetricsLogged {
                        exp: ExperimentId("20261206_101500_bench-1_1a2b3c4d".into()),
                        split: Some("train".into()),
                        step: Some(step),
                        epoch: Some((step / 100) as f64),
                        wall_time: Some(1_760_000_000.0 + step as f64 * 0.5),
                        x: Default::default(),
                        values: [
                            ("loss".to_string(), v(1.0)),
                            ("acc".to_string(), v(0.9)),
                            ("lr".to_string(), v(0.5)),
                            ("grad_norm".to_string(), v(2.0)),
                        ]
                        .into(),
                        extra: Default::default(),
                    }),
                )
            })
            .collect()
    }

    /// A run's metric rows take a few bytes each: about what the values' digits hold.
    #[test]
    fn metric_rows_are_small() {
        let events = bench_rows();
        let v2 = encode(&events).unwrap();
        let v1 = encode_v1(&events).unwrap();
        let per_point = v2.len() as f64 / (4.0 * 1024.0);
        eprintln!(
            "format 2: {} bytes ({per_point:.2} a point); format 1: {} bytes",
            v2.len(),
            v1.len()
        );
        assert!(per_point < 4.0, "{per_point:.2} bytes a point");
        assert_eq!(decode(&v2).unwrap(), events);
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
                Event::new(0, Source::Daemon, EventKind::ExperimentCreated(Box::new(ExperimentCreated {
                    exp: exp.clone(),
                    name: "x".into(),
                    description: None,
                    tags: Vec::new(),
                    config: serde_json::json!({"i": i, "u": u, "f": serde_json::Number::from_f64(v)}),
                    config_hash: String::new(),
                    host: String::new(),
                    started: 0,
                    extra: Default::default(),
                    project: None,
                }))),
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
        assert!(decode(b"LB\x02\xff").is_err());
    }
}
