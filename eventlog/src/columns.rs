//! The columnar body of a stored block (format 2): metric rows as columns, everything else as msgpack.
//!
//! Most events of a log are `metrics_logged` rows, and consecutive rows of a run differ by little: the same run,
//! file and keys, the next step and line, a time a few microseconds later, values near the last ones. Written
//! field by field into separate streams, each as the difference from the row before, they shrink to a few
//! bytes a row before zstd sees them (Gorilla and Prometheus store time series the same way).
//!
//! Numbers keep their bits. A float is written as a decimal `m × 10^-e` when dividing `m` by `10^e` gives back
//! exactly its bits (values that came from text with a few digits, as most logged values do; ALP works the same
//! way): `m` as the difference from the stream's previous `m`. Any other float (NaN, infinities, −0.0, full
//! 17-digit values) is written as its 8 bytes XOR the stream's previous bits. Integers are zigzag varints of
//! wrapping differences, so every i64 comes back.
//!
//! Layout (all integers LEB128 varints unless said):
//!
//! ```text
//! n (events) · version of the columnar rows · strings: count, then each length + UTF-8
//! others: byte length + msgpack array of the events that are not columnar (named fields, as format 1)
//! bitmap: ceil(n / 8) bytes, bit i set when event i is a columnar row
//! streams: for each of STREAMS, byte length + bytes
//! ```

use labd_schemas::event::MetricsLogged;
use labd_schemas::{Event, EventKind, ExperimentId, Origin, Source};
use std::collections::{BTreeMap, HashMap};

/// The streams, in the order they are stored.
const STREAMS: usize = 8;
const FLAGS: usize = 0;
const TIME: usize = 1;
const SOURCE: usize = 2;
const NAMES: usize = 3;
const STEP: usize = 4;
const FLOATS: usize = 5;
const ORIGIN: usize = 6;
const KEYS: usize = 7;

const HAS_STEP: u64 = 1;
const HAS_EPOCH: u64 = 2;
const HAS_WALL: u64 = 4;
const HAS_SPLIT: u64 = 8;
const HAS_ORIGIN: u64 = 16;
const HAS_ORIGIN_ID: u64 = 32;
const SOURCE_SHIFT: u32 = 6;

/// Most powers of ten a decimal float may be scaled by (10^22 is the last exact f64 power of ten).
const MAX_EXPONENT: u8 = 18;
/// Decimals whose `m` is at most this are exact integers in an f64 and their differences fit the varint tag.
const MAX_MANTISSA: f64 = 9_007_199_254_740_992.0; // 2^53

const POW10: [f64; 23] = [
    1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15, 1e16,
    1e17, 1e18, 1e19, 1e20, 1e21, 1e22,
];

/// Whether `e` is stored as a columnar row.
fn columnar(e: &Event, version: u16) -> Option<&MetricsLogged> {
    match &e.kind {
        EventKind::MetricsLogged(m) if m.extra.is_empty() && e.v == version => Some(m),
        _ => None,
    }
}

fn put(out: &mut Vec<u8>, mut v: u64) {
    while v >= 0x80 {
        out.push((v as u8) | 0x80);
        v >>= 7;
    }
    out.push(v as u8);
}

fn zigzag(v: i64) -> u64 {
    ((v << 1) ^ (v >> 63)) as u64
}

fn unzigzag(v: u64) -> i64 {
    ((v >> 1) as i64) ^ -((v & 1) as i64)
}

/// The previous float of a stream (a metric, an axis), that the next is written against.
#[derive(Clone, Copy, Default)]
struct FloatState {
    bits: u64,
    mantissa: i64,
    exponent: u8,
}

/// `v` as a decimal `m × 10^-e` that reads back to its bits, trying the stream's exponent first.
fn decimal(v: f64, prefer: u8) -> Option<(i64, u8)> {
    let fits = |e: u8| -> Option<i64> {
        let p = POW10[e as usize];
        let m = (v * p).round();
        (m.abs() <= MAX_MANTISSA && (m / p).to_bits() == v.to_bits()).then_some(m as i64)
    };
    if !v.is_finite() || (v == 0.0 && v.is_sign_negative()) {
        return None;
    }
    if let Some(m) = fits(prefer) {
        return Some((m, prefer));
    }
    (0..=MAX_EXPONENT)
        .filter(|&e| e != prefer)
        .find_map(|e| fits(e).map(|m| (m, e)))
}

