//! Request and response bodies of the HTTP API (`/api/v1`), shared by the daemon and labctl.

use crate::event::{Event, RunStatus, Severity};
use crate::ids::ExperimentId;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::BTreeMap;

/// `GET /api/v1/health`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Health {
    pub status: String,
    pub version: String,
    /// Sequence number of the newest event the views have applied (0 when the log is empty).
    pub last_seq: u64,
    /// Sequence number of the newest committed event; the views trail it by the moment between a commit and
    /// its application.
    #[serde(default)]
    pub log_seq: u64,
    pub experiments: usize,
    /// Metric points the views hold (what a client waiting for its points to be queryable compares against).
    #[serde(default)]
    pub points: u64,
    pub uptime_s: f64,
    /// Why intake is paused (`status` is then `degraded`): the last write to the event log failed, e.g. the
    /// disk is full. Reads keep working; intake resumes by itself once writes succeed.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub problem: Option<String>,
    /// This labd's place in a federation, when `[federation]` is configured.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub federation: Option<FederationHealth>,
}

/// A federated labd's connection to NATS, what it has published and what it has received.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct FederationHealth {
    /// This host's name in the federation.
    pub host: String,
    /// `host`, `hub` or `both`.
    pub role: String,
    /// The NATS servers (credentials hidden).
    pub url: String,
    pub connected: bool,
    /// The last problem with NATS (unreachable, refused credentials, a misconfigured stream), until it clears.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub publish: Option<PublishHealth>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub hub: Option<HubHealth>,
}

/// How far this host's log is published.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct PublishHealth {
    /// The last sequence number JetStream acknowledged (and labd stored).
    pub published: u64,
    /// The newest sequence number in the log.
    pub log_seq: u64,
    /// Events not yet acknowledged.
    pub lag_events: u64,
    /// Age of the oldest event not yet acknowledged (0 when there is none).
    pub lag_s: f64,
}

/// What a hub has received.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct HubHealth {
    /// Per host: the last sequence number of its log applied here.
    pub hosts: std::collections::BTreeMap<String, u64>,
    /// Events appended here since labd started.
    pub received: u64,
    /// Shipments received again (redeliveries, republications) and skipped since labd started.
    pub duplicates: u64,
    /// Events kept unread because this labd does not know their format (`labctl errors` lists them).
    pub held: u64,
}

/// A run's status as shown: the last stored status, or `stale` for a running run whose sources went silent.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ShownStatus {
    Running,
    Completed,
    Failed,
    Interrupted,
    Stale,
}

impl ShownStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            ShownStatus::Running => "running",
            ShownStatus::Completed => "completed",
            ShownStatus::Failed => "failed",
            ShownStatus::Interrupted => "interrupted",
            ShownStatus::Stale => "stale",
        }
    }
}

impl From<RunStatus> for ShownStatus {
    fn from(s: RunStatus) -> Self {
        match s {
            RunStatus::Running => ShownStatus::Running,
            RunStatus::Completed => ShownStatus::Completed,
            RunStatus::Failed => ShownStatus::Failed,
            RunStatus::Interrupted => ShownStatus::Interrupted,
        }
    }
}

impl std::str::FromStr for ShownStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "stale" => Ok(ShownStatus::Stale),
            other => other
                .parse::<RunStatus>()
                .map(Into::into)
                .map_err(|e| format!("{e}, or stale")),
        }
    }
}

/// Per-metric facts kept by the registry.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct MetricStats {
    /// Points recorded (NaN counts; null does not).
    pub points: u64,
    #[serde(default)]
    pub first_step: Option<i64>,
    #[serde(default)]
    pub last_step: Option<i64>,
    /// The most recent value (null when it was not finite).
    #[serde(default)]
    pub last: Option<f64>,
    #[serde(default)]
    pub min: Option<f64>,
    #[serde(default)]
    pub max: Option<f64>,
    /// The largest step logged (differs from `last_step` after a restart).
    #[serde(default)]
    pub max_step: Option<i64>,
    /// The epoch of the last point that had one.
    #[serde(default)]
    pub last_epoch: Option<f64>,
    /// The usual distance between logged steps (the smallest positive one seen).
    #[serde(default)]
    pub stride: Option<i64>,
    /// Times the step jumped by more than the stride.
    #[serde(default)]
    pub gaps: u64,
    /// Times the step went backwards (a restart, as after preemption).
    #[serde(default)]
    pub restarts: u64,
}

