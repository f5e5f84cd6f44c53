//! A small decoder-only transformer (pre-norm blocks, causal multi-head attention written out so that its weights
//! can be scored, GELU feed-forward, tied output embedding). CMR attaches through [`Model::forward_with`]: after
//! each block a hook may read the states (and the block's attention) and hand back states for the next block.
//! [`Model::forward`] is the same code with no hook, so the baseline and "CMR off" are one path.

use crate::config::ModelConfig;
use tch::{Device, Kind, Tensor, nn};

/// What went wrong building a model.
#[derive(Debug, thiserror::Error)]
pub enum ModelError {
    #[error("weights {path}: {reason}")]
    Weights { path: String, reason: String },
}

struct Block {
    ln1: nn::LayerNorm,
    qkv: nn::Linear,
    proj: nn::Linear,
    ln2: nn::LayerNorm,
    fc1: nn::Linear,
    fc2: nn::Linear,
    heads: i64,
}

impl Block {
    fn new(p: nn::Path<'_>, d: i64, heads: i64, mlp: i64) -> Block {
        Block {
            ln1: nn::layer_norm(&p / "ln1", vec![d], Default::default()),
            qkv: nn::linear(&p / "qkv", d, 3 * d, Default::default()),
            proj: nn::linear(&p / "proj", d, d, Default::default()),
            ln2: nn::layer_norm(&p / "ln2", vec![d], Default::default()),
            fc1: nn::linear(&p / "fc1", d, mlp * d, Default::default()),
            fc2: nn::linear(&p / "fc2", mlp * d, d, Default::default()),
            heads,
        }
    }

    /// The block's output, and its attention probabilities `[B, H, T, T]` when asked for.
    fn forward(&self, x: &Tensor, mask: &Tensor, want_attention: bool) -> (Tensor, Option<Tensor>) {
        let (b, t, d) = x.size3().expect("block input is [batch, time, width]");
        let hd = d / self.heads;
        let qkv = x.apply(&self.ln1).apply(&self.qkv);
        let split = |i: i64| {
            qkv.narrow(2, i * d, d)
                .view([b, t, self.heads, hd])
                .transpose(1, 2)
        };
        let (q, k, v) = (split(0), split(1), split(2));
        let scores = q.matmul(&k.transpose(-2, -1)) * (1.0 / (hd as f64).sqrt());
        let probs = scores
            .masked_fill(mask, f64::NEG_INFINITY)
            .softmax(-1, Kind::Float);
        let y = probs
            .matmul(&v)
            .transpose(1, 2)
            .contiguous()
            .view([b, t, d])
            .apply(&self.proj);
        let x = x + y;
        let h = x
            .apply(&self.ln2)
            .apply(&self.fc1)
            .gelu("none")
            .apply(&self.fc2);
        (x + h, want_attention.then_some(probs))
    }
}

pub struct Model {
    pub cfg: ModelConfig,
    pub device: Device,
    vs: nn::VarStore,
    wte: nn::Embedding,
    wpe: nn::Embedding,
    blocks: Vec<Block>,
    ln_f: nn::LayerNorm,
}

impl Model {
    /// Random weights from `cfg.seed`, or the weights of `cfg.weights` (a safetensors file).
    pub fn new(cfg: &ModelConfig, device: Device) -> Result<Model, ModelError> {
        let mut vs = nn::VarStore::new(device);
        let root = vs.root();
        let d = cfg.d_model as i64;
        let emb = |p, n, stdev| {
            nn::embedding(
                p,
                n,
                d,
                nn::EmbeddingConfig {
                    ws_init: nn::Init::Randn { mean: 0.0, stdev },
                    ..Default::default()
                },
            )
        };
        let wte = emb(&root / "wte", cfg.vocab as i64, 1.0);
        let wpe = emb(&root / "wpe", cfg.max_seq_len as i64, 0.5);
        let blocks = (0..cfg.layers)
            .map(|i| Block::new(&root / "h" / i, d, cfg.heads as i64, cfg.mlp_ratio as i64))
            .collect();
        let ln_f = nn::layer_norm(&root / "ln_f", vec![d], Default::default());
        init_weights(&vs, cfg.seed);
        if let Some(path) = &cfg.weights {
            vs.load(path).map_err(|e| ModelError::Weights {
                path: path.clone(),
                reason: e.to_string(),
            })?;
        }
        vs.freeze();
        Ok(Model {
            cfg: cfg.clone(),
            device,
            vs,
            wte,
            wpe,
            blocks,
            ln_f,
        })
    }

