//! The facts of the event log. The enum is closed and versioned: every stored event carries
//! [`EVENT_FORMAT_VERSION`] as it was when written, and old records must keep decoding (see the stored samples
//! under `schemas/samples/` and their test). Add fields only with `#[serde(default)]`; add kinds only at the end.

use crate::float_map::FloatMap;
use crate::ids::ExperimentId;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// The format version written into every new event.
pub const EVENT_FORMAT_VERSION: u16 = 1;

/// One fact, as stored in the log. Its sequence number is its key in the log, not a field.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Event {
    /// Format version this event was written with.
    pub v: u16,
    /// When the fact entered labd (Unix microseconds); `--as-of TIME` replays by this.
    pub time: i64,
    /// Where the fact came from.
    pub source: Source,
    /// The fact.
    pub kind: EventKind,
    /// On a hub: the host this fact was recorded on and its position in that host's log. `None` for facts of
    /// this labd's own.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub origin: Option<Box<Origin>>,
}

/// Where a fact received from another host's labd was first recorded.
#[derive(Clone, Debug, PartialEq, Eq, Serialize, Deserialize)]
pub struct Origin {
    /// The host's name in the federation.
    pub host: String,
    /// The event's sequence number in that host's log.
    pub seq: u64,
    /// The name the event's run, sweep or benchmark has on that host, when the hub had to give it another
    /// (`<name>@<host>`: the name was taken by another host's).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub id: Option<String>,
}

impl Event {
    /// A new event of the current format version.
    pub fn new(time: i64, source: Source, kind: EventKind) -> Self {
        Event {
            v: EVENT_FORMAT_VERSION,
            time,
            source,
            kind,
            origin: None,
        }
    }

    /// The experiment this event is about, if any.
    pub fn experiment(&self) -> Option<&ExperimentId> {
        self.kind.experiment()
    }
}

/// Where a fact came from.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case", tag = "type")]
pub enum Source {
    /// Lines `first_line..=last_line` (1-based) of a watched or ingested file.
    File {
        path: String,
        first_line: u64,
        last_line: u64,
    },
    /// A request to the HTTP API.
    Http { request: String },
    /// The daemon itself.
    Daemon,
}

/// Status of a run. `stale` is never stored: the registry derives it from silence.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Interrupted => "interrupted",
        }
    }

    /// A final status ends the run; only `running` does not.
    pub fn is_final(self) -> bool {
        !matches!(self, RunStatus::Running)
    }
}

impl std::str::FromStr for RunStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "running" => Ok(RunStatus::Running),
            "completed" => Ok(RunStatus::Completed),
            "failed" => Ok(RunStatus::Failed),
            "interrupted" => Ok(RunStatus::Interrupted),
            other => Err(format!(
                "unknown status {other:?} (expected running, completed, failed or interrupted)"
            )),
        }
    }
}

/// Every kind of fact labd records. Closed: an unknown tag fails to decode rather than being guessed.
/// Kinds much larger than a metrics row, and rare, are boxed, so that every event (a metrics row, mostly) is no
/// larger than a metrics row needs: events are moved from source to batch to writer, a few hundred bytes each.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum EventKind {
    ExperimentCreated(Box<ExperimentCreated>),
    MetricsLogged(MetricsLogged),
    MessageLogged(MessageLogged),
    SummaryRecorded(SummaryRecorded),
    ArtifactRecorded(ArtifactRecorded),
    StatusChanged(StatusChanged),
    FileIngested(FileIngested),
    IngestError(IngestError),
    SweepCreated(Box<crate::sweep::SweepCreated>),
    SweepChanged(crate::sweep::SweepChanged),
    TrialChanged(Box<crate::sweep::TrialChanged>),
    BenchStarted(Box<crate::bench::BenchStarted>),
    BenchMeasured(crate::bench::BenchMeasured),
    BenchChanged(crate::bench::BenchChanged),
    ProjectCreated(ProjectCreated),
    ProjectChanged(ProjectChanged),
    RunChanged(RunChanged),
    TrialAdded(Box<crate::sweep::TrialAdded>),
    AlertRuleSet(Box<crate::alert::AlertRuleSet>),
    AlertRuleRemoved(crate::alert::AlertRuleRemoved),
    AlertFired(Box<crate::alert::AlertFired>),
    AlertDelivered(crate::alert::AlertDelivered),
}

