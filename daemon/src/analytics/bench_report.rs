//! A benchmark's `performance_analysis_report.json`: its summary, the detailed results of each analysis, the
//! scalability fits, and recommendations derived from the figures (overhead against thresholds, the costliest
//! layer and component, the fastest and most accurate strategy, the most faithful method, buffer fill and
//! eviction, the dataset with the lowest accuracy and why).

use super::bench::{fits, latest, measurement_json, num, param_str, param_u64, value};
use crate::views::benchmarks::{Bench, Measurement};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// The first of `ms` by `key` (lowest when `low`), NaN values skipped.
fn best<'a>(ms: &[&'a Measurement], key: &str, low: bool) -> Option<&'a Measurement> {
    ms.iter()
        .copied()
        .filter(|m| !value(m, key).is_nan())
        .min_by(|a, b| {
            let (x, y) = (value(a, key), value(b, key));
            if low {
                x.total_cmp(&y)
            } else {
                y.total_cmp(&x)
            }
        })
}

fn ms(x: f64) -> String {
    format!("{:.2} ms", x * 1e3)
}

/// The scalability fits per batch size, for the baseline and for CMR.
fn scalability(overhead: &[&Measurement]) -> Value {
    let mut by_batch: BTreeMap<u64, Vec<&Measurement>> = BTreeMap::new();
    for m in overhead {
        by_batch
            .entry(param_u64(m, "batch_size").unwrap_or(1))
            .or_default()
            .push(m);
    }
    let mut out = Map::new();
    for (batch, ms) in by_batch {
        let pts = |key: &str| -> Vec<(f64, f64)> {
            ms.iter()
                .filter_map(|m| Some((param_u64(m, "sequence_length")? as f64, value(m, key))))
                .filter(|p| p.1.is_finite())
                .collect()
        };
        out.insert(
            batch.to_string(),
            json!({"baseline": fits(&pts("baseline_time")), "full_cmr": fits(&pts("full_cmr_time"))}),
        );
    }
    Value::Object(out)
}

/// What the report finds: its summary figures and its recommendations.
#[derive(Default)]
struct Findings {
    summary: Map<String, Value>,
    recs: Vec<String>,
}

/// `performance_analysis_report.json`.
pub fn report(b: &Bench) -> Value {
    let overhead = latest(b, "overhead");
    let memory = latest(b, "memory");
    let layers = latest(b, "layer");
    let retrieval = latest(b, "retrieval");
    let recon = latest(b, "reconstruction");
    let components = latest(b, "components");
    let datasets = latest(b, "dataset");
    let mut buffer = latest(b, "buffer");
    buffer.sort_by_key(|m| param_u64(m, "step").unwrap_or(0));

    let mut out = Findings::default();
    note_overhead(&mut out, &overhead, &layers);
    let scal = note_scalability(&mut out, &overhead);
    note_components(&mut out, &components);
    note_retrieval(&mut out, &retrieval);
    note_reconstruction(&mut out, &recon);
    let buffer_detail = note_buffer(&mut out, &buffer);
    note_datasets(&mut out, &datasets);
    note_memory(&mut out, &memory);
    let Findings { summary, recs } = out;
    let list = |v: &[&Measurement]| v.iter().map(|m| measurement_json(m)).collect::<Vec<_>>();
    json!({
        "benchmark": {
            "id": b.id, "name": b.name, "suite": b.suite, "status": b.status, "message": b.message,
            "host": b.host, "build": b.build, "config": b.config, "started": b.started, "ended": b.ended,
            "planned": b.planned, "measurements": b.measured(),
        },
        "summary": summary,
        "detailed_results": {
            "overhead": list(&overhead),
            "memory": list(&memory),
            "scalability": scal,
            "layer_wise": list(&layers),
            "retrieval_strategies": list(&retrieval),
            "reconstruction_methods": list(&recon),
            "buffer": buffer_detail,
            "components": list(&components),
            "datasets": list(&datasets),
        },
        "recommendations": recs,
    })
}

