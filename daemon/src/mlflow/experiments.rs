//! `/experiments/*`: MLflow experiments, which are labd projects.

use super::request::{Fields, MlError, MlResult};
use super::validate;
use super::{append, event, search, wire};
use crate::state::AppState;
use crate::views::projects::Project;
use labd_schemas::event::{ProjectChanged, ProjectCreated, RunChanged};
use labd_schemas::{EventKind, ExperimentId};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

fn find(s: &AppState, id: &str) -> MlResult<Project> {
    s.views()
        .projects
        .get(id)
        .ok_or_else(|| MlError::not_found(format!("No Experiment with id={id} exists")))
}

fn name_ok(name: &str) -> MlResult<()> {
    if name.is_empty() {
        return Err(MlError::invalid(
            "Invalid experiment name: ''. Experiment name cannot be empty.",
        ));
    }
    validate::length(name, validate::MAX_EXPERIMENT_NAME_LENGTH, "name")
}

fn tag_ok(key: &str, value: &str) -> MlResult<()> {
    validate::key(key, || "key".into())?;
    validate::length(value, validate::MAX_EXPERIMENT_TAG_VAL_LENGTH, "value")
}

/// `POST experiments/create`: `name`, optional `artifact_location` and `tags`; answers the new id.
pub async fn create(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let name = f.str("name")?;
    name_ok(&name)?;
    let mut tags = BTreeMap::new();
    for (k, v) in f.pairs("tags")? {
        tag_ok(&k, &v)?;
        tags.insert(k, v);
    }
    let artifact_location = f.opt_str("artifact_location")?.filter(|a| !a.is_empty());
    let _one = s.mlflow_writes.lock().await;
    let id = {
        let v = s.views();
        if v.projects.by_name(&name).is_some() {
            return Err(MlError::exists(format!(
                "Experiment(name={name}) already exists."
            )));
        }
        v.projects.next_id()
    };
    append(
        &s,
        vec![event(
            &f,
            EventKind::ProjectCreated(ProjectCreated {
                project: id.clone(),
                name,
                tags,
                artifact_location,
                extra: Default::default(),
            }),
        )],
    )
    .await?;
    Ok(json!({ "experiment_id": id }))
}

/// `GET experiments/get?experiment_id=`.
pub async fn get(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.str("experiment_id")?;
    Ok(json!({ "experiment": wire::experiment(&find(&s, &id)?) }))
}

/// `GET experiments/get-by-name?experiment_name=`: `RESOURCE_DOES_NOT_EXIST` (which makes `set_experiment`
/// create it) when there is none.
pub async fn get_by_name(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let name = f.str("experiment_name")?;
    let p = s.views().projects.by_name(&name).ok_or_else(|| {
        MlError::not_found(format!("Could not find experiment with name '{name}'"))
    })?;
    Ok(json!({ "experiment": wire::experiment(&p) }))
}

/// `experiments/search`: `filter`, `order_by`, `view_type`, `max_results`, `page_token`.
pub async fn search(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let filter = search::parse_filter(
        &f.opt_str("filter")?.unwrap_or_default(),
        search::Of::Experiments,
    )?;
    let order = search::parse_order(&f.strings("order_by")?, search::Of::Experiments)?;
    let view = search::view_type(f.opt_str("view_type")?.as_deref())?;
    let max = search::max_results(f.opt_i64("max_results")?, 1000)?;
    let all = s.views().projects.all();
    let mut found: Vec<Project> = all
        .into_iter()
        .filter(|p| view.shows(p.deleted))
        .filter(|p| filter.iter().all(|c| c.holds_for_project(p)))
        .collect();
    search::sort_projects(&mut found, &order);
    let (page, next) = search::page(&found, max, f.opt_str("page_token")?.as_deref())?;
    let mut out = json!({ "experiments": page.iter().map(wire::experiment).collect::<Vec<_>>() });
    if let Some(t) = next {
        out["next_page_token"] = json!(t);
    }
    Ok(out)
}

async fn change(s: &AppState, f: &Fields, c: ProjectChanged) -> MlResult<Value> {
    append(s, vec![event(f, EventKind::ProjectChanged(c))]).await?;
    Ok(json!({}))
}

