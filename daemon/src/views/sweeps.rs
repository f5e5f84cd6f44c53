//! The sweeps view: every sweep's definition, its trials and where each stands, built from the sweep and trial
//! events alone (so a restarted labd knows exactly what had completed, what was running and what is left).
//! Trials are linked to the experiment their run log created.

use labd_log::Seq;
use labd_schemas::event::ExperimentCreated;
use labd_schemas::sweep::{SweepCreated, SweepState, TrialChanged, TrialPlan, TrialState, Usage};
use labd_schemas::{Event, EventKind, ExperimentId, Source};
use serde::{Deserialize, Serialize};
use serde_json::Value;
use std::collections::{BTreeMap, HashMap};
use std::path::{Path, PathBuf};

/// Where a trial stands.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum TrialStatus {
    /// Planned, not started yet.
    Pending,
    /// Queued (first time or for a retry).
    Scheduled,
    /// Handed to Slurm, waiting in its queue.
    Queued,
    Running,
    Completed,
    /// Exited non-zero or could not start, with no retry left.
    Failed,
    /// Killed at its timeout, with no retry left.
    TimedOut,
    Cancelled,
    /// Running when labd stopped; it runs again.
    Interrupted,
    /// Stopped early by the sweep's pruner.
    Pruned,
}

impl TrialStatus {
    /// Waits to be started.
    pub fn is_waiting(self) -> bool {
        matches!(
            self,
            TrialStatus::Pending | TrialStatus::Scheduled | TrialStatus::Interrupted
        )
    }

    /// Ended without success.
    pub fn is_failed(self) -> bool {
        matches!(self, TrialStatus::Failed | TrialStatus::TimedOut)
    }
}

/// One trial.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Trial {
    pub id: String,
    pub params: BTreeMap<String, Value>,
    pub repeat: u32,
    pub config: Value,
    pub status: TrialStatus,
    /// Attempts started so far.
    pub attempts: u32,
    /// Attempts that failed (exited non-zero, could not start, timed out): retries are counted by these.
    pub failures: u32,
    pub exit_code: Option<i32>,
    /// The experiment its run log created (the latest attempt's).
    pub experiment_id: Option<ExperimentId>,
    /// Unix microseconds.
    pub started: Option<i64>,
    pub ended: Option<i64>,
    /// Seconds the last finished attempt ran.
    pub secs: Option<f64>,
    pub pid: Option<u32>,
    pub start_ticks: u64,
    pub gpus: Vec<u32>,
    pub run_log: Option<String>,
    /// Why it failed, was retried or interrupted (the latest).
    pub reason: Option<String>,
    /// The latest usage sample, and the peaks over the sweep.
    pub usage: Option<Usage>,
    pub peak_rss: u64,
    pub peak_cpu: f64,
    /// With Slurm: every attempt's job and array task, node and how Slurm saw it end.
    #[serde(default)]
    pub jobs: Vec<SlurmAttempt>,
    /// With Slurm: the batch this trial's next attempt is being submitted in (`labd-<batch>`), until Slurm's job
    /// id is recorded.
    #[serde(default)]
    pub submitting: Option<String>,
    /// The next rung of the sweep's pruner this trial can reach.
    #[serde(default)]
    pub next_rung: u32,
}

/// One attempt of a trial as a Slurm job's array task.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct SlurmAttempt {
    pub attempt: u32,
    pub job: String,
    pub task: u32,
    pub node: Option<String>,
    pub gpus: Vec<String>,
    /// Slurm's final state (`COMPLETED`, `TIMEOUT`, ...), once it ended.
    pub state: Option<String>,
    pub max_rss: Option<u64>,
    pub cpu_secs: Option<f64>,
}

