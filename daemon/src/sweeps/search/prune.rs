//! Early stopping from intermediate values, as they are ingested. Values are losses here (smaller is better;
//! a maximized metric negated by the caller). Each rule answers `None` (go on) or why it stops the trial:
//! the rule, the rung, the value and the threshold that decided, for the `pruned` event.
//!
//! - **Median** (Golovin et al. 2017, as Optuna's `MedianPruner`): after `n_startup` completed trials and
//!   `warmup_steps`, a trial whose best value so far is worse than the median of the completed trials' values
//!   at the same step stops.
//! - **ASHA** (Li et al. 2018, the stopping form Optuna's `SuccessiveHalvingPruner` runs): rung `k` sits at
//!   resource `min_resource · η^(k + s)` (`s`: the minimum early-stopping rate); a trial reaching a rung is
//!   recorded there and goes on only if it is among the best `⌊n/η⌋` of the `n` trials recorded at that rung so
//!   far (the best one when `⌊n/η⌋` is 0, since a stopped trial cannot wait to be promoted later).
//! - **Hyperband** (Li et al. 2017) over ASHA: brackets `s = 0 ..= ⌊log_η(max/min)⌋`, bracket `s` an ASHA
//!   with rate `s`; each trial joins one bracket (by its number, in proportion to the brackets' budgets) and
//!   competes only with that bracket's trials.
//!
//! The state (who reached which rung, in which order) is rebuilt by feeding the points again in log order,
//! so a restarted sweep decides as it would have.

use super::rng::SplitMix64;
use std::collections::BTreeMap;

/// Why a rule stopped a trial.
#[derive(Clone, Debug, PartialEq)]
pub struct Pruned {
    pub rule: &'static str,
    pub rung: Option<u32>,
    /// The step the decision was taken at.
    pub step: i64,
    /// The trial's value that was compared (a loss).
    pub value: f64,
    /// What it had to reach: the median, or the rung's cut-off.
    pub threshold: f64,
    /// How many values it was compared with.
    pub compared: usize,
}

/// The median stopping rule. `curve`: the trial's (step, loss) reported so far; `completed`: the completed
/// trials' curves; `step`: the step just reported.
pub fn median(
    curve: &[(i64, f64)],
    completed: &[&[(i64, f64)]],
    step: i64,
    n_startup: usize,
    warmup_steps: i64,
) -> Option<Pruned> {
    if completed.len() < n_startup || step < warmup_steps {
        return None;
    }
    let reported: Vec<f64> = curve
        .iter()
        .filter(|(s, _)| *s <= step)
        .map(|p| p.1)
        .collect();
    if reported.is_empty() {
        return None;
    }
    let best = if reported.iter().any(|v| v.is_nan()) {
        f64::NAN
    } else {
        reported.iter().copied().fold(f64::INFINITY, f64::min)
    };
    let mut others: Vec<f64> = completed
        .iter()
        .filter_map(|c| c.iter().rev().find(|(s, _)| *s == step).map(|p| p.1))
        .filter(|v| !v.is_nan())
        .collect();
    if others.is_empty() {
        return None;
    }
    others.sort_by(f64::total_cmp);
    let n = others.len();
    let med = if n % 2 == 1 {
        others[n / 2]
    } else {
        0.5 * (others[n / 2 - 1] + others[n / 2])
    };
    (best.is_nan() || best > med).then_some(Pruned {
        rule: "median",
        rung: None,
        step,
        value: best,
        threshold: med,
        compared: n,
    })
}

/// ASHA's rule at a rung: with `so_far` the values recorded there before, whether `value` goes on (it is among
/// the best `⌊n/η⌋` of the `n` values with it, or the best when that is 0), the cut-off, and `n`.
pub fn promotable(so_far: &[f64], value: f64, reduction_factor: u32) -> (bool, f64, usize) {
    let mut competing = so_far.to_vec();
    competing.push(value);
    competing.sort_by(f64::total_cmp);
    let idx = (competing.len() / reduction_factor.max(2) as usize).saturating_sub(1);
    let cut = competing[idx];
    (!value.is_nan() && value <= cut, cut, competing.len())
}

/// One ASHA: its rungs and who reached them.
#[derive(Clone, Debug, PartialEq)]
pub struct Asha {
    pub min_resource: i64,
    pub reduction_factor: u32,
    pub min_early_stopping_rate: u32,
    /// No rung at or beyond this resource (a trial that far completes); `None`: rungs go on.
    pub max_resource: Option<i64>,
    /// Per rung, the values recorded there in order of arrival.
    rungs: Vec<Vec<f64>>,
    /// Per trial, the next rung it can reach.
    next: BTreeMap<String, u32>,
}

