//! MLflow's file store (`mlruns/<experiment>/<run>/`): each run's `meta.yaml` (name, times, status), `params/`
//! (one file a parameter: the run's config, numbers kept as numbers), `tags/`, and `metrics/<key>` files of
//! `<timestamp ms> <value> <step>` lines, appended as MLflow logs. Metric files are read as they grow; the
//! run's `meta.yaml` is read whole when it changes (its status: running, finished, failed, killed). The files
//! of a run are one run, keyed by its folder; the run's files come to the source as sidecars.

use super::{Context, Format, Output};
use super::{error, source};
use crate::FileCursor;
use labd_schemas::event::{MetricsLogged, StatusChanged};
use labd_schemas::float_map::FloatMap;
use labd_schemas::runlog::RunLine;
use labd_schemas::time::TimeValue;
use labd_schemas::{Event, EventKind, ExperimentId, RunStatus};
use serde_json::{Map, Value};
use std::path::{Path, PathBuf};

/// Which MLflow file a path is: `.../mlruns/<exp>/<run>/metrics/<key...>` or `.../mlruns/<exp>/<run>/meta.yaml`.
pub fn kind(path: &Path) -> Option<Format> {
    let parts: Vec<&str> = path.iter().filter_map(|p| p.to_str()).collect();
    let m = parts.iter().rposition(|p| *p == "mlruns")?;
    let rest = &parts[m + 1..];
    match rest {
        [_, run, "meta.yaml"] if !run.starts_with('.') => Some(Format::MlflowRun),
        [_, run, "metrics", key @ ..] if !key.is_empty() && !run.starts_with('.') => {
            Some(Format::MlflowMetric)
        }
        _ => None,
    }
}

/// The run folder of an MLflow file.
pub fn run_dir(path: &Path) -> Option<PathBuf> {
    let parts: Vec<&std::ffi::OsStr> = path.iter().collect();
    let m = parts.iter().rposition(|p| *p == "mlruns")?;
    (parts.len() > m + 3).then(|| parts[..m + 3].iter().collect())
}

/// The metric key of a metric file (`metrics/train/loss` → `train/loss`).
fn metric_key(path: &str) -> Option<String> {
    let parts: Vec<&str> = path.split('/').collect();
    let i = parts.iter().rposition(|p| *p == "metrics")?;
    Some(parts[i + 1..].join("/"))
}

/// A parameter's value: MLflow stores text; numbers and booleans become numbers and booleans again where the
/// number holds exactly what the text says (else the text is kept).
pub fn typed(text: &str) -> Value {
    let t = text.trim();
    if let Some(n) = labd_schemas::number::exact_json(t) {
        return n;
    }
    match t {
        "True" | "true" => Value::Bool(true),
        "False" | "false" => Value::Bool(false),
        _ => Value::String(t.to_string()),
    }
}

fn status_of(code: &Value) -> Option<RunStatus> {
    let n = code.as_i64().or_else(|| match code.as_str()? {
        "RUNNING" => Some(1),
        "FINISHED" => Some(3),
        "FAILED" => Some(4),
        "KILLED" => Some(5),
        _ => None,
    })?;
    match n {
        1 => Some(RunStatus::Running),
        3 => Some(RunStatus::Completed),
        4 => Some(RunStatus::Failed),
        5 => Some(RunStatus::Interrupted),
        _ => None,
    }
}

