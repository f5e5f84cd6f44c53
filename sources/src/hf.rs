//! The Hugging Face Trainer's `trainer_state.json`. The Trainer rewrites it whole at every save, in each
//! `checkpoint-N/` folder and at the end in its output folder, each copy holding the whole `log_history` so far.
//! All copies belong to one run, keyed by the output folder; what was read of it (the last step of train and of
//! eval entries, whether the final summary was seen) is kept with the run, so each entry is read once whichever
//! copy shows it first.
//!
//! Entries: `{"loss","learning_rate","grad_norm","epoch","step"}` → split `train`; `{"eval_*","epoch","step"}`
//! → split `eval` (prefix dropped); the last `{"train_runtime","train_loss",...}` → summary `train` and the run
//! completed. The run's config is the Trainer's settings in the file (`max_steps`, `num_train_epochs`,
//! `train_batch_size`, ...) and, under hyperparameter search, `trial_params`.

use super::source;
use super::{Context, Output, problem};
use crate::FileCursor;
use labd_schemas::event::{MetricsLogged, Severity, StatusChanged, SummaryRecorded};
use labd_schemas::float_map::FloatMap;
use labd_schemas::runlog::RunLine;
use labd_schemas::{Event, EventKind, RunStatus};
use serde_json::{Map, Value};
use std::collections::BTreeMap;
use std::path::Path;

/// Settings of the Trainer that make the run's config.
const SETTINGS: [&str; 8] = [
    "max_steps",
    "num_train_epochs",
    "train_batch_size",
    "logging_steps",
    "eval_steps",
    "save_steps",
    "trial_name",
    "is_hyper_param_search",
];

/// The run a `trainer_state.json` belongs to: its output folder (the parent of `checkpoint-N/`).
pub fn output_dir(path: &str) -> &Path {
    let dir = Path::new(path).parent().unwrap_or(Path::new("/"));
    let is_checkpoint = dir
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.strip_prefix("checkpoint-"))
        .is_some_and(|n| !n.is_empty() && n.bytes().all(|b| b.is_ascii_digit()));
    if is_checkpoint {
        dir.parent().unwrap_or(dir)
    } else {
        dir
    }
}

