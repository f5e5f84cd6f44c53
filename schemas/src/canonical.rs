//! Canonical JSON (keys sorted at every level, compact) and the config hash made from it: the same config
//! written in any key order hashes the same. Sources hash the configs they read, sweeps hash trial parameters.

use serde_json::Value;
use sha2::{Digest, Sha256};

/// sha256 (hex) of the canonical JSON of a config: keys sorted at every level, no whitespace.
pub fn config_hash(config: &Value) -> String {
    let mut text = String::new();
    canonical_json(config, &mut text);
    let digest = Sha256::digest(text.as_bytes());
    digest.iter().map(|b| format!("{b:02x}")).collect()
}

/// Writes `v` as canonical JSON (sorted keys, compact), whatever order the map keeps.
pub fn canonical_json(v: &Value, out: &mut String) {
    match v {
        Value::Object(map) => {
            let mut keys: Vec<&String> = map.keys().collect();
            keys.sort();
            out.push('{');
            for (i, k) in keys.into_iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                out.push_str(&Value::String(k.clone()).to_string());
                out.push(':');
                canonical_json(&map[k], out);
            }
            out.push('}');
        }
        Value::Array(items) => {
            out.push('[');
            for (i, item) in items.iter().enumerate() {
                if i > 0 {
                    out.push(',');
                }
                canonical_json(item, out);
            }
            out.push(']');
        }
        other => out.push_str(&other.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn config_hash_ignores_key_order_but_not_values() {
        let a: Value =
            serde_json::from_str(r#"{"b":1,"a":{"y":2,"x":[1,{"q":1,"p":2}]}}"#).unwrap();
        let b: Value =
            serde_json::from_str(r#"{"a":{"x":[1,{"p":2,"q":1}],"y":2},"b":1}"#).unwrap();
        let c: Value =
            serde_json::from_str(r#"{"a":{"x":[1,{"p":2,"q":1}],"y":3},"b":1}"#).unwrap();
        assert_eq!(config_hash(&a), config_hash(&b));
        assert_ne!(config_hash(&a), config_hash(&c));
        assert_eq!(config_hash(&a).len(), 64);
        let mut text = String::new();
        canonical_json(&a, &mut text);
        assert_eq!(text, r#"{"a":{"x":[1,{"p":2,"q":1}],"y":2},"b":1}"#);
    }
}