/// One sweep.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Sweep {
    pub id: String,
    pub spec: labd_schemas::sweep::SweepSpec,
    pub dir: String,
    pub state: SweepState,
    pub reason: Option<String>,
    /// Unix microseconds.
    pub created: i64,
    pub updated: i64,
    /// Trial ids in plan order.
    pub order: Vec<String>,
    pub trials: HashMap<String, Trial>,
    /// On a hub, for another host's sweep: that host (its trials run there; this labd only shows them).
    #[serde(default)]
    pub host: Option<String>,
    /// Its id on that host, when it has another one here.
    #[serde(default)]
    pub origin_id: Option<String>,
    /// The pruner's rungs: per bracket, per rung, the values recorded there in log order.
    #[serde(default)]
    pub rungs: Vec<Vec<Vec<f64>>>,
}

impl Sweep {
    /// Whether this labd runs the sweep's trials (it is not another host's, seen on a hub).
    pub fn is_local(&self) -> bool {
        self.host.is_none()
    }

    /// Trials in plan order.
    pub fn trials(&self) -> impl Iterator<Item = &Trial> {
        self.order.iter().filter_map(|id| self.trials.get(id))
    }

    /// How many trials are in each status.
    pub fn counts(&self) -> BTreeMap<TrialStatus, usize> {
        let mut c = BTreeMap::new();
        for t in self.trials.values() {
            *c.entry(t.status).or_insert(0) += 1;
        }
        c
    }
}

/// The sweeps view.
#[derive(Clone, Debug, Default, PartialEq, Serialize, Deserialize)]
pub struct Sweeps {
    pub sweeps: BTreeMap<String, Sweep>,
    /// Run-log path → (sweep, trial), to link the experiment a trial's run log creates.
    run_logs: HashMap<String, (String, String)>,
    /// Experiments created from a run log in a sweep's folder before its attempt's start was recorded (after
    /// a crash, ingest may read it first): linked when the start arrives.
    #[serde(default)]
    early: HashMap<String, ExperimentId>,
}

impl Sweeps {
    pub fn apply(&mut self, _seq: Seq, event: &Event) {
        match &event.kind {
            EventKind::SweepCreated(c) => self.created(c, event.time, event.origin.as_deref()),
            EventKind::SweepChanged(c) => {
                if let Some(s) = self.sweeps.get_mut(&c.sweep) {
                    s.state = c.state;
                    s.reason = c.reason.clone();
                    s.updated = event.time;
                }
            }
            EventKind::TrialChanged(c) => self.trial_changed(c, event.time),
            EventKind::TrialAdded(c) => {
                if let Some(s) = self.sweeps.get_mut(&c.sweep)
                    && !s.trials.contains_key(&c.trial.id)
                {
                    s.order.push(c.trial.id.clone());
                    s.trials.insert(c.trial.id.clone(), new_trial(&c.trial));
                    s.updated = event.time;
                }
            }
            EventKind::ExperimentCreated(e) => {
                if let Source::File { path, .. } = &event.source {
                    self.run_created(e, path);
                }
            }
            _ => {}
        }
    }

    /// A sweep submitted (again): its plan, keeping the trials a resume keeps.
    fn created(&mut self, c: &SweepCreated, time: i64, origin: Option<&labd_schemas::Origin>) {
        let mut old = self.sweeps.remove(&c.sweep);
        let keep = c.spec.resume;
        let mut trials: HashMap<String, Trial> = c
            .trials
            .iter()
            .map(|p| {
                let kept = old
                    .as_ref()
                    .filter(|_| keep)
                    .and_then(|o| o.trials.get(&p.id))
                    .cloned();
                (p.id.clone(), kept.unwrap_or_else(|| new_trial(p)))
            })
            .collect();
        let mut order: Vec<String> = c.trials.iter().map(|p| p.id.clone()).collect();
        // A model-based sweep's trials were chosen as it ran (none are planned up front): a resume keeps them.
        if keep
            && c.spec.strategy.is_adaptive()
            && let Some(o) = old.as_mut()
        {
            order = std::mem::take(&mut o.order);
            trials = std::mem::take(&mut o.trials);
        }
        self.sweeps.insert(
            c.sweep.clone(),
            Sweep {
                id: c.sweep.clone(),
                spec: c.spec.clone(),
                dir: c.dir.clone(),
                state: SweepState::Running,
                reason: None,
                created: old.as_ref().map_or(time, |o| o.created),
                updated: time,
                order,
                trials,
                host: origin.map(|o| o.host.clone()),
                origin_id: origin.and_then(|o| o.id.clone()),
                rungs: old.map(|o| o.rungs).unwrap_or_default(),
            },
        );
    }

