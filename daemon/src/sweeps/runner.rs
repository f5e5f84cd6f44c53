//! The scheduler: one task that starts waiting trials of running sweeps as child processes, each in its own
//! process group, while their resources fit; kills a group at its timeout; retries failures up to the limit;
//! samples what trials use; and records every state change as an event. It decides from the sweeps view, which
//! the events build, so after a crash or reboot it carries on from the log: completed trials stay completed,
//! a trial that ended while labd was down is recorded from its exit file, and one that was cut off runs again.

use super::plan::{Facts, expand};
use super::resources::{Grant, Host, Ledger};
use crate::daemon::Shared;
use crate::process_group;
use crate::views::sweeps::{Sweep, Trial, TrialStatus, attempt_dir, out_of_memory};
use labd_log::writer::Batch;
use labd_schemas::sweep::{Parallel, SweepChanged, SweepState, TrialChanged, TrialState};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Source};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, oneshot};

/// Seconds between a SIGTERM to a trial's group and the SIGKILL that follows.
const GRACE: Duration = Duration::from_secs(5);

/// Messages to the scheduler.
pub enum Msg {
    /// Something changed (a sweep submitted or resumed): look again.
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

/// A trial: (sweep id, trial id).
pub type Key = (String, String);

/// The handle the API holds.
#[derive(Clone)]
pub struct Scheduler {
    tx: mpsc::UnboundedSender<Msg>,
}

impl Scheduler {
    pub fn new() -> (Scheduler, mpsc::UnboundedReceiver<Msg>) {
        let (tx, rx) = mpsc::unbounded_channel();
        (Scheduler { tx }, rx)
    }

    pub fn wake(&self) {
        let _ = self.tx.send(Msg::Wake);
    }

    /// Stops a sweep's running trials; answers how many were running.
    pub async fn cancel(&self, sweep: &str) -> usize {
        let (tx, rx) = oneshot::channel();
        if self.tx.send(Msg::Cancel(sweep.to_string(), tx)).is_err() {
            return 0;
        }
        rx.await.unwrap_or(0)
    }
}

/// Why labd is ending a trial itself.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Ending {
    TimedOut,
    Cancelled,
    Stopping,
}

/// A trial process this labd started and follows.
struct Live {
    attempt: u32,
    pid: u32,
    grant: Grant,
    started: Instant,
    deadline: Option<Instant>,
    ending: Option<(Ending, Instant)>,
    killed: bool,
}

/// The scheduler's loop, until labd stops; then it stops the running trials (they run again on the next
/// start) and returns.
pub async fn run(shared: Arc<Shared>, mut rx: mpsc::UnboundedReceiver<Msg>, me: Scheduler) {
    let host = match tokio::task::spawn_blocking(Host::probe).await {
        Ok(h) => Arc::new(std::sync::Mutex::new(h)),
        Err(_) => return,
    };
    // Whether trials with limits get a cgroup (said once, in the log, at start).
    let _ = tokio::task::spawn_blocking(crate::cgroups::init).await;
    recover(&shared).await;
    let mut running: HashMap<Key, Live> = HashMap::new();
    // The latest attempt started of each trial: events are recorded without waiting, so the view can lag; a
    // trial is started again only once the view has caught up with its last start.
    let mut launched: HashMap<Key, u32> = HashMap::new();
    let mut ledger = Ledger::default();
    let mut stopping = shared.stopping.clone();
    let mut tick = tokio::time::interval(Duration::from_millis(500));
    let heartbeat = shared.config.sweep_heartbeat;
    let mut next_beat = Instant::now() + heartbeat;
    let mut stop_requested = false;
    let (rec, recording) = Recorder::start(shared.clone(), me.clone());
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
                        rec.record(exited(&shared, &key, r, status, oom_kills));
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
                if Instant::now() >= next_beat && !running.is_empty() {
                    next_beat = Instant::now() + heartbeat;
                    beat(&rec, &running, &host).await;
                }
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
        start_waiting(
            &shared,
            &rec,
            &mut running,
            &mut launched,
            &mut ledger,
            &host,
            &me,
        )
        .await;
        finish_sweeps(&shared, &running).await;
    }
}

