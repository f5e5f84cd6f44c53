//! The reconstructor: turns retrieved memories into a state for each current position, to be blended (by the
//! gate) into the hooked layer's output, which the later layers then read. Hierarchical attends within the groups
//! of memories stored by one pass and then across groups; attention attends over all memories; MLP maps the
//! state and the memories' mean through a feed-forward layer (random weights from the model's seed).

use crate::config::{Method, ReconstructionConfig};
use crate::retriever::unit;
use tch::{Device, Kind, Tensor, nn};

pub struct Reconstructor {
    cfg: ReconstructionConfig,
    _vs: nn::VarStore,
    fc1: nn::Linear,
    fc2: nn::Linear,
}

impl Reconstructor {
    pub fn new(cfg: &ReconstructionConfig, d: usize, device: Device, seed: u64) -> Reconstructor {
        let vs = nn::VarStore::new(device);
        let d = d as i64;
        let fc1 = nn::linear(vs.root() / "fc1", 2 * d, d, Default::default());
        let fc2 = nn::linear(vs.root() / "fc2_small", d, d, Default::default());
        crate::model::init_weights(&vs, seed.wrapping_add(1));
        Reconstructor {
            cfg: cfg.clone(),
            _vs: vs,
            fc1,
            fc2,
        }
    }

    /// A reconstruction `[T, D]` for states `query` `[T, D]` from `memories` `[k, D]`, stored by passes `groups`.
    pub fn reconstruct(&self, query: &Tensor, memories: &Tensor, groups: &[u64]) -> Tensor {
        let _guard = tch::no_grad_guard();
        let attend = |mem: &Tensor| {
            let weights = (unit(query).matmul(&unit(mem).transpose(0, 1)) * self.cfg.temperature)
                .softmax(-1, Kind::Float);
            weights.matmul(mem)
        };
        match self.cfg.method {
            Method::Attention => attend(memories),
            Method::Mlp => {
                let mean = memories.mean_dim([0i64].as_slice(), true, Kind::Float);
                let t = query.size()[0];
                let input = Tensor::cat(&[query.shallow_clone(), mean.expand([t, -1], false)], 1);
                &mean + input.apply(&self.fc1).gelu("none").apply(&self.fc2)
            }
            Method::Hierarchical => {
                let mut distinct: Vec<u64> = groups.to_vec();
                distinct.sort_unstable();
                distinct.dedup();
                let device = memories.device();
                let mut parts = Vec::new();
                let mut scores = Vec::new();
                for g in distinct {
                    let index: Vec<i64> = groups
                        .iter()
                        .enumerate()
                        .filter(|(_, x)| **x == g)
                        .map(|(i, _)| i as i64)
                        .collect();
                    let mem =
                        memories.index_select(0, &Tensor::from_slice(&index).to_device(device));
                    let summary = unit(&mem.mean_dim([0i64].as_slice(), true, Kind::Float));
                    scores
                        .push(unit(query).matmul(&summary.transpose(0, 1)) * self.cfg.temperature);
                    parts.push(attend(&mem));
                }
                // [G, T, D] weighted by a softmax over groups of [T, G].
                let weights = Tensor::cat(&scores, 1).softmax(-1, Kind::Float);
                let stacked = Tensor::stack(&parts, 0);
                (stacked * weights.transpose(0, 1).unsqueeze(-1)).sum_dim_intlist(
                    [0i64].as_slice(),
                    false,
                    Kind::Float,
                )
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_method_gives_one_state_per_position() {
        let query = Tensor::randn([7, 16], (Kind::Float, Device::Cpu));
        let memories = Tensor::randn([5, 16], (Kind::Float, Device::Cpu));
        for method in Method::ALL {
            let cfg = ReconstructionConfig {
                method,
                ..Default::default()
            };
            let r = Reconstructor::new(&cfg, 16, Device::Cpu, 0);
            let out = r.reconstruct(&query, &memories, &[0, 0, 1, 2, 2]);
            assert_eq!(out.size(), [7, 16], "{method:?}");
            assert!(bool::try_from(out.isfinite().all()).unwrap());
        }
    }

    #[test]
    fn attention_reconstructs_a_memory_its_state_matches() {
        let memories = Tensor::randn([4, 32], (Kind::Float, Device::Cpu));
        let query = memories.narrow(0, 2, 1) * 3.0;
        let cfg = ReconstructionConfig {
            temperature: 50.0,
            ..Default::default()
        };
        let r =
            Reconstructor::new(&cfg, 32, Device::Cpu, 0).reconstruct(&query, &memories, &[0; 4]);
        let cos = f64::try_from(
            unit(&r)
                .matmul(&unit(&memories.narrow(0, 2, 1)).transpose(0, 1))
                .squeeze(),
        )
        .unwrap();
        assert!(cos > 0.99, "{cos}");
    }
}
