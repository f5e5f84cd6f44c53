//! The words labd and its clients share: the events of the log, the lines of the labd run log, and the
//! payloads of the HTTP API. This crate depends on nothing of ours and does no I/O.
//!
//! # Layout
//! - [`event`]: the closed, versioned enum of facts stored in the event log.
//! - [`runlog`]: the labd run log (JSONL) as typed lines, with a tolerant, fast line parser.
//! - [`time`]: timestamps as the run log writes them (RFC 3339 or Unix seconds).
//! - [`api`]: request and response bodies of `/api/v1`.
//! - [`ids`]: experiment ids and config hashes' textual forms.
//! - [`floats`]: metric maps whose NaN and infinities survive JSON.
//! - [`number`]: numbers compared by their exact values, integers kept as integers.
//! - [`sweep`]: sweep definitions and the facts recorded about sweeps and trials.
//! - [`cmr`]: the configuration of a CMR benchmark.
//! - [`canonical`]: canonical JSON and the config hash.
//! - [`bench`]: the facts recorded about benchmarks and their measurements, and the lines that state them.

pub mod alert;
pub mod api;
pub mod bench;
pub mod canonical;
pub mod cmr;
pub mod event;
pub mod float_map;
pub mod floats;
pub mod glob;
pub mod ids;
pub mod number;
pub mod runlog;
pub mod sweep;
pub mod time;

pub use event::{Event, EventKind, Origin, RunStatus, Source};
pub use ids::ExperimentId;
