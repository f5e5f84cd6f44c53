//! Following the jobs: one poll of Slurm's queue (and of its accounting, where it is on) for every trial in
//! flight, and what each task's state means for its trial, as events: started on a node; ended (Slurm's state,
//! exit code, time, and with accounting memory and CPU time), timed out, cancelled, or preempted and run again
//! without spending a retry. A trial's own exit file (on the shared storage) says how its command ended, which
//! is what counts when several trials share an array task; a task Slurm no longer knows is settled from it.

use super::super::record::{Deps, append, trial_event};
use super::queue::{self, Task};
use super::submit::{pack, trial_of};
use super::{InFlight, Site};
use crate::views::sweeps::{attempt_dir, out_of_memory};
use labd_schemas::EventKind;
use labd_schemas::sweep::TrialState;
use std::collections::{BTreeSet, HashMap};
use std::path::Path;

/// A batch recorded as being submitted whose job Slurm does not know: submitted (again) by the caller.
pub struct Unsubmitted {
    pub sweep: String,
    pub batch: String,
}

/// Polls Slurm once for `flight` and records what changed. Answers the batches to submit again.
pub async fn poll(
    deps: &Deps,
    site: &Site,
    flight: &[InFlight],
    accounting: bool,
) -> Result<Vec<Unsubmitted>, String> {
    let jobs: BTreeSet<String> = flight
        .iter()
        .filter_map(|f| f.job.as_ref().map(|(j, _)| j.clone()))
        .collect();
    let batches: BTreeSet<(String, String)> = flight
        .iter()
        .filter_map(|f| f.batch.clone().map(|b| (f.sweep.clone(), b)))
        .collect();
    let began = std::time::Instant::now();
    let mut tasks: HashMap<(String, u32), Task> = queue::squeue(site, &jobs, !batches.is_empty())
        .await?
        .into_iter()
        .map(|t| ((t.job.clone(), t.task), t))
        .collect();
    let asked = began.elapsed();
    if accounting {
        // What the queue no longer lists, and what ended (for the memory and CPU time it used).
        let wanted: BTreeSet<String> = flight
            .iter()
            .filter_map(|f| f.job.clone())
            .filter(|k| tasks.get(k).is_none_or(Task::ended))
            .map(|(j, _)| j)
            .collect();
        match queue::sacct(site, &wanted).await {
            Ok(acct) => {
                for a in acct {
                    let key = (a.job.clone(), a.task);
                    match tasks.get_mut(&key) {
                        Some(t) => {
                            t.max_rss = a.max_rss;
                            t.cpu_secs = a.cpu_secs;
                        }
                        None => {
                            tasks.insert(key, a);
                        }
                    }
                }
            }
            Err(why) => tracing::warn!("slurm: sacct: {why}"),
        }
    }
    let mut events = Vec::new();
    let mut again = Vec::new();
    for (sweep, batch) in batches {
        let name = format!("labd-{batch}");
        match tasks.values().find(|t| t.name == name) {
            Some(t) => events.extend(found(deps, &sweep, &batch, &t.job)),
            None => again.push(Unsubmitted { sweep, batch }),
        }
    }
    for f in flight {
        let Some((job, task)) = &f.job else { continue };
        let Some(dir) = sweep_dir(deps, &f.sweep) else {
            continue;
        };
        let adir = attempt_dir(&dir, &f.trial, f.attempt);
        match tasks.get(&(job.clone(), *task)) {
            Some(t) if !t.ended() => {
                if t.running() && !f.running {
                    events.push(started(f, t, &adir));
                }
            }
            Some(t) => events.extend(ended(f, t, &adir, retry_left(deps, f))),
            None => events.extend(vanished(f, &adir, retry_left(deps, f))),
        }
    }
    let changes = events.len();
    append(deps, events).await;
    tracing::debug!(
        "slurm: polled {} trials in flight in {:.1} ms (squeue {:.1} ms), {changes} changes",
        flight.len(),
        began.elapsed().as_secs_f64() * 1e3,
        asked.as_secs_f64() * 1e3
    );
    Ok(again)
}

fn sweep_dir(deps: &Deps, sweep: &str) -> Option<String> {
    deps.views
        .read()
        .sweeps
        .sweeps
        .get(sweep)
        .map(|s| s.dir.clone())
}

