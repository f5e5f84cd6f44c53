//! Analysis of a sweep for one metric reduction: a comparison table per parameter value, the best configuration
//! by its mean over repeats (with its interval, and whether the runner-up's overlaps it), thresholds (adjacent
//! values of a parameter where the metric changes by more than a relative or absolute amount), a Markdown
//! report and plot-ready series; with two or more objectives, the Pareto front of the configurations. The
//! grouping and statistics are [`summarize`]'s, over the trials' runs.

use super::AnalyticsError;
use super::params::{Noise, order};
use super::reduce::Reduce;
use super::summary::{By, Figures, summarize};
use crate::views::Views;
use crate::views::registry::Record;
use crate::views::sweeps::{Sweep, TrialStatus};
use labd_schemas::sweep::{Direction, Objective};
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write;

/// Which way is better.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
pub enum Goal {
    Min,
    Max,
}

impl Goal {
    /// Lower is better for losses, errors, perplexities and times; higher otherwise.
    pub fn guess(metric: &str) -> Goal {
        let m = metric.to_ascii_lowercase();
        if [
            "loss",
            "err",
            "perplexity",
            "ppl",
            "time",
            "latency",
            "mse",
            "mae",
            "rmse",
        ]
        .iter()
        .any(|w| m.contains(w))
        {
            Goal::Min
        } else {
            Goal::Max
        }
    }
}

/// What to analyze.
pub struct Ask<'a> {
    pub metric: &'a str,
    pub reduce: Reduce,
    pub goal: Goal,
    /// Only this parameter's table and thresholds (else every swept parameter).
    pub param: Option<&'a str>,
    /// A relative change (0.5 = 50 %) between adjacent values that counts as a threshold.
    pub relative: f64,
    /// An absolute change that counts as a threshold too, when given.
    pub absolute: Option<f64>,
    /// Two or more objectives: the analysis adds their Pareto front.
    pub objectives: &'a [Objective],
}

/// One objective of a Pareto front, as analyzed.
#[derive(Clone, Debug, Serialize)]
pub struct FrontObjective {
    pub metric: String,
    pub direction: Direction,
    pub reduce: String,
}

/// A configuration's place among the objectives: its mean over repeats in each (`None` where its runs have no
/// value), and whether no other configuration beats it in all of them.
#[derive(Clone, Debug, Serialize)]
pub struct FrontPoint {
    pub params: BTreeMap<String, Value>,
    pub values: Vec<Option<f64>>,
    pub front: bool,
    pub runs: Vec<String>,
}

/// The Pareto front: every configuration, those on the front first (each group in the first objective's
/// order).
#[derive(Clone, Debug, Serialize)]
pub struct Front {
    pub objectives: Vec<FrontObjective>,
    pub points: Vec<FrontPoint>,
    /// How many are on the front.
    pub on_front: usize,
}

/// One value of a parameter, over every trial that had it.
#[derive(Clone, Debug, Serialize)]
pub struct Row {
    pub value: Value,
    #[serde(flatten)]
    pub figures: Figures,
}

/// Where the metric jumps between adjacent values of a parameter.
#[derive(Clone, Debug, Serialize)]
pub struct Threshold {
    pub from: Value,
    pub to: Value,
    pub mean_from: f64,
    pub mean_to: f64,
    pub change: f64,
    /// `change / |mean_from|`; `None` when `mean_from` is 0 (any change from zero is a threshold).
    pub relative: Option<f64>,
}

/// One parameter's table, thresholds and plot series.
#[derive(Clone, Debug, Serialize)]
pub struct ParamAnalysis {
    pub param: String,
    pub rows: Vec<Row>,
    pub thresholds: Vec<Threshold>,
}

/// A configuration (the parameters without the repeat seed) and its figures.
#[derive(Clone, Debug, Serialize)]
pub struct Config {
    pub params: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub figures: Figures,
    pub runs: Vec<String>,
}

