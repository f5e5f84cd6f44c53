//! TensorBoard event files (`*tfevents*`): TFRecord framing (length, masked CRC32C of the length, the record,
//! masked CRC32C of the record) around `Event` protobufs, decoded with prost. Scalars come as `simple_value`
//! or as scalar tensors (TF2 and `tensorboard.summary.Writer`); the hparams plugin's session start gives the
//! run's config and its session end the run's status. As TensorBoard groups them, the files of one folder are
//! one run (a restart writes a second file); the run's state is kept with the run ([`super::Runs`]).
//!
//! A half-written record waits for the rest. A record whose checksum fails ends the reading of its file, as
//! TensorBoard's own loader does: the file is reported and left, the records before it kept.

use super::source;
use super::{Context, Output, problem};
use crate::FileCursor;
use labd_schemas::event::{MetricsLogged, Severity, StatusChanged, SummaryRecorded};
use labd_schemas::float_map::FloatMap;
use labd_schemas::runlog::RunLine;
use labd_schemas::{Event, EventKind, ExperimentId, RunStatus};
use prost::Message;
use serde_json::{Map, Value as Json};
use std::borrow::Cow;
use std::path::Path;

/// Records longer than this are taken for damage (TensorBoard's own loader has no limit, but a scalar log's
/// records are bytes to kilobytes; graphs and images reach megabytes).
pub const MAX_RECORD: u64 = 64 << 20;

mod pb;

/// One TFRecord-framed event of scalars, as TensorBoard's writers frame them (for benchmarks and tests).
pub fn scalar_record(step: i64, wall_time: f64, values: &[(&str, f32)]) -> Vec<u8> {
    let event = pb::Event {
        wall_time,
        step,
        file_version: None,
        summary: Some(pb::Summary {
            value: values
                .iter()
                .map(|(tag, v)| pb::Value {
                    tag: tag.to_string(),
                    simple_value: Some(*v),
                    tensor: None,
                    metadata: None,
                })
                .collect(),
        }),
    };
    let body = event.encode_to_vec();
    let len = (body.len() as u64).to_le_bytes();
    let mut out = Vec::with_capacity(body.len() + 16);
    out.extend_from_slice(&len);
    out.extend_from_slice(&masked_crc(&len).to_le_bytes());
    out.extend_from_slice(&body);
    out.extend_from_slice(&masked_crc(&body).to_le_bytes());
    out
}

/// Whether a file name is a TensorBoard event file.
pub fn is_event_file(name: &str) -> bool {
    name.contains("tfevents")
}

/// TFRecord's masked CRC32C.
fn masked_crc(bytes: &[u8]) -> u32 {
    let crc = crc32c::crc32c(bytes);
    crc.rotate_right(15).wrapping_add(0xa282_ead8)
}

/// The value of a scalar tensor, if the tensor is one.
fn tensor_scalar(t: &pb::Tensor) -> Option<f64> {
    let elements: i64 = t
        .shape
        .as_ref()
        .map_or(1, |s| s.dim.iter().map(|d| d.size).product());
    if elements != 1 {
        return None;
    }
    let le = |n: usize| t.content.get(..n);
    match t.dtype {
        // DT_FLOAT
        1 => t
            .float_val
            .first()
            .map(|v| widen(*v))
            .or_else(|| le(4).map(|b| widen(f32::from_le_bytes([b[0], b[1], b[2], b[3]])))),
        // DT_DOUBLE
        2 => t.double_val.first().copied().or_else(|| {
            le(8).map(|b| f64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]))
        }),
        // DT_INT32
        3 => t
            .int_val
            .first()
            .map(|v| *v as f64)
            .or_else(|| le(4).map(|b| i32::from_le_bytes([b[0], b[1], b[2], b[3]]) as f64)),
        // DT_INT64
        9 => t.int64_val.first().map(|v| *v as f64).or_else(|| {
            le(8).map(|b| {
                i64::from_le_bytes([b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7]]) as f64
            })
        }),
        // DT_BFLOAT16: the high half of an f32.
        14 => t
            .half_val
            .first()
            .map(|v| widen(f32::from_bits((*v as u32 & 0xffff) << 16))),
        // DT_HALF
        19 => t.half_val.first().map(|v| half_to_f64(*v as u16)),
        _ => None,
    }
}

