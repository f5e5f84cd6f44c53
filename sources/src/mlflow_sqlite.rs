//! MLflow's SQLite tracking store (`mlflow.db`, the default since MLflow 3.7), read through rusqlite: the file's
//! bytes are opened as an in-memory, read-only database (so the source still does no I/O), and its `runs`,
//! `params`, `tags`, `metrics` and `experiments` tables become runs, configs, tags, points and statuses. The
//! store is read whole when it changes; each run keeps, per metric, how many points it has taken (in the
//! table's time order), so points MLflow adds later are read once.

use super::source;
use super::{Context, Output, problem};
use crate::FileCursor;
use labd_schemas::event::{MetricsLogged, Severity, StatusChanged};
use labd_schemas::float_map::FloatMap;
use labd_schemas::runlog::RunLine;
use labd_schemas::time::TimeValue;
use labd_schemas::{Event, EventKind, RunStatus};
use rusqlite::Connection;
use serde_json::{Map, Value};
use std::collections::BTreeMap;

struct Run {
    uuid: String,
    name: String,
    experiment: String,
    status: String,
    start_time: Option<i64>,
    end_time: Option<i64>,
}

/// Reads the whole store.
pub fn read(_cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    let mut out = Output {
        consumed: data.len() as u64,
        ..Default::default()
    };
    match load(data, ctx, &mut out) {
        Ok(()) => {}
        Err(e) if ctx.take_unterminated => out.events.push(problem(
            ctx,
            None,
            Severity::Error,
            format!("not an MLflow SQLite store ({e}); read again when it changes"),
        )),
        // Being written: wait for the file to settle.
        Err(_) => {
            out.consumed = 0;
            out.events.clear();
            out.points = 0;
        }
    }
    out
}

