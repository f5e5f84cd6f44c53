//! `/runs/*` (and the logged-model calls labd answers): MLflow runs, which are labd runs under their labd ids.
//! Parameters are immutable (a different value is MLflow's error), tags are upserts, metrics become
//! `metrics_logged` rows (step, wall time from MLflow's milliseconds, NaN and infinities kept).

use super::request::{Fields, MlError, MlResult, Obj, double, int64};
use super::wire::{self, RunDoc};
use super::{append, event, search, validate};
use crate::state::AppState;
use crate::views::mlflow::identity;
use axum::http::StatusCode;
use labd_schemas::event::{ExperimentCreated, MetricsLogged, RunChanged, StatusChanged};
use labd_schemas::float_map::FloatMap;
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, ExperimentId, RunStatus};
use serde_json::{Map, Value, json};
use std::collections::{BTreeMap, BTreeSet, HashSet};
use std::sync::Arc;

/// The run `id` as MLflow describes it, or MLflow's 404.
pub(super) fn find(s: &AppState, id: &str) -> MlResult<RunDoc> {
    wire::run_doc(&s.views(), id)
        .ok_or_else(|| MlError::not_found(format!("Run with id={id} not found")))
}

/// The run `id`, which must be active (not deleted) and recorded here (not another host's, on a hub).
fn writable(s: &AppState, id: &str) -> MlResult<RunDoc> {
    let doc = find(s, id)?;
    if doc.deleted {
        return Err(MlError::invalid(format!(
            "The run {id} must be in the 'active' state. Current state is deleted."
        )));
    }
    let foreign = s.views().registry.get(id).is_some_and(|r| r.foreign);
    if foreign {
        return Err(MlError::new(
            StatusCode::CONFLICT,
            "RESOURCE_CONFLICT",
            format!("run {id} was recorded on another host: log to that host's labd"),
        ));
    }
    Ok(doc)
}

const ADJECTIVES: [&str; 16] = [
    "amber", "brave", "calm", "deft", "eager", "fond", "gentle", "honest", "keen", "lucid",
    "merry", "noble", "quiet", "rapid", "steady", "vivid",
];
const NOUNS: [&str; 16] = [
    "otter", "heron", "lynx", "finch", "koala", "moth", "panda", "quail", "raven", "seal", "tern",
    "vole", "wren", "yak", "ibis", "gecko",
];

/// A name for a run created without one, as MLflow gives (`<adjective>-<animal>-<number>`).
fn generated_name(seed: i64) -> String {
    use sha2::{Digest, Sha256};
    let d = Sha256::digest(seed.to_le_bytes());
    format!(
        "{}-{}-{}",
        ADJECTIVES[(d[0] % 16) as usize],
        NOUNS[(d[1] % 16) as usize],
        u16::from_le_bytes([d[2], d[3]]) % 1000
    )
}

/// A run tag's key follows MLflow's rules. Its value is kept whole at any length: MLflow cuts one over 8,000
/// characters (and a parameter over 6,000) to that length and answers 200, so a client is not refused here
/// either, and labd, which keeps what it is given, keeps all of it.
fn tag_ok(key: &str, at: &str) -> MlResult<()> {
    validate::key(key, || format!("{at}.key"))
}

