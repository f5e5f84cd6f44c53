//! Handing a batch of trials to Slurm. Each trial gets its attempt folder (config, the run log's first line) and
//! a script, `run.sh`, that sets the same `LABD_*` environment as a local trial, notes where it started, runs the
//! sweep's command and writes its exit code; the batch gets `tasks.txt` (one script a line) and `job.sh`, the
//! array job's script (array task N runs lines N·K+1 .. N·K+K side by side, K = `pack`). All of it is plain
//! text in the batch's folder, readable by a person; `sbatch.txt` holds the command that submitted it.

use super::super::launch::{Head, prepare_attempt, trial_env, wrapped_command};
use super::super::record::{Deps, append};
use super::Site;
use super::queue::parse_sbatch;
use crate::views::sweeps::Trial;
use labd_schemas::EventKind;
use labd_schemas::sweep::{SweepChanged, SweepState, TrialChanged, TrialState};
use labd_schemas::time::now_micros;
use std::path::{Path, PathBuf};

/// Why a batch was not submitted.
#[derive(Debug)]
pub enum Failure {
    /// It may pass (the controller unreachable, a write that failed): the batch is submitted again later.
    Transient(String),
    /// Slurm refused it (a bad partition, account or gres): the sweep failed with Slurm's message.
    Rejected(String),
}

/// The run log's first line, written at submission; the trial's script copies it into the run log when it
/// starts (a name no source reads).
const HEADER: &str = "run.header";

/// The folder of a batch.
pub fn batch_dir(sweep_dir: &str, batch: &str) -> PathBuf {
    Path::new(sweep_dir).join("slurm").join(batch)
}

/// Submits `trials` (waiting trials of `sweep`) as one batch: records `submitting` (awaited, before anything
/// reaches Slurm), writes the files, runs `sbatch --array`, records `submitted`.
pub async fn batch(
    deps: &Deps,
    site: &Site,
    sweep: &Head,
    trials: &[Trial],
) -> Result<(), Failure> {
    let batch = format!("{}-{}", sweep.id, now_micros());
    let attempts: Vec<(&Trial, u32)> = trials.iter().map(|t| (t, t.attempts + 1)).collect();
    let submitting = attempts
        .iter()
        .map(|(t, attempt)| {
            trial(
                sweep,
                t,
                *attempt,
                TrialState::Submitting {
                    batch: batch.clone(),
                },
            )
        })
        .collect();
    if !append(deps, submitting).await {
        return Err(Failure::Transient("the log refused the record".into()));
    }
    let dir = batch_dir(&sweep.dir, &batch);
    let written = {
        let (sweep, dir) = (sweep.clone(), dir.clone());
        let attempts: Vec<(Trial, u32)> =
            attempts.iter().map(|(t, a)| ((*t).clone(), *a)).collect();
        tokio::task::spawn_blocking(move || write(&sweep, &dir, &attempts))
            .await
            .map_err(|e| e.to_string())
            .and_then(|r| r)
    };
    if let Err(why) = written {
        // The trials stay `submitting`: the next poll finds no job of this batch and submits it again.
        return Err(Failure::Transient(why));
    }
    submit(deps, site, sweep, &batch, &dir).await
}

