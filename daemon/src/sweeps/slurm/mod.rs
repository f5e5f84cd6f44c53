//! The Slurm executor: trials of sweeps with `executor: slurm` are handed to the cluster as job arrays, and
//! followed there. No scheduler of labd's own: Slurm decides where and when; labd submits, watches and
//! records. One task, beside the local scheduler:
//! - **Submission** ([`submit`]): the waiting trials of a running sweep become one batch: each trial's
//!   attempt folder and script, the batch's task list and job script, then one `sbatch --array`. `submitting`
//!   is recorded first, `submitted` (job id, array task) after: a labd that died between the two finds the job
//!   by its name (`labd-<batch>`) instead of submitting it twice.
//! - **Polling** ([`queue`]): one `squeue --json` (and one `sacct` where accounting is on) per interval for all
//!   the jobs in flight; every change becomes an event ([`outcome`]).
//! - **Control**: a sweep's cancel runs `scancel` on its jobs; a job cancelled from outside shows as cancelled.
//!
//! Everything it knows comes from the sweeps view, which the events build: after a restart it re-attaches to
//! the jobs in flight, and records those that ended meanwhile.

pub mod outcome;
pub mod queue;
pub mod submit;

use super::record::Deps;
use crate::views::sweeps::{Sweep, Trial, TrialStatus};
use labd_schemas::sweep::{Executor, SweepState};
use std::collections::{BTreeSet, HashMap};
use std::path::PathBuf;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// What belongs to the site: where Slurm's commands are, the shared folder, how often to poll.
#[derive(Clone, Debug)]
pub struct Site {
    pub sbatch: PathBuf,
    pub squeue: PathBuf,
    pub sacct: PathBuf,
    pub scancel: PathBuf,
    /// Where Slurm sweeps' trial folders and run logs are: on storage the nodes share, watched by labd.
    pub dir: PathBuf,
    /// Time between two polls of the queue.
    pub poll: Duration,
}

/// Requests to the Slurm executor.
pub enum Msg {
    /// Something changed (a sweep submitted, paused or resumed): look again.
    Wake,
    /// `scancel` a sweep's jobs; the reply is how many trials were in flight.
    Cancel(String, oneshot::Sender<usize>),
}

/// A trial in flight: (sweep, trial) with its attempt, and the job and array task it is in (none while its
/// batch is being submitted).
#[derive(Clone, Debug, PartialEq)]
pub struct InFlight {
    pub sweep: String,
    pub trial: String,
    pub attempt: u32,
    pub job: Option<(String, u32)>,
    /// The batch being submitted, when no job id is recorded yet.
    pub batch: Option<String>,
    pub running: bool,
}

/// The executor's loop, until labd stops (the jobs go on; the next start re-attaches to them).
pub async fn run(deps: Deps, site: Site, mut rx: mpsc::UnboundedReceiver<Msg>) {
    let mut stopping = deps.stopping.clone();
    let mut tick = tokio::time::interval(site.poll.max(Duration::from_millis(200)));
    let mut state = State::new(&site).await;
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => return,
                Some(Msg::Wake) => {}
                Some(Msg::Cancel(sweep, reply)) => {
                    let _ = reply.send(cancel(&deps, &site, &sweep).await);
                }
            },
            _ = tick.tick() => state.poll_due = true,
            _ = stopping.changed() => return,
        }
        state.step(&deps, &site).await;
    }
}

/// What the executor keeps between steps: when to poll, and the backoff of sweeps whose submission failed for
/// a reason that may pass (the controller unreachable).
struct State {
    poll_due: bool,
    /// Whether `sacct` answers (accounting storage is on).
    accounting: bool,
    backoff: HashMap<String, (Instant, Duration)>,
    /// The array tasks of pruned trials already cancelled (after a restart they are cancelled again: harmless).
    stopped: BTreeSet<(String, u32)>,
}

impl State {
    async fn new(site: &Site) -> State {
        State {
            poll_due: true,
            accounting: queue::accounting(site).await,
            backoff: HashMap::new(),
            stopped: BTreeSet::new(),
        }
    }

    /// Submits what waits, cancels the tasks of trials the pruner stopped, and, when it is time, polls what is
    /// in flight.
    async fn step(&mut self, deps: &Deps, site: &Site) {
        self.stop_pruned(deps, site).await;
        for (sweep, trials) in waiting(deps) {
            if self
                .backoff
                .get(&sweep.id)
                .is_some_and(|(until, _)| Instant::now() < *until)
            {
                continue;
            }
            match submit::batch(deps, site, &sweep, &trials).await {
                Ok(()) => {
                    self.backoff.remove(&sweep.id);
                }
                Err(submit::Failure::Transient(why)) => self.back_off(&sweep.id, &why),
                Err(submit::Failure::Rejected(_)) => {}
            }
        }
        if !self.poll_due {
            return;
        }
        self.poll_due = false;
        let flight = in_flight(deps);
        if flight.is_empty() {
            return;
        }
        let again = match outcome::poll(deps, site, &flight, self.accounting).await {
            Ok(again) => again,
            Err(why) => {
                tracing::warn!("slurm: polling the queue failed: {why}; trying again");
                return;
            }
        };
        // Batches recorded as being submitted that Slurm does not know: sbatch failed, or labd died before it.
        for u in again {
            if self
                .backoff
                .get(&u.sweep)
                .is_some_and(|(until, _)| Instant::now() < *until)
            {
                continue;
            }
            let Some(sweep) = deps.views.read().sweeps.sweeps.get(&u.sweep).map(head) else {
                continue;
            };
            let dir = submit::batch_dir(&sweep.dir, &u.batch);
            match submit::submit(deps, site, &sweep, &u.batch, &dir).await {
                Ok(()) => {
                    self.backoff.remove(&u.sweep);
                }
                Err(submit::Failure::Transient(why)) => self.back_off(&u.sweep, &why),
                Err(submit::Failure::Rejected(_)) => {}
            }
        }
    }