/// Records the scheduler's events in the order it makes them, without making it wait for the commits: one
/// task appends whatever has queued as one batch, then wakes the scheduler (the view has the news by then).
struct Recorder {
    tx: mpsc::UnboundedSender<Vec<EventKind>>,
}

impl Recorder {
    fn start(shared: Arc<Shared>, me: Scheduler) -> (Recorder, tokio::task::JoinHandle<()>) {
        let (tx, mut rx) = mpsc::unbounded_channel::<Vec<EventKind>>();
        let task = tokio::spawn(async move {
            while let Some(mut events) = rx.recv().await {
                while let Ok(more) = rx.try_recv() {
                    events.extend(more);
                }
                append(&shared, events).await;
                me.wake();
            }
        });
        (Recorder { tx }, task)
    }

    fn record(&self, events: Vec<EventKind>) {
        if !events.is_empty() {
            let _ = self.tx.send(events);
        }
    }

    /// Waits until everything recorded is committed.
    async fn close(self, task: tokio::task::JoinHandle<()>) {
        drop(self.tx);
        let _ = task.await;
    }
}

/// SIGTERM to the trial's group now, SIGKILL after the grace period.
fn terminate(r: &mut Live, why: Ending) {
    r.ending = Some((why, Instant::now()));
    process_group::kill(r.pid, libc::SIGTERM);
}

async fn append(shared: &Shared, events: Vec<EventKind>) {
    if events.is_empty() {
        return;
    }
    if let Err(e) = shared.appender.append_async(batch_of(events)).await {
        tracing::error!("sweeps: recording trial events failed: {e}");
    }
}

/// A batch of daemon events, stamped now.
fn batch_of(events: Vec<EventKind>) -> Batch {
    let now = now_micros();
    Batch {
        events: events
            .into_iter()
            .map(|k| Event::new(now, Source::Daemon, k))
            .collect(),
        cursors: Vec::new(),
    }
}

fn trial_event(sweep: &str, trial: &str, attempt: u32, state: TrialState) -> EventKind {
    EventKind::TrialChanged(TrialChanged {
        sweep: sweep.into(),
        trial: trial.into(),
        attempt,
        state,
    })
}

