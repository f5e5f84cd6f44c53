//! Submitting a sweep (`POST /api/v1/sweeps`): its plan (off the async threads), what a resume keeps and how
//! long the rest should take, a dry run's answer, the sweep's folder (on the shared storage for Slurm sweeps,
//! whose `sbatch` must be there), and the events that record it; the scheduler takes it from there.

use super::sweeps::{append, check_id, mean_trial_secs};
use super::{Error, Result};
use crate::state::AppState;
use crate::views::Views;
use crate::views::sweeps::TrialStatus;
use axum::Json;
use axum::extract::State;
use axum::extract::rejection::JsonRejection;
use labd_schemas::EventKind;
use labd_schemas::sweep::{
    SweepChanged, SweepCreated, SweepSpec, SweepState, TrialChanged, TrialPlan, TrialState,
};
use serde::Deserialize;
use serde_json::{Value, json};
use std::sync::Arc;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Submit {
    pub spec: SweepSpec,
    /// Plan only: list the trials and estimate the time, record nothing.
    #[serde(default)]
    pub dry_run: bool,
}

/// `POST /api/v1/sweeps`: plan a sweep and run it (or, with `dry_run`, only say what it would run).
pub async fn submit(
    State(s): State<Arc<AppState>>,
    body: std::result::Result<Json<Submit>, JsonRejection>,
) -> Result<Json<Value>> {
    let Json(Submit { mut spec, dry_run }) = body?;
    let name = spec
        .name
        .clone()
        .filter(|n| !n.trim().is_empty())
        .unwrap_or_else(|| "sweep".into());
    let id = spec.sweep_id.clone().unwrap_or_else(|| new_id(&name));
    check_id(&id)?;
    super::sweeps::local(&s, &id)?;
    spec.name = Some(name);
    spec.sweep_id = Some(id.clone());
    if let Some(w) = &spec.workdir
        && !std::path::Path::new(w).is_dir()
    {
        return Err(Error::bad(format!(
            "workdir {w:?} is not a folder on the daemon's host"
        )));
    }
    let slurm = spec.executor == labd_schemas::sweep::Executor::Slurm;
    if slurm {
        check_slurm(&s.config.slurm)?;
    } else if spec.slurm.is_some() {
        return Err(Error::bad(
            "`slurm:` options are for `executor: slurm`; add that line, or drop them to run the trials here",
        ));
    }
    // Up to 100,000 trials: planned off the async threads.
    let trials = {
        let (id, spec) = (id.clone(), spec.clone());
        tokio::task::spawn_blocking(move || crate::sweeps::plan::plan(&id, &spec))
            .await
            .map_err(Error::internal)?
            .map_err(|e| Error::bad(e.to_string()))?
    };
    let outlook = outlook(&s.views(), &id, &spec, &trials);
    if dry_run {
        return Ok(Json(dry_run_answer(&id, &trials, &outlook)));
    }
    let dir = if slurm {
        s.config.slurm.dir.join(&id)
    } else {
        s.config.sweeps_dir().join(&id)
    };
    let exists = s.views().sweeps.sweeps.contains_key(&id);
    prepare_folder(&dir, &id, exists && !spec.resume)?;
    let kinds = submission(&s.views(), &id, &spec, &trials, &outlook.kept, &dir);
    let scheduled = kinds.len() - 2;
    append(&s, kinds, "POST /api/v1/sweeps").await?;
    s.sweeps.wake();
    tracing::info!(
        "sweep {id}: {} trials planned, {scheduled} scheduled, {} kept",
        trials.len(),
        outlook.kept.len()
    );
    Ok(Json(json!({
        "sweep_id": id,
        "total": trials.len(),
        "scheduled": scheduled,
        "kept": outlook.kept.len(),
        "estimate_secs": outlook.estimate,
        "dir": dir,
    })))
}

/// A Slurm sweep needs `sbatch`: refused with how to configure it when there is none.
fn check_slurm(site: &crate::config::Slurm) -> Result<()> {
    if find_program(&site.sbatch).is_some() {
        return Ok(());
    }
    Err(Error::bad(format!(
        "executor slurm needs sbatch, and there is none at {:?}{}: run labd on a host where Slurm's commands \
         work (a login node), or name them in labd's config file: [slurm] sbatch = \"/path/to/sbatch\" (and \
         squeue, sacct, scancel; dir = a folder the nodes share)",
        site.sbatch.display().to_string(),
        if site.sbatch.components().count() > 1 {
            ""
        } else {
            " on the PATH"
        }
    )))
}

/// The program a command names: a path as given, a bare name looked up on the PATH.
fn find_program(program: &std::path::Path) -> Option<std::path::PathBuf> {
    if program.components().count() > 1 {
        return program.is_file().then(|| program.to_path_buf());
    }
    std::env::split_paths(&std::env::var_os("PATH")?)
        .map(|d| d.join(program))
        .find(|p| p.is_file())
}

