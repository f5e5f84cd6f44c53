//! A swept parameter as a search space. Samplers work in an internal coordinate: the value for a float or int,
//! its logarithm on a log scale, the index of a choice; [`Domain::value`] maps back.

use labd_schemas::sweep::{Distribution, Space};
use serde_json::Value;

#[derive(Clone, Debug, PartialEq)]
pub enum Domain {
    Float { low: f64, high: f64, log: bool },
    Int { low: i64, high: i64, log: bool },
    Categorical(Vec<Value>),
}

impl Domain {
    pub fn of(space: &Space) -> Domain {
        match space {
            Space::Values(v) | Space::Distribution(Distribution::Choice(v)) => {
                Domain::Categorical(v.clone())
            }
            Space::Distribution(Distribution::Uniform([low, high])) => Domain::Float {
                low: *low,
                high: *high,
                log: false,
            },
            Space::Distribution(Distribution::LogUniform([low, high])) => Domain::Float {
                low: *low,
                high: *high,
                log: true,
            },
            Space::Distribution(Distribution::Int([low, high])) => Domain::Int {
                low: *low,
                high: *high,
                log: false,
            },
            Space::Distribution(Distribution::LogInt([low, high])) => Domain::Int {
                low: *low,
                high: *high,
                log: true,
            },
        }
    }

    /// The bounds of the internal coordinate (an int's reach half a step beyond its ends; a choice's are its
    /// indices).
    pub fn bounds(&self) -> (f64, f64) {
        match self {
            Domain::Float { low, high, log } => {
                if *log {
                    (low.ln(), high.ln())
                } else {
                    (*low, *high)
                }
            }
            Domain::Int { low, high, log } => {
                if *log {
                    ((*low as f64 - 0.5).max(0.5).ln(), (*high as f64 + 0.5).ln())
                } else {
                    (*low as f64 - 0.5, *high as f64 + 0.5)
                }
            }
            Domain::Categorical(v) => (0.0, v.len().saturating_sub(1) as f64),
        }
    }

    /// The internal coordinate of a value this domain gave (`None`: not one of its values).
    pub fn internal(&self, v: &Value) -> Option<f64> {
        match self {
            Domain::Float { log, .. } => v.as_f64().map(|x| if *log { x.ln() } else { x }),
            Domain::Int { log, .. } => v
                .as_i64()
                .map(|x| if *log { (x as f64).ln() } else { x as f64 }),
            Domain::Categorical(choices) => choices.iter().position(|c| c == v).map(|i| i as f64),
        }
    }

    /// The value at internal coordinate `x` (clamped into the domain).
    pub fn value(&self, x: f64) -> Value {
        match self {
            Domain::Float { low, high, log } => {
                let v = if *log { x.exp() } else { x };
                Value::from(v.clamp(*low, *high))
            }
            Domain::Int { low, high, log } => {
                let v = if *log { x.exp() } else { x };
                Value::from((v.round() as i64).clamp(*low, *high))
            }
            Domain::Categorical(choices) => {
                let i = (x.round().max(0.0) as usize).min(choices.len().saturating_sub(1));
                choices.get(i).cloned().unwrap_or(Value::Null)
            }
        }
    }

    /// The value at `u` in [0, 1): evenly over the domain (on a log scale for log domains).
    pub fn from_unit(&self, u: f64) -> Value {
        match self {
            Domain::Categorical(choices) => {
                let i = ((u * choices.len() as f64) as usize).min(choices.len().saturating_sub(1));
                choices.get(i).cloned().unwrap_or(Value::Null)
            }
            _ => {
                let (a, b) = self.bounds();
                self.value(a + (b - a) * u)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn values_come_back_through_the_internal_coordinate() {
        let f = Domain::Float {
            low: 1e-4,
            high: 1e-1,
            log: true,
        };
        let x = f.internal(&json!(0.01)).expect("in");
        assert!((f.value(x).as_f64().expect("f") - 0.01).abs() < 1e-15);
        let i = Domain::Int {
            low: 16,
            high: 512,
            log: true,
        };
        assert_eq!(i.value(i.internal(&json!(64)).expect("in")), json!(64));
        assert_eq!(i.from_unit(0.0), json!(16));
        assert_eq!(i.from_unit(0.999_999), json!(512));
        let c = Domain::Categorical(vec![json!("adam"), json!("sgd")]);
        assert_eq!(c.internal(&json!("sgd")), Some(1.0));
        assert_eq!(c.value(1.0), json!("sgd"));
        assert_eq!(c.from_unit(0.7), json!("sgd"));
        assert_eq!(c.internal(&json!("rmsprop")), None);
    }
}
