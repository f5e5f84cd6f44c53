//! labd's search strategies on standard test functions: the best value found after 50 and 200 trials, median
//! (and quartiles) over 20 seeds, for TPE, quasi-random (Halton) and random search. `scripts/search-bench.sh`
//! runs Optuna's TPE on the same functions and sets the two side by side.
//!
//! Functions (minimized): Branin (2-D, minimum 0.397887), Hartmann-6 (6-D, minimum −3.32237), and a noisy
//! 20-D sphere (Σx² over [−5, 5]^20 plus N(0, 1) noise; the figure is the noise-free value of the trial whose
//! noisy value was best, as a user would pick it).
//!
//! `labd-search-bench [--seeds N] [--trials N] [--json]`

use labd::sweeps::search::domain::Domain;
use labd::sweeps::search::rng::SplitMix64;
use labd::sweeps::search::{qmc, tpe};
use serde_json::{Value, json};
use std::collections::BTreeMap;
use std::f64::consts::PI;

fn branin(x: &[f64]) -> f64 {
    let (x1, x2) = (x[0], x[1]);
    let b = 5.1 / (4.0 * PI * PI);
    let c = 5.0 / PI;
    let t = 1.0 / (8.0 * PI);
    (x2 - b * x1 * x1 + c * x1 - 6.0).powi(2) + 10.0 * (1.0 - t) * x1.cos() + 10.0
}

fn hartmann6(x: &[f64]) -> f64 {
    const ALPHA: [f64; 4] = [1.0, 1.2, 3.0, 3.2];
    const A: [[f64; 6]; 4] = [
        [10.0, 3.0, 17.0, 3.5, 1.7, 8.0],
        [0.05, 10.0, 17.0, 0.1, 8.0, 14.0],
        [3.0, 3.5, 1.7, 10.0, 17.0, 8.0],
        [17.0, 8.0, 0.05, 10.0, 0.1, 14.0],
    ];
    const P: [[f64; 6]; 4] = [
        [0.1312, 0.1696, 0.5569, 0.0124, 0.8283, 0.5886],
        [0.2329, 0.4135, 0.8307, 0.3736, 0.1004, 0.9991],
        [0.2348, 0.1451, 0.3522, 0.2883, 0.3047, 0.6650],
        [0.4047, 0.8828, 0.8732, 0.5743, 0.1091, 0.0381],
    ];
    -(0..4)
        .map(|i| {
            let inner: f64 = (0..6).map(|j| A[i][j] * (x[j] - P[i][j]).powi(2)).sum();
            ALPHA[i] * (-inner).exp()
        })
        .sum::<f64>()
}

fn sphere(x: &[f64]) -> f64 {
    x.iter().map(|v| v * v).sum()
}

struct Problem {
    name: &'static str,
    bounds: Vec<(f64, f64)>,
    f: fn(&[f64]) -> f64,
    noise: f64,
}

fn problems() -> Vec<Problem> {
    vec![
        Problem {
            name: "branin",
            bounds: vec![(-5.0, 10.0), (0.0, 15.0)],
            f: branin,
            noise: 0.0,
        },
        Problem {
            name: "hartmann6",
            bounds: vec![(0.0, 1.0); 6],
            f: hartmann6,
            noise: 0.0,
        },
        Problem {
            name: "sphere20_noisy",
            bounds: vec![(-5.0, 5.0); 20],
            f: sphere,
            noise: 1.0,
        },
    ]
}

/// Parameter names that sort in dimension order.
fn name(d: usize) -> String {
    format!("x{d:02}")
}