impl Asha {
    pub fn new(
        min_resource: i64,
        reduction_factor: u32,
        min_early_stopping_rate: u32,
        max_resource: Option<i64>,
    ) -> Asha {
        Asha {
            min_resource: min_resource.max(1),
            reduction_factor: reduction_factor.max(2),
            min_early_stopping_rate,
            max_resource,
            rungs: Vec::new(),
            next: BTreeMap::new(),
        }
    }

    /// The resource (step) of rung `k`.
    pub fn resource(&self, k: u32) -> i64 {
        let eta = i64::from(self.reduction_factor);
        let mut r = self.min_resource;
        for _ in 0..(k + self.min_early_stopping_rate) {
            r = r.saturating_mul(eta);
        }
        r
    }

    /// The values recorded at each rung so far.
    pub fn rungs(&self) -> &[Vec<f64>] {
        &self.rungs
    }

    /// Trial `trial` reported `loss` at `step`: records it at every rung it has now reached, and stops it at
    /// the first where it is not among the best.
    pub fn report(&mut self, trial: &str, step: i64, loss: f64) -> Option<Pruned> {
        loop {
            let k = self.next.get(trial).copied().unwrap_or(0);
            let resource = self.resource(k);
            if step < resource || self.max_resource.is_some_and(|m| resource >= m) {
                return None;
            }
            let ku = k as usize;
            if self.rungs.len() <= ku {
                self.rungs.resize(ku + 1, Vec::new());
            }
            let (goes_on, cut, n) = promotable(&self.rungs[ku], loss, self.reduction_factor);
            self.rungs[ku].push(loss);
            self.next.insert(trial.to_string(), k + 1);
            if !goes_on {
                return Some(Pruned {
                    rule: "asha",
                    rung: Some(k),
                    step,
                    value: loss,
                    threshold: cut,
                    compared: n,
                });
            }
        }
    }
}

/// Hyperband's brackets, each an ASHA.
#[derive(Clone, Debug, PartialEq)]
pub struct Hyperband {
    pub brackets: Vec<Asha>,
    budgets: Vec<u64>,
    /// The bracket of each trial seen.
    of: BTreeMap<String, usize>,
}

impl Hyperband {
    pub fn new(min_resource: i64, max_resource: i64, reduction_factor: u32) -> Hyperband {
        let eta = f64::from(reduction_factor.max(2));
        let ratio = (max_resource.max(min_resource) as f64 / min_resource.max(1) as f64).max(1.0);
        let n = (ratio.ln() / eta.ln() + 1e-9).floor() as u32 + 1;
        let brackets = (0..n)
            .map(|s| Asha::new(min_resource, reduction_factor, s, Some(max_resource)))
            .collect();
        // Optuna's allocation: bracket s gets ceil(n · η^(n−1−s) / (n − s)) shares.
        let budgets = (0..n)
            .map(|s| {
                let k = n - 1 - s;
                (f64::from(n) * eta.powi(k as i32) / f64::from(k + 1)).ceil() as u64
            })
            .collect();
        Hyperband {
            brackets,
            budgets,
            of: BTreeMap::new(),
        }
    }

    /// The bracket trial number `n` joins.
    pub fn bracket_of(&self, n: u64) -> usize {
        let total: u64 = self.budgets.iter().sum();
        let mut x = SplitMix64::for_decision(0x4879_7065_7262_616e, n).next_u64() % total.max(1);
        for (i, b) in self.budgets.iter().enumerate() {
            if x < *b {
                return i;
            }
            x -= b;
        }
        0
    }