/// Writes a float against its stream's previous one: low two bits of the first varint say how.
/// 0: the same bits; 1: a decimal of the same exponent (zigzag difference of `m`); 2: a decimal of another
/// exponent (zigzag `m`, then the exponent); 3: the bits XOR the previous, 8 bytes little endian.
fn put_float(out: &mut Vec<u8>, state: &mut FloatState, v: f64) {
    let bits = v.to_bits();
    if bits == state.bits {
        put(out, 0);
        return;
    }
    match decimal(v, state.exponent) {
        Some((m, e)) if e == state.exponent => {
            put(out, zigzag(m.wrapping_sub(state.mantissa)) << 2 | 1);
            state.mantissa = m;
        }
        Some((m, e)) => {
            put(out, zigzag(m) << 2 | 2);
            out.push(e);
            state.mantissa = m;
            state.exponent = e;
        }
        None => {
            put(out, 3);
            out.extend_from_slice(&(bits ^ state.bits).to_le_bytes());
        }
    }
    state.bits = bits;
}

/// Interned strings (runs, files, splits, metric names, hosts) by their index.
#[derive(Default)]
struct Strings<'a> {
    index: HashMap<&'a str, u64>,
    list: Vec<&'a str>,
}

impl<'a> Strings<'a> {
    fn id(&mut self, s: &'a str) -> u64 {
        if let Some(&i) = self.index.get(s) {
            return i;
        }
        let i = self.list.len() as u64;
        self.index.insert(s, i);
        self.list.push(s);
        i
    }
}

/// The state carried from row to row while encoding or decoding.
#[derive(Default)]
struct Prev {
    time: i64,
    step: i64,
    line: u64,
    origin_seq: u64,
    epoch: FloatState,
    wall: FloatState,
    /// Per metric or axis name (its string index): the previous value.
    named: HashMap<u64, FloatState>,
}

/// Encodes `events` into a columnar body; `version` is the event format version of the rows.
pub fn encode(events: &[Event], version: u16) -> Result<Vec<u8>, String> {
    let mut strings = Strings::default();
    let mut streams: [Vec<u8>; STREAMS] = Default::default();
    let mut others: Vec<&Event> = Vec::new();
    let mut bitmap = vec![0u8; events.len().div_ceil(8)];
    let mut prev = Prev::default();
    for (i, e) in events.iter().enumerate() {
        let Some(m) = columnar(e, version) else {
            others.push(e);
            continue;
        };
        bitmap[i / 8] |= 1 << (i % 8);
        let source_tag: u64 = match &e.source {
            Source::Daemon => 0,
            Source::File { .. } => 1,
            Source::Http { .. } => 2,
        };
        let mut flags = source_tag << SOURCE_SHIFT;
        flags |= if m.step.is_some() { HAS_STEP } else { 0 };
        flags |= if m.epoch.is_some() { HAS_EPOCH } else { 0 };
        flags |= if m.wall_time.is_some() { HAS_WALL } else { 0 };
        flags |= if m.split.is_some() { HAS_SPLIT } else { 0 };
        if let Some(o) = &e.origin {
            flags |= HAS_ORIGIN | if o.id.is_some() { HAS_ORIGIN_ID } else { 0 };
        }
        put(&mut streams[FLAGS], flags);
        put(&mut streams[TIME], zigzag(e.time.wrapping_sub(prev.time)));
        prev.time = e.time;
        match &e.source {
            Source::Daemon => {}
            Source::File {
                path,
                first_line,
                last_line,
            } => {
                put(&mut streams[SOURCE], strings.id(path));
                put(
                    &mut streams[SOURCE],
                    zigzag(first_line.wrapping_sub(prev.line) as i64),
                );
                put(
                    &mut streams[SOURCE],
                    zigzag(last_line.wrapping_sub(*first_line) as i64),
                );
                prev.line = *last_line;
            }
            Source::Http { request } => put(&mut streams[SOURCE], strings.id(request)),
        }
        put(&mut streams[NAMES], strings.id(m.exp.as_str()));
        if let Some(split) = &m.split {
            put(&mut streams[NAMES], strings.id(split));
        }
        if let Some(step) = m.step {
            put(&mut streams[STEP], zigzag(step.wrapping_sub(prev.step)));
            prev.step = step;
        }
        if let Some(v) = m.epoch {
            put_float(&mut streams[FLOATS], &mut prev.epoch, v);
        }
        if let Some(v) = m.wall_time {
            put_float(&mut streams[FLOATS], &mut prev.wall, v);
        }
        for map in [&m.x, &m.values] {
            put(&mut streams[KEYS], map.len() as u64);
            for (name, &v) in map {
                let id = strings.id(name);
                put(&mut streams[KEYS], id);
                put_float(&mut streams[FLOATS], prev.named.entry(id).or_default(), v);
            }
        }
        if let Some(o) = &e.origin {
            put(&mut streams[ORIGIN], strings.id(&o.host));
            put(
                &mut streams[ORIGIN],
                zigzag(o.seq.wrapping_sub(prev.origin_seq) as i64),
            );
            prev.origin_seq = o.seq;
            if let Some(id) = &o.id {
                put(&mut streams[ORIGIN], strings.id(id));
            }
        }
    }
    let mut out = Vec::new();
    put(&mut out, events.len() as u64);
    put(&mut out, u64::from(version));
    put(&mut out, strings.list.len() as u64);
    for s in &strings.list {
        put(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    let others = rmp_serde::to_vec_named(&others).map_err(|e| e.to_string())?;
    put(&mut out, others.len() as u64);
    out.extend_from_slice(&others);
    out.extend_from_slice(&bitmap);
    for s in &streams {
        put(&mut out, s.len() as u64);
        out.extend_from_slice(s);
    }
    Ok(out)
}

/// A cursor over bytes that says what ran out or is out of range instead of panicking.
struct Reader<'a> {
    bytes: &'a [u8],
    what: &'static str,
}

impl<'a> Reader<'a> {
    fn new(bytes: &'a [u8], what: &'static str) -> Self {
        Reader { bytes, what }
    }

    fn varint(&mut self) -> Result<u64, String> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some((&b, rest)) = self.bytes.split_first() else {
                return Err(format!(
                    "columnar block: {} ends inside a number",
                    self.what
                ));
            };
            self.bytes = rest;
            v |= u64::from(b & 0x7f) << shift;
            if b & 0x80 == 0 {
                return Ok(v);
            }
        }
        Err(format!(
            "columnar block: {} has a number too long",
            self.what
        ))
    }

    fn take(&mut self, n: u64) -> Result<&'a [u8], String> {
        if n > self.bytes.len() as u64 {
            return Err(format!(
                "columnar block: {} says {n} bytes, {} are left",
                self.what,
                self.bytes.len()
            ));
        }
        let (a, b) = self.bytes.split_at(n as usize);
        self.bytes = b;
        Ok(a)
    }

    fn byte(&mut self) -> Result<u8, String> {
        Ok(self.take(1)?[0])
    }

    fn string<'s>(&mut self, strings: &'s [String]) -> Result<&'s str, String> {
        let i = self.varint()?;
        strings.get(i as usize).map(String::as_str).ok_or_else(|| {
            format!(
                "columnar block: {} names string {i} of {}",
                self.what,
                strings.len()
            )
        })
    }

    fn float(&mut self, state: &mut FloatState) -> Result<f64, String> {
        let head = self.varint()?;
        match head & 3 {
            0 => {}
            1 => {
                let p = POW10[state.exponent as usize];
                state.mantissa = state.mantissa.wrapping_add(unzigzag(head >> 2));
                state.bits = (state.mantissa as f64 / p).to_bits();
            }
            2 => {
                let e = self.byte()?;
                if e > MAX_EXPONENT {
                    return Err(format!("columnar block: exponent {e} in {}", self.what));
                }
                state.exponent = e;
                state.mantissa = unzigzag(head >> 2);
                state.bits = (state.mantissa as f64 / POW10[e as usize]).to_bits();
            }
            _ => {
                let raw: [u8; 8] = self.take(8)?.try_into().map_err(|_| "eight bytes")?;
                state.bits ^= u64::from_le_bytes(raw);
            }
        }
        Ok(f64::from_bits(state.bits))
    }
}

