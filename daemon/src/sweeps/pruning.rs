//! The sweeps' pruners, driven by the curves as they are ingested: for each running trial of a sweep with a
//! `pruner`, its objective's points so far (from the curve store, as losses) are held to the rule; what it
//! decides comes back as trial events (`rung_reached`, `pruned`) for the scheduler to record, and a pruned
//! trial's group is ended. ASHA's and Hyperband's state is the rungs' values in the sweeps view, built from the
//! `rung_reached` events in log order, so a restarted labd holds every trial to the same rungs. Pure over the
//! views.

use super::search::prune::{Hyperband, median, promotable};
use crate::views::Views;
use crate::views::chunk::NO_STEP;
use crate::views::sweeps::{Sweep, Trial, TrialStatus};
use labd_schemas::sweep::{Objective, Pruner, SweepState, TrialState};

/// What a pruner decided about one running trial.
#[derive(Debug, PartialEq)]
pub struct Decision {
    pub sweep: String,
    pub trial: String,
    pub attempt: u32,
    /// In order: rungs reached, then `pruned` when it stops.
    pub states: Vec<TrialState>,
    pub prune: bool,
}

/// The decisions about the running trials of every local sweep with a pruner.
pub fn decide(v: &Views) -> Vec<Decision> {
    if !v.curves_ready() {
        return Vec::new();
    }
    v.sweeps
        .sweeps
        .values()
        .filter(|s| s.is_local() && s.state == SweepState::Running)
        .filter_map(|s| Some((s, s.spec.pruner.as_ref()?, s.spec.objective.as_ref()?)))
        .flat_map(|(s, pruner, objective)| {
            // Rung values this pass records, seen by the trials after them in the sweep's order.
            let mut added: Vec<Vec<Vec<f64>>> = Vec::new();
            s.order
                .iter()
                .enumerate()
                .filter_map(|(n, id)| Some((n, s.trials.get(id)?)))
                .filter(|(_, t)| matches!(t.status, TrialStatus::Running | TrialStatus::Completed))
                .filter_map(|(n, t)| one(v, s, t, n as u64, pruner, objective, &mut added))
                .collect::<Vec<_>>()
        })
        .collect()
}

/// The objective's points of a trial's run so far, as (step, loss); points without a step left out.
fn curve(v: &Views, t: &Trial, objective: &Objective) -> Vec<(i64, f64)> {
    let Some(exp) = &t.experiment_id else {
        return Vec::new();
    };
    let Some(series) = v.curves.series(exp, &objective.metric) else {
        return Vec::new();
    };
    let c = series.columns();
    c.step
        .iter()
        .zip(&c.value)
        .filter(|(s, _)| **s != NO_STEP)
        .map(|(s, x)| (*s, objective.direction.loss(*x)))
        .collect()
}

/// The decision about trial `t` (number `n`). A completed trial is only recorded at the rungs its curve
/// reached that the ticks did not see while it ran, so that every trial after it meets the same rungs.
fn one(
    v: &Views,
    s: &Sweep,
    t: &Trial,
    n: u64,
    pruner: &Pruner,
    objective: &Objective,
    added: &mut Vec<Vec<Vec<f64>>>,
) -> Option<Decision> {
    let running = t.status == TrialStatus::Running;
    if !running && matches!(pruner, Pruner::Median { .. }) {
        return None;
    }
    let points = curve(v, t, objective);
    points.last()?;
    let mut states = Vec::new();
    let mut prune = false;
    match pruner {
        Pruner::Median {
            n_startup,
            warmup_steps,
        } => {
            let done: Vec<Vec<(i64, f64)>> = s
                .trials()
                .filter(|o| o.status == TrialStatus::Completed)
                .map(|o| curve(v, o, objective))
                .collect();
            let done: Vec<&[(i64, f64)]> = done.iter().map(Vec::as_slice).collect();
            // Every step so far, in order: the first that fails decides, whenever the tick comes.
            let mut steps: Vec<i64> = points.iter().map(|p| p.0).collect();
            steps.dedup();
            if let Some(p) = steps
                .into_iter()
                .find_map(|at| median(&points, &done, at, *n_startup, *warmup_steps))
            {
                states.push(pruned(p));
                prune = true;
            }
        }
        Pruner::Asha {
            min_resource,
            reduction_factor,
            min_early_stopping_rate,
            max_resource,
        } => {
            prune = rungs(
                s,
                t,
                (0, *min_early_stopping_rate),
                (*min_resource, *max_resource, *reduction_factor),
                &points,
                "asha",
                (&mut states, added, running),
            );
        }
        Pruner::Hyperband {
            min_resource,
            max_resource,
            reduction_factor,
        } => {
            let bracket = Hyperband::new(*min_resource, *max_resource, *reduction_factor)
                .bracket_of(n) as u32;
            prune = rungs(
                s,
                t,
                (bracket, bracket),
                (*min_resource, Some(*max_resource), *reduction_factor),
                &points,
                "hyperband",
                (&mut states, added, running),
            );
        }
    }
    let prune = prune && running;
    (!states.is_empty()).then(|| Decision {
        sweep: s.id.clone(),
        trial: t.id.clone(),
        attempt: t.attempts,
        states,
        prune,
    })
}

/// ASHA in one bracket (`(bracket, rate)`; `(min, max, η)` the resources): the rungs the trial has now reached,
/// each recorded with the value of the point that reached it (whenever the tick comes), and whether it stops
/// at one.
fn rungs(
    s: &Sweep,
    t: &Trial,
    (bracket, rate): (u32, u32),
    (min_resource, max_resource, eta): (i64, Option<i64>, u32),
    points: &[(i64, f64)],
    rule: &str,
    (states, added, running): (&mut Vec<TrialState>, &mut Vec<Vec<Vec<f64>>>, bool),
) -> bool {
    let resource = |k: u32| {
        let mut r = min_resource.max(1);
        for _ in 0..(k + rate) {
            r = r.saturating_mul(i64::from(eta.max(2)));
        }
        r
    };
    let recorded = s.rungs.get(bracket as usize);
    let mut k = t.next_rung;
    loop {
        let r = resource(k);
        if max_resource.is_some_and(|m| r >= m) {
            return false;
        }
        let Some(&(step, value)) = points.iter().find(|p| p.0 >= r) else {
            return false;
        };
        let (b, ku) = (bracket as usize, k as usize);
        if added.len() <= b {
            added.resize(b + 1, Vec::new());
        }
        if added[b].len() <= ku {
            added[b].resize(ku + 1, Vec::new());
        }
        let mut so_far: Vec<f64> = recorded
            .and_then(|r| r.get(ku))
            .cloned()
            .unwrap_or_default();
        so_far.extend(&added[b][ku]);
        let (goes_on, cut, n) = promotable(&so_far, value, eta);
        added[b][ku].push(value);
        states.push(TrialState::RungReached {
            bracket,
            rung: k,
            step,
            value,
        });
        if !goes_on && running {
            states.push(TrialState::Pruned {
                rule: rule.into(),
                rung: Some(k),
                step,
                value,
                threshold: cut,
                compared: n as u32,
            });
            return true;
        }
        k += 1;
    }
}

fn pruned(p: super::search::prune::Pruned) -> TrialState {
    TrialState::Pruned {
        rule: p.rule.into(),
        rung: p.rung,
        step: p.step,
        value: p.value,
        threshold: p.threshold,
        compared: p.compared as u32,
    }
}
