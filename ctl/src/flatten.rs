//! Nested JSON to dot keys (`optim.lr`, `layers.0.units`), for comparing configs and summaries.

use serde_json::Value;
use std::collections::BTreeMap;

pub fn flatten(v: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    walk(v, String::new(), &mut out);
    out
}

fn walk(v: &Value, prefix: String, out: &mut BTreeMap<String, Value>) {
    let join = |k: &str| {
        if prefix.is_empty() {
            k.to_string()
        } else {
            format!("{prefix}.{k}")
        }
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                walk(child, join(k), out);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                walk(child, join(&i.to_string()), out);
            }
        }
        leaf => {
            out.insert(prefix, leaf.clone());
        }
    }
}

/// A value for a table cell.
pub fn cell(v: Option<&Value>) -> String {
    match v {
        None => "-".into(),
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nested_objects_and_lists_become_dot_keys() {
        let v = serde_json::json!({"optim": {"lr": 0.1}, "layers": [{"units": 8}, 4], "empty": {}});
        let f = flatten(&v);
        assert_eq!(f["optim.lr"], 0.1);
        assert_eq!(f["layers.0.units"], 8);
        assert_eq!(f["layers.1"], 4);
        assert_eq!(f["empty"], serde_json::json!({}));
    }
}