    /// Names and shapes of the weights, as a safetensors file for [`ModelConfig::weights`] must hold them.
    pub fn var_names(&self) -> Vec<(String, Vec<i64>)> {
        let mut v: Vec<_> = self
            .vs
            .variables()
            .into_iter()
            .map(|(n, t)| (n, t.size()))
            .collect();
        v.sort();
        v
    }

    /// Saves the weights (safetensors when the name ends so).
    pub fn save(&self, path: &std::path::Path) -> Result<(), tch::TchError> {
        self.vs.save(path)
    }

    pub fn layers(&self) -> usize {
        self.blocks.len()
    }

    /// Logits `[B, T, vocab]` of tokens `[B, T]`.
    pub fn forward(&self, tokens: &Tensor) -> Tensor {
        self.forward_with(tokens, &[], |_, x, _| x)
    }

    /// The forward pass with a hook after every block: `hook(layer, states, attention)` returns the states the
    /// next block gets. Attention `[B, H, T, T]` is passed for the layers marked in `attention_for`.
    pub fn forward_with(
        &self,
        tokens: &Tensor,
        attention_for: &[bool],
        mut hook: impl FnMut(usize, Tensor, Option<Tensor>) -> Tensor,
    ) -> Tensor {
        let _guard = tch::no_grad_guard();
        let t = tokens.size()[1];
        let positions = Tensor::arange(t, (Kind::Int64, self.device));
        let mut x = tokens.apply(&self.wte) + positions.apply(&self.wpe).unsqueeze(0);
        let mask = Tensor::ones([t, t], (Kind::Bool, self.device)).triu(1);
        for (i, block) in self.blocks.iter().enumerate() {
            let want = attention_for.get(i).copied().unwrap_or(false);
            let (y, attention) = block.forward(&x, &mask, want);
            x = hook(i, y, attention);
        }
        x.apply(&self.ln_f).matmul(&self.wte.ws.transpose(0, 1))
    }
}

/// Fills every weight from `seed` with our own generator, not libtorch's global one, so the same seed gives
/// the same model on every device, in every libtorch version, and whatever else uses libtorch's generator
/// meanwhile. Layer norms start at 1 and 0, biases at 0, embeddings normal (token 1.0, position 0.5), linear
/// weights uniform in ±1/√fan-in, and weights named `*fc2_small*` normal with σ 0.02.
pub fn init_weights(vs: &nn::VarStore, seed: u64) {
    let _guard = tch::no_grad_guard();
    let mut vars: Vec<(String, Tensor)> = vs.variables().into_iter().collect();
    vars.sort_by(|a, b| a.0.cmp(&b.0));
    for (name, mut var) in vars {
        let size = var.size();
        let n: i64 = size.iter().product();
        let mut rng = crate::datasets::Rng::new(seed ^ name_hash(&name));
        let is_norm = name.split('.').any(|p| p.starts_with("ln"));
        let values: Vec<f32> = if name.ends_with(".bias") {
            vec![0.0; n as usize]
        } else if is_norm {
            vec![1.0; n as usize]
        } else if name.starts_with("wte.") || name.starts_with("wpe.") || name.contains("small") {
            let std = if name.starts_with("wte.") {
                1.0
            } else if name.starts_with("wpe.") {
                0.5
            } else {
                0.02
            };
            (0..n).map(|_| (normal(&mut rng) * std) as f32).collect()
        } else {
            let bound = 1.0 / (*size.last().unwrap_or(&1) as f64).sqrt();
            (0..n)
                .map(|_| ((uniform(&mut rng) * 2.0 - 1.0) * bound) as f32)
                .collect()
        };
        let filled = Tensor::from_slice(&values)
            .view(size.as_slice())
            .to_device(var.device());
        var.copy_(&filled);
    }
}

