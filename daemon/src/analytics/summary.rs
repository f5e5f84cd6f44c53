//! Grouping and multi-seed aggregation with Polars: one value per run (a reduction of a metric), runs grouped
//! by hyperparameter keys (by default the varying ones), and per group count, mean, std, standard error, a 95%
//! interval, median, min and max, with the run ids behind every figure.

use super::AnalyticsError;
use super::params::{Noise, flatten, order, variation};
use super::reduce::{Measure, Reduce};
use super::stats::interval;
use crate::views::curves::Curves;
use crate::views::registry::Record;
use polars::prelude::*;
use serde::Serialize;
use serde_json::Value;
use std::collections::BTreeMap;

/// How runs are grouped.
#[derive(Clone, Debug, PartialEq)]
pub enum By {
    /// The keys that vary across the selected runs (noise left out).
    Varying,
    /// These dot keys.
    Keys(Vec<String>),
}

/// The figures of one group for one metric reduction.
#[derive(Clone, Debug, Default, PartialEq, Serialize)]
pub struct Figures {
    pub count: u64,
    pub mean: Option<f64>,
    pub std: Option<f64>,
    pub sem: Option<f64>,
    pub ci95_low: Option<f64>,
    pub ci95_high: Option<f64>,
    pub median: Option<f64>,
    pub min: Option<f64>,
    pub max: Option<f64>,
}

/// The names of the figures, in table order.
pub const FIGURES: [&str; 9] = [
    "count",
    "mean",
    "std",
    "sem",
    "ci95_low",
    "ci95_high",
    "median",
    "min",
    "max",
];

impl Figures {
    /// A figure by name (one of [`FIGURES`]).
    pub fn get(&self, name: &str) -> Option<f64> {
        match name {
            "count" => Some(self.count as f64),
            "mean" => self.mean,
            "std" => self.std,
            "sem" => self.sem,
            "ci95_low" => self.ci95_low,
            "ci95_high" => self.ci95_high,
            "median" => self.median,
            "min" => self.min,
            "max" => self.max,
            _ => None,
        }
    }
}

/// One group's figures. Serialized flat: the group's key values under their dot keys, then the figures of the
/// main metric, the runs, and the figures of each further column under `also`.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Group {
    #[serde(flatten)]
    pub keys: BTreeMap<String, Value>,
    #[serde(flatten)]
    pub figures: Figures,
    /// The runs behind the figures.
    pub runs: Vec<String>,
    /// Further columns (`METRIC=REDUCE` → figures over the same group's runs that have a value).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub also: BTreeMap<String, Figures>,
    /// The group's key values as tables show them (display names configured, else the value itself).
    #[serde(skip_serializing_if = "BTreeMap::is_empty")]
    pub display: BTreeMap<String, String>,
}

/// A summary table.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Summary {
    pub metric: String,
    pub reduce: Reduce,
    /// The grouping keys used.
    pub by: Vec<String>,
    /// How tables name the grouping keys (configured display names, else the last dot segment).
    pub names: BTreeMap<String, String>,
    /// Further columns, in order (`METRIC=REDUCE`); each group has their figures under `also`.
    #[serde(skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<String>,
    pub groups: Vec<Group>,
    /// Runs left out because they lack the metric or its value is not finite.
    pub missing: Vec<String>,
}

