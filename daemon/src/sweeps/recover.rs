//! Recovery after a start: trials the log says were running, and attempts whose start was not committed yet
//! (their folder exists). One that ended while labd was down is recorded from its exit file; one still alive is
//! killed with its group and every process that names its folder in its environment; each is then marked
//! interrupted, to run again under a new attempt number. Completed trials are never touched.

use super::record::{Deps, batch_of, trial_event};
use crate::process_group;
use crate::views::sweeps::{TrialStatus, attempt_dir};
use labd_schemas::sweep::{Executor, SweepState, TrialState};
use std::path::Path;
use std::time::{Duration, Instant};

/// A trial whose attempt was cut off by labd's end: running by the log, or started without the log knowing.
struct CutOff {
    sweep: String,
    trial: String,
    attempt: u32,
    dir: String,
    pid: Option<u32>,
    ticks: u64,
    cancelled: bool,
    started: Option<i64>,
    retry: bool,
    /// The start was never recorded: record it now, from the pid file.
    unrecorded: bool,
}

/// After a start: trials the log says were running, and trials whose start was not committed yet (their
/// attempt folder exists). One that ended meanwhile is recorded from its exit file; one still alive (same pid
/// and start time) is killed with its group; both it and the others are marked interrupted, to run again.
/// Completed trials are never touched.
pub(super) async fn recover(deps: &Deps) {
    let mut found = cut_off(deps);
    // An attempt without a pid file: labd died between starting it and writing that file. Its processes
    // name their folder in their environment (read off the views' lock and the async threads: reading
    // another process's environment can block).
    for c in found.iter_mut().filter(|c| c.unrecorded && c.pid.is_none()) {
        let adir = attempt_dir(&c.dir, &c.trial, c.attempt);
        let pids = tokio::task::spawn_blocking(move || attempt_processes(&adir))
            .await
            .unwrap_or_default();
        if let Some(&pid) = pids.first() {
            c.pid = Some(pid);
            c.ticks = start_ticks(pid).unwrap_or(0);
        }
    }
    let mut events = Vec::new();
    for c in found {
        events.extend(settle(c).await);
    }
    record(deps, events).await;
}

/// The trials of unfinished sweeps whose attempt was cut off.
fn cut_off(deps: &Deps) -> Vec<CutOff> {
    let v = deps.views.read();
    v.sweeps
        .sweeps
        .values()
        // A Slurm sweep's trials run on the cluster, not here: the Slurm executor re-attaches to them.
        .filter(|s| {
            s.is_local() && s.state != SweepState::Finished && s.spec.executor == Executor::Local
        })
        .flat_map(|s| {
            s.trials()
                .filter_map(|t| {
                    let base = |attempt, pid, ticks, unrecorded| CutOff {
                        sweep: s.id.clone(),
                        trial: t.id.clone(),
                        attempt,
                        dir: s.dir.clone(),
                        pid,
                        ticks,
                        cancelled: s.state == SweepState::Cancelled,
                        started: t.started,
                        retry: t.failures < s.spec.max_retries,
                        unrecorded,
                    };
                    if t.status == TrialStatus::Running {
                        return Some(base(t.attempts, t.pid, t.start_ticks, false));
                    }
                    // Pruned, but labd died before ending its group: end it now (it does not run again).
                    if t.status == TrialStatus::Pruned {
                        if let Some(pid) = t.pid
                            && t.start_ticks != 0
                            && start_ticks(pid) == Some(t.start_ticks)
                        {
                            tracing::info!(
                                "sweeps: {}/{} was pruned; stopping its process group {pid}",
                                s.id,
                                t.id
                            );
                            crate::process_group::kill(pid, libc::SIGKILL);
                        }
                        return None;
                    }
                    if !t.status.is_waiting() {
                        return None;
                    }
                    let next = t.attempts + 1;
                    let adir = attempt_dir(&s.dir, &t.id, next);
                    // An attempt whose folder exists was (or was about to be) started before labd
                    // died: it is recorded, so the next attempt gets a folder of its own and a run log
                    // that was read already is never written over.
                    if !adir.is_dir() {
                        return None;
                    }
                    let (pid, ticks) = match read_pid_file(&adir) {
                        Some((pid, ticks)) => (Some(pid), ticks),
                        None => (None, 0),
                    };
                    Some(base(next, pid, ticks, true))
                })
                .collect::<Vec<_>>()
        })
        .collect()
}