fn load(data: &[u8], ctx: &mut Context<'_>, out: &mut Output) -> rusqlite::Result<()> {
    let mut db = Connection::open_in_memory()?;
    db.deserialize_read_exact("main", data, data.len(), true)?;
    let experiments: BTreeMap<String, String> = db
        .prepare("SELECT CAST(experiment_id AS TEXT), name FROM experiments")?
        .query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?
        .collect::<Result<_, _>>()?;
    let runs: Vec<Run> = db
        .prepare(
            "SELECT run_uuid, COALESCE(name, ''), CAST(experiment_id AS TEXT), COALESCE(status, ''), start_time, end_time \
             FROM runs WHERE COALESCE(lifecycle_stage, 'active') != 'deleted' ORDER BY start_time, run_uuid",
        )?
        .query_map([], |r| {
            Ok(Run {
                uuid: r.get(0)?,
                name: r.get(1)?,
                experiment: r.get(2)?,
                status: r.get(3)?,
                start_time: r.get(4)?,
                end_time: r.get(5)?,
            })
        })?
        .collect::<Result<_, _>>()?;
    let mut params_q =
        db.prepare("SELECT key, value FROM params WHERE run_uuid = ?1 ORDER BY key")?;
    let mut tags_q = db.prepare("SELECT key, value FROM tags WHERE run_uuid = ?1 ORDER BY key")?;
    let mut metrics_q = db.prepare(
        "SELECT key, value, timestamp, step, is_nan FROM metrics WHERE run_uuid = ?1 \
         ORDER BY key, timestamp, step, value",
    )?;
    for run in runs {
        // Keyed by MLflow's run id, as in the file store: one run wherever it is found.
        let key = format!("mlflow-run:{}", run.uuid);
        let exp = match ctx.runs.get(&key).current_exp.clone() {
            Some(e) => e,
            None => {
                let config: Map<String, Value> = params_q
                    .query_map([&run.uuid], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?
                    .into_iter()
                    .map(|(k, v)| (k, super::mlflow::typed(&v)))
                    .collect();
                let mut tags = Vec::new();
                let mut mlflow_tags = Map::new();
                for (k, v) in tags_q
                    .query_map([&run.uuid], |r| {
                        Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?))
                    })?
                    .collect::<Result<Vec<_>, _>>()?
                {
                    if k.starts_with("mlflow.") {
                        mlflow_tags.insert(k, Value::String(v));
                    } else {
                        tags.push(format!("{k}={v}"));
                    }
                }
                let mut extra = Map::new();
                extra.insert("source_format".into(), "mlflow_sqlite".into());
                extra.insert("mlflow_run_id".into(), Value::String(run.uuid.clone()));
                if let Some(name) = experiments.get(&run.experiment) {
                    extra.insert("mlflow_experiment".into(), Value::String(name.clone()));
                }
                if !mlflow_tags.is_empty() {
                    extra.insert("mlflow_tags".into(), Value::Object(mlflow_tags));
                }
                let name = if run.name.is_empty() {
                    run.uuid.clone()
                } else {
                    run.name.clone()
                };
                super::begin_run(
                    ctx,
                    &key,
                    RunLine {
                        name: Some(name),
                        config,
                        tags,
                        time: run
                            .start_time
                            .map(|ms| TimeValue::Seconds(ms as f64 / 1000.0)),
                        extra,
                        ..Default::default()
                    },
                    source(ctx, 0),
                    out,
                )
            }
        };
        // Points, per metric, after those already taken.
        let rows: Vec<(String, f64, i64, i64, bool)> = metrics_q
            .query_map([&run.uuid], |r| {
                Ok((
                    r.get::<_, String>(0)?,
                    r.get::<_, f64>(1)?,
                    r.get::<_, i64>(2)?,
                    r.get::<_, Option<i64>>(3)?.unwrap_or(0),
                    r.get::<_, Option<bool>>(4)?.unwrap_or(false),
                ))
            })?
            .collect::<Result<_, _>>()?;
        let mut seen: BTreeMap<String, u64> = BTreeMap::new();
        let state = ctx.runs.get(&key);
        let taken: BTreeMap<String, u64> = state.counters.clone();
        for (metric, value, ts, step, is_nan) in rows {
            let n = seen.entry(metric.clone()).or_insert(0);
            *n += 1;
            if *n <= taken.get(&format!("m:{metric}")).copied().unwrap_or(0) {
                continue;
            }
            let (split, name) = super::lightning::split_name(&metric);
            out.points += 1;
            out.events.push(Event::new(
                ctx.now,
                source(ctx, 0),
                EventKind::MetricsLogged(MetricsLogged {
                    exp: exp.clone(),
                    split,
                    step: Some(step),
                    epoch: None,
                    wall_time: Some(ts as f64 / 1000.0),
                    x: FloatMap::new(),
                    values: [(name, if is_nan { f64::NAN } else { value })].into(),
                    extra: Map::new(),
                }),
            ));
        }
        let state = ctx.runs.get(&key);
        for (metric, n) in seen {
            state.counters.insert(format!("m:{metric}"), n);
        }
        let status = match run.status.as_str() {
            "FINISHED" => Some(RunStatus::Completed),
            "FAILED" => Some(RunStatus::Failed),
            "KILLED" => Some(RunStatus::Interrupted),
            _ => None,
        };
        if let Some(status) = status {
            let code = status as u64 + 1;
            if state.counters.get("status") != Some(&code) {
                state.counters.insert("status".into(), code);
                out.events.push(Event::new(
                    ctx.now,
                    source(ctx, 0),
                    EventKind::StatusChanged(StatusChanged {
                        exp: exp.clone(),
                        status,
                        notes: Some("MLflow run status".into()),
                        extra: run
                            .end_time
                            .map(|ms| {
                                Map::from_iter([("ended".to_string(), Value::from(ms * 1000))])
                            })
                            .unwrap_or_default(),
                    }),
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runs;

    fn read_db(data: &[u8], runs: &mut Runs, quiet: bool) -> Output {
        let format = crate::Format::MlflowSqlite;
        crate::testing::read_as(format, "/x/mlflow.db", data, runs, &[], quiet).1
    }

    #[test]
    fn mlflows_own_sqlite_store() {
        let data = std::fs::read(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
                .join("../tests/fixtures/formats/mlflow/sqlite/mlflow.db"),
        )
        .unwrap();
        let mut runs = Runs::default();
        let out = read_db(&data, &mut runs, false);
        let created: Vec<(String, Value)> = out
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ExperimentCreated(c) => Some((
                    c.name.clone(),
                    Value::Object(c.config.as_object().cloned().unwrap_or_default()),
                )),
                _ => None,
            })
            .collect();
        assert_eq!(created.len(), 2, "{created:?}");
        let finished = created.iter().find(|(n, _)| n == "run-finished").unwrap();
        assert_eq!(finished.1["lr"], 0.01);
        assert_eq!(out.points, 40, "the store's 40 metric rows");
        let statuses: Vec<RunStatus> = out
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::StatusChanged(s) => Some(s.status),
                _ => None,
            })
            .collect();
        assert!(statuses.contains(&RunStatus::Completed) && statuses.contains(&RunStatus::Failed));
        // Read again: nothing new.
        let again = read_db(&data, &mut runs, false);
        assert!(again.events.is_empty(), "{:?}", again.events.len());
        // A half-copied file waits, then is reported.
        let half = &data[..data.len() / 3];
        let mut fresh = Runs::default();
        assert_eq!(read_db(half, &mut fresh, false).consumed, 0);
    }
}
