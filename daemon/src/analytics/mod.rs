//! Analytics over runs: hyperparameters as typed dot keys, the keys that vary, and grouped multi-seed
//! aggregation with Polars.
//!
//! - [`band`]: a group's curve: mean and band across runs per x (Polars).
//! - [`bench`]: a benchmark's summary CSV, report with recommendations, fits, per-dataset results, comparisons.
//! - [`complete`]: curves that stop short, have gaps or restart.
//! - [`display`]: display names of parameters and values for tables.
//! - [`params`]: flattening configs, noise keys, varying keys.
//! - [`stats`]: standard error and 95% intervals (Student's t).
//! - [`summary`]: one value per run (a reduction), grouped and aggregated with Polars.
//! - [`sweep`]: a sweep's per-parameter tables, best configuration, thresholds and report.

pub mod band;
pub mod bench;
pub mod complete;
pub mod display;
pub mod params;
pub mod stats;
pub mod summary;
pub mod sweep;
