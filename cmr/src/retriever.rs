//! The retriever: which stored states of a layer to bring back for the states of the current pass, within a
//! budget. Only states stored by earlier passes of the same sequence are candidates.

use crate::buffer::MemoryBuffer;
use crate::config::{RetrievalConfig, Strategy};
use tch::{Kind, Tensor};

/// What a retrieval brought back, best first.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Retrieved {
    pub slots: Vec<usize>,
    /// The pass each memory was stored by (for grouping).
    pub steps: Vec<u64>,
    /// The position each memory had in its pass.
    pub positions: Vec<usize>,
    /// (pass, position) of every candidate, chosen or not.
    pub pool: Vec<(u64, usize)>,
    /// Highest cosine similarity of a brought-back memory to any current state.
    pub best_similarity: f64,
    /// How many memories could have been chosen.
    pub candidates: usize,
}

/// Rows scaled to unit length.
pub fn unit(x: &Tensor) -> Tensor {
    let norm = x
        .linalg_norm(2.0, [-1i64].as_slice(), true, None::<Kind>)
        .clamp_min(1e-8);
    x / norm
}

fn to_vec(t: &Tensor) -> Vec<f32> {
    Vec::<f32>::try_from(
        t.to_device(tch::Device::Cpu)
            .to_kind(Kind::Float)
            .flatten(0, -1),
    )
    .unwrap_or_default()
}

/// Memories of `layer` for sequence `row`, whose current states are `query` `[T, D]`, at pass `step`.
pub fn retrieve(
    cfg: &RetrievalConfig,
    strategy: Strategy,
    buffer: &MemoryBuffer,
    layer: usize,
    row: usize,
    query: &Tensor,
    step: u64,
) -> Retrieved {
    let candidates: Vec<(usize, f32, u64, usize)> = buffer
        .entries(layer)
        .filter(|(_, e)| e.row == row && e.step < step)
        .map(|(slot, e)| (slot, e.relevance, e.step, e.position))
        .collect();
    let n = candidates.len();
    if n == 0 {
        return Retrieved::default();
    }
    let slots: Vec<usize> = candidates.iter().map(|c| c.0).collect();
    let Some(keys) = buffer.states(layer, &slots) else {
        return Retrieved::default();
    };
    let keys = unit(&keys);
    let q = unit(query);
    let similarity = to_vec(
        &q.matmul(&keys.transpose(0, 1))
            .amax([0i64].as_slice(), false),
    );
    let relevance: Vec<f64> = candidates.iter().map(|c| c.1 as f64).collect();
    let budget = cfg.budget.min(n);

    let semantic = || similarity.iter().map(|&s| s as f64).collect::<Vec<f64>>();
    let contextual = || {
        let context = unit(&query.mean_dim([0i64].as_slice(), true, Kind::Float));
        let s = to_vec(&context.matmul(&keys.transpose(0, 1)));
        s.iter()
            .zip(&relevance)
            .map(|(&s, r)| s as f64 * (0.5 + 0.5 * r))
            .collect::<Vec<f64>>()
    };
    let multi = || {
        let w = &cfg.weights;
        let base: Vec<f64> = (0..n)
            .map(|i| {
                let age = step.saturating_sub(candidates[i].2) as f64;
                let recency = 0.5f64.powf(age / cfg.recency_half_life.max(1e-9));
                w.relevance * relevance[i]
                    + w.similarity * similarity[i] as f64
                    + w.recency * recency
            })
            .collect();
        // Maximal marginal relevance: each pick pays for its likeness to those already picked.
        let pairwise = to_vec(&keys.matmul(&keys.transpose(0, 1)));
        let mut chosen: Vec<usize> = Vec::with_capacity(budget);
        let mut penalty = vec![f64::NEG_INFINITY; n];
        while chosen.len() < budget {
            let best = (0..n).filter(|i| !chosen.contains(i)).max_by(|&a, &b| {
                let score = |i: usize| base[i] - w.diversity * penalty[i].max(0.0);
                score(a).total_cmp(&score(b)).then(b.cmp(&a))
            });
            let Some(best) = best else { break };
            chosen.push(best);
            for (i, p) in penalty.iter_mut().enumerate() {
                *p = p.max(pairwise[i * n + best] as f64);
            }
        }
        chosen
    };
    let order: Vec<usize> = match strategy {
        Strategy::Semantic => top(&semantic(), budget),
        Strategy::Contextual => top(&contextual(), budget),
        Strategy::MultiCriteria => multi(),
        Strategy::Hybrid => {
            // Reciprocal-rank fusion of the three rankings.
            let mut fused = vec![0.0; n];
            for ranking in [top(&semantic(), n), top(&contextual(), n), multi()] {
                for (rank, &i) in ranking.iter().enumerate() {
                    fused[i] += 1.0 / (60.0 + rank as f64);
                }
            }
            top(&fused, budget)
        }
    };
    let best_similarity = order
        .iter()
        .map(|&i| similarity[i] as f64)
        .fold(f64::NEG_INFINITY, f64::max);
    Retrieved {
        slots: order.iter().map(|&i| slots[i]).collect(),
        steps: order.iter().map(|&i| candidates[i].2).collect(),
        positions: order.iter().map(|&i| candidates[i].3).collect(),
        pool: candidates.iter().map(|c| (c.2, c.3)).collect(),
        best_similarity,
        candidates: n,
    }
}

