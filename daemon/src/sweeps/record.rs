//! What the scheduler works with and how it records: its narrow handles ([`Deps`]) and the recorder that
//! appends its events in the order it makes them.

use super::live::{Me, Msg};
use crate::ingest::pump::IngestMsg;
use crate::views::live::LiveViews;
use labd_log::writer::{Appender, Batch};
use labd_schemas::sweep::{TrialChanged, TrialState};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Source};
use std::sync::mpsc::Sender;
use std::time::Duration;
use tokio::sync::{mpsc, watch};

/// What the scheduler needs of the daemon: narrow handles, not the daemon's whole state.
#[derive(Clone)]
pub struct Deps {
    /// The sweeps view decides what runs.
    pub views: LiveViews,
    pub appender: Appender,
    /// The ingest thread's mailbox: a trial's new run log is read at once, not at the next rescan.
    pub ingest: Sender<IngestMsg>,
    /// Turns true when labd begins to stop: running trials are stopped (and run again on the next start).
    pub stopping: watch::Receiver<bool>,
    /// How often running trials' usage is sampled.
    pub heartbeat: Duration,
    /// Where the scheduler says what `parallel: auto` allows each sweep.
    pub budgets: crate::mailbox::Budgets,
}

/// Records the scheduler's events in the order it makes them, without making it wait for the commits: one
/// task appends whatever has queued as one batch, then wakes the scheduler (the view has the news by then).
pub(super) struct Recorder {
    tx: mpsc::UnboundedSender<Vec<EventKind>>,
}

impl Recorder {
    pub(super) fn start(deps: Deps, me: Me) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<EventKind>>();
        let task = tokio::spawn(async move {
            while let Some(mut events) = rx.recv().await {
                while let Ok(more) = rx.try_recv() {
                    events.extend(more);
                }
                append(&deps, events).await;
                let _ = me.send(Msg::Wake);
            }
        });
        (Recorder { tx }, task)
    }

    pub(super) fn record(&self, events: Vec<EventKind>) {
        if !events.is_empty() {
            let _ = self.tx.send(events);
        }
    }

    /// Waits until everything recorded is committed.
    pub(super) async fn close(self, task: tokio::task::JoinHandle<()>) {
        drop(self.tx);
        let _ = task.await;
    }
}

/// Appends the scheduler's events and waits for the commit; answers whether they were recorded (a failure is
/// logged).
pub(super) async fn append(deps: &Deps, events: Vec<EventKind>) -> bool {
    if events.is_empty() {
        return true;
    }
    match deps.appender.append_async(batch_of(events)).await {
        Ok(_) => true,
        Err(e) => {
            tracing::error!("sweeps: recording trial events failed: {e}");
            false
        }
    }
}

/// A batch of daemon events, stamped now.
pub(super) fn batch_of(events: Vec<EventKind>) -> Batch {
    let now = now_micros();
    Batch {
        events: events
            .into_iter()
            .map(|k| Event::new(now, Source::Daemon, k))
            .collect(),
        cursors: Vec::new(),
        positions: Vec::new(),
    }
}

pub(super) fn trial_event(sweep: &str, trial: &str, attempt: u32, state: TrialState) -> EventKind {
    EventKind::TrialChanged(Box::new(TrialChanged {
        sweep: sweep.into(),
        trial: trial.into(),
        attempt,
        state,
    }))
}
