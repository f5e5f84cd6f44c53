//! The labd run log: JSONL, one run per file or several runs each begun by its own `run` line.
//!
//! ```text
//! {"kind":"run","name":"baseline","config":{"optim":{"lr":0.001}},"tags":["a"],"description":"...","time":T}
//! {"kind":"metrics","split":"train","step":120,"epoch":1,"time":T,"x":{"tokens":61440},"values":{"loss":0.52}}
//! {"kind":"message","level":"info","text":"..."}
//! {"kind":"summary","group":"final","values":{...any JSON...}}
//! {"kind":"artifact","role":"checkpoint","path":"checkpoints/best","sha256":"..."}
//! {"kind":"status","status":"completed","notes":"..."}
//! ```
//! `T` is RFC 3339 text or Unix seconds. Unknown fields are kept. Python's `NaN`, `Infinity` and `-Infinity`
//! are accepted as values; `null` is a missing value. [`parse_line`] is the one parser everybody uses (the
//! daemon's ingestion, `labctl validate`); the types here also generate the JSON Schema in `schemas/json/`.

mod fast;
mod parse;
mod scan;

pub use fast::{MetricsRow, metrics as fast_metrics};

/// The `metrics` line `text` holds, without its null values, when a fast path takes it whole: plain lines
/// scanned by hand ([`scan`]), others read by serde ([`fast`]); `None` leaves the line to [`parse_line`].
pub fn metrics_row(text: &str) -> Option<MetricsRow> {
    scan::metrics_row(text).or_else(|| fast::serde_row(text))
}
pub use parse::{from_object, parse_line, quote_non_finite};

use crate::time::TimeValue;
use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// One line of a run log.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum RunLogLine {
    Run(RunLine),
    Metrics(MetricsLine),
    Message(MessageLine),
    Summary(SummaryLine),
    Artifact(ArtifactLine),
    Status(StatusLine),
    /// Begins a benchmark (see [`crate::bench`]); does not touch the current run.
    Bench(crate::bench::BenchLine),
    /// One measurement of a benchmark.
    BenchResult(crate::bench::BenchResultLine),
    /// A benchmark's final status.
    BenchEnd(crate::bench::BenchEndLine),
}

/// Begins a run; the lines after it belong to it until the next `run` line.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct RunLine {
    /// Human name of the run; defaults to the file's name.
    #[serde(default)]
    pub name: Option<String>,
    /// Nested configuration (hyperparameters); `{}` when absent.
    #[serde(default)]
    pub config: Map<String, Value>,
    #[serde(default)]
    pub tags: Vec<String>,
    #[serde(default)]
    pub description: Option<String>,
    /// Start time; defaults to the time labd reads the line.
    #[serde(default)]
    pub time: Option<TimeValue>,
    /// Fields labd does not know, kept as given.
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// Metric values at one position of the x-axes.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MetricsLine {
    /// `train`, `val`, `eval`, ...; absent for metrics without a split.
    #[serde(default)]
    pub split: Option<String>,
    #[serde(default)]
    pub step: Option<i64>,
    #[serde(default)]
    pub epoch: Option<f64>,
    #[serde(default)]
    pub time: Option<TimeValue>,
    /// Custom x-axes (name → number), e.g. `{"tokens": 61440}`.
    #[serde(default)]
    pub x: BTreeMap<String, f64>,
    /// Metric name → number (`NaN`, `Infinity`, `-Infinity` allowed; `null` means missing).
    pub values: BTreeMap<String, Option<f64>>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct MessageLine {
    /// `debug`, `info`, `warning`, `error`; defaults to `info`.
    #[serde(default)]
    pub level: Option<String>,
    pub text: String,
    #[serde(default)]
    pub time: Option<TimeValue>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct SummaryLine {
    /// Name of the group, e.g. `final`, `test`, `bias`, `xai`; defaults to `final`.
    #[serde(default)]
    pub group: Option<String>,
    /// Any JSON.
    pub values: Value,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct ArtifactLine {
    /// What the file is, e.g. `checkpoint`, `predictions`; defaults to `artifact`.
    #[serde(default)]
    pub role: Option<String>,
    /// Absolute, or relative to the run log's folder.
    pub path: String,
    #[serde(default)]
    pub sha256: Option<String>,
    #[serde(default)]
    pub size: Option<u64>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct StatusLine {
    /// `running`, `completed`, `failed` or `interrupted`.
    pub status: crate::RunStatus,
    #[serde(default)]
    pub notes: Option<String>,
    #[serde(flatten)]
    pub extra: Map<String, Value>,
}

/// A parsed line and the problems found in parts of it that were left out (the rest is kept).
#[derive(Debug, PartialEq)]
pub struct Parsed {
    pub line: RunLogLine,
    pub problems: Vec<String>,
}

/// Why a whole line could not be used.
#[derive(Debug, Clone, PartialEq, thiserror::Error)]
#[error("{0}")]
pub struct LineError(pub String);

/// The JSON Schema of one run-log line, as shipped in `schemas/json/runlog-line.schema.json`.
pub fn json_schema() -> Value {
    let schema = schemars::schema_for!(RunLogLine);
    serde_json::to_value(schema).unwrap_or(Value::Null)
}

#[cfg(test)]
mod tests;
