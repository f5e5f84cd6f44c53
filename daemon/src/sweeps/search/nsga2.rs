//! NSGA-II (non-dominated sorting genetic algorithm II) for two or more objectives, as Optuna's
//! `NSGAIISampler` runs it: generation 0 is drawn at random; each later generation's parents are the elite of
//! the one before (the previous elite and the previous generation together, sorted into non-dominated fronts,
//! the last front that fits cut by crowding distance), and each child takes two parents by binary tournament
//! (the first when it dominates the second, else the second), mixes them by uniform crossover (with probability
//! `crossover_prob`, each parameter from either parent), and draws each parameter anew with probability
//! `mutation_prob` (default one over the number of parameters). Pure and seeded: the sweep's runner gives it
//! the finished generations and a generator made from the sweep's seed and the trial's number.

use super::domain::Domain;
use super::rng::SplitMix64;
use serde_json::Value;
use std::collections::BTreeMap;

/// One finished trial: its number (in the sweep's order), parameters, and objective values as losses (each
/// made smaller-is-better).
#[derive(Clone, Debug, PartialEq)]
pub struct Individual {
    pub number: usize,
    pub params: BTreeMap<String, Value>,
    pub losses: Vec<f64>,
}

/// The algorithm's settings (Optuna's defaults).
#[derive(Clone, Debug)]
pub struct Settings {
    pub population: usize,
    pub crossover_prob: f64,
    pub swapping_prob: f64,
    /// `None`: one over the number of parameters.
    pub mutation_prob: Option<f64>,
}

impl Default for Settings {
    fn default() -> Self {
        Settings {
            population: 50,
            crossover_prob: 0.9,
            swapping_prob: 0.5,
            mutation_prob: None,
        }
    }
}

/// Whether `a` dominates `b`: no worse in any objective and better in one.
pub fn dominates(a: &Individual, b: &Individual) -> bool {
    a.losses.iter().zip(&b.losses).all(|(x, y)| x <= y)
        && a.losses.iter().zip(&b.losses).any(|(x, y)| x < y)
}

/// The non-dominated fronts of `pop` (indices into it), best first; each front in the population's order.
pub fn fronts(pop: &[Individual]) -> Vec<Vec<usize>> {
    let n = pop.len();
    let mut dominated_by = vec![0usize; n];
    let mut dominating: Vec<Vec<usize>> = vec![Vec::new(); n];
    for i in 0..n {
        for j in 0..n {
            if i != j && dominates(&pop[i], &pop[j]) {
                dominating[i].push(j);
                dominated_by[j] += 1;
            }
        }
    }
    let mut out = Vec::new();
    let mut current: Vec<usize> = (0..n).filter(|&i| dominated_by[i] == 0).collect();
    while !current.is_empty() {
        let mut next = Vec::new();
        for &i in &current {
            for &j in &dominating[i] {
                dominated_by[j] -= 1;
                if dominated_by[j] == 0 {
                    next.push(j);
                }
            }
        }
        next.sort_unstable();
        out.push(std::mem::take(&mut current));
        current = next;
    }
    out
}

/// The crowding distance of each member of a front (`front`: indices into `pop`): for each objective, the gap
/// between its neighbours over the objective's range; the ends of each objective infinitely far.
pub fn crowding(pop: &[Individual], front: &[usize]) -> Vec<f64> {
    let mut d = vec![0.0; front.len()];
    if front.len() <= 2 {
        return vec![f64::INFINITY; front.len()];
    }
    let objectives = pop[front[0]].losses.len();
    for m in 0..objectives {
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| {
            pop[front[a]].losses[m]
                .total_cmp(&pop[front[b]].losses[m])
                .then(a.cmp(&b))
        });
        let lo = pop[front[order[0]]].losses[m];
        let hi = pop[front[order[order.len() - 1]]].losses[m];
        d[order[0]] = f64::INFINITY;
        d[order[order.len() - 1]] = f64::INFINITY;
        if hi > lo {
            for k in 1..order.len() - 1 {
                let gap = pop[front[order[k + 1]]].losses[m] - pop[front[order[k - 1]]].losses[m];
                d[order[k]] += gap / (hi - lo);
            }
        }
    }
    d
}

/// The `size` best of `pop`: whole fronts while they fit, then the last front's members with the largest
/// crowding distance (ties by trial number). Answers them in that order.
pub fn elite(pop: &[Individual], size: usize) -> Vec<Individual> {
    let mut out: Vec<Individual> = Vec::with_capacity(size);
    for front in fronts(pop) {
        if out.len() + front.len() <= size {
            out.extend(front.iter().map(|&i| pop[i].clone()));
            continue;
        }
        let dist = crowding(pop, &front);
        let mut order: Vec<usize> = (0..front.len()).collect();
        order.sort_by(|&a, &b| {
            dist[b]
                .total_cmp(&dist[a])
                .then(pop[front[a]].number.cmp(&pop[front[b]].number))
        });
        let room = size - out.len();
        out.extend(order[..room].iter().map(|&k| pop[front[k]].clone()));
        break;
    }
    out
}

/// The parents of generation `generation` (from 1): the elite carried through every generation before it.
/// `generations[k]`: the finished trials of generation `k`.
pub fn parents(generations: &[Vec<Individual>], size: usize) -> Vec<Individual> {
    let mut elite_now: Vec<Individual> = Vec::new();
    for g in generations {
        let mut pool = elite_now;
        pool.extend(g.iter().cloned());
        // The same trial twice (never, from the runner; harmless here) counts once.
        pool.sort_by_key(|i| i.number);
        pool.dedup_by_key(|i| i.number);
        elite_now = elite(&pool, size);
    }
    elite_now
}

