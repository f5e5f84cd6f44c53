//! What MLflow's tracking API answers about a run beyond the registry's record: its project, user, parameters
//! as the texts logged, key–value tags, soft deletion, inputs, and the latest value of each metric as MLflow
//! picks it (largest step, then latest timestamp, then largest value; NaN kept). Kept for the runs that belong
//! to a project (those created through the MLflow API).

use labd_schemas::{Event, EventKind, ExperimentId};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, VecDeque};

/// How many of a running run's latest points are remembered, so that a call sent again (MLflow's clients retry
/// `log-batch` when an answer is lost) or a point logged twice is kept once, as MLflow's store keeps it.
pub const RECENT: usize = 1000;

/// A metric point's identity as MLflow's store has it (key, step, timestamp, value's bits): FNV-1a, stable
/// across builds (it is saved in the views' checkpoint).
pub fn identity(key: &str, step: i64, timestamp: i64, value: f64) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    let mut eat = |bytes: &[u8]| {
        for b in bytes {
            h ^= u64::from(*b);
            h = h.wrapping_mul(0x0100_0000_01b3);
        }
    };
    eat(key.as_bytes());
    eat(&[0xff]);
    eat(&step.to_le_bytes());
    eat(&timestamp.to_le_bytes());
    eat(&value.to_bits().to_le_bytes());
    h
}

/// A metric's latest point: step, timestamp (Unix milliseconds), value.
#[derive(Clone, Copy, Debug, PartialEq, Serialize, Deserialize)]
pub struct Latest {
    pub step: i64,
    pub timestamp: i64,
    pub value: f64,
}

impl Latest {
    /// Whether `self` replaces `old` as the latest (MLflow's order: step, then timestamp, then value).
    fn after(&self, old: &Latest) -> bool {
        (self.step, self.timestamp) > (old.step, old.timestamp)
            || ((self.step, self.timestamp) == (old.step, old.timestamp)
                && self.value.total_cmp(&old.value).is_gt())
    }
}

/// One run's MLflow details.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MlRun {
    pub project: String,
    pub user: String,
    pub deleted: bool,
    /// MLflow's `SCHEDULED` (labd records the run as running).
    pub scheduled: bool,
    pub params: BTreeMap<String, String>,
    pub tags: BTreeMap<String, String>,
    pub latest: BTreeMap<String, Latest>,
    pub inputs: Vec<Value>,
    /// Identities of the latest [`RECENT`] points while the run runs (emptied when it ends).
    #[serde(default)]
    pub recent: VecDeque<u64>,
}

/// The view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MlflowRuns {
    pub runs: BTreeMap<ExperimentId, MlRun>,
}

/// The name and digest of a dataset input (`{"dataset": {"name", "digest", ...}, "tags": [...]}`).
fn dataset_key(input: &Value) -> (Option<&str>, Option<&str>) {
    let field = |k: &str| {
        input
            .get("dataset")
            .and_then(|d| d.get(k))
            .and_then(Value::as_str)
    };
    (field("name"), field("digest"))
}

/// A wall time in Unix seconds as MLflow's milliseconds (the seconds were made from the milliseconds by
/// dividing by 1000: multiplying and rounding gives the same integer back).
pub fn millis(wall: f64) -> i64 {
    (wall * 1000.0).round() as i64
}

impl MlflowRuns {
    pub fn apply_batch(&mut self, events: &[Event]) {
        if self.runs.is_empty()
            && !events
                .iter()
                .any(|e| matches!(&e.kind, EventKind::ExperimentCreated(c) if c.project.is_some()))
        {
            return;
        }
        for e in events {
            self.apply(e);
        }
    }

    pub fn apply(&mut self, event: &Event) {
        match &event.kind {
            EventKind::ExperimentCreated(c) => {
                let Some(project) = &c.project else { return };
                let mut run = MlRun {
                    project: project.clone(),
                    user: c
                        .extra
                        .get("mlflow_user")
                        .and_then(Value::as_str)
                        .unwrap_or_default()
                        .to_string(),
                    ..MlRun::default()
                };
                for t in &c.tags {
                    if let Some((k, v)) = t.split_once('=') {
                        run.tags.insert(k.into(), v.into());
                    }
                }
                if let Some(Value::Object(t)) = c.extra.get("mlflow_tags") {
                    for (k, v) in t {
                        if let Some(v) = v.as_str() {
                            run.tags.insert(k.clone(), v.into());
                        }
                    }
                }
                if let Value::Object(config) = &c.config {
                    for (k, v) in config {
                        let text = match v {
                            Value::String(s) => s.clone(),
                            other => other.to_string(),
                        };
                        run.params.insert(k.clone(), text);
                    }
                }
                self.runs.entry(c.exp.clone()).or_insert(run);
            }
            EventKind::RunChanged(c) => {
                let Some(r) = self.runs.get_mut(&c.exp) else {
                    return;
                };
                if let Some(name) = &c.name {
                    r.tags.insert("mlflow.runName".into(), name.clone());
                }
                for (k, v) in &c.params {
                    r.params.entry(k.clone()).or_insert_with(|| v.clone());
                }
                for (k, v) in &c.set_tags {
                    r.tags.insert(k.clone(), v.clone());
                }
                for k in &c.removed_tags {
                    r.tags.remove(k);
                }
                if let Some(d) = c.deleted {
                    r.deleted = d;
                }
                for input in &c.inputs {
                    // A run's datasets are one each by name and digest, the first kept, as in MLflow.
                    let key = dataset_key(input);
                    if !r.inputs.iter().any(|i| dataset_key(i) == key) {
                        r.inputs.push(input.clone());
                    }
                }
            }
            EventKind::StatusChanged(s) => {
                if let Some(r) = self.runs.get_mut(&s.exp) {
                    r.scheduled =
                        s.extra.get("mlflow_status").and_then(Value::as_str) == Some("SCHEDULED");
                    if s.status.is_final() {
                        r.recent = VecDeque::new();
                    }
                }
            }
            EventKind::MetricsLogged(m) => {
                let Some(r) = self.runs.get_mut(&m.exp) else {
                    return;
                };
                let step = m.step.unwrap_or(0);
                let timestamp = m.wall_time.map_or(0, millis);
                for (key, &value) in &m.values {
                    let mut name = String::new();
                    crate::views::registry::metric_key(m.split.as_deref(), key, &mut name);
                    r.recent.push_back(identity(&name, step, timestamp, value));
                    if r.recent.len() > RECENT {
                        r.recent.pop_front();
                    }
                    let new = Latest {
                        step,
                        timestamp,
                        value,
                    };
                    match r.latest.get_mut(&name) {
                        Some(old) if new.after(old) => *old = new,
                        Some(_) => {}
                        None => {
                            r.latest.insert(name, new);
                        }
                    }
                }
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_latest_value_is_mlflows_largest_step_then_time_then_value() {
        let l = |step, timestamp, value| Latest {
            step,
            timestamp,
            value,
        };
        assert!(l(4, 1, 0.0).after(&l(3, 9, 1.0)));
        assert!(!l(3, 9, 1.0).after(&l(4, 1, 0.0)));
        assert!(l(3, 10, 0.0).after(&l(3, 9, 1.0)));
        assert!(l(3, 9, 2.0).after(&l(3, 9, 1.0)));
        assert!(!l(3, 9, 1.0).after(&l(3, 9, 1.0)));
    }

    #[test]
    fn milliseconds_come_back_from_seconds() {
        for ms in [0i64, 1, 999, 1_796_571_605_719, 4_102_444_800_123] {
            assert_eq!(millis(ms as f64 / 1000.0), ms);
        }
    }
}