/// Indices of the `k` highest scores, best first (ties: lower index first).
fn top(scores: &[f64], k: usize) -> Vec<usize> {
    let mut idx: Vec<usize> = (0..scores.len()).collect();
    idx.sort_by(|&a, &b| scores[b].total_cmp(&scores[a]).then(a.cmp(&b)));
    idx.truncate(k);
    idx
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::buffer::Item;
    use crate::config::BufferConfig;
    use tch::Device;

    fn filled() -> (MemoryBuffer, Tensor) {
        let mut b = MemoryBuffer::new(&BufferConfig::default(), &[0], 16, Device::Cpu);
        tch::manual_seed(1);
        let states = Tensor::randn([40, 16], (Kind::Float, Device::Cpu));
        for step in 0..4u64 {
            let items: Vec<Item> = (0..10)
                .map(|i| Item {
                    row: 0,
                    position: i,
                    relevance: (i as f32) / 10.0,
                })
                .collect();
            b.insert(0, step, &states.narrow(0, step as i64 * 10, 10), &items);
        }
        (b, states)
    }

    #[test]
    fn every_strategy_keeps_to_the_budget_and_to_earlier_passes() {
        let (b, states) = filled();
        let query = states.narrow(0, 25, 3);
        for strategy in Strategy::ALL {
            for budget in [1, 5, 100] {
                let cfg = RetrievalConfig {
                    budget,
                    ..Default::default()
                };
                let r = retrieve(&cfg, strategy, &b, 0, 0, &query, 3);
                assert_eq!(r.candidates, 30, "step 3's own states are not candidates");
                assert_eq!(r.slots.len(), budget.min(30), "{strategy:?}");
                assert!(r.steps.iter().all(|&s| s < 3));
                let mut unique = r.slots.clone();
                unique.sort();
                unique.dedup();
                assert_eq!(unique.len(), r.slots.len());
            }
        }
        let none = retrieve(
            &RetrievalConfig::default(),
            Strategy::Semantic,
            &b,
            0,
            1,
            &query,
            9,
        );
        assert_eq!(none, Retrieved::default(), "another row has no memories");
    }

    #[test]
    fn semantic_retrieval_finds_the_stored_copy_of_a_state() {
        let (b, states) = filled();
        let query = states.narrow(0, 13, 1);
        let r = retrieve(
            &RetrievalConfig::default(),
            Strategy::Semantic,
            &b,
            0,
            0,
            &query,
            4,
        );
        let e = b.entry(0, r.slots[0]).unwrap();
        assert_eq!((e.step, e.position), (1, 3));
        assert!((r.best_similarity - 1.0).abs() < 1e-5);
    }
}