/// The run of the file being read, created from the sidecars (the run's meta, params and tags) if new.
fn ensure_run(ctx: &mut Context<'_>, out: &mut Output) -> Option<(String, ExperimentId)> {
    let dir = run_dir(Path::new(ctx.path))?;
    // Keyed by MLflow's run id: the same run found again (a copy of the store, or the same run in the SQLite
    // store) is the same run.
    let key = format!(
        "mlflow-run:{}",
        dir.file_name()
            .map(|n| n.to_string_lossy())
            .unwrap_or_default()
    );
    if let Some(exp) = ctx.runs.get(&key).current_exp.clone() {
        return Some((key, exp));
    }
    let side = |name: &str| {
        ctx.sidecars
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, t)| t.as_str())
    };
    let meta: Map<String, Value> = side("meta.yaml")
        .and_then(|y| serde_saphyr::from_str(y).ok())
        .unwrap_or_default();
    let experiment: Map<String, Value> = side("../meta.yaml")
        .and_then(|y| serde_saphyr::from_str(y).ok())
        .unwrap_or_default();
    let mut config = Map::new();
    let mut tags = Vec::new();
    let mut mlflow_tags = Map::new();
    for (name, text) in ctx.sidecars {
        if let Some(p) = name.strip_prefix("params/") {
            config.insert(p.to_string(), typed(text));
        } else if let Some(t) = name.strip_prefix("tags/") {
            if t.starts_with("mlflow.") {
                mlflow_tags.insert(t.to_string(), Value::String(text.clone()));
            } else {
                tags.push(format!("{t}={text}"));
            }
        }
    }
    let run_id = dir
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let name = meta
        .get("run_name")
        .and_then(Value::as_str)
        .filter(|n| !n.is_empty())
        .map(String::from)
        .or_else(|| {
            mlflow_tags
                .get("mlflow.runName")
                .and_then(Value::as_str)
                .map(String::from)
        })
        .unwrap_or_else(|| run_id.clone());
    let mut extra = Map::new();
    extra.insert("source_format".into(), "mlflow".into());
    extra.insert("mlflow_run_id".into(), Value::String(run_id));
    if let Some(e) = experiment.get("name") {
        extra.insert("mlflow_experiment".into(), e.clone());
    }
    if !mlflow_tags.is_empty() {
        extra.insert("mlflow_tags".into(), Value::Object(mlflow_tags));
    }
    let started = meta
        .get("start_time")
        .and_then(Value::as_f64)
        .map(|ms| TimeValue::Seconds(ms / 1000.0));
    let exp = super::begin_run(
        ctx,
        &key,
        RunLine {
            name: Some(name),
            config,
            tags,
            time: started,
            extra,
            ..Default::default()
        },
        source(ctx, 0),
        out,
    );
    Some((key, exp))
}

/// Reads the complete `<timestamp ms> <value> <step>` lines of a metric file.
pub fn read_metric(cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    let key = metric_key(ctx.path).unwrap_or_default();
    let (split, name) = super::lightning::split_name(&key);
    let mut run: Option<(String, ExperimentId)> = None;
    super::lines::read(
        cursor,
        data,
        ctx,
        |text| text.split_whitespace().count() >= 2,
        |cursor, text, ctx, out| {
            let fields: Vec<&str> = text.split_whitespace().collect();
            let parsed = match fields.as_slice() {
                [ts, v] => Some((ts.parse::<f64>().ok(), v, "0")),
                [ts, v, step] => Some((ts.parse::<f64>().ok(), v, *step)),
                _ => None,
            };
            let Some((Some(ts), value, step)) = parsed else {
                return error(
                    out,
                    ctx,
                    cursor.line,
                    format!("not `<timestamp ms> <value> <step>`: {text:?}"),
                );
            };
            let Some(value) = value
                .parse::<f64>()
                .ok()
                .or_else(|| labd_schemas::floats::parse_special(value))
            else {
                return error(
                    out,
                    ctx,
                    cursor.line,
                    format!("value {value:?} is not a number"),
                );
            };
            let Ok(step) = step.parse::<i64>() else {
                return error(
                    out,
                    ctx,
                    cursor.line,
                    format!("step {step:?} is not an integer"),
                );
            };
            let (run_key, exp) = match &run {
                Some(r) => r.clone(),
                None => match ensure_run(ctx, out) {
                    Some(r) => {
                        run = Some(r.clone());
                        r
                    }
                    None => {
                        return error(
                            out,
                            ctx,
                            cursor.line,
                            "not inside mlruns/<experiment>/<run>/metrics/".into(),
                        );
                    }
                },
            };
            // The run keeps how many lines of each metric it took: a copy of the file adds nothing.
            let state = ctx.runs.get(&run_key);
            let mark = format!("m:{key}");
            if state.counters.get(&mark).is_some_and(|n| *n >= cursor.line) {
                return;
            }
            state.counters.insert(mark, cursor.line);
            out.points += 1;
            out.events.push(Event::new(
                ctx.now,
                source(ctx, cursor.line),
                EventKind::MetricsLogged(MetricsLogged {
                    exp,
                    split: split.clone(),
                    step: Some(step),
                    epoch: None,
                    wall_time: Some(ts / 1000.0),
                    x: FloatMap::new(),
                    values: [(name.clone(), value)].into(),
                    extra: Map::new(),
                }),
            ));
        },
    )
}

