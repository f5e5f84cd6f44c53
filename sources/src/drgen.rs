//! dr_gen JSONL logs (the predecessor described in `shared/seeds/004_*`), in both of their forms:
//! - the per-run `json_out.jsonl`: a first line `{"type":"dict_config","value":{...}}` (the run and its config),
//!   `{"type":"str","value":...}` messages, and one `{"title":"agg_<split>","data_name":"<split>",
//!   "agg_stats":{...}}` line per split per epoch (the epoch is the line's position within its split); a final
//!   `Training time H:MM:SS` message gives the training time and ends the run;
//! - the one-run-per-line form `{"run_id":...,"hyperparameters":{...},"metrics":{"train/loss":[...]},
//!   "metadata":{...}}`, each line a whole run (list position = epoch).
//!
//! Lines are framed by [`super::lines`]; a line of neither shape is reported with its number and skipped.

use super::runlog::create_experiment;
use super::{Context, Output};
use super::{error, source};
use crate::FileCursor;
use labd_schemas::event::{MessageLogged, MetricsLogged, StatusChanged, SummaryRecorded};
use labd_schemas::float_map::FloatMap;
use labd_schemas::runlog::RunLine;
use labd_schemas::{Event, EventKind, ExperimentId, RunStatus};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// Whether the first line of a `.jsonl` file is dr_gen's (either form).
pub fn sniff(first_line: &str) -> bool {
    match super::python_json::<Map<String, Value>>(first_line.trim().as_bytes()) {
        Ok(m) => is_config(&m) || is_run(&m),
        Err(_) => false,
    }
}

fn is_config(m: &Map<String, Value>) -> bool {
    m.get("type").and_then(Value::as_str) == Some("dict_config")
}

fn is_run(m: &Map<String, Value>) -> bool {
    m.contains_key("run_id") && (m.contains_key("hyperparameters") || m.contains_key("metrics"))
}

/// Reads complete lines of a dr_gen log.
pub fn read(cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    super::lines::read(
        cursor,
        data,
        ctx,
        |text| super::python_json::<Map<String, Value>>(text.as_bytes()).is_ok(),
        |cursor, text, ctx, out| match super::python_json::<Map<String, Value>>(text.as_bytes()) {
            Ok(m) => line(cursor, m, ctx, out),
            Err(e) => error(out, ctx, cursor.line, format!("not a JSON object: {e}")),
        },
    )
}

/// The run's name: the folder holding `json_out.jsonl` (the file's own stem says nothing).
fn run_name(ctx: &Context<'_>) -> String {
    let p = std::path::Path::new(ctx.path);
    match p.file_stem().and_then(|s| s.to_str()) {
        Some("json_out") => p
            .parent()
            .and_then(|d| d.file_name())
            .and_then(|n| n.to_str())
            .unwrap_or(ctx.default_name)
            .to_string(),
        _ => ctx.default_name.to_string(),
    }
}

