//! The tree-structured Parzen estimator (Bergstra et al. 2011), as Optuna's default `TPESampler` runs it
//! (Optuna 5: multivariate, Falkner et al. 2018): after `n_startup` random trials, the finished trials are split
//! at the quantile `gamma(n) = min(ceil(n / 10), 25)` into good (`l`) and bad (`g`); a Parzen estimator is
//! fitted to each side, a kernel per trial (a product over the parameters of truncated normals on their
//! internal coordinates, or categorical distributions) plus a prior over the whole space, weighting older
//! trials down once there are more than 25 (`default_weights`); `n_candidates` points drawn from `l` are
//! scored by `log l(x) − log g(x)` (the expected improvement's ratio) and the best is taken. Bandwidths follow
//! Optuna. A parameter that only some trials have (a conditional one) is sampled on its own, from the trials
//! that have it. Pruned trials count as worse than every completed one.

use super::domain::Domain;
use super::rng::SplitMix64;
use serde_json::Value;
use std::collections::BTreeMap;

/// The sampler's settings (Optuna's defaults).
#[derive(Clone, Debug, PartialEq)]
pub struct Settings {
    /// Random trials before the model is used.
    pub n_startup: usize,
    /// Candidates drawn from the good side's estimator per parameter.
    pub n_candidates: usize,
    /// Weight of the prior kernel.
    pub prior_weight: f64,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            n_startup: 10,
            n_candidates: 24,
            prior_weight: 1.0,
        }
    }
}

/// A finished trial as the sampler sees it.
#[derive(Clone, Debug, PartialEq)]
pub struct Observed {
    pub params: BTreeMap<String, Value>,
    /// Smaller is better (a maximized objective negated); NaN when it gave none.
    pub loss: f64,
    /// Stopped early: worse than every completed trial, whatever its last value.
    pub pruned: bool,
}

/// How many of `n` trials count as good.
pub fn gamma(n: usize) -> usize {
    n.div_ceil(10).min(25)
}

/// The weights of `n` observations in trial order: equal up to 25, then a ramp from `1/n` for the oldest to 1
/// for the newest 25.
pub fn weights(n: usize) -> Vec<f64> {
    if n < 25 {
        return vec![1.0; n];
    }
    let ramp = n - 25;
    let mut w: Vec<f64> = (0..ramp)
        .map(|i| {
            if ramp == 1 {
                1.0 / n as f64
            } else {
                1.0 / n as f64 + (1.0 - 1.0 / n as f64) * i as f64 / (ramp - 1) as f64
            }
        })
        .collect();
    w.extend(std::iter::repeat_n(1.0, 25));
    w
}

/// A parameter of the space: its name and domain.
type Param<'a> = (&'a String, &'a Domain);

/// The next trial's parameters, given the trials finished so far (in trial order).
pub fn suggest(
    space: &BTreeMap<String, Domain>,
    history: &[Observed],
    settings: &Settings,
    rng: &mut SplitMix64,
) -> BTreeMap<String, Value> {
    let usable: Vec<&Observed> = history
        .iter()
        .filter(|o| o.pruned || o.loss.is_finite())
        .collect();
    if usable.len() < settings.n_startup {
        return space
            .iter()
            .map(|(k, d)| (k.clone(), d.from_unit(rng.unit())))
            .collect();
    }
    // Good first: completed by loss, then pruned (in trial order).
    let mut order: Vec<usize> = (0..usable.len()).collect();
    order.sort_by(|&a, &b| {
        let key = |o: &Observed| (o.pruned, if o.pruned { 0.0 } else { o.loss });
        let (ka, kb) = (key(usable[a]), key(usable[b]));
        ka.0.cmp(&kb.0).then(ka.1.total_cmp(&kb.1)).then(a.cmp(&b))
    });
    let n_below = gamma(usable.len());
    let mut good = vec![false; usable.len()];
    for &i in &order[..n_below] {
        good[i] = true;
    }
    // The parameters every trial has are sampled jointly (a product kernel per trial, as Optuna's
    // multivariate TPE, its default); a parameter only some trials have, on its own from those trials.
    let (joint, single): (Vec<Param>, Vec<Param>) = space.iter().partition(|(name, domain)| {
        usable.iter().all(|o| {
            o.params
                .get(*name)
                .and_then(|v| domain.internal(v))
                .is_some()
        })
    });
    let mut out = BTreeMap::new();
    let mut groups: Vec<Vec<Param>> = vec![joint];
    groups.extend(single.into_iter().map(|p| vec![p]));
    for group in groups.into_iter().filter(|g| !g.is_empty()) {
        let side = |want: bool| -> Vec<Vec<f64>> {
            usable
                .iter()
                .enumerate()
                .filter(|(i, _)| good[*i] == want)
                .filter_map(|(_, o)| {
                    group
                        .iter()
                        .map(|(name, d)| o.params.get(*name).and_then(|v| d.internal(v)))
                        .collect::<Option<Vec<f64>>>()
                })
                .collect()
        };
        let domains: Vec<&Domain> = group.iter().map(|(_, d)| *d).collect();
        let l = Mixture::fit(&domains, &side(true), settings.prior_weight);
        let g = Mixture::fit(&domains, &side(false), settings.prior_weight);
        let mut best: Option<(f64, Vec<f64>)> = None;
        for _ in 0..settings.n_candidates.max(1) {
            let x = l.sample(rng);
            let score = l.log_pdf(&x) - g.log_pdf(&x);
            if best.as_ref().is_none_or(|(b, _)| score > *b) {
                best = Some((score, x));
            }
        }
        let x = best.map(|b| b.1).unwrap_or_else(|| l.sample(rng));
        for ((name, domain), xi) in group.iter().zip(x) {
            out.insert((*name).clone(), domain.value(xi));
        }
    }
    out
}

