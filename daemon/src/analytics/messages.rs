//! What runs say: how often a keyword (or a regular expression) appears in their log messages, grouped by a
//! hyperparameter, and how that rate moves over the run (the sweep system's `analyze_belief_evolution`: how
//! often a model's self-reports mention "trust" at each corruption rate, and whether that grows).

use super::AnalyticsError;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// What is looked for in a message's text.
pub enum Pattern {
    /// A word or phrase, case-insensitive.
    Keyword(String),
    Regex(regex::Regex),
}

impl Pattern {
    pub fn new(text: &str, regex: bool) -> Result<Pattern, AnalyticsError> {
        if text.is_empty() {
            return Err(AnalyticsError::BadRequest(
                "pattern is empty: give a keyword or, with regex=true, an expression".into(),
            ));
        }
        if regex {
            regex::RegexBuilder::new(text)
                .size_limit(1 << 20)
                .build()
                .map(Pattern::Regex)
                .map_err(|e| AnalyticsError::BadRequest(format!("regex {text:?}: {e}")))
        } else {
            Ok(Pattern::Keyword(text.to_lowercase()))
        }
    }

    pub fn matches(&self, text: &str) -> bool {
        match self {
            Pattern::Keyword(k) => text.to_lowercase().contains(k.as_str()),
            Pattern::Regex(r) => r.is_match(text),
        }
    }
}

/// One run's messages: where each was in the run (its `step`, `cycle` or `epoch` when the message names one)
/// and whether it matched.
pub struct RunMessages {
    pub id: String,
    /// The grouping key's value in the run's config (`null` when it has none).
    pub key: Value,
    pub messages: Vec<(Option<f64>, bool)>,
}

/// Counts of one part of a run, or of a group.
#[derive(Debug, Default, PartialEq, Serialize)]
pub struct Counts {
    pub messages: u64,
    pub matches: u64,
    /// matches / messages (`null` without messages).
    pub rate: Option<f64>,
}

impl Counts {
    fn add(&mut self, matched: bool) {
        self.messages += 1;
        self.matches += u64::from(matched);
    }

    fn close(mut self) -> Counts {
        self.rate = (self.messages > 0).then(|| self.matches as f64 / self.messages as f64);
        self
    }
}

/// One group: the runs with one value of the key.
#[derive(Debug, PartialEq, Serialize)]
pub struct Group {
    pub key: Value,
    pub runs: usize,
    #[serde(flatten)]
    pub counts: Counts,
    /// The rate in `buckets` equal parts of the run: by step where the messages name one, else by their order.
    pub trend: Vec<Counts>,
    /// Rate in the last part minus the first (`null` when either has no messages).
    pub change: Option<f64>,
}

/// The groups, in the order of their key.
pub fn analyze(runs: &[RunMessages], buckets: usize) -> Vec<Group> {
    let buckets = buckets.clamp(1, 100);
    let mut groups: BTreeMap<String, (Value, Vec<&RunMessages>)> = BTreeMap::new();
    for r in runs {
        groups
            .entry(sort_key(&r.key))
            .or_insert_with(|| (r.key.clone(), Vec::new()))
            .1
            .push(r);
    }
    groups
        .into_values()
        .map(|(key, members)| {
            let mut counts = Counts::default();
            let mut trend: Vec<Counts> = (0..buckets).map(|_| Counts::default()).collect();
            for r in &members {
                let n = r.messages.len();
                // Steps where every message has one; else the message's place among the run's.
                let steps: Option<Vec<f64>> = r.messages.iter().map(|m| m.0).collect();
                let (lo, hi) = steps.as_ref().map_or((0.0, n as f64 - 1.0), |s| {
                    s.iter()
                        .fold((f64::INFINITY, f64::NEG_INFINITY), |(a, b), x| {
                            (a.min(*x), b.max(*x))
                        })
                });
                for (i, (_, matched)) in r.messages.iter().enumerate() {
                    counts.add(*matched);
                    let x = steps.as_ref().map_or(i as f64, |s| s[i]);
                    let span = hi - lo;
                    let b = if span > 0.0 {
                        (((x - lo) / span) * buckets as f64).floor() as usize
                    } else {
                        0
                    };
                    trend[b.min(buckets - 1)].add(*matched);
                }
            }
            let trend: Vec<Counts> = trend.into_iter().map(Counts::close).collect();
            let change = match (
                trend.first().and_then(|c| c.rate),
                trend.last().and_then(|c| c.rate),
            ) {
                (Some(a), Some(b)) if buckets > 1 => Some(b - a),
                _ => None,
            };
            Group {
                key,
                runs: members.len(),
                counts: counts.close(),
                trend,
                change,
            }
        })
        .collect()
}

