//! The sweep system's files, kept in each local sweep's folder as its trials progress (its design document:
//! "results save incrementally: `tail -f logs/sweeps/<id>/sweep_results.json`"):
//! - `sweep_config.json`: the definition as labd runs it, and the number of trials;
//! - `exp0001_<trial>_config.json`, ...: every trial's config, in plan order;
//! - `sweep_results.json`: one entry per trial: parameters, status, exit code, duration, error, its run and the
//!   run's last metric values and summaries;
//! - `completed_experiments.json`: the completed trials;
//! - `plot_data.json` (with `plot: true`, labctl's `--plot`): per trial its parameters and numbers, ready to plot.
//!
//! They are projections of the sweeps view and the registry, rewritten in place (so `tail -f` sees them change)
//! at most once a second and only when the sweep changed. The log stays the truth: labd never reads them.

use super::record::Deps;
use crate::views::Views;
use crate::views::sweeps::{Sweep, TrialStatus};
use labd_schemas::time::micros_to_rfc3339;
use serde_json::{Map, Value, json};
use std::collections::HashMap;
use std::path::Path;
use std::time::Duration;

const EVERY: Duration = Duration::from_secs(1);

/// Rewrites the files of sweeps that changed, every second, until labd stops.
pub async fn run(deps: Deps) {
    let mut written: HashMap<String, i64> = HashMap::new();
    let mut stopping = deps.stopping.clone();
    loop {
        let due: Vec<(String, i64, String, HashMap<String, String>)> = {
            let v = deps.views.read();
            v.sweeps
                .sweeps
                .values()
                .filter(|s| s.is_local() && written.get(&s.id) != Some(&s.updated))
                // The trials' configs never change: written when the sweep is first seen.
                .map(|s| {
                    (
                        s.id.clone(),
                        s.updated,
                        s.dir.clone(),
                        files(&v, s, !written.contains_key(&s.id)),
                    )
                })
                .collect()
        };
        for (id, updated, dir, files) in due {
            let ok = tokio::task::spawn_blocking(move || write_all(Path::new(&dir), &files))
                .await
                .unwrap_or(false);
            if ok {
                written.insert(id, updated);
            }
        }
        tokio::select! {
            _ = tokio::time::sleep(EVERY) => {}
            _ = stopping.changed() => return,
        }
    }
}

/// Writes each file whose content differs; answers whether all could be written. A file is replaced whole
/// (written beside it, then renamed over it), so whoever reads it (`analyze_sweep.py`, a script, a test) never
/// finds it empty or half written.
fn write_all(dir: &Path, files: &HashMap<String, String>) -> bool {
    if std::fs::create_dir_all(dir).is_err() {
        return false;
    }
    let mut ok = true;
    for (name, text) in files {
        let path = dir.join(name);
        if std::fs::read(&path).is_ok_and(|old| old == text.as_bytes()) {
            continue;
        }
        let part = dir.join(format!(".{name}.part"));
        if let Err(e) = std::fs::write(&part, text).and_then(|()| std::fs::rename(&part, &path)) {
            tracing::warn!("sweeps: cannot write {}: {e}", path.display());
            let _ = std::fs::remove_file(&part);
            ok = false;
        }
    }
    ok
}

/// The files of one sweep, by name; with `trial_configs`, every trial's config too.
pub fn files(v: &Views, s: &Sweep, trial_configs: bool) -> HashMap<String, String> {
    let mut out = HashMap::new();
    let pretty = |v: &Value| serde_json::to_string_pretty(v).unwrap_or_default() + "\n";
    out.insert(
        "sweep_config.json".to_string(),
        pretty(&json!({
            "sweep_id": s.id, "name": s.spec.name, "spec": s.spec, "total_experiments": s.order.len(),
            "created": micros_to_rfc3339(s.created), "directory": s.dir,
        })),
    );
    let mut results = Vec::new();
    let mut completed = Vec::new();
    let mut points = Vec::new();
    for (i, t) in s.trials().enumerate() {
        let run = t
            .experiment_id
            .as_ref()
            .and_then(|id| v.registry.experiments.get(id));
        let metrics: Map<String, Value> = run
            .map(|r| {
                r.metrics
                    .iter()
                    .map(|(k, m)| (k.clone(), m.last.map_or(Value::Null, Value::from)))
                    .collect()
            })
            .unwrap_or_default();
        let summaries = run.map_or(Value::Null, |r| json!(r.summaries));
        let status = serde_json::to_value(t.status).unwrap_or(Value::Null);
        results.push(json!({
            "experiment_number": i + 1, "trial_id": t.id, "params": t.params, "status": status,
            "attempts": t.attempts, "exit_code": t.exit_code, "duration_seconds": t.secs,
            "error": t.status.is_failed().then(|| t.reason.clone()).flatten(),
            "experiment_id": t.experiment_id, "metrics": metrics, "summaries": summaries,
        }));
        if t.status == TrialStatus::Completed {
            completed.push(json!(t.id));
        }
        if s.spec.plot {
            points.push(
                json!({"trial_id": t.id, "params": t.params, "status": status, "metrics": metrics}),
            );
        }
        if trial_configs {
            out.insert(trial_config_name(i, &t.id), pretty(&t.config));
        }
    }
    out.insert("sweep_results.json".into(), pretty(&Value::Array(results)));
    out.insert(
        "completed_experiments.json".into(),
        pretty(&Value::Array(completed)),
    );
    if s.spec.plot {
        let keys: Vec<&String> = s.spec.sweep.keys().collect();
        out.insert(
            "plot_data.json".into(),
            pretty(&json!({"sweep_id": s.id, "parameters": keys, "points": points})),
        );
    }
    out
}

/// The name of trial `i`'s (0-based) config file in the sweep's folder.
pub fn trial_config_name(i: usize, trial: &str) -> String {
    format!("exp{:04}_{trial}_config.json", i + 1)
}