/// An artifact of a run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Artifact {
    pub role: String,
    pub path: String,
    pub size: Option<u64>,
    pub sha256: Option<String>,
}

/// One experiment as the registry knows it (`GET /api/v1/experiments/{id}`).
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Experiment {
    pub id: ExperimentId,
    pub name: String,
    pub description: Option<String>,
    pub tags: Vec<String>,
    pub config: Value,
    pub config_hash: String,
    pub host: String,
    /// Stored status, or `stale` (derived).
    pub status: ShownStatus,
    pub status_notes: Option<String>,
    /// RFC 3339 times.
    pub started: String,
    pub last_activity: String,
    pub ended: Option<String>,
    /// Files (or `http`) the run's facts came from.
    pub sources: Vec<String>,
    /// Summary group → values.
    pub summaries: BTreeMap<String, Value>,
    pub artifacts: Vec<Artifact>,
    pub messages: u64,
    /// `<split>/<name>` (or `<name>`) → stats.
    pub metrics: BTreeMap<String, MetricStats>,
    /// Fields of the `run` line labd does not know.
    pub extra: serde_json::Map<String, Value>,
    /// The project (an MLflow experiment, by id) the run belongs to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub project: Option<String>,
}

/// One row of `GET /api/v1/experiments` and `labctl ls`.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExperimentRow {
    pub id: ExperimentId,
    pub name: String,
    pub status: ShownStatus,
    pub config_hash: String,
    pub tags: Vec<String>,
    pub started: String,
    pub last_activity: String,
    pub metrics: usize,
    pub points: u64,
    /// The host the run was recorded on (on a hub, its name in the federation).
    #[serde(default)]
    pub host: String,
}

/// `GET /api/v1/experiments/{id}/metrics/{key}`: points of one metric, paged.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct MetricPage {
    pub experiment: ExperimentId,
    pub metric: String,
    /// Points of the metric in all.
    pub total: u64,
    pub offset: u64,
    pub points: Vec<Point>,
}

/// One metric value with its x-axes.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Point {
    pub step: Option<i64>,
    pub epoch: Option<f64>,
    pub wall_time: Option<f64>,
    #[serde(
        default,
        skip_serializing_if = "BTreeMap::is_empty",
        with = "crate::floats::map"
    )]
    pub x: BTreeMap<String, f64>,
    /// `null` in JSON when the value is NaN or infinite; see `repr` then.
    pub value: Option<f64>,
    /// `NaN`, `Infinity` or `-Infinity` when `value` is not finite.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub repr: Option<String>,
}

impl Point {
    /// Builds a point, keeping non-finite values readable in JSON.
    pub fn new(
        step: Option<i64>,
        epoch: Option<f64>,
        wall_time: Option<f64>,
        x: BTreeMap<String, f64>,
        v: f64,
    ) -> Self {
        let (value, repr) = if v.is_finite() {
            (Some(v), None)
        } else if v.is_nan() {
            (None, Some("NaN".to_string()))
        } else if v > 0.0 {
            (None, Some("Infinity".to_string()))
        } else {
            (None, Some("-Infinity".to_string()))
        };
        Point {
            step,
            epoch,
            wall_time,
            x,
            value,
            repr,
        }
    }

    /// The value, non-finite ones included.
    pub fn number(&self) -> f64 {
        match (self.value, self.repr.as_deref()) {
            (Some(v), _) => v,
            (None, Some("Infinity")) => f64::INFINITY,
            (None, Some("-Infinity")) => f64::NEG_INFINITY,
            _ => f64::NAN,
        }
    }
}

/// One event with its sequence number (`GET /api/v1/events`, the SSE tail).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventRecord {
    pub seq: u64,
    pub event: Event,
}

/// `GET /api/v1/events?from=&to=&limit=`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct EventPage {
    pub events: Vec<EventRecord>,
    /// Where to continue, when more events remain.
    pub next: Option<u64>,
}

/// One watched file (`GET /api/v1/ingest`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct FileState {
    pub path: String,
    /// Bytes committed.
    pub offset: u64,
    /// Size when last looked at.
    pub size: u64,
    /// Bytes not yet ingested.
    pub lag: u64,
    pub lines: u64,
    pub errors: u64,
    /// Set when the file is skipped for good (binary, unreadable...), with why.
    pub dead: Option<String>,
    /// RFC 3339 time of the last commit from this file.
    pub updated: String,
}