    /// A trial's attempt changed state.
    fn trial_changed(&mut self, c: &TrialChanged, time: i64) {
        let Some(s) = self.sweeps.get_mut(&c.sweep) else {
            return;
        };
        s.updated = time;
        let Some(t) = s.trials.get_mut(&c.trial) else {
            return;
        };
        match &c.state {
            TrialState::RungReached {
                bracket,
                rung,
                value,
                ..
            } => {
                t.next_rung = rung + 1;
                let (b, r) = (*bracket as usize, *rung as usize);
                if s.rungs.len() <= b {
                    s.rungs.resize(b + 1, Vec::new());
                }
                if s.rungs[b].len() <= r {
                    s.rungs[b].resize(r + 1, Vec::new());
                }
                s.rungs[b][r].push(*value);
            }
            TrialState::Pruned {
                rule,
                rung,
                step,
                value,
                threshold,
                compared,
            } => {
                // The pid stays: should labd die before ending the group, its next start ends it.
                t.status = TrialStatus::Pruned;
                t.ended = Some(time);
                t.reason = Some(format!(
                    "pruned by {rule}{} at step {step}: {value} against {threshold} ({compared} compared)",
                    rung.map(|r| format!(" at rung {r}")).unwrap_or_default()
                ));
            }
            TrialState::Scheduled => t.status = TrialStatus::Scheduled,
            TrialState::Started {
                pid,
                start_ticks,
                gpus,
                run_log,
            } => {
                t.status = TrialStatus::Running;
                t.attempts = c.attempt;
                t.started = Some(time);
                t.ended = None;
                t.exit_code = None;
                t.pid = Some(*pid);
                t.start_ticks = *start_ticks;
                t.gpus = gpus.clone();
                t.run_log = Some(run_log.clone());
                // The trial's run is this attempt's, once its run log creates one.
                t.experiment_id = self.early.remove(run_log);
                self.run_logs
                    .insert(run_log.clone(), (c.sweep.clone(), c.trial.clone()));
            }
            TrialState::Heartbeat { usage } => {
                t.peak_rss = t.peak_rss.max(usage.rss);
                t.peak_cpu = t.peak_cpu.max(usage.cpu);
                t.usage = Some(usage.clone());
            }
            TrialState::Exited {
                code,
                secs,
                oom_kills,
                ..
            } => {
                t.exit_code = *code;
                t.secs = Some(*secs);
                t.ended = Some(time);
                t.pid = None;
                t.status = if *code == Some(0) {
                    TrialStatus::Completed
                } else {
                    let how = match code {
                        Some(c) => format!("exited with code {c}"),
                        None => "killed by a signal".into(),
                    };
                    t.reason = Some(if *oom_kills > 0 {
                        format!("{how}: {}", out_of_memory(*oom_kills))
                    } else {
                        how
                    });
                    t.failures += 1;
                    TrialStatus::Failed
                };
            }
            TrialState::StartFailed { reason } => {
                // Its run log (header only) is no trial's run.
                let log = attempt_dir(&s.dir, &c.trial, c.attempt).join("run.jsonl");
                self.early.remove(&*log.to_string_lossy());
                t.attempts = c.attempt;
                t.failures += 1;
                t.status = TrialStatus::Failed;
                t.reason = Some(reason.clone());
                t.ended = Some(time);
            }
            TrialState::TimedOut { secs } => {
                t.status = TrialStatus::TimedOut;
                t.failures += 1;
                t.secs = Some(*secs);
                t.ended = Some(time);
                t.pid = None;
                t.reason = Some(format!("timed out after {secs:.0} s"));
            }
            TrialState::Retrying { reason } => {
                t.status = TrialStatus::Scheduled;
                t.reason = Some(reason.clone());
            }
            TrialState::Cancelled => {
                t.status = TrialStatus::Cancelled;
                t.pid = None;
                t.ended = Some(time);
            }
            TrialState::Interrupted { reason } => {
                t.status = TrialStatus::Interrupted;
                t.pid = None;
                t.reason = Some(reason.clone());
            }
            TrialState::Submitting { batch } => {
                t.status = TrialStatus::Queued;
                t.attempts = c.attempt;
                t.submitting = Some(batch.clone());
            }
            TrialState::Submitted { job, task } => {
                t.status = TrialStatus::Queued;
                t.attempts = c.attempt;
                t.submitting = None;
                t.started = None;
                t.ended = None;
                t.exit_code = None;
                t.jobs.push(SlurmAttempt {
                    attempt: c.attempt,
                    job: job.clone(),
                    task: *task,
                    ..Default::default()
                });
                // labd wrote the run log's first line at submission: the trial's run is this attempt's.
                let log = attempt_dir(&s.dir, &c.trial, c.attempt).join("run.jsonl");
                let log = log.to_string_lossy().into_owned();
                t.experiment_id = self.early.remove(&log);
                t.run_log = Some(log.clone());
                self.run_logs
                    .insert(log, (c.sweep.clone(), c.trial.clone()));
            }
            TrialState::SlurmStarted {
                node,
                gpus,
                run_log,
                ..
            } => {
                t.status = TrialStatus::Running;
                t.started = Some(time);
                t.run_log = Some(run_log.clone());
                if let Some(a) = t.jobs.last_mut() {
                    a.node = Some(node.clone());
                    a.gpus = gpus.clone();
                }
            }
            TrialState::SlurmEnded {
                slurm_state,
                max_rss,
                cpu_secs,
                ..
            } => {
                if let Some(a) = t.jobs.last_mut() {
                    a.state = Some(slurm_state.clone());
                    a.max_rss = *max_rss;
                    a.cpu_secs = *cpu_secs;
                }
            }
            TrialState::Requeued { reason } => {
                t.status = TrialStatus::Scheduled;
                t.reason = Some(reason.clone());
                t.ended = Some(time);
            }
        }
    }