/// A NaN of `mantissa_bits` bits of payload (quiet bit first), as the f64 NaN with the same sign, quiet bit and
/// payload: so the value narrows back to the very bits that were written.
fn nan_f64(negative: bool, payload: u64, mantissa_bits: u32) -> f64 {
    f64::from_bits(
        ((negative as u64) << 63) | 0x7ff0_0000_0000_0000 | (payload << (52 - mantissa_bits)),
    )
}

/// f32 → f64 bit for bit: every f32 value is an f64 value, and a NaN keeps its sign, quiet bit and payload (a
/// plain `as` may quiet a signalling NaN, and Rust leaves the payload of a converted NaN unspecified).
fn widen(x: f32) -> f64 {
    if x.is_nan() {
        let b = x.to_bits();
        nan_f64(b >> 31 == 1, u64::from(b & 0x7f_ffff), 23)
    } else {
        f64::from(x)
    }
}

/// IEEE 754 half precision → f64 (NaNs keep their payload, as [`widen`]'s do).
fn half_to_f64(h: u16) -> f64 {
    let sign = if h & 0x8000 != 0 { -1.0 } else { 1.0 };
    let exp = ((h >> 10) & 0x1f) as i32;
    let frac = (h & 0x3ff) as f64;
    sign * match exp {
        0 => frac * 2f64.powi(-24),
        31 if frac == 0.0 => f64::INFINITY,
        31 => return nan_f64(h & 0x8000 != 0, u64::from(h & 0x3ff), 10),
        e => (1.0 + frac / 1024.0) * 2f64.powi(e - 15),
    }
}

/// One decoded record, as far as labd is concerned. Tags are borrowed from the record when it was read
/// plainly ([`pb::plain_scalars`]).
enum Fact<'a> {
    Scalars {
        step: i64,
        wall_time: f64,
        values: Vec<(Cow<'a, str>, f64)>,
    },
    HParams(Map<String, Json>),
    End(Option<RunStatus>),
}

fn facts(e: pb::Event, out: &mut Vec<Fact<'_>>) {
    let Some(summary) = e.summary else {
        return;
    };
    let mut values = Vec::new();
    for v in summary.value {
        let plugin = v
            .metadata
            .as_ref()
            .and_then(|m| m.plugin_data.as_ref())
            .map(|p| p.plugin_name.as_str())
            .unwrap_or("");
        if plugin == "hparams" {
            let content = v
                .metadata
                .as_ref()
                .and_then(|m| m.plugin_data.as_ref())
                .map(|p| p.content.as_slice())
                .unwrap_or_default();
            if let Ok(data) = pb::HParamsPluginData::decode(content) {
                if let Some(start) = data.session_start_info {
                    let config = start
                        .hparams
                        .into_iter()
                        .map(|(k, v)| {
                            let j = match (v.number_value, v.string_value, v.bool_value) {
                                (Some(n), _, _) => serde_json::Number::from_f64(n)
                                    .map(|n| {
                                        // Whole numbers stay integers (batch sizes, layer counts).
                                        match n.as_f64() {
                                            Some(f)
                                                if f.fract() == 0.0
                                                    && f.abs() < 9e15
                                                    && !(f == 0.0 && f.is_sign_negative()) =>
                                            {
                                                Json::from(f as i64)
                                            }
                                            _ => Json::Number(n),
                                        }
                                    })
                                    .unwrap_or(Json::Null),
                                (None, Some(s), _) => Json::String(s),
                                (None, None, Some(b)) => Json::Bool(b),
                                _ => Json::Null,
                            };
                            (k, j)
                        })
                        .collect();
                    out.push(Fact::HParams(config));
                }
                if let Some(end) = data.session_end_info {
                    out.push(Fact::End(match end.status {
                        1 => Some(RunStatus::Completed),
                        2 => Some(RunStatus::Failed),
                        _ => None,
                    }));
                }
            }
            continue;
        }
        let scalar = match (&v.simple_value, &v.tensor) {
            (Some(x), _) => Some(widen(*x)),
            (None, Some(t))
                if plugin == "scalars"
                    || v.metadata.as_ref().is_some_and(|m| m.data_class == 1) =>
            {
                tensor_scalar(t)
            }
            _ => None,
        };
        if let Some(x) = scalar {
            values.push((Cow::Owned(v.tag), x));
        }
    }
    if !values.is_empty() {
        out.push(Fact::Scalars {
            step: e.step,
            wall_time: e.wall_time,
            values,
        });
    }
}

