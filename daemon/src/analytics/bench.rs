//! What a benchmark's measurements say: `performance_summary.csv`, `performance_analysis_report.json` (summary,
//! detailed results, recommendations derived from the figures), per-dataset results, the fit of time against
//! sequence length, and the comparison of two benchmarks. Works the same for benchmarks labd ran and for results
//! dropped in from elsewhere, since all of it is computed from the benchmarks view.

use crate::views::benchmarks::{Bench, Measurement};
use serde::Serialize;
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;
use std::fmt::Write;

/// The columns of `performance_summary.csv`, in order. The first six are the original module's.
pub const SUMMARY_COLUMNS: [&str; 22] = [
    "sequence_length",
    "batch_size",
    "baseline_time",
    "full_cmr_time",
    "overhead_percentage",
    "memory_utilization",
    "baseline_time_p25",
    "baseline_time_p75",
    "full_cmr_time_p25",
    "full_cmr_time_p75",
    "hit_rate",
    "tokens_per_second_baseline",
    "tokens_per_second_cmr",
    "peak_memory_baseline",
    "peak_memory_cmr",
    "buffer_bytes",
    "buffer_entries",
    "scoring_time",
    "buffer_time",
    "retrieval_time",
    "reconstruction_time",
    "model_time",
];

pub(super) fn param_u64(m: &Measurement, key: &str) -> Option<u64> {
    m.params.get(key).and_then(Value::as_u64)
}

pub(super) fn param_str<'a>(m: &'a Measurement, key: &str) -> Option<&'a str> {
    m.params.get(key).and_then(Value::as_str)
}

pub(super) fn value(m: &Measurement, key: &str) -> f64 {
    m.values.get(key).copied().unwrap_or(f64::NAN)
}

pub(super) fn num(x: f64) -> Value {
    if x.is_finite() { json!(x) } else { Value::Null }
}

pub(super) fn cell(x: f64) -> String {
    if x.is_nan() {
        String::new()
    } else {
        format!("{x}")
    }
}

/// The last measurement of each `(analysis, params)`: a re-measured point replaces the earlier one.
pub(super) fn latest<'a>(b: &'a Bench, analysis: &'a str) -> Vec<&'a Measurement> {
    let mut by: BTreeMap<String, &Measurement> = BTreeMap::new();
    for m in b.of(analysis) {
        by.insert(Value::Object(m.params.clone()).to_string(), m);
    }
    let mut v: Vec<&Measurement> = by.into_values().collect();
    v.sort_by_key(|m| m.seq);
    v
}

/// `raw_measurements.csv`: every repeat of every measurement, as the runner timed it: the analysis, its
/// parameters (a column each), the figure, the repeat (1-based) and the value (the shortest text that reads back
/// to the same double; `NaN` where there was none).
pub fn raw_csv(b: &Bench) -> String {
    let params: std::collections::BTreeSet<&String> = b
        .measurements
        .iter()
        .flat_map(|m| m.params.keys())
        .collect();
    let cell = |text: String| {
        if text.contains([',', '"', '\n']) {
            format!("\"{}\"", text.replace('"', "\"\""))
        } else {
            text
        }
    };
    let mut out = String::from("analysis");
    for p in &params {
        out.push(',');
        out.push_str(&cell((*p).clone()));
    }
    out.push_str(",figure,repeat,value\n");
    for m in &b.measurements {
        for (figure, samples) in &m.samples {
            for (i, v) in samples.iter().enumerate() {
                out.push_str(&cell(m.analysis.clone()));
                for p in &params {
                    out.push(',');
                    out.push_str(&cell(match m.params.get(*p) {
                        Some(Value::String(s)) => s.clone(),
                        Some(v) => v.to_string(),
                        None => String::new(),
                    }));
                }
                let value = if v.is_finite() {
                    serde_json::to_string(v).unwrap_or_default()
                } else {
                    v.to_string()
                };
                out.push_str(&format!(",{},{},{value}\n", cell(figure.clone()), i + 1));
            }
        }
    }
    out
}