/// A sweep id from its name and the time.
fn new_id(name: &str) -> String {
    format!(
        "sweep_{}_{}",
        name.chars()
            .map(|c| if c.is_ascii_alphanumeric() || c == '-' {
                c
            } else {
                '_'
            })
            .collect::<String>(),
        chrono::Utc::now().format("%Y%m%d_%H%M%S")
    )
}

/// What a submission would do: the completed trials a resume keeps, how many run at once, and how long the
/// rest should take (from the trials of this sweep or command seen before).
struct Outlook {
    kept: Vec<String>,
    parallel: f64,
    estimate: Option<f64>,
}

fn outlook(v: &Views, id: &str, spec: &SweepSpec, trials: &[TrialPlan]) -> Outlook {
    let old = v.sweeps.sweeps.get(id);
    let kept: Vec<String> = trials
        .iter()
        .filter(|t| {
            spec.resume
                && old
                    .and_then(|o| o.trials.get(&t.id))
                    .is_some_and(|t| t.status == TrialStatus::Completed)
        })
        .map(|t| t.id.clone())
        .collect();
    let cores = std::thread::available_parallelism().map_or(1, |n| n.get()) as f64;
    let parallel = match spec.parallel {
        labd_schemas::sweep::Parallel::Fixed(n) => n as f64,
        labd_schemas::sweep::Parallel::Auto => {
            (cores / spec.resources.cpus.max(0.01)).floor().max(1.0)
        }
    };
    let todo = (trials.len() - kept.len()) as f64;
    let estimate = mean_trial_secs(v, id, &spec.command).map(|m| (todo / parallel).ceil() * m);
    Outlook {
        kept,
        parallel,
        estimate,
    }
}

/// The answer to a dry run: the plan, what would be kept, the parallelism and the estimate.
fn dry_run_answer(id: &str, trials: &[TrialPlan], outlook: &Outlook) -> Value {
    json!({
        "sweep_id": id,
        "dry_run": true,
        "total": trials.len(),
        "kept": outlook.kept.len(),
        "to_run": trials.len() - outlook.kept.len(),
        "parallel": outlook.parallel,
        "estimate_secs": outlook.estimate,
        "trials": trials.iter().map(|t| json!({
            "id": t.id, "params": t.params, "repeat": t.repeat,
            "kept": outlook.kept.contains(&t.id),
        })).collect::<Vec<_>>(),
    })
}

/// Makes the sweep's folder. Run again from scratch (`fresh`), the old trials' folders are kept aside, not
/// mixed in.
fn prepare_folder(dir: &std::path::Path, id: &str, fresh: bool) -> Result<()> {
    if fresh && dir.exists() {
        let stamp = chrono::Utc::now().format("%Y%m%d_%H%M%S");
        let aside = (0..)
            .map(|n| {
                let suffix = if n == 0 {
                    String::new()
                } else {
                    format!("_{n}")
                };
                dir.with_file_name(format!("{id}.before-{stamp}{suffix}"))
            })
            .find(|p| !p.exists())
            .unwrap_or_else(|| dir.with_file_name(format!("{id}.before-{stamp}")));
        std::fs::rename(dir, &aside)
            .map_err(|e| Error::internal(format!("{}: {e}", dir.display())))?;
    }
    std::fs::create_dir_all(dir).map_err(|e| Error::internal(format!("{}: {e}", dir.display())))
}

/// The events of a submission: the sweep with its plan, running, and each trial to run scheduled (a failed
/// one of a resumed sweep only with `retry_failed`, as a retry).
fn submission(
    v: &Views,
    id: &str,
    spec: &SweepSpec,
    trials: &[TrialPlan],
    kept: &[String],
    dir: &std::path::Path,
) -> Vec<EventKind> {
    let old = v.sweeps.sweeps.get(id);
    let old_failed: Vec<String> = old
        .map(|o| {
            o.trials
                .values()
                .filter(|t| spec.resume && t.status.is_failed())
                .map(|t| t.id.clone())
                .collect()
        })
        .unwrap_or_default();
    let running_now = old.is_some_and(|o| o.state == SweepState::Running);
    let mut kinds = vec![
        EventKind::SweepCreated(Box::new(SweepCreated {
            sweep: id.to_string(),
            spec: spec.clone(),
            trials: trials.to_vec(),
            dir: dir.to_string_lossy().into_owned(),
        })),
        EventKind::SweepChanged(SweepChanged {
            sweep: id.to_string(),
            state: SweepState::Running,
            reason: Some(if kept.is_empty() && !running_now {
                "submitted".into()
            } else {
                format!("submitted again: {} completed trials kept", kept.len())
            }),
        }),
    ];
    for t in trials {
        if kept.contains(&t.id) {
            continue;
        }
        let failed_before = old_failed.contains(&t.id);
        if failed_before && !spec.retry_failed {
            continue;
        }
        kinds.push(EventKind::TrialChanged(Box::new(TrialChanged {
            sweep: id.to_string(),
            trial: t.id.clone(),
            attempt: 0,
            state: if failed_before {
                TrialState::Retrying {
                    reason: "submitted again with retry_failed".into(),
                }
            } else {
                TrialState::Scheduled
            },
        })));
    }
    kinds
}