/// What a body holds: the columnar rows decoded, and the other events' msgpack array, each at its index.
pub struct Body {
    /// Events in order; `None` where the event is in `others`.
    pub rows: Vec<Option<Event>>,
    /// The msgpack array of the other events, in order.
    pub others: Vec<u8>,
}

/// Decodes a columnar body.
pub fn decode(raw: &[u8]) -> Result<Body, String> {
    let mut r = Reader::new(raw, "header");
    let n = r.varint()?;
    // Each event takes at least a bit of the bitmap: a count beyond that is damage, refused before allocating.
    if n > raw.len() as u64 * 8 {
        return Err(format!(
            "columnar block: {n} events in {} bytes (damaged)",
            raw.len()
        ));
    }
    let version = u16::try_from(r.varint()?).map_err(|_| "columnar block: version")?;
    let count = r.varint()?;
    if count > raw.len() as u64 {
        return Err(format!(
            "columnar block: {count} strings in {} bytes",
            raw.len()
        ));
    }
    let mut strings = Vec::with_capacity(count as usize);
    for _ in 0..count {
        let len = r.varint()?;
        let s = std::str::from_utf8(r.take(len)?).map_err(|e| format!("columnar block: {e}"))?;
        strings.push(s.to_string());
    }
    let len = r.varint()?;
    let others = r.take(len)?.to_vec();
    let bitmap = r.take(n.div_ceil(8))?;
    let mut streams: Vec<Reader> = Vec::with_capacity(STREAMS);
    for what in [
        "flags", "times", "sources", "names", "steps", "floats", "origins", "keys",
    ] {
        let len = r.varint()?;
        streams.push(Reader::new(r.take(len)?, what));
    }
    let [
        flags_s,
        time_s,
        source_s,
        names_s,
        step_s,
        floats_s,
        origin_s,
        keys_s,
    ] = &mut streams[..]
    else {
        return Err("columnar block: streams".into());
    };
    let mut prev = Prev::default();
    let mut rows = Vec::with_capacity((n as usize).min(4096));
    for i in 0..n as usize {
        if bitmap[i / 8] & (1 << (i % 8)) == 0 {
            rows.push(None);
            continue;
        }
        let flags = flags_s.varint()?;
        prev.time = prev.time.wrapping_add(unzigzag(time_s.varint()?));
        let source = match flags >> SOURCE_SHIFT {
            0 => Source::Daemon,
            1 => {
                let path = source_s.string(&strings)?.to_string();
                let first_line = prev.line.wrapping_add(unzigzag(source_s.varint()?) as u64);
                let last_line = first_line.wrapping_add(unzigzag(source_s.varint()?) as u64);
                prev.line = last_line;
                Source::File {
                    path,
                    first_line,
                    last_line,
                }
            }
            2 => Source::Http {
                request: source_s.string(&strings)?.to_string(),
            },
            t => return Err(format!("columnar block: source kind {t}")),
        };
        let exp = ExperimentId(names_s.string(&strings)?.to_string());
        let split = if flags & HAS_SPLIT != 0 {
            Some(names_s.string(&strings)?.to_string())
        } else {
            None
        };
        let step = if flags & HAS_STEP != 0 {
            prev.step = prev.step.wrapping_add(unzigzag(step_s.varint()?));
            Some(prev.step)
        } else {
            None
        };
        let epoch = if flags & HAS_EPOCH != 0 {
            Some(floats_s.float(&mut prev.epoch)?)
        } else {
            None
        };
        let wall_time = if flags & HAS_WALL != 0 {
            Some(floats_s.float(&mut prev.wall)?)
        } else {
            None
        };
        let mut maps: [BTreeMap<String, f64>; 2] = Default::default();
        for map in &mut maps {
            let len = keys_s.varint()?;
            for _ in 0..len {
                let id = keys_s.varint()?;
                let name = strings.get(id as usize).ok_or_else(|| {
                    format!(
                        "columnar block: a key names string {id} of {}",
                        strings.len()
                    )
                })?;
                let v = floats_s.float(prev.named.entry(id).or_default())?;
                map.insert(name.clone(), v);
            }
        }
        let [x, values] = maps;
        let origin = if flags & HAS_ORIGIN != 0 {
            let host = origin_s.string(&strings)?.to_string();
            prev.origin_seq = prev
                .origin_seq
                .wrapping_add(unzigzag(origin_s.varint()?) as u64);
            let id = if flags & HAS_ORIGIN_ID != 0 {
                Some(origin_s.string(&strings)?.to_string())
            } else {
                None
            };
            Some(Origin {
                host,
                seq: prev.origin_seq,
                id,
            })
        } else {
            None
        };
        rows.push(Some(Event {
            v: version,
            time: prev.time,
            source,
            kind: EventKind::MetricsLogged(MetricsLogged {
                exp,
                split,
                step,
                epoch,
                wall_time,
                x,
                values,
                extra: Default::default(),
            }),
            origin,
        }));
    }
    Ok(Body { rows, others })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decimals_are_found_and_others_are_not() {
        assert_eq!(decimal(0.683147, 6), Some((683147, 6)));
        assert_eq!(
            decimal(0.5, 6),
            Some((500000, 6)),
            "the stream's exponent first"
        );
        assert_eq!(decimal(0.5, 0), Some((5, 1)));
        assert_eq!(decimal(1_760_000_000.5, 1), Some((17_600_000_005, 1)));
        assert_eq!(decimal(f64::NAN, 0), None);
        assert_eq!(decimal(-0.0, 0), None);
        assert_eq!(
            decimal(0.1 + 0.2, 0),
            None,
            "17 digits: not a short decimal"
        );
        assert_eq!(decimal(1e300, 0), None);
    }

    #[test]
    fn floats_keep_their_bits_through_every_tag() {
        let values = [
            0.683147,
            0.683147,
            0.5,
            0.51,
            f64::NAN,
            -0.0,
            0.1 + 0.2,
            f64::INFINITY,
            1e-300,
            -7.25,
            f64::from_bits(1),
            f64::MAX,
            123456789012345.6,
        ];
        let mut out = Vec::new();
        let mut state = FloatState::default();
        for &v in &values {
            put_float(&mut out, &mut state, v);
        }
        let mut r = Reader::new(&out, "test");
        let mut state = FloatState::default();
        for &v in &values {
            assert_eq!(r.float(&mut state).unwrap().to_bits(), v.to_bits(), "{v}");
        }
        assert!(r.bytes.is_empty());
    }
}
