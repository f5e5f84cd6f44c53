//! Analytics over runs: hyperparameters as typed dot keys, the keys that vary, and grouped multi-seed
//! aggregation with Polars.
//!
//! - [`band`]: a group's curve: mean and band across runs per x (Polars).
//! - [`bench`]: a benchmark's summary CSV, fits, per-dataset results, comparisons.
//! - [`bench_report`]: a benchmark's analysis report with its recommendations.
//! - [`bench_charts`]: a benchmark's charts (overhead, memory, time by sequence length; strategies), as SVG.
//! - [`complete`]: curves that stop short, have gaps or restart.
//! - [`display`]: display names of parameters and values for tables.
//! - [`messages`]: how often runs' messages mention a keyword, per hyperparameter value, and its trend.
//! - [`params`]: flattening configs, noise keys, varying keys.
//! - [`reduce`]: how a run's curve becomes one number, and the default reduction per metric.
//! - [`stats`]: standard error and 95% intervals (Student's t).
//! - [`summary`]: one value per run (a reduction), grouped and aggregated with Polars.
//! - [`sweep`]: a sweep's per-parameter tables, best configuration, thresholds and report.
//! - [`table`]: a summary sorted, as a Polars frame (CSV, Parquet), with display names.
//! - [`wide`]: the wide runs table: one column per config key, metric and summary number.

pub mod band;
pub mod bench;
pub mod bench_charts;
pub mod bench_report;
pub mod complete;
pub mod display;
pub mod messages;
pub mod params;
pub mod pareto;
pub mod reduce;
pub mod stats;
pub mod summary;
pub mod sweep;
pub mod table;
pub mod wide;

use polars::prelude::PolarsError;

/// Analytics errors: what cannot be answered and why.
#[derive(Debug, thiserror::Error)]
pub enum AnalyticsError {
    #[error("{0}")]
    BadRequest(String),
    #[error("aggregation failed: {0}")]
    Polars(#[from] PolarsError),
}