/// Summarizes `runs` (already filtered).
pub fn summarize(
    runs: &[&Record],
    metric: &str,
    reduce: Reduce,
    by: &By,
    noise: &Noise,
    curves: Option<&Curves>,
) -> Result<Summary, AnalyticsError> {
    if reduce.needs_curves() && curves.is_none() {
        return Err(AnalyticsError::BadRequest(format!(
            "reduction {reduce} needs the curve store"
        )));
    }
    let flat: Vec<BTreeMap<String, Value>> = runs.iter().map(|r| flatten(&r.config)).collect();
    let keys: Vec<String> = match by {
        By::Keys(k) => k.clone(),
        By::Varying => variation(&flat, noise)
            .varying
            .into_iter()
            .map(|v| v.key)
            .collect(),
    };
    let mut ids = Vec::new();
    let mut values = Vec::new();
    let mut key_cols: Vec<Vec<String>> = vec![Vec::new(); keys.len()];
    let mut missing = Vec::new();
    for (r, f) in runs.iter().zip(&flat) {
        match reduce.of(r, metric, curves).filter(|v| v.is_finite()) {
            Some(v) => {
                ids.push(r.id.as_str().to_string());
                values.push(v);
                for (col, k) in key_cols.iter_mut().zip(&keys) {
                    col.push(match f.get(k) {
                        Some(v) => v.to_string(),
                        // `host`, where the config has none: the host the run was recorded on.
                        None if k == "host" => Value::String(r.host.clone()).to_string(),
                        None => "null".to_string(),
                    });
                }
            }
            None => missing.push(r.id.as_str().to_string()),
        }
    }
    let mut groups = Vec::new();
    if !values.is_empty() {
        let mut columns = vec![
            Column::new("run".into(), ids),
            Column::new("value".into(), values),
        ];
        let mut group_names: Vec<String> = Vec::new();
        for (i, col) in key_cols.into_iter().enumerate() {
            let name = format!("k{i}");
            columns.push(Column::new(name.as_str().into(), col));
            group_names.push(name);
        }
        if group_names.is_empty() {
            let n = columns[0].len();
            columns.push(Column::new("k_all".into(), vec!["all"; n]));
            group_names.push("k_all".into());
        }
        let df = DataFrame::new_infer_height(columns)?;
        let by_exprs: Vec<Expr> = group_names.iter().map(|n| col(n.as_str())).collect();
        let out = df
            .lazy()
            .group_by_stable(by_exprs)
            .agg([
                col("value").count().alias("count"),
                col("value").mean().alias("mean"),
                col("value").std(1).alias("std"),
                col("value").median().alias("median"),
                col("value").min().alias("min"),
                col("value").max().alias("max"),
                col("run").alias("runs"),
            ])
            .collect()?;
        let count = out.column("count")?.cast(&DataType::UInt64)?;
        let count = count.u64()?;
        let stat = |name: &str| -> Result<Vec<Option<f64>>, PolarsError> {
            let c = out.column(name)?.cast(&DataType::Float64)?;
            Ok(c.f64()?.iter().collect())
        };
        let (mean, std, median, min, max) = (
            stat("mean")?,
            stat("std")?,
            stat("median")?,
            stat("min")?,
            stat("max")?,
        );
        let runs_col = out.column("runs")?.list()?.clone();
        let key_texts: Vec<Vec<Option<String>>> = group_names
            .iter()
            .take(keys.len())
            .map(|n| -> Result<Vec<Option<String>>, PolarsError> {
                Ok(out
                    .column(n.as_str())?
                    .str()?
                    .iter()
                    .map(|s| s.map(str::to_string))
                    .collect())
            })
            .collect::<Result<_, _>>()?;
        for i in 0..out.height() {
            let n = count.get(i).unwrap_or(0);
            let (m, s) = (mean[i], std[i]);
            let (sem, lo, hi) = match (m, s) {
                (Some(m), Some(s)) => interval(m, s, n as usize),
                _ => (f64::NAN, f64::NAN, f64::NAN),
            };
            let finite = |x: f64| x.is_finite().then_some(x);
            let runs = match runs_col.get_as_series(i) {
                Some(series) => series.str()?.iter().flatten().map(str::to_string).collect(),
                None => Vec::new(),
            };
            let keys = keys
                .iter()
                .zip(&key_texts)
                .map(|(k, texts)| {
                    let v = texts[i]
                        .as_deref()
                        .and_then(|t| serde_json::from_str(t).ok())
                        .unwrap_or(Value::Null);
                    (k.clone(), v)
                })
                .collect();
            groups.push(Group {
                keys,
                figures: Figures {
                    count: n,
                    mean: m,
                    std: s.filter(|x| x.is_finite()),
                    sem: finite(sem),
                    ci95_low: finite(lo),
                    ci95_high: finite(hi),
                    median: median[i],
                    min: min[i],
                    max: max[i],
                },
                runs,
                also: BTreeMap::new(),
                display: BTreeMap::new(),
            });
        }
    }
    groups.sort_by(|a, b| {
        for k in &keys {
            let o = order(&a.keys[k], &b.keys[k]);
            if o != std::cmp::Ordering::Equal {
                return o;
            }
        }
        std::cmp::Ordering::Equal
    });
    Ok(Summary {
        metric: metric.to_string(),
        reduce,
        by: keys,
        names: BTreeMap::new(),
        also: Vec::new(),
        groups,
        missing,
    })
}