/// `POST runs/create`: `experiment_id` (default `"0"`), `user_id`, `run_name`, `start_time`, `tags`.
pub async fn create(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let project = f
        .opt_str("experiment_id")?
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| crate::views::projects::DEFAULT_ID.into());
    let user = f.opt_str("user_id")?.unwrap_or_default();
    let now = now_micros();
    let start = f.opt_i64("start_time")?.unwrap_or(now / 1000);
    if start < 0 {
        return Err(MlError::invalid("start_time must be a nonnegative long"));
    }
    let mut tags = BTreeMap::new();
    for (i, (k, v)) in f.pairs("tags")?.into_iter().enumerate() {
        tag_ok(&k, &format!("tags[{i}]"))?;
        tags.insert(k, v);
    }
    let p = s
        .views()
        .projects
        .get(&project)
        .ok_or_else(|| MlError::not_found(format!("No Experiment with id={project} exists")))?;
    if p.deleted {
        return Err(MlError::invalid(format!(
            "The experiment {project} must be in the 'active' state. Current state is deleted."
        )));
    }
    let name = f
        .opt_str("run_name")?
        .filter(|n| !n.is_empty())
        .or_else(|| tags.get("mlflow.runName").cloned())
        .unwrap_or_else(|| generated_name(now));
    tags.insert("mlflow.runName".into(), name.clone());
    let config = Value::Object(Map::new());
    let hash = labd_schemas::canonical::config_hash(&config);
    // The id is labd's (time, name, config hash), with MLflow's run id characters only.
    let id = s.ids.unique(ExperimentId::new_on(
        s.config.ingest.id_clock,
        start.saturating_mul(1000),
        &name.replace('.', "_"),
        &hash,
    ));
    let (own, plain): (BTreeMap<_, _>, BTreeMap<_, _>) = tags
        .into_iter()
        .partition(|(k, _)| k.starts_with("mlflow."));
    let mut extra = Map::new();
    extra.insert("source_format".into(), json!("mlflow-api"));
    extra.insert("mlflow_user".into(), json!(user));
    extra.insert(
        "mlflow_tags".into(),
        Value::Object(
            own.into_iter()
                .map(|(k, v)| (k, Value::String(v)))
                .collect(),
        ),
    );
    let created = ExperimentCreated {
        exp: id.clone(),
        name,
        description: None,
        tags: plain.into_iter().map(|(k, v)| format!("{k}={v}")).collect(),
        config,
        config_hash: hash,
        host: s.config.host.clone(),
        started: start.saturating_mul(1000),
        extra,
        project: Some(project),
    };
    append(
        &s,
        vec![event(&f, EventKind::ExperimentCreated(Box::new(created)))],
    )
    .await?;
    Ok(json!({ "run": find(&s, id.as_str())?.render() }))
}

/// `GET runs/get?run_id=`.
pub async fn get(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    Ok(json!({ "run": find(&s, &f.run_id()?)?.render() }))
}

fn status_of(text: &str) -> MlResult<(RunStatus, bool)> {
    Ok(match text {
        "RUNNING" | "1" => (RunStatus::Running, false),
        "SCHEDULED" | "2" => (RunStatus::Running, true),
        "FINISHED" | "3" => (RunStatus::Completed, false),
        "FAILED" | "4" => (RunStatus::Failed, false),
        "KILLED" | "5" => (RunStatus::Interrupted, false),
        other => {
            return Err(MlError::invalid(format!(
                "Invalid value '{other}' for parameter 'status': expected RUNNING, SCHEDULED, FINISHED, FAILED or KILLED"
            )));
        }
    })
}

/// `POST runs/update`: `status`, `end_time`, `run_name`; answers the run's info.
pub async fn update(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.run_id()?;
    let doc = writable(&s, &id)?;
    let mut events = Vec::new();
    let end = f.opt_i64("end_time")?;
    if let Some(text) = f.opt_str("status")? {
        let (status, scheduled) = status_of(&text)?;
        let name = wire::status_name(status, scheduled);
        let end = status
            .is_final()
            .then(|| end.unwrap_or(now_micros() / 1000));
        if name != doc.status || (end.is_some() && end != doc.end) {
            let mut extra = Map::new();
            if let Some(end) = end {
                extra.insert("ended".into(), json!(end.saturating_mul(1000)));
            }
            if scheduled {
                extra.insert("mlflow_status".into(), json!("SCHEDULED"));
            }
            events.push(event(
                &f,
                EventKind::StatusChanged(StatusChanged {
                    exp: ExperimentId(id.clone()),
                    status,
                    notes: None,
                    extra,
                }),
            ));
        }
    }
    if let Some(name) = f
        .opt_str("run_name")?
        .filter(|n| !n.is_empty() && *n != doc.name)
    {
        events.push(event(
            &f,
            EventKind::RunChanged(RunChanged {
                exp: ExperimentId(id.clone()),
                name: Some(name.clone()),
                set_tags: [("mlflow.runName".to_string(), name)].into(),
                ..RunChanged::default()
            }),
        ));
    }
    append(&s, events).await?;
    Ok(json!({ "run_info": find(&s, &id)?.info() }))
}

