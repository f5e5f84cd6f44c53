//! Benchmark endpoints: start a CMR benchmark, list and show benchmarks with their progress, their report,
//! summary CSV and per-dataset results, compare two, cancel one.

use super::{Error, Result};
use crate::analytics::bench as analysis;
use crate::state::AppState;
use crate::views::benchmarks::Bench;
use axum::Json;
use axum::extract::rejection::{JsonRejection, QueryRejection};
use axum::extract::{Path, Query, State};
use axum::http::{StatusCode, header};
use axum::response::IntoResponse;
use labd_schemas::cmr::BenchConfig;
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    /// The configuration (labd_schemas::cmr::BenchConfig as JSON); absent: the defaults.
    #[serde(default)]
    pub config: Option<Value>,
    /// Overrides the configuration's name.
    #[serde(default)]
    pub name: Option<String>,
}

/// `POST /api/v1/benchmarks`: check the configuration and start the runner.
pub async fn submit(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Json<Submit>, JsonRejection>,
) -> Result<(StatusCode, Json<Value>)> {
    let Json(req) = body?;
    let text = req.config.unwrap_or_else(|| json!({})).to_string();
    let mut cfg = BenchConfig::from_json(&text).map_err(|e| Error::bad(format!("config: {e}")))?;
    if let Some(name) = req.name.filter(|n| !n.trim().is_empty()) {
        cfg.name = name;
    }
    // The runner reads text files on this host, from its own folder: a path must be absolute and there.
    for run in cfg.datasets.runs() {
        if matches!(run.text.as_str(), "corpus" | "synthetic") {
            continue;
        }
        let path = std::path::Path::new(&run.text);
        if !path.is_absolute() {
            return Err(Error::bad(format!(
                "config: datasets.text {:?} ({}): give an absolute path, `corpus` or `synthetic`",
                run.text, run.name
            )));
        }
        if !path.exists() {
            return Err(Error::bad(format!(
                "config: datasets.text {} ({}): no such file or folder on the labd host",
                run.text, run.name
            )));
        }
    }

    let started = s.benchmarks.start(cfg).await.map_err(|e| match e {
        crate::mailbox::BenchError::NoRunner(_) => {
            Error(StatusCode::NOT_IMPLEMENTED, e.to_string())
        }
        crate::mailbox::BenchError::Busy(_) => Error(StatusCode::CONFLICT, e.to_string()),
        other => Error::internal(other),
    })?;
    Ok((
        StatusCode::ACCEPTED,
        Json(json!({
            "bench": started.bench, "job": started.job, "planned": started.planned,
            "dir": started.dir.display().to_string(),
        })),
    ))
}

fn brief(b: &Bench) -> Value {
    json!({
        "id": b.id, "suite": b.suite, "name": b.name, "status": b.status, "message": b.message,
        "planned": b.planned, "measured": b.measured(), "started": b.started, "ended": b.ended,
        "runner": b.runner, "host": b.host, "device": b.build.get("device"),
        "last": b.measurements.iter().rev().find(|m| m.analysis != "utilization")
            .map(|m| json!({"analysis": m.analysis, "params": m.params})),
    })
}

/// `GET /api/v1/benchmarks`: every benchmark, newest first.
pub async fn list(State(s): State<Arc<AppState>>) -> Json<Value> {
    let v = s.views();
    let mut all: Vec<&Bench> = v.benchmarks.benches.values().collect();
    all.sort_by(|a, b| b.started.cmp(&a.started).then(a.id.cmp(&b.id)));
    Json(json!({"benchmarks": all.into_iter().map(brief).collect::<Vec<_>>()}))
}

fn find<'a>(v: &'a crate::views::Views, id: &str) -> Result<&'a Bench> {
    v.benchmarks
        .benches
        .get(id)
        .ok_or_else(|| Error::not_found(format!("no benchmark {id:?}; see GET /api/v1/benchmarks")))
}

