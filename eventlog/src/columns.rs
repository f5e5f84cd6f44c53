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

use crate::codec::{FloatState, Reader, put, put_float, unzigzag, zigzag};
use labd_schemas::event::MetricsLogged;
use labd_schemas::float_map::FloatMap;
use labd_schemas::{Event, EventKind, ExperimentId, Origin, Source};
use rustc_hash::FxHashMap;

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

/// Whether `e` is stored as a columnar row.
fn columnar(e: &Event, version: u16) -> Option<&MetricsLogged> {
    match &e.kind {
        EventKind::MetricsLogged(m) if m.extra.is_empty() && e.v == version => Some(m),
        _ => None,
    }
}

/// A string of the block's table, by the index `r` reads.
fn string<'s>(r: &mut Reader, strings: &'s [String]) -> Result<&'s str, String> {
    let i = r.varint()?;
    strings
        .get(i as usize)
        .map(String::as_str)
        .ok_or_else(|| format!("{} names string {i} of {}", r.what(), strings.len()))
}

const HAS_STEP: u64 = 1;
const HAS_EPOCH: u64 = 2;
const HAS_WALL: u64 = 4;
const HAS_SPLIT: u64 = 8;
const HAS_ORIGIN: u64 = 16;
const HAS_ORIGIN_ID: u64 = 32;
const SOURCE_SHIFT: u32 = 6;

/// Interned strings (runs, files, splits, metric names, hosts) by their index.
#[derive(Default)]
struct Strings<'a> {
    index: FxHashMap<&'a str, u64>,
    list: Vec<&'a str>,
}

impl<'a> Strings<'a> {
    /// `s`'s index, through `last`, the string this column held the row before: runs and files repeat row
    /// after row, and comparing with the last one is cheaper than hashing a long path again.
    fn id_near(&mut self, last: &mut Option<(&'a str, u64)>, s: &'a str) -> u64 {
        if let Some((l, i)) = *last
            && l == s
        {
            return i;
        }
        let i = self.id(s);
        *last = Some((s, i));
        i
    }

    /// The index of `s`, the `j`th key of its row, through `row`, the keys of the row before: rows of a run
    /// mostly repeat their keys in the same order.
    fn id_in_row(&mut self, row: &mut Vec<(&'a str, u64)>, j: usize, s: &'a str) -> u64 {
        match row.get(j) {
            Some(&(l, i)) if l == s => i,
            _ => {
                let i = self.id(s);
                if j < row.len() {
                    row[j] = (s, i);
                } else {
                    row.push((s, i));
                }
                i
            }
        }
    }

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
    /// Per metric or axis name (by its string index, below the table's length): the previous value.
    named: Vec<FloatState>,
}

impl Prev {
    fn named(&mut self, id: u64) -> &mut FloatState {
        let i = id as usize;
        if i >= self.named.len() {
            self.named.resize_with(i + 1, FloatState::default);
        }
        &mut self.named[i]
    }
}

/// Encodes `events` into a columnar body; `version` is the event format version of the rows.
pub fn encode(events: &[Event], version: u16) -> Result<Vec<u8>, String> {
    let mut strings = Strings::default();
    let mut streams: [Vec<u8>; STREAMS] = Default::default();
    // Room for a row of a few values in each stream up front, rather than grown (and copied) as they fill.
    let n = events.len();
    for (stream, per_row) in streams.iter_mut().zip([1, 2, 3, 1, 1, 8, 0, 4]) {
        stream.reserve(n * per_row);
    }
    let mut others: Vec<&Event> = Vec::new();
    let mut bitmap = vec![0u8; events.len().div_ceil(8)];
    let mut prev = Prev::default();
    let (mut last_source, mut last_run) = (None, None);
    // The keys of the row before, of its axes and of its values.
    let mut rows: [Vec<(&str, u64)>; 2] = Default::default();
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
                put(
                    &mut streams[SOURCE],
                    strings.id_near(&mut last_source, path),
                );
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
        put(
            &mut streams[NAMES],
            strings.id_near(&mut last_run, m.exp.as_str()),
        );
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
        for (map, row) in [&m.x, &m.values].into_iter().zip(&mut rows) {
            put(&mut streams[KEYS], map.len() as u64);
            for (j, (name, &v)) in map.iter().enumerate() {
                let id = strings.id_in_row(row, j, name);
                put(&mut streams[KEYS], id);
                put_float(&mut streams[FLOATS], prev.named(id), v);
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
    let others = rmp_serde::to_vec_named(&others).map_err(|e| e.to_string())?;
    let mut out = Vec::with_capacity(
        64 + others.len()
            + strings.list.iter().map(|s| s.len() + 2).sum::<usize>()
            + bitmap.len()
            + streams.iter().map(|s| s.len() + 5).sum::<usize>(),
    );
    put(&mut out, events.len() as u64);
    put(&mut out, u64::from(version));
    put(&mut out, strings.list.len() as u64);
    for s in &strings.list {
        put(&mut out, s.len() as u64);
        out.extend_from_slice(s.as_bytes());
    }
    put(&mut out, others.len() as u64);
    out.extend_from_slice(&others);
    out.extend_from_slice(&bitmap);
    for s in &streams {
        put(&mut out, s.len() as u64);
        out.extend_from_slice(s);
    }
    Ok(out)
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
    let mut r = Reader::new(raw, "columnar block: header");
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
        "columnar block: flags",
        "columnar block: times",
        "columnar block: sources",
        "columnar block: names",
        "columnar block: steps",
        "columnar block: floats",
        "columnar block: origins",
        "columnar block: keys",
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
                let path = string(source_s, &strings)?.to_string();
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
                request: string(source_s, &strings)?.to_string(),
            },
            t => return Err(format!("columnar block: source kind {t}")),
        };
        let exp = ExperimentId(string(names_s, &strings)?.to_string());
        let split = if flags & HAS_SPLIT != 0 {
            Some(string(names_s, &strings)?.to_string())
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
        let mut maps: [FloatMap; 2] = Default::default();
        for map in &mut maps {
            let len = keys_s.varint()?;
            // Room for the row's keys (as many as a damaged count says only up to a bound).
            *map = FloatMap::with_capacity(len.min(64) as usize);
            for _ in 0..len {
                let id = keys_s.varint()?;
                let name = strings.get(id as usize).ok_or_else(|| {
                    format!(
                        "columnar block: a key names string {id} of {}",
                        strings.len()
                    )
                })?;
                let v = floats_s.float(prev.named(id))?;
                map.insert(name.clone(), v);
            }
        }
        let [x, values] = maps;
        let origin = if flags & HAS_ORIGIN != 0 {
            let host = string(origin_s, &strings)?.to_string();
            prev.origin_seq = prev
                .origin_seq
                .wrapping_add(unzigzag(origin_s.varint()?) as u64);
            let id = if flags & HAS_ORIGIN_ID != 0 {
                Some(string(origin_s, &strings)?.to_string())
            } else {
                None
            };
            Some(Box::new(Origin {
                host,
                seq: prev.origin_seq,
                id,
            }))
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