    /// `scancel JOB_TASK` for each trial recorded as pruned whose array task may still run (its Slurm end not
    /// recorded). The pruned trial is no longer in flight, so the poll leaves its status alone.
    async fn stop_pruned(&mut self, deps: &Deps, site: &Site) {
        // Those of running sweeps, and of the last ten minutes (a sweep may finish before its pruned task ends).
        let recent = labd_schemas::time::now_micros() - 600_000_000;
        let tasks: Vec<(String, u32)> = {
            let v = deps.views.read();
            v.sweeps
                .sweeps
                .values()
                .filter(|s| {
                    s.is_local() && s.spec.executor == Executor::Slurm && s.spec.pruner.is_some()
                })
                .flat_map(|s| {
                    let running = s.state == SweepState::Running;
                    s.trials()
                        .filter(move |t| running || t.ended.is_some_and(|e| e > recent))
                })
                .filter(|t| t.status == TrialStatus::Pruned)
                .filter_map(|t| {
                    let j = t.jobs.last().filter(|j| j.attempt == t.attempts)?;
                    j.state.is_none().then(|| (j.job.clone(), j.task))
                })
                .filter(|task| !self.stopped.contains(task))
                .collect()
        };
        for (job, task) in tasks {
            let target = format!("{job}_{task}");
            match tokio::process::Command::new(&site.scancel)
                .arg(&target)
                .output()
                .await
            {
                Ok(o) if o.status.success() => {
                    tracing::info!("slurm: a pruned trial's task {target} cancelled")
                }
                Ok(o) => tracing::warn!(
                    "slurm: scancel {target}: {}",
                    String::from_utf8_lossy(&o.stderr).trim()
                ),
                Err(e) => tracing::warn!("slurm: {}: {e}", site.scancel.display()),
            }
            self.stopped.insert((job, task));
        }
    }

    fn back_off(&mut self, sweep: &str, why: &str) {
        let wait = self
            .backoff
            .get(sweep)
            .map_or(Duration::from_secs(1), |(_, w)| {
                (*w * 2).min(Duration::from_secs(60))
            });
        tracing::warn!(
            "slurm: submitting sweep {sweep} failed ({why}); trying again in {}s",
            wait.as_secs()
        );
        self.backoff
            .insert(sweep.to_string(), (Instant::now() + wait, wait));
    }
}

/// The running Slurm sweeps' trials waiting to be submitted, in plan order.
fn waiting(deps: &Deps) -> Vec<(super::launch::Head, Vec<Trial>)> {
    let v = deps.views.read();
    v.sweeps
        .sweeps
        .values()
        .filter(|s| {
            s.is_local() && s.spec.executor == Executor::Slurm && s.state == SweepState::Running
        })
        .filter_map(|s| {
            let trials: Vec<Trial> = s
                .trials()
                .filter(|t| t.status.is_waiting())
                .cloned()
                .collect();
            (!trials.is_empty()).then(|| (head(s), trials))
        })
        .collect()
}

fn head(s: &Sweep) -> super::launch::Head {
    super::launch::Head {
        id: s.id.clone(),
        dir: s.dir.clone(),
        spec: s.spec.clone(),
    }
}

/// Every trial of a Slurm sweep that is queued or running on the cluster (or being submitted).
pub fn in_flight(deps: &Deps) -> Vec<InFlight> {
    let v = deps.views.read();
    v.sweeps
        .sweeps
        .values()
        .filter(|s| s.is_local() && s.spec.executor == Executor::Slurm)
        .flat_map(|s| {
            s.trials()
                .filter(|t| matches!(t.status, TrialStatus::Queued | TrialStatus::Running))
                .map(|t| InFlight {
                    sweep: s.id.clone(),
                    trial: t.id.clone(),
                    attempt: t.attempts,
                    job: t
                        .jobs
                        .last()
                        .filter(|j| j.attempt == t.attempts && t.submitting.is_none())
                        .map(|j| (j.job.clone(), j.task)),
                    batch: t.submitting.clone(),
                    running: t.status == TrialStatus::Running,
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// `scancel` on a sweep's jobs; answers how many of its trials were in flight. The next poll records them
/// cancelled.
async fn cancel(deps: &Deps, site: &Site, sweep: &str) -> usize {
    let flight: Vec<InFlight> = in_flight(deps)
        .into_iter()
        .filter(|f| f.sweep == sweep)
        .collect();
    let jobs: BTreeSet<String> = flight
        .iter()
        .filter_map(|f| f.job.as_ref().map(|(j, _)| j.clone()))
        .collect();
    if !jobs.is_empty() {
        let out = tokio::process::Command::new(&site.scancel)
            .args(&jobs)
            .output()
            .await;
        match out {
            Ok(o) if o.status.success() => {
                tracing::info!("slurm: sweep {sweep}: cancelled jobs {jobs:?}")
            }
            Ok(o) => tracing::warn!(
                "slurm: scancel {jobs:?}: {}",
                String::from_utf8_lossy(&o.stderr).trim()
            ),
            Err(e) => tracing::warn!("slurm: {}: {e}", site.scancel.display()),
        }
    }
    flight.len()
}