fn changed(id: String) -> ProjectChanged {
    ProjectChanged {
        project: id,
        name: None,
        deleted: None,
        set_tags: BTreeMap::new(),
        removed_tags: Vec::new(),
    }
}

/// `POST experiments/update`: `experiment_id`, `new_name`.
pub async fn update(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.str("experiment_id")?;
    let Some(name) = f.opt_str("new_name")? else {
        find(&s, &id)?;
        return Ok(json!({}));
    };
    name_ok(&name)?;
    let _one = s.mlflow_writes.lock().await;
    let p = active(&s, &id, true)?;
    if p.name == name {
        return Ok(json!({}));
    }
    if s.views().projects.by_name(&name).is_some() {
        return Err(MlError::exists(format!(
            "Experiment(name={name}) already exists."
        )));
    }
    change(
        &s,
        &f,
        ProjectChanged {
            name: Some(name),
            ..changed(id)
        },
    )
    .await
}

/// Deletes or restores experiment `id` with every run in it, as MLflow's store does (one batch). Deleting
/// takes an active experiment and restoring a deleted one; the other is MLflow's "does not exist".
async fn lifecycle(s: Arc<AppState>, f: Fields, deleted: bool) -> MlResult<Value> {
    let id = f.str("experiment_id")?;
    let _one = s.mlflow_writes.lock().await;
    if find(&s, &id)?.deleted == deleted {
        return Err(MlError::not_found(format!(
            "No Experiment with id={id} exists"
        )));
    }
    let runs: Vec<String> = s
        .views()
        .mlflow
        .runs
        .iter()
        .filter(|(_, r)| r.project == id && r.deleted != deleted)
        .map(|(run, _)| run.to_string())
        .collect();
    let mut events = vec![event(
        &f,
        EventKind::ProjectChanged(ProjectChanged {
            deleted: Some(deleted),
            ..changed(id)
        }),
    )];
    events.extend(runs.into_iter().map(|run| {
        event(
            &f,
            EventKind::RunChanged(RunChanged {
                exp: ExperimentId(run),
                deleted: Some(deleted),
                ..RunChanged::default()
            }),
        )
    }));
    append(&s, events).await?;
    Ok(json!({}))
}

/// The experiment `id`, which must be active to be renamed or tagged.
fn active(s: &AppState, id: &str, state_error: bool) -> MlResult<Project> {
    let p = find(s, id)?;
    if !p.deleted {
        return Ok(p);
    }
    Err(if state_error {
        MlError::new(
            // MLflow answers its INVALID_STATE with a 500.
            axum::http::StatusCode::INTERNAL_SERVER_ERROR,
            "INVALID_STATE",
            "Cannot rename a non-active experiment.".into(),
        )
    } else {
        MlError::invalid(format!(
            "The experiment {id} must be in the 'active' state. Current state is deleted."
        ))
    })
}

/// `POST experiments/delete`: soft delete of the experiment and its runs (all kept).
pub async fn delete(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    lifecycle(s, f, true).await
}

/// `POST experiments/restore`: the experiment and its runs active again.
pub async fn restore(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    lifecycle(s, f, false).await
}

/// `POST experiments/set-experiment-tag`: `experiment_id`, `key`, `value`.
pub async fn set_tag(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.str("experiment_id")?;
    let key = f.str("key")?;
    let value = f.opt_str("value")?.unwrap_or_default();
    tag_ok(&key, &value)?;
    active(&s, &id, false)?;
    change(
        &s,
        &f,
        ProjectChanged {
            set_tags: [(key, value)].into(),
            ..changed(id)
        },
    )
    .await
}

/// `POST experiments/delete-experiment-tag`: `experiment_id`, `key`.
pub async fn delete_tag(s: Arc<AppState>, f: Fields) -> MlResult<Value> {
    let id = f.str("experiment_id")?;
    let key = f.str("key")?;
    if !active(&s, &id, false)?.tags.contains_key(&key) {
        return Err(MlError::not_found(format!(
            "No tag with name: {key} in experiment with id {id}"
        )));
    }
    change(
        &s,
        &f,
        ProjectChanged {
            removed_tags: vec![key],
            ..changed(id)
        },
    )
    .await
}