/// The analysis.
#[derive(Clone, Debug, Serialize)]
pub struct Analysis {
    pub sweep: String,
    pub metric: String,
    pub reduce: String,
    pub goal: Goal,
    /// Trials with a value / all trials.
    pub trials_used: usize,
    pub trials: usize,
    /// Trials that failed or timed out (left out), with why.
    pub failed: Vec<(String, String)>,
    pub best: Option<Config>,
    /// Whether the runner-up's 95% interval overlaps the best one's (then the ranking is not sure).
    pub runner_up: Option<Config>,
    pub overlapping: Option<bool>,
    /// Every configuration, best first.
    pub configs: Vec<Config>,
    pub params: Vec<ParamAnalysis>,
    /// Plot-ready series: per parameter, its values and the mean, interval and count at each.
    pub plot: Vec<Value>,
    /// With two or more objectives: their Pareto front.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub pareto: Option<Front>,
}

/// The metric a report is about when none is named: the one the most trials' runs have; among those, a
/// validation or test metric before a training one, a loss, accuracy or F1 before others, then by name; a final
/// summary's number when the runs have no metric at all.
pub fn primary_metric(sweep: &Sweep, views: &Views) -> Option<String> {
    let runs: Vec<&crate::views::registry::Record> = sweep
        .trials()
        .filter_map(|t| t.experiment_id.as_ref())
        .filter_map(|id| views.registry.experiments.get(id))
        .collect();
    let mut count: std::collections::BTreeMap<String, usize> = std::collections::BTreeMap::new();
    for r in &runs {
        for k in r.metrics.keys() {
            *count.entry(k.clone()).or_default() += 1;
        }
    }
    if count.is_empty() {
        for r in &runs {
            for k in r.summary_keys() {
                *count.entry(k).or_default() += 1;
            }
        }
    }
    let rank = |k: &str| {
        let k = k.to_ascii_lowercase();
        let split = if ["val", "eval", "valid", "validation", "test", "final"]
            .iter()
            .any(|s| k.starts_with(&format!("{s}/")) || k.starts_with(&format!("{s}.")))
        {
            0
        } else {
            1
        };
        let kind = ["loss", "acc", "f1"]
            .iter()
            .position(|w| k.contains(w))
            .unwrap_or(3);
        (split, kind)
    };
    count
        .into_iter()
        .max_by(|a, b| {
            a.1.cmp(&b.1)
                .then_with(|| rank(&b.0).cmp(&rank(&a.0)))
                .then_with(|| b.0.cmp(&a.0))
        })
        .map(|(k, _)| k)
}