/// `GET /api/v1/benchmarks/{id}`: the benchmark with its configuration, build and every measurement.
pub async fn show(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>> {
    let v = s.views();
    let b = find(&v, &id)?;
    let mut out = brief(b);
    out["config"] = b.config.clone();
    out["build"] = Value::Object(b.build.clone());
    out["sources"] = json!(b.sources);
    out["measurements"] = serde_json::to_value(&b.measurements).map_err(Error::internal)?;
    Ok(Json(out))
}

/// `GET /api/v1/benchmarks/{id}/report`: `performance_analysis_report.json`.
pub async fn report(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>> {
    let v = s.views();
    Ok(Json(crate::analytics::bench_report::report(find(&v, &id)?)))
}

/// `GET /api/v1/benchmarks/{id}/summary.csv`: `performance_summary.csv`.
pub async fn summary_csv(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let v = s.views();
    let csv = analysis::summary_csv(find(&v, &id)?);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv))
}

/// `GET /api/v1/benchmarks/{id}/raw.csv`: every repeat of every measurement.
pub async fn raw_csv(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<impl IntoResponse> {
    let v = s.views();
    let csv = analysis::raw_csv(find(&v, &id)?);
    Ok(([(header::CONTENT_TYPE, "text/csv; charset=utf-8")], csv))
}

/// `GET /api/v1/benchmarks/{id}/charts/{name}.svg`: one of its charts (`overhead`, `memory`, `scaling`,
/// `strategies`); 404 when it measured nothing the chart shows.
pub async fn chart(
    State(s): State<Arc<AppState>>,
    Path((id, name)): Path<(String, String)>,
) -> Result<impl IntoResponse> {
    let v = s.views();
    let b = find(&v, &id)?;
    let chart = name.strip_suffix(".svg").unwrap_or(&name);
    if !crate::analytics::bench_charts::CHARTS.contains(&chart) {
        return Err(Error::not_found(format!(
            "no chart {name:?}: the charts are {}",
            crate::analytics::bench_charts::CHARTS
                .map(|c| format!("{c}.svg"))
                .join(", ")
        )));
    }
    let svg = crate::analytics::bench_charts::chart(b, chart).ok_or_else(|| {
        Error::not_found(format!(
            "benchmark {id} measured nothing the {chart} chart shows"
        ))
    })?;
    Ok(([(header::CONTENT_TYPE, "image/svg+xml")], svg))
}

/// `GET /api/v1/benchmarks/{id}/datasets`: per-dataset results.
pub async fn datasets(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
) -> Result<Json<Value>> {
    let v = s.views();
    Ok(Json(json!(analysis::dataset_results(find(&v, &id)?))))
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CompareQuery {
    /// The other benchmark; default: the previous run of the same benchmark (same suite and name).
    #[serde(default)]
    pub with: Option<String>,
}

/// `GET /api/v1/benchmarks/{id}/compare?with=OTHER`: every figure both measured at the same point.
pub async fn compare(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: std::result::Result<Query<CompareQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let v = s.views();
    let b = find(&v, &id)?;
    let a = match &q.with {
        Some(other) => find(&v, other)?,
        None => analysis::previous(v.benchmarks.benches.values(), b).ok_or_else(|| {
            Error::not_found(format!(
                "benchmark {id:?} has no earlier run named {:?}; give one with ?with=ID",
                b.name
            ))
        })?,
    };
    let rows = analysis::compare(a, b);
    Ok(Json(json!({
        "a": brief(a), "b": brief(b), "rows": rows,
        "text": analysis::compare_text(a, b, &rows),
    })))
}

/// `POST /api/v1/benchmarks/{id}/cancel`.
pub async fn cancel(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>> {
    {
        let v = s.views();
        find(&v, &id)?;
    }
    if s.benchmarks.cancel(&id).await {
        Ok(Json(json!({"bench": id, "cancelling": true})))
    } else {
        Err(Error(
            StatusCode::CONFLICT,
            format!("benchmark {id:?} is not running in this labd"),
        ))
    }
}