/// `performance_summary.csv`: one row per sequence length and batch size of the overhead analysis, with the
/// memory measured at the same point and the component times measured at the same length.
pub fn summary_csv(b: &Bench) -> String {
    let mut out = SUMMARY_COLUMNS.join(",");
    out.push('\n');
    let memory = latest(b, "memory");
    let components = latest(b, "components");
    let mut rows = latest(b, "overhead");
    rows.sort_by_key(|m| {
        (
            param_u64(m, "sequence_length").unwrap_or(0),
            param_u64(m, "batch_size").unwrap_or(0),
        )
    });
    for m in rows {
        let (len, batch) = (param_u64(m, "sequence_length"), param_u64(m, "batch_size"));
        let mem = memory.iter().find(|x| {
            param_u64(x, "sequence_length") == len && param_u64(x, "batch_size") == batch
        });
        let comp = components
            .iter()
            .find(|x| param_u64(x, "sequence_length") == len);
        let cells: Vec<String> = SUMMARY_COLUMNS
            .iter()
            .map(|&c| match c {
                "sequence_length" => len.map(|v| v.to_string()).unwrap_or_default(),
                "batch_size" => batch.map(|v| v.to_string()).unwrap_or_default(),
                "peak_memory_baseline" | "peak_memory_cmr" | "buffer_bytes" | "buffer_entries" => {
                    cell(mem.map_or(f64::NAN, |x| value(x, c)))
                }
                "scoring_time"
                | "buffer_time"
                | "retrieval_time"
                | "reconstruction_time"
                | "model_time" => cell(comp.map_or(f64::NAN, |x| value(x, c))),
                _ => cell(value(m, c)),
            })
            .collect();
        out.push_str(&cells.join(","));
        out.push('\n');
    }
    out
}

/// A least-squares fit of time against sequence length.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Fit {
    /// `linear`, `n_log_n` or `quadratic`: time = a·f(n) + b.
    pub model: &'static str,
    pub a: f64,
    pub b: f64,
    pub r2: f64,
}