fn line(cursor: &mut FileCursor, m: Map<String, Value>, ctx: &mut Context<'_>, out: &mut Output) {
    let src = source(ctx, cursor.line);
    if is_run(&m) {
        return whole_run(cursor, m, ctx, out);
    }
    if is_config(&m) {
        let config = match m.get("value") {
            Some(Value::Object(c)) => c.clone(),
            _ => {
                return error(
                    out,
                    ctx,
                    cursor.line,
                    "dict_config: `value` must be an object (the run's config)".into(),
                );
            }
        };
        let run = RunLine {
            name: Some(run_name(ctx)),
            config,
            extra: Map::from_iter([("source_format".to_string(), Value::from("drgen"))]),
            ..Default::default()
        };
        let (id, event) = create_experiment(run, ctx, src);
        out.events.push(event);
        cursor.current_exp = Some(id);
        cursor.runs += 1;
        cursor.counters.clear();
        return;
    }
    let exp = current(cursor, ctx, out);
    if m.get("type").and_then(Value::as_str) == Some("str") {
        let text = match m.get("value") {
            Some(Value::String(s)) => s.clone(),
            Some(other) => other.to_string(),
            None => String::new(),
        };
        let training = text
            .strip_prefix("Training time")
            .map(|t| t.trim_start_matches(':').trim())
            .and_then(hms);
        out.events.push(Event::new(
            ctx.now,
            src.clone(),
            EventKind::MessageLogged(MessageLogged {
                exp: exp.clone(),
                level: "info".into(),
                text,
                extra: Map::new(),
            }),
        ));
        if let Some(secs) = training {
            out.events.push(Event::new(
                ctx.now,
                src.clone(),
                EventKind::SummaryRecorded(SummaryRecorded {
                    exp: exp.clone(),
                    group: "timing".into(),
                    values: serde_json::json!({ "training_time_s": secs }),
                    extra: Map::new(),
                }),
            ));
            out.events.push(Event::new(
                ctx.now,
                src,
                EventKind::StatusChanged(StatusChanged {
                    exp,
                    status: RunStatus::Completed,
                    notes: Some("training time logged".into()),
                    extra: Map::new(),
                }),
            ));
        }
        return;
    }
    if let (Some(split), Some(Value::Object(stats))) = (
        m.get("data_name").and_then(Value::as_str),
        m.get("agg_stats"),
    ) {
        let epoch = cursor.counters.entry(format!("split:{split}")).or_insert(0);
        let at = *epoch;
        *epoch += 1;
        let (values, skipped) = numbers(stats);
        if !skipped.is_empty() {
            error(
                out,
                ctx,
                cursor.line,
                format!(
                    "agg_stats: {} not numbers, left out; the rest of the line was kept",
                    skipped.join(", ")
                ),
            );
        }
        out.points += values.len() as u64;
        out.events.push(Event::new(
            ctx.now,
            src,
            EventKind::MetricsLogged(MetricsLogged {
                exp,
                split: Some(split.to_string()),
                step: None,
                epoch: Some(at as f64),
                wall_time: None,
                x: FloatMap::new(),
                values: values.into(),
                extra: Map::new(),
            }),
        ));
        return;
    }
    error(
        out,
        ctx,
        cursor.line,
        "not a dr_gen line: expected {\"type\":\"dict_config\"|\"str\",\"value\":...}, {\"title\":\"agg_<split>\",\"data_name\":...,\"agg_stats\":{...}} or {\"run_id\":...}".into(),
    );
}

/// The current run, or an implicit one named after the folder for lines before any config.
fn current(cursor: &mut FileCursor, ctx: &mut Context<'_>, out: &mut Output) -> ExperimentId {
    if let Some(exp) = &cursor.current_exp {
        return exp.clone();
    }
    let run = RunLine {
        name: Some(run_name(ctx)),
        ..Default::default()
    };
    let (id, event) = create_experiment(run, ctx, source(ctx, cursor.line));
    out.events.push(event);
    cursor.current_exp = Some(id.clone());
    cursor.runs += 1;
    id
}