    /// A run created from a file: a trial's run when the file is the run log of its latest attempt; kept
    /// aside when the file is in a sweep's folder but its start is not known yet.
    fn run_created(&mut self, e: &ExperimentCreated, path: &str) {
        match self.run_logs.get(path) {
            // Only the latest attempt's run is the trial's (an older attempt's log may be read late).
            Some((sweep, trial)) => {
                if let Some(t) = self
                    .sweeps
                    .get_mut(sweep)
                    .and_then(|s| s.trials.get_mut(trial))
                    && t.run_log.as_deref() == Some(path)
                {
                    t.experiment_id = Some(e.exp.clone());
                }
            }
            None => {
                if self
                    .sweeps
                    .values()
                    .any(|s| Path::new(path).starts_with(&s.dir))
                {
                    self.early.insert(path.to_string(), e.exp.clone());
                }
            }
        }
    }
}

fn new_trial(p: &TrialPlan) -> Trial {
    Trial {
        id: p.id.clone(),
        params: p.params.clone(),
        repeat: p.repeat,
        config: p.config.clone(),
        status: TrialStatus::Pending,
        attempts: 0,
        failures: 0,
        exit_code: None,
        experiment_id: None,
        started: None,
        ended: None,
        secs: None,
        pid: None,
        start_ticks: 0,
        gpus: Vec::new(),
        run_log: None,
        reason: None,
        usage: None,
        peak_rss: 0,
        peak_cpu: 0.0,
        jobs: Vec::new(),
        submitting: None,
        next_rung: 0,
    }
}

/// The folder of one attempt of a trial.
pub fn attempt_dir(sweep_dir: &str, trial: &str, attempt: u32) -> PathBuf {
    Path::new(sweep_dir)
        .join(trial)
        .join(format!("attempt-{attempt}"))
}

/// Why a trial failed when the kernel killed its processes for lack of memory.
pub fn out_of_memory(oom_kills: u64) -> String {
    format!("out of memory: the kernel killed {oom_kills} of its processes at limits.memory")
}
