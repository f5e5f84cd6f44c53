//! The experiment manager's folders (the predecessor in `shared/seeds/001_*`): an `experiment_registry.json`
//! listing experiments (id, name, description, status, config, times, notes, folder), and each experiment's
//! folder beside it: `config.json`, `metrics/training_history.json` (per-epoch lists, or one object per epoch),
//! `metrics/final_summary.json`, `metrics/bias_metrics.json`, `metrics/xai_metrics.json`, and `checkpoints/`.
//! The registry is read whole when it changes, with the experiments' files handed in as sidecars; each
//! experiment keeps its id and what was read of it (epochs, summaries, status, artifacts), so a change adds only
//! what is new.

use super::source;
use super::{Context, Output, problem};
use crate::FileCursor;
use labd_schemas::canonical::config_hash;
use labd_schemas::event::{
    ArtifactRecorded, ExperimentCreated, MetricsLogged, Severity, StatusChanged, SummaryRecorded,
};
use labd_schemas::float_map::FloatMap;
use labd_schemas::time::TimeValue;
use labd_schemas::{Event, EventKind, ExperimentId, RunStatus};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The files read from each experiment's folder, relative to it.
pub const FILES: [&str; 5] = [
    "config.json",
    "metrics/training_history.json",
    "metrics/final_summary.json",
    "metrics/bias_metrics.json",
    "metrics/xai_metrics.json",
];

fn micros(v: Option<&Value>) -> Option<i64> {
    let text = v?.as_str()?;
    // The manager wrote local times without a zone (`2024-12-16T14:30:52`): taken as UTC.
    let t = if text.len() == 19 {
        format!("{text}Z")
    } else {
        text.to_string()
    };
    TimeValue::Rfc3339(t).to_micros().ok()
}

/// Reads the whole registry.
pub fn read(_cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    let mut out = Output {
        consumed: data.len() as u64,
        ..Default::default()
    };
    let registry: Value = match super::python_json(data) {
        Ok(v) => v,
        Err(e) => {
            if ctx.take_unterminated {
                out.events.push(problem(
                    ctx,
                    None,
                    Severity::Error,
                    format!("not a whole experiment_registry.json ({e})"),
                ));
            } else {
                out.consumed = 0;
            }
            return out;
        }
    };
    let Some(list) = registry.get("experiments").and_then(Value::as_array) else {
        out.events.push(problem(
            ctx,
            None,
            Severity::Error,
            "no `experiments` list: not an experiment_registry.json".into(),
        ));
        return out;
    };
    for (i, entry) in list.iter().enumerate() {
        let Some(e) = entry.as_object() else {
            out.events.push(problem(
                ctx,
                None,
                Severity::Error,
                format!("entry {i} of `experiments` is not an object (it is {entry}); skipped"),
            ));
            continue;
        };
        let Some(id) = e.get("experiment_id").and_then(Value::as_str) else {
            out.events.push(problem(
                ctx,
                None,
                Severity::Error,
                "an entry without `experiment_id` was skipped".into(),
            ));
            continue;
        };
        experiment(id, e, ctx, &mut out);
    }
    out
}

fn side<'a>(ctx: &'a Context<'_>, folder: &str, file: &str) -> Option<&'a str> {
    let name = format!("{folder}/{file}");
    ctx.sidecars
        .iter()
        .find(|(n, _)| *n == name)
        .map(|(_, t)| t.as_str())
}