/// The run a file belongs to: its folder.
/// The run a file belongs to, and its name (the folder's). A run is known by the name of the folder's first
/// event file (`events.out.tfevents.<time>.<host>.<pid>...`, unique to the writer that made it), which the
/// ingestor lists as sidecars: so a copy of the folder elsewhere is the same run. Without the list, the folder.
fn run_key(ctx: &Context<'_>) -> (String, String) {
    let path = Path::new(ctx.path);
    let dir = path.parent().unwrap_or(Path::new("/"));
    let name = dir
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or(ctx.default_name)
        .to_string();
    let own = path
        .file_name()
        .and_then(|n| n.to_str())
        .unwrap_or_default();
    let first = ctx
        .sidecars
        .iter()
        .filter_map(|(n, _)| n.strip_prefix("tfevents:"))
        .chain(std::iter::once(own))
        .filter(|n| !n.is_empty())
        .min();
    match first {
        Some(f) => (format!("tb:{name}/{f}"), name),
        None => (format!("tb:{}", dir.display()), name),
    }
}

/// Reads the complete records in `data`.
pub fn read(cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    let mut out = Output::default();
    let mut pos = 0usize;
    // Each record's facts, as decoded (the run's config may come after its first scalars).
    // Room for them up front (a scalar record takes about 60 bytes), not grown and copied record by record.
    let mut decoded: Vec<(u64, Fact)> = Vec::with_capacity(data.len() / 48);
    let mut plain = Vec::new();
    let mut known_tags = Vec::new();
    let mut facts_of = Vec::new();
    // The last record that decoded (with facts or not).
    let mut last_decoded = None;
    while data.len() - pos >= 12 {
        let header = &data[pos..pos + 12];
        let len = u64::from_le_bytes(header[..8].try_into().unwrap_or_default());
        let len_crc = u32::from_le_bytes(header[8..12].try_into().unwrap_or_default());
        let record = cursor.line + 1;
        if masked_crc(&header[..8]) != len_crc || len > MAX_RECORD {
            kill(
                cursor,
                &mut out,
                ctx,
                record,
                format!(
                    "record {record} at byte offset {} has a damaged length",
                    pos
                ),
            );
            break;
        }
        let total = 12 + len as usize + 4;
        if data.len() - pos < total {
            // A half-written record: the rest is still coming.
            out.wants = Some(total as u64);
            break;
        }
        let body = &data[pos + 12..pos + 12 + len as usize];
        let crc = u32::from_le_bytes(
            data[pos + 12 + len as usize..pos + total]
                .try_into()
                .unwrap_or_default(),
        );
        if masked_crc(body) != crc {
            kill(
                cursor,
                &mut out,
                ctx,
                record,
                format!("record {record}'s checksum fails (data damaged)"),
            );
            break;
        }
        cursor.line = record;
        pos += total;
        // Plain scalars are read straight from the bytes; anything else is decoded whole.
        plain.clear();
        if let Some((wall_time, step)) = pb::plain_scalars(body, &mut plain, &mut known_tags) {
            last_decoded = Some(record);
            if !plain.is_empty() {
                let values = plain
                    .iter()
                    .map(|&(tag, v)| (Cow::Borrowed(tag), widen(v)))
                    .collect();
                decoded.push((
                    record,
                    Fact::Scalars {
                        step,
                        wall_time,
                        values,
                    },
                ));
            }
            continue;
        }
        match pb::Event::decode(body) {
            Ok(e) => {
                last_decoded = Some(record);
                facts(e, &mut facts_of);
                decoded.extend(facts_of.drain(..).map(|f| (record, f)));
            }
            Err(e) => out.events.push(problem(
                ctx,
                Some(record),
                Severity::Error,
                format!("record {record} is not a TensorBoard event: {e}; skipped"),
            )),
        }
    }
    out.consumed = pos as u64;
    let (key, name) = run_key(ctx);
    // The run keeps how many records of each of its files it took: a copy of a file adds nothing.
    let file = Path::new(ctx.path)
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let mark = format!("f:{file}");
    let taken = ctx.runs.get(&key).counters.get(&mark).copied().unwrap_or(0);
    decoded.retain(|(n, _)| *n > taken);
    if let Some(last) = last_decoded.filter(|&n| n > taken) {
        ctx.runs.get(&key).counters.insert(mark, last);
    }
    // Room for an event a split of each record (two, mostly: `train/` and `val/`) and the run's beginning, not
    // grown (and copied) as they come.
    out.events.reserve(decoded.len() * 2 + 2);
    // The run's experiment, as `ctx.runs` holds it (looked up once; `begin` sets both).
    let mut current = ctx.runs.get(&key).current_exp.clone();
    // A record's rows, a split each (kept from record to record, emptied by each).
    let mut rows: Vec<(Option<&str>, FloatMap)> = Vec::new();
    for (record, f) in &decoded {
        {
            match f {
                Fact::HParams(config) => match current.clone() {
                    None => {
                        current = Some(begin(ctx, &key, &name, config.clone(), *record, &mut out));
                    }
                    Some(exp) => out.events.push(Event::new(
                        ctx.now,
                        source(ctx, *record),
                        EventKind::SummaryRecorded(SummaryRecorded {
                            exp,
                            group: "hparams".into(),
                            values: Json::Object(config.clone()),
                            extra: Map::new(),
                        }),
                    )),
                },
                Fact::Scalars {
                    step,
                    wall_time,
                    values,
                } => {
                    let exp = match current.clone() {
                        Some(e) => e,
                        None => {
                            // The run's config, when hparams come later in what was just read.
                            let config = decoded
                                .iter()
                                .find_map(|(_, f)| match f {
                                    Fact::HParams(c) => Some(c.clone()),
                                    _ => None,
                                })
                                .unwrap_or_default();
                            let exp = begin(ctx, &key, &name, config, *record, &mut out);
                            current = Some(exp.clone());
                            exp
                        }
                    };
                    // Tags `split/name` (`train/loss`) keep their split; others have none. A row a split, in
                    // the splits' order (no split first); a record has few, so they are found by looking.
                    for (tag, v) in values {
                        let (split, metric) = match tag.split_once('/') {
                            Some((s, m)) if !s.is_empty() && !m.is_empty() => (Some(s), m),
                            _ => (None, tag.as_ref()),
                        };
                        let row = match rows.iter().position(|(s, _)| *s == split) {
                            Some(i) => &mut rows[i].1,
                            None => {
                                rows.push((split, FloatMap::with_capacity(values.len())));
                                &mut rows.last_mut().expect("just pushed").1
                            }
                        };
                        row.insert(metric.to_string(), *v);
                    }
                    rows.sort_unstable_by(|a, b| a.0.cmp(&b.0));
                    for (split, values) in rows.drain(..) {
                        let split = split.map(str::to_string);
                        out.points += values.len() as u64;
                        out.events.push(Event::new(
                            ctx.now,
                            source(ctx, *record),
                            EventKind::MetricsLogged(MetricsLogged {
                                exp: exp.clone(),
                                split,
                                step: Some(*step),
                                epoch: None,
                                wall_time: (*wall_time > 0.0).then_some(*wall_time),
                                x: FloatMap::new(),
                                values,
                                extra: Map::new(),
                            }),
                        ));
                    }
                }
                Fact::End(status) => {
                    if let (Some(status), Some(exp)) = (status, current.clone()) {
                        out.events.push(Event::new(
                            ctx.now,
                            source(ctx, *record),
                            EventKind::StatusChanged(StatusChanged {
                                exp,
                                status: *status,
                                notes: Some("hparams session ended".into()),
                                extra: Map::new(),
                            }),
                        ));
                    }
                }
            }
        }
    }
    out.lines = cursor.line;
    out
}