/// Fits `y = a·f(n) + b` for f(n) = n, n log n and n², best R² first. Needs three distinct lengths.
pub fn fits(points: &[(f64, f64)]) -> Vec<Fit> {
    let mut distinct: Vec<f64> = points.iter().map(|p| p.0).collect();
    distinct.sort_by(f64::total_cmp);
    distinct.dedup();
    if distinct.len() < 3 {
        return Vec::new();
    }
    type Model = (&'static str, fn(f64) -> f64);
    let models: [Model; 3] = [
        ("linear", |n| n),
        ("n_log_n", |n| n * n.ln()),
        ("quadratic", |n| n * n),
    ];
    let mut out: Vec<Fit> = models
        .iter()
        .map(|(name, f)| {
            let xs: Vec<f64> = points.iter().map(|p| f(p.0)).collect();
            let ys: Vec<f64> = points.iter().map(|p| p.1).collect();
            let n = xs.len() as f64;
            let (mx, my) = (xs.iter().sum::<f64>() / n, ys.iter().sum::<f64>() / n);
            let sxy: f64 = xs.iter().zip(&ys).map(|(x, y)| (x - mx) * (y - my)).sum();
            let sxx: f64 = xs.iter().map(|x| (x - mx).powi(2)).sum();
            let a = if sxx > 0.0 { sxy / sxx } else { 0.0 };
            let b = my - a * mx;
            let ss_res: f64 = xs
                .iter()
                .zip(&ys)
                .map(|(x, y)| (y - (a * x + b)).powi(2))
                .sum();
            let ss_tot: f64 = ys.iter().map(|y| (y - my).powi(2)).sum();
            let r2 = if ss_tot > 0.0 {
                1.0 - ss_res / ss_tot
            } else {
                1.0
            };
            Fit {
                model: name,
                a,
                b,
                r2,
            }
        })
        .collect();
    out.sort_by(|x, y| y.r2.total_cmp(&x.r2));
    out
}

pub(super) fn measurement_json(m: &Measurement) -> Value {
    let mut o = Map::new();
    for (k, v) in &m.params {
        o.insert(k.clone(), v.clone());
    }
    for (k, v) in &m.values {
        o.insert(k.clone(), num(*v));
    }
    Value::Object(o)
}

/// Per-dataset results: dataset name → its figures.
pub fn dataset_results(b: &Bench) -> BTreeMap<String, Value> {
    latest(b, "dataset")
        .into_iter()
        .map(|m| {
            let name = param_str(m, "dataset").unwrap_or("dataset").to_string();
            let mut v = measurement_json(m);
            v["benchmark"] = json!(b.id);
            (name, v)
        })
        .collect()
}

/// One figure of two benchmarks at the same point.
#[derive(Clone, Debug, PartialEq, Serialize)]
pub struct Row {
    pub analysis: String,
    pub params: Value,
    pub value: String,
    pub a: Option<f64>,
    pub b: Option<f64>,
    /// (b − a) / a in percent.
    pub change_percentage: Option<f64>,
}

/// Every figure the two benchmarks measured at the same point, `a` first.
pub fn compare(a: &Bench, b: &Bench) -> Vec<Row> {
    let index = |x: &Bench| -> BTreeMap<(String, String), Measurement> {
        let mut m = BTreeMap::new();
        // Utilization over time says how a run went, not a figure to compare point by point.
        for analysis in x
            .measurements
            .iter()
            .filter(|m| m.analysis != "utilization")
            .map(|m| m.analysis.clone())
            .collect::<std::collections::BTreeSet<_>>()
        {
            for meas in latest(x, &analysis) {
                m.insert(
                    (
                        analysis.clone(),
                        Value::Object(meas.params.clone()).to_string(),
                    ),
                    meas.clone(),
                );
            }
        }
        m
    };
    let (ia, ib) = (index(a), index(b));
    let mut rows = Vec::new();
    for (key, ma) in &ia {
        let Some(mb) = ib.get(key) else { continue };
        for (name, &va) in &ma.values {
            let Some(&vb) = mb.values.get(name) else {
                continue;
            };
            let fin = |x: f64| x.is_finite().then_some(x);
            rows.push(Row {
                analysis: key.0.clone(),
                params: Value::Object(ma.params.clone()),
                value: name.clone(),
                a: fin(va),
                b: fin(vb),
                change_percentage: (va.is_finite() && vb.is_finite() && va != 0.0)
                    .then(|| (vb - va) / va.abs() * 100.0),
            });
        }
    }
    rows
}

/// The benchmark of the same suite and name that started last before `b` (for "this build against the last").
pub fn previous<'a>(all: impl Iterator<Item = &'a Bench>, b: &Bench) -> Option<&'a Bench> {
    all.filter(|x| x.id != b.id && x.suite == b.suite && x.name == b.name && x.started <= b.started)
        .max_by_key(|x| x.started)
}

