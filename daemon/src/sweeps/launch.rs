//! Starting trials: the waiting trials of running sweeps, in order of submission and plan, while their sweep's
//! `parallel` and the host's resources allow; each in its attempt's folder (config, run-log header, output
//! files), under `/bin/sh -c` in a process group of its own, with its limits, cgroup and GPUs, and a wrapper
//! that writes the exit code to a file so an exit while labd is down is not lost.

use super::live::{Key, Live, Me, Msg};
use super::plan::{Facts, expand};
use super::record::{Deps, Recorder, trial_event};
use super::recover::start_ticks;
use super::resources::{Grant, Host, Ledger, auto_budget};
use crate::ingest::pump::IngestMsg;
use crate::views::sweeps::{Sweep, Trial, attempt_dir};
use labd_schemas::sweep::{Executor, Parallel, SweepState, TrialState};
use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Starts the waiting trials of running sweeps, in order of submission and plan, while they fit.
pub(super) async fn start_waiting(
    deps: &Deps,
    rec: &Recorder,
    running: &mut HashMap<Key, Live>,
    launched: &mut HashMap<Key, u32>,
    ledger: &mut Ledger,
    host: &Arc<std::sync::Mutex<Host>>,
    me: &Me,
) {
    // Only as many waiting trials per sweep as could start now, and no clone of a sweep's whole table: this
    // runs after every event.
    let candidates: Vec<(Head, Vec<Trial>)> = {
        let v = deps.views.read();
        let mut sweeps: Vec<&Sweep> = v
            .sweeps
            .sweeps
            .values()
            .filter(|s| {
                s.is_local() && s.state == SweepState::Running && s.spec.executor == Executor::Local
            })
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
    let (gpus, cores, ram_total, mut ram_free, jetson) = {
        let mut h = host.lock().unwrap_or_else(|p| p.into_inner());
        (h.gpus(), h.cores, h.ram_total, h.ram_available(), h.jetson)
    };
    for (sweep, trials) in candidates {
        let limit = match sweep.spec.parallel {
            Parallel::Fixed(n) => n as usize,
            Parallel::Auto => {
                let budget = auto_budget(cores, ram_total, gpus.len(), jetson, &sweep.spec);
                let n = budget.parallel as usize;
                deps.budgets.set(&sweep.id, budget);
                n
            }
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
            match launch(deps, rec, &sweep, &t, attempt, &grant, me) {
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
#[derive(Clone)]
pub struct Head {
    pub id: String,
    pub dir: String,
    pub spec: labd_schemas::sweep::SweepSpec,
}

/// Where an attempt's files are.
pub(super) struct Files {
    pub(super) trial_dir: std::path::PathBuf,
    pub(super) attempt_dir: std::path::PathBuf,
    pub(super) config: std::path::PathBuf,
    pub(super) run_log: std::path::PathBuf,
}

/// Prepares the attempt's folder and starts the trial's command in its own process group; writes its pid
/// file (so a restart finds it even if `started` was not committed yet) and records `started`.
fn launch(
    deps: &Deps,
    rec: &Recorder,
    sweep: &Head,
    t: &Trial,
    attempt: u32,
    grant: &Grant,
    me: &Me,
) -> Result<u32, String> {
    let files = prepare_attempt(sweep, t, attempt, "run.jsonl")?;
    let group = trial_cgroup(sweep, &t.id, attempt);
    let mut cmd = trial_command(sweep, t, attempt, grant, &files, group.as_ref())?;
    let child = cmd.spawn().map_err(|e| {
        let dir = sweep.spec.workdir.as_deref().unwrap_or(&sweep.dir);
        format!("starting /bin/sh in {dir}: {e}")
    })?;
    let pid = child.id().ok_or("the process ended at once")?;
    let ticks = start_ticks(pid).unwrap_or(0);
    let pid_file = files.attempt_dir.join("pid");
    if let Err(e) = std::fs::write(&pid_file, format!("{pid} {ticks}\n")) {
        tracing::warn!("sweeps: {}: {e}", pid_file.display());
    }
    follow_exit(child, group, (sweep.id.clone(), t.id.clone()), me.clone());
    rec.record(vec![trial_event(
        &sweep.id,
        &t.id,
        attempt,
        TrialState::Started {
            pid,
            start_ticks: ticks,
            gpus: grant.gpus.clone(),
            run_log: files.run_log.to_string_lossy().into_owned(),
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
    let _ = deps.ingest.send(IngestMsg::Changed(vec![files.run_log]));
    Ok(pid)
}

/// The attempt's folder, with the trial's config and the run log's first line (its name, config and tags), which
/// labd writes into `header`: the run log itself for a local trial, which then appends its metrics; for a Slurm
/// trial a file its script copies into the run log when it starts, so a trial still queued is no run yet.
pub(super) fn prepare_attempt(
    sweep: &Head,
    t: &Trial,
    attempt: u32,
    header: &str,
) -> Result<Files, String> {
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
    let mut tags = sweep.spec.tags.clone();
    tags.push(format!("sweep:{}", sweep.id));
    let header_line = serde_json::json!({
        "kind": "run",
        "name": format!("{}-{}", sweep.spec.name.as_deref().unwrap_or(&sweep.id), t.id),
        "config": t.config,
        "tags": tags,
        "sweep": sweep.id,
        "trial": t.id,
        "attempt": attempt,
        "params": t.params,
    });
    let first = adir.join(header);
    std::fs::write(&first, format!("{header_line}\n"))
        .map_err(|e| io(&first.display().to_string(), e))?;
    Ok(Files {
        trial_dir,
        attempt_dir: adir,
        config: config_path,
        run_log,
    })
}

/// The trial's command under `/bin/sh -c`, with a wrapper that records the exit code in a file (so an exit
/// while labd is down is not lost), its environment, output files, limits, cgroup and GPUs, in a process
/// group of its own.
fn trial_command(
    sweep: &Head,
    t: &Trial,
    attempt: u32,
    grant: &Grant,
    files: &Files,
    group: Option<&crate::cgroups::Cgroup>,
) -> Result<tokio::process::Command, String> {
    let script = wrapped_command(sweep, t, files)?;
    let io = |what: &str, e: std::io::Error| format!("{what}: {e}");
    let adir = &files.attempt_dir;
    let out = std::fs::File::create(adir.join("stdout.log")).map_err(|e| io("stdout.log", e))?;
    let err = std::fs::File::create(adir.join("stderr.log")).map_err(|e| io("stderr.log", e))?;
    let mut cmd = tokio::process::Command::new("/bin/sh");
    cmd.arg("-c")
        .arg(script)
        .current_dir(sweep.spec.workdir.as_deref().unwrap_or(&sweep.dir))
        .envs(trial_env(sweep, t, attempt, files))
        .stdin(std::process::Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .kill_on_drop(false);
    let limits = crate::limits::ChildLimits::for_trial(&sweep.spec.limits);
    let procs = group
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
    Ok(cmd)
}

/// The trial's command with its placeholders filled in, under a wrapper that records the exit code in the
/// attempt's `exit_code` file (so an exit while labd is down is not lost).
pub(super) fn wrapped_command(sweep: &Head, t: &Trial, files: &Files) -> Result<String, String> {
    let command = expand(
        &sweep.spec.command,
        &Facts {
            config: &files.config.to_string_lossy(),
            run_log: &files.run_log.to_string_lossy(),
            trial_dir: &files.trial_dir.to_string_lossy(),
            trial_id: &t.id,
            sweep_id: &sweep.id,
            params: &t.params,
        },
    )
    .map_err(|e| e.to_string())?;
    // One short write by a shell builtin: a file cut short by a crash does not parse, and the trial then runs
    // again.
    Ok(format!(
        "( {command}\n); c=$?; printf '%s\\n' \"$c\" > \"$LABD_ATTEMPT_DIR/exit_code\"; exit $c"
    ))
}

/// The environment of a trial: the sweep's own, then the `LABD_*` variables that tell it its config, run log,
/// folders, sweep and attempt.
pub(super) fn trial_env(
    sweep: &Head,
    t: &Trial,
    attempt: u32,
    files: &Files,
) -> Vec<(String, String)> {
    let path = |p: &std::path::Path| p.to_string_lossy().into_owned();
    let mut env: Vec<(String, String)> = sweep
        .spec
        .env
        .iter()
        .map(|(k, v)| (k.clone(), v.clone()))
        .collect();
    env.extend([
        ("LABD_TRIAL_CONFIG".to_string(), path(&files.config)),
        ("LABD_RUN_LOG".to_string(), path(&files.run_log)),
        ("LABD_TRIAL_ID".to_string(), t.id.clone()),
        ("LABD_TRIAL_DIR".to_string(), path(&files.trial_dir)),
        ("LABD_ATTEMPT_DIR".to_string(), path(&files.attempt_dir)),
        ("LABD_SWEEP_ID".to_string(), sweep.id.clone()),
        ("LABD_ATTEMPT".to_string(), attempt.to_string()),
    ]);
    env
}

/// Waits for the trial's process to end, then tells the scheduler, with the OOM kills of its cgroup (which goes
/// with the trial: what is left in it is killed).
fn follow_exit(
    mut child: tokio::process::Child,
    group: Option<crate::cgroups::Cgroup>,
    key: Key,
    me: Me,
) {
    tokio::spawn(async move {
        let status = child.wait().await;
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
        let _ = me.send(Msg::Exited {
            key,
            status,
            oom_kills,
        });
    });
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