/// Reads a run's whole `meta.yaml`: the run (created if new) and its status when it changed.
pub fn read_run(_cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    let mut out = Output {
        consumed: data.len() as u64,
        ..Default::default()
    };
    let meta: Map<String, Value> = match std::str::from_utf8(data)
        .ok()
        .map(serde_saphyr::from_str::<Map<String, Value>>)
    {
        Some(Ok(m)) => m,
        Some(Err(e)) if ctx.take_unterminated => {
            error(&mut out, ctx, 0, format!("meta.yaml: {e}"));
            return out;
        }
        _ => {
            out.consumed = 0;
            return out;
        }
    };
    let Some((key, exp)) = ensure_run(ctx, &mut out) else {
        return out;
    };
    let Some(status) = meta.get("status").and_then(status_of) else {
        return out;
    };
    let code = status as u64 + 1;
    let run = ctx.runs.get(&key);
    if run.counters.get("status") == Some(&code) {
        return out;
    }
    run.counters.insert("status".into(), code);
    if status == RunStatus::Running && !run.counters.contains_key("status_seen") {
        run.counters.insert("status_seen".into(), 1);
        return out;
    }
    run.counters.insert("status_seen".into(), 1);
    out.events.push(Event::new(
        ctx.now,
        source(ctx, 0),
        EventKind::StatusChanged(StatusChanged {
            exp,
            status,
            notes: Some("MLflow run status".into()),
            extra: meta
                .get("end_time")
                .and_then(Value::as_i64)
                .map(|ms| Map::from_iter([("ended".to_string(), Value::from(ms * 1000))]))
                .unwrap_or_default(),
        }),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn paths_of_the_file_store() {
        assert_eq!(
            kind(Path::new("/x/mlruns/1/abc/metrics/loss")),
            Some(Format::MlflowMetric)
        );
        assert_eq!(
            kind(Path::new("/x/mlruns/1/abc/metrics/train/loss")),
            Some(Format::MlflowMetric)
        );
        assert_eq!(
            kind(Path::new("/x/mlruns/1/abc/meta.yaml")),
            Some(Format::MlflowRun)
        );
        assert_eq!(
            kind(Path::new("/x/mlruns/1/meta.yaml")),
            None,
            "the experiment's meta is a sidecar"
        );
        assert_eq!(kind(Path::new("/x/mlruns/1/abc/params/lr")), None);
        assert_eq!(
            run_dir(Path::new("/x/mlruns/1/abc/metrics/train/loss")),
            Some(PathBuf::from("/x/mlruns/1/abc"))
        );
        assert_eq!(
            metric_key("/x/mlruns/1/abc/metrics/train/loss").as_deref(),
            Some("train/loss")
        );
        assert_eq!(typed("0.01"), Value::from(0.01));
        assert_eq!(typed("32"), Value::from(32));
        assert_eq!(typed("adam"), Value::from("adam"));
        assert_eq!(status_of(&Value::from(4)), Some(RunStatus::Failed));
    }
}