fn experiment(id: &str, e: &Map<String, Value>, ctx: &mut Context<'_>, out: &mut Output) {
    let folder = e
        .get("directory")
        .and_then(Value::as_str)
        .and_then(|d| std::path::Path::new(d).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or(id)
        .to_string();
    // Keyed by the experiment's own id: the same experiment imported again (a copy of the folder) is the
    // same run.
    let key = format!("expmgr:{id}");
    let src = source(ctx, 0);
    let exp = match ctx.runs.get(&key).current_exp.clone() {
        Some(x) => x,
        None => {
            let config = side(ctx, &folder, "config.json")
                .and_then(|t| super::python_json::<Value>(t.as_bytes()).ok())
                .filter(Value::is_object)
                .or_else(|| e.get("config").cloned())
                .unwrap_or_else(|| Value::Object(Map::new()));
            let hash = config_hash(&config);
            let started = micros(e.get("timestamp")).unwrap_or(ctx.now);
            // The predecessor's ids have labd's shape: kept, unless another run has it.
            let exp = (ctx.ids)(ExperimentId(id.to_string()));
            let name = e
                .get("custom_name")
                .and_then(Value::as_str)
                .unwrap_or(id)
                .to_string();
            let mut extra = Map::new();
            extra.insert("source_format".into(), "experiment_manager".into());
            extra.insert("original_id".into(), Value::String(id.to_string()));
            out.events.push(Event::new(
                ctx.now,
                src.clone(),
                EventKind::ExperimentCreated(Box::new(ExperimentCreated {
                    exp: exp.clone(),
                    name,
                    description: e
                        .get("description")
                        .and_then(Value::as_str)
                        .map(String::from),
                    tags: e
                        .get("tags")
                        .and_then(Value::as_array)
                        .map(|t| {
                            t.iter()
                                .filter_map(|x| x.as_str().map(String::from))
                                .collect()
                        })
                        .unwrap_or_default(),
                    config,
                    config_hash: hash,
                    host: ctx.host.to_string(),
                    started,
                    extra,
                    project: None,
                })),
            ));
            let run = ctx.runs.get(&key);
            run.current_exp = Some(exp.clone());
            run.runs += 1;
            exp
        }
    };
    history(&key, &exp, &folder, ctx, out);
    for (file, group) in [
        ("metrics/final_summary.json", "final"),
        ("metrics/bias_metrics.json", "bias"),
        ("metrics/xai_metrics.json", "xai"),
    ] {
        let Some(text) = side(ctx, &folder, file) else {
            continue;
        };
        let Ok(values) = super::python_json::<Value>(text.as_bytes()) else {
            out.events.push(problem(
                ctx,
                None,
                Severity::Error,
                format!("{folder}/{file} is not JSON; skipped"),
            ));
            continue;
        };
        // A summary is recorded again only when it changed.
        let mark = u64::from_str_radix(&config_hash(&values)[..12], 16).unwrap_or(1);
        let run = ctx.runs.get(&key);
        if run.counters.get(group) == Some(&mark) {
            continue;
        }
        run.counters.insert(group.into(), mark);
        out.events.push(Event::new(
            ctx.now,
            src.clone(),
            EventKind::SummaryRecorded(SummaryRecorded {
                exp: exp.clone(),
                group: group.into(),
                values,
                extra: Map::new(),
            }),
        ));
    }
    let prefix = format!("{folder}/checkpoints/");
    let checkpoints: Vec<String> = ctx
        .sidecars
        .iter()
        .filter_map(|(n, _)| n.strip_prefix(&prefix).map(String::from))
        .collect();
    for c in checkpoints {
        let run = ctx.runs.get(&key);
        let mark = format!("ckpt:{c}");
        if run.counters.contains_key(&mark) {
            continue;
        }
        run.counters.insert(mark, 1);
        out.events.push(Event::new(
            ctx.now,
            src.clone(),
            EventKind::ArtifactRecorded(ArtifactRecorded {
                exp: exp.clone(),
                role: "checkpoint".into(),
                path: format!("{folder}/checkpoints/{c}"),
                size: None,
                sha256: None,
                extra: Map::new(),
            }),
        ));
    }
    let status = match e.get("status").and_then(Value::as_str) {
        Some("completed") => Some(RunStatus::Completed),
        Some("failed") => Some(RunStatus::Failed),
        Some("interrupted" | "cancelled" | "killed") => Some(RunStatus::Interrupted),
        _ => None,
    };
    if let Some(status) = status {
        let code = status as u64 + 1;
        let run = ctx.runs.get(&key);
        if run.counters.get("status") != Some(&code) {
            run.counters.insert("status".into(), code);
            out.events.push(Event::new(
                ctx.now,
                src,
                EventKind::StatusChanged(StatusChanged {
                    exp,
                    status,
                    notes: e.get("notes").and_then(Value::as_str).map(String::from),
                    extra: ["completed_at", "failed_at", "ended_at"]
                        .iter()
                        .find_map(|k| micros(e.get(*k)))
                        .map(|us| Map::from_iter([("ended".to_string(), Value::from(us))]))
                        .unwrap_or_default(),
                }),
            ));
        }
    }
}

/// `training_history.json`: `{"train_loss": [...], "val_accuracy": [...]}` (position = epoch) or a list of
/// per-epoch objects; epochs after those already read become metrics.
fn history(key: &str, exp: &ExperimentId, folder: &str, ctx: &mut Context<'_>, out: &mut Output) {
    let Some(text) = side(ctx, folder, "metrics/training_history.json") else {
        return;
    };
    let Ok(h) = super::python_json::<Value>(text.as_bytes()) else {
        out.events.push(problem(
            ctx,
            None,
            Severity::Error,
            format!("{folder}/metrics/training_history.json is not JSON; skipped"),
        ));
        return;
    };
    let mut epochs: BTreeMap<usize, BTreeMap<String, f64>> = BTreeMap::new();
    match &h {
        Value::Object(lists) => {
            for (name, series) in lists {
                if let Value::Array(values) = series {
                    for (i, v) in values.iter().enumerate() {
                        if let Some(x) = super::number(v) {
                            epochs.entry(i).or_default().insert(name.clone(), x);
                        }
                    }
                }
            }
        }
        Value::Array(rows) => {
            for (i, row) in rows.iter().enumerate() {
                if let Value::Object(m) = row {
                    let at = m
                        .get("epoch")
                        .and_then(Value::as_u64)
                        .map_or(i, |e| e as usize);
                    for (name, v) in m {
                        if name != "epoch"
                            && let Some(x) = super::number(v)
                        {
                            epochs.entry(at).or_default().insert(name.clone(), x);
                        }
                    }
                }
            }
        }
        _ => {}
    }
    let taken = ctx
        .runs
        .get(key)
        .counters
        .get("epochs")
        .copied()
        .unwrap_or(0) as usize;
    let mut last = taken;
    for (epoch, values) in epochs.into_iter().filter(|(e, _)| *e + 1 > taken) {
        last = last.max(epoch + 1);
        let mut by_split: BTreeMap<Option<String>, BTreeMap<String, f64>> = BTreeMap::new();
        for (name, v) in values {
            let (split, metric) = super::lightning::split_name(&name);
            by_split.entry(split).or_default().insert(metric, v);
        }
        for (split, values) in by_split {
            out.points += values.len() as u64;
            out.events.push(Event::new(
                ctx.now,
                source(ctx, 0),
                EventKind::MetricsLogged(MetricsLogged {
                    exp: exp.clone(),
                    split,
                    step: None,
                    epoch: Some(epoch as f64),
                    wall_time: None,
                    x: FloatMap::new(),
                    values: values.into(),
                    extra: Map::new(),
                }),
            ));
        }
    }
    if last > taken {
        ctx.runs
            .get(key)
            .counters
            .insert("epochs".into(), last as u64);
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runs;

    fn fixture_sidecars(base: &std::path::Path) -> Vec<(String, String)> {
        let mut out = Vec::new();
        for d in std::fs::read_dir(base)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.is_dir())
        {
            let name = d.file_name().unwrap().to_string_lossy().into_owned();
            for f in FILES {
                if let Ok(t) = std::fs::read_to_string(d.join(f)) {
                    out.push((format!("{name}/{f}"), t));
                }
            }
        }
        out
    }

    #[test]
    fn registry_and_folders_become_runs() {
        let base = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../tests/fixtures/formats/expmgr/experiments");
        let data = std::fs::read(base.join("experiment_registry.json")).unwrap();
        let sidecars = fixture_sidecars(&base);
        let mut runs = Runs::default();
        let path = "/x/experiments/experiment_registry.json";
        let format = crate::Format::ExpManager;
        let read_once = |runs: &mut Runs| {
            crate::testing::read_as(format, path, &data, runs, &sidecars, false).1
        };
        let out = read_once(&mut runs);
        let tags: Vec<&str> = out.events.iter().map(|e| e.kind.tag()).collect();
        assert_eq!(out.points, 9 + 6, "{tags:?}");
        assert_eq!(tags.iter().filter(|t| **t == "summary_recorded").count(), 3);
        let again = read_once(&mut runs);
        assert!(again.events.is_empty(), "nothing twice");
    }
}