impl EventKind {
    /// The experiment this fact is about, if any.
    pub fn experiment(&self) -> Option<&ExperimentId> {
        match self {
            EventKind::ExperimentCreated(e) => Some(&e.exp),
            EventKind::MetricsLogged(e) => Some(&e.exp),
            EventKind::MessageLogged(e) => Some(&e.exp),
            EventKind::SummaryRecorded(e) => Some(&e.exp),
            EventKind::ArtifactRecorded(e) => Some(&e.exp),
            EventKind::StatusChanged(e) => Some(&e.exp),
            EventKind::RunChanged(e) => Some(&e.exp),
            EventKind::FileIngested(_)
            | EventKind::ProjectCreated(_)
            | EventKind::ProjectChanged(_)
            | EventKind::TrialAdded(_)
            | EventKind::AlertRuleSet(_)
            | EventKind::AlertRuleRemoved(_)
            | EventKind::AlertFired(_)
            | EventKind::AlertDelivered(_)
            | EventKind::IngestError(_)
            | EventKind::SweepCreated(_)
            | EventKind::SweepChanged(_)
            | EventKind::TrialChanged(_)
            | EventKind::BenchStarted(_)
            | EventKind::BenchMeasured(_)
            | EventKind::BenchChanged(_) => None,
        }
    }

    /// The kind's tag, as in the stored encoding and the API.
    pub fn tag(&self) -> &'static str {
        match self {
            EventKind::ExperimentCreated(_) => "experiment_created",
            EventKind::MetricsLogged(_) => "metrics_logged",
            EventKind::MessageLogged(_) => "message_logged",
            EventKind::SummaryRecorded(_) => "summary_recorded",
            EventKind::ArtifactRecorded(_) => "artifact_recorded",
            EventKind::StatusChanged(_) => "status_changed",
            EventKind::FileIngested(_) => "file_ingested",
            EventKind::IngestError(_) => "ingest_error",
            EventKind::SweepCreated(_) => "sweep_created",
            EventKind::SweepChanged(_) => "sweep_changed",
            EventKind::TrialChanged(_) => "trial_changed",
            EventKind::BenchStarted(_) => "bench_started",
            EventKind::BenchMeasured(_) => "bench_measured",
            EventKind::BenchChanged(_) => "bench_changed",
            EventKind::ProjectCreated(_) => "project_created",
            EventKind::ProjectChanged(_) => "project_changed",
            EventKind::RunChanged(_) => "run_changed",
            EventKind::TrialAdded(_) => "trial_added",
            EventKind::AlertRuleSet(_) => "alert_rule_set",
            EventKind::AlertRuleRemoved(_) => "alert_rule_removed",
            EventKind::AlertFired(_) => "alert_fired",
            EventKind::AlertDelivered(_) => "alert_delivered",
        }
    }

    /// Metric points this fact carries (one per value).
    pub fn points(&self) -> usize {
        match self {
            EventKind::MetricsLogged(m) => m.values.len(),
            _ => 0,
        }
    }
}

