//! Metric maps (name → f64) whose values may be NaN or ±infinity. In binary formats (msgpack, the log) they
//! are plain floats; in JSON, where those values have no spelling, they are written as the strings `"NaN"`,
//! `"Infinity"` and `"-Infinity"`, and read back from them (or from `null`, as NaN).

use serde::de::{Deserializer, MapAccess, Visitor};
use serde::ser::{SerializeMap, Serializer};
use std::collections::BTreeMap;
use std::fmt;

/// The JSON spelling of a non-finite value.
pub fn spell(v: f64) -> Option<&'static str> {
    if v.is_nan() {
        Some("NaN")
    } else if v == f64::INFINITY {
        Some("Infinity")
    } else if v == f64::NEG_INFINITY {
        Some("-Infinity")
    } else {
        None
    }
}

/// A non-finite value from its JSON spelling (`NaN`, `Infinity`, `-Infinity`, also `inf`, `-inf`, `nan`).
pub fn parse_special(text: &str) -> Option<f64> {
    match text.trim() {
        "NaN" | "nan" | "NAN" => Some(f64::NAN),
        "Infinity" | "inf" | "+inf" | "Inf" => Some(f64::INFINITY),
        "-Infinity" | "-inf" | "-Inf" => Some(f64::NEG_INFINITY),
        _ => None,
    }
}

/// Writes name → float entries as a map: in JSON a non-finite value spelled, in binary formats every value a
/// plain float.
pub(crate) fn serialize_entries<'a, S: Serializer>(
    len: usize,
    entries: impl Iterator<Item = (&'a String, &'a f64)>,
    s: S,
) -> Result<S::Ok, S::Error> {
    let human = s.is_human_readable();
    let mut out = s.serialize_map(Some(len))?;
    for (k, v) in entries {
        match spell(*v).filter(|_| human) {
            Some(text) => out.serialize_entry(k, text)?,
            None => out.serialize_entry(k, v)?,
        }
    }
    out.end()
}

/// Reads a map of names to numbers (or their spellings, or null as NaN) into any map `M`; a name given twice
/// keeps its last value.
pub(crate) struct MapVisitor<M>(pub(crate) std::marker::PhantomData<M>);

impl<'de, M: Default + Extend<(String, f64)>> Visitor<'de> for MapVisitor<M> {
    type Value = M;

    fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("a map of names to numbers (or \"NaN\", \"Infinity\", \"-Infinity\")")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<M, A::Error> {
        let mut out = M::default();
        while let Some((k, v)) = access.next_entry::<String, Lenient>()? {
            out.extend([(k, v.0)]);
        }
        Ok(out)
    }
}

/// `#[serde(with = "crate::floats::map")]` for `BTreeMap<String, f64>`.
pub mod map {
    use super::*;

    pub fn serialize<S: Serializer>(m: &BTreeMap<String, f64>, s: S) -> Result<S::Ok, S::Error> {
        serialize_entries(m.len(), m.iter(), s)
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<BTreeMap<String, f64>, D::Error> {
        if !d.is_human_readable() {
            return serde::Deserialize::deserialize(d);
        }
        d.deserialize_map(MapVisitor(std::marker::PhantomData))
    }
}

/// A number, one of the spelled non-finite values, or null (NaN).
pub(crate) struct Lenient(pub(crate) f64);

impl<'de> serde::Deserialize<'de> for Lenient {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct V;
        impl<'de> Visitor<'de> for V {
            type Value = Lenient;
            fn expecting(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
                f.write_str("a number, \"NaN\", \"Infinity\" or \"-Infinity\"")
            }
            fn visit_f64<E>(self, v: f64) -> Result<Lenient, E> {
                Ok(Lenient(v))
            }
            fn visit_i64<E>(self, v: i64) -> Result<Lenient, E> {
                Ok(Lenient(v as f64))
            }
            fn visit_u64<E>(self, v: u64) -> Result<Lenient, E> {
                Ok(Lenient(v as f64))
            }
            fn visit_unit<E>(self) -> Result<Lenient, E> {
                Ok(Lenient(f64::NAN))
            }
            fn visit_str<E: serde::de::Error>(self, v: &str) -> Result<Lenient, E> {
                match v {
                    "NaN" => Ok(Lenient(f64::NAN)),
                    "Infinity" => Ok(Lenient(f64::INFINITY)),
                    "-Infinity" => Ok(Lenient(f64::NEG_INFINITY)),
                    other => Err(E::custom(format!("{other:?} is not a number"))),
                }
            }
        }
        d.deserialize_any(V)
    }
}

/// `#[serde(default, with = "crate::floats::opt")]` for `Option<f64>`: in JSON a non-finite value is spelled
/// (`"NaN"`, ...), `None` is `null`; in binary formats a plain optional float.
pub mod opt {
    use super::*;

    pub fn serialize<S: Serializer>(v: &Option<f64>, s: S) -> Result<S::Ok, S::Error> {
        match v {
            Some(x) if s.is_human_readable() => match spell(*x) {
                Some(text) => s.serialize_str(text),
                None => s.serialize_f64(*x),
            },
            Some(x) => s.serialize_f64(*x),
            None => s.serialize_none(),
        }
    }

    pub fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Option<f64>, D::Error> {
        if !d.is_human_readable() {
            return serde::Deserialize::deserialize(d);
        }
        let v: Option<serde_json::Value> = serde::Deserialize::deserialize(d)?;
        match v {
            None | Some(serde_json::Value::Null) => Ok(None),
            Some(serde_json::Value::Number(n)) => n
                .as_f64()
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom("not a number")),
            Some(serde_json::Value::String(t)) => parse_special(&t)
                .map(Some)
                .ok_or_else(|| serde::de::Error::custom(format!("{t:?} is not a number"))),
            Some(other) => Err(serde::de::Error::custom(format!("{other} is not a number"))),
        }
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};
    use std::collections::BTreeMap;

    #[derive(Serialize, Deserialize, Debug)]
    struct Row {
        #[serde(with = "super::map")]
        values: BTreeMap<String, f64>,
    }

    #[test]
    fn json_spells_non_finite_values_and_msgpack_keeps_floats() {
        let row = Row {
            values: [
                ("a".into(), f64::NAN),
                ("b".into(), f64::NEG_INFINITY),
                ("c".into(), 1.5),
            ]
            .into(),
        };
        let text = serde_json::to_string(&row).unwrap();
        assert_eq!(text, r#"{"values":{"a":"NaN","b":"-Infinity","c":1.5}}"#);
        let back: Row = serde_json::from_str(&text).unwrap();
        assert!(back.values["a"].is_nan());
        assert_eq!(back.values["b"], f64::NEG_INFINITY);
        let bin = rmp_serde::to_vec_named(&row).unwrap();
        let back: Row = rmp_serde::from_slice(&bin).unwrap();
        assert!(back.values["a"].is_nan());
        assert_eq!(back.values["c"], 1.5);
    }
}
