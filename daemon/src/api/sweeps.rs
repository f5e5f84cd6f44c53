//! Sweep endpoints: submit (or dry-run), list, status with every trial, cancel, resume. Submitting records the
//! plan in the log and wakes the scheduler; everything after that is the scheduler's.

use super::{Error, Result};
use crate::state::AppState;
use crate::views::sweeps::{Sweep, Trial, TrialStatus};
use axum::Json;
use axum::extract::rejection::QueryRejection;
use axum::extract::{Path, Query, State};
use labd_log::writer::Batch;
use labd_schemas::sweep::{SweepChanged, SweepState, TrialChanged, TrialState};
use labd_schemas::time::now_micros;
use labd_schemas::{Event, EventKind, Source};
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::sync::Arc;

/// A sweep id names a folder: letters, digits, `.`, `_`, `-`; at most 100 characters.
pub(super) fn check_id(id: &str) -> Result<()> {
    let ok = !id.is_empty()
        && id.len() <= 100
        && !id.starts_with('.')
        && id
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"._-".contains(&b));
    if ok {
        Ok(())
    } else {
        Err(Error::bad(format!(
            "sweep_id {id:?}: use letters, digits, '.', '_' and '-' (at most 100, not starting with '.')"
        )))
    }
}

/// Mean seconds of the completed trials of `sweep`, else of every sweep with the same command.
pub(super) fn mean_trial_secs(v: &crate::views::Views, id: &str, command: &str) -> Option<f64> {
    let secs = |s: &Sweep| -> Vec<f64> {
        s.trials
            .values()
            .filter(|t| t.status == TrialStatus::Completed)
            .filter_map(|t| t.secs)
            .collect()
    };
    let own = v.sweeps.sweeps.get(id).map(secs).unwrap_or_default();
    let pool = if own.is_empty() {
        v.sweeps
            .sweeps
            .values()
            .filter(|s| s.spec.command == command)
            .flat_map(secs)
            .collect()
    } else {
        own
    };
    (!pool.is_empty()).then(|| pool.iter().sum::<f64>() / pool.len() as f64)
}

pub(super) async fn append(s: &AppState, kinds: Vec<EventKind>, request: &str) -> Result<()> {
    let now = now_micros();
    let events = kinds
        .into_iter()
        .map(|k| {
            Event::new(
                now,
                Source::Http {
                    request: request.into(),
                },
                k,
            )
        })
        .collect();
    s.appender
        .append_async(Batch {
            events,
            cursors: Vec::new(),
            positions: Vec::new(),
        })
        .await?;
    Ok(())
}

/// The sweep `id`, or 404.
fn find<'a>(v: &'a crate::views::Views, id: &str) -> Result<&'a Sweep> {
    v.sweeps
        .sweeps
        .get(id)
        .ok_or_else(|| Error::not_found(format!("no sweep {id:?}; see GET /api/v1/sweeps")))
}

/// Counts and an estimate of what is left.
#[derive(Serialize)]
pub struct Progress {
    pub total: usize,
    pub completed: usize,
    pub running: usize,
    pub failed: usize,
    pub waiting: usize,
    pub cancelled: usize,
    /// Seconds left at the current pace (mean trial time × waiting / running), when known.
    pub eta_secs: Option<f64>,
    pub counts: BTreeMap<TrialStatus, usize>,
}

fn progress(v: &crate::views::Views, s: &Sweep) -> Progress {
    let counts = s.counts();
    let n = |st: TrialStatus| counts.get(&st).copied().unwrap_or(0);
    let waiting = n(TrialStatus::Pending) + n(TrialStatus::Scheduled) + n(TrialStatus::Interrupted);
    let running = n(TrialStatus::Running);
    let eta_secs = (s.state == SweepState::Running)
        .then(|| mean_trial_secs(v, &s.id, &s.spec.command))
        .flatten()
        .map(|m| ((waiting + running) as f64 / running.max(1) as f64) * m);
    Progress {
        total: s.trials.len(),
        completed: n(TrialStatus::Completed),
        running,
        failed: n(TrialStatus::Failed) + n(TrialStatus::TimedOut),
        waiting,
        cancelled: n(TrialStatus::Cancelled),
        eta_secs,
        counts,
    }
}