/// Records one change of a run; answers MLflow's empty reply.
async fn changed(s: &AppState, f: &Fields, c: RunChanged) -> MlResult<Value> {
    append(s, vec![event(f, EventKind::RunChanged(c))]).await?;
    Ok(json!({}))
}

async fn lifecycle(s: Arc<AppState>, f: Fields, deleted: bool) -> MlResult<Value> {
    let id = f.run_id()?;
    find(&s, &id)?;
    changed(
        &s,
        &f,
        RunChanged {
            exp: ExperimentId(id),
            deleted: Some(deleted),
            ..RunChanged::default()
        },
    )
    .await
}

/// `POST runs/delete`: soft delete (hidden from searches of active runs; kept).
pub async fn delete(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    lifecycle(s, f, true).await
}

/// `POST runs/restore`.
pub async fn restore(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    lifecycle(s, f, false).await
}

/// `POST runs/search`: `experiment_ids`, `filter`, `run_view_type`, `max_results`, `order_by`, `page_token`.
pub async fn search(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let projects: BTreeSet<String> = f.strings("experiment_ids")?.into_iter().collect();
    let filter = search::parse_filter(&f.opt_str("filter")?.unwrap_or_default(), search::Of::Runs)?;
    let order = search::parse_order(&f.strings("order_by")?, search::Of::Runs)?;
    let view = search::view_type(f.opt_str("run_view_type")?.as_deref())?;
    let max = search::max_results(f.opt_i64("max_results")?, 1000)?;
    let mut found: Vec<RunDoc> = {
        let v = s.views();
        v.mlflow
            .runs
            .iter()
            .filter(|(_, r)| projects.contains(&r.project) && view.shows(r.deleted))
            .filter_map(|(id, _)| wire::run_doc(&v, id.as_str()))
            .collect()
    };
    found.retain(|r| filter.iter().all(|c| c.holds_for_run(r)));
    search::sort_runs(&mut found, &order);
    let (page, next) = search::page(&found, max, f.opt_str("page_token")?.as_deref())?;
    let mut out = json!({ "runs": page.iter().map(RunDoc::render).collect::<Vec<_>>() });
    if let Some(t) = next {
        out["next_page_token"] = json!(t);
    }
    Ok(out)
}

/// A metric as a call gives it.
struct Metric {
    key: String,
    value: f64,
    timestamp: i64,
    step: i64,
    /// `model_id`, `dataset_name`, `dataset_digest` when given.
    extra: Map<String, Value>,
}

/// A metric of a call; `at` is its place in the call (`Some(i)`: `metrics[i]`), named only in errors.
fn metric(f: Obj, at: Option<usize>) -> MlResult<Metric> {
    let name = |field: &str| match at {
        Some(i) => format!("metrics[{i}].{field}"),
        None => field.to_string(),
    };
    let key = f
        .opt_str("key")?
        .ok_or_else(|| MlError::missing(&name("key")))?;
    validate::key(&key, || name("name"))?;
    let value = match f.get("value") {
        Some(v) => double(v, || name("value"))?,
        None => return Err(MlError::missing(&name("value"))),
    };
    let timestamp = match f.get("timestamp") {
        Some(v) => int64(v, || name("timestamp"))?,
        None => return Err(MlError::missing(&name("timestamp"))),
    };
    if timestamp < 0 {
        return Err(MlError::invalid(format!(
            "Invalid value {timestamp} for parameter '{}' supplied: Timestamp must be a nonnegative long (64-bit integer)",
            name("timestamp")
        )));
    }
    let step = match f.get("step") {
        Some(v) => int64(v, || name("step"))?,
        None => 0,
    };
    let mut extra = Map::new();
    for k in ["model_id", "dataset_name", "dataset_digest"] {
        if let Some(v) = f.opt_str(k)?.filter(|v| !v.is_empty()) {
            extra.insert(k.into(), Value::String(v));
        }
    }
    Ok(Metric {
        key,
        value,
        timestamp,
        step,
        extra,
    })
}