/// A short text table of a comparison.
pub fn compare_text(a: &Bench, b: &Bench, rows: &[Row]) -> String {
    let mut out = String::new();
    let _ = writeln!(out, "A: {} ({})   B: {} ({})", a.id, a.name, b.id, b.name);
    for r in rows {
        let f = |x: Option<f64>| x.map_or("-".to_string(), |v| format!("{v:.6}"));
        let _ = writeln!(
            out,
            "{:<15} {:<48} {:<28} {:>14} {:>14} {:>9}",
            r.analysis,
            r.params.to_string(),
            r.value,
            f(r.a),
            f(r.b),
            r.change_percentage
                .map_or("-".into(), |c| format!("{c:+.1}%"))
        );
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::analytics::bench_report::report;
    use labd_schemas::bench::BenchStatus;

    fn m(seq: u64, analysis: &str, params: Value, values: &[(&str, f64)]) -> Measurement {
        Measurement {
            seq,
            analysis: analysis.into(),
            params: params.as_object().cloned().unwrap_or_default(),
            values: values.iter().map(|(k, v)| (k.to_string(), *v)).collect(),
            samples: BTreeMap::new(),
        }
    }

    fn bench(id: &str, ms: Vec<Measurement>) -> Bench {
        Bench {
            id: id.into(),
            suite: "cmr".into(),
            name: "n".into(),
            config: json!({}),
            build: Map::new(),
            host: "h".into(),
            planned: None,
            started: 0,
            ended: None,
            runner: None,
            status: BenchStatus::Completed,
            message: None,
            measurements: ms,
            sources: vec![],
            origin: None,
            origin_id: None,
        }
    }

    #[test]
    fn raw_csv_has_every_repeat_with_its_parameters() {
        let mut a = m(
            1,
            "overhead",
            json!({"sequence_length": 512, "batch_size": 1}),
            &[],
        );
        a.samples
            .insert("baseline_time".into(), vec![0.1, 0.30000000000000004]);
        let mut b = m(2, "retrieval", json!({"strategy": "semantic, fast"}), &[]);
        b.samples.insert("retrieval_time".into(), vec![f64::NAN]);
        let csv = raw_csv(&bench("x", vec![a, b]));
        let lines: Vec<&str> = csv.lines().collect();
        assert_eq!(
            lines[0],
            "analysis,batch_size,sequence_length,strategy,figure,repeat,value"
        );
        assert_eq!(lines[1], "overhead,1,512,,baseline_time,1,0.1");
        assert_eq!(
            lines[2],
            "overhead,1,512,,baseline_time,2,0.30000000000000004"
        );
        assert_eq!(
            lines[3],
            "retrieval,,,\"semantic, fast\",retrieval_time,1,NaN"
        );
    }

    #[test]
    fn fits_tell_quadratic_from_linear() {
        let quad: Vec<(f64, f64)> = [64.0, 128.0, 256.0, 512.0, 1024.0, 2048.0]
            .iter()
            .map(|&n| (n, 1e-9 * n * n + 1e-3))
            .collect();
        let f = fits(&quad);
        assert_eq!(f[0].model, "quadratic");
        assert!((f[0].r2 - 1.0).abs() < 1e-9);
        let lin: Vec<(f64, f64)> = quad.iter().map(|&(n, _)| (n, 2e-6 * n + 0.01)).collect();
        assert_eq!(fits(&lin)[0].model, "linear");
        assert!(fits(&lin[..2]).is_empty(), "two lengths fit anything");
    }

    #[test]
    fn the_summary_csv_joins_memory_and_components_and_keeps_the_original_columns() {
        let b = bench(
            "a",
            vec![
                m(
                    1,
                    "overhead",
                    json!({"sequence_length": 128, "batch_size": 1}),
                    &[
                        ("baseline_time", 0.01),
                        ("full_cmr_time", 0.012),
                        ("overhead_percentage", 20.0),
                        ("memory_utilization", 0.5),
                    ],
                ),
                m(
                    2,
                    "overhead",
                    json!({"sequence_length": 64, "batch_size": 1}),
                    &[
                        ("baseline_time", 0.005),
                        ("full_cmr_time", 0.006),
                        ("overhead_percentage", 20.0),
                        ("memory_utilization", 0.25),
                    ],
                ),
                m(
                    3,
                    "memory",
                    json!({"sequence_length": 64, "batch_size": 1}),
                    &[("peak_memory_cmr", 1e6)],
                ),
                m(
                    4,
                    "components",
                    json!({"sequence_length": 64}),
                    &[("retrieval_time", 0.0004)],
                ),
            ],
        );
        let csv = summary_csv(&b);
        let lines: Vec<&str> = csv.lines().collect();
        assert!(lines[0].starts_with("sequence_length,batch_size,baseline_time,full_cmr_time,overhead_percentage,memory_utilization"));
        assert_eq!(lines.len(), 3);
        assert!(
            lines[1].starts_with("64,1,0.005,0.006,20,0.25,"),
            "{}",
            lines[1]
        );
        let cols: Vec<&str> = lines[1].split(',').collect();
        let at = |name: &str| SUMMARY_COLUMNS.iter().position(|c| *c == name).unwrap();
        assert_eq!(cols[at("peak_memory_cmr")], "1000000");
        assert_eq!(cols[at("retrieval_time")], "0.0004");
        assert_eq!(lines[2].split(',').nth(at("retrieval_time")), Some(""));
    }

    #[test]
    fn the_report_derives_recommendations_from_the_figures() {
        let b = bench(
            "a",
            vec![
                m(
                    1,
                    "overhead",
                    json!({"sequence_length": 512, "batch_size": 1}),
                    &[
                        ("baseline_time", 0.01),
                        ("full_cmr_time", 0.02),
                        ("overhead_percentage", 100.0),
                    ],
                ),
                m(
                    2,
                    "layer",
                    json!({"layer": 2}),
                    &[("overhead_percentage", 70.0)],
                ),
                m(
                    3,
                    "layer",
                    json!({"layer": 1}),
                    &[("overhead_percentage", 30.0)],
                ),
                m(
                    4,
                    "retrieval",
                    json!({"strategy": "semantic"}),
                    &[("retrieval_accuracy", 0.8), ("retrieval_time", 0.001)],
                ),
                m(
                    5,
                    "retrieval",
                    json!({"strategy": "hybrid"}),
                    &[("retrieval_accuracy", 0.9), ("retrieval_time", 0.004)],
                ),
                m(
                    6,
                    "dataset",
                    json!({"dataset": "long_context"}),
                    &[
                        ("retrieval_accuracy", 0.3),
                        ("chance", 0.05),
                        ("facts_stored", 0.5),
                    ],
                ),
                m(
                    7,
                    "dataset",
                    json!({"dataset": "conversation"}),
                    &[
                        ("retrieval_accuracy", 0.9),
                        ("chance", 0.1),
                        ("facts_stored", 1.0),
                    ],
                ),
            ],
        );
        let r = report(&b);
        let recs: Vec<&str> = r["recommendations"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(Value::as_str)
            .collect();
        assert!(
            recs.iter()
                .any(|s| s.contains("up to 100%") && s.contains("layer 2 costs most")),
            "{recs:?}"
        );
        assert!(
            recs.iter()
                .any(|s| s.contains("hybrid is the most accurate")
                    && s.contains("semantic the fastest")),
            "{recs:?}"
        );
        assert!(
            recs.iter()
                .any(|s| s.contains("lowest on long_context") && s.contains("50%")),
            "{recs:?}"
        );
        assert_eq!(r["summary"]["best_retrieval_strategy"], "hybrid");
        assert_eq!(dataset_results(&b).len(), 2);
    }

    #[test]
    fn compare_matches_points_and_previous_finds_the_last_run_of_the_same_benchmark() {
        let a = bench(
            "a",
            vec![m(
                1,
                "overhead",
                json!({"sequence_length": 64, "batch_size": 1}),
                &[("full_cmr_time", 0.01)],
            )],
        );
        let mut b = bench(
            "b",
            vec![m(
                1,
                "overhead",
                json!({"sequence_length": 64, "batch_size": 1}),
                &[("full_cmr_time", 0.012)],
            )],
        );
        b.started = 10;
        let rows = compare(&a, &b);
        assert_eq!(rows.len(), 1);
        assert!((rows[0].change_percentage.unwrap() - 20.0).abs() < 1e-9);
        let all = [a.clone(), b.clone()];
        assert_eq!(previous(all.iter(), &b).map(|x| x.id.as_str()), Some("a"));
        assert!(previous(all.iter(), &a).is_none());
    }
}