/// Groups order numbers by value, then everything else by its text.
fn sort_key(v: &Value) -> String {
    match v.as_f64() {
        // An order-preserving text form of the double.
        Some(x) => {
            let bits = x.to_bits();
            let ordered = if x.is_sign_negative() {
                !bits
            } else {
                bits | (1 << 63)
            };
            format!("0{ordered:016x}")
        }
        None => format!("1{v}"),
    }
}

/// Where in the run a message is, from its fields: `step`, else `cycle`, else `epoch`.
pub fn position(extra: &serde_json::Map<String, Value>) -> Option<f64> {
    ["step", "cycle", "epoch"]
        .iter()
        .find_map(|k| extra.get(*k).and_then(Value::as_f64))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn run(id: &str, key: Value, said: &[(Option<f64>, bool)]) -> RunMessages {
        RunMessages {
            id: id.into(),
            key,
            messages: said.to_vec(),
        }
    }

    #[test]
    fn mentions_are_counted_per_group_and_their_trend_follows_the_steps() {
        let p = Pattern::new("Trust", false).unwrap();
        assert!(p.matches("I no longer trust my memory"));
        assert!(!p.matches("I feel fine"));
        let runs = vec![
            // Corruption 0.5: mentions grow over the run.
            run(
                "a",
                json!(0.5),
                &[
                    (Some(0.0), false),
                    (Some(5.0), false),
                    (Some(9.0), true),
                    (Some(10.0), true),
                ],
            ),
            run("b", json!(0.5), &[(Some(0.0), false), (Some(10.0), true)]),
            // Corruption 0.0: never.
            run(
                "c",
                json!(0.0),
                &[(None, false), (None, false), (None, false)],
            ),
        ];
        let groups = analyze(&runs, 2);
        assert_eq!(groups.len(), 2);
        assert_eq!(groups[0].key, json!(0.0));
        assert_eq!(groups[0].counts.rate, Some(0.0));
        assert_eq!(groups[0].change, Some(0.0));
        let g = &groups[1];
        assert_eq!((g.runs, g.counts.messages, g.counts.matches), (2, 6, 3));
        assert_eq!(g.counts.rate, Some(0.5));
        // First half of the steps: 0 of 2 (steps 0 and 0); second: 3 of 4 (5, 9, 10, 10).
        assert_eq!((g.trend[0].messages, g.trend[0].matches), (2, 0));
        assert_eq!((g.trend[1].messages, g.trend[1].matches), (4, 3));
        assert_eq!(g.change, Some(0.75));
    }

    #[test]
    fn keys_sort_as_numbers_and_bad_patterns_are_named() {
        let runs: Vec<RunMessages> = [10.0, -1.0, 2.5]
            .iter()
            .map(|k| run("x", json!(k), &[(None, true)]))
            .collect();
        let keys: Vec<Value> = analyze(&runs, 4).into_iter().map(|g| g.key).collect();
        assert_eq!(keys, vec![json!(-1.0), json!(2.5), json!(10.0)]);
        assert!(
            matches!(Pattern::new("(", true), Err(AnalyticsError::BadRequest(m)) if m.contains("regex"))
        );
        assert!(Pattern::new("tru?st", true).unwrap().matches("trst"));
    }
}