/// Metrics as rows: consecutive metrics at one step and time (and model) share a row, unless a key repeats.
fn rows(exp: &ExperimentId, metrics: Vec<Metric>, f: &Fields) -> Vec<Event> {
    let mut out: Vec<MetricsLogged> = Vec::new();
    for m in metrics {
        let wall = m.timestamp as f64 / 1000.0;
        let joins = out.last().is_some_and(|r| {
            r.step == Some(m.step)
                && r.wall_time.map(f64::to_bits) == Some(wall.to_bits())
                && r.extra == m.extra
                && !r.values.contains_key(&m.key)
        });
        if joins {
            if let Some(r) = out.last_mut() {
                r.values.insert(m.key, m.value);
            }
        } else {
            out.push(MetricsLogged {
                exp: exp.clone(),
                split: None,
                step: Some(m.step),
                epoch: None,
                wall_time: Some(wall),
                x: FloatMap::new(),
                values: [(m.key, m.value)].into(),
                extra: m.extra,
            });
        }
    }
    out.into_iter()
        .map(|r| event(f, EventKind::MetricsLogged(r)))
        .collect()
}

/// The metrics that are new: a point equal to one before it in the call, or to one of the run's latest
/// (a call sent again), is kept once, as MLflow's store keeps it.
fn once(s: &AppState, exp: &ExperimentId, metrics: Vec<Metric>) -> Vec<Metric> {
    let ids: Vec<u64> = metrics
        .iter()
        .map(|m| identity(&m.key, m.step, m.timestamp, m.value))
        .collect();
    let mut seen: HashSet<u64> = s
        .views()
        .mlflow
        .runs
        .get(exp)
        .map(|r| r.recent.iter().copied().collect())
        .unwrap_or_default();
    metrics
        .into_iter()
        .zip(ids)
        .filter(|(_, id)| seen.insert(*id))
        .map(|(m, _)| m)
        .collect()
}

/// How a parameter logged again with another value is reported.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ParamCall {
    One,
    Batch,
}

/// Records metrics, parameters and tags of run `id` as one batch of events.
async fn record(
    s: &AppState,
    f: &Fields,
    id: &str,
    metrics: Vec<Metric>,
    params: Vec<(String, String)>,
    tags: Vec<(String, String)>,
    call: ParamCall,
) -> MlResult<()> {
    for (i, (k, _)) in params.iter().enumerate() {
        let at = if call == ParamCall::One {
            String::new()
        } else {
            format!("params[{i}].")
        };
        validate::key(k, || format!("{at}key"))?;
    }
    let mut seen = BTreeSet::new();
    let dups: Vec<&String> = params
        .iter()
        .filter(|(k, _)| !seen.insert(k))
        .map(|(k, _)| k)
        .collect();
    if !dups.is_empty() {
        return Err(MlError::invalid(format!(
            "Duplicate parameter keys have been submitted: {dups:?}. Please ensure the request contains only one param value per param key."
        )));
    }
    for (i, (k, _)) in tags.iter().enumerate() {
        tag_ok(k, &format!("tags[{i}]"))?;
    }
    // Parameters and points are checked against those logged, and written, one call a run at a time.
    let _one = s.mlflow_runs.lock(id).await;
    let doc = writable(s, id)?;
    let mut changed = Vec::new();
    let mut new = BTreeMap::new();
    for (k, v) in params {
        match doc.params.get(&k) {
            Some(old) if *old == v => {}
            Some(old) => changed.push((k, old.clone(), v)),
            None => {
                new.insert(k, v);
            }
        }
    }
    if let Some((k, old, v)) = changed.first() {
        return Err(MlError::invalid(match call {
            ParamCall::One => format!(
                "Changing param values is not allowed. Param with key='{k}' was already logged with value='{old}' for run ID='{id}'. Attempted logging new value '{v}'."
            ),
            ParamCall::Batch => {
                let list: Vec<String> = changed
                    .iter()
                    .map(|(k, o, n)| {
                        format!("{{'key': '{k}', 'old_value': '{o}', 'new_value': '{n}'}}")
                    })
                    .collect();
                format!(
                    "Changing param values is not allowed. Params were already logged='[{}]' for run ID='{id}'.",
                    list.join(", ")
                )
            }
        }));
    }
    let exp = ExperimentId(id.to_string());
    let metrics = once(s, &exp, metrics);
    let mut events = Vec::new();
    let set_tags: BTreeMap<String, String> = tags.into_iter().collect();
    if !new.is_empty() || !set_tags.is_empty() {
        events.push(event(
            f,
            EventKind::RunChanged(RunChanged {
                exp: exp.clone(),
                // Setting `mlflow.runName` renames the run, as in MLflow.
                name: set_tags
                    .get("mlflow.runName")
                    .filter(|n| !n.is_empty() && **n != doc.name)
                    .cloned(),
                params: new,
                set_tags,
                ..RunChanged::default()
            }),
        ));
    }
    events.extend(rows(&exp, metrics, f));
    append(s, events).await
}