/// CMR's overhead: the mean, the worst point, and what to do about it.
fn note_overhead(out: &mut Findings, overhead: &[&Measurement], layers: &[&Measurement]) {
    let overheads: Vec<f64> = overhead
        .iter()
        .map(|m| value(m, "overhead_percentage"))
        .filter(|x| x.is_finite())
        .collect();
    if !overheads.is_empty() {
        let mean = overheads.iter().sum::<f64>() / overheads.len() as f64;
        out.summary
            .insert("mean_overhead_percentage".into(), num(mean));
        if let Some(worst) = best(overhead, "overhead_percentage", false) {
            let (len, batch) = (
                param_u64(worst, "sequence_length").unwrap_or(0),
                param_u64(worst, "batch_size").unwrap_or(0),
            );
            let pct = value(worst, "overhead_percentage");
            out.summary.insert(
                "max_overhead".into(),
                json!({"overhead_percentage": num(pct), "sequence_length": len, "batch_size": batch}),
            );
            if pct > 50.0 {
                let costly = best(layers, "overhead_percentage", false)
                    .and_then(|m| param_u64(m, "layer"))
                    .map(|l| format!(" (layer {l} costs most)"))
                    .unwrap_or_default();
                out.recs.push(format!(
                    "CMR adds up to {pct:.0}% at sequence length {len}, batch {batch}: hook fewer layers{costly}, lower scorer.max_per_step or the retrieval budget."
                ));
            } else if pct < 10.0 {
                out.recs.push(format!(
                    "CMR adds at most {pct:.1}%: there is room for more hooked layers or a larger retrieval budget."
                ));
            }
        }
    }
}

/// How time grows with sequence length, with and without CMR (answers the fits for the details).
fn note_scalability(out: &mut Findings, overhead: &[&Measurement]) -> Value {
    let scal = scalability(overhead);
    if let Some((batch, f)) = scal.as_object().and_then(|o| o.iter().next()) {
        let name = |k: &str| f[k][0]["model"].as_str().unwrap_or("").to_string();
        let r2 = |k: &str| f[k][0]["r2"].as_f64().unwrap_or(f64::NAN);
        if !name("full_cmr").is_empty() {
            out.summary.insert(
                "scalability".into(),
                json!({"batch_size": batch, "baseline": name("baseline"), "baseline_r2": num(r2("baseline")),
                       "full_cmr": name("full_cmr"), "full_cmr_r2": num(r2("full_cmr"))}),
            );
            if name("full_cmr") != name("baseline") {
                out.recs.push(format!(
                    "With CMR, time grows as {} (R² {:.3}) where the plain model grows as {} (R² {:.3}): check the longest sequences you need.",
                    name("full_cmr"),
                    r2("full_cmr"),
                    name("baseline"),
                    r2("baseline")
                ));
            }
        }
    }
    scal
}

/// The costliest of CMR's components at the longest input.
fn note_components(out: &mut Findings, components: &[&Measurement]) {
    if let Some(last) = components
        .iter()
        .max_by_key(|m| param_u64(m, "sequence_length").unwrap_or(0))
    {
        let parts = [
            "scoring_time",
            "buffer_time",
            "retrieval_time",
            "reconstruction_time",
        ];
        let own: f64 = parts
            .iter()
            .map(|p| value(last, p))
            .filter(|x| x.is_finite())
            .sum();
        if let Some(top) = parts
            .iter()
            .max_by(|a, b| value(last, a).total_cmp(&value(last, b)))
            .filter(|_| own > 0.0)
        {
            let share = value(last, top) / own * 100.0;
            let component = top.trim_end_matches("_time");
            out.summary.insert(
                "costliest_component".into(),
                json!({"component": component, "share_of_cmr_time": num(share),
                       "sequence_length": param_u64(last, "sequence_length")}),
            );
            if share > 50.0 {
                out.recs.push(format!(
                    "{component} takes {share:.0}% of CMR's own time at {} tokens: it is the component to optimize first.",
                    param_u64(last, "sequence_length").unwrap_or(0)
                ));
            }
        }
    }
}

/// The most accurate and the fastest retrieval strategy.
fn note_retrieval(out: &mut Findings, retrieval: &[&Measurement]) {
    if let (Some(acc), Some(fast)) = (
        best(retrieval, "retrieval_accuracy", false),
        best(retrieval, "retrieval_time", true),
    ) {
        let (a, f) = (
            param_str(acc, "strategy").unwrap_or("?"),
            param_str(fast, "strategy").unwrap_or("?"),
        );
        out.summary
            .insert("best_retrieval_strategy".into(), json!(a));
        out.summary
            .insert("fastest_retrieval_strategy".into(), json!(f));
        if a == f {
            out.recs.push(format!(
                "Retrieval: {a} is both the most accurate and the fastest strategy."
            ));
        } else {
            out.recs.push(format!(
                "Retrieval: {a} is the most accurate ({:.2} vs {:.2} for {f}), {f} the fastest ({} vs {}).",
                value(acc, "retrieval_accuracy"),
                value(fast, "retrieval_accuracy"),
                ms(value(fast, "retrieval_time")),
                ms(value(acc, "retrieval_time"))
            ));
        }
    }
}

