//! labd: the daemon that keeps the complete, replayable record of every ML experiment on a host.
//!
//! # Layout
//! - [`log`]: the event log on redb (append with group commit, read ranges, file cursors, checkpoints).
//! - [`sources`]: input formats, bytes → events, pure.
//! - [`views`]: state materialized from the log (registry, ingest problems), incremental and rebuildable.
pub mod log;
pub mod sources;
pub mod views;