/// `GET /api/v1/sweeps`.
pub async fn list(State(s): State<Arc<AppState>>) -> Json<Vec<Value>> {
    let v = s.views();
    Json(
        v.sweeps
            .sweeps
            .values()
            .map(|sw| {
                json!({
                    "id": sw.id, "name": sw.spec.name, "state": sw.state, "reason": sw.reason,
                    "created": sw.created, "updated": sw.updated, "command": sw.spec.command,
                    "tags": sw.spec.tags, "progress": progress(&v, sw),
                })
            })
            .collect(),
    )
}

#[derive(Deserialize)]
pub struct StatusQuery {
    /// Leave out the trials (progress only).
    #[serde(default)]
    brief: bool,
}

/// `GET /api/v1/sweeps/{id}`: the sweep, its progress and every trial.
pub async fn show(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: std::result::Result<Query<StatusQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    let v = s.views();
    let sw = find(&v, &id)?;
    let trials: Vec<&Trial> = if q.brief {
        Vec::new()
    } else {
        sw.trials().collect()
    };
    Ok(Json(json!({
        "id": sw.id, "name": sw.spec.name, "state": sw.state, "reason": sw.reason,
        "created": sw.created, "updated": sw.updated, "dir": sw.dir, "spec": sw.spec, "host": sw.host,
        "parallel_budget": (sw.spec.parallel == labd_schemas::sweep::Parallel::Auto)
            .then(|| s.sweeps.budgets.get(&sw.id))
            .flatten(),
        "progress": progress(&v, sw),
        "trials": trials,
    })))
}

/// Refuses to change another host's sweep (seen here through the federation): its trials run there.
pub fn local(s: &AppState, id: &str) -> Result<()> {
    match s
        .views()
        .sweeps
        .sweeps
        .get(id)
        .and_then(|sw| sw.host.clone())
    {
        Some(host) => Err(Error(
            axum::http::StatusCode::CONFLICT,
            format!(
                "sweep {id} runs on host {host}: change it through that host's labd (this one shows it through the federation)"
            ),
        )),
        None => Ok(()),
    }
}

