//! Numbers as users wrote them: integers stay integers (a seed of 2^63 - 1 is not rounded to a double), doubles
//! stay the double their text named, and the two compare by their exact values. Config values, summaries,
//! filter literals and grouping keys all go through [`Num`], so no number from outside passes through an `f64`
//! it does not fit.

use serde_json::Number;
use std::cmp::Ordering;
use std::fmt;

/// A number compared exactly.
#[derive(Clone, Copy, Debug)]
pub enum Num {
    /// Any integer serde_json keeps as one (−2^63 ..= 2^64 − 1), and the integers written in filters.
    Int(i128),
    Float(f64),
}

impl Num {
    /// The number a JSON value holds, as exactly as serde_json kept it.
    pub fn of_json(n: &Number) -> Num {
        if let Some(i) = n.as_i64() {
            Num::Int(i128::from(i))
        } else if let Some(u) = n.as_u64() {
            Num::Int(i128::from(u))
        } else {
            Num::Float(n.as_f64().unwrap_or(f64::NAN))
        }
    }

    /// Reads decimal text: an integer (no point, no exponent) that fits an i128 stays an integer; anything else
    /// becomes the nearest double, correctly rounded.
    pub fn parse(text: &str) -> Option<Num> {
        let t = text.trim();
        let digits = t.strip_prefix(['-', '+']).unwrap_or(t);
        if !digits.is_empty()
            && digits.bytes().all(|b| b.is_ascii_digit())
            && let Ok(i) = t.parse::<i128>()
        {
            return Some(Num::Int(i));
        }
        t.parse::<f64>().ok().map(Num::Float)
    }

    /// The nearest double (integers beyond 2^53 are rounded here: use only where a double is wanted).
    pub fn as_f64(&self) -> f64 {
        match *self {
            Num::Int(i) => i as f64,
            Num::Float(f) => f,
        }
    }

    /// The number as JSON, without loss where serde_json can hold it (integers in i64/u64, finite doubles);
    /// larger integers become the nearest double, non-finite doubles `null`.
    pub fn to_json(&self) -> serde_json::Value {
        match *self {
            Num::Int(i) => {
                if let Ok(v) = i64::try_from(i) {
                    v.into()
                } else if let Ok(v) = u64::try_from(i) {
                    v.into()
                } else {
                    Number::from_f64(i as f64).map_or(serde_json::Value::Null, Into::into)
                }
            }
            Num::Float(f) => Number::from_f64(f).map_or(serde_json::Value::Null, Into::into),
        }
    }

    /// Exact order; `None` when a NaN is involved.
    pub fn exact_cmp(&self, other: &Num) -> Option<Ordering> {
        match (*self, *other) {
            (Num::Int(a), Num::Int(b)) => Some(a.cmp(&b)),
            (Num::Float(a), Num::Float(b)) => a.partial_cmp(&b),
            (Num::Int(a), Num::Float(b)) => int_cmp_float(a, b),
            (Num::Float(a), Num::Int(b)) => int_cmp_float(b, a).map(Ordering::reverse),
        }
    }
}

impl PartialEq for Num {
    /// Equal when the values are exactly equal: `3 == 3.0`, and `2^53 + 1 != 2^53` however written.
    fn eq(&self, other: &Num) -> bool {
        self.exact_cmp(other) == Some(Ordering::Equal)
    }
}

impl PartialOrd for Num {
    fn partial_cmp(&self, other: &Num) -> Option<Ordering> {
        self.exact_cmp(other)
    }
}

impl fmt::Display for Num {
    /// Integers in full; doubles as the shortest text that reads back to the same double.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match *self {
            Num::Int(i) => write!(f, "{i}"),
            Num::Float(x) => match Number::from_f64(x) {
                Some(n) => write!(f, "{n}"),
                None => f.write_str(crate::floats::spell(x).unwrap_or("NaN")),
            },
        }
    }
}

/// A number written as text (an MLflow parameter, a YAML scalar) as JSON, only where the JSON number keeps
/// exactly what the text says: integers within i64/u64, and decimals whose value is exactly a double written
/// as the shortest text that reads back to it ("0.001", "1e-3", "0.10", not "0.1000000000000000055511" or
/// "3.14159265358979323846"). Anything else is `None`, so the caller keeps the text.
pub fn exact_json(text: &str) -> Option<serde_json::Value> {
    let t = text.trim();
    if let Ok(i) = t.parse::<i64>() {
        return Some(i.into());
    }
    if let Ok(u) = t.parse::<u64>() {
        return Some(u.into());
    }
    let f = t.parse::<f64>().ok().filter(|f| f.is_finite())?;
    let n = Number::from_f64(f)?;
    let same = decimal(t).is_some() && decimal(t) == decimal(&n.to_string());
    same.then_some(serde_json::Value::Number(n))
}