/// A whole run on one line.
fn whole_run(
    cursor: &mut FileCursor,
    m: Map<String, Value>,
    ctx: &mut Context<'_>,
    out: &mut Output,
) {
    let src = source(ctx, cursor.line);
    let name = match m.get("run_id") {
        Some(Value::String(s)) => s.clone(),
        Some(other) => other.to_string(),
        None => ctx.default_name.to_string(),
    };
    let config = match m.get("hyperparameters") {
        Some(Value::Object(h)) => h.clone(),
        Some(_) => {
            return error(
                out,
                ctx,
                cursor.line,
                "hyperparameters must be an object".into(),
            );
        }
        None => Map::new(),
    };
    let mut extra = Map::new();
    if let Some(meta) = m.get("metadata") {
        extra.insert("metadata".into(), meta.clone());
    }
    extra.insert("run_id".into(), Value::String(name.clone()));
    extra.insert("source_format".into(), Value::from("drgen"));
    let run = RunLine {
        name: Some(name),
        config,
        extra,
        ..Default::default()
    };
    let (exp, event) = create_experiment(run, ctx, src.clone());
    out.events.push(event);
    cursor.current_exp = Some(exp.clone());
    cursor.runs += 1;
    // `split/name` → list; one row per (split, position).
    let mut rows: BTreeMap<(Option<String>, usize), BTreeMap<String, f64>> = BTreeMap::new();
    let mut bad = Vec::new();
    if let Some(Value::Object(metrics)) = m.get("metrics") {
        for (key, series) in metrics {
            let (split, name) = match key.split_once('/') {
                Some((s, n)) => (Some(s.to_string()), n.to_string()),
                None => (None, key.clone()),
            };
            let Value::Array(values) = series else {
                bad.push(key.clone());
                continue;
            };
            for (i, v) in values.iter().enumerate() {
                match number(v) {
                    Some(x) => {
                        rows.entry((split.clone(), i))
                            .or_default()
                            .insert(name.clone(), x);
                    }
                    None if v.is_null() => {}
                    None => bad.push(format!("{key}[{i}]")),
                }
            }
        }
    }
    if !bad.is_empty() {
        error(
            out,
            ctx,
            cursor.line,
            format!(
                "metrics: {} not numbers (or not lists), left out; the rest of the run was kept",
                bad.join(", ")
            ),
        );
    }
    for ((split, i), values) in rows {
        out.points += values.len() as u64;
        out.events.push(Event::new(
            ctx.now,
            src.clone(),
            EventKind::MetricsLogged(MetricsLogged {
                exp: exp.clone(),
                split,
                step: Some(i as i64),
                epoch: Some(i as f64),
                wall_time: None,
                x: FloatMap::new(),
                values: values.into(),
                extra: Map::new(),
            }),
        ));
    }
    out.events.push(Event::new(
        ctx.now,
        src,
        EventKind::StatusChanged(StatusChanged {
            exp,
            status: RunStatus::Completed,
            notes: Some("imported whole".into()),
            extra: Map::new(),
        }),
    ));
}

use super::number;

/// The numeric entries of an `agg_stats` object, and the keys that were not numbers.
fn numbers(stats: &Map<String, Value>) -> (BTreeMap<String, f64>, Vec<String>) {
    let mut values = BTreeMap::new();
    let mut skipped = Vec::new();
    for (k, v) in stats {
        match number(v) {
            Some(x) => {
                values.insert(k.clone(), x);
            }
            None if v.is_null() => {}
            None => skipped.push(k.clone()),
        }
    }
    (values, skipped)
}