/// A Parzen estimator over some parameters: kernels (one per trial, and the prior last) with weights, each a
/// product over the parameters of a truncated normal or a categorical distribution.
#[derive(Clone, Debug)]
struct Mixture {
    weights: Vec<f64>,
    dims: Vec<Dim>,
}

/// One parameter's factor of every kernel.
#[derive(Clone, Debug)]
enum Dim {
    Numeric {
        mus: Vec<f64>,
        sigmas: Vec<f64>,
        low: f64,
        high: f64,
    },
    /// Per kernel, the probability of each choice.
    Categorical(Vec<Vec<f64>>),
}

impl Mixture {
    /// `obs[i][d]`: trial i's internal coordinate of parameter d.
    fn fit(domains: &[&Domain], obs: &[Vec<f64>], prior_weight: f64) -> Mixture {
        let mut weights = if obs.is_empty() {
            vec![1.0]
        } else {
            let mut w = weights(obs.len());
            w.push(prior_weight);
            w
        };
        let total: f64 = weights.iter().sum();
        weights.iter_mut().for_each(|w| *w /= total);
        let dims = domains
            .iter()
            .enumerate()
            .map(|(d, domain)| {
                let column: Vec<f64> = obs.iter().map(|o| o[d]).collect();
                Dim::fit(domain, &column, prior_weight)
            })
            .collect();
        Mixture { weights, dims }
    }

    fn sample(&self, rng: &mut SplitMix64) -> Vec<f64> {
        let k = rng.weighted(&self.weights);
        self.dims.iter().map(|d| d.sample(k, rng)).collect()
    }

    fn log_pdf(&self, x: &[f64]) -> f64 {
        let terms: Vec<f64> = self
            .weights
            .iter()
            .enumerate()
            .map(|(k, w)| {
                w.ln()
                    + self
                        .dims
                        .iter()
                        .zip(x)
                        .map(|(d, &xi)| d.log_pdf(k, xi))
                        .sum::<f64>()
            })
            .collect();
        log_sum_exp(&terms)
    }
}