/// `POST /api/v1/sweeps/{id}/cancel`: no new trials start; running ones are stopped (SIGTERM to their group,
/// SIGKILL after 5 s) and recorded as cancelled.
pub async fn cancel(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>> {
    local(&s, &id)?;
    let state = s.views().sweeps.sweeps.get(&id).map(|sw| sw.state);
    match state {
        None => return Err(Error::not_found(format!("no sweep {id:?}"))),
        Some(SweepState::Running | SweepState::Paused) => {}
        Some(other) => {
            return Err(Error(
                axum::http::StatusCode::CONFLICT,
                format!("sweep {id} is {}, not running", other.as_str()),
            ));
        }
    }
    append(
        &s,
        vec![EventKind::SweepChanged(SweepChanged {
            sweep: id.clone(),
            state: SweepState::Cancelled,
            reason: Some("cancelled".into()),
        })],
        &format!("POST /api/v1/sweeps/{id}/cancel"),
    )
    .await?;
    let stopped = s.sweeps.cancel(&id).await;
    Ok(Json(json!({"sweep_id": id, "stopping": stopped})))
}

/// `POST /api/v1/sweeps/{id}/pause`: no new trials start (or are submitted to Slurm); running ones go on;
/// `resume` continues.
pub async fn pause(State(s): State<Arc<AppState>>, Path(id): Path<String>) -> Result<Json<Value>> {
    local(&s, &id)?;
    let state = s.views().sweeps.sweeps.get(&id).map(|sw| sw.state);
    match state {
        None => return Err(Error::not_found(format!("no sweep {id:?}"))),
        Some(SweepState::Running) => {}
        Some(other) => {
            return Err(Error(
                axum::http::StatusCode::CONFLICT,
                format!("sweep {id} is {}, not running", other.as_str()),
            ));
        }
    }
    append(
        &s,
        vec![EventKind::SweepChanged(SweepChanged {
            sweep: id.clone(),
            state: SweepState::Paused,
            reason: Some("paused".into()),
        })],
        &format!("POST /api/v1/sweeps/{id}/pause"),
    )
    .await?;
    Ok(Json(json!({"sweep_id": id, "state": "paused"})))
}

#[derive(Deserialize)]
pub struct ResumeQuery {
    /// Run failed and timed-out trials again too.
    #[serde(default)]
    retry_failed: bool,
}

/// `POST /api/v1/sweeps/{id}/resume`: run what is left (cancelled and waiting trials; failed ones with
/// `retry_failed`). Completed trials never run again.
pub async fn resume(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: std::result::Result<Query<ResumeQuery>, QueryRejection>,
) -> Result<Json<Value>> {
    let Query(q) = q?;
    local(&s, &id)?;
    let again: Vec<(String, u32)> = {
        let v = s.views();
        let sw = find(&v, &id)?;
        sw.trials()
            .filter(|t| {
                t.status == TrialStatus::Cancelled || (q.retry_failed && t.status.is_failed())
            })
            .map(|t| (t.id.clone(), t.attempts))
            .collect()
    };
    let mut kinds = vec![EventKind::SweepChanged(SweepChanged {
        sweep: id.clone(),
        state: SweepState::Running,
        reason: Some("resumed".into()),
    })];
    for (trial, attempt) in &again {
        kinds.push(EventKind::TrialChanged(Box::new(TrialChanged {
            sweep: id.clone(),
            trial: trial.clone(),
            attempt: *attempt,
            state: TrialState::Retrying {
                reason: "resumed".into(),
            },
        })));
    }
    append(&s, kinds, &format!("POST /api/v1/sweeps/{id}/resume")).await?;
    s.sweeps.wake();
    Ok(Json(json!({"sweep_id": id, "requeued": again.len()})))
}

#[derive(Deserialize)]
pub struct AnalysisQuery {
    /// The metric (or summary number); without it, the trials' primary metric (see
    /// `analytics::sweep::primary_metric`).
    metric: Option<String>,
    /// The reduction (default: the metric's from `[reductions]`, else `last`).
    reduce: Option<String>,
    /// `min` or `max` (default: min for losses, errors and times, else max).
    goal: Option<String>,
    /// Only this parameter.
    param: Option<String>,
    /// Relative change between adjacent values that counts as a threshold (default 0.5 = 50 %).
    threshold: Option<f64>,
    /// Absolute change that counts too.
    threshold_abs: Option<f64>,
    /// `json` (default) or `md` (a Markdown report).
    format: Option<String>,
    /// Two or more objectives for a Pareto front, `METRIC:min|max[:last|min|max]`, comma-separated (default:
    /// the sweep's `objectives`).
    objectives: Option<String>,
}

/// `val/loss:min,latency:min:last` as objectives.
fn parse_objectives(text: &str) -> Result<Vec<labd_schemas::sweep::Objective>> {
    use labd_schemas::sweep::{Direction, Objective, Reduce};
    text.split(',')
        .filter(|p| !p.trim().is_empty())
        .map(|part| {
            let mut it = part.trim().split(':');
            let metric = it.next().unwrap_or_default().to_string();
            let direction = match it.next() {
                Some("min" | "minimize") | None => Direction::Minimize,
                Some("max" | "maximize") => Direction::Maximize,
                Some(other) => {
                    return Err(Error::bad(format!(
                        "objectives: {part:?}: direction {other:?}: use min or max"
                    )));
                }
            };
            let reduce = match it.next() {
                Some("last") | None => Reduce::Last,
                Some("min") => Reduce::Min,
                Some("max") => Reduce::Max,
                Some(other) => {
                    return Err(Error::bad(format!(
                        "objectives: {part:?}: reduction {other:?}: use last, min or max"
                    )));
                }
            };
            if metric.is_empty() || it.next().is_some() {
                return Err(Error::bad(format!(
                    "objectives: {part:?}: write METRIC:min|max[:last|min|max]"
                )));
            }
            Ok(Objective {
                metric,
                direction,
                reduce,
            })
        })
        .collect()
}

/// `GET /api/v1/sweeps/{id}/analysis?metric=&reduce=&goal=&param=&threshold=&format=json|md`.
pub async fn analysis(
    State(s): State<Arc<AppState>>,
    Path(id): Path<String>,
    q: std::result::Result<Query<AnalysisQuery>, QueryRejection>,
) -> Result<axum::response::Response> {
    use crate::analytics::sweep::{Ask, Goal, analyze, primary_metric, report};
    use axum::response::IntoResponse;
    let Query(mut q) = q?;
    let metric = match q.metric.take().filter(|m| !m.trim().is_empty()) {
        Some(m) => m,
        None => {
            let v = s.views();
            let sw = find(&v, &id)?;
            // The sweep's own objective when it has one, else the metric most of its runs have.
            let objective = sw
                .spec
                .objective
                .as_ref()
                .or(sw.spec.objectives.first())
                .map(|o| o.metric.clone());
            objective
                .or_else(|| primary_metric(sw, &v))
                .ok_or_else(|| {
                    Error::not_found(format!(
                        "sweep {id}: no trial's run has a metric or a summary number yet"
                    ))
                })?
        }
    };
    let reduce: crate::analytics::reduce::Reduce = match q.reduce.as_deref() {
        Some(r) if !r.trim().is_empty() => r.parse()?,
        _ => s.config.reductions.of(&metric),
    };
    let goal = match q.goal.as_deref() {
        None => Goal::guess(&metric),
        Some("min") => Goal::Min,
        Some("max") => Goal::Max,
        Some(other) => return Err(Error::bad(format!("goal {other:?}: use min or max"))),
    };
    let md = match q.format.as_deref() {
        None | Some("json") => false,
        Some("md" | "markdown") => true,
        Some(other) => return Err(Error::bad(format!("format {other:?}: use json or md"))),
    };
    let asked_objectives = match q.objectives.as_deref() {
        Some(text) => {
            let o = parse_objectives(text)?;
            if o.len() == 1 {
                return Err(Error::bad(
                    "objectives: a Pareto front needs two or more (METRIC:min|max,...)",
                ));
            }
            Some(o)
        }
        None => None,
    };
    let relative = q.threshold.unwrap_or(0.5);
    if !(relative.is_finite() && relative >= 0.0) {
        return Err(Error::bad("threshold must be a number ≥ 0 (0.5 = 50 %)"));
    }
    let answer = tokio::task::spawn_blocking(move || -> Result<_> {
        let v = s.views();
        let sw = find(&v, &id)?;
        if reduce.needs_curves() && !v.curves_ready() {
            return Err(Error(
                axum::http::StatusCode::SERVICE_UNAVAILABLE,
                "this reduction needs the curve store, which is warming up after start; try again in a moment".into(),
            ));
        }
        let objectives = asked_objectives.unwrap_or_else(|| sw.spec.objectives.clone());
        let ask = Ask {
            objectives: &objectives,
            metric: &metric,
            reduce,
            goal,
            param: q.param.as_deref(),
            relative,
            absolute: q.threshold_abs,
        };
        Ok(analyze(sw, &v, &ask)?)
    })
    .await
    .map_err(Error::internal)??;
    if md {
        return Ok((
            [(
                axum::http::header::CONTENT_TYPE,
                "text/markdown; charset=utf-8",
            )],
            report(&answer),
        )
            .into_response());
    }
    Ok(Json(answer).into_response())
}