/// Analyzes `sweep` with the runs in `views`.
pub fn analyze(sweep: &Sweep, views: &Views, ask: &Ask) -> Result<Analysis, AnalyticsError> {
    let curves = ask.reduce.needs_curves().then_some(&views.curves);
    let seed_key = sweep.spec.seed_key.clone().unwrap_or_else(|| "seed".into());
    let mut runs: Vec<&Record> = Vec::new();
    let mut failed = Vec::new();
    for t in sweep.trials() {
        if t.status.is_failed() {
            failed.push((t.id.clone(), t.reason.clone().unwrap_or_default()));
        }
        if t.status != TrialStatus::Completed {
            continue;
        }
        if let Some(r) = t
            .experiment_id
            .as_ref()
            .and_then(|e| views.registry.experiments.get(e))
        {
            runs.push(r);
        }
    }
    let swept: Vec<String> = sweep.spec.sweep.keys().cloned().collect();
    if let Some(p) = ask.param
        && !swept.iter().any(|s| s == p)
    {
        return Err(AnalyticsError::BadRequest(format!(
            "{p:?} is not a parameter of sweep {} (its parameters: {})",
            sweep.id,
            swept.join(", ")
        )));
    }
    // Seeds (repeats) are noise here: configurations are the swept keys alone.
    let noise = Noise(vec![seed_key]);
    let by_config = summarize(
        &runs,
        ask.metric,
        ask.reduce.clone(),
        &By::Keys(swept.clone()),
        &noise,
        curves,
    )?;
    let trials_used = by_config.groups.iter().map(|g| g.runs.len()).sum();
    let better = |a: f64, b: f64| match ask.goal {
        Goal::Min => a.total_cmp(&b),
        Goal::Max => b.total_cmp(&a),
    };
    let mut configs: Vec<Config> = by_config
        .groups
        .into_iter()
        .map(|g| Config {
            params: g.keys,
            figures: g.figures,
            runs: g.runs,
        })
        .collect();
    configs.sort_by(|a, b| match (a.figures.mean, b.figures.mean) {
        (Some(x), Some(y)) => better(x, y),
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => std::cmp::Ordering::Equal,
    });
    let best = configs.first().cloned();
    let runner_up = configs.get(1).cloned();
    let overlapping = match (&best, &runner_up) {
        (Some(b), Some(r)) => match (
            b.figures.ci95_low,
            b.figures.ci95_high,
            r.figures.ci95_low,
            r.figures.ci95_high,
        ) {
            (Some(bl), Some(bh), Some(rl), Some(rh)) => Some(bl <= rh && rl <= bh),
            _ => None,
        },
        _ => None,
    };
    let mut params = Vec::new();
    let mut plot = Vec::new();
    for p in swept.iter().filter(|p| ask.param.is_none_or(|q| q == *p)) {
        let s = summarize(
            &runs,
            ask.metric,
            ask.reduce.clone(),
            &By::Keys(vec![p.clone()]),
            &noise,
            curves,
        )?;
        let mut rows: Vec<Row> = s
            .groups
            .into_iter()
            .map(|g| Row {
                value: g.keys.get(p).cloned().unwrap_or(Value::Null),
                figures: g.figures,
            })
            .collect();
        rows.sort_by(|a, b| order(&a.value, &b.value));
        let thresholds = thresholds(&rows, ask.relative, ask.absolute);
        plot.push(serde_json::json!({
            "param": p,
            "x": rows.iter().map(|r| r.value.clone()).collect::<Vec<_>>(),
            "mean": rows.iter().map(|r| r.figures.mean).collect::<Vec<_>>(),
            "std": rows.iter().map(|r| r.figures.std).collect::<Vec<_>>(),
            "ci95_low": rows.iter().map(|r| r.figures.ci95_low).collect::<Vec<_>>(),
            "ci95_high": rows.iter().map(|r| r.figures.ci95_high).collect::<Vec<_>>(),
            "count": rows.iter().map(|r| r.figures.count).collect::<Vec<_>>(),
        }));
        params.push(ParamAnalysis {
            param: p.clone(),
            rows,
            thresholds,
        });
    }
    let pareto = if ask.objectives.len() >= 2 {
        Some(front(&runs, &swept, &noise, ask.objectives, views)?)
    } else {
        None
    };
    Ok(Analysis {
        pareto,
        sweep: sweep.id.clone(),
        metric: ask.metric.to_string(),
        reduce: ask.reduce.to_string(),
        goal: ask.goal,
        trials_used,
        trials: sweep.trials.len(),
        failed,
        best,
        runner_up,
        overlapping,
        configs,
        params,
        plot,
    })
}

/// The configurations' means in each objective and their Pareto front.
fn front(
    runs: &[&Record],
    swept: &[String],
    noise: &Noise,
    objectives: &[Objective],
    views: &Views,
) -> Result<Front, AnalyticsError> {
    // Configuration (as canonical JSON of its parameters) → (parameters, runs, a mean per objective).
    type Row = (BTreeMap<String, Value>, Vec<String>, Vec<Option<f64>>);
    let mut rows: BTreeMap<String, Row> = BTreeMap::new();
    for (i, o) in objectives.iter().enumerate() {
        let reduce: Reduce = o.reduce.as_str().parse()?;
        let curves = reduce.needs_curves().then_some(&views.curves);
        let s = summarize(
            runs,
            &o.metric,
            reduce,
            &By::Keys(swept.to_vec()),
            noise,
            curves,
        )?;
        for g in s.groups {
            let key = serde_json::to_string(&g.keys).unwrap_or_default();
            let row = rows
                .entry(key)
                .or_insert_with(|| (g.keys.clone(), g.runs.clone(), vec![None; objectives.len()]));
            row.2[i] = g.figures.mean;
        }
    }
    let rows: Vec<Row> = rows.into_values().collect();
    let values: Vec<Vec<f64>> = rows
        .iter()
        .map(|r| r.2.iter().map(|v| v.unwrap_or(f64::NAN)).collect())
        .collect();
    let directions: Vec<Direction> = objectives.iter().map(|o| o.direction).collect();
    let on: std::collections::BTreeSet<usize> = super::pareto::front(&values, &directions)
        .into_iter()
        .collect();
    let mut points: Vec<FrontPoint> = rows
        .into_iter()
        .enumerate()
        .map(|(i, (params, runs, values))| FrontPoint {
            params,
            values,
            front: on.contains(&i),
            runs,
        })
        .collect();
    let first = directions[0];
    points.sort_by(|a, b| {
        let loss = |p: &FrontPoint| p.values[0].map(|v| first.loss(v)).unwrap_or(f64::INFINITY);
        b.front.cmp(&a.front).then(loss(a).total_cmp(&loss(b)))
    });
    Ok(Front {
        objectives: objectives
            .iter()
            .map(|o| FrontObjective {
                metric: o.metric.clone(),
                direction: o.direction,
                reduce: o.reduce.as_str().into(),
            })
            .collect(),
        on_front: on.len(),
        points,
    })
}