/// What becomes of one cut-off attempt: recorded as started if the log never knew; its processes stopped if
/// they outlived labd; then exited (from its exit file) or interrupted (cancelled, in a cancelled sweep).
async fn settle(c: CutOff) -> Vec<labd_schemas::EventKind> {
    let (sweep, trial, attempt) = (&c.sweep, &c.trial, c.attempt);
    let adir = attempt_dir(&c.dir, trial, attempt);
    let mut events = Vec::new();
    if c.unrecorded {
        events.push(trial_event(
            sweep,
            trial,
            attempt,
            TrialState::Started {
                pid: c.pid.unwrap_or(0),
                start_ticks: c.ticks,
                gpus: Vec::new(),
                run_log: adir.join("run.jsonl").to_string_lossy().into_owned(),
            },
        ));
    }
    let mut exit = read_exit_file(&adir);
    if exit.is_none() {
        if let Some(pid) = c.pid
            && c.ticks != 0
            && start_ticks(pid) == Some(c.ticks)
        {
            tracing::info!(
                "sweeps: {sweep}/{trial} outlived labd; stopping its process group {pid}"
            );
            process_group::kill(pid, libc::SIGKILL);
        }
        // Whatever else it started, in any process group, goes too; then look again: it may have ended
        // (and written its exit code) between the first look and the kill.
        stop_attempt_processes(&adir).await;
        exit = read_exit_file(&adir);
    }
    let Some((code, ended)) = exit else {
        events.push(trial_event(
            sweep,
            trial,
            attempt,
            if c.cancelled {
                TrialState::Cancelled
            } else {
                TrialState::Interrupted {
                    reason: "labd stopped while it ran".into(),
                }
            },
        ));
        return events;
    };
    tracing::info!("sweeps: {sweep}/{trial} ended while labd was down (exit {code})");
    let secs = match (c.started, ended) {
        (Some(s), Some(e)) if !c.unrecorded => ((e - s) as f64 / 1e6).max(0.0),
        _ => 0.0,
    };
    events.push(trial_event(
        sweep,
        trial,
        attempt,
        TrialState::Exited {
            code: Some(code),
            signal: None,
            secs,
            recovered: true,
            oom_kills: 0,
        },
    ));
    if code != 0 && c.retry && !c.cancelled {
        events.push(trial_event(
            sweep,
            trial,
            attempt,
            TrialState::Retrying {
                reason: format!("exited with code {code} while labd was down"),
            },
        ));
    }
    events
}

/// Records the recovery. Trials must not start before it is recorded: an attempt recorded nowhere would be
/// started again in the same folder. While the log refuses writes (disk full, I/O error), it waits for it (not
/// for ever: after a minute trials go on, and `launch` clears what a stale attempt left).
async fn record(deps: &Deps, events: Vec<labd_schemas::EventKind>) {
    for tries in 1..=60 {
        if events.is_empty() {
            break;
        }
        match deps.appender.append_async(batch_of(events.clone())).await {
            Ok(_) => break,
            Err(e) if tries < 60 => {
                if tries == 1 {
                    tracing::error!("sweeps: recording the recovery failed ({e}); trying again");
                }
                tokio::time::sleep(Duration::from_secs(1)).await;
            }
            Err(e) => tracing::error!("sweeps: recording the recovery failed ({e}); giving up"),
        }
    }
}

/// The live processes started for an attempt, whatever their process group: their environment holds
/// `LABD_ATTEMPT_DIR=<adir>` (processes of other users are not readable and not labd's).
fn attempt_processes(adir: &Path) -> Vec<u32> {
    let needle = format!("LABD_ATTEMPT_DIR={}", adir.display());
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<u32>().ok())
        .filter(|pid| {
            std::fs::read(format!("/proc/{pid}/environ"))
                .is_ok_and(|env| env.split(|b| *b == 0).any(|var| var == needle.as_bytes()))
                && alive(*pid)
        })
        .collect()
}

/// Whether a process exists and is not a zombie.
fn alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| s.get(s.rfind(')')? + 2..).map(|r| !r.starts_with('Z')))
        .unwrap_or(false)
}

/// SIGKILL to every process of an attempt, and waits (up to 2 s) until they are gone.
async fn stop_attempt_processes(adir: &Path) {
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let dir = adir.to_path_buf();
        let left = tokio::task::spawn_blocking(move || attempt_processes(&dir))
            .await
            .unwrap_or_default();
        if left.is_empty() || Instant::now() > deadline {
            return;
        }
        for pid in left {
            // SAFETY: kill has no memory effects; the process is one this attempt started.
            unsafe { libc::kill(pid as libc::pid_t, libc::SIGKILL) };
        }
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
}

/// The pid and start time a trial's attempt wrote when it started.
fn read_pid_file(dir: &Path) -> Option<(u32, u64)> {
    let text = std::fs::read_to_string(dir.join("pid")).ok()?;
    let mut it = text.split_whitespace();
    Some((it.next()?.parse().ok()?, it.next()?.parse().ok()?))
}

/// The exit code the trial's wrapper wrote, and when (Unix microseconds, from the file's time).
fn read_exit_file(dir: &Path) -> Option<(i32, Option<i64>)> {
    let path = dir.join("exit_code");
    let code = std::fs::read_to_string(&path).ok()?.trim().parse().ok()?;
    let when = std::fs::metadata(&path)
        .and_then(|m| m.modified())
        .ok()
        .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
        .map(|d| d.as_micros() as i64);
    Some((code, when))
}

/// The start time of a process in clock ticks after boot (field 22 of `/proc/PID/stat`).
pub fn start_ticks(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    // The command name (field 2) is in parentheses and may hold spaces: count from the last ')'.
    let rest = &stat[stat.rfind(')')? + 2..];
    rest.split(' ').nth(19)?.parse().ok()
}
