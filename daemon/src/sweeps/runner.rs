//! The scheduler: one task that starts waiting trials of running sweeps as child processes, each in its own
//! process group, while their resources fit; kills a group at its timeout; retries failures up to the limit;
//! samples what trials use; and records every state change as an event. It decides from the sweeps view, which
//! the events build, so after a crash or reboot it carries on from the log: completed trials stay completed,
//! a trial that ended while labd was down is recorded from its exit file, and one that was cut off runs again.

use super::launch::start_waiting;
use super::live::{Ending, Key, Live, Msg};
use super::record::{Deps, Recorder, append, trial_event};
use super::recover::recover;
use super::resources::{Host, Ledger};
use crate::mailbox::SweepRequest;
use crate::process_group;
use crate::views::sweeps::{TrialStatus, out_of_memory};
use labd_schemas::EventKind;
use labd_schemas::sweep::{SweepChanged, SweepState, TrialState};
use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::mpsc;

/// Seconds between a SIGTERM to a trial's group and the SIGKILL that follows.
const GRACE: Duration = Duration::from_secs(5);

/// The scheduler's loop, until labd stops; then it stops the running trials (they run again on the next
/// start) and returns.
pub async fn run(
    deps: Deps,
    slurm: Option<super::slurm::Site>,
    mut requests: mpsc::UnboundedReceiver<SweepRequest>,
) {
    let (me, mut rx) = mpsc::unbounded_channel::<Msg>();
    // Slurm sweeps' trials are the Slurm executor's, a task of its own beside this loop.
    let cluster = slurm.map(|site| {
        let (tx, rx) = mpsc::unbounded_channel();
        tokio::spawn(super::slurm::run(deps.clone(), site, rx));
        tx
    });
    {
        let me = me.clone();
        tokio::spawn(async move {
            while let Some(request) = requests.recv().await {
                match request {
                    SweepRequest::Wake => {
                        if let Some(c) = &cluster {
                            let _ = c.send(super::slurm::Msg::Wake);
                        }
                        if me.send(Msg::Wake).is_err() {
                            return;
                        }
                    }
                    SweepRequest::Cancel(sweep, reply) => {
                        // Both cancel what they run of the sweep; the reply counts both.
                        let (here, local) = tokio::sync::oneshot::channel();
                        if me.send(Msg::Cancel(sweep.clone(), here)).is_err() {
                            return;
                        }
                        let mut n = local.await.unwrap_or(0);
                        if let Some(c) = &cluster {
                            let (there, remote) = tokio::sync::oneshot::channel();
                            if c.send(super::slurm::Msg::Cancel(sweep, there)).is_ok() {
                                n += remote.await.unwrap_or(0);
                            }
                        }
                        let _ = reply.send(n);
                    }
                }
            }
        });
    }
    // The sweep system's files in each sweep's folder, kept up to date beside the scheduler.
    tokio::spawn(super::files::run(deps.clone()));
    let host = match tokio::task::spawn_blocking(Host::probe).await {
        Ok(h) => Arc::new(std::sync::Mutex::new(h)),
        Err(_) => return,
    };
    // Whether trials with limits get a cgroup (said once, in the log, at start).
    let _ = tokio::task::spawn_blocking(crate::cgroups::init).await;
    recover(&deps).await;
    let mut running: HashMap<Key, Live> = HashMap::new();
    // The latest attempt started of each trial: events are recorded without waiting, so the view can lag; a
    // trial is started again only once the view has caught up with its last start.
    let mut launched: HashMap<Key, u32> = HashMap::new();
    let mut ledger = Ledger::default();
    let mut stopping = deps.stopping.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    // While a trial of a sweep with a pruner runs, the pruners also look at each commit (at most every
    // `PRUNE_EVERY`), so a trial is stopped soon after the point that decides it, not at the next tick.
    let mut commits = deps.views.applied();
    let mut prunable = false;
    let mut last_pruned = Instant::now();
    let heartbeat = deps.heartbeat;
    let mut next_beat = Instant::now() + heartbeat;
    let mut stop_requested = false;
    let (rec, recording) = Recorder::start(deps.clone(), me.clone());
    loop {
        tokio::select! {
            msg = rx.recv() => match msg {
                None => {
                    rec.close(recording).await;
                    return;
                }
                Some(Msg::Wake) => {}
                Some(Msg::Cancel(sweep, done)) => {
                    let mut n = 0;
                    for ((s, _), r) in running.iter_mut() {
                        if *s == sweep && r.ending.is_none() {
                            terminate(r, Ending::Cancelled);
                            n += 1;
                        }
                    }
                    let _ = done.send(n);
                }
                Some(Msg::Exited { key, status, oom_kills }) => {
                    if let Some(r) = running.remove(&key) {
                        ledger.release(&r.grant);
                        // Recorded without waiting: the next trial starts meanwhile. Should labd die before
                        // the commit, the exit file tells the next start how the trial ended.
                        rec.record(exited(&deps, &key, r, status, oom_kills));
                    }
                }
            },
            _ = tick.tick() => {
                for r in running.values_mut() {
                    match r.ending {
                        None if r.deadline.is_some_and(|d| Instant::now() >= d) => {
                            terminate(r, Ending::TimedOut)
                        }
                        Some((_, since)) if !r.killed && since.elapsed() >= GRACE => {
                            process_group::kill(r.pid, libc::SIGKILL);
                            r.killed = true;
                        }
                        _ => {}
                    }
                }
                // The pruners, on the curves ingested since they last looked.
                prune(&deps, &mut running).await;
                last_pruned = Instant::now();
                if Instant::now() >= next_beat && !running.is_empty() {
                    next_beat = Instant::now() + heartbeat;
                    beat(&rec, &running, &host).await;
                }
            }
            changed = commits.changed(),
                if prunable && !stop_requested && last_pruned.elapsed() >= PRUNE_EVERY =>
            {
                if changed.is_ok() {
                    prune(&deps, &mut running).await;
                    last_pruned = Instant::now();
                }
                continue;
            }
            _ = stopping.changed(), if !stop_requested => {
                stop_requested = true;
                for r in running.values_mut() {
                    if r.ending.is_none() {
                        terminate(r, Ending::Stopping);
                    }
                }
            }
        }
        if stop_requested {
            if running.is_empty() {
                rec.close(recording).await;
                return;
            }
            continue;
        }
        // Model-based sweeps choose their next trials from the results so far, recorded before they start.
        let chosen = {
            let v = deps.views.read();
            super::adaptive::next_trials(&v, labd_schemas::time::now_micros())
        };
        append(&deps, chosen).await;
        start_waiting(
            &deps,
            &rec,
            &mut running,
            &mut launched,
            &mut ledger,
            &host,
            &me,
        )
        .await;
        finish_sweeps(&deps, &running).await;
        // Trials of sweeps with a pruner running here or on Slurm.
        prunable = {
            let v = deps.views.read();
            v.sweeps.sweeps.values().any(|s| {
                s.is_local()
                    && s.state == SweepState::Running
                    && s.spec.pruner.is_some()
                    && s.trials.values().any(|t| t.status == TrialStatus::Running)
            })
        };
    }
}