/// One run: the true value of the best trial so far after each trial.
fn run(p: &Problem, strategy: &str, seed: u64, trials: usize) -> Vec<f64> {
    let space: BTreeMap<String, Domain> = p
        .bounds
        .iter()
        .enumerate()
        .map(|(d, (low, high))| {
            (
                name(d),
                Domain::Float {
                    low: *low,
                    high: *high,
                    log: false,
                },
            )
        })
        .collect();
    let mut noise = SplitMix64(seed ^ 0x006e_6f69_7365);
    let mut history: Vec<tpe::Observed> = Vec::new();
    let (mut best_seen, mut best_true) = (f64::INFINITY, f64::INFINITY);
    let mut out = Vec::with_capacity(trials);
    for n in 0..trials as u64 {
        let params = match strategy {
            "tpe" => tpe::suggest(
                &space,
                &history,
                &tpe::Settings::default(),
                &mut SplitMix64::for_decision(seed, n),
            ),
            "halton" => qmc::suggest(&space, n, seed),
            _ => {
                let mut rng = SplitMix64::for_decision(seed, n);
                space
                    .iter()
                    .map(|(k, d)| (k.clone(), d.from_unit(rng.unit())))
                    .collect()
            }
        };
        let x: Vec<f64> = (0..p.bounds.len())
            .map(|d| params[&name(d)].as_f64().unwrap_or(f64::NAN))
            .collect();
        let truth = (p.f)(&x);
        let seen = truth + p.noise * noise.normal();
        if seen < best_seen {
            best_seen = seen;
            best_true = truth;
        }
        out.push(best_true);
        history.push(tpe::Observed {
            params,
            loss: seen,
            pruned: false,
        });
    }
    out
}

fn quartiles(mut v: Vec<f64>) -> (f64, f64, f64) {
    v.sort_by(f64::total_cmp);
    let at = |q: f64| {
        let i = q * (v.len() - 1) as f64;
        let (lo, hi) = (i.floor() as usize, i.ceil() as usize);
        v[lo] + (v[hi] - v[lo]) * (i - lo as f64)
    };
    (at(0.25), at(0.5), at(0.75))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let num = |flag: &str, default: usize| {
        args.iter()
            .position(|a| a == flag)
            .and_then(|i| args.get(i + 1))
            .and_then(|v| v.parse().ok())
            .unwrap_or(default)
    };
    let (seeds, trials) = (num("--seeds", 20), num("--trials", 200));
    let budgets: Vec<usize> = [50, 200]
        .into_iter()
        .filter(|b| *b <= trials)
        .chain((trials < 50).then_some(trials))
        .collect();
    let mut report = serde_json::Map::new();
    for p in problems() {
        let mut per = serde_json::Map::new();
        for strategy in ["tpe", "halton", "random"] {
            let started = std::time::Instant::now();
            let runs: Vec<Vec<f64>> = (0..seeds as u64)
                .map(|s| run(&p, strategy, s, trials))
                .collect();
            let mut at = serde_json::Map::new();
            for &b in &budgets {
                let (q1, med, q3) = quartiles(runs.iter().map(|r| r[b - 1]).collect());
                at.insert(b.to_string(), json!({"median": med, "q1": q1, "q3": q3}));
            }
            eprintln!(
                "{:>15} {:>7}: {} seeds × {} trials in {:.2} s",
                p.name,
                strategy,
                seeds,
                trials,
                started.elapsed().as_secs_f64()
            );
            per.insert(strategy.to_string(), Value::Object(at));
        }
        report.insert(p.name.to_string(), Value::Object(per));
    }
    if args.iter().any(|a| a == "--json") {
        println!("{}", Value::Object(report));
        return;
    }
    for (f, per) in &report {
        for (s, at) in per.as_object().into_iter().flatten() {
            for (b, q) in at.as_object().into_iter().flatten() {
                println!(
                    "{f:>15} {s:>7} {b:>4} trials: median best {:.4} (quartiles {:.4} .. {:.4})",
                    q["median"].as_f64().unwrap_or(f64::NAN),
                    q["q1"].as_f64().unwrap_or(f64::NAN),
                    q["q3"].as_f64().unwrap_or(f64::NAN)
                );
            }
        }
    }
}