/// `POST runs/log-batch`: `run_id`, `metrics`, `params`, `tags` (MLflow's limits: 1000 metrics, 100 params,
/// 100 tags, 1000 in all).
pub async fn log_batch(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.run_id()?;
    let raw = f.objects("metrics")?;
    let params = f.pairs("params")?;
    let tags = f.pairs("tags")?;
    validate::batch(raw.len(), params.len(), tags.len())?;
    let metrics = raw
        .iter()
        .enumerate()
        .map(|(i, o)| metric(*o, Some(i)))
        .collect::<MlResult<Vec<_>>>()?;
    record(&s, &f, &id, metrics, params, tags, ParamCall::Batch).await?;
    Ok(json!({}))
}

/// `POST runs/log-metric`: `run_id`, `key`, `value`, `timestamp`, `step`.
pub async fn log_metric(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.run_id()?;
    let m = metric(f.obj(), None)?;
    record(&s, &f, &id, vec![m], vec![], vec![], ParamCall::One).await?;
    Ok(json!({}))
}

/// `POST runs/log-parameter`: `run_id`, `key`, `value`.
pub async fn log_param(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.run_id()?;
    let p = (f.str("key")?, f.str("value")?);
    record(&s, &f, &id, vec![], vec![p], vec![], ParamCall::One).await?;
    Ok(json!({}))
}

/// `POST runs/set-tag`: `run_id`, `key`, `value`.
pub async fn set_tag(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.run_id()?;
    let t = (f.str("key")?, f.opt_str("value")?.unwrap_or_default());
    record(&s, &f, &id, vec![], vec![], vec![t], ParamCall::One).await?;
    Ok(json!({}))
}

/// `POST runs/delete-tag`: `run_id`, `key`.
pub async fn delete_tag(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.run_id()?;
    let key = f.str("key")?;
    let doc = writable(&s, &id)?;
    if !doc.tags.contains_key(&key) {
        return Err(MlError::not_found(format!(
            "No tag with name: {key} in run with id {id}"
        )));
    }
    changed(
        &s,
        &f,
        RunChanged {
            exp: ExperimentId(id),
            removed_tags: vec![key],
            ..RunChanged::default()
        },
    )
    .await
}

/// `POST runs/log-inputs`: `run_id`, `datasets` (each `{dataset: {name, digest, source_type, source, schema,
/// profile}, tags}`), kept as given.
pub async fn log_inputs(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.run_id()?;
    if !f.objects("models")?.is_empty() {
        return Err(MlError::unsupported(
            "labd does not keep MLflow logged models, so a run cannot take one as input",
        ));
    }
    let mut inputs = Vec::new();
    for (i, d) in f.objects("datasets")?.into_iter().enumerate() {
        let ds = d
            .get("dataset")
            .and_then(Value::as_object)
            .ok_or_else(|| MlError::missing(&format!("datasets[{i}].dataset")))?;

        for (field, max) in [
            ("name", 500),
            ("digest", 36),
            ("source", 65535),
            ("schema", 1_048_575),
            ("profile", 16_777_215),
        ] {
            let text = ds.get(field).and_then(Value::as_str);
            if matches!(field, "name" | "digest") && text.is_none_or(str::is_empty) {
                return Err(MlError::missing(&format!("datasets[{i}].dataset.{field}")));
            }
            validate::length(
                text.unwrap_or_default(),
                max,
                &format!("datasets[{i}].dataset.{field}"),
            )?;
        }
        inputs.push(Value::Object(d.0.clone()));
    }
    writable(&s, &id)?;
    changed(
        &s,
        &f,
        RunChanged {
            exp: ExperimentId(id),
            inputs,
            ..RunChanged::default()
        },
    )
    .await
}

