//! CMR on a model: at each hooked layer, score the states, retrieve memories stored by earlier passes, blend
//! their reconstruction into the states the later layers read, and store the relevant states of this pass. The
//! memory persists from one forward pass to the next until [`Cmr::reset`]. Each component's time is measured.

use crate::buffer::{Item, MemoryBuffer};
use crate::config::{CmrConfig, ModelConfig};
use crate::model::{Model, sync};
use crate::reconstructor::Reconstructor;
use crate::retriever::{Retrieved, retrieve_rows};
use crate::scorer;
use std::time::Instant;
use tch::{Device, Tensor};

/// Seconds spent in each component since the last [`Cmr::take_timers`].
#[derive(Clone, Copy, Debug, Default, PartialEq)]
pub struct Timers {
    pub scoring: f64,
    pub buffer: f64,
    pub retrieval: f64,
    pub reconstruction: f64,
}

impl Timers {
    pub fn total(&self) -> f64 {
        self.scoring + self.buffer + self.retrieval + self.reconstruction
    }
}

/// What one hooked layer did for one sequence in the last pass (kept when `capture` is on).
pub struct Capture {
    pub layer: usize,
    pub row: usize,
    pub retrieved: Retrieved,
    /// The reconstruction `[T, D]`, when anything was retrieved.
    pub reconstruction: Option<Tensor>,
    /// The memories it was made from `[k, D]` (the first `k` retrieved).
    pub memories: Option<Tensor>,
}

pub struct Cmr {
    pub cfg: CmrConfig,
    pub buffer: MemoryBuffer,
    reconstructor: Reconstructor,
    d: usize,
    device: Device,
    /// Forward passes since the last reset.
    pub step: u64,
    timers: Timers,
    /// Retrievals asked for, and those whose best memory was similar enough (a hit).
    pub requests: u64,
    pub hits: u64,
    /// Wait for the device around each component (true timings on CUDA, at some cost).
    pub sync_timing: bool,
    /// Blend the retrieved memories into the states; off: store and retrieve only, the output is the model's.
    pub reconstruct: bool,
    pub capture: bool,
    pub captured: Vec<Capture>,
}

impl Cmr {
    pub fn new(cfg: &CmrConfig, model: &ModelConfig, device: Device) -> Cmr {
        Cmr {
            cfg: cfg.clone(),
            buffer: MemoryBuffer::new(&cfg.buffer, &cfg.hook_layers, model.d_model, device),
            reconstructor: Reconstructor::new(
                &cfg.reconstruction,
                model.d_model,
                device,
                model.seed,
            ),
            d: model.d_model,
            device,
            step: 0,
            timers: Timers::default(),
            requests: 0,
            hits: 0,
            sync_timing: false,
            reconstruct: true,
            capture: false,
            captured: Vec::new(),
        }
    }

    /// Empties the memory (a new document or conversation).
    pub fn reset(&mut self) {
        self.buffer =
            MemoryBuffer::new(&self.cfg.buffer, &self.cfg.hook_layers, self.d, self.device);
        self.step = 0;
        self.requests = 0;
        self.hits = 0;
        self.captured.clear();
    }

    pub fn take_timers(&mut self) -> Timers {
        std::mem::take(&mut self.timers)
    }

    pub fn hit_rate(&self) -> f64 {
        if self.requests == 0 {
            f64::NAN
        } else {
            self.hits as f64 / self.requests as f64
        }
    }

    /// One forward pass of `model` with CMR.
    pub fn forward(&mut self, model: &Model, tokens: &Tensor) -> Tensor {
        let hooked: Vec<bool> = (0..model.layers())
            .map(|l| self.cfg.hook_layers.contains(&l))
            .collect();
        let attention: Vec<bool> = hooked
            .iter()
            .map(|&h| h && scorer::needs_attention(&self.cfg.scorer))
            .collect();
        self.captured.clear();
        let logits = model.forward_with(tokens, &attention, |layer, x, att| {
            if hooked[layer] {
                self.hook(layer, x, att)
            } else {
                x
            }
        });
        self.step += 1;
        logits
    }