/// Adjacent rows whose means differ by more than `relative` (of the first) or `absolute`. From a mean of
/// zero, any change counts (the relative change is undefined, not infinite).
pub fn thresholds(rows: &[Row], relative: f64, absolute: Option<f64>) -> Vec<Threshold> {
    rows.windows(2)
        .filter_map(|w| {
            let (a, b) = (w[0].figures.mean?, w[1].figures.mean?);
            let change = b - a;
            let rel = (a != 0.0).then(|| change / a.abs());
            let hit = match rel {
                Some(r) => r.abs() > relative,
                None => change != 0.0,
            } || absolute.is_some_and(|t| change.abs() > t);
            hit.then(|| Threshold {
                from: w[0].value.clone(),
                to: w[1].value.clone(),
                mean_from: a,
                mean_to: b,
                change,
                relative: rel,
            })
        })
        .collect()
}

fn num(x: Option<f64>) -> String {
    match x {
        None => "-".into(),
        Some(v) if v != 0.0 && (v.abs() >= 1e5 || v.abs() < 1e-3) => format!("{v:.3e}"),
        Some(v) => format!("{v:.4}"),
    }
}

fn show(v: &Value) -> String {
    v.as_str().map_or_else(|| v.to_string(), String::from)
}

fn params_text(p: &BTreeMap<String, Value>) -> String {
    p.iter()
        .map(|(k, v)| format!("`{k}` = {}", show(v)))
        .collect::<Vec<_>>()
        .join(", ")
}