/// A child of `parents` (empty: a random point). Parameters a parent lacks are drawn at random.
pub fn child(
    space: &BTreeMap<String, Domain>,
    parents: &[Individual],
    settings: &Settings,
    rng: &mut SplitMix64,
) -> BTreeMap<String, Value> {
    let random = |rng: &mut SplitMix64, d: &Domain| d.from_unit(rng.unit());
    if parents.is_empty() {
        return space
            .iter()
            .map(|(k, d)| (k.clone(), random(rng, d)))
            .collect();
    }
    let pick = |rng: &mut SplitMix64| -> usize {
        let a = (rng.next_u64() % parents.len() as u64) as usize;
        let b = (rng.next_u64() % parents.len() as u64) as usize;
        if dominates(&parents[a], &parents[b]) {
            a
        } else {
            b
        }
    };
    let first = pick(rng);
    let crossover = rng.unit() < settings.crossover_prob;
    let second = if crossover { pick(rng) } else { first };
    let mutation = settings
        .mutation_prob
        .unwrap_or(1.0 / space.len().max(1) as f64);
    space
        .iter()
        .map(|(k, d)| {
            let from = if crossover && rng.unit() < settings.swapping_prob {
                second
            } else {
                first
            };
            let inherited = parents[from]
                .params
                .get(k)
                .filter(|v| d.internal(v).is_some());
            let value = match inherited {
                Some(v) if rng.unit() >= mutation => v.clone(),
                _ => random(rng, d),
            };
            (k.clone(), value)
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn ind(number: usize, losses: &[f64]) -> Individual {
        Individual {
            number,
            params: [("x".to_string(), json!(number as f64))].into(),
            losses: losses.to_vec(),
        }
    }

    #[test]
    fn fronts_sort_by_domination() {
        let pop = vec![
            ind(0, &[1.0, 5.0]), // front 0
            ind(1, &[2.0, 2.0]), // front 0
            ind(2, &[3.0, 3.0]), // dominated by 1
            ind(3, &[5.0, 1.0]), // front 0
            ind(4, &[4.0, 4.0]), // dominated by 1 and 2
            ind(5, &[2.0, 2.0]), // equal to 1: front 0 too
        ];
        assert_eq!(fronts(&pop), vec![vec![0, 1, 3, 5], vec![2], vec![4]]);
    }

    #[test]
    fn crowding_keeps_the_ends_and_the_spread() {
        let pop = vec![
            ind(0, &[0.0, 4.0]),
            ind(1, &[1.0, 3.0]),
            ind(2, &[1.1, 2.9]),
            ind(3, &[4.0, 0.0]),
        ];
        let d = crowding(&pop, &[0, 1, 2, 3]);
        assert!(d[0].is_infinite() && d[3].is_infinite());
        // 2 has the wider gap around it (1.0 .. 4.0) than 1 (0.0 .. 1.1).
        assert!(d[2] > d[1], "{d:?}");
        // The elite of three drops the most crowded.
        let e: Vec<usize> = elite(&pop, 3).iter().map(|i| i.number).collect();
        assert_eq!(e, [0, 3, 2]);
        // Whole fronts first.
        let mut more = pop.clone();
        more.push(ind(4, &[5.0, 5.0]));
        let e: Vec<usize> = elite(&more, 4).iter().map(|i| i.number).collect();
        assert_eq!(e, [0, 1, 2, 3]);
    }

    #[test]
    fn parents_carry_the_elite_across_generations() {
        let g0 = vec![ind(0, &[1.0, 1.0]), ind(1, &[5.0, 5.0])];
        let g1 = vec![ind(2, &[6.0, 6.0]), ind(3, &[0.5, 2.0])];
        let p: Vec<usize> = parents(&[g0, g1], 2).iter().map(|i| i.number).collect();
        // 0 and 3 are non-dominated; 1 and 2 are worse.
        assert_eq!(p, [0, 3]);
    }

    #[test]
    fn children_mix_their_parents_and_mutate_seeded() {
        let space: BTreeMap<String, Domain> = [
            (
                "a".to_string(),
                Domain::of(&labd_schemas::sweep::Space::Values(vec![
                    json!(1),
                    json!(2),
                ])),
            ),
            (
                "b".to_string(),
                Domain::of(&labd_schemas::sweep::Space::Values(vec![
                    json!("p"),
                    json!("q"),
                ])),
            ),
        ]
        .into();
        let p = vec![
            Individual {
                number: 0,
                params: [("a".to_string(), json!(1)), ("b".to_string(), json!("p"))].into(),
                losses: vec![1.0, 2.0],
            },
            Individual {
                number: 1,
                params: [("a".to_string(), json!(2)), ("b".to_string(), json!("q"))].into(),
                losses: vec![2.0, 1.0],
            },
        ];
        let settings = Settings {
            mutation_prob: Some(0.0),
            ..Settings::default()
        };
        let mut seen = std::collections::BTreeSet::new();
        for n in 0..64 {
            let mut rng = SplitMix64::for_decision(7, n);
            let c = child(&space, &p, &settings, &mut rng);
            let again = child(&space, &p, &settings, &mut SplitMix64::for_decision(7, n));
            assert_eq!(c, again, "seeded");
            seen.insert((c["a"].to_string(), c["b"].to_string()));
        }
        // Without mutation every value comes from a parent; crossover makes the mixed pairs too.
        assert_eq!(seen.len(), 4, "{seen:?}");
        let random = child(&space, &[], &settings, &mut SplitMix64::for_decision(1, 0));
        assert_eq!(random.len(), 2);
    }
}
