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
    retrieve_rows(
        cfg,
        strategy,
        buffer,
        layer,
        &[row],
        &query.unsqueeze(0),
        step,
    )
    .pop()
    .unwrap_or_default()
}

/// Memories of `layer` for several sequences at once: `states[i]` (`[R, T, D]`) are the current states of the
/// buffer's row `rows[i]`. The similarities of every row to every candidate are computed in one go on the
/// device and read back once; each row then chooses among its own candidates.
pub fn retrieve_rows(
    cfg: &RetrievalConfig,
    strategy: Strategy,
    buffer: &MemoryBuffer,
    layer: usize,
    rows: &[usize],
    states: &Tensor,
    step: u64,
) -> Vec<Retrieved> {
    // (slot, relevance, step, position, row) of every memory an earlier pass stored.
    let all: Vec<(usize, f32, u64, usize, usize)> = buffer
        .entries(layer)
        .filter(|(_, e)| e.step < step && rows.contains(&e.row))
        .map(|(slot, e)| (slot, e.relevance, e.step, e.position, e.row))
        .collect();
    let n = all.len();
    if n == 0 {
        return vec![Retrieved::default(); rows.len()];
    }
    let slots: Vec<usize> = all.iter().map(|c| c.0).collect();
    let Some(keys) = buffer.states(layer, &slots) else {
        return vec![Retrieved::default(); rows.len()];
    };
    let keys = unit(&keys);
    // [R, T, N] → best over the sequence's positions → [R, N].
    let similarity = to_vec(
        &unit(states)
            .matmul(&keys.transpose(0, 1))
            .amax([1i64].as_slice(), false),
    );
    let context = matches!(strategy, Strategy::Contextual | Strategy::Hybrid).then(|| {
        let c = unit(&states.mean_dim([1i64].as_slice(), false, Kind::Float));
        to_vec(&c.matmul(&keys.transpose(0, 1)))
    });
    rows.iter()
        .enumerate()
        .map(|(r, &row)| {
            let mine: Vec<usize> = (0..n).filter(|&i| all[i].4 == row).collect();
            if mine.is_empty() {
                return Retrieved::default();
            }
            let sim: Vec<f64> = mine.iter().map(|&i| similarity[r * n + i] as f64).collect();
            let ctx: Vec<f64> = context
                .as_ref()
                .map(|c| mine.iter().map(|&i| c[r * n + i] as f64).collect())
                .unwrap_or_default();
            let relevance: Vec<f64> = mine.iter().map(|&i| all[i].1 as f64).collect();
            let steps: Vec<u64> = mine.iter().map(|&i| all[i].2).collect();
            let pairwise = |local: &[usize]| -> Vec<f32> {
                let index: Vec<i64> = local.iter().map(|&j| mine[j] as i64).collect();
                let k = keys.index_select(0, &Tensor::from_slice(&index).to_device(keys.device()));
                to_vec(&k.matmul(&k.transpose(0, 1)))
            };
            let order = choose(
                cfg, strategy, step, &sim, &ctx, &relevance, &steps, pairwise,
            );
            Retrieved {
                slots: order.iter().map(|&j| all[mine[j]].0).collect(),
                steps: order.iter().map(|&j| all[mine[j]].2).collect(),
                positions: order.iter().map(|&j| all[mine[j]].3).collect(),
                pool: mine.iter().map(|&i| (all[i].2, all[i].3)).collect(),
                best_similarity: order
                    .iter()
                    .map(|&j| sim[j])
                    .fold(f64::NEG_INFINITY, f64::max),
                candidates: mine.len(),
            }
        })
        .collect()
}

/// The order in which a row's candidates are retrieved (at most the budget), by strategy. `pairwise(local)`
/// gives the candidates' pairwise cosine similarities, for diversity.
#[allow(clippy::too_many_arguments)]
fn choose(
    cfg: &RetrievalConfig,
    strategy: Strategy,
    step: u64,
    similarity: &[f64],
    context: &[f64],
    relevance: &[f64],
    steps: &[u64],
    pairwise: impl Fn(&[usize]) -> Vec<f32>,
) -> Vec<usize> {
    let n = similarity.len();
    let budget = cfg.budget.min(n);
    let contextual = || -> Vec<f64> {
        context
            .iter()
            .zip(relevance)
            .map(|(&s, r)| s * (0.5 + 0.5 * r))
            .collect()
    };
    let multi = || -> Vec<usize> {
        let w = &cfg.weights;
        let base: Vec<f64> = (0..n)
            .map(|i| {
                let age = step.saturating_sub(steps[i]) as f64;
                let recency = 0.5f64.powf(age / cfg.recency_half_life.max(1e-9));
                w.relevance * relevance[i] + w.similarity * similarity[i] + w.recency * recency
            })
            .collect();
        // Maximal marginal relevance among the best few: each pick pays for its likeness to those picked.
        let pool = top(&base, (4 * budget).max(budget));
        let pair = pairwise(&pool);
        let m = pool.len();
        let mut chosen: Vec<usize> = Vec::with_capacity(budget);
        let mut penalty = vec![0.0f64; m];
        while chosen.len() < budget {
            let best = (0..m).filter(|p| !chosen.contains(p)).max_by(|&a, &b| {
                let score = |p: usize| base[pool[p]] - w.diversity * penalty[p];
                score(a).total_cmp(&score(b)).then(b.cmp(&a))
            });
            let Some(best) = best else { break };
            chosen.push(best);
            for (p, pen) in penalty.iter_mut().enumerate() {
                *pen = pen.max(pair[p * m + best] as f64);
            }
        }
        chosen.into_iter().map(|p| pool[p]).collect()
    };
    match strategy {
        Strategy::Semantic => top(similarity, budget),
        Strategy::Contextual => top(&contextual(), budget),
        Strategy::MultiCriteria => multi(),
        Strategy::Hybrid => {
            // Reciprocal-rank fusion of the three rankings.
            let mut fused = vec![0.0; n];
            for ranking in [top(similarity, n), top(&contextual(), n), multi()] {
                for (rank, &i) in ranking.iter().enumerate() {
                    fused[i] += 1.0 / (60.0 + rank as f64);
                }
            }
            top(&fused, budget)
        }
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
    fn retrieving_for_several_rows_at_once_is_retrieving_for_each() {
        let mut b = MemoryBuffer::new(&BufferConfig::default(), &[0], 16, Device::Cpu);
        let states = Tensor::randn([2, 12, 16], (Kind::Float, Device::Cpu));
        for step in 0..3u64 {
            for row in 0..2 {
                let items: Vec<Item> = (0..4)
                    .map(|i| Item {
                        row,
                        position: i + step as usize,
                        relevance: 0.1 * i as f32,
                    })
                    .collect();
                let rows = states.get(row as i64).narrow(0, step as i64, 4);
                b.insert(0, step, &rows, &items);
            }
        }
        let query = Tensor::randn([2, 5, 16], (Kind::Float, Device::Cpu));
        for strategy in Strategy::ALL {
            let cfg = RetrievalConfig {
                budget: 3,
                ..Default::default()
            };
            let both = retrieve_rows(&cfg, strategy, &b, 0, &[0, 1], &query, 3);
            for (row, together) in both.iter().enumerate() {
                let one = retrieve(&cfg, strategy, &b, 0, row, &query.get(row as i64), 3);
                assert_eq!(one.slots, together.slots, "{strategy:?} row {row}");
                assert_eq!(one.pool, together.pool);
            }
        }
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
