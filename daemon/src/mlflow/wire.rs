//! Experiments, runs and metrics in MLflow's JSON: snake_case proto names, int64 as numbers, doubles NaN and
//! infinities as the strings protobuf's JSON uses (`"NaN"`, `"Infinity"`, `"-Infinity"`; a `null` would read
//! as 0 in the client), enums by name.

use crate::views::Views;
use crate::views::mlflow::Latest;
use crate::views::projects::Project;
use labd_schemas::{ExperimentId, RunStatus};
use serde_json::{Map, Value, json};
use std::collections::BTreeMap;

/// A double as protobuf's JSON writes it.
pub fn double(v: f64) -> Value {
    if v.is_nan() {
        Value::String("NaN".into())
    } else if v == f64::INFINITY {
        Value::String("Infinity".into())
    } else if v == f64::NEG_INFINITY {
        Value::String("-Infinity".into())
    } else {
        json!(v)
    }
}

/// `[{key, value}]`.
pub fn pairs(map: &BTreeMap<String, String>) -> Value {
    Value::Array(
        map.iter()
            .map(|(k, v)| json!({"key": k, "value": v}))
            .collect(),
    )
}

/// Where a project's artifacts go: the location it was created with, or labd's proxied store.
pub fn artifact_location(p: &Project) -> String {
    p.artifact_location
        .clone()
        .unwrap_or_else(|| format!("mlflow-artifacts:/{}", p.id))
}

/// An MLflow experiment.
pub fn experiment(p: &Project) -> Value {
    let mut e = json!({
        "experiment_id": p.id,
        "name": p.name,
        "artifact_location": artifact_location(p),
        "lifecycle_stage": if p.deleted { "deleted" } else { "active" },
        "last_update_time": p.updated / 1000,
        "creation_time": p.created / 1000,
    });
    if !p.tags.is_empty() {
        e["tags"] = pairs(&p.tags);
    }
    e
}

/// A run as MLflow describes it, assembled from the registry and the MLflow view (owned: read under the
/// views' lock, used after it).
#[derive(Clone, Debug)]
pub struct RunDoc {
    pub id: String,
    pub name: String,
    pub project: String,
    pub user: String,
    pub status: &'static str,
    pub final_status: bool,
    /// Unix milliseconds.
    pub start: i64,
    pub end: Option<i64>,
    pub artifact_uri: String,
    pub deleted: bool,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub latest: BTreeMap<String, Latest>,
    pub inputs: Vec<Value>,
}

/// MLflow's name of a status.
pub fn status_name(status: RunStatus, scheduled: bool) -> &'static str {
    match status {
        RunStatus::Running if scheduled => "SCHEDULED",
        RunStatus::Running => "RUNNING",
        RunStatus::Completed => "FINISHED",
        RunStatus::Failed => "FAILED",
        RunStatus::Interrupted => "KILLED",
    }
}

/// The run `id` as MLflow describes it; `None` when it is no MLflow run here.
pub fn run_doc(v: &Views, id: &str) -> Option<RunDoc> {
    let exp = ExperimentId(id.to_string());
    let ml = v.mlflow.runs.get(&exp)?;
    let rec = v.registry.experiments.get(&exp)?;
    let location = v
        .projects
        .get(&ml.project)
        .map(|p| artifact_location(&p))
        .unwrap_or_else(|| format!("mlflow-artifacts:/{}", ml.project));
    Some(RunDoc {
        id: id.to_string(),
        name: rec.name.clone(),
        project: ml.project.clone(),
        user: ml.user.clone(),
        status: status_name(rec.status, ml.scheduled),
        final_status: rec.status.is_final(),
        start: rec.started / 1000,
        end: rec.ended.map(|e| e / 1000),
        artifact_uri: format!("{location}/{id}/artifacts"),
        deleted: ml.deleted,
        params: ml.params.clone(),
        tags: ml.tags.clone(),
        latest: ml.latest.clone(),
        inputs: ml.inputs.clone(),
    })
}

impl RunDoc {
    /// `RunInfo`.
    pub fn info(&self) -> Value {
        let mut i = json!({
            "run_id": self.id,
            "run_uuid": self.id,
            "run_name": self.name,
            "experiment_id": self.project,
            "user_id": self.user,
            "status": self.status,
            "start_time": self.start,
            "artifact_uri": self.artifact_uri,
            "lifecycle_stage": if self.deleted { "deleted" } else { "active" },
        });
        if let Some(end) = self.end {
            i["end_time"] = json!(end);
        }
        i
    }

    /// `Run`: info, data (latest metrics, params, tags), inputs, outputs.
    pub fn render(&self) -> Value {
        let metrics: Vec<Value> = self
            .latest
            .iter()
            .map(|(k, l)| metric(k, l, None))
            .collect();
        let mut data = Map::new();
        if !metrics.is_empty() {
            data.insert("metrics".into(), Value::Array(metrics));
        }
        if !self.params.is_empty() {
            data.insert("params".into(), pairs(&self.params));
        }
        if !self.tags.is_empty() {
            data.insert("tags".into(), pairs(&self.tags));
        }
        let mut inputs = Map::new();
        if !self.inputs.is_empty() {
            inputs.insert("dataset_inputs".into(), Value::Array(self.inputs.clone()));
        }
        json!({"info": self.info(), "data": data, "inputs": inputs, "outputs": {}})
    }
}

/// A `Metric` (with `run_id` for the bulk calls).
pub fn metric(key: &str, l: &Latest, run_id: Option<&str>) -> Value {
    let mut m = json!({
        "key": key,
        "value": double(l.value),
        "timestamp": l.timestamp,
        "step": l.step,
    });
    if let Some(r) = run_id {
        m["run_id"] = json!(r);
    }
    m
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn non_finite_doubles_are_protobuf_strings_and_finite_ones_keep_their_bits() {
        assert_eq!(double(f64::NAN), json!("NaN"));
        assert_eq!(double(f64::INFINITY), json!("Infinity"));
        assert_eq!(double(f64::NEG_INFINITY), json!("-Infinity"));
        for v in [0.1, -0.0, 1e-310, 123_456_789.123_456_78, f64::MAX] {
            let text = double(v).to_string();
            assert_eq!(
                text.parse::<f64>().map(f64::to_bits),
                Ok(v.to_bits()),
                "{text}"
            );
        }
    }
}
