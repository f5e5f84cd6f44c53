//! Model-based sweeps (`strategy: tpe`, and `nsga2` for several objectives): the next trial is chosen from the results so far and recorded as
//! `trial_added` before it is started. At most one chosen trial waits at a time, so each choice sees every
//! result that came before it. A finished trial counts once its run has recorded its final status (the search
//! waits for it: 5 s for a run to appear, a minute for it to end, then goes on without the trial's value);
//! pruned trials count as worse than every completed one; failed trials do not count. Decision `n`
//! draws from the sweep's seed and `n`, so the same results give the same choices, after a restart too: the
//! history is rebuilt from the views, which the log rebuilds.

use super::plan::chosen;
use super::search::domain::Domain;
use super::search::nsga2;
use super::search::rng::SplitMix64;
use super::search::tpe;
use crate::views::Views;
use crate::views::sweeps::{Sweep, TrialStatus};
use labd_schemas::EventKind;
use labd_schemas::sweep::{Objective, Reduce, Strategy, SweepState, TrialAdded};
use std::collections::BTreeMap;

/// How long after a trial's process ended the search waits for its result: for its run to appear, and for the
/// run to record its final status (Unix microseconds). Past that it goes on without the trial's value.
const NO_RUN: i64 = 5_000_000;
const NO_END: i64 = 60_000_000;

/// The trials model-based sweeps choose now (`now`: Unix microseconds).
pub fn next_trials(v: &Views, now: i64) -> Vec<EventKind> {
    v.sweeps
        .sweeps
        .values()
        .filter(|s| s.state == SweepState::Running && s.spec.strategy.is_adaptive())
        .filter_map(|s| next(s, v, now))
        .collect()
}

/// Whether a model-based sweep has chosen all its trials (a sweep of another strategy always has).
pub fn all_chosen(s: &Sweep) -> bool {
    !s.spec.strategy.is_adaptive() || s.order.len() >= s.spec.trials.unwrap_or(0) as usize
}

fn next(s: &Sweep, v: &Views, now: i64) -> Option<EventKind> {
    if all_chosen(s)
        || s.trials()
            .any(|t| t.status.is_waiting() || t.status == TrialStatus::Queued)
    {
        return None;
    }
    if s.spec.strategy == Strategy::Nsga2 {
        return next_nsga2(s, v, now);
    }
    let objective = s.spec.objective.as_ref()?;
    let mut history = Vec::new();
    let mut lies = 0;
    for t in s.trials() {
        // Constant liar: a trial still running counts as the worst result, as a pruned one does.
        let lie = s.spec.constant_liar && t.status == TrialStatus::Running;
        lies += usize::from(lie);
        if t.status == TrialStatus::Pruned || lie {
            history.push(tpe::Observed {
                params: t.params.clone(),
                loss: f64::NAN,
                pruned: true,
            });
            continue;
        }
        if t.status != TrialStatus::Completed {
            continue;
        }
        let run = settled(t, v, now)?;
        history.push(tpe::Observed {
            params: t.params.clone(),
            loss: loss(run, objective).unwrap_or(f64::NAN),
            pruned: false,
        });
    }
    let number = s.order.len() as u32;
    let space = space(s);
    let settings = tpe::Settings::default();
    let mut rng = SplitMix64::for_decision(s.spec.seed.unwrap_or(0), u64::from(number));
    let params = tpe::suggest(&space, &history, &settings, &mut rng);
    let known = history.iter().filter(|o| o.loss.is_finite()).count();
    let mut reason = if known < settings.n_startup {
        format!(
            "tpe: at random ({known} of {} results needed for the model)",
            settings.n_startup
        )
    } else {
        format!(
            "tpe: from {known} results, the best {} as the good ones",
            tpe::gamma(known)
        )
    };
    if lies > 0 {
        reason.push_str(&format!(
            "; {lies} running counted as the worst (constant liar)"
        ));
    }
    record_choice(s, number, params, reason)
}