/// Runs `sbatch` for a batch whose files are written, and records its job; also how a batch recorded as
/// `submitting` but not found in Slurm's queue is submitted again.
pub async fn submit(
    deps: &Deps,
    site: &Site,
    sweep: &Head,
    batch: &str,
    dir: &Path,
) -> Result<(), Failure> {
    let lines = std::fs::read_to_string(dir.join("tasks.txt"))
        .map_err(|e| Failure::Transient(format!("{}: {e}", dir.join("tasks.txt").display())))?;
    let scripts: Vec<&str> = lines.lines().filter(|l| !l.is_empty()).collect();
    let pack = pack(sweep);
    let tasks = scripts.len().div_ceil(pack as usize);
    let args = sbatch_args(sweep, batch, dir, tasks);
    std::fs::write(
        dir.join("sbatch.txt"),
        format!("{} {}\n", site.sbatch.display(), args.join(" ")),
    )
    .map_err(|e| Failure::Transient(e.to_string()))?;
    let started = std::time::Instant::now();
    let out = tokio::process::Command::new(&site.sbatch)
        .args(&args)
        .output()
        .await;
    let out = match out {
        Ok(o) => o,
        Err(e) => {
            return Err(Failure::Transient(format!(
                "{}: {e}",
                site.sbatch.display()
            )));
        }
    };
    let answer = String::from_utf8_lossy(&out.stdout);
    let job = match parse_sbatch(&answer).filter(|_| out.status.success()) {
        Some(job) => job,
        None => {
            let message = String::from_utf8_lossy(&out.stderr).trim().to_string();
            return Err(if transient(&message) || message.is_empty() {
                Failure::Transient(message)
            } else {
                reject(deps, sweep, &scripts, &message).await;
                Failure::Rejected(message)
            });
        }
    };
    tracing::info!(
        "slurm: sweep {}: {} trials submitted as array job {job} ({tasks} tasks) in {:.0} ms",
        sweep.id,
        scripts.len(),
        started.elapsed().as_secs_f64() * 1e3
    );
    let events = scripts
        .iter()
        .enumerate()
        .filter_map(|(i, script)| {
            let (trial, attempt) = trial_of(script)?;
            Some(EventKind::TrialChanged(Box::new(TrialChanged {
                sweep: sweep.id.clone(),
                trial,
                attempt,
                state: TrialState::Submitted {
                    job: job.clone(),
                    task: (i / pack as usize) as u32,
                },
            })))
        })
        .collect();
    // Should this record fail, the next poll finds the job by its name and records it then.
    append(deps, events).await;
    Ok(())
}

/// Records that Slurm refused a batch: its trials could not start, the sweep failed, with Slurm's message.
async fn reject(deps: &Deps, sweep: &Head, scripts: &[&str], message: &str) {
    tracing::warn!("slurm: sweep {}: sbatch refused it: {message}", sweep.id);
    let reason = format!("sbatch refused the job: {message}");
    let mut events: Vec<EventKind> = scripts
        .iter()
        .filter_map(|s| trial_of(s))
        .map(|(trial, attempt)| {
            EventKind::TrialChanged(Box::new(TrialChanged {
                sweep: sweep.id.clone(),
                trial,
                attempt,
                state: TrialState::StartFailed {
                    reason: reason.clone(),
                },
            }))
        })
        .collect();
    events.push(EventKind::SweepChanged(SweepChanged {
        sweep: sweep.id.clone(),
        state: SweepState::Failed,
        reason: Some(reason),
    }));
    append(deps, events).await;
}

/// Whether sbatch's complaint may pass by itself (the controller is down or busy), rather than a refusal.
fn transient(message: &str) -> bool {
    let m = message.to_ascii_lowercase();
    [
        "unable to contact slurm controller",
        "socket timed out",
        "connection refused",
        "temporarily unable",
        "resource temporarily unavailable",
        "zero bytes were transmitted",
        "slurm_persist_conn",
        "communication connection failure",
        "try again",
    ]
    .iter()
    .any(|p| m.contains(p))
}

/// Trials side by side in one array task: `pack`, or as many trials as their `gpu_memory` lets share one GPU
/// of `node_gpu_memory`, or 1. Only the sweep's spec decides it (not the site's configuration), so that a
/// restarted labd reads a batch's task list as it was written. A sweep with a pruner runs one trial a task, so
/// that a pruned trial's task can be cancelled alone (`plan` refuses an explicit `pack` above 1 with a pruner).
pub fn pack(sweep: &Head) -> u32 {
    let Some(opts) = sweep.spec.slurm.as_ref() else {
        return 1;
    };
    if sweep.spec.pruner.is_some() {
        return 1;
    }
    let shared = match (opts.node_gpu_memory, sweep.spec.resources.gpu_memory) {
        (Some(node), Some(each)) if each > 0 => u32::try_from(node / each).unwrap_or(u32::MAX),
        _ => 1,
    };
    opts.pack.unwrap_or(shared).max(1)
}