/// Decimal text as (negative, significant digits, power of ten): `-0.0120e3` → (true, "12", 0).
fn decimal(text: &str) -> Option<(bool, String, i64)> {
    let (neg, rest) = match text.as_bytes().first()? {
        b'-' => (true, &text[1..]),
        b'+' => (false, &text[1..]),
        _ => (false, text),
    };
    let (mantissa, exp) = match rest.find(['e', 'E']) {
        Some(i) => (&rest[..i], rest[i + 1..].parse::<i64>().ok()?),
        None => (rest, 0),
    };
    let (whole, frac) = mantissa.split_once('.').unwrap_or((mantissa, ""));
    if whole.is_empty() && frac.is_empty()
        || !whole
            .bytes()
            .chain(frac.bytes())
            .all(|b| b.is_ascii_digit())
    {
        return None;
    }
    let digits = format!("{whole}{frac}");
    let digits = digits.trim_start_matches('0');
    let kept = digits.trim_end_matches('0');
    let power = exp - frac.len() as i64 + (digits.len() - kept.len()) as i64;
    Some(if kept.is_empty() {
        (neg, String::new(), 0)
    } else {
        (neg, kept.to_string(), power)
    })
}

/// Orders an integer against a double by their exact values.
fn int_cmp_float(i: i128, f: f64) -> Option<Ordering> {
    if f.is_nan() {
        return None;
    }
    // Doubles beyond ±2^100 are beyond every i128 that reaches here (they are all within ±2^64 + a little).
    const LIMIT: f64 = 1.267_650_600_228_229_4e30; // 2^100
    if f >= LIMIT {
        return Some(Ordering::Less);
    }
    if f <= -LIMIT {
        return Some(Ordering::Greater);
    }
    let whole = f.trunc();
    // |whole| < 2^100: exactly an i128.
    match i.cmp(&(whole as i128)) {
        Ordering::Equal => {
            let frac = f - whole;
            Some(if frac > 0.0 {
                Ordering::Less
            } else if frac < 0.0 {
                Ordering::Greater
            } else {
                Ordering::Equal
            })
        }
        other => Some(other),
    }
}

/// Orders two JSON numbers by their exact values (a NaN-free total order on what JSON can hold).
pub fn cmp_json(a: &Number, b: &Number) -> Ordering {
    Num::of_json(a)
        .exact_cmp(&Num::of_json(b))
        .unwrap_or(Ordering::Equal)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn integers_beyond_two_to_the_53_stay_exact() {
        let big: Number = serde_json::from_str("9007199254740993").unwrap();
        let rounded: Number = serde_json::from_str("9007199254740992").unwrap();
        assert_eq!(Num::of_json(&big), Num::Int(9_007_199_254_740_993));
        assert_ne!(Num::of_json(&big), Num::of_json(&rounded));
        assert_eq!(cmp_json(&big, &rounded), Ordering::Greater);
        assert_ne!(
            Num::parse("9007199254740993"),
            Some(Num::Float(9_007_199_254_740_992.0))
        );
        assert_eq!(
            Num::of_json(&serde_json::from_str("18446744073709551615").unwrap()),
            Num::Int(u64::MAX as i128)
        );
        assert_eq!(
            Num::Int(u64::MAX as i128).to_json(),
            serde_json::json!(u64::MAX)
        );
    }

    #[test]
    fn text_becomes_a_number_only_where_the_number_says_exactly_the_same() {
        use serde_json::json;
        assert_eq!(exact_json("32"), Some(json!(32)));
        assert_eq!(exact_json(" 18446744073709551615 "), Some(json!(u64::MAX)));
        assert_eq!(exact_json("0.001"), Some(json!(0.001)));
        assert_eq!(exact_json("1e-3"), Some(json!(0.001)));
        assert_eq!(exact_json("0.10"), Some(json!(0.1)));
        assert_eq!(exact_json("-0.0"), Some(json!(-0.0)));
        assert_eq!(
            exact_json("2.1963844280992926"),
            Some(json!(2.1963844280992926))
        );
        assert_eq!(
            exact_json("123456789012345678901234567890"),
            None,
            "beyond u64"
        );
        assert_eq!(
            exact_json("3.14159265358979323846"),
            None,
            "more digits than a double"
        );
        assert_eq!(exact_json("0.1000000000000000055511151231257827"), None);
        assert_eq!(exact_json("nan"), None);
        assert_eq!(exact_json("adam"), None);
    }

    #[test]
    fn integers_and_doubles_compare_by_exact_value() {
        assert_eq!(Num::Int(3), Num::Float(3.0));
        assert!(Num::Int(3) < Num::Float(3.5));
        assert!(Num::Int(-3) > Num::Float(-3.5));
        assert!(Num::Float(2.5) > Num::Int(2));
        assert!(Num::Int(i128::from(i64::MAX)) < Num::Float(2f64.powi(63)));
        assert!(Num::Int(1) < Num::Float(f64::INFINITY));
        assert_eq!(Num::Int(1).exact_cmp(&Num::Float(f64::NAN)), None);
        assert_eq!(Num::parse("1e3"), Some(Num::Float(1000.0)));
        assert_eq!(Num::parse("-12"), Some(Num::Int(-12)));
        assert_eq!(Num::parse("0.1").map(|n| n.to_string()), Some("0.1".into()));
        assert_eq!(Num::parse("x"), None);
    }
}