impl Dim {
    /// One parameter's factors: a kernel at each observation and the prior (Optuna's bandwidths: the larger
    /// gap to a neighbouring observation, the domain's ends counting only where there are fewer than two
    /// neighbours, clipped to `[range / min(100, kernels + 1), range]`; the prior over the whole range).
    fn fit(domain: &Domain, obs: &[f64], prior_weight: f64) -> Dim {
        if let Domain::Categorical(choices) = domain {
            let n = choices.len().max(1);
            let kernels = obs.len() + 1;
            let mut probs: Vec<Vec<f64>> = obs
                .iter()
                .map(|&x| {
                    let mut row = vec![prior_weight / kernels as f64; n];
                    if let Some(r) = row.get_mut(x.round().max(0.0) as usize) {
                        *r += 1.0;
                    }
                    row
                })
                .collect();
            probs.push(vec![1.0; n]);
            for row in &mut probs {
                let s: f64 = row.iter().sum();
                row.iter_mut().for_each(|p| *p /= s);
            }
            return Dim::Categorical(probs);
        }
        let (low, high) = domain.bounds();
        let range = high - low;
        let mut sorted: Vec<(f64, usize)> = obs.iter().copied().zip(0..).collect();
        sorted.sort_by(|a, b| a.0.total_cmp(&b.0));
        let m = sorted.len();
        let mut ends = Vec::with_capacity(m + 2);
        ends.push(low);
        ends.extend(sorted.iter().map(|p| p.0));
        ends.push(high);
        let mut by_rank: Vec<f64> = (1..=m)
            .map(|i| (ends[i] - ends[i - 1]).max(ends[i + 1] - ends[i]))
            .collect();
        if ends.len() >= 4 {
            by_rank[0] = ends[2] - ends[1];
            by_rank[m - 1] = ends[m] - ends[m - 1];
        }
        let min_sigma = range / (100.0f64).min(1.0 + (obs.len() + 1) as f64);
        let mut sigmas = vec![0.0; m];
        for (rank, &(_, i)) in sorted.iter().enumerate() {
            sigmas[i] = by_rank[rank].clamp(min_sigma, range);
        }
        let mut mus = obs.to_vec();
        mus.push(0.5 * (low + high));
        sigmas.push(range);
        Dim::Numeric {
            mus,
            sigmas,
            low,
            high,
        }
    }

    fn sample(&self, k: usize, rng: &mut SplitMix64) -> f64 {
        match self {
            Dim::Numeric {
                mus,
                sigmas,
                low,
                high,
            } => {
                let (mu, sigma) = (*at(mus, k), *at(sigmas, k));
                for _ in 0..100 {
                    let x = mu + sigma * rng.normal();
                    if (*low..=*high).contains(&x) {
                        return x;
                    }
                }
                low + (high - low) * rng.unit()
            }
            Dim::Categorical(probs) => rng.weighted(at::<Vec<f64>>(probs, k)) as f64,
        }
    }

    fn log_pdf(&self, k: usize, x: f64) -> f64 {
        match self {
            Dim::Numeric {
                mus,
                sigmas,
                low,
                high,
            } => {
                let (mu, sigma) = (*at(mus, k), *at(sigmas, k));
                let z = (x - mu) / sigma;
                let mass = phi((high - mu) / sigma) - phi((low - mu) / sigma);
                -0.5 * z * z - (sigma * std::f64::consts::TAU.sqrt()).ln() - mass.max(1e-300).ln()
            }
            Dim::Categorical(probs) => {
                let row = at(probs, k);
                row.get(x.round().max(0.0) as usize)
                    .copied()
                    .unwrap_or(0.0)
                    .max(1e-300)
                    .ln()
            }
        }
    }
}

fn log_sum_exp(terms: &[f64]) -> f64 {
    let max = terms.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    if !max.is_finite() {
        return max;
    }
    max + terms.iter().map(|t| (t - max).exp()).sum::<f64>().ln()
}

/// The standard normal's distribution function.
fn phi(z: f64) -> f64 {
    0.5 * erfc(-z / std::f64::consts::SQRT_2)
}

/// The complementary error function (Numerical Recipes' `erfcc`: relative error below 1.2e-7).
fn erfc(x: f64) -> f64 {
    let z = x.abs();
    let t = 1.0 / (1.0 + 0.5 * z);
    let r = t
        * (-z * z - 1.265_512_23
            + t * (1.000_023_68
                + t * (0.374_091_96
                    + t * (0.096_784_18
                        + t * (-0.186_288_06
                            + t * (0.278_868_07
                                + t * (-1.135_203_98
                                    + t * (1.488_515_87
                                        + t * (-0.822_152_23 + t * 0.170_872_77)))))))))
            .exp();
    if x >= 0.0 { r } else { 2.0 - r }
}