fn name_hash(name: &str) -> u64 {
    name.bytes().fold(0xcbf2_9ce4_8422_2325u64, |h, b| {
        (h ^ b as u64).wrapping_mul(0x100_0000_01b3)
    })
}

fn uniform(rng: &mut crate::datasets::Rng) -> f64 {
    ((rng.next_u64() >> 11) as f64 + 0.5) / (1u64 << 53) as f64
}

/// A standard normal draw (Box–Muller).
fn normal(rng: &mut crate::datasets::Rng) -> f64 {
    let (u1, u2) = (uniform(rng), uniform(rng));
    (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos()
}

/// The device a benchmark asks for: `auto` is CUDA when present.
pub fn device(name: &str) -> Result<Device, String> {
    match name {
        "cpu" => Ok(Device::Cpu),
        "cuda" if tch::Cuda::is_available() => Ok(Device::Cuda(0)),
        "cuda" => Err("run.device is cuda, but libtorch sees no CUDA device".into()),
        _ => Ok(Device::cuda_if_available()),
    }
}

/// Waits for the device's queued work, so that wall-clock timings mean something on CUDA.
pub fn sync(device: Device) {
    if let Device::Cuda(i) = device {
        tch::Cuda::synchronize(i as i64);
    }
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    pub(crate) fn tiny() -> ModelConfig {
        ModelConfig {
            layers: 3,
            d_model: 32,
            heads: 4,
            vocab: 512,
            max_seq_len: 128,
            mlp_ratio: 2,
            seed: 3,
            weights: None,
        }
    }

    #[test]
    fn shapes_and_seeded_weights() {
        tch::set_num_threads(1);
        let m = Model::new(&tiny(), Device::Cpu).unwrap();
        let tokens = Tensor::randint(512, [2, 16], (Kind::Int64, Device::Cpu));
        let logits = m.forward(&tokens);
        assert_eq!(logits.size(), [2, 16, 512]);
        let again = Model::new(&tiny(), Device::Cpu).unwrap().forward(&tokens);
        assert!(logits.equal(&again), "the same seed gives the same weights");
    }

    #[test]
    fn causal_the_past_does_not_see_the_future() {
        tch::set_num_threads(1);
        let m = Model::new(&tiny(), Device::Cpu).unwrap();
        let a = Tensor::from_slice(&[5i64, 6, 7, 8, 9, 10]).unsqueeze(0);
        let b = Tensor::from_slice(&[5i64, 6, 7, 8, 300, 301]).unsqueeze(0);
        let (la, lb) = (m.forward(&a), m.forward(&b));
        assert!(
            la.narrow(1, 0, 4)
                .allclose(&lb.narrow(1, 0, 4), 1e-6, 1e-6, false)
        );
        assert!(
            !la.narrow(1, 4, 2)
                .allclose(&lb.narrow(1, 4, 2), 1e-6, 1e-6, false)
        );
    }

    #[test]
    fn weights_round_trip_through_safetensors_and_bad_files_are_named() {
        tch::set_num_threads(1);
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("w.safetensors");
        let m = Model::new(&tiny(), Device::Cpu).unwrap();
        m.save(&path).unwrap();
        let mut cfg = tiny();
        cfg.seed = 99;
        cfg.weights = Some(path.display().to_string());
        let loaded = Model::new(&cfg, Device::Cpu).unwrap();
        let tokens = Tensor::from_slice(&[1i64, 2, 3]).unsqueeze(0);
        assert!(m.forward(&tokens).equal(&loaded.forward(&tokens)));
        std::fs::write(&path, b"not safetensors").unwrap();
        let err = Model::new(&cfg, Device::Cpu).err().unwrap().to_string();
        assert!(err.contains("w.safetensors"), "{err}");
    }
}
