//! How a run's curve becomes one number ([`Reduce`]: last, min, max, points from the registry's statistics;
//! a value at a step or epoch, the mean of the last points, the area under the curve from the curve store),
//! a metric with its reduction ([`Measure`]), and the default reduction per metric ([`Reductions`]).

use super::AnalyticsError;
use crate::views::curves::{Axis, Curves};
use crate::views::registry::Record;
use serde::Serialize;
use std::collections::BTreeMap;

/// How a run's curve becomes one number.
#[derive(Clone, Debug, PartialEq)]
pub enum Reduce {
    /// The last value logged.
    Last,
    /// The smallest value (best for losses).
    Min,
    /// The largest value (best for accuracies).
    Max,
    /// How many points were logged.
    Points,
    /// The value at this step (the point with the largest step not past it).
    AtStep(i64),
    /// The value at this epoch (the point with the largest epoch not past it).
    AtEpoch(f64),
    /// The mean of the last `k` finite values.
    MeanLast(usize),
    /// The area under the curve over an x-axis (trapezoids, non-finite values left out).
    Auc(Axis),
}

impl std::fmt::Display for Reduce {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Reduce::Last => f.write_str("last"),
            Reduce::Min => f.write_str("min"),
            Reduce::Max => f.write_str("max"),
            Reduce::Points => f.write_str("points"),
            Reduce::AtStep(n) => write!(f, "at_step:{n}"),
            Reduce::AtEpoch(e) => write!(f, "at_epoch:{e}"),
            Reduce::MeanLast(k) => write!(f, "mean_last:{k}"),
            Reduce::Auc(Axis::Step) => f.write_str("auc"),
            Reduce::Auc(a) => write!(f, "auc:{}", axis_name(a)),
        }
    }
}

fn axis_name(a: &Axis) -> &str {
    match a {
        Axis::Step => "step",
        Axis::Epoch => "epoch",
        Axis::Wall => "wall_time",
        Axis::Index => "index",
        Axis::Custom(name) => name,
    }
}

impl Serialize for Reduce {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl std::str::FromStr for Reduce {
    type Err = AnalyticsError;
    fn from_str(text: &str) -> Result<Self, AnalyticsError> {
        let bad = |why: String| AnalyticsError::BadRequest(format!("reduction {text:?}: {why}"));
        let (name, arg) = match text.split_once(':') {
            Some((n, a)) => (n, Some(a)),
            None => (text, None),
        };
        let need = |what: &str| arg.ok_or_else(|| bad(format!("needs {what}, e.g. {name}:10")));
        Ok(match name {
            "last" => Reduce::Last,
            "min" | "best_min" => Reduce::Min,
            "max" | "best_max" => Reduce::Max,
            "points" | "count" => Reduce::Points,
            "at_step" => Reduce::AtStep(
                need("a step")?
                    .parse()
                    .map_err(|_| bad("the step must be an integer".into()))?,
            ),
            "at_epoch" => Reduce::AtEpoch(
                need("an epoch")?
                    .parse()
                    .map_err(|_| bad("the epoch must be a number".into()))?,
            ),
            "mean_last" => Reduce::MeanLast(
                need("a count")?
                    .parse()
                    .ok()
                    .filter(|k| *k > 0)
                    .ok_or_else(|| bad("k must be a positive integer".into()))?,
            ),
            "auc" => Reduce::Auc(arg.unwrap_or("step").parse().map_err(bad)?),
            other => {
                return Err(AnalyticsError::BadRequest(format!(
                    "unknown reduction {other:?}: use last, min, max, points, at_step:N, at_epoch:E, mean_last:K or auc[:AXIS]"
                )));
            }
        })
    }
}

impl Reduce {
    /// Whether this reduction reads whole curves (the curve store).
    pub fn needs_curves(&self) -> bool {
        !matches!(
            self,
            Reduce::Last | Reduce::Min | Reduce::Max | Reduce::Points
        )
    }

