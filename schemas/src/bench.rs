//! Benchmarks: the facts recorded about a benchmark and its measurements, and the run-log lines that state
//! them. labd's own CMR benchmark runner (`labd-cmr`) writes these lines, and so may any other harness: a file
//! of them dropped into a watched folder lands in the same benchmarks view.
//!
//! ```text
//! {"kind":"bench","bench":"cmr-a1b2","suite":"cmr","name":"default","config":{...},"build":{...},"planned":42}
//! {"kind":"bench_result","bench":"cmr-a1b2","analysis":"overhead","params":{"sequence_length":512,"batch_size":1},
//!  "values":{"baseline_time":0.0123,"full_cmr_time":0.0141},"samples":{"baseline_time":[0.0122,0.0124]}}
//! {"kind":"bench_end","bench":"cmr-a1b2","status":"completed"}
//! ```
//! See `schemas/BENCHMARKS.md` for the analyses and the names of their params and values.

use serde::{Deserialize, Serialize};
use serde_json::{Map, Value};
use std::collections::BTreeMap;

/// How a benchmark stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, Serialize, Deserialize, schemars::JsonSchema)]
#[serde(rename_all = "snake_case")]
pub enum BenchStatus {
    Running,
    Completed,
    Failed,
    Cancelled,
    /// labd stopped while its runner was measuring.
    Interrupted,
}

impl BenchStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            BenchStatus::Running => "running",
            BenchStatus::Completed => "completed",
            BenchStatus::Failed => "failed",
            BenchStatus::Cancelled => "cancelled",
            BenchStatus::Interrupted => "interrupted",
        }
    }

    pub fn is_final(self) -> bool {
        !matches!(self, BenchStatus::Running)
    }
}

impl std::str::FromStr for BenchStatus {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "running" => Ok(BenchStatus::Running),
            "completed" => Ok(BenchStatus::Completed),
            "failed" => Ok(BenchStatus::Failed),
            "cancelled" => Ok(BenchStatus::Cancelled),
            "interrupted" => Ok(BenchStatus::Interrupted),
            other => Err(format!(
                "unknown benchmark status {other:?} (expected running, completed, failed, cancelled or interrupted)"
            )),
        }
    }
}

/// A benchmark began.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchStarted {
    pub bench: String,
    /// Which benchmark, e.g. `cmr`.
    pub suite: String,
    pub name: String,
    /// The configuration as run.
    pub config: Value,
    /// What was measured with: version, features, torch, device, ...
    #[serde(default)]
    pub build: Map<String, Value>,
    pub host: String,
    /// Measurements planned, for progress.
    #[serde(default)]
    pub planned: Option<u64>,
    /// When it started (Unix microseconds).
    pub started: i64,
    /// `labd` when the daemon runs it; absent for results dropped in from elsewhere.
    #[serde(default)]
    pub runner: Option<String>,
}

/// One measurement: an analysis at one point of its parameters, as medians and spreads of repeated samples.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchMeasured {
    pub bench: String,
    /// `overhead`, `memory`, `scalability`, `layer`, `retrieval`, `reconstruction`, `buffer`, `components`,
    /// `dataset`, or any other name.
    pub analysis: String,
    /// Where in the analysis' space: sequence length, batch size, layer, strategy, dataset, ...
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Name → figure. NaN and infinities survive as in metric values.
    #[serde(with = "crate::floats::map")]
    pub values: BTreeMap<String, f64>,
    /// Name → the repeated samples the figure summarizes.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub samples: BTreeMap<String, Vec<f64>>,
}

/// A benchmark's status changed.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct BenchChanged {
    pub bench: String,
    pub status: BenchStatus,
    #[serde(default)]
    pub message: Option<String>,
}

/// `{"kind":"bench", ...}`: begins a benchmark.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BenchLine {
    /// The benchmark's id: letters, digits, `-`, `_`, `.`; at most 128 characters.
    pub bench: String,
    /// Which benchmark; defaults to `cmr`.
    #[serde(default)]
    pub suite: Option<String>,
    /// Human name; defaults to the id.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default)]
    pub config: Value,
    #[serde(default)]
    pub build: Map<String, Value>,
    #[serde(default)]
    pub planned: Option<u64>,
    /// Start time; defaults to the time labd reads the line.
    #[serde(default)]
    pub time: Option<crate::time::TimeValue>,
    #[serde(default)]
    pub runner: Option<String>,
}

/// `{"kind":"bench_result", ...}`: one measurement of a benchmark begun earlier (in this file or another).
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BenchResultLine {
    pub bench: String,
    pub analysis: String,
    #[serde(default)]
    pub params: Map<String, Value>,
    /// Name → number (`NaN`, `Infinity`, `-Infinity` allowed; `null` means missing).
    pub values: BTreeMap<String, Option<f64>>,
    #[serde(default)]
    pub samples: BTreeMap<String, Vec<f64>>,
}

/// `{"kind":"bench_end", ...}`: a benchmark's final status.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize, schemars::JsonSchema)]
pub struct BenchEndLine {
    pub bench: String,
    pub status: BenchStatus,
    #[serde(default)]
    pub message: Option<String>,
}

/// Whether `id` is a valid benchmark id.
pub fn valid_id(id: &str) -> bool {
    !id.is_empty()
        && id.len() <= 128
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.'))
        && !id.starts_with('.')
}
