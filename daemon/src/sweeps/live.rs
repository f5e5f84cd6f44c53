//! The trials this labd runs, as the scheduler keeps them, and the messages of the scheduler's loop.

use super::resources::Grant;
use std::time::Instant;
use tokio::sync::{mpsc, oneshot};

/// Messages to the scheduler's loop: the requests of its mailbox, and its own news.
pub(super) enum Msg {
    /// Something changed (a sweep submitted or resumed, events committed): look again.
    Wake,
    /// Stop a sweep's running trials; answers how many were stopped.
    Cancel(String, oneshot::Sender<usize>),
    /// A trial's process ended (and `oom_kills` of its processes were killed for lack of memory).
    Exited {
        key: Key,
        status: std::io::Result<std::process::ExitStatus>,
        oom_kills: u64,
    },
}

/// The sender of the scheduler's own loop.
pub(super) type Me = mpsc::UnboundedSender<Msg>;

/// A trial: (sweep id, trial id).
pub(super) type Key = (String, String);

/// Why labd is ending a trial itself.
#[derive(Clone, Copy, Debug, PartialEq)]
pub(super) enum Ending {
    TimedOut,
    Cancelled,
    Stopping,
    /// Its sweep's pruner stopped it (the `pruned` event is recorded already).
    Pruned,
}

/// A trial process this labd started and follows.
pub(super) struct Live {
    pub(super) attempt: u32,
    pub(super) pid: u32,
    pub(super) grant: Grant,
    pub(super) started: Instant,
    pub(super) deadline: Option<Instant>,
    pub(super) ending: Option<(Ending, Instant)>,
    pub(super) killed: bool,
}