    /// Trial `trial` (number `n` in the sweep) reported `loss` at `step`.
    pub fn report(&mut self, trial: &str, n: u64, step: i64, loss: f64) -> Option<Pruned> {
        let b = match self.of.get(trial) {
            Some(b) => *b,
            None => {
                let b = self.bracket_of(n);
                self.of.insert(trial.to_string(), b);
                b
            }
        };
        self.brackets[b].report(trial, step, loss).map(|mut p| {
            p.rule = "hyperband";
            p
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Nine trials with curves `base / step`, arriving one after another (η = 3, rungs at steps 1, 3, 9):
    /// worked by hand from the rule (top ⌊n/3⌋ of the rung so far, the best when that is 0):
    /// - t0 (5): alone at every rung → goes on. t1 (3): best of 2 at rung 0 and 1 → goes on.
    /// - t2 (8): rung 0 holds {5, 3, 8}, ⌊3/3⌋ = 1: the cut is 3 → stopped at rung 0.
    /// - t3 (1): the best everywhere → goes on. t4 (6): rung 0 of 5, cut 1 → stopped at rung 0.
    /// - t5 (2): rung 0 of 6, ⌊6/3⌋ = 2, cut 2 → goes on; rung 1 {5/3, 1, 1/3, 2/3}, ⌊4/3⌋ = 1, cut 1/3 →
    ///   stopped at rung 1.
    /// - t6 (9), t7 (4), t8 (7): rung 0 of 7, 8, 9 with cuts 2, 2, 3 → stopped at rung 0.
    #[test]
    fn asha_stops_exactly_the_trials_the_rule_stops_rung_by_rung() {
        let bases = [5.0, 3.0, 8.0, 1.0, 6.0, 2.0, 9.0, 4.0, 7.0];
        let mut asha = Asha::new(1, 3, 0, Some(27));
        let mut outcome = Vec::new();
        for (i, base) in bases.iter().enumerate() {
            let name = format!("t{i}");
            let mut stopped = None;
            for step in 1..=9 {
                if let Some(p) = asha.report(&name, step, base / step as f64) {
                    stopped = Some((p.rung, p.step));
                    break;
                }
            }
            outcome.push(stopped);
        }
        assert_eq!(
            outcome,
            [
                None,
                None,
                Some((Some(0), 1)),
                None,
                Some((Some(0), 1)),
                Some((Some(1), 3)),
                Some((Some(0), 1)),
                Some((Some(0), 1)),
                Some((Some(0), 1)),
            ]
        );
        assert_eq!(asha.rungs()[0], bases.to_vec());
        assert_eq!(asha.rungs()[2], [5.0 / 9.0, 3.0 / 9.0, 1.0 / 9.0]);
        assert_eq!(
            (asha.resource(0), asha.resource(1), asha.resource(2)),
            (1, 3, 9)
        );
    }

    #[test]
    fn a_nan_value_is_stopped_and_the_last_rung_is_below_the_max() {
        let mut asha = Asha::new(2, 2, 0, Some(8));
        assert_eq!(asha.report("a", 1, 1.0), None, "below the first rung");
        assert!(asha.report("b", 2, f64::NAN).is_some());
        assert_eq!(asha.report("a", 8, 1.0), None);
        assert_eq!(asha.rungs().len(), 2, "rungs at 2 and 4; 8 is the max");
    }

    #[test]
    fn the_median_rule_compares_the_best_so_far_with_the_median_at_that_step() {
        let done: Vec<Vec<(i64, f64)>> = (0..5)
            .map(|i| (1..=10).map(|s| (s, (i + 1) as f64 / s as f64)).collect())
            .collect();
        let refs: Vec<&[(i64, f64)]> = done.iter().map(Vec::as_slice).collect();
        // At step 4 the others have 0.25 .. 1.25, median 0.75.
        let good: Vec<(i64, f64)> = (1..=4).map(|s| (s, 2.0 / s as f64)).collect();
        assert_eq!(median(&good, &refs, 4, 5, 0), None);
        let bad: Vec<(i64, f64)> = (1..=4).map(|s| (s, 4.0 / s as f64)).collect();
        let p = median(&bad, &refs, 4, 5, 0).expect("stopped");
        assert_eq!((p.value, p.threshold, p.compared), (1.0, 0.75, 5));
        assert_eq!(median(&bad, &refs[..4], 4, 5, 0), None, "startup trials");
        assert_eq!(median(&bad, &refs, 4, 5, 5), None, "warm-up");
    }

    #[test]
    fn hyperband_has_optunas_brackets_and_keeps_them_apart() {
        let hb = Hyperband::new(1, 27, 3);
        assert_eq!(hb.brackets.len(), 4);
        assert_eq!(hb.budgets, [27, 12, 6, 4]);
        assert_eq!(
            hb.brackets
                .iter()
                .map(|b| b.resource(0))
                .collect::<Vec<_>>(),
            [1, 3, 9, 27]
        );
        let mut counts = [0; 4];
        for n in 0..4600 {
            counts[hb.bracket_of(n)] += 1;
        }
        // In proportion to 27 : 12 : 6 : 4.
        assert!(
            counts[0] > counts[1] && counts[1] > counts[2] && counts[2] > counts[3],
            "{counts:?}"
        );
        let mut hb = Hyperband::new(1, 9, 3);
        let first = (0..100)
            .find(|n| hb.bracket_of(*n) == 0)
            .expect("a trial in bracket 0");
        let other = (0..100)
            .find(|n| hb.bracket_of(*n) == 1)
            .expect("a trial in bracket 1");
        assert_eq!(hb.report("a", first, 1, 5.0), None);
        assert_eq!(hb.report("b", other, 3, 9.0), None, "alone in its bracket");
    }
}