/// `H:MM:SS` (hours may exceed 24; seconds may have a fraction) → seconds.
fn hms(text: &str) -> Option<f64> {
    let parts: Vec<&str> = text.split(':').collect();
    if parts.len() != 3 {
        return None;
    }
    let h: f64 = parts[0].trim().parse().ok()?;
    let m: f64 = parts[1].parse().ok()?;
    let s: f64 = parts[2].trim().parse().ok()?;
    Some(h * 3600.0 + m * 60.0 + s)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(path: &str, text: &str) -> (FileCursor, Output) {
        let mut runs = crate::Runs::default();
        let format = crate::Format::DrGen;
        crate::testing::read_as(format, path, text.as_bytes(), &mut runs, &[], false)
    }

    fn kinds(out: &Output) -> Vec<&'static str> {
        out.events.iter().map(|e| e.kind.tag()).collect()
    }

    #[test]
    fn a_per_run_log_becomes_a_run_with_epochs_per_split() {
        let text = concat!(
            "{\"type\":\"dict_config\",\"value\":{\"optim\":{\"lr\":0.1},\"seed\":3}}\n",
            "{\"type\":\"str\",\"value\":\"starting\"}\n",
            "{\"title\":\"agg_train\",\"data_name\":\"train\",\"agg_stats\":{\"loss\":2.0,\"acc\":0.3}}\n",
            "{\"title\":\"agg_val\",\"data_name\":\"val\",\"agg_stats\":{\"loss\":2.1,\"acc\":0.25,\"note\":\"x\"}}\n",
            "{\"title\":\"agg_train\",\"data_name\":\"train\",\"agg_stats\":{\"loss\":1.0,\"acc\":0.6}}\n",
            "{\"type\":\"str\",\"value\":\"Training time 1:02:03\"}\n",
            "{\"something\":\"else\"}\n",
        );
        let (cursor, out) = read_all("/d/resnet_lr0.1/json_out.jsonl", text);
        assert_eq!(
            kinds(&out),
            [
                "experiment_created",
                "message_logged",
                "metrics_logged",
                "ingest_error",
                "metrics_logged",
                "metrics_logged",
                "message_logged",
                "summary_recorded",
                "status_changed",
                "ingest_error"
            ]
        );
        let EventKind::ExperimentCreated(c) = &out.events[0].kind else {
            panic!()
        };
        assert_eq!(c.name, "resnet_lr0.1", "named after its folder");
        assert_eq!(c.config["optim"]["lr"], 0.1);
        let EventKind::MetricsLogged(m) = &out.events[5].kind else {
            panic!()
        };
        assert_eq!(
            (m.split.as_deref(), m.epoch),
            (Some("train"), Some(1.0)),
            "second train line: epoch 1"
        );
        let EventKind::MetricsLogged(v) = &out.events[4].kind else {
            panic!()
        };
        assert_eq!((v.split.as_deref(), v.epoch), (Some("val"), Some(0.0)));
        assert!(!v.values.contains_key("note"));
        let EventKind::SummaryRecorded(t) = &out.events[7].kind else {
            panic!()
        };
        assert_eq!(t.values["training_time_s"], 3723.0);
        assert_eq!(cursor.counters["split:train"], 2, "kept for the next read");
        assert_eq!(out.points, 6);
        assert!(sniff("{\"type\":\"dict_config\",\"value\":{}}"));
        assert!(!sniff("{\"kind\":\"run\",\"name\":\"x\"}"));
    }

    #[test]
    fn the_one_run_per_line_form_imports_whole_runs() {
        let text = concat!(
            "{\"run_id\":\"r1\",\"hyperparameters\":{\"lr\":0.1},\"metrics\":{\"train/loss\":[3,2,1],\"val/acc\":[0.1,0.5,\"NaN\"]},\"metadata\":{\"gpu\":\"a100\"}}\n",
            "{\"run_id\":\"r2\",\"hyperparameters\":{\"lr\":0.01},\"metrics\":{\"train/loss\":[2,\"bad\"]}}\n",
        );
        let (_, out) = read_all("/d/runs.jsonl", text);
        let created: Vec<&str> = out
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::ExperimentCreated(c) => Some(c.name.as_str()),
                _ => None,
            })
            .collect();
        assert_eq!(created, ["r1", "r2"]);
        let rows: Vec<&MetricsLogged> = out
            .events
            .iter()
            .filter_map(|e| match &e.kind {
                EventKind::MetricsLogged(m) => Some(m),
                _ => None,
            })
            .collect();
        // r1: train at 0,1,2 and val at 0,1,2; r2: train at 0 (the bad value left out and reported).
        assert_eq!(rows.len(), 7);
        assert!(
            rows[3].values["acc"].is_nan()
                || rows
                    .iter()
                    .any(|r| r.values.get("acc").is_some_and(|a| a.is_nan()))
        );
        assert!(out.events.iter().any(
            |e| matches!(&e.kind, EventKind::IngestError(i) if i.reason.contains("train/loss[1]"))
        ));
        assert_eq!(
            out.events
                .iter()
                .filter(|e| e.kind.tag() == "status_changed")
                .count(),
            2
        );
        assert!(sniff(text.lines().next().unwrap()));
    }

    #[test]
    fn hours_minutes_seconds() {
        assert_eq!(hms("0:01:23"), Some(83.0));
        assert_eq!(hms("26:00:00.5"), Some(93600.5));
        assert_eq!(hms("soon"), None);
    }
}
