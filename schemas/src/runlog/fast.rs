//! The fast path for the commonest line, `metrics`: typed straight from the text (keys borrowed, no JSON tree
//! built and taken apart). Whatever it does not take plainly — another kind, a field given twice, a value that is
//! not a number, a bad time, Python's bare `NaN` — it leaves to the general parser, which names the problem; on
//! the lines it takes, both paths give the same line (a property test checks).

use super::MetricsLine;
use crate::float_map::FloatMap;
use crate::time::TimeValue;
use serde::Deserializer as _;
use serde::de::{self, MapAccess, Visitor};
use serde_json::{Map, Value};
use std::borrow::Cow;
use std::collections::BTreeMap;
use std::fmt;
use std::marker::PhantomData;

/// The `metrics` line `text` holds, when it is one this path takes whole.
pub fn metrics(text: &str) -> Option<MetricsLine> {
    let row = read::<BTreeMap<String, Option<f64>>>(text)?;
    Some(MetricsLine {
        split: row.split,
        step: row.step,
        epoch: row.epoch,
        time: row.time,
        x: row.x.into(),
        values: row.values,
        extra: row.extra,
    })
}

/// A `metrics` line with its null (missing) values left out: what a metrics event holds.
#[derive(Debug)]
pub struct MetricsRow {
    pub split: Option<String>,
    pub step: Option<i64>,
    pub epoch: Option<f64>,
    pub time: Option<TimeValue>,
    pub x: FloatMap,
    pub values: FloatMap,
    pub extra: Map<String, Value>,
}

/// The `metrics` line `text` holds, without its null values (as [`metrics`], with no map to rebuild after), read
/// by serde (the scanner, [`super::scan`], takes the plainest lines before this; see [`super::metrics_row`]).
pub fn serde_row(text: &str) -> Option<MetricsRow> {
    let row = read::<FloatMap>(text)?;
    Some(MetricsRow {
        split: row.split,
        step: row.step,
        epoch: row.epoch,
        time: row.time,
        x: row.x,
        values: row.values,
        extra: row.extra,
    })
}

/// A line as read, its values in a map of type `M`.
struct Row<M> {
    split: Option<String>,
    step: Option<i64>,
    epoch: Option<f64>,
    time: Option<TimeValue>,
    x: FloatMap,
    values: M,
    extra: Map<String, Value>,
}

fn read<M: NumberMap>(text: &str) -> Option<Row<M>> {
    let mut de = serde_json::Deserializer::from_str(text);
    let line = de.deserialize_map(LineVisitor(PhantomData::<M>)).ok()?;
    de.end().ok()?;
    if let Some(t) = &line.time {
        t.to_micros().ok()?;
    }
    Some(line)
}

/// Where an object's numbers go: every entry with nulls kept, or only the numbers (a later null for a key
/// takes out its earlier number, as the last of duplicate keys wins in JSON objects here).
trait NumberMap: Default {
    fn put(&mut self, key: String, v: Option<f64>);
}

impl NumberMap for BTreeMap<String, Option<f64>> {
    fn put(&mut self, key: String, v: Option<f64>) {
        self.insert(key, v);
    }
}

impl NumberMap for FloatMap {
    fn put(&mut self, key: String, v: Option<f64>) {
        match v {
            Some(v) => {
                self.insert(key, v);
            }
            None => {
                self.remove(&key);
            }
        }
    }
}

/// Why the fast path let a line go (never shown: the general parser reports instead).
fn declined<E: de::Error>() -> E {
    E::custom("left to the general parser")
}

/// A key, borrowed from the text unless it holds escapes.
struct Key<'de>(Cow<'de, str>);

impl<'de> de::Deserialize<'de> for Key<'de> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Key<'de>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_borrowed_str<E: de::Error>(self, v: &'de str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Borrowed(v)))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Key<'de>, E> {
                Ok(Key(Cow::Owned(v.to_string())))
            }
        }
        d.deserialize_str(V)
    }
}

/// A number, `None` for null, or the strings `NaN`/`Infinity`/`-Infinity` (as the general parser's `number`).
struct Num(Option<f64>);