    fn lap(&self, since: Instant) -> f64 {
        if self.sync_timing {
            sync(self.device);
        }
        since.elapsed().as_secs_f64()
    }

    fn hook(&mut self, layer: usize, x: Tensor, attention: Option<Tensor>) -> Tensor {
        if self.sync_timing {
            // The layer's own work is the model's, not the scorer's.
            sync(self.device);
        }
        let started = Instant::now();
        let relevance = scorer::relevance(&self.cfg.scorer, &x, attention.as_ref());
        let relevance: Vec<f32> =
            Vec::try_from(relevance.to_device(Device::Cpu).flatten(0, -1)).unwrap_or_default();
        self.timers.scoring += self.lap(started);
        let size = x.size();
        let (rows, t, d) = (size[0] as usize, size[1] as usize, size[2]);

        // Retrieval for every sequence of the batch at once.
        let started = Instant::now();
        let all_rows: Vec<usize> = (0..rows).collect();
        let retrieved = retrieve_rows(
            &self.cfg.retrieval,
            self.cfg.retrieval.strategy,
            &self.buffer,
            layer,
            &all_rows,
            &x,
            self.step,
        );
        for r in &retrieved {
            self.requests += 1;
            if r.best_similarity >= self.cfg.retrieval.hit_similarity {
                self.hits += 1;
            }
            self.buffer.touch(layer, &r.slots);
        }
        self.timers.retrieval += self.lap(started);

        // Reconstruction, per sequence that retrieved anything, from one gather of every row's memories.
        let started = Instant::now();
        let gate = self.cfg.reconstruction.gate;
        let cap = self.cfg.reconstruction.max_memory_tokens;
        let takes: Vec<usize> = retrieved
            .iter()
            .map(|r| {
                if self.reconstruct {
                    r.slots.len().min(cap)
                } else {
                    0
                }
            })
            .collect();
        let wanted: Vec<usize> = retrieved
            .iter()
            .zip(&takes)
            .flat_map(|(r, &take)| r.slots[..take].iter().copied())
            .collect();
        let gathered = (!wanted.is_empty())
            .then(|| self.buffer.states(layer, &wanted))
            .flatten();
        let mut out = Vec::with_capacity(rows);
        let mut made = Vec::with_capacity(rows);
        let mut offset = 0i64;
        for (row, r) in retrieved.iter().enumerate() {
            let states = x.get(row as i64);
            let take = takes[row];
            let memories = gathered
                .as_ref()
                .filter(|_| take > 0)
                .map(|g| g.narrow(0, offset, take as i64));
            offset += take as i64;
            let reconstruction = memories
                .as_ref()
                .map(|m| self.reconstructor.reconstruct(&states, m, &r.steps[..take]));
            out.push(match &reconstruction {
                Some(rec) => &states * (1.0 - gate) + rec * gate,
                None => states,
            });
            made.push((reconstruction, memories));
        }
        let reweaved = if out.is_empty() {
            x.shallow_clone()
        } else {
            Tensor::stack(&out, 0)
        };
        self.timers.reconstruction += self.lap(started);

        // Store the relevant states of every sequence (as the layer made them, before reweaving) in one go.
        let started = Instant::now();
        let mut positions: Vec<i64> = Vec::new();
        let mut items: Vec<Item> = Vec::new();
        for row in 0..rows {
            let mut chosen: Vec<(usize, f32)> = relevance[row * t..(row + 1) * t]
                .iter()
                .copied()
                .enumerate()
                .filter(|(_, r)| *r as f64 >= self.cfg.scorer.threshold)
                .collect();
            chosen.sort_by(|a, b| b.1.total_cmp(&a.1).then(a.0.cmp(&b.0)));
            chosen.truncate(self.cfg.scorer.max_per_step);
            for (position, relevance) in chosen {
                positions.push((row * t + position) as i64);
                items.push(Item {
                    row,
                    position,
                    relevance,
                });
            }
        }
        if !items.is_empty() {
            let index = Tensor::from_slice(&positions).to_device(self.device);
            let states = x.view([-1, d]).index_select(0, &index);
            self.buffer.insert(layer, self.step, &states, &items);
        }
        self.timers.buffer += self.lap(started);

        if self.capture {
            for (row, (r, (reconstruction, memories))) in
                retrieved.into_iter().zip(made).enumerate()
            {
                self.captured.push(Capture {
                    layer,
                    row,
                    retrieved: r,
                    reconstruction,
                    memories,
                });
            }
        }
        reweaved
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::BufferConfig;
    use crate::model::tests::tiny;
    use tch::Kind;

    fn tokens(seed: i64, b: i64, t: i64) -> Tensor {
        tch::manual_seed(seed);
        Tensor::randint(512, [b, t], (Kind::Int64, Device::Cpu))
    }

    #[test]
    fn cmr_off_is_the_plain_model_bit_for_bit() {
        tch::set_num_threads(1);
        let model = Model::new(&tiny(), Device::Cpu).unwrap();
        let cfg = CmrConfig {
            hook_layers: vec![],
            ..Default::default()
        };
        let mut cmr = Cmr::new(&cfg, &tiny(), Device::Cpu);
        let x = tokens(1, 2, 24);
        for _ in 0..3 {
            assert!(cmr.forward(&model, &x).equal(&model.forward(&x)));
        }
        assert!(cmr.buffer.is_empty());
    }

    #[test]
    fn a_closed_gate_stores_and_retrieves_but_changes_no_output() {
        tch::set_num_threads(1);
        let model = Model::new(&tiny(), Device::Cpu).unwrap();
        let mut cfg = CmrConfig::default();
        cfg.reconstruction.gate = 0.0;
        let mut cmr = Cmr::new(&cfg, &tiny(), Device::Cpu);
        let x = tokens(2, 2, 24);
        for _ in 0..3 {
            let (a, b) = (cmr.forward(&model, &x), model.forward(&x));
            assert!(a.eq_tensor(&b).all().int64_value(&[]) == 1);
        }
        assert!(!cmr.buffer.is_empty());
        assert!(cmr.requests > 0 && cmr.hits > 0);
        // With the gate open the output changes once there are memories.
        cfg.reconstruction.gate = 0.5;
        let mut open = Cmr::new(&cfg, &tiny(), Device::Cpu);
        assert!(
            open.forward(&model, &x).equal(&model.forward(&x)),
            "nothing to retrieve yet"
        );
        assert!(!open.forward(&model, &x).equal(&model.forward(&x)));
    }

    #[test]
    fn caps_budget_and_shapes_hold_through_many_passes() {
        tch::set_num_threads(1);
        let model = Model::new(&tiny(), Device::Cpu).unwrap();
        let mut cfg = CmrConfig {
            buffer: BufferConfig {
                per_layer: 20,
                total: 30,
                ..Default::default()
            },
            ..Default::default()
        };
        cfg.retrieval.budget = 5;
        cfg.reconstruction.max_memory_tokens = 3;
        let mut cmr = Cmr::new(&cfg, &tiny(), Device::Cpu);
        cmr.capture = true;
        for i in 0..6 {
            let logits = cmr.forward(&model, &tokens(10 + i, 3, 16));
            assert_eq!(logits.size(), [3, 16, 512]);
            assert!(cmr.buffer.layer_len(1) <= 20 && cmr.buffer.layer_len(2) <= 20);
            assert!(cmr.buffer.len() <= 30);
            assert_eq!(
                cmr.captured.len(),
                2 * 3,
                "two hooked layers, three sequences"
            );
            for c in &cmr.captured {
                assert!(c.retrieved.slots.len() <= 5);
                if let Some(r) = &c.reconstruction {
                    assert_eq!(r.size(), [16, 32]);
                }
            }
        }
        assert!(cmr.buffer.evictions > 0);
        let t = cmr.take_timers();
        assert!(t.scoring > 0.0 && t.buffer > 0.0 && t.retrieval > 0.0 && t.reconstruction > 0.0);
    }
}
