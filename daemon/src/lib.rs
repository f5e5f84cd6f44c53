//! labd: the daemon that keeps the complete, replayable record of every ML experiment on a host.
//!
//! Data flows one way: [`sources`] → [`log`] → [`views`] → [`api`].
//!
//! # Layout
//! - [`analytics`]: varying hyperparameters and grouped multi-seed summaries (Polars).
//! - [`config`]: flags, `LABD_*` env and TOML → one validated [`config::Config`].
//! - [`daemon`]: the spine: [`daemon::run`] starts the writer, the ingest thread and the API; shutdown.
//! - [`log`]: the event log on redb (append with group commit, read ranges, file cursors, checkpoints).
//! - [`sources`]: input formats, bytes → events, pure.
//! - [`watch`]: notify as a trigger for the ingest loop.
//! - [`ingest`]: discover → look → read → source → append events and cursor in one batch.
//! - [`ids`]: unique experiment ids.
//! - [`filter`]: the filter expression language over runs.
//! - [`views`]: state materialized from the log (registry, ingest problems), incremental and rebuildable.
//! - [`replay`]: rebuild the views, live or as of a past point.
//! - [`jobs`]: progress of long operations.
//! - [`sweeps`]: parameter sweeps: plan, schedule, run trials as child processes, resume.
//! - [`federation`]: the lab-wide ledger over NATS JetStream: publish this log, consume the hosts' (a hub).
//! - [`alerts`]: alert rules' firings recorded and sent to the journal, webhooks and commands.
//! - [`benchmarks`]: benchmark jobs: run `labd-cmr` as a child whose result lines flow in through ingest.
//! - [`api`]: the HTTP API (axum).
//! - [`web`]: the web view (embedded page, its script and uPlot), served beside the API.
pub mod alerts;
pub mod analytics;
pub mod api;
pub mod benchmarks;
pub mod cgroups;
pub mod config;
pub mod daemon;
pub mod federation;
pub mod filter;
pub mod ids;
pub mod ingest;
pub mod jobs;
pub mod limits;
pub mod locks;
pub mod mailbox;
pub mod mlflow;
pub mod process_group;
pub mod replay;
pub mod state;
pub mod sweeps;
pub mod views;
pub mod watch;
pub mod web;

pub use config::Config;
pub use daemon::run;
