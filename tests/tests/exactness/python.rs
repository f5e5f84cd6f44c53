//! Numbers written as Python writes them (`repr`, `json.dumps`, PyYAML), so the files are what Python's libraries
//! would have written; a test checks the claim against Python itself.

use serde_json::Value;

/// A double as Python's `repr` writes it (and so `json.dumps`, `str`, the `csv` module, MLflow's metric files):
/// the shortest digits that read back to the same double; positional for exponents -4..=15, else `1.5e-05`.
pub fn py(f: f64) -> String {
    let sci = format!("{f:e}"); // Rust's shortest round-trip digits: "-2.1963844280992926e0"
    let (mantissa, exp) = sci.split_once('e').expect("exponent");
    let exp: i32 = exp.parse().expect("exponent");
    let sign = if mantissa.starts_with('-') { "-" } else { "" };
    let digits: String = mantissa.chars().filter(char::is_ascii_digit).collect();
    if (-4..16).contains(&exp) {
        let point = exp + 1;
        let body = if point <= 0 {
            format!("0.{}{digits}", "0".repeat((-point) as usize))
        } else if point as usize >= digits.len() {
            format!("{digits}{}.0", "0".repeat(point as usize - digits.len()))
        } else {
            format!(
                "{}.{}",
                &digits[..point as usize],
                &digits[point as usize..]
            )
        };
        format!("{sign}{body}")
    } else {
        let m = if digits.len() > 1 {
            format!("{}.{}", &digits[..1], &digits[1..])
        } else {
            digits
        };
        let e_sign = if exp < 0 { '-' } else { '+' };
        format!("{sign}{m}e{e_sign}{:02}", exp.abs())
    }
}

/// JSON as Python's `json.dumps` writes it (`", "` and `": "` separators, floats by [`py`]).
pub fn py_json(v: &Value) -> String {
    match v {
        Value::Number(n) if n.is_f64() => py(n.as_f64().unwrap_or(f64::NAN)),
        Value::Array(items) => format!(
            "[{}]",
            items.iter().map(py_json).collect::<Vec<_>>().join(", ")
        ),
        Value::Object(m) => format!(
            "{{{}}}",
            m.iter()
                .map(|(k, v)| format!("{}: {}", Value::String(k.clone()), py_json(v)))
                .collect::<Vec<_>>()
                .join(", ")
        ),
        other => other.to_string(),
    }
}

/// A float as PyYAML writes it (`repr`, with `.0` added to a mantissa without a point).
pub fn py_yaml(f: f64) -> String {
    let r = py(f);
    if r.contains('e') && !r.contains('.') {
        r.replacen('e', ".0e", 1)
    } else {
        r
    }
}