/// After a start: trials the log says were running, and trials whose start was not committed yet (their
/// attempt folder has a pid file). One that ended meanwhile is recorded from its exit file; one still alive
/// (same pid and start time) is killed with its group; both it and the others are marked interrupted, to run
/// again. Completed trials are never touched.
async fn recover(shared: &Shared) {
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
    let mut found: Vec<CutOff> = {
        let v = shared.views();
        v.sweeps
            .sweeps
            .values()
            .filter(|s| s.state != SweepState::Finished)
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
    };
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
        let (sweep, trial, attempt) = (&c.sweep, &c.trial, c.attempt);
        let adir = attempt_dir(&c.dir, trial, attempt);
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
        if let Some((code, ended)) = exit {
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
            continue;
        }
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
    }
    // Trials must not start before this is recorded: an attempt recorded nowhere would be started again in
    // the same folder. While the log refuses writes (disk full, I/O error), wait for it.
    // (Not for ever: after a minute trials go on, and `launch` clears what a stale attempt left.)
    for tries in 1..=60 {
        if events.is_empty() {
            break;
        }
        match shared.appender.append_async(batch_of(events.clone())).await {
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

/// Starts the waiting trials of running sweeps, in order of submission and plan, while they fit.
async fn start_waiting(
    shared: &Arc<Shared>,
    rec: &Recorder,
    running: &mut HashMap<Key, Live>,
    launched: &mut HashMap<Key, u32>,
    ledger: &mut Ledger,
    host: &Arc<std::sync::Mutex<Host>>,
    me: &Scheduler,
) {
    // Only as many waiting trials per sweep as could start now, and no clone of a sweep's whole table: this
    // runs after every event.
    let candidates: Vec<(Head, Vec<Trial>)> = {
        let v = shared.views();
        let mut sweeps: Vec<&Sweep> = v
            .sweeps
            .sweeps
            .values()
            .filter(|s| s.state == SweepState::Running)
            .collect();
        sweeps.sort_by_key(|s| s.created);
        let cores = std::thread::available_parallelism().map_or(1, |n| n.get());
        sweeps
            .into_iter()
            .filter_map(|s| {
                let in_sweep = running.keys().filter(|(id, _)| *id == s.id).count();
                let slots = match s.spec.parallel {
                    Parallel::Fixed(n) => (n as usize).saturating_sub(in_sweep),
                    Parallel::Auto => cores.max(1),
                };
                let mut key = (s.id.clone(), String::new());
                let waiting: Vec<Trial> = s
                    .trials()
                    .filter(|t| {
                        if !t.status.is_waiting() {
                            return false;
                        }
                        key.1.clone_from(&t.id);
                        !running.contains_key(&key)
                            && launched.get(&key).is_none_or(|&a| t.attempts >= a)
                    })
                    .take(slots)
                    .cloned()
                    .collect();
                (!waiting.is_empty()).then(|| {
                    (
                        Head {
                            id: s.id.clone(),
                            dir: s.dir.clone(),
                            spec: s.spec.clone(),
                        },
                        waiting,
                    )
                })
            })
            .collect()
    };
    if candidates.is_empty() {
        return;
    }
    let (gpus, cores, ram_total, mut ram_free) = {
        let mut h = host.lock().unwrap_or_else(|p| p.into_inner());
        (h.gpus(), h.cores, h.ram_total, h.ram_available())
    };
    for (sweep, trials) in candidates {
        let limit = match sweep.spec.parallel {
            Parallel::Fixed(n) => n as usize,
            Parallel::Auto => usize::MAX,
        };
        for t in trials {
            let in_sweep = running.keys().filter(|(s, _)| *s == sweep.id).count();
            if in_sweep >= limit {
                break;
            }
            // What the host has free now counts too (other work uses it): a trial that names its RAM starts
            // only when that much is available beside the running ones.
            let need_ram = sweep.spec.resources.ram.unwrap_or(0);
            if !running.is_empty() && need_ram > 0 && ram_free > 0 && need_ram > ram_free {
                return;
            }
            let Some(grant) = ledger.reserve(
                &sweep.spec.resources,
                cores,
                ram_total,
                &gpus,
                !running.is_empty(),
            ) else {
                return;
            };
            ram_free = ram_free.saturating_sub(need_ram);
            let attempt = t.attempts + 1;
            match launch(shared, rec, &sweep, &t, attempt, &grant, me) {
                Ok(pid) => {
                    launched.insert((sweep.id.clone(), t.id.clone()), attempt);
                    running.insert(
                        (sweep.id.clone(), t.id.clone()),
                        Live {
                            attempt,
                            pid,
                            grant,
                            started: Instant::now(),
                            deadline: sweep
                                .spec
                                .timeout
                                .map(|s| Instant::now() + Duration::from_secs_f64(s.max(0.0))),
                            ending: None,
                            killed: false,
                        },
                    );
                }
                Err(reason) => {
                    launched.insert((sweep.id.clone(), t.id.clone()), attempt);
                    ledger.release(&grant);
                    tracing::warn!("sweeps: {}/{} could not start: {reason}", sweep.id, t.id);
                    let mut events = vec![trial_event(
                        &sweep.id,
                        &t.id,
                        attempt,
                        TrialState::StartFailed {
                            reason: reason.clone(),
                        },
                    )];
                    if t.failures < sweep.spec.max_retries {
                        events.push(trial_event(
                            &sweep.id,
                            &t.id,
                            attempt,
                            TrialState::Retrying { reason },
                        ));
                    }
                    rec.record(events);
                }
            }
        }
    }
}

/// What starting a trial needs of its sweep.
pub struct Head {
    pub id: String,
    pub dir: String,
    pub spec: labd_schemas::sweep::SweepSpec,
}

/// Prepares the attempt's folder and starts the trial's command in its own process group; writes its pid
/// file (so a restart finds it even if `started` was not committed yet) and records `started`.
fn launch(
    shared: &Arc<Shared>,
    rec: &Recorder,
    sweep: &Head,
    t: &Trial,
    attempt: u32,
    grant: &Grant,
    me: &Scheduler,
) -> Result<u32, String> {
    let trial_dir = Path::new(&sweep.dir).join(&t.id);
    let adir = attempt_dir(&sweep.dir, &t.id, attempt);
    let config_path = trial_dir.join("config.json");
    let run_log = adir.join("run.jsonl");
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    std::fs::create_dir_all(&adir).map_err(|e| io(&adir.display().to_string(), e))?;
    // An attempt recorded nowhere may have left these: they must not speak for this one.
    for stale in ["exit_code", "pid"] {
        let _ = std::fs::remove_file(adir.join(stale));
    }
    let config_text = serde_json::to_string_pretty(&t.config).map_err(|e| e.to_string())?;
    std::fs::write(&config_path, config_text)
        .map_err(|e| io(&config_path.display().to_string(), e))?;
    // labd writes the run's first line: its name, config and tags; the trial appends its metrics.
    let mut tags = sweep.spec.tags.clone();
    tags.push(format!("sweep:{}", sweep.id));
    let header = serde_json::json!({
        "kind": "run",
        "name": format!("{}-{}", sweep.spec.name.as_deref().unwrap_or(&sweep.id), t.id),
        "config": t.config,
        "tags": tags,
        "sweep": sweep.id,
        "trial": t.id,
        "attempt": attempt,
        "params": t.params,
    });
    std::fs::write(&run_log, format!("{header}\n"))
        .map_err(|e| io(&run_log.display().to_string(), e))?;
    let command = expand(
        &sweep.spec.command,
        &Facts {
            config: &config_path.to_string_lossy(),
            run_log: &run_log.to_string_lossy(),
            trial_dir: &trial_dir.to_string_lossy(),
            trial_id: &t.id,
            sweep_id: &sweep.id,
            params: &t.params,
        },
    )
    .map_err(|e| e.to_string())?;
    // The wrapper records the exit code in a file, so an exit while labd is down is not lost. (One short
    // write by a shell builtin: a file cut short by a crash does not parse, and the trial then runs again.)
    let script = format!(
        "( {command}\n); c=$?; printf '%s\\n' \"$c\" > \"$LABD_ATTEMPT_DIR/exit_code\"; exit $c"
    );
    let out = std::fs::File::create(adir.join("stdout.log")).map_err(|e| io("stdout.log", e))?;
    let err = std::fs::File::create(adir.join("stderr.log")).map_err(|e| io("stderr.log", e))?;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(sweep.spec.workdir.as_deref().unwrap_or(&sweep.dir))
        .envs(&sweep.spec.env)
        .env("LABD_TRIAL_CONFIG", &config_path)
        .env("LABD_RUN_LOG", &run_log)
        .env("LABD_TRIAL_ID", &t.id)
        .env("LABD_TRIAL_DIR", &trial_dir)
        .env("LABD_ATTEMPT_DIR", &adir)
        .env("LABD_SWEEP_ID", &sweep.id)
        .env("LABD_ATTEMPT", attempt.to_string())
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(false);
    let limits = crate::limits::ChildLimits::for_trial(&sweep.spec.limits);
    let group = trial_cgroup(sweep, &t.id, attempt);
    let procs = group
        .as_ref()
        .map(crate::cgroups::Cgroup::procs_files)
        .unwrap_or_default();
    // SAFETY: runs in the child between fork and exec; both calls only make system calls.
    unsafe {
        cmd.pre_exec(move || {
            crate::cgroups::join_in_child(&procs)?;
            crate::limits::apply_in_child(limits)
        });
    }
    if grant.gpus.is_empty() {
        if sweep.spec.resources.gpus == 0
            && !std::env::var_os("CUDA_VISIBLE_DEVICES").is_some_and(|v| v.is_empty())
        {
            // Trials that asked for no GPU get none, so they cannot crowd the ones that did.
            cmd.env("CUDA_VISIBLE_DEVICES", "");
        }
    } else {
        let list: Vec<String> = grant.gpus.iter().map(u32::to_string).collect();
        cmd.env("CUDA_VISIBLE_DEVICES", list.join(","));
    }
    let mut child = cmd.spawn().map_err(|e| {
        let dir = sweep.spec.workdir.as_deref().unwrap_or(&sweep.dir);
        format!("starting /bin/sh in {dir}: {e}")
    })?;
    let pid = child.id().ok_or("the process ended at once")?;
    let ticks = start_ticks(pid).unwrap_or(0);
    if let Err(e) = std::fs::write(adir.join("pid"), format!("{pid} {ticks}\n")) {
        tracing::warn!("sweeps: {}: {e}", adir.join("pid").display());
    }
    let run_log_text = run_log.to_string_lossy().into_owned();
    let key = (sweep.id.clone(), t.id.clone());
    let tx = me.tx.clone();
    tokio::spawn(async move {
        let status = child.wait().await;
        // The group goes with the trial: what is left in it is killed.
        let oom_kills = match group {
            Some(g) => tokio::task::spawn_blocking(move || {
                let n = g.oom_kills();
                g.remove();
                n
            })
            .await
            .unwrap_or(0),
            None => 0,
        };
        let _ = tx.send(Msg::Exited {
            key,
            status,
            oom_kills,
        });
    });
    rec.record(vec![trial_event(
        &sweep.id,
        &t.id,
        attempt,
        TrialState::Started {
            pid,
            start_ticks: ticks,
            gpus: grant.gpus.clone(),
            run_log: run_log_text.clone(),
        },
    )]);
    tracing::info!(
        "sweeps: {}/{} attempt {attempt} started (pid {pid}{})",
        sweep.id,
        t.id,
        if grant.gpus.is_empty() {
            String::new()
        } else {
            format!(", GPUs {:?}", grant.gpus)
        }
    );
    // Have the new run log read now rather than at the next rescan.
    let _ = shared
        .ingest
        .send(crate::ingest::pump::IngestMsg::Changed(vec![
            run_log.clone(),
        ]));
    Ok(pid)
}

/// The cgroup of a trial attempt that has limits, where labd can make one.
fn trial_cgroup(sweep: &Head, trial: &str, attempt: u32) -> Option<crate::cgroups::Cgroup> {
    let limits = &sweep.spec.limits;
    if limits.memory.is_none() && limits.processes.is_none() {
        return None;
    }
    let groups = crate::cgroups::init()?;
    let name = format!("{}-{trial}-{attempt}", sweep.id);
    match groups.create(&name, limits.memory, limits.processes) {
        Ok(g) => Some(g),
        Err(e) => {
            tracing::warn!(
                "sweeps: {}/{trial}: no cgroup ({e}); rlimits only",
                sweep.id
            );
            None
        }
    }
}

/// Records how a trial ended, and queues a retry when one is left.
fn exited(
    shared: &Shared,
    key: &Key,
    r: Live,
    status: std::io::Result<std::process::ExitStatus>,
    oom_kills: u64,
) -> Vec<EventKind> {
    use std::os::unix::process::ExitStatusExt;
    let (sweep, trial) = key;
    let secs = r.started.elapsed().as_secs_f64();
    let (max_retries, failures) = {
        let v = shared.views();
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
async fn finish_sweeps(shared: &Shared, running: &HashMap<Key, Live>) {
    let done: Vec<(String, String)> = {
        let v = shared.views();
        v.sweeps
            .sweeps
            .values()
            .filter(|s| s.state == SweepState::Running)
            .filter(|s| !running.keys().any(|(id, _)| *id == s.id))
            .filter(|s| {
                s.trials
                    .values()
                    .all(|t| !t.status.is_waiting() && t.status != TrialStatus::Running)
            })
            .map(|s| {
                let c = s.counts();
                let n = |st| c.get(&st).copied().unwrap_or(0);
                (
                    s.id.clone(),
                    format!(
                        "{} completed, {} failed, {} timed out, {} cancelled",
                        n(TrialStatus::Completed),
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
    append(shared, events).await;
}