/// The most faithful and the fastest reconstruction method.
fn note_reconstruction(out: &mut Findings, recon: &[&Measurement]) {
    if let (Some(fid), Some(fast)) = (
        best(recon, "reconstruction_fidelity", false),
        best(recon, "reconstruction_time", true),
    ) {
        let (a, f) = (
            param_str(fid, "method").unwrap_or("?"),
            param_str(fast, "method").unwrap_or("?"),
        );
        out.summary
            .insert("best_reconstruction_method".into(), json!(a));
        out.summary
            .insert("fastest_reconstruction_method".into(), json!(f));
        out.recs.push(format!(
            "Reconstruction: {a} is the most faithful (cosine {:.3}); {f} the fastest ({}).",
            value(fid, "reconstruction_fidelity"),
            ms(value(fast, "reconstruction_time"))
        ));
    }
}

/// The buffer over many passes: steady state, fill, evictions, hit rate (answers its detailed results).
fn note_buffer(out: &mut Findings, buffer: &[&Measurement]) -> Value {
    let mut buffer_detail =
        json!({"steps": buffer.iter().map(|m| measurement_json(m)).collect::<Vec<_>>()});
    if let Some(last) = buffer.last() {
        let fin = value(last, "utilization");
        let steady = buffer
            .iter()
            .find(|m| value(m, "utilization") >= 0.99 * fin)
            .and_then(|m| param_u64(m, "step"));
        let n = buffer.len();
        let tail = n / 2;
        let evict_rate = if n > tail + 1 {
            (value(buffer[n - 1], "evictions") - value(buffer[tail], "evictions"))
                / (n - 1 - tail) as f64
        } else {
            f64::NAN
        };
        buffer_detail["steady_state_step"] = json!(steady);
        buffer_detail["final_utilization"] = num(fin);
        buffer_detail["evictions_per_step_at_steady_state"] = num(evict_rate);
        buffer_detail["final_hit_rate"] = num(value(last, "hit_rate"));
        out.summary.insert(
            "buffer".into(),
            json!({"steady_state_step": steady, "final_utilization": num(fin),
                   "evictions_per_step": num(evict_rate), "hit_rate": num(value(last, "hit_rate"))}),
        );
        if fin < 0.5 {
            out.recs.push(format!(
                "The buffer is {:.0}% full after {n} passes: a smaller total would hold the same memories.",
                fin * 100.0
            ));
        } else if evict_rate > 0.0 {
            out.recs.push(format!(
                "At steady state the buffer evicts {evict_rate:.0} entries per pass: raise buffer.total or the scorer threshold if facts are being lost."
            ));
        }
    }
    buffer_detail
}

/// Accuracy on the planted-fact datasets, and why the weakest is weak.
fn note_datasets(out: &mut Findings, datasets: &[&Measurement]) {
    if !datasets.is_empty() {
        let accs: Vec<f64> = datasets
            .iter()
            .map(|m| value(m, "retrieval_accuracy"))
            .filter(|x| x.is_finite())
            .collect();
        if !accs.is_empty() {
            out.summary.insert(
                "mean_retrieval_accuracy".into(),
                num(accs.iter().sum::<f64>() / accs.len() as f64),
            );
        }
        if let Some(worst) = best(datasets, "retrieval_accuracy", true) {
            let name = param_str(worst, "dataset").unwrap_or("?");
            let (acc, chance, stored) = (
                value(worst, "retrieval_accuracy"),
                value(worst, "chance"),
                value(worst, "facts_stored"),
            );
            let why = if stored < 0.9 {
                format!(
                    " Only {:.0}% of its facts were still in memory when asked: lower scorer.threshold, raise scorer.max_per_step or the buffer.",
                    stored * 100.0
                )
            } else {
                " Its facts were in memory: the retriever missed them; try another strategy or a larger budget.".to_string()
            };
            out.recs.push(format!(
                "Retrieval accuracy is lowest on {name}: {acc:.2} (chance {chance:.2}).{why}"
            ));
        }
    }
}

/// Peak memory at the largest input, with and without CMR.
fn note_memory(out: &mut Findings, memory: &[&Measurement]) {
    if let Some(m) = memory.iter().max_by_key(|m| {
        param_u64(m, "sequence_length").unwrap_or(0) * param_u64(m, "batch_size").unwrap_or(1)
    }) {
        let extra = value(m, "peak_memory_cmr") - value(m, "peak_memory_baseline");
        out.summary.insert(
            "memory_at_largest".into(),
            json!({"sequence_length": param_u64(m, "sequence_length"), "batch_size": param_u64(m, "batch_size"),
                   "peak_memory_baseline": num(value(m, "peak_memory_baseline")),
                   "peak_memory_cmr": num(value(m, "peak_memory_cmr")),
                   "buffer_bytes": num(value(m, "buffer_bytes"))}),
        );
        if extra.is_finite() && extra > 0.0 {
            out.recs.push(format!(
                "At the largest input CMR needs {:.1} MB more at its peak; the buffer itself holds {:.1} MB.",
                extra / 1e6,
                value(m, "buffer_bytes") / 1e6
            ));
        }
    }
}
