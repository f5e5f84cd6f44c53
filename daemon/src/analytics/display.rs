//! Display names for tables: parameter names and values remapped as configured (`optim.lr` → `LR`,
//! `None` → `random`); without a mapping a name shows as its last dot segment and a value as itself.

use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// The `[display]` section of the configuration file.
///
/// ```toml
/// [display.names]
/// "optim.lr" = "LR"
/// [display.values."model.weights"]
/// None = "random"
/// ```
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Display {
    /// Dot key → shown name.
    #[serde(default)]
    pub names: BTreeMap<String, String>,
    /// Dot key → (value as text → shown text). `None` and `null` both name a null value.
    #[serde(default)]
    pub values: BTreeMap<String, BTreeMap<String, String>>,
}

impl Display {
    /// The name to show for a key.
    pub fn name(&self, key: &str) -> String {
        self.names
            .get(key)
            .cloned()
            .unwrap_or_else(|| key.rsplit('.').next().unwrap_or(key).to_string())
    }

    /// The text to show for a key's value.
    pub fn value(&self, key: &str, v: &Value) -> String {
        let text = match v {
            Value::String(s) => s.clone(),
            other => other.to_string(),
        };
        if let Some(map) = self.values.get(key) {
            let found = map
                .get(&text)
                .or_else(|| if v.is_null() { map.get("None") } else { None });
            if let Some(shown) = found {
                return shown.clone();
            }
        }
        text
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn names_and_values_are_remapped_or_shortened() {
        let d: Display = toml::from_str("[names]\n\"optim.lr\" = \"LR\"\n[values.\"model.weights\"]\nNone = \"random\"\nimagenet = \"pretrained\"\n").unwrap();
        assert_eq!(d.name("optim.lr"), "LR");
        assert_eq!(
            d.name("model.weights"),
            "weights",
            "without a mapping: the last dot segment"
        );
        assert_eq!(d.value("model.weights", &Value::Null), "random");
        assert_eq!(d.value("model.weights", &json!("imagenet")), "pretrained");
        assert_eq!(d.value("optim.lr", &json!(0.001)), "0.001");
    }
}