/// One ingest problem (`GET /api/v1/ingest/errors`, `labctl errors`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ErrorRecord {
    pub seq: u64,
    pub time: String,
    pub path: String,
    pub line: Option<u64>,
    pub severity: Severity,
    pub reason: String,
}

/// `GET /api/v1/ingest`.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IngestState {
    pub watched: Vec<String>,
    pub files: Vec<FileState>,
    pub errors: u64,
    pub lag_bytes: u64,
}

/// `POST /api/v1/ingest`: ingest a path now (a file or a folder, read once; not watched afterwards).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct IngestRequest {
    pub path: String,
    /// Read the files as this format (`labd`, `drgen`, `tensorboard`, `lightning`, `hf`) rather than judge
    /// each by its name.
    #[serde(default)]
    pub format: Option<String>,
}

/// Answer to `POST /api/v1/ingest`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct IngestReport {
    pub files: u64,
    pub lines: u64,
    pub events: u64,
    pub points: u64,
    pub errors: u64,
}

/// `POST /api/v1/replay`.
#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct ReplayRequest {
    /// Build the views as of this point (sequence number or RFC 3339 time) without touching the live ones.
    pub as_of: Option<String>,
    /// Rebuild the views from the whole log and compare them with the live ones, leaving those alone.
    #[serde(default)]
    pub verify: bool,
}

/// Answer to a replay.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ReplayReport {
    /// Last event applied.
    pub upto: u64,
    pub events: u64,
    pub points: u64,
    pub seconds: f64,
    /// True when the live views were replaced; false for an `as_of` replay.
    pub live: bool,
    /// The registry as replayed (for `as_of`), as list rows.
    pub experiments: Vec<ExperimentRow>,
    /// For a verification: the views that differ from the replay (empty: all equal).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub differing: Option<Vec<String>>,
}

impl std::fmt::Display for ReplayReport {
    /// One line for people: what was replayed, how fast, and whether the views were replaced.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "replayed {} events ({} points) up to seq {} in {:.2}s{}",
            self.events,
            self.points,
            self.upto,
            self.seconds,
            if self.live { "; views replaced" } else { "" }
        )?;
        match &self.differing {
            Some(d) if d.is_empty() => write!(f, "; the live views equal it"),
            Some(d) => write!(f, "; the live views DIFFER from it: {}", d.join(", ")),
            None => Ok(()),
        }
    }
}

/// Answer to a push (`POST /api/v1/experiments`, ...).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Pushed {
    pub id: ExperimentId,
    /// Sequence number of the last event written.
    pub seq: u64,
    pub events: u64,
}

/// Every error body: what went wrong, in words a user can act on.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct ApiError {
    pub error: String,
}

/// One firing (`GET /api/v1/alerts`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertRecord {
    /// The `alert_fired` event's sequence number.
    pub seq: u64,
    pub time: String,
    #[serde(flatten)]
    pub fired: crate::alert::AlertFired,
    /// Whether its episode is still open (the condition still holds; a failure or a sweep's end stays closed).
    pub open: bool,
    /// On a hub, another host's firing: that host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host: Option<String>,
    /// How it fared at each webhook and command.
    #[serde(default)]
    pub deliveries: Vec<crate::alert::AlertDelivered>,
}

/// `GET /api/v1/alerts`: the latest firings, newest first.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertList {
    /// Firings recorded in all (labd keeps the latest 10,000).
    pub fired: u64,
    /// Firings whose episode is open.
    pub open: usize,
    /// Conditions met whose firing is being recorded.
    pub pending: usize,
    pub alerts: Vec<AlertRecord>,
}

/// One rule in force (`GET /api/v1/alerts/rules`).
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertRuleInfo {
    #[serde(flatten)]
    pub rule: crate::alert::AlertRule,
    /// `config` or `api`.
    pub from: String,
    /// When it was set.
    pub since: String,
    /// Its firings so far.
    pub fired: u64,
}

/// `GET /api/v1/alerts/rules`: the rules and the sinks configured.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct AlertRules {
    pub rules: Vec<AlertRuleInfo>,
    /// `journal` (when on), then the webhooks' and commands' names.
    pub sinks: Vec<String>,
}
