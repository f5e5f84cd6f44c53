//! The protobuf messages of TensorBoard's event files that labd reads (the fields it needs; prost skips the
//! others): `Event`, its `Summary` values (simple values, scalar tensors, plugin metadata) and the hparams
//! plugin's session start and end.

use std::collections::BTreeMap;

#[derive(Clone, PartialEq, prost::Message)]
pub struct Event {
    #[prost(double, tag = "1")]
    pub wall_time: f64,
    #[prost(int64, tag = "2")]
    pub step: i64,
    #[prost(string, optional, tag = "3")]
    pub file_version: Option<String>,
    #[prost(message, optional, tag = "5")]
    pub summary: Option<Summary>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Summary {
    #[prost(message, repeated, tag = "1")]
    pub value: Vec<Value>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Value {
    #[prost(string, tag = "1")]
    pub tag: String,
    #[prost(float, optional, tag = "2")]
    pub simple_value: Option<f32>,
    #[prost(message, optional, tag = "8")]
    pub tensor: Option<Tensor>,
    #[prost(message, optional, tag = "9")]
    pub metadata: Option<Metadata>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Metadata {
    #[prost(message, optional, tag = "1")]
    pub plugin_data: Option<PluginData>,
    /// 1 = scalar.
    #[prost(int32, tag = "4")]
    pub data_class: i32,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct PluginData {
    #[prost(string, tag = "1")]
    pub plugin_name: String,
    #[prost(bytes = "vec", tag = "2")]
    pub content: Vec<u8>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Tensor {
    #[prost(int32, tag = "1")]
    pub dtype: i32,
    #[prost(message, optional, tag = "2")]
    pub shape: Option<Shape>,
    #[prost(bytes = "vec", tag = "4")]
    pub content: Vec<u8>,
    #[prost(float, repeated, tag = "5")]
    pub float_val: Vec<f32>,
    #[prost(double, repeated, tag = "6")]
    pub double_val: Vec<f64>,
    #[prost(int32, repeated, tag = "7")]
    pub int_val: Vec<i32>,
    #[prost(int64, repeated, tag = "10")]
    pub int64_val: Vec<i64>,
    #[prost(int32, repeated, tag = "13")]
    pub half_val: Vec<i32>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Shape {
    #[prost(message, repeated, tag = "2")]
    pub dim: Vec<Dim>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct Dim {
    #[prost(int64, tag = "1")]
    pub size: i64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct HParamsPluginData {
    #[prost(message, optional, tag = "3")]
    pub session_start_info: Option<SessionStartInfo>,
    #[prost(message, optional, tag = "4")]
    pub session_end_info: Option<SessionEndInfo>,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionStartInfo {
    #[prost(btree_map = "string, message", tag = "1")]
    pub hparams: BTreeMap<String, PbValue>,
    #[prost(string, tag = "4")]
    pub group_name: String,
    #[prost(double, tag = "5")]
    pub start_time_secs: f64,
}

#[derive(Clone, PartialEq, prost::Message)]
pub struct SessionEndInfo {
    /// 1 success, 2 failure, 3 running.
    #[prost(int32, tag = "1")]
    pub status: i32,
    #[prost(double, tag = "2")]
    pub end_time_secs: f64,
}

/// `google.protobuf.Value` (the kinds hparams use).
#[derive(Clone, PartialEq, prost::Message)]
pub struct PbValue {
    #[prost(double, optional, tag = "2")]
    pub number_value: Option<f64>,
    #[prost(string, optional, tag = "3")]
    pub string_value: Option<String>,
    #[prost(bool, optional, tag = "4")]
    pub bool_value: Option<bool>,
}

/// The scalars of an `Event` whose summary values are all plain (`simple_value`, no tensor, no plugin
/// metadata: what `add_scalar` and `tf.summary.scalar` in TF1 write), read straight from the bytes with the
/// tags borrowed: `(wall_time, step)`, the values appended to `values`. `None` for anything else (an event
/// of another kind is still `Some`, with no values), which prost then decodes as a whole: this is only the
/// common case made cheap, and gives what prost's decoding would. `known` holds the tags of the record before
/// by position: a tag that repeats (as they do, record after record) is compared, not checked as UTF-8 again.
pub fn plain_scalars<'a>(
    body: &'a [u8],
    values: &mut Vec<(&'a str, f32)>,
    known: &mut Vec<&'a str>,
) -> Option<(f64, i64)> {
    let mut r = Wire(body);
    let (mut wall, mut step, mut summaries) = (0.0, 0i64, 0);
    while !r.0.is_empty() {
        let (field, kind) = r.key()?;
        match (field, kind) {
            (1, 1) => wall = f64::from_le_bytes(r.take(8)?.try_into().ok()?),
            (2, 0) => step = r.varint()? as i64,
            (5, 2) => {
                summaries += 1;
                if summaries > 1 {
                    // Repeated, prost merges them: left to it.
                    return None;
                }
                let mut s = Wire(r.len_delimited()?);
                while !s.0.is_empty() {
                    match s.key()? {
                        (1, 2) => {
                            let (tag, v) = plain_value(s.len_delimited()?)?;
                            let j = values.len();
                            let tag = match known.get(j) {
                                Some(k) if k.as_bytes() == tag => *k,
                                _ => {
                                    let t = std::str::from_utf8(tag).ok()?;
                                    known.truncate(j);
                                    known.push(t);
                                    t
                                }
                            };
                            if let Some(v) = v {
                                values.push((tag, v));
                            }
                        }
                        (1, _) => return None,
                        (_, kind) => s.skip(kind)?,
                    }
                }
            }
            (1 | 2 | 5, _) => return None,
            (3, 2) => {
                std::str::from_utf8(r.len_delimited()?).ok()?;
            }
            (3, _) => return None,
            (_, kind) => r.skip(kind)?,
        }
    }
    Some((wall, step))
}

/// A summary value's tag (its bytes, not yet checked as UTF-8) and simple value; `None` when it has a tensor or
/// metadata (or is malformed).
fn plain_value(bytes: &[u8]) -> Option<(&[u8], Option<f32>)> {
    let mut r = Wire(bytes);
    let (mut tag, mut value): (&[u8], _) = (b"", None);
    while !r.0.is_empty() {
        match r.key()? {
            (1, 2) => tag = r.len_delimited()?,
            (2, 5) => value = Some(f32::from_le_bytes(r.take(4)?.try_into().ok()?)),
            (1 | 2 | 8 | 9, _) => return None,
            (_, kind) => r.skip(kind)?,
        }
    }
    Some((tag, value))
}

/// Protobuf's wire format, read forward.
struct Wire<'a>(&'a [u8]);

impl<'a> Wire<'a> {
    #[inline]
    fn varint(&mut self) -> Option<u64> {
        // One byte (field keys, lengths, small steps): most of them, read inline.
        if let Some((&b, rest)) = self.0.split_first()
            && b < 0x80
        {
            self.0 = rest;
            return Some(u64::from(b));
        }
        self.long_varint()
    }

    #[inline(never)]
    fn long_varint(&mut self) -> Option<u64> {
        let mut v = 0u64;
        for (i, &b) in self.0.iter().enumerate().take(10) {
            if i == 9 && b > 1 {
                return None;
            }
            v |= u64::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                self.0 = &self.0[i + 1..];
                return Some(v);
            }
        }
        None
    }

    #[inline]
    fn key(&mut self) -> Option<(u64, u8)> {
        let k = self.varint()?;
        (k >> 3 != 0 && k <= u64::from(u32::MAX)).then_some((k >> 3, (k & 7) as u8))
    }

    #[inline]
    fn take(&mut self, n: usize) -> Option<&'a [u8]> {
        let (a, b) = (self.0.get(..n)?, self.0.get(n..)?);
        self.0 = b;
        Some(a)
    }

    #[inline]
    fn len_delimited(&mut self) -> Option<&'a [u8]> {
        let n = usize::try_from(self.varint()?).ok()?;
        self.take(n)
    }

    /// Passes over a field of wire type `kind` (groups are left to prost).
    fn skip(&mut self, kind: u8) -> Option<()> {
        match kind {
            0 => self.varint().map(drop),
            1 => self.take(8).map(drop),
            2 => self.len_delimited().map(drop),
            5 => self.take(4).map(drop),
            _ => None,
        }
    }
}