/// A run began.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentCreated {
    pub exp: ExperimentId,
    pub name: String,
    #[serde(default)]
    pub description: Option<String>,
    #[serde(default)]
    pub tags: Vec<String>,
    /// The nested configuration as given.
    pub config: Value,
    /// sha256 (hex) of the canonical config (keys sorted, compact JSON).
    pub config_hash: String,
    pub host: String,
    /// When the run started (Unix microseconds).
    pub started: i64,
    /// Fields of the `run` line labd does not know, kept as given.
    #[serde(default)]
    pub extra: Map<String, Value>,
    /// The project (a named group of runs: an MLflow experiment) the run belongs to, by its id.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// One row of metric values at one position on the x-axes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MetricsLogged {
    pub exp: ExperimentId,
    #[serde(default)]
    pub split: Option<String>,
    #[serde(default)]
    pub step: Option<i64>,
    #[serde(default)]
    pub epoch: Option<f64>,
    /// Wall time of the row (Unix seconds), when the writer gave one.
    #[serde(default)]
    pub wall_time: Option<f64>,
    /// Custom x-axes, e.g. `tokens`.
    #[serde(default)]
    pub x: FloatMap,
    /// Metric name → value. NaN and ±inf are kept as given (in JSON: `"NaN"`, `"Infinity"`, `"-Infinity"`);
    /// `null` values are left out.
    pub values: FloatMap,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A log message of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct MessageLogged {
    pub exp: ExperimentId,
    pub level: String,
    pub text: String,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A named group of values (final/test metrics, bias metrics, ...): any nested JSON.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct SummaryRecorded {
    pub exp: ExperimentId,
    pub group: String,
    pub values: Value,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A file the run produced.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecorded {
    pub exp: ExperimentId,
    pub role: String,
    pub path: String,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(default)]
    pub sha256: Option<String>,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// The run's status changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct StatusChanged {
    pub exp: ExperimentId,
    pub status: RunStatus,
    #[serde(default)]
    pub notes: Option<String>,
    /// Fields of the line labd does not know, kept as given.
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// Bytes `from..to` of a file were read (the checkpoint that makes ingestion exactly-once).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct FileIngested {
    pub path: String,
    pub from: u64,
    pub to: u64,
    /// Complete lines read in this batch.
    pub lines: u64,
    /// Set when the file was found replaced or truncated and reading restarted at 0.
    #[serde(default)]
    pub restarted: Option<String>,
}

/// How bad an ingest problem is.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum Severity {
    /// Data was kept, but something was odd (file replaced, unknown status, ...).
    Warning,
    /// A line or file could not be used.
    Error,
}

/// A line or file that could not be ingested as it was.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct IngestError {
    pub path: String,
    /// 1-based line, when the problem is one line.
    #[serde(default)]
    pub line: Option<u64>,
    pub severity: Severity,
    pub reason: String,
    /// Bytes that could not be used, kept as they came: on a hub, an event of another host's labd of a kind or
    /// format version this labd does not know (msgpack, as that labd wrote it).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub held: Option<serde_bytes::ByteBuf>,
}

/// A project began: a named group of runs (what MLflow calls an experiment). Its id is short and stable (MLflow's
/// `experiment_id`: `"1"`, `"2"`, ...); `"0"`, the default project, exists without an event.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectCreated {
    pub project: String,
    pub name: String,
    #[serde(default)]
    pub tags: BTreeMap<String, String>,
    /// Where its runs' artifacts go, when the creator named a place (MLflow's `artifact_location`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub artifact_location: Option<String>,
    #[serde(default, skip_serializing_if = "Map::is_empty")]
    pub extra: Map<String, Value>,
}

/// A project was renamed, deleted or restored, or its tags changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ProjectChanged {
    pub project: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// `Some(true)`: deleted (kept, hidden from plain listings); `Some(false)`: restored.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_tags: Vec<String>,
}

/// Something of a run other than its points and status changed after it began: its name, parameters logged
/// later (each text as given; they join the run's config), key–value tags set or removed, deleted or restored
/// (MLflow's soft delete), or inputs (datasets) it used.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct RunChanged {
    pub exp: ExperimentId,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub params: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub set_tags: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub removed_tags: Vec<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub deleted: Option<bool>,
    /// Inputs as given (MLflow: `{"dataset": {...}, "tags": [...]}` objects).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub inputs: Vec<Value>,
}

#[cfg(test)]
mod tests;
