//! The relevance scorer: how worth remembering each state of a hooked layer is, as a number in 0..1 (a sigmoid
//! of the score z-scored within its sequence), from the attention the token receives, the variance of its state,
//! or both.

use crate::config::{ScorerConfig, ScorerKind};
use tch::{Kind, Tensor};

/// Whether the scorer needs the layer's attention.
pub fn needs_attention(cfg: &ScorerConfig) -> bool {
    cfg.kind != ScorerKind::Variance
}

/// Relevance `[B, T]` of states `[B, T, D]`, given the layer's attention `[B, H, T, T]` when it needs it.
pub fn relevance(cfg: &ScorerConfig, states: &Tensor, attention: Option<&Tensor>) -> Tensor {
    let variance = || states.var_dim([-1i64].as_slice(), false, false);
    let received = |a: &Tensor| {
        // Attention each key receives, over heads and over the queries that can see it (causal: T - t).
        let t = a.size()[3];
        let total = a
            .sum_dim_intlist([2i64].as_slice(), false, Kind::Float)
            .mean_dim([1i64].as_slice(), false, Kind::Float);
        let seen_by = Tensor::arange(t, (Kind::Float, a.device())).flip([0i64]) + 1.0;
        total / seen_by
    };
    let score = match (cfg.kind, attention) {
        (ScorerKind::Attention, Some(a)) => z(&received(a)),
        (ScorerKind::Hybrid, Some(a)) => {
            z(&received(a)) * cfg.hybrid_weight + z(&variance()) * (1.0 - cfg.hybrid_weight)
        }
        _ => z(&variance()),
    };
    score.sigmoid()
}

/// z-scores along the last axis.
fn z(x: &Tensor) -> Tensor {
    let (std, mean) = x.std_mean_dim([-1i64].as_slice(), false, true);
    (x - mean) / (std + 1e-6)
}

#[cfg(test)]
mod tests {
    use super::*;
    use tch::Device;

    #[test]
    fn relevance_is_in_0_1_with_one_value_per_state() {
        let states = Tensor::randn([2, 10, 8], (Kind::Float, Device::Cpu));
        let attention =
            Tensor::randn([2, 4, 10, 10], (Kind::Float, Device::Cpu)).softmax(-1, Kind::Float);
        for kind in [
            ScorerKind::Attention,
            ScorerKind::Variance,
            ScorerKind::Hybrid,
        ] {
            let cfg = ScorerConfig {
                kind,
                ..Default::default()
            };
            let r = relevance(&cfg, &states, Some(&attention));
            assert_eq!(r.size(), [2, 10]);
            let v = Vec::<f32>::try_from(r.flatten(0, -1)).unwrap();
            assert!(v.iter().all(|x| (0.0..=1.0).contains(x)), "{kind:?}: {v:?}");
        }
    }

    #[test]
    fn variance_scores_the_spread_out_state_highest() {
        let states = Tensor::zeros([1, 4, 8], (Kind::Float, Device::Cpu));
        states.get(0).get(2).copy_(&Tensor::from_slice(&[
            3.0f32, -3.0, 3.0, -3.0, 3.0, -3.0, 3.0, -3.0,
        ]));
        let cfg = ScorerConfig {
            kind: ScorerKind::Variance,
            ..Default::default()
        };
        let r = Vec::<f32>::try_from(relevance(&cfg, &states, None).flatten(0, -1)).unwrap();
        let best = (0..4).max_by(|&a, &b| r[a].total_cmp(&r[b])).unwrap();
        assert_eq!(best, 2);
    }
}
