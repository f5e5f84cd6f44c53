//! [`FloatMap`]: a row's named floats (metric or axis name → value), sorted by name, each name once.
//!
//! It is what a `BTreeMap<String, f64>` gave a metrics row, kept in one small vector. A row holds a handful of
//! values; a B-tree spent a node of some 400 bytes on each row, and walked it to build and to drop it, which
//! cost more than reading the row. Rows mostly arrive with their names in order, so an insert is mostly a push.
//!
//! In JSON a non-finite value is spelled (`"NaN"`, `"Infinity"`, `"-Infinity"`) and read back from its
//! spelling or `null` (see [`crate::floats`]); in binary formats (msgpack, the log) the map is a plain map of
//! floats, entry for entry what the B-tree wrote, so blocks written before read the same.

use serde::de::Deserializer;
use serde::ser::Serializer;
use std::fmt;

/// Names to floats, sorted by name, each name once.
#[derive(Clone, Default, PartialEq)]
pub struct FloatMap(Vec<(String, f64)>);

/// Shown as a map, as a `BTreeMap` is.
impl fmt::Debug for FloatMap {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_map().entries(self.iter()).finish()
    }
}

/// The entries of a [`FloatMap`], in name order, as `BTreeMap::iter` gives them.
pub type Iter<'a> = std::iter::Map<
    std::slice::Iter<'a, (String, f64)>,
    fn(&'a (String, f64)) -> (&'a String, &'a f64),
>;

fn entry(e: &(String, f64)) -> (&String, &f64) {
    (&e.0, &e.1)
}

impl FloatMap {
    pub const fn new() -> Self {
        FloatMap(Vec::new())
    }

    pub fn with_capacity(n: usize) -> Self {
        FloatMap(Vec::with_capacity(n))
    }

    pub fn len(&self) -> usize {
        self.0.len()
    }

    pub fn is_empty(&self) -> bool {
        self.0.is_empty()
    }

    fn find(&self, name: &str) -> Result<usize, usize> {
        self.0.binary_search_by(|(n, _)| n.as_str().cmp(name))
    }

    /// Sets `name` to `v`, answering the value it replaces.
    pub fn insert(&mut self, name: String, v: f64) -> Option<f64> {
        // In order (the common case): a push.
        if self
            .0
            .last()
            .is_none_or(|(last, _)| last.as_str() < name.as_str())
        {
            self.0.push((name, v));
            return None;
        }
        match self.find(&name) {
            Ok(i) => Some(std::mem::replace(&mut self.0[i].1, v)),
            Err(i) => {
                self.0.insert(i, (name, v));
                None
            }
        }
    }

    pub fn get(&self, name: &str) -> Option<&f64> {
        self.find(name).ok().map(|i| &self.0[i].1)
    }

    pub fn contains_key(&self, name: &str) -> bool {
        self.find(name).is_ok()
    }

    pub fn remove(&mut self, name: &str) -> Option<f64> {
        self.find(name).ok().map(|i| self.0.remove(i).1)
    }

    pub fn iter(&self) -> Iter<'_> {
        self.0.iter().map(entry)
    }

    pub fn keys(&self) -> impl DoubleEndedIterator<Item = &String> + ExactSizeIterator {
        self.0.iter().map(|(n, _)| n)
    }
}

impl std::ops::Index<&str> for FloatMap {
    type Output = f64;

    /// The value of `name`; panics when there is none, as a map's index does.
    fn index(&self, name: &str) -> &f64 {
        self.get(name)
            .unwrap_or_else(|| panic!("no value named {name:?}"))
    }
}

impl FromIterator<(String, f64)> for FloatMap {
    /// Later entries of a name replace earlier ones, as a map's do.
    fn from_iter<I: IntoIterator<Item = (String, f64)>>(iter: I) -> Self {
        let iter = iter.into_iter();
        let mut m = FloatMap::with_capacity(iter.size_hint().0);
        m.extend(iter);
        m
    }
}