/// The Pareto front's section of the report.
fn write_front(out: &mut String, f: &Front) {
    let _ = writeln!(out, "## Pareto front\n");
    let names: Vec<String> = f
        .objectives
        .iter()
        .map(|o| {
            format!(
                "{} ({}, {})",
                o.metric,
                o.reduce,
                better(o.direction == Direction::Minimize)
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "{} of {} configurations are on the front: no other is as good in every objective and better in one.\n",
        f.on_front,
        f.points.len()
    );
    let _ = writeln!(out, "| configuration | {} | front |", names.join(" | "));
    let _ = writeln!(out, "|---|{}---|", "---|".repeat(names.len()));
    for p in &f.points {
        let _ = writeln!(
            out,
            "| {} | {} | {} |",
            params_text(&p.params),
            p.values
                .iter()
                .map(|v| num(*v))
                .collect::<Vec<_>>()
                .join(" | "),
            if p.front { "yes" } else { "" }
        );
    }
    let _ = writeln!(out);
}

/// Which way is better, in words.
fn better(lower: bool) -> &'static str {
    if lower {
        "lower is better"
    } else {
        "higher is better"
    }
}

/// The analysis as a Markdown report (readable as plain text too).
pub fn report(a: &Analysis) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "# Sweep {}: {} ({})\n", a.sweep, a.metric, a.reduce);
    let _ = writeln!(
        out,
        "{} of {} trials have a value; {}. {} failed or timed out.\n",
        a.trials_used,
        a.trials,
        better(a.goal == Goal::Min),
        a.failed.len()
    );
    if let Some(b) = &a.best {
        let _ = writeln!(out, "## Best configuration\n");
        let _ = writeln!(
            out,
            "{}: mean {} over {} runs (95% interval [{}, {}], std {}).",
            params_text(&b.params),
            num(b.figures.mean),
            b.figures.count,
            num(b.figures.ci95_low),
            num(b.figures.ci95_high),
            num(b.figures.std)
        );
        if let Some(r) = &a.runner_up {
            let _ = writeln!(
                out,
                "\nRunner-up: {}: mean {} over {} runs (95% interval [{}, {}]). {}",
                params_text(&r.params),
                num(r.figures.mean),
                r.figures.count,
                num(r.figures.ci95_low),
                num(r.figures.ci95_high),
                match a.overlapping {
                    Some(true) =>
                        "The intervals overlap: more repeats are needed to tell them apart.",
                    Some(false) => "The intervals do not overlap.",
                    None => "Too few repeats for intervals.",
                }
            );
        }
        let _ = writeln!(out);
    }
    for p in &a.params {
        let _ = writeln!(out, "## {}\n", p.param);
        let _ = writeln!(
            out,
            "| {} | n | mean | std | 95% CI | median | min | max |",
            p.param
        );
        let _ = writeln!(out, "|---|---|---|---|---|---|---|---|");
        for r in &p.rows {
            let f = &r.figures;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} | [{}, {}] | {} | {} | {} |",
                show(&r.value),
                f.count,
                num(f.mean),
                num(f.std),
                num(f.ci95_low),
                num(f.ci95_high),
                num(f.median),
                num(f.min),
                num(f.max)
            );
        }
        if p.thresholds.is_empty() {
            let _ = writeln!(out, "\nNo thresholds.\n");
        } else {
            let _ = writeln!(out, "\nThresholds:\n");
            for t in &p.thresholds {
                let _ = writeln!(
                    out,
                    "- {} → {}: {} → {} ({}{})",
                    show(&t.from),
                    show(&t.to),
                    num(Some(t.mean_from)),
                    num(Some(t.mean_to)),
                    if t.change >= 0.0 { "+" } else { "" },
                    match t.relative {
                        Some(r) => format!("{:.1}%", r * 100.0),
                        None => format!("{} from zero", num(Some(t.change))),
                    }
                );
            }
            let _ = writeln!(out);
        }
    }
    if let Some(f) = &a.pareto {
        write_front(&mut out, f);
    }
    if !a.failed.is_empty() {
        let _ = writeln!(out, "## Failed trials\n");
        for (id, why) in &a.failed {
            let _ = writeln!(out, "- {id}: {why}");
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn row(v: Value, mean: f64) -> Row {
        Row {
            value: v,
            figures: Figures {
                count: 3,
                mean: Some(mean),
                ..Default::default()
            },
        }
    }

    #[test]
    fn thresholds_find_jumps_and_handle_zero() {
        let rows = [
            row(json!(0.0), 0.0),
            row(json!(0.25), 0.1),
            row(json!(0.5), 0.12),
            row(json!(0.75), 0.5),
            row(json!(1.0), 0.52),
        ];
        let t = thresholds(&rows, 0.5, None);
        // 0 → 0.1 from zero; 0.12 → 0.5 is +317 %; 0.1 → 0.12 (+20 %) and 0.5 → 0.52 (+4 %) are not.
        assert_eq!(t.len(), 2);
        assert_eq!((t[0].from.clone(), t[0].relative), (json!(0.0), None));
        assert!((t[1].relative.unwrap() - 0.38 / 0.12).abs() < 1e-12);
        let t = thresholds(&rows, 10.0, Some(0.015));
        assert_eq!(t.len(), 4, "an absolute amount catches the small steps too");
        assert!(thresholds(&[row(json!(1), 0.0), row(json!(2), 0.0)], 0.5, None).is_empty());
        assert_eq!(Goal::guess("val/loss"), Goal::Min);
        assert_eq!(Goal::guess("val/acc"), Goal::Max);
    }
}