/// `sbatch`'s arguments for a batch of `tasks` array tasks.
pub fn sbatch_args(sweep: &Head, batch: &str, dir: &Path, tasks: usize) -> Vec<String> {
    let opts = sweep.spec.slurm.clone().unwrap_or_default();
    let pack = pack(sweep);
    let at_once = opts.array_parallelism.or(match sweep.spec.parallel {
        labd_schemas::sweep::Parallel::Fixed(n) => Some(n.div_ceil(pack)),
        labd_schemas::sweep::Parallel::Auto => None,
    });
    let array = match at_once {
        Some(n) => format!("--array=0-{}%{n}", tasks.saturating_sub(1)),
        None => format!("--array=0-{}", tasks.saturating_sub(1)),
    };
    let mut args = vec![
        "--parsable".to_string(),
        format!("--job-name=labd-{batch}"),
        array,
        format!("--output={}", dir.join("slurm-%A_%a.out").display()),
        format!("--chdir={}", dir.display()),
        // A preempted task is not run again in the same folder: labd records it and submits a new attempt.
        "--no-requeue".to_string(),
    ];
    let time = opts.time.clone().or_else(|| {
        sweep
            .spec
            .timeout
            .map(|s| format!("{}", (s / 60.0).ceil().max(1.0) as u64))
    });
    for (flag, value) in [
        ("partition", opts.partition),
        ("account", opts.account),
        ("qos", opts.qos),
        ("time", time),
        ("gres", opts.gres),
        ("cpus-per-task", opts.cpus_per_task.map(|n| n.to_string())),
        ("mem", opts.mem),
        ("constraint", opts.constraint),
    ] {
        if let Some(v) = value {
            args.push(format!("--{flag}={v}"));
        }
    }
    args.extend(opts.extra_args);
    args.push(dir.join("job.sh").to_string_lossy().into_owned());
    args
}

/// Writes each trial's attempt files and script, and the batch's task list and job script.
fn write(sweep: &Head, dir: &Path, attempts: &[(Trial, u32)]) -> Result<(), String> {
    std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let mut tasks = String::new();
    for (t, attempt) in attempts {
        let files = prepare_attempt(sweep, t, *attempt, HEADER)?;
        let mut script = format!(
            "#!/bin/sh\n# labd: sweep {}, trial {}, attempt {attempt}, run by Slurm.\n",
            sweep.id, t.id
        );
        for (k, v) in trial_env(sweep, t, *attempt, &files) {
            script.push_str(&format!("export {k}={}\n", quote(&v)));
        }
        let workdir = sweep.spec.workdir.as_deref().unwrap_or(&sweep.dir);
        script.push_str(&format!("cd {} || exit 1\n", quote(workdir)));
        script.push_str(
            "exec >\"$LABD_ATTEMPT_DIR/stdout.log\" 2>\"$LABD_ATTEMPT_DIR/stderr.log\"\n",
        );
        script.push_str(
            "printf '%s %s\\n' \"$(hostname)\" \"${SLURM_JOB_GPUS:-${CUDA_VISIBLE_DEVICES:-}}\" > \"$LABD_ATTEMPT_DIR/started\"\n",
        );
        script.push_str(&format!(
            "cat \"$LABD_ATTEMPT_DIR/{HEADER}\" >> \"$LABD_RUN_LOG\"\n"
        ));
        script.push_str(&wrapped_command(sweep, t, &files)?);
        script.push('\n');
        let path = files.attempt_dir.join("run.sh");
        std::fs::write(&path, script).map_err(|e| format!("{}: {e}", path.display()))?;
        tasks.push_str(&path.to_string_lossy());
        tasks.push('\n');
    }
    let list = dir.join("tasks.txt");
    std::fs::write(&list, tasks).map_err(|e| format!("{}: {e}", list.display()))?;
    let k = pack(sweep);
    let job = format!(
        "#!/bin/sh\n\
         # labd: array job of sweep {sweep}, batch labd-{batch}. Array task N runs the trial scripts on lines\n\
         # N*{k}+1 .. N*{k}+{k} of tasks.txt side by side; each writes its own exit code in its attempt folder, and\n\
         # the task fails when one of them does.\n\
         first=$((SLURM_ARRAY_TASK_ID * {k} + 1))\n\
         last=$((first + {k} - 1))\n\
         pids=\n\
         while IFS= read -r script; do\n\
         \x20 /bin/sh \"$script\" &\n\
         \x20 pids=\"$pids $!\"\n\
         done <<EOF\n\
         $(sed -n \"${{first}},${{last}}p\" {list})\n\
         EOF\n\
         status=0\n\
         for pid in $pids; do wait \"$pid\" || status=$?; done\n\
         exit $status\n",
        sweep = sweep.id,
        batch = dir.file_name().and_then(|n| n.to_str()).unwrap_or_default(),
        list = quote(&list.to_string_lossy()),
    );
    let path = dir.join("job.sh");
    std::fs::write(&path, job).map_err(|e| format!("{}: {e}", path.display()))
}