/// Kernel `k`'s entry (the prior's, the last, for `k` past the observed ones).
fn at<T>(v: &[T], k: usize) -> &T {
    &v[k.min(v.len() - 1)]
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn gamma_and_weights_are_optunas() {
        assert_eq!(
            [gamma(1), gamma(10), gamma(11), gamma(100), gamma(1000)],
            [1, 1, 2, 10, 25]
        );
        assert_eq!(weights(3), vec![1.0; 3]);
        let w = weights(30);
        assert_eq!(w.len(), 30);
        assert!((w[0] - 1.0 / 30.0).abs() < 1e-12);
        assert_eq!(w[4], 1.0);
        assert!(w[..5].windows(2).all(|p| p[0] < p[1]));
    }

    #[test]
    fn the_normal_distribution_function_is_right() {
        assert!((phi(0.0) - 0.5).abs() < 1e-7);
        assert!((phi(1.96) - 0.975_002_1).abs() < 1e-6);
        assert!((phi(-3.0) - 0.001_349_898).abs() < 1e-7);
    }

    /// With the good trials all near one value, the sampler proposes values near it.
    #[test]
    fn proposals_go_where_the_good_trials_are() {
        let space: BTreeMap<String, Domain> = [
            (
                "x".to_string(),
                Domain::Float {
                    low: 0.0,
                    high: 10.0,
                    log: false,
                },
            ),
            (
                "opt".to_string(),
                Domain::Categorical(vec![json!("adam"), json!("sgd"), json!("rmsprop")]),
            ),
        ]
        .into();
        let mut rng = SplitMix64(7);
        let mut history = Vec::new();
        for i in 0..40 {
            let x = 10.0 * (i as f64 * 0.618_033_988_75).fract();
            let opt = ["adam", "sgd", "rmsprop"][i % 3];
            let loss = (x - 7.0).powi(2) + if opt == "sgd" { 0.0 } else { 5.0 };
            history.push(Observed {
                params: [("x".to_string(), json!(x)), ("opt".to_string(), json!(opt))].into(),
                loss,
                pruned: false,
            });
        }
        let proposals: Vec<BTreeMap<String, Value>> = (0..50)
            .map(|_| suggest(&space, &history, &Settings::default(), &mut rng))
            .collect();
        let near = proposals
            .iter()
            .filter(|p| (p["x"].as_f64().unwrap_or(0.0) - 7.0).abs() < 1.5)
            .count();
        let sgd = proposals.iter().filter(|p| p["opt"] == "sgd").count();
        assert!(near >= 35, "{near} of 50 near the optimum");
        assert!(sgd >= 35, "{sgd} of 50 the best choice");
    }

    /// Before `n_startup` trials the draws are uniform, and every draw is in the domain.
    #[test]
    fn startup_draws_are_random_and_in_the_domain() {
        let space: BTreeMap<String, Domain> = [(
            "n".to_string(),
            Domain::Int {
                low: 1,
                high: 4,
                log: false,
            },
        )]
        .into();
        let mut rng = SplitMix64(1);
        let mut seen = [0; 5];
        for _ in 0..400 {
            let p = suggest(&space, &[], &Settings::default(), &mut rng);
            let n = p["n"].as_i64().expect("int") as usize;
            seen[n] += 1;
        }
        assert_eq!(seen[0], 0);
        assert!(seen[1..].iter().all(|&c| c > 70), "{seen:?}");
    }

    /// The same seed and history give the same proposal (a resumed sweep decides as it would have).
    #[test]
    fn proposals_repeat_for_the_same_seed_and_history() {
        let space: BTreeMap<String, Domain> = [(
            "lr".to_string(),
            Domain::Float {
                low: 1e-5,
                high: 1e-1,
                log: true,
            },
        )]
        .into();
        let history: Vec<Observed> = (0..15)
            .map(|i| Observed {
                params: [("lr".to_string(), json!(10f64.powf(-1.0 - i as f64 / 4.0)))].into(),
                loss: (i as f64 - 6.0).abs(),
                pruned: i == 3,
            })
            .collect();
        let a = suggest(
            &space,
            &history,
            &Settings::default(),
            &mut SplitMix64::for_decision(5, 15),
        );
        let b = suggest(
            &space,
            &history,
            &Settings::default(),
            &mut SplitMix64::for_decision(5, 15),
        );
        assert_eq!(a, b);
        let lr = a["lr"].as_f64().expect("lr");
        assert!((1e-5..=1e-1).contains(&lr));
    }
}