/// Adds further columns to a summary: each measure reduced over the runs of each group (those that have a
/// finite value; `count` says how many).
pub fn add_columns(
    s: &mut Summary,
    runs: &[&Record],
    measures: &[Measure],
    noise: &Noise,
    curves: Option<&Curves>,
) -> Result<(), AnalyticsError> {
    let used: std::collections::HashSet<&str> = s
        .groups
        .iter()
        .flat_map(|g| g.runs.iter().map(String::as_str))
        .collect();
    let runs: Vec<&Record> = runs
        .iter()
        .filter(|r| used.contains(r.id.as_str()))
        .copied()
        .collect();
    let by = By::Keys(s.by.clone());
    let key_of =
        |g: &Group| -> Vec<String> { s.by.iter().map(|k| g.keys[k].to_string()).collect() };
    let mut columns = Vec::new();
    for m in measures {
        let label = m.to_string();
        if columns.contains(&label) {
            continue;
        }
        let part = summarize(&runs, &m.metric, m.reduce.clone(), &by, noise, curves)?;
        let found: BTreeMap<Vec<String>, Figures> = part
            .groups
            .into_iter()
            .map(|g| (key_of(&g), g.figures))
            .collect();
        for g in &mut s.groups {
            let figures = found.get(&key_of(g)).cloned().unwrap_or_default();
            g.also.insert(label.clone(), figures);
        }
        columns.push(label);
    }
    s.also = columns;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::reduce::{Reductions, auc, value_at};
    use crate::analytics::table::{frame, sort_groups};
    use labd_schemas::api::MetricStats;
    use labd_schemas::{ExperimentId, RunStatus};
    use serde_json::json;

    fn run(i: usize, lr: f64, seed: u64, last: Option<f64>) -> Record {
        let mut metrics = BTreeMap::new();
        if let Some(v) = last {
            metrics.insert(
                "val/acc".to_string(),
                MetricStats {
                    points: 10,
                    last: Some(v),
                    min: Some(v - 0.5),
                    max: Some(v + 0.01),
                    ..Default::default()
                },
            );
        }
        Record {
            id: ExperimentId(format!("run{i}")),
            name: format!("run{i}"),
            description: None,
            tags: vec![],
            config: json!({"optim": {"lr": lr}, "seed": seed, "epochs": 3}),
            config_hash: "h".into(),
            host: "h".into(),
            started: 0,
            status: RunStatus::Completed,
            status_notes: None,
            ended: None,
            last_activity: 0,
            sources: vec![],
            summaries: BTreeMap::new(),
            artifacts: vec![],
            messages: 0,
            metrics,
            extra: Default::default(),
            ranges: vec![],
            origin_id: None,
            foreign: false,
            project: None,
        }
    }

    #[test]
    fn groups_by_varying_keys_with_hand_computed_figures() {
        // lr 0.1: 0.80, 0.82, 0.84 (mean 0.82, std 0.02, sem 0.011547, t(2) = 4.303)
        // lr 0.01: 0.90, 0.94 (mean 0.92, std 0.028284, sem 0.02, t(1) = 12.706); a NaN run and a run without
        // the metric are left out and listed.
        let runs = [
            run(0, 0.1, 0, Some(0.80)),
            run(1, 0.1, 1, Some(0.82)),
            run(2, 0.1, 2, Some(0.84)),
            run(3, 0.01, 0, Some(0.90)),
            run(4, 0.01, 1, Some(0.94)),
            run(5, 0.01, 2, Some(f64::NAN)),
            run(6, 0.01, 3, None),
        ];
        let refs: Vec<&Record> = runs.iter().collect();
        let s = summarize(
            &refs,
            "val/acc",
            Reduce::Last,
            &By::Varying,
            &Noise::default(),
            None,
        )
        .unwrap();
        assert_eq!(s.by, ["optim.lr"], "seed is noise, epochs constant");
        assert_eq!(s.missing, ["run5", "run6"]);
        assert_eq!(s.groups.len(), 2);
        let g = &s.groups[0];
        assert_eq!(
            g.keys["optim.lr"],
            json!(0.01),
            "groups sorted by key value"
        );
        assert_eq!(g.figures.count, 2);
        assert!((g.figures.mean.unwrap() - 0.92).abs() < 1e-12);
        assert!((g.figures.std.unwrap() - 0.0282843).abs() < 1e-6);
        assert!((g.figures.sem.unwrap() - 0.02).abs() < 1e-9);
        assert!((g.figures.ci95_low.unwrap() - (0.92 - 12.706 * 0.02)).abs() < 1e-9);
        assert_eq!(g.runs, ["run3", "run4"]);
        let g = &s.groups[1];
        assert_eq!(g.figures.count, 3);
        assert!((g.figures.mean.unwrap() - 0.82).abs() < 1e-12);
        assert!((g.figures.std.unwrap() - 0.02).abs() < 1e-9);
        assert!((g.figures.median.unwrap() - 0.82).abs() < 1e-12);
        assert!((g.figures.ci95_high.unwrap() - (0.82 + 4.303 * 0.02 / 3f64.sqrt())).abs() < 1e-9);
        assert_eq!((g.figures.min, g.figures.max), (Some(0.80), Some(0.84)));
        let json = serde_json::to_value(g).unwrap();
        assert_eq!(json["optim.lr"], json!(0.1), "keys under their dot keys");
        assert_eq!(json["runs"], json!(["run0", "run1", "run2"]));
    }

    #[test]
    fn explicit_keys_one_group_and_reductions() {
        let runs = [run(0, 0.1, 0, Some(0.5)), run(1, 0.1, 1, Some(0.7))];
        let refs: Vec<&Record> = runs.iter().collect();
        let s = summarize(
            &refs,
            "val/acc",
            Reduce::Min,
            &By::Keys(vec![]),
            &Noise::default(),
            None,
        )
        .unwrap();
        assert_eq!(s.groups.len(), 1);
        assert!(
            (s.groups[0].figures.mean.unwrap() - 0.1).abs() < 1e-12,
            "min = last - 0.5"
        );
        let s = summarize(
            &refs,
            "val/acc",
            Reduce::Last,
            &By::Keys(vec!["seed".into()]),
            &Noise::default(),
            None,
        )
        .unwrap();
        assert_eq!(s.groups.len(), 2);
        assert!(s.groups[0].figures.sem.is_none(), "one run: no interval");
        assert!("median_of_means".parse::<Reduce>().is_err());
        assert_eq!(
            "at_step:100".parse::<Reduce>().unwrap(),
            Reduce::AtStep(100)
        );
        assert_eq!(
            "auc:epoch".parse::<Reduce>().unwrap().to_string(),
            "auc:epoch"
        );
        assert!("mean_last:0".parse::<Reduce>().is_err());
        assert!(
            "at_step"
                .parse::<Reduce>()
                .unwrap_err()
                .to_string()
                .contains("needs a step")
        );
    }

    #[test]
    fn value_at_and_area_under_the_curve() {
        let pairs = [(0.0, 1.0), (10.0, 3.0), (20.0, 5.0), (10.0, 4.0)];
        assert_eq!(
            value_at(&pairs, 15.0),
            Some(4.0),
            "the later point on a tie (a restart)"
        );
        assert_eq!(value_at(&pairs, -1.0), None);
        // sorted: (0,1) (10,3) (10,4) (20,5): 10*(1+3)/2 + 0 + 10*(4+5)/2 = 20 + 45
        assert_eq!(auc(&pairs), Some(65.0));
        assert_eq!(auc(&[(0.0, 1.0), (1.0, f64::NAN)]), None);
    }

    #[test]
    fn further_columns_and_default_reductions() {
        let runs = [
            run(0, 0.1, 0, Some(0.80)),
            run(1, 0.1, 1, Some(0.82)),
            run(2, 0.01, 0, Some(0.90)),
            run(3, 0.01, 1, Some(0.94)),
        ];
        let refs: Vec<&Record> = runs.iter().collect();
        let defaults = Reductions::parse(&BTreeMap::from([
            ("val/*".to_string(), "max".to_string()),
            ("val/acc".to_string(), "min".to_string()),
            ("*".to_string(), "points".to_string()),
        ]))
        .unwrap();
        assert_eq!(defaults.of("val/acc"), Reduce::Min, "an exact name wins");
        assert_eq!(defaults.of("val/f1"), Reduce::Max, "then the longest glob");
        assert_eq!(defaults.of("train/loss"), Reduce::Points);
        assert_eq!(Reductions::default().of("x"), Reduce::Last);
        let bad = Reductions::parse(&BTreeMap::from([("x".into(), "best".into())]));
        assert!(
            bad.unwrap_err()
                .to_string()
                .contains("\"x\": unknown reduction \"best\"")
        );

        let mut s = summarize(
            &refs,
            "val/acc",
            Reduce::Last,
            &By::Varying,
            &Noise::default(),
            None,
        )
        .unwrap();
        let measures = [
            Measure::parse("val/acc", &defaults).unwrap(),
            Measure::parse("val/acc=max", &defaults).unwrap(),
            Measure::parse("val/nope=last", &defaults).unwrap(),
        ];
        assert!(Measure::parse("=min", &defaults).is_err());
        add_columns(&mut s, &refs, &measures, &Noise::default(), None).unwrap();
        assert_eq!(s.also, ["val/acc=min", "val/acc=max", "val/nope=last"]);
        // lr 0.01: min = last - 0.5 → 0.40, 0.44; max = last + 0.01 → 0.91, 0.95.
        let g = &s.groups[0];
        assert_eq!(g.keys["optim.lr"], json!(0.01));
        assert!((g.also["val/acc=min"].mean.unwrap() - 0.42).abs() < 1e-12);
        assert!((g.also["val/acc=max"].max.unwrap() - 0.95).abs() < 1e-12);
        assert_eq!(
            g.also["val/nope=last"].count, 0,
            "a column no run has is empty"
        );
        let json = serde_json::to_value(g).unwrap();
        assert!((json["also"]["val/acc=max"]["mean"].as_f64().unwrap() - 0.93).abs() < 1e-12);
        sort_groups(&mut s, "val/acc=max.mean", true).unwrap();
        assert_eq!(s.groups[0].keys["optim.lr"], json!(0.01));
        assert!(sort_groups(&mut s, "val/f1=max.mean", true).is_err());
        let df = frame(&s).unwrap();
        let names: Vec<String> = df
            .get_column_names()
            .iter()
            .map(|n| n.to_string())
            .collect();
        assert!(
            names.contains(&"val/acc=max.ci95_high".to_string()),
            "{names:?}"
        );
        assert_eq!(df.width(), 1 + 9 + 1 + 3 * 9);
    }
}