/// Creates the folder's run.
fn begin(
    ctx: &mut Context<'_>,
    key: &str,
    name: &str,
    config: Map<String, Json>,
    record: u64,
    out: &mut Output,
) -> ExperimentId {
    let mut extra = Map::new();
    extra.insert("source_format".into(), "tensorboard".into());
    super::begin_run(
        ctx,
        key,
        RunLine {
            name: Some(name.to_string()),
            config,
            extra,
            ..Default::default()
        },
        source(ctx, record),
        out,
    )
}

/// Stops reading a damaged file, as TensorBoard does, keeping what came before.
fn kill(cursor: &mut FileCursor, out: &mut Output, ctx: &Context<'_>, record: u64, reason: String) {
    let reason = format!(
        "{reason}; the records before it were read, the rest of the file is skipped (as TensorBoard does)"
    );
    out.events.push(problem(
        ctx,
        Some(record),
        Severity::Warning,
        reason.clone(),
    ));
    cursor.dead = Some(reason);
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runs;

    fn fixture(rel: &str) -> (String, Vec<u8>) {
        let dir =
            Path::new(env!("CARGO_MANIFEST_DIR")).join("../tests/fixtures/formats/tensorboard");
        let path = std::fs::read_dir(dir.join(rel))
            .map(|entries| {
                let mut files: Vec<_> = entries.flatten().map(|e| e.path()).collect();
                files.sort();
                files
            })
            .unwrap_or_else(|_| vec![dir.join(rel)]);
        let p = path[0].clone();
        (p.display().to_string(), std::fs::read(&p).unwrap())
    }

    fn read_file(path: &str, data: &[u8], runs: &mut Runs) -> (FileCursor, Output) {
        let format = crate::Format::TensorBoard;
        crate::testing::read_as(format, path, data, runs, &[], false)
    }

    fn metrics(out: &Output) -> Vec<&MetricsLogged> {
        out.events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::MetricsLogged(m) => Some(m),
                _ => None,
            })
            .collect()
    }

    /// A record's wall time's bits, step, and values (tags and `f32` bits).
    type Read = (u64, i64, Vec<(String, u32)>);

    /// What prost's decoding gives for a record, or `None` when it fails.
    fn by_prost(body: &[u8]) -> Option<Read> {
        let e = pb::Event::decode(body).ok()?;
        let (wall, step) = (e.wall_time.to_bits(), e.step);
        let mut facts_of = Vec::new();
        facts(e, &mut facts_of);
        let values = facts_of
            .into_iter()
            .flat_map(|f| match f {
                Fact::Scalars { values, .. } => values,
                _ => Vec::new(),
            })
            .map(|(t, v)| (t.into_owned(), narrow(v).to_bits()))
            .collect();
        Some((wall, step, values))
    }

    /// [`widen`]'s inverse: f64 → the f32 it was widened from, a NaN's sign, quiet bit and payload kept.
    fn narrow(x: f64) -> f32 {
        if x.is_nan() {
            let b = x.to_bits();
            f32::from_bits(
                (((b >> 63) as u32) << 31) | 0x7f80_0000 | ((b >> 29) as u32 & 0x7f_ffff),
            )
        } else {
            x as f32
        }
    }

    #[test]
    fn every_f32_widens_and_narrows_back_bit_for_bit() {
        // Signalling and quiet NaNs of both signs with payloads, infinities, zeros, subnormals.
        for bits in [
            0x7f80_0001u32,
            0xff80_0001,
            0x7fc0_0001,
            0x7fbf_ffff,
            0xffff_ffff,
            0x7f80_0000,
            0x8000_0000,
            0x0000_0001,
            0x3f80_0000,
        ] {
            let x = f32::from_bits(bits);
            assert_eq!(narrow(widen(x)).to_bits(), bits, "{bits:#x}");
            assert_eq!(widen(x).is_nan(), x.is_nan(), "{bits:#x}");
        }
        for bits in (0..=u32::MAX).step_by(65_521) {
            assert_eq!(
                narrow(widen(f32::from_bits(bits))).to_bits(),
                bits,
                "{bits:#x}"
            );
        }
    }

    proptest::proptest! {
        /// Read plainly, a record gives what prost's decoding gives; anything it does not take plainly (a
        /// tensor, metadata, damage) is left to prost.
        #[test]
        fn plain_scalars_read_as_prost_decodes(
            wall in proptest::num::f64::ANY,
            step in proptest::num::i64::ANY,
            values in proptest::collection::vec(("[a-z/]{0,12}", proptest::num::f32::ANY, 0u8..8), 0..6),
            cut in proptest::option::of(0usize..200),
            flip in proptest::option::of((0usize..200, proptest::num::u8::ANY)),
        ) {
            let event = pb::Event {
                wall_time: wall,
                step,
                file_version: (step % 3 == 0).then(|| "brain.Event:2".to_string()),
                summary: Some(pb::Summary {
                    value: values
                        .iter()
                        .map(|(tag, v, kind)| pb::Value {
                            tag: tag.clone(),
                            simple_value: (*kind != 1).then_some(*v),
                            tensor: (*kind == 2).then(|| pb::Tensor {
                                dtype: 1,
                                shape: None,
                                content: Vec::new(),
                                float_val: vec![*v],
                                double_val: Vec::new(),
                                int_val: Vec::new(),
                                int64_val: Vec::new(),
                                half_val: Vec::new(),
                            }),
                            metadata: (*kind == 3).then(|| pb::Metadata {
                                plugin_data: Some(pb::PluginData {
                                    plugin_name: "scalars".into(),
                                    content: Vec::new(),
                                }),
                                data_class: 1,
                            }),
                        })
                        .collect(),
                }),
            };
            let mut body = event.encode_to_vec();
            if let Some(at) = cut {
                body.truncate(at);
            }
            if let Some((at, b)) = flip
                && at < body.len()
            {
                body[at] ^= b;
            }
            // Read twice, the second time with the tags the first left known (as records follow records).
            let mut known = Vec::new();
            for _ in 0..2 {
                let mut plain = Vec::new();
                if let Some((w, s)) = pb::plain_scalars(&body, &mut plain, &mut known) {
                    let plain: Vec<(String, u32)> =
                        plain.iter().map(|(t, v)| (t.to_string(), v.to_bits())).collect();
                    proptest::prop_assert_eq!(Some((w.to_bits(), s, plain)), by_prost(&body));
                }
            }
        }
    }

    #[test]
    fn tensorboards_own_files_decode_with_hparams_and_both_scalar_kinds() {
        let mut runs = Runs::default();
        let (path, data) = fixture("logs/run_a");
        let (cursor, out) = read_file(&path, &data, &mut runs);
        assert!(cursor.dead.is_none(), "{:?}", cursor.dead);
        assert_eq!(out.consumed, data.len() as u64, "every record read");
        let EventKind::ExperimentCreated(c) = &out.events[0].kind else {
            panic!("{:?}", out.events[0].kind)
        };
        assert_eq!(c.name, "run_a");
        assert_eq!(c.config["lr"], 0.01);
        assert_eq!(c.config["batch_size"], 32);
        assert_eq!(c.config["optimizer"], "adam");
        let m = metrics(&out);
        assert_eq!(m.len(), 20, "steps 0..9, train and val rows");
        let step5: Vec<_> = m.iter().filter(|m| m.step == Some(5)).collect();
        let train = step5
            .iter()
            .find(|m| m.split.as_deref() == Some("train"))
            .unwrap();
        assert_eq!(train.values["loss"], 2.0 - 0.0625 * 5.0);
        assert_eq!(train.wall_time, Some(1_700_000_000.0 + 7.5));
        // run_b: scalar tensors from tensorboard.summary.Writer.
        let (path, data) = fixture("logs/run_b");
        let (_, out) = read_file(&path, &data, &mut runs);
        let m = metrics(&out);
        assert_eq!(m.len(), 40);
        let acc = m
            .iter()
            .find(|m| m.step == Some(4) && m.split.as_deref() == Some("val"))
            .unwrap();
        assert_eq!(acc.values["acc"], 0.25 + 0.03125 * 4.0);
    }

    #[test]
    fn a_half_written_record_waits_and_a_bad_checksum_ends_the_file() {
        let mut runs = Runs::default();
        let (path, data) = fixture("broken/events.out.tfevents.truncated");
        let (cursor, out) = read_file(&path, &data, &mut runs);
        assert!(cursor.dead.is_none());
        assert!(
            out.consumed < data.len() as u64 && out.wants.is_some(),
            "the last record waits"
        );
        let (path, data) = fixture("broken/events.out.tfevents.corrupt_crc");
        let (cursor, out) = read_file(&path, &data, &mut runs);
        assert!(
            cursor
                .dead
                .as_deref()
                .is_some_and(|d| d.contains("checksum")),
            "{:?}",
            cursor.dead
        );
        assert!(out.events.iter().any(
            |e| matches!(&e.kind, EventKind::IngestError(i) if i.severity == Severity::Warning)
        ));
        assert_eq!(
            cursor.line, 3,
            "the records before the damaged one were read"
        );
    }

    #[test]
    fn half_precision() {
        assert_eq!(half_to_f64(0x3c00), 1.0);
        assert_eq!(half_to_f64(0xc000), -2.0);
        assert!(half_to_f64(0x7e00).is_nan());
        // A half NaN keeps its sign and payload: the same bits as the f32 NaN it would widen to.
        assert_eq!(
            half_to_f64(0xfd01).to_bits(),
            widen(f32::from_bits(0xffa0_2000)).to_bits()
        );
        assert_eq!(half_to_f64(0x7c00), f64::INFINITY);
    }
}