    /// The number a run gives (None when it lacks the metric, or the curve store is needed and not given).
    pub fn of(&self, r: &Record, metric: &str, curves: Option<&Curves>) -> Option<f64> {
        let Some(m) = r.metrics.get(metric) else {
            // A final summary's number (`final.test_f1`): one value, which every reduction of a single point
            // gives back as it is.
            let v = r.summary_value(metric)?;
            return match self {
                Reduce::Points => Some(1.0),
                Reduce::Auc(_) => None,
                _ => Some(v),
            };
        };
        let series = || curves.and_then(|c| c.series(&r.id, metric));
        match self {
            Reduce::Last => m.last,
            Reduce::Min => m.min,
            Reduce::Max => m.max,
            Reduce::Points => Some(m.points as f64),
            Reduce::AtStep(n) => value_at(&series()?.pairs(&Axis::Step), *n as f64),
            Reduce::AtEpoch(e) => value_at(&series()?.pairs(&Axis::Epoch), *e),
            Reduce::MeanLast(k) => {
                let last = series()?.last_finite(*k);
                (!last.is_empty()).then(|| last.iter().sum::<f64>() / last.len() as f64)
            }
            Reduce::Auc(axis) => auc(&series()?.pairs(axis)),
        }
    }
}

/// The value of the point with the largest x not past `at` (the later one on ties, as after a restart).
pub fn value_at(pairs: &[(f64, f64)], at: f64) -> Option<f64> {
    let mut best: Option<(f64, f64)> = None;
    for &(x, y) in pairs {
        if x <= at && best.is_none_or(|(bx, _)| x >= bx) {
            best = Some((x, y));
        }
    }
    best.map(|b| b.1)
}

/// Trapezoidal area under `(x, y)` sorted by x; non-finite values left out.
pub fn auc(pairs: &[(f64, f64)]) -> Option<f64> {
    let mut p: Vec<(f64, f64)> = pairs
        .iter()
        .copied()
        .filter(|(x, y)| x.is_finite() && y.is_finite())
        .collect();
    if p.len() < 2 {
        return None;
    }
    p.sort_by(|a, b| a.0.partial_cmp(&b.0).unwrap_or(std::cmp::Ordering::Equal));
    Some(
        p.windows(2)
            .map(|w| (w[1].0 - w[0].0) * (w[0].1 + w[1].1) / 2.0)
            .sum(),
    )
}

/// A further column of a summary table: a metric and its reduction, written `METRIC=REDUCE`
/// (`val/loss=min`); `METRIC` alone takes the metric's default reduction.
#[derive(Clone, Debug, PartialEq)]
pub struct Measure {
    pub metric: String,
    pub reduce: Reduce,
}

impl std::fmt::Display for Measure {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}={}", self.metric, self.reduce)
    }
}

impl Measure {
    /// Parses `METRIC=REDUCE` or `METRIC` (then `defaults` chooses the reduction).
    pub fn parse(text: &str, defaults: &Reductions) -> Result<Measure, AnalyticsError> {
        let (metric, reduce) = match text.rsplit_once('=') {
            Some((m, r)) => (m.trim(), r.trim().parse()?),
            None => (text.trim(), defaults.of(text.trim())),
        };
        if metric.is_empty() {
            return Err(AnalyticsError::BadRequest(format!(
                "column {text:?}: name a metric, as METRIC=REDUCE (e.g. val/loss=min)"
            )));
        }
        Ok(Measure {
            metric: metric.to_string(),
            reduce,
        })
    }
}

/// Default reductions per metric (`[reductions]` in the configuration file): a metric name or a glob →
/// a reduction. An exact name wins, then the longest matching glob; without a match, `last`.
///
/// ```toml
/// [reductions]
/// "*loss*" = "min"
/// "*acc*" = "max"
/// "val/perplexity" = "mean_last:5"
/// ```
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Reductions(pub Vec<(String, Reduce)>);

impl Reductions {
    /// Reads the configured table, naming the entry that is not a reduction.
    pub fn parse(table: &BTreeMap<String, String>) -> Result<Reductions, AnalyticsError> {
        table
            .iter()
            .map(|(pattern, r)| {
                r.parse()
                    .map(|r| (pattern.clone(), r))
                    .map_err(|e| AnalyticsError::BadRequest(format!("{pattern:?}: {e}")))
            })
            .collect::<Result<_, _>>()
            .map(Reductions)
    }

    /// The default reduction of a metric.
    pub fn of(&self, metric: &str) -> Reduce {
        if let Some((_, r)) = self.0.iter().find(|(p, _)| p == metric) {
            return r.clone();
        }
        self.0
            .iter()
            .filter(|(p, _)| crate::filter::glob_match(p, metric))
            .max_by_key(|(p, _)| p.len())
            .map_or(Reduce::Last, |(_, r)| r.clone())
    }
}