/// How often, at most, the pruners look at the curves on commits (the scheduler's tick looks every 500 ms).
const PRUNE_EVERY: Duration = Duration::from_millis(50);

/// Holds the running trials of sweeps with a pruner to their rules and records what they decide; a pruned
/// trial's group is ended once its `pruned` is committed (a restarted labd must not run it again).
async fn prune(deps: &Deps, running: &mut HashMap<Key, Live>) {
    let decisions = super::pruning::decide(&deps.views.read());
    for d in decisions {
        let events = d
            .states
            .into_iter()
            .map(|st| trial_event(&d.sweep, &d.trial, d.attempt, st))
            .collect();
        if append(deps, events).await
            && d.prune
            && let Some(r) = running.get_mut(&(d.sweep.clone(), d.trial.clone()))
            && r.ending.is_none()
        {
            tracing::info!("sweeps: {}/{} pruned", d.sweep, d.trial);
            terminate(r, Ending::Pruned);
        }
    }
}

/// SIGTERM to the trial's group now, SIGKILL after the grace period.
fn terminate(r: &mut Live, why: Ending) {
    r.ending = Some((why, Instant::now()));
    process_group::kill(r.pid, libc::SIGTERM);
}

/// Records how a trial ended, and queues a retry when one is left.
fn exited(
    deps: &Deps,
    key: &Key,
    r: Live,
    status: std::io::Result<std::process::ExitStatus>,
    oom_kills: u64,
) -> Vec<EventKind> {
    use std::os::unix::process::ExitStatusExt;
    let (sweep, trial) = key;
    let secs = r.started.elapsed().as_secs_f64();
    let (max_retries, failures) = {
        let v = deps.views.read();
        let s = v.sweeps.sweeps.get(sweep);
        (
            s.map_or(0, |s| s.spec.max_retries),
            s.and_then(|s| s.trials.get(trial))
                .map_or(0, |t| t.failures),
        )
    };
    let mut events = Vec::new();
    let failed = match r.ending {
        Some((Ending::TimedOut, _)) => {
            events.push(trial_event(
                sweep,
                trial,
                r.attempt,
                TrialState::TimedOut { secs },
            ));
            Some(format!("timed out after {secs:.0} s"))
        }
        Some((Ending::Cancelled, _)) => {
            events.push(trial_event(sweep, trial, r.attempt, TrialState::Cancelled));
            None
        }
        Some((Ending::Pruned, _)) => None,
        Some((Ending::Stopping, _)) => {
            events.push(trial_event(
                sweep,
                trial,
                r.attempt,
                TrialState::Interrupted {
                    reason: "labd stopped".into(),
                },
            ));
            None
        }
        None => {
            let (code, signal) = match &status {
                Ok(s) => (s.code(), s.signal()),
                Err(_) => (None, None),
            };
            events.push(trial_event(
                sweep,
                trial,
                r.attempt,
                TrialState::Exited {
                    code,
                    signal,
                    secs,
                    recovered: false,
                    oom_kills,
                },
            ));
            (code != Some(0)).then(|| {
                let how = match code {
                    Some(c) => format!("exited with code {c}"),
                    None => format!("ended by signal {}", signal.unwrap_or(0)),
                };
                if oom_kills > 0 {
                    format!("{how}: {}", out_of_memory(oom_kills))
                } else {
                    how
                }
            })
        }
    };
    tracing::info!(
        "sweeps: {sweep}/{trial} attempt {} ended after {secs:.1}s: {}",
        r.attempt,
        failed.as_deref().unwrap_or("ok")
    );
    if let Some(reason) = failed
        && failures < max_retries
    {
        events.push(trial_event(
            sweep,
            trial,
            r.attempt,
            TrialState::Retrying { reason },
        ));
    }
    events
}

