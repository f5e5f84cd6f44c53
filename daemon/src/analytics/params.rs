//! Hyperparameters: nested configs flattened to typed dot keys (`optim.lr`, `layers.0.units`), and the keys
//! that vary across a set of runs, noise keys (seeds, paths, output settings) left out.

use crate::filter::glob_match;
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Noise keys left out of grouping unless configured otherwise: seeds, paths, folders, timestamps, outputs.
pub const DEFAULT_NOISE: &[&str] = &[
    "seed",
    "*.seed",
    "*_seed",
    "paths.*",
    "*.paths.*",
    "*_dir",
    "*.*_dir",
    "*_path",
    "*.*_path",
    "*dir",
    "output*",
    "*.output*",
    "checkpoint*",
    "*.checkpoint*",
    "save_*",
    "*.save_*",
    "log_*",
    "*.log_*",
    "*timestamp*",
    "*_time",
    "*.*_time",
    "date",
    "*.date",
    "run_name",
    "exp_name",
    "experiment_name",
    "name",
];

/// Flattens nested JSON into dot keys; lists use their indices; empty objects and lists are leaves.
pub fn flatten(config: &Value) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    walk(config, &mut String::new(), &mut out);
    out
}

fn walk(v: &Value, prefix: &mut String, out: &mut BTreeMap<String, Value>) {
    let len = prefix.len();
    let mut descend = |key: &str, child: &Value, prefix: &mut String| {
        if !prefix.is_empty() {
            prefix.push('.');
        }
        prefix.push_str(key);
        walk(child, prefix, out);
        prefix.truncate(len);
    };
    match v {
        Value::Object(m) if !m.is_empty() => {
            for (k, child) in m {
                descend(k, child, prefix);
            }
        }
        Value::Array(items) if !items.is_empty() => {
            for (i, child) in items.iter().enumerate() {
                descend(&i.to_string(), child, prefix);
            }
        }
        leaf => {
            out.insert(prefix.clone(), leaf.clone());
        }
    }
}

/// Globs naming the keys left out of grouping.
#[derive(Clone, Debug)]
pub struct Noise(pub Vec<String>);

impl Default for Noise {
    fn default() -> Self {
        Noise(DEFAULT_NOISE.iter().map(|s| s.to_string()).collect())
    }
}

impl Noise {
    pub fn is_noise(&self, key: &str) -> bool {
        self.0.iter().any(|p| glob_match(p, key))
    }
}

/// A key whose value differs between runs, with the values seen (in order, as JSON).
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Varying {
    pub key: String,
    pub values: Vec<Value>,
    /// Runs lacking the key.
    pub missing: usize,
}

/// What varies across the runs' configs, and what is the same everywhere.
#[derive(Clone, Debug, PartialEq, serde::Serialize)]
pub struct Variation {
    /// Keys that vary and are not noise: the grouping keys.
    pub varying: Vec<Varying>,
    /// Keys that vary but are noise (seeds, paths, ...).
    pub noise: Vec<Varying>,
    /// Keys with one value in every run.
    pub constant: BTreeMap<String, Value>,
}

/// Finds the keys that vary across `configs` (flattened), separating noise.
pub fn variation<'a>(
    configs: impl IntoIterator<Item = &'a BTreeMap<String, Value>>,
    noise: &Noise,
) -> Variation {
    let configs: Vec<&BTreeMap<String, Value>> = configs.into_iter().collect();
    let keys: BTreeSet<&String> = configs.iter().flat_map(|c| c.keys()).collect();
    let mut out = Variation {
        varying: Vec::new(),
        noise: Vec::new(),
        constant: BTreeMap::new(),
    };
    for key in keys {
        // Distinct values by their text: linear in the runs, where comparing each to all seen was quadratic
        // (10,000 runs with a distinct value each).
        let mut values: Vec<Value> = Vec::new();
        let mut seen: std::collections::HashSet<String> = std::collections::HashSet::new();
        let mut missing = 0;
        for c in &configs {
            match c.get(key) {
                Some(v) => {
                    if seen.insert(v.to_string()) {
                        values.push(v.clone());
                    }
                }
                None => missing += 1,
            }
        }
        if values.len() == 1 && missing == 0 {
            out.constant.insert(key.clone(), values.remove(0));
            continue;
        }
        values.sort_by(order);
        let v = Varying {
            key: key.clone(),
            values,
            missing,
        };
        if noise.is_noise(key) {
            out.noise.push(v);
        } else {
            out.varying.push(v);
        }
    }
    out
}

/// Orders JSON values: numbers by exact value, then strings, then the rest by their text.
pub fn order(a: &Value, b: &Value) -> std::cmp::Ordering {
    match (a, b) {
        (Value::Number(x), Value::Number(y)) => labd_schemas::number::cmp_json(x, y),
        (Value::Number(_), _) => std::cmp::Ordering::Less,
        (_, Value::Number(_)) => std::cmp::Ordering::Greater,
        _ => a.to_string().cmp(&b.to_string()),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn configs_flatten_to_typed_dot_keys() {
        let f = flatten(
            &json!({"optim": {"lr": 0.001, "name": "adam"}, "layers": [{"units": 64}, {"units": 32}], "tags": [], "x": null}),
        );
        assert_eq!(f["optim.lr"], json!(0.001));
        assert!(f["optim.lr"].is_number(), "numbers stay numbers");
        assert_eq!(f["layers.1.units"], json!(32));
        assert_eq!(f["tags"], json!([]));
        assert_eq!(f["x"], Value::Null);
        assert_eq!(f.len(), 6);
    }

    #[test]
    fn varying_keys_leave_out_noise_and_constants() {
        let runs = [
            json!({"optim": {"lr": 0.1}, "seed": 0, "epochs": 5, "paths": {"data": "/a"}, "output_dir": "/o/1", "model": {"seed": 3}}),
            json!({"optim": {"lr": 0.1}, "seed": 1, "epochs": 5, "paths": {"data": "/b"}, "output_dir": "/o/2", "model": {"seed": 4}}),
            json!({"optim": {"lr": 0.01}, "seed": 0, "epochs": 5, "paths": {"data": "/a"}, "output_dir": "/o/3", "model": {"seed": 3}, "warmup": 10}),
        ];
        let flat: Vec<_> = runs.iter().map(flatten).collect();
        let v = variation(&flat, &Noise::default());
        let keys: Vec<&str> = v.varying.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(keys, ["optim.lr", "warmup"]);
        assert_eq!(
            v.varying[0].values,
            vec![json!(0.01), json!(0.1)],
            "sorted numerically"
        );
        assert_eq!(v.varying[1].missing, 2);
        let noise: Vec<&str> = v.noise.iter().map(|k| k.key.as_str()).collect();
        assert_eq!(noise, ["model.seed", "output_dir", "paths.data", "seed"]);
        assert_eq!(v.constant.keys().collect::<Vec<_>>(), ["epochs"]);
        let custom = Noise(vec!["warmup".into()]);
        let v = variation(&flat, &custom);
        assert_eq!(
            v.varying.iter().map(|k| k.key.as_str()).collect::<Vec<_>>(),
            ["model.seed", "optim.lr", "output_dir", "paths.data", "seed"]
        );
    }
}
