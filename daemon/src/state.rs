//! What the HTTP handlers share ([`AppState`], axum's `State`): the settings, the handles to the stages (the
//! event log, the writer's appender, the live views, the ingest thread's mailbox, jobs) and the workers'
//! mailboxes. It names no worker: a worker is reached through its mailbox ([`crate::mailbox`]) and is started
//! with narrow handles of its own, never this.

use crate::config::Config;
use crate::ids::Ids;
use crate::ingest::pump::IngestMsg;
use crate::jobs::Jobs;
use crate::mailbox;
use crate::views::Views;
use crate::views::live::LiveViews;
use labd_log::EventLog;
use labd_log::writer::Appender;
use std::sync::mpsc::Sender;
use std::sync::{Arc, RwLockReadGuard};
use std::time::Instant;
use tokio::sync::watch;

/// The handlers' state. Lock order: the views' lock only; it is never held across `.await`.
pub struct AppState {
    pub config: Config,
    pub log: EventLog,
    pub views: LiveViews,
    pub appender: Appender,
    pub ids: Arc<Ids>,
    pub jobs: Jobs,
    /// The ingest thread's mailbox (ingest jobs).
    pub ingest: Sender<IngestMsg>,
    /// The sweep scheduler's mailbox.
    pub sweeps: mailbox::Sweeps,
    /// The benchmark runner's mailbox.
    pub benchmarks: mailbox::Benchmarks,
    /// The federation worker's report, when `[federation]` is configured.
    pub federation: Option<mailbox::Federation>,
    pub started: Instant,
    /// Turns true when the daemon begins to stop (long-lived responses such as the SSE tail end then).
    pub stopping: watch::Receiver<bool>,
    /// Held by an MLflow API call from checking the views to its events' commit, where the check decides
    /// what is written (a new experiment's id and name, a parameter logged twice): such calls go one at a time.
    pub mlflow_writes: tokio::sync::Mutex<()>,
    /// Held by an MLflow API write to a run, one run at a time (see [`crate::locks::KeyedLocks`]).
    pub mlflow_runs: crate::locks::KeyedLocks,
}

impl AppState {
    /// Read access to the live views.
    pub fn views(&self) -> RwLockReadGuard<'_, Views> {
        self.views.read()
    }
}