/// Records usage samples of the running trials.
async fn beat(rec: &Recorder, running: &HashMap<Key, Live>, host: &Arc<std::sync::Mutex<Host>>) {
    let keys: Vec<(Key, u32, Vec<u32>, u32)> = running
        .iter()
        .map(|(k, r)| (k.clone(), r.pid, r.grant.gpus.clone(), r.attempt))
        .collect();
    let roots: Vec<(u32, Vec<u32>)> = keys.iter().map(|(_, p, g, _)| (*p, g.clone())).collect();
    let host = host.clone();
    let Ok(usage) = tokio::task::spawn_blocking(move || {
        host.lock()
            .unwrap_or_else(|p| p.into_inner())
            .sample(&roots)
    })
    .await
    else {
        return;
    };
    let events = keys
        .into_iter()
        .zip(usage)
        .map(|(((s, t), _, _, attempt), usage)| {
            trial_event(&s, &t, attempt, TrialState::Heartbeat { usage })
        })
        .collect();
    rec.record(events);
}

/// Marks sweeps finished whose trials have all ended.
async fn finish_sweeps(deps: &Deps, running: &HashMap<Key, Live>) {
    let done: Vec<(String, String)> = {
        let v = deps.views.read();
        v.sweeps
            .sweeps
            .values()
            .filter(|s| s.is_local() && s.state == SweepState::Running)
            .filter(|s| super::adaptive::all_chosen(s))
            .filter(|s| !running.keys().any(|(id, _)| *id == s.id))
            .filter(|s| {
                s.trials.values().all(|t| {
                    !t.status.is_waiting()
                        && !matches!(t.status, TrialStatus::Running | TrialStatus::Queued)
                })
            })
            .map(|s| {
                let c = s.counts();
                let n = |st| c.get(&st).copied().unwrap_or(0);
                (
                    s.id.clone(),
                    format!(
                        "{} completed, {} pruned, {} failed, {} timed out, {} cancelled",
                        n(TrialStatus::Completed),
                        n(TrialStatus::Pruned),
                        n(TrialStatus::Failed),
                        n(TrialStatus::TimedOut),
                        n(TrialStatus::Cancelled)
                    ),
                )
            })
            .collect()
    };
    let events = done
        .into_iter()
        .map(|(sweep, reason)| {
            tracing::info!("sweeps: {sweep} finished: {reason}");
            EventKind::SweepChanged(SweepChanged {
                sweep,
                state: SweepState::Finished,
                reason: Some(reason),
            })
        })
        .collect();
    append(deps, events).await;
}