/// `POST runs/log-model` (MLflow 2's `log_model`): the model's description joins the run's tag
/// `mlflow.log-model.history`, a JSON list, as in MLflow.
pub async fn log_model(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.run_id()?;
    let text = f.str("model_json")?;
    let model: Value = serde_json::from_str(&text)
        .map_err(|e| MlError::invalid(format!("'model_json' is not JSON: {e}")))?;
    let _one = s.mlflow_runs.lock(&id).await;
    let doc = writable(&s, &id)?;
    let mut history: Vec<Value> = doc
        .tags
        .get("mlflow.log-model.history")
        .and_then(|h| serde_json::from_str(h).ok())
        .unwrap_or_default();
    history.push(model);
    let tag = serde_json::to_string(&history).map_err(|e| MlError::invalid(e.to_string()))?;
    changed(
        &s,
        &f,
        RunChanged {
            exp: ExperimentId(id),
            set_tags: [("mlflow.log-model.history".to_string(), tag)].into(),
            ..RunChanged::default()
        },
    )
    .await
}

const NO_MODELS: &str = "labd does not store MLflow logged models (MLflow 3's log_model); log the model's files as artifacts (mlflow.log_artifacts) instead";

/// `POST runs/outputs`: needs logged models, which labd does not keep.
pub async fn outputs(_s: Arc<AppState>, _f: Fields) -> MlResult<Value> {
    Err(MlError::unsupported(NO_MODELS))
}

/// `POST logged-models` and every change of one (finalize, tags, params, delete): not supported, with MLflow's
/// error shape saying so.
pub async fn create_model(_s: Arc<AppState>, _f: Fields) -> MlResult<Value> {
    Err(MlError::unsupported(NO_MODELS))
}

/// `GET logged-models/{id}`: there are none.
pub async fn get_model(_s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.request.rsplit('/').next().unwrap_or_default().to_string();
    Err(MlError::not_found(format!(
        "Logged model with ID '{id}' not found: {NO_MODELS}"
    )))
}

/// `POST logged-models/search`: no logged models are kept, so none match (MLflow 3's artifact listing asks).
pub async fn search_models(_s: Arc<AppState>, _f: Fields) -> MlResult<Value> {
    Ok(json!({}))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn m(key: &str, step: i64, timestamp: i64) -> Metric {
        Metric {
            key: key.into(),
            value: step as f64,
            timestamp,
            step,
            extra: Map::new(),
        }
    }

    #[test]
    fn metrics_at_one_step_and_time_share_a_row_unless_a_key_repeats() {
        let f = Fields::from_map(Map::new());
        let exp = ExperimentId("r".into());
        let events = rows(
            &exp,
            vec![
                m("a", 1, 10),
                m("b", 1, 10),
                m("a", 1, 10),
                m("a", 2, 10),
                m("a", 2, 11),
            ],
            &f,
        );
        let shapes: Vec<(Option<i64>, Vec<&str>)> = events
            .iter()
            .map(|e| match &e.kind {
                EventKind::MetricsLogged(r) => {
                    (r.step, r.values.keys().map(String::as_str).collect())
                }
                _ => (None, vec![]),
            })
            .collect();
        assert_eq!(
            shapes,
            [
                (Some(1), vec!["a", "b"]),
                (Some(1), vec!["a"]),
                (Some(2), vec!["a"]),
                (Some(2), vec!["a"]),
            ]
        );
    }

    #[test]
    fn generated_names_look_like_mlflows() {
        let n = generated_name(12345);
        assert_eq!(n.split('-').count(), 3, "{n}");
        assert_eq!(n, generated_name(12345));
    }
}