/// Reads a whole `trainer_state.json`. An incomplete file waits (the Trainer is writing it) unless the file is
/// finished or quiet, when it is reported.
pub fn read(cursor: &mut FileCursor, data: &[u8], ctx: &mut Context<'_>) -> Output {
    let mut out = Output::default();
    let state: Map<String, Value> = match super::python_json(data) {
        Ok(s) => s,
        Err(e) => {
            if ctx.take_unterminated {
                out.consumed = data.len() as u64;
                out.events.push(problem(
                    ctx,
                    None,
                    Severity::Error,
                    format!(
                        "not a whole trainer_state.json ({e}); it is read again when it changes"
                    ),
                ));
            }
            return out;
        }
    };
    out.consumed = data.len() as u64;
    let Some(Value::Array(history)) = state.get("log_history") else {
        out.events.push(problem(
            ctx,
            None,
            Severity::Error,
            "no `log_history` list: not a trainer_state.json".into(),
        ));
        return out;
    };
    let dir = output_dir(ctx.path);
    let key = format!("hf:{}", dir.display());
    let src = source(ctx, 0);
    let exp = {
        let run = ctx.runs.get(&key);
        run.current_exp.clone()
    };
    let exp = match exp {
        Some(e) => e,
        None => {
            let mut config = Map::new();
            for k in SETTINGS {
                if let Some(v) = state.get(k).filter(|v| !v.is_null()) {
                    config.insert(k.to_string(), v.clone());
                }
            }
            if let Some(Value::Object(trial)) = state.get("trial_params") {
                for (k, v) in trial {
                    config.insert(k.clone(), v.clone());
                }
            }
            let mut extra = Map::new();
            extra.insert("source_format".into(), "hf_trainer_state".into());
            extra.insert("output_dir".into(), dir.display().to_string().into());
            let name = dir
                .file_name()
                .and_then(|n| n.to_str())
                .unwrap_or(ctx.default_name)
                .to_string();
            super::begin_run(
                ctx,
                &key,
                RunLine {
                    name: Some(name),
                    config,
                    extra,
                    ..Default::default()
                },
                src.clone(),
                &mut out,
            )
        }
    };
    for entry in history {
        let Value::Object(e) = entry else { continue };
        let step = e.get("step").and_then(Value::as_i64);
        let epoch = e.get("epoch").and_then(Value::as_f64);
        if e.contains_key("train_runtime") {
            let run = ctx.runs.get(&key);
            if run.counters.contains_key("summary") {
                continue;
            }
            run.counters.insert("summary".into(), 1);
            let values: Map<String, Value> = e
                .iter()
                .filter(|(_, v)| v.is_number())
                .map(|(k, v)| (k.clone(), v.clone()))
                .collect();
            out.events.push(Event::new(
                ctx.now,
                src.clone(),
                EventKind::SummaryRecorded(SummaryRecorded {
                    exp: exp.clone(),
                    group: "train".into(),
                    values: Value::Object(values),
                    extra: Map::new(),
                }),
            ));
            out.events.push(Event::new(
                ctx.now,
                src.clone(),
                EventKind::StatusChanged(StatusChanged {
                    exp: exp.clone(),
                    status: RunStatus::Completed,
                    notes: Some("the Trainer logged its final summary".into()),
                    extra: Map::new(),
                }),
            ));
            continue;
        }
        let eval = e.keys().any(|k| k.starts_with("eval_"));
        let split = if eval { "eval" } else { "train" };
        // Entries are read once: the run keeps the last step read of each split.
        let mark = step.map_or(0, |s| s.max(-1) + 1) as u64;
        let run = ctx.runs.get(&key);
        let seen = run.counters.get(split).copied().unwrap_or(0);
        if step.is_some() && mark <= seen {
            continue;
        }
        if step.is_some() {
            run.counters.insert(split.into(), mark);
        }
        let values: BTreeMap<String, f64> = e
            .iter()
            .filter(|(k, _)| *k != "step" && *k != "epoch")
            .filter_map(|(k, v)| {
                let name = if eval {
                    k.strip_prefix("eval_").unwrap_or(k)
                } else {
                    k
                };
                super::number(v).map(|x| (name.to_string(), x))
            })
            .collect();
        if values.is_empty() {
            continue;
        }
        out.points += values.len() as u64;
        out.events.push(Event::new(
            ctx.now,
            src.clone(),
            EventKind::MetricsLogged(MetricsLogged {
                exp: exp.clone(),
                split: Some(split.into()),
                step,
                epoch,
                wall_time: None,
                x: FloatMap::new(),
                values: values.into(),
                extra: Map::new(),
            }),
        ));
    }
    let _ = cursor;
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Runs;

    fn state(entries: &str) -> String {
        format!(
            "{{\"epoch\": 1.0, \"global_step\": 20, \"max_steps\": 20, \"num_train_epochs\": 2, \"train_batch_size\": 8, \"trial_params\": {{\"learning_rate\": 5e-5}}, \"log_history\": [{entries}]}}"
        )
    }

    fn read_at(path: &str, text: &str, runs: &mut Runs, quiet: bool) -> Output {
        let format = crate::Format::HfTrainerState;
        crate::testing::read_as(format, path, text.as_bytes(), runs, &[], quiet).1
    }

    #[test]
    fn checkpoint_copies_are_one_run_and_each_entry_is_read_once() {
        let mut runs = Runs::default();
        let train = |s: i64| {
            format!(
                "{{\"loss\": {}, \"learning_rate\": 5e-05, \"grad_norm\": 1.5, \"epoch\": {}, \"step\": {s}}}",
                3.0 - s as f64 / 10.0,
                s as f64 / 10.0
            )
        };
        let eval = "{\"eval_loss\": 1.9, \"eval_accuracy\": 0.6, \"epoch\": 1.0, \"step\": 10}";
        let first = state(&[train(5), train(10), eval.to_string()].join(","));
        let out = read_at(
            "/out/bert/checkpoint-10/trainer_state.json",
            &first,
            &mut runs,
            false,
        );
        let tags: Vec<&str> = out.events.iter().map(|e| e.kind.tag()).collect();
        assert_eq!(
            tags,
            [
                "experiment_created",
                "metrics_logged",
                "metrics_logged",
                "metrics_logged"
            ]
        );
        let EventKind::ExperimentCreated(c) = &out.events[0].kind else {
            panic!()
        };
        assert_eq!(c.name, "bert");
        assert_eq!(c.config["max_steps"], 20);
        assert_eq!(
            c.config["learning_rate"], 5e-5,
            "trial params are the config"
        );
        let EventKind::MetricsLogged(m) = &out.events[3].kind else {
            panic!()
        };
        assert_eq!((m.split.as_deref(), m.step), (Some("eval"), Some(10)));
        assert_eq!(m.values["accuracy"], 0.6);
        assert_eq!(out.points, 3 + 3 + 2);

        // The next checkpoint repeats the history and adds to it; the final file adds the summary.
        let summary =
            "{\"train_runtime\": 12.5, \"train_loss\": 2.1, \"epoch\": 2.0, \"step\": 20}";
        let second = state(
            &[
                train(5),
                train(10),
                eval.to_string(),
                train(15),
                train(20),
                summary.to_string(),
            ]
            .join(","),
        );
        let out = read_at(
            "/out/bert/checkpoint-20/trainer_state.json",
            &second,
            &mut runs,
            false,
        );
        let tags: Vec<&str> = out.events.iter().map(|e| e.kind.tag()).collect();
        assert_eq!(
            tags,
            [
                "metrics_logged",
                "metrics_logged",
                "summary_recorded",
                "status_changed"
            ]
        );
        let out = read_at("/out/bert/trainer_state.json", &second, &mut runs, false);
        assert!(
            out.events.is_empty(),
            "the output folder's copy is the same run, nothing new"
        );
        assert_eq!(runs.map.len(), 1);
    }

    #[test]
    fn a_half_written_file_waits_then_is_reported() {
        let mut runs = Runs::default();
        let half = "{\"log_history\": [{\"loss\": 1.0, \"st";
        let out = read_at(
            "/out/x/checkpoint-5/trainer_state.json",
            half,
            &mut runs,
            false,
        );
        assert_eq!((out.consumed, out.events.len()), (0, 0), "waits");
        let out = read_at(
            "/out/x/checkpoint-5/trainer_state.json",
            half,
            &mut runs,
            true,
        );
        assert_eq!(out.consumed, half.len() as u64);
        assert!(
            matches!(&out.events[0].kind, EventKind::IngestError(e) if e.reason.contains("not a whole trainer_state.json"))
        );
        assert_eq!(
            output_dir("/a/checkpoint-12/trainer_state.json"),
            Path::new("/a")
        );
        assert_eq!(
            output_dir("/a/checkpoints/trainer_state.json"),
            Path::new("/a/checkpoints")
        );
    }
}