/// A batch's job found by its name: its trials' array tasks, from the batch's task list.
fn found(deps: &Deps, sweep: &str, batch: &str, job: &str) -> Vec<EventKind> {
    let (dir, k, waiting): (String, u32, BTreeSet<String>) = {
        let v = deps.views.read();
        let Some(s) = v.sweeps.sweeps.get(sweep) else {
            return Vec::new();
        };
        let head = super::head(s);
        let waiting = s
            .trials
            .values()
            .filter(|t| t.submitting.as_deref() == Some(batch))
            .map(|t| t.id.clone())
            .collect();
        (s.dir.clone(), pack(&head), waiting)
    };
    let list = super::submit::batch_dir(&dir, batch).join("tasks.txt");
    let lines = std::fs::read_to_string(&list).unwrap_or_default();
    tracing::info!("slurm: sweep {sweep}: batch {batch} is job {job}");
    lines
        .lines()
        .enumerate()
        .filter_map(|(i, line)| {
            let (trial, attempt) = trial_of(line)?;
            waiting.contains(&trial).then(|| {
                trial_event(
                    sweep,
                    &trial,
                    attempt,
                    TrialState::Submitted {
                        job: job.to_string(),
                        task: (i / k as usize) as u32,
                    },
                )
            })
        })
        .collect()
}

/// Slurm started the task: where, and with which GPUs (as the trial's script noted them).
fn started(f: &InFlight, t: &Task, adir: &Path) -> EventKind {
    let noted = std::fs::read_to_string(adir.join("started")).unwrap_or_default();
    let mut words = noted.split_whitespace();
    let host = words.next().map(String::from);
    let gpus = words
        .next()
        .map(|g| g.split(',').map(String::from).collect())
        .unwrap_or_default();
    trial_event(
        &f.sweep,
        &f.trial,
        f.attempt,
        TrialState::SlurmStarted {
            job: t.job.clone(),
            task: t.task,
            node: t.node.clone().or(host).unwrap_or_default(),
            gpus,
            run_log: adir.join("run.jsonl").to_string_lossy().into_owned(),
        },
    )
}