/// The `trial_added` of a sweep's choice number `number`.
fn record_choice(
    s: &Sweep,
    number: u32,
    params: BTreeMap<String, serde_json::Value>,
    reason: String,
) -> Option<EventKind> {
    match chosen(&s.id, &s.spec, number, params) {
        Ok(trial) => {
            tracing::info!(
                "sweeps: {} chose trial {number} ({}): {reason}",
                s.id,
                trial.id
            );
            Some(EventKind::TrialAdded(Box::new(TrialAdded {
                sweep: s.id.clone(),
                trial,
                number,
                reason,
            })))
        }
        Err(e) => {
            tracing::error!("sweeps: {} cannot plan trial {number}: {e}", s.id);
            None
        }
    }
}

/// NSGA-II's next trial: generation `n / population`, bred from the elite of the generations before it, once
/// every trial of those has settled (a failed or pruned one, or one without every objective's value, takes no
/// part). Trials within a generation are chosen without waiting for one another.
fn next_nsga2(s: &Sweep, v: &Views, now: i64) -> Option<EventKind> {
    let settings = nsga2::Settings {
        population: s.spec.population.unwrap_or(50).max(2) as usize,
        ..nsga2::Settings::default()
    };
    let number = s.order.len();
    let generation = number / settings.population;
    let mut generations: Vec<Vec<nsga2::Individual>> = vec![Vec::new(); generation];
    for (i, t) in s.trials().enumerate() {
        let g = i / settings.population;
        if g >= generation {
            break;
        }
        if t.status.is_failed()
            || t.status == TrialStatus::Pruned
            || t.status == TrialStatus::Cancelled
        {
            continue;
        }
        if t.status != TrialStatus::Completed {
            // The generation before is still running: its children wait for it.
            return None;
        }
        let run = settled(t, v, now)?;
        let losses: Option<Vec<f64>> = s
            .spec
            .objectives
            .iter()
            .map(|o| loss(run, o).filter(|x| !x.is_nan()))
            .collect();
        if let Some(losses) = losses {
            generations[g].push(nsga2::Individual {
                number: i,
                params: t.params.clone(),
                losses,
            });
        }
    }
    let parents = nsga2::parents(&generations, settings.population);
    let space = space(s);
    let mut rng = SplitMix64::for_decision(s.spec.seed.unwrap_or(0), number as u64);
    let params = nsga2::child(&space, &parents, &settings, &mut rng);
    let reason = if parents.is_empty() {
        format!("nsga2: generation {generation}, at random")
    } else {
        format!(
            "nsga2: generation {generation}, bred from an elite of {} ({} on its first front)",
            parents.len(),
            nsga2::fronts(&parents).first().map_or(0, Vec::len)
        )
    };
    record_choice(s, number as u32, params, reason)
}

/// The run of a completed trial once its result is settled: its run has recorded its final status (or the
/// search gave up waiting: `Some(None)`, no run to read). `None` while the search still waits for it.
fn settled<'a>(
    t: &crate::views::sweeps::Trial,
    v: &'a Views,
    now: i64,
) -> Option<Option<&'a crate::views::registry::Record>> {
    let run = t
        .experiment_id
        .as_ref()
        .and_then(|id| v.registry.experiments.get(id));
    let since = t.ended.map_or(0, |e| now - e);
    let done = match run {
        Some(r) => r.status.is_final() || since > NO_END,
        None => since > NO_RUN,
    };
    done.then_some(run)
}

/// An objective's value in a run, as a loss (smaller is better); `None` when the run has none.
fn loss(run: Option<&crate::views::registry::Record>, o: &Objective) -> Option<f64> {
    let m = run?.metrics.get(&o.metric)?;
    let x = match o.reduce {
        Reduce::Last => m.last,
        Reduce::Min => m.min,
        Reduce::Max => m.max,
    }?;
    Some(o.direction.loss(x))
}

/// The sweep's parameters as search spaces.
fn space(s: &Sweep) -> BTreeMap<String, Domain> {
    s.spec
        .sweep
        .iter()
        .map(|(path, space)| (path.clone(), Domain::of(space)))
        .collect()
}