impl Extend<(String, f64)> for FloatMap {
    fn extend<I: IntoIterator<Item = (String, f64)>>(&mut self, iter: I) {
        for (n, v) in iter {
            self.insert(n, v);
        }
    }
}

impl<const N: usize> From<[(String, f64); N]> for FloatMap {
    fn from(entries: [(String, f64); N]) -> Self {
        entries.into_iter().collect()
    }
}

impl From<std::collections::BTreeMap<String, f64>> for FloatMap {
    fn from(m: std::collections::BTreeMap<String, f64>) -> Self {
        FloatMap(m.into_iter().collect())
    }
}

impl From<FloatMap> for std::collections::BTreeMap<String, f64> {
    fn from(m: FloatMap) -> Self {
        m.0.into_iter().collect()
    }
}

impl IntoIterator for FloatMap {
    type Item = (String, f64);
    type IntoIter = std::vec::IntoIter<(String, f64)>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

impl<'a> IntoIterator for &'a FloatMap {
    type Item = (&'a String, &'a f64);
    type IntoIter = Iter<'a>;

    fn into_iter(self) -> Iter<'a> {
        self.iter()
    }
}

impl serde::Serialize for FloatMap {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        crate::floats::serialize_entries(self.len(), self.iter(), s)
    }
}

impl<'de> serde::Deserialize<'de> for FloatMap {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        d.deserialize_map(crate::floats::MapVisitor(std::marker::PhantomData))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::BTreeMap;

    #[test]
    fn it_is_a_map_in_name_order_as_a_btree_map_is() {
        let entries = [
            ("b", 2.0),
            ("a", 1.0),
            ("c", 3.0),
            ("a", 4.0),
            ("0", f64::NAN),
        ];
        let mut m = FloatMap::new();
        let mut b = BTreeMap::new();
        for (k, v) in entries {
            assert_eq!(
                m.insert(k.into(), v).map(f64::to_bits),
                b.insert(k.to_string(), v).map(f64::to_bits)
            );
        }
        let pairs = |m: &FloatMap| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.to_bits()))
                .collect::<Vec<_>>()
        };
        let btree: Vec<_> = b.iter().map(|(k, v)| (k.clone(), v.to_bits())).collect();
        assert_eq!(pairs(&m), btree);
        assert_eq!(m["a"], 4.0);
        assert_eq!(m.remove("b"), Some(2.0));
        assert!(!m.contains_key("b") && m.get("c") == Some(&3.0));
        let collected: FloatMap = entries.iter().map(|(k, v)| (k.to_string(), *v)).collect();
        assert_eq!(pairs(&collected).len(), 4);
        assert_eq!(collected["a"], 4.0, "a later entry replaces an earlier");
    }

    #[test]
    fn it_serializes_as_the_btree_map_did() {
        let m: FloatMap = [("z", 1.5), ("a", f64::INFINITY), ("m", -0.0)]
            .iter()
            .map(|(k, v)| (k.to_string(), *v))
            .collect();
        let b: BTreeMap<String, f64> = m.clone().into();
        // Binary: the very bytes.
        assert_eq!(
            rmp_serde::to_vec(&m).unwrap(),
            rmp_serde::to_vec(&b).unwrap()
        );
        let back: FloatMap = rmp_serde::from_slice(&rmp_serde::to_vec(&b).unwrap()).unwrap();
        assert_eq!(back, m);
        // JSON: non-finite values spelled, read back from the spelling, or from null as NaN.
        let json = serde_json::to_string(&m).unwrap();
        assert_eq!(json, r#"{"a":"Infinity","m":-0.0,"z":1.5}"#);
        assert_eq!(serde_json::from_str::<FloatMap>(&json).unwrap(), m);
        let nan: FloatMap = serde_json::from_str(r#"{"b":null,"a":2}"#).unwrap();
        assert!(nan["b"].is_nan() && nan["a"] == 2.0);
        assert!(serde_json::from_str::<FloatMap>(r#"{"a":"x"}"#).is_err());
    }
}