/// The exit code the trial's wrapper wrote.
fn exit_file(adir: &Path) -> Option<i32> {
    std::fs::read_to_string(adir.join("exit_code"))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Whether a failed attempt of the trial gets another: as many as the sweep's `max_retries`.
fn retry_left(deps: &Deps, f: &InFlight) -> bool {
    let v = deps.views.read();
    v.sweeps.sweeps.get(&f.sweep).is_some_and(|s| {
        s.trials
            .get(&f.trial)
            .is_some_and(|t| t.failures < s.spec.max_retries)
    })
}

/// What a task that ended means for its trial (`retry`: a failed attempt gets another).
fn ended(f: &InFlight, t: &Task, adir: &Path, retry: bool) -> Vec<EventKind> {
    let ev = |state| trial_event(&f.sweep, &f.trial, f.attempt, state);
    let secs = t.secs.unwrap_or(0.0);
    let mut events = Vec::new();
    if !f.running && t.node.as_deref().is_some_and(|n| !n.is_empty()) {
        // It ran and ended between two polls.
        events.push(started(f, t, adir));
    }
    events.push(ev(TrialState::SlurmEnded {
        job: t.job.clone(),
        task: t.task,
        slurm_state: t.state.clone(),
        code: t.code,
        signal: t.signal,
        secs: t.secs,
        max_rss: t.max_rss,
        cpu_secs: t.cpu_secs,
    }));
    let retry = |reason: String, events: &mut Vec<EventKind>| {
        if retry {
            events.push(ev(TrialState::Retrying { reason }));
        }
    };
    match t.state.as_str() {
        "TIMEOUT" | "DEADLINE" => {
            events.push(ev(TrialState::TimedOut { secs }));
            retry(format!("timed out after {secs:.0} s"), &mut events);
        }
        "CANCELLED" => events.push(ev(TrialState::Cancelled)),
        "PREEMPTED" | "NODE_FAIL" | "BOOT_FAIL" => events.push(ev(TrialState::Requeued {
            reason: format!("Slurm: {} (job {}, task {})", t.state, t.job, t.task),
        })),
        state => {
            let oom = state == "OUT_OF_MEMORY";
            let code = exit_file(adir).or(t.code.filter(|_| !oom));
            let signal = if code.is_some() { None } else { t.signal };
            events.push(ev(TrialState::Exited {
                code,
                signal,
                secs,
                recovered: false,
                oom_kills: u64::from(oom),
            }));
            if code != Some(0) {
                let how = match (code, signal) {
                    (Some(c), _) => format!("exited with code {c}"),
                    (None, Some(s)) => format!("ended by signal {s}"),
                    (None, None) => format!("Slurm: {state}"),
                };
                let why = if oom {
                    format!("{how}: {}", out_of_memory(1))
                } else {
                    how
                };
                retry(why, &mut events);
            }
        }
    }
    events
}

/// A task Slurm no longer knows (it ended longer ago than Slurm keeps jobs, with no accounting): settled from
/// the trial's exit file, or, without one, as an attempt that failed without a trace.
fn vanished(f: &InFlight, adir: &Path, retry: bool) -> Vec<EventKind> {
    let ev = |state| trial_event(&f.sweep, &f.trial, f.attempt, state);
    let mut events = Vec::new();
    match exit_file(adir) {
        Some(code) => {
            if !f.running {
                events.push(ev(TrialState::SlurmStarted {
                    job: f.job.clone().map(|j| j.0).unwrap_or_default(),
                    task: f.job.as_ref().map_or(0, |j| j.1),
                    node: String::new(),
                    gpus: Vec::new(),
                    run_log: adir.join("run.jsonl").to_string_lossy().into_owned(),
                }));
            }
            events.push(ev(TrialState::Exited {
                code: Some(code),
                signal: None,
                secs: 0.0,
                recovered: true,
                oom_kills: 0,
            }));
            if code != 0 && retry {
                events.push(ev(TrialState::Retrying {
                    reason: format!("exited with code {code}"),
                }));
            }
        }
        None => {
            let reason =
                "its Slurm job is gone from the queue and left no exit code (ended long ago, or never ran)"
                    .to_string();
            events.push(ev(TrialState::StartFailed {
                reason: reason.clone(),
            }));
            if retry {
                events.push(ev(TrialState::Retrying { reason }));
            }
        }
    }
    events
}

#[cfg(test)]
mod tests {
    use super::*;

    fn flight(running: bool) -> InFlight {
        InFlight {
            sweep: "s".into(),
            trial: "t".into(),
            attempt: 1,
            job: Some(("7".into(), 0)),
            batch: None,
            running,
        }
    }

    fn task(state: &str, code: Option<i32>) -> Task {
        Task {
            job: "7".into(),
            task: 0,
            state: state.into(),
            node: Some("n1".into()),
            code,
            secs: Some(12.0),
            ..Default::default()
        }
    }

    fn states(events: &[EventKind]) -> Vec<String> {
        events
            .iter()
            .map(|e| match e {
                EventKind::TrialChanged(c) => serde_json::to_value(&c.state).unwrap()["state"]
                    .as_str()
                    .unwrap()
                    .to_string(),
                _ => String::new(),
            })
            .collect()
    }

    #[test]
    fn each_slurm_end_becomes_the_trials_facts() {
        let dir = tempfile::tempdir().unwrap();
        let adir = dir.path();
        let ended = |state: &str, code, running, retry| {
            states(&ended(&flight(running), &task(state, code), adir, retry))
        };
        assert_eq!(
            ended("COMPLETED", Some(0), true, true),
            ["slurm_ended", "exited"]
        );
        assert_eq!(
            ended("FAILED", Some(3), true, true),
            ["slurm_ended", "exited", "retrying"]
        );
        assert_eq!(
            ended("FAILED", Some(3), true, false),
            ["slurm_ended", "exited"]
        );
        assert_eq!(
            ended("TIMEOUT", None, true, true),
            ["slurm_ended", "timed_out", "retrying"]
        );
        assert_eq!(
            ended("CANCELLED", None, true, true),
            ["slurm_ended", "cancelled"]
        );
        for lost in ["PREEMPTED", "NODE_FAIL", "BOOT_FAIL"] {
            assert_eq!(
                ended(lost, None, true, false),
                ["slurm_ended", "requeued"],
                "{lost}: run again, no retry spent"
            );
        }
        assert_eq!(
            ended("COMPLETED", Some(0), false, true),
            ["slurm_started", "slurm_ended", "exited"],
            "ran and ended between two polls"
        );
        // The trial's own exit file says how its command ended (several trials may share a task).
        std::fs::write(adir.join("exit_code"), "4\n").unwrap();
        let events = super::ended(&flight(true), &task("COMPLETED", Some(0)), adir, false);
        let EventKind::TrialChanged(c) = &events[1] else {
            panic!()
        };
        assert!(matches!(c.state, TrialState::Exited { code: Some(4), .. }));
        // Gone from Slurm: settled from the exit file, or failed without a trace.
        assert_eq!(
            states(&vanished(&flight(true), adir, true)),
            ["exited", "retrying"]
        );
        std::fs::remove_file(adir.join("exit_code")).unwrap();
        assert_eq!(
            states(&vanished(&flight(true), adir, true)),
            ["start_failed", "retrying"]
        );
    }
}