/// The trial and attempt a script line is for: `<sweep dir>/<trial>/attempt-<n>/run.sh`.
pub fn trial_of(script: &str) -> Option<(String, u32)> {
    let path = Path::new(script);
    let attempt_dir = path.parent()?;
    let attempt = attempt_dir
        .file_name()?
        .to_str()?
        .strip_prefix("attempt-")?
        .parse()
        .ok()?;
    let trial = attempt_dir.parent()?.file_name()?.to_str()?.to_string();
    Some((trial, attempt))
}

fn trial(sweep: &Head, t: &Trial, attempt: u32, state: TrialState) -> EventKind {
    EventKind::TrialChanged(Box::new(TrialChanged {
        sweep: sweep.id.clone(),
        trial: t.id.clone(),
        attempt,
        state,
    }))
}

fn quote(s: &str) -> String {
    super::super::plan::shell_quote(s)
}

#[cfg(test)]
mod tests {
    use super::*;
    use labd_schemas::sweep::{SlurmJob, SweepSpec};

    fn head(slurm: SlurmJob, timeout: Option<f64>) -> Head {
        let mut spec: SweepSpec = serde_json::from_value(serde_json::json!({
            "sweep": {"lr": [0.1]}, "command": "python train.py {config}", "parallel": 4,
            "executor": "slurm"
        }))
        .unwrap();
        spec.slurm = Some(slurm);
        spec.timeout = timeout;
        Head {
            id: "s1".into(),
            dir: "/shared/sweeps/s1".into(),
            spec,
        }
    }

    #[test]
    fn sbatch_gets_the_array_the_sweeps_options_and_a_time_from_the_timeout() {
        let h = head(
            SlurmJob {
                partition: Some("gpu".into()),
                gres: Some("gpu:1".into()),
                pack: Some(2),
                extra_args: vec!["--exclusive".into()],
                ..Default::default()
            },
            Some(90.0),
        );
        let args = sbatch_args(&h, "s1-7", Path::new("/b"), 6);
        assert_eq!(args[0], "--parsable");
        assert!(args.contains(&"--job-name=labd-s1-7".to_string()));
        assert!(
            args.contains(&"--array=0-5%2".to_string()),
            "parallel 4 with 2 trials a task: 2 tasks at once: {args:?}"
        );
        assert!(args.contains(&"--partition=gpu".to_string()));
        assert!(args.contains(&"--gres=gpu:1".to_string()));
        assert!(args.contains(&"--time=2".to_string()), "90 s → 2 minutes");
        assert!(args.contains(&"--no-requeue".to_string()));
        assert_eq!(args[args.len() - 2], "--exclusive");
        assert_eq!(args.last().unwrap(), "/b/job.sh");
    }

    #[test]
    fn trials_share_a_gpu_as_their_gpu_memory_allows_unless_pack_says() {
        let mut h = head(SlurmJob::default(), None);
        assert_eq!(pack(&h), 1);
        h.spec.resources.gpu_memory = Some(20 << 30);
        assert_eq!(pack(&h), 1, "the nodes' GPUs unknown: one trial a task");
        h.spec.slurm.as_mut().unwrap().node_gpu_memory = Some(80 << 30);
        assert_eq!(pack(&h), 4);
        h.spec.resources.gpu_memory = Some(100 << 30);
        assert_eq!(pack(&h), 1, "a trial larger than a GPU still runs alone");
        h.spec.slurm.as_mut().unwrap().pack = Some(3);
        assert_eq!(pack(&h), 3, "pack is what the sweep says");
    }

    #[test]
    fn scripts_name_their_trial_and_attempt_and_complaints_are_sorted() {
        assert_eq!(
            trial_of("/shared/sweeps/s1/t-3f/attempt-2/run.sh"),
            Some(("t-3f".into(), 2))
        );
        assert_eq!(trial_of("/x/run.sh"), None);
        assert!(transient(
            "sbatch: error: Batch job submission failed: Unable to contact slurm controller (connect failure)"
        ));
        assert!(!transient(
            "sbatch: error: Batch job submission failed: Invalid partition name specified"
        ));
    }
}
