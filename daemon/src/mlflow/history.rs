//! `/metrics/get-history` (every point of a run's metric, paged) and `/metrics/get-history-bulk-interval` (the
//! sampled curves of up to 100 runs that MLflow's UI draws), read from the curve store's chunks.

use super::request::{Fields, MlError, MlResult};
use super::search;
use super::wire;
use crate::state::AppState;
use crate::views::Views;
use crate::views::chunk::{Columns, NO_STEP};
use crate::views::mlflow::{Latest, millis};
use axum::http::StatusCode;
use labd_schemas::ExperimentId;
use serde_json::{Value, json};
use std::sync::Arc;

/// At most this many runs in one bulk call, and points a run (MLflow's limits).
const MAX_RUNS_BULK: usize = 100;
const MAX_RESULTS_PER_RUN: i64 = 2500;

fn warming() -> MlError {
    MlError::new(
        StatusCode::SERVICE_UNAVAILABLE,
        "TEMPORARILY_UNAVAILABLE",
        "labd is still loading its curve store; try again in a moment".into(),
    )
}

/// Points `range` of run `id`'s metric `key`, copied out of the store (`None`: no such metric).
fn points(
    v: &Views,
    id: &str,
    key: &str,
    range: std::ops::Range<usize>,
) -> MlResult<Option<(usize, Columns)>> {
    if !v.curves_ready() {
        return Err(warming());
    }
    Ok(v.curves
        .series(&ExperimentId(id.to_string()), key)
        .map(|s| (s.len(), s.range(range))))
}

fn latest(c: &Columns, i: usize) -> Latest {
    Latest {
        step: match c.step[i] {
            NO_STEP => 0,
            s => s,
        },
        timestamp: c.wall.as_ref().map_or(0, |w| {
            let t = w[i];
            if t.is_nan() { 0 } else { millis(t) }
        }),
        value: c.value[i],
    }
}

/// `GET metrics/get-history`: `run_id`, `metric_key`, optional `max_results` and `page_token`.
pub async fn get(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.run_id()?;
    let key = f.str("metric_key")?;
    let max = match f.opt_i64("max_results")? {
        None => usize::MAX,
        Some(n) if n > 0 => n as usize,
        Some(n) => {
            return Err(MlError::invalid(format!(
                "Invalid value {n} for parameter 'max_results' supplied: it must be positive"
            )));
        }
    };
    let start = match f.opt_str("page_token")?.filter(|t| !t.is_empty()) {
        None => 0,
        Some(t) => t
            .parse::<usize>()
            .map_err(|_| MlError::invalid(format!("Invalid page token '{t}'")))?,
    };
    super::runs::find(&s, &id)?;
    let got = points(&s.views(), &id, &key, start..start.saturating_add(max))?;
    let Some((len, c)) = got else {
        return Ok(json!({}));
    };
    let metrics: Vec<Value> = (0..c.len())
        .map(|i| wire::metric(&key, &latest(&c, i), None))
        .collect();
    let mut out = json!({ "metrics": metrics });
    let end = start.saturating_add(max);
    if end < len {
        out["next_page_token"] = json!(end.to_string());
    }
    Ok(out)
}

/// Up to `max` of a run's points as MLflow's SQL store samples them (`NTILE`): the points in order of step,
/// time and value, cut into `max` buckets of nearly equal size (the first ones one larger), the first point of
/// each bucket; the last point is always kept, in place of the last sampled one.
fn sample(mut points: Vec<Latest>, max: usize) -> Vec<Latest> {
    points.sort_by(|a, b| {
        (a.step, a.timestamp)
            .cmp(&(b.step, b.timestamp))
            .then(a.value.total_cmp(&b.value))
    });
    let n = points.len();
    if n <= max || max == 0 {
        return points;
    }
    let (q, r) = (n / max, n % max);
    let mut out: Vec<Latest> = (0..max).map(|b| points[b * q + b.min(r)]).collect();
    if let (Some(slot), Some(last)) = (out.last_mut(), points.last()) {
        *slot = *last;
    }
    out
}

/// `GET metrics/get-history-bulk-interval`: `run_ids` (≤ 100), `metric_key`, optional `start_step` and
/// `end_step` (both or neither), `max_results` (≤ 2500 steps).
pub async fn bulk_interval(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let runs = f.strings("run_ids")?;
    if runs.is_empty() {
        return Err(MlError::missing("run_ids"));
    }
    if runs.len() > MAX_RUNS_BULK {
        return Err(MlError::invalid(format!(
            "GetMetricHistoryBulkInterval request must specify at most {MAX_RUNS_BULK} run_ids. Received {} run_ids.",
            runs.len()
        )));
    }
    let key = f.str("metric_key")?;
    let (from, to) = match (f.opt_i64("start_step")?, f.opt_i64("end_step")?) {
        (None, None) => (None, None),
        (Some(a), Some(b)) if a <= b => (Some(a), Some(b)),
        (Some(a), Some(b)) => {
            return Err(MlError::invalid(format!(
                "end_step must be greater than start_step. Found start_step={a} and end_step={b}."
            )));
        }
        _ => {
            return Err(MlError::invalid(
                "If either start step or end step are specified, both must be specified.",
            ));
        }
    };
    let max = search::max_results(f.opt_i64("max_results")?, MAX_RESULTS_PER_RUN)?;
    if max > MAX_RESULTS_PER_RUN as usize {
        return Err(MlError::invalid(format!(
            "max_results must be at most {MAX_RESULTS_PER_RUN}"
        )));
    }
    let mut curves: Vec<(String, Vec<Latest>)> = Vec::new();
    {
        let v = s.views();
        for id in &runs {
            if wire::run_doc(&v, id).is_none() {
                return Err(MlError::not_found(format!("Run with id={id} not found")));
            }
            if let Some((_, c)) = points(&v, id, &key, 0..usize::MAX)? {
                curves.push((id.clone(), (0..c.len()).map(|i| latest(&c, i)).collect()));
            }
        }
    }
    let mut metrics = Vec::new();
    for (id, mut p) in curves {
        if let (Some(a), Some(b)) = (from, to) {
            p.retain(|l| (a..=b).contains(&l.step));
        }
        metrics.extend(
            sample(p, max)
                .iter()
                .map(|l| wire::metric(&key, l, Some(&id))),
        );
    }
    Ok(json!({ "metrics": metrics }))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sampling_is_mlflows_ntile_with_the_last_point_kept() {
        let points = |n: i64| -> Vec<Latest> {
            (0..n)
                .rev()
                .map(|step| Latest {
                    step,
                    timestamp: 5,
                    value: step as f64,
                })
                .collect()
        };
        let steps = |p: Vec<Latest>| p.iter().map(|l| l.step).collect::<Vec<_>>();
        // What MLflow 3.17's server answers for 1000 steps and max_results=10.
        assert_eq!(
            steps(sample(points(1000), 10)),
            [0, 100, 200, 300, 400, 500, 600, 700, 800, 999]
        );
        // Buckets of 3, 3, 2, 2 for ten points in four.
        assert_eq!(steps(sample(points(10), 4)), [0, 3, 6, 9]);
        assert_eq!(steps(sample(points(3), 10)), [0, 1, 2]);
    }
}