impl<'de> de::Deserialize<'de> for Num {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Num;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a number")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Num, E> {
                Ok(Num(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Num, E> {
                Ok(Num(Some(v as f64)))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Num, E> {
                Ok(Num(None))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Num, E> {
                match v {
                    "NaN" | "nan" => Ok(Num(Some(f64::NAN))),
                    "Infinity" | "inf" => Ok(Num(Some(f64::INFINITY))),
                    "-Infinity" | "-inf" => Ok(Num(Some(f64::NEG_INFINITY))),
                    _ => Err(declined()),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// A step: an integer, or a float with no fraction below 9e15; `None` for null.
struct Step(Option<i64>);

impl<'de> de::Deserialize<'de> for Step {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Step;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an integer")
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Step, E> {
                Ok(Step(Some(v)))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Step, E> {
                i64::try_from(v)
                    .map(|v| Step(Some(v)))
                    .map_err(|_| declined())
            }
            fn visit_f64<E: de::Error>(self, f: f64) -> Result<Step, E> {
                if f.fract() == 0.0 && f.abs() < 9.0e15 {
                    Ok(Step(Some(f as i64)))
                } else {
                    Err(declined())
                }
            }
            fn visit_unit<E: de::Error>(self) -> Result<Step, E> {
                Ok(Step(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// A time: Unix seconds or RFC 3339 text (checked by the caller); `None` for null.
struct Time(Option<TimeValue>);

impl<'de> de::Deserialize<'de> for Time {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Time;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a time")
            }
            fn visit_f64<E: de::Error>(self, v: f64) -> Result<Time, E> {
                Ok(Time(Some(TimeValue::Seconds(v))))
            }
            fn visit_u64<E: de::Error>(self, v: u64) -> Result<Time, E> {
                Ok(Time(Some(TimeValue::Seconds(v as f64))))
            }
            fn visit_i64<E: de::Error>(self, v: i64) -> Result<Time, E> {
                Ok(Time(Some(TimeValue::Seconds(v as f64))))
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Time, E> {
                Ok(Time(Some(TimeValue::Rfc3339(v.to_string()))))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Time, E> {
                Ok(Time(None))
            }
        }
        d.deserialize_any(V)
    }
}

/// An object of numbers (`values`, `x`); null is an empty one when `NULL` (`x` may be null, `values` not).
struct Numbers<M, const NULL: bool>(M);

impl<'de, M: NumberMap, const NULL: bool> de::Deserialize<'de> for Numbers<M, NULL> {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V<M, const NULL: bool>(PhantomData<M>);
        impl<'de, M: NumberMap, const NULL: bool> Visitor<'de> for V<M, NULL> {
            type Value = Numbers<M, NULL>;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("an object of numbers")
            }
            fn visit_map<A: MapAccess<'de>>(
                self,
                mut map: A,
            ) -> Result<Numbers<M, NULL>, A::Error> {
                let mut out = M::default();
                while let Some(Key(k)) = map.next_key::<Key>()? {
                    let Num(v) = map.next_value()?;
                    out.put(k.into_owned(), v);
                }
                Ok(Numbers(out))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Numbers<M, NULL>, E> {
                if NULL {
                    Ok(Numbers(M::default()))
                } else {
                    Err(declined())
                }
            }
        }
        d.deserialize_any(V(PhantomData))
    }
}

/// A split: text or null.
struct Text(Option<String>);

impl<'de> de::Deserialize<'de> for Text {
    fn deserialize<D: de::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Text;
            fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
                f.write_str("a string")
            }
            fn visit_str<E: de::Error>(self, v: &str) -> Result<Text, E> {
                Ok(Text(Some(v.to_string())))
            }
            fn visit_unit<E: de::Error>(self) -> Result<Text, E> {
                Ok(Text(None))
            }
        }
        d.deserialize_any(V)
    }
}

struct LineVisitor<M>(PhantomData<M>);

impl<'de, M: NumberMap> Visitor<'de> for LineVisitor<M> {
    type Value = Row<M>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a metrics line")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<Row<M>, A::Error> {
        let mut kind = false;
        let (mut split, mut step, mut epoch, mut time) = (None, None, None, None);
        let mut x: Option<Numbers<FloatMap, true>> = None;
        let mut values: Option<Numbers<M, false>> = None;
        let mut extra = Map::new();
        fn once<T, E: de::Error>(slot: &mut Option<T>, v: T) -> Result<(), E> {
            match slot.replace(v) {
                None => Ok(()),
                Some(_) => Err(declined()),
            }
        }
        while let Some(Key(key)) = map.next_key::<Key>()? {
            match key.as_ref() {
                "kind" => {
                    let Key(k) = map.next_value::<Key>()?;
                    if kind || k != "metrics" {
                        return Err(declined());
                    }
                    kind = true;
                }
                "split" => once(&mut split, map.next_value::<Text>()?.0)?,
                "step" => once(&mut step, map.next_value::<Step>()?.0)?,
                "epoch" => once(&mut epoch, map.next_value::<Num>()?.0)?,
                "time" => once(&mut time, map.next_value::<Time>()?.0)?,
                "x" => once(&mut x, map.next_value()?)?,
                "values" => once(&mut values, map.next_value()?)?,
                _ => {
                    let v = map.next_value::<Value>()?;
                    if extra.insert(key.into_owned(), v).is_some() {
                        return Err(declined());
                    }
                }
            }
        }
        let (true, Some(Numbers(values))) = (kind, values) else {
            return Err(declined());
        };
        Ok(Row {
            split: split.flatten(),
            step: step.flatten(),
            epoch: epoch.flatten(),
            time: time.flatten(),
            x: x.map(|Numbers(m)| m).unwrap_or_default(),
            values,
            extra,
        })
    }
}
