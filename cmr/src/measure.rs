//! The analyses. Each measurement runs after untimed warm-up passes, repeats the timed pass, and reports the
//! median with the 25th and 75th percentiles; on CUDA every timed pass ends by waiting for the device.
//!
//! | analysis | params | values |
//! |---|---|---|
//! | overhead | sequence_length, batch_size | baseline_time, full_cmr_time (+ `_p25`, `_p75`), overhead_percentage, memory_utilization, hit_rate, tokens_per_second |
//! | memory | sequence_length, batch_size | peak_memory_baseline, peak_memory_cmr (RSS on CPU, device memory in use on CUDA), buffer_bytes, buffer_capacity_bytes, buffer_entries |
//! | layer | layer | baseline_time, full_cmr_time, overhead_percentage |
//! | retrieval | strategy | full_cmr_time, retrieval_time, retrieval_accuracy, chance, hit_rate |
//! | reconstruction | method | full_cmr_time, reconstruction_time, reconstruction_fidelity |
//! | buffer | step | utilization, entries, evictions, hit_rate, step_time |
//! | components | sequence_length | scoring_time, buffer_time, retrieval_time, reconstruction_time, model_time, full_cmr_time |
//! | dataset | dataset (its name), type, text, max_length, batch_size, memory, reconstruction | retrieval_accuracy, chance, facts_stored, reconstruction_fidelity (with reconstruction), memory_utilization, evictions, hit_rate (with memory), time_per_segment, tokens_per_second, samples, facts_asked |

use crate::config::{BenchConfig, CmrConfig, DatasetKind, DatasetRun, Method, Strategy};
use crate::datasets::{self, Rng, Sample};
use crate::emit::{Emitter, quartiles};
use crate::model::{Model, sync};
use crate::retriever::unit;
use crate::reweave::Cmr;
use serde_json::json;
use std::io::Write;
use std::time::Instant;
use tch::{Device, Tensor};

#[derive(Debug, thiserror::Error)]
pub enum MeasureError {
    #[error("writing results: {0}")]
    Write(#[from] std::io::Error),
    #[error(transparent)]
    Text(#[from] datasets::TextError),
}

pub struct Bench<'a, W: Write> {
    pub cfg: &'a BenchConfig,
    pub model: Model,
    pub device: Device,
    pub out: Emitter<W>,
}

fn tokens(rng: &mut Rng, vocab: usize, batch: usize, len: usize, device: Device) -> Tensor {
    let v: Vec<i64> = (0..batch * len)
        .map(|_| rng.range(256, vocab as i64))
        .collect();
    Tensor::from_slice(&v)
        .view([batch as i64, len as i64])
        .to_device(device)
}

/// Peak resident memory of this process since the last reset (bytes), from /proc; NaN elsewhere.
fn peak_rss() -> f64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("VmHWM:"))
                .and_then(|v| v.trim().trim_end_matches("kB").trim().parse::<f64>().ok())
        })
        .map_or(f64::NAN, |kb| kb * 1024.0)
}

/// Resets the peak that [`peak_rss`] reads (Linux: writing 5 to clear_refs).
fn reset_peak_rss() {
    let _ = std::fs::write("/proc/self/clear_refs", "5");
}

/// Device memory in use on the current CUDA device (bytes), through the CUDA runtime libtorch loaded; NaN when
/// there is none. This is the caching allocator's reservation plus the context, as the driver sees it.
fn cuda_memory_used() -> f64 {
    type MemGetInfo = unsafe extern "C" fn(*mut usize, *mut usize) -> i32;
    // SAFETY: looks up a symbol of an already loaded library; the pointer is used only when it was found, with
    // the signature cudaMemGetInfo has had since CUDA 2.
    unsafe {
        let sym = libc::dlsym(libc::RTLD_DEFAULT, c"cudaMemGetInfo".as_ptr());
        if sym.is_null() {
            return f64::NAN;
        }
        let f: MemGetInfo = std::mem::transmute::<*mut libc::c_void, MemGetInfo>(sym);
        let (mut free, mut total) = (0usize, 0usize);
        if f(&mut free, &mut total) != 0 {
            return f64::NAN;
        }
        (total - free) as f64
    }
}

/// Samples `f` after warm-up: seconds per call.
fn time(device: Device, warmup: usize, repeats: usize, mut f: impl FnMut()) -> Vec<f64> {
    for _ in 0..warmup {
        f();
    }
    sync(device);
    (0..repeats)
        .map(|_| {
            let t = Instant::now();
            f();
            sync(device);
            t.elapsed().as_secs_f64()
        })
        .collect()
}

fn pct(cmr: f64, base: f64) -> f64 {
    (cmr - base) / base * 100.0
}

impl<'a, W: Write> Bench<'a, W> {
    fn memory_now(&self) -> f64 {
        match self.device {
            Device::Cuda(_) => cuda_memory_used(),
            _ => peak_rss(),
        }
    }

    /// Runs every analysis the configuration asks for, in a fixed order.
    pub fn run(&mut self) -> Result<(), MeasureError> {
        let cfg = self.cfg;
        if cfg.wants("overhead") || cfg.wants("memory") {
            self.overhead_and_memory()?;
        }
        if cfg.wants("layer") {
            self.layers()?;
        }
        if cfg.wants("retrieval") {
            self.strategies()?;
        }
        if cfg.wants("reconstruction") {
            self.methods()?;
        }
        if cfg.wants("buffer") {
            self.buffer()?;
        }
        if cfg.wants("components") {
            self.components()?;
        }
        if cfg.wants("dataset") {
            for run in cfg.datasets.runs() {
                self.dataset(&run)?;
            }
        }
        Ok(())
    }

    /// Baseline and CMR times of one input, measured in alternating order (so that drift in the machine's speed
    /// falls on both alike); CMR's memory carries over between its passes. Then one pass of each for its peak
    /// memory.
    fn pair(&self, cmr_cfg: &CmrConfig, x: &Tensor) -> (Vec<f64>, Vec<f64>, Cmr, f64, f64) {
        let r = &self.cfg.run;
        let mut cmr = Cmr::new(cmr_cfg, &self.cfg.model, self.device);
        for _ in 0..r.warmup {
            let _ = self.model.forward(x);
            let _ = cmr.forward(&self.model, x);
        }
        sync(self.device);
        let (mut base, mut with) = (Vec::new(), Vec::new());
        for i in 0..r.repeats {
            let mut one = |which: bool| {
                let t = Instant::now();
                if which {
                    let _ = cmr.forward(&self.model, x);
                } else {
                    let _ = self.model.forward(x);
                }
                sync(self.device);
                t.elapsed().as_secs_f64()
            };
            if i % 2 == 0 {
                base.push(one(false));
                with.push(one(true));
            } else {
                with.push(one(true));
                base.push(one(false));
            }
        }
        reset_peak_rss();
        let _ = self.model.forward(x);
        sync(self.device);
        let peak_base = self.memory_now();
        reset_peak_rss();
        let _ = cmr.forward(&self.model, x);
        sync(self.device);
        let peak_cmr = self.memory_now();
        (base, with, cmr, peak_base, peak_cmr)
    }

    fn overhead_and_memory(&mut self) -> Result<(), MeasureError> {
        let cfg = self.cfg;
        let mut rng = Rng::new(cfg.model.seed ^ 0x0E);
        for &len in &cfg.run.sequence_lengths {
            for &batch in &cfg.run.batch_sizes {
                let x = tokens(&mut rng, cfg.model.vocab, batch, len, self.device);
                let (base, with, cmr, peak_base, peak_cmr) = self.pair(&cfg.cmr, &x);
                let (b, b25, b75) = quartiles(&base);
                let (c, c25, c75) = quartiles(&with);
                let params = json!({"sequence_length": len, "batch_size": batch});
                if cfg.wants("overhead") {
                    self.out.result(
                        "overhead",
                        params.clone(),
                        &[
                            ("baseline_time", b),
                            ("baseline_time_p25", b25),
                            ("baseline_time_p75", b75),
                            ("full_cmr_time", c),
                            ("full_cmr_time_p25", c25),
                            ("full_cmr_time_p75", c75),
                            ("overhead_percentage", pct(c, b)),
                            ("memory_utilization", cmr.buffer.utilization()),
                            ("hit_rate", cmr.hit_rate()),
                            ("tokens_per_second_baseline", (batch * len) as f64 / b),
                            ("tokens_per_second_cmr", (batch * len) as f64 / c),
                        ],
                        &[("baseline_time", &base), ("full_cmr_time", &with)],
                    )?;
                }
                if cfg.wants("memory") {
                    self.out.result(
                        "memory",
                        params,
                        &[
                            ("peak_memory_baseline", peak_base),
                            ("peak_memory_cmr", peak_cmr),
                            ("buffer_bytes", cmr.buffer.bytes() as f64),
                            ("buffer_capacity_bytes", cmr.buffer.capacity_bytes() as f64),
                            ("buffer_entries", cmr.buffer.len() as f64),
                        ],
                        &[],
                    )?;
                }
            }
        }
        Ok(())
    }

    fn focus_input(&self, seed: u64) -> Tensor {
        let mut rng = Rng::new(self.cfg.model.seed ^ seed);
        tokens(
            &mut rng,
            self.cfg.model.vocab,
            1,
            self.cfg.run.focus_sequence_length,
            self.device,
        )
    }

    fn layers(&mut self) -> Result<(), MeasureError> {
        let x = self.focus_input(0x1A);
        for &layer in &self.cfg.cmr.hook_layers {
            let mut one = self.cfg.cmr.clone();
            one.hook_layers = vec![layer];
            let (base, with, _, _, _) = self.pair(&one, &x);
            let (b, c) = (quartiles(&base).0, quartiles(&with).0);
            self.out.result(
                "layer",
                json!({"layer": layer}),
                &[
                    ("baseline_time", b),
                    ("full_cmr_time", c),
                    ("overhead_percentage", pct(c, b)),
                ],
                &[("full_cmr_time", &with)],
            )?;
        }
        Ok(())
    }

    /// Times CMR under `cmr_cfg` on the focus input and returns (median pass time, component timers per pass).
    fn timed_components(
        &self,
        cmr_cfg: &CmrConfig,
        x: &Tensor,
    ) -> (Vec<f64>, Vec<crate::reweave::Timers>) {
        let r = &self.cfg.run;
        let mut cmr = Cmr::new(cmr_cfg, &self.cfg.model, self.device);
        cmr.sync_timing = true;
        let mut timers = Vec::new();
        let times = time(self.device, r.warmup, r.repeats, || {
            cmr.take_timers();
            let _ = cmr.forward(&self.model, x);
            timers.push(cmr.take_timers());
        });
        let keep = timers.len().saturating_sub(r.repeats);
        (times, timers.split_off(keep))
    }

    fn strategies(&mut self) -> Result<(), MeasureError> {
        let x = self.focus_input(0x2B);
        let samples = datasets::generate(
            DatasetKind::QuestionAnswering,
            self.cfg.datasets.samples,
            self.cfg.model.vocab,
            self.cfg.datasets.seed,
        );
        for strategy in Strategy::ALL {
            let mut c = self.cfg.cmr.clone();
            c.retrieval.strategy = strategy;
            let (times, timers) = self.timed_components(&c, &x);
            let retrieval: Vec<f64> = timers.iter().map(|t| t.retrieval).collect();
            let score = evaluate(&self.model, &c, &samples, self.device);
            self.out.result(
                "retrieval",
                json!({"strategy": strategy.as_str()}),
                &[
                    ("full_cmr_time", quartiles(&times).0),
                    ("retrieval_time", quartiles(&retrieval).0),
                    ("retrieval_accuracy", score.accuracy),
                    ("chance", score.chance),
                    ("hit_rate", score.hit_rate),
                ],
                &[("retrieval_time", &retrieval)],
            )?;
        }
        Ok(())
    }

    fn methods(&mut self) -> Result<(), MeasureError> {
        let x = self.focus_input(0x3C);
        let samples = datasets::generate(
            DatasetKind::QuestionAnswering,
            self.cfg.datasets.samples,
            self.cfg.model.vocab,
            self.cfg.datasets.seed,
        );
        for method in Method::ALL {
            let mut c = self.cfg.cmr.clone();
            c.reconstruction.method = method;
            let (times, timers) = self.timed_components(&c, &x);
            let recon: Vec<f64> = timers.iter().map(|t| t.reconstruction).collect();
            let score = evaluate(&self.model, &c, &samples, self.device);
            self.out.result(
                "reconstruction",
                json!({"method": method.as_str()}),
                &[
                    ("full_cmr_time", quartiles(&times).0),
                    ("reconstruction_time", quartiles(&recon).0),
                    ("reconstruction_fidelity", score.fidelity),
                ],
                &[("reconstruction_time", &recon)],
            )?;
        }
        Ok(())
    }

    fn buffer(&mut self) -> Result<(), MeasureError> {
        let mut cmr = Cmr::new(&self.cfg.cmr, &self.cfg.model, self.device);
        let mut rng = Rng::new(self.cfg.model.seed ^ 0x4D);
        for step in 0..self.cfg.run.buffer_steps {
            let x = tokens(
                &mut rng,
                self.cfg.model.vocab,
                1,
                self.cfg.run.focus_sequence_length,
                self.device,
            );
            let t = Instant::now();
            let _ = cmr.forward(&self.model, &x);
            sync(self.device);
            let secs = t.elapsed().as_secs_f64();
            self.out.result(
                "buffer",
                json!({"step": step}),
                &[
                    ("utilization", cmr.buffer.utilization()),
                    ("entries", cmr.buffer.len() as f64),
                    ("evictions", cmr.buffer.evictions as f64),
                    ("hit_rate", cmr.hit_rate()),
                    ("step_time", secs),
                ],
                &[],
            )?;
        }
        Ok(())
    }

    fn components(&mut self) -> Result<(), MeasureError> {
        let mut rng = Rng::new(self.cfg.model.seed ^ 0x5E);
        for &len in &self.cfg.run.sequence_lengths {
            let x = tokens(&mut rng, self.cfg.model.vocab, 1, len, self.device);
            let (times, timers) = self.timed_components(&self.cfg.cmr, &x);
            let pick = |f: fn(&crate::reweave::Timers) -> f64| -> Vec<f64> {
                timers.iter().map(f).collect()
            };
            let (scoring, buffer, retrieval, recon) = (
                pick(|t| t.scoring),
                pick(|t| t.buffer),
                pick(|t| t.retrieval),
                pick(|t| t.reconstruction),
            );
            let model: Vec<f64> = times
                .iter()
                .zip(&timers)
                .map(|(total, t)| total - t.total())
                .collect();
            self.out.result(
                "components",
                json!({"sequence_length": len}),
                &[
                    ("scoring_time", quartiles(&scoring).0),
                    ("buffer_time", quartiles(&buffer).0),
                    ("retrieval_time", quartiles(&retrieval).0),
                    ("reconstruction_time", quartiles(&recon).0),
                    ("model_time", quartiles(&model).0),
                    ("full_cmr_time", quartiles(&times).0),
                ],
                &[
                    ("scoring_time", &scoring),
                    ("buffer_time", &buffer),
                    ("retrieval_time", &retrieval),
                    ("reconstruction_time", &recon),
                ],
            )?;
        }
        Ok(())
    }

    fn dataset(&mut self, run: &DatasetRun) -> Result<(), MeasureError> {
        let vocab = self.cfg.model.vocab;
        let words = datasets::words(&run.text, vocab)?;
        let samples = datasets::samples(
            run.kind,
            run.segment_len(),
            run.samples,
            vocab,
            run.seed,
            &words,
        );
        let how = Evaluation {
            batch_size: run.batch_size,
            memory: run.memory,
            reconstruction: run.reconstruction,
        };
        let s = evaluate_with(&self.model, &self.cfg.cmr, &samples, self.device, &how);
        let text = match run.text.as_str() {
            t @ ("corpus" | "synthetic") => t,
            _ => "files",
        };
        let mut values = vec![
            ("time_per_segment", s.time_per_segment),
            ("tokens_per_second", s.tokens_per_second),
            ("samples", samples.len() as f64),
            ("facts_asked", s.asked),
        ];
        if run.memory {
            values.extend([
                ("retrieval_accuracy", s.accuracy),
                ("chance", s.chance),
                ("facts_stored", s.stored),
                ("memory_utilization", s.utilization),
                ("evictions", s.evictions),
                ("hit_rate", s.hit_rate),
            ]);
            if run.reconstruction {
                values.push(("reconstruction_fidelity", s.fidelity));
            }
        }
        self.out.result(
            "dataset",
            json!({
                "dataset": run.name, "type": run.kind.as_str(), "text": text,
                "max_length": run.max_length, "batch_size": run.batch_size,
                "memory": run.memory, "reconstruction": run.reconstruction,
            }),
            &values,
            &[],
        )?;
        Ok(())
    }
}

/// How a dataset test runs.
#[derive(Clone, Debug, PartialEq)]
pub struct Evaluation {
    /// Samples side by side in one forward pass, each with its own memory.
    pub batch_size: usize,
    /// CMR on; off: the plain model (only the timing means anything).
    pub memory: bool,
    /// Reweave the retrieved memories; off: store and retrieve only.
    pub reconstruction: bool,
}

impl Default for Evaluation {
    fn default() -> Self {
        Evaluation {
            batch_size: 1,
            memory: true,
            reconstruction: true,
        }
    }
}

/// How CMR did on a dataset.
#[derive(Clone, Debug, Default, PartialEq)]
pub struct Score {
    /// Share of asked facts for which, while the last segment was read, some hooked layer retrieved a state
    /// stored from the fact's span.
    pub accuracy: f64,
    /// What retrieving the same number of memories at random would score.
    pub chance: f64,
    /// Share of asked facts with some state of their span in memory when asked.
    pub stored: f64,
    /// Mean cosine similarity, at the position that asks, of the reconstruction and the retrieved fact state.
    pub fidelity: f64,
    pub utilization: f64,
    pub evictions: f64,
    pub hit_rate: f64,
    pub time_per_segment: f64,
    pub tokens_per_second: f64,
    pub asked: f64,
}

/// Chance that `draws` memories drawn at random from `pool` include at least one of `good`.
fn chance_any(pool: usize, good: usize, draws: usize) -> f64 {
    if good == 0 || pool == 0 {
        return 0.0;
    }
    if draws + good > pool {
        return 1.0;
    }
    // 1 - C(pool - good, draws) / C(pool, draws)
    let mut miss = 1.0;
    for i in 0..draws {
        miss *= (pool - good - i) as f64 / (pool - i) as f64;
    }
    1.0 - miss
}

/// Runs `samples` through `model` with CMR, one segment per pass, memory reset per sample.
pub fn evaluate(model: &Model, cmr_cfg: &CmrConfig, samples: &[Sample], device: Device) -> Score {
    evaluate_with(model, cmr_cfg, samples, device, &Evaluation::default())
}

/// Runs `samples` through `model`, `how.batch_size` samples per pass (their segments side by side, each sample
/// with its own memory, reset per batch), one segment per pass.
pub fn evaluate_with(
    model: &Model,
    cmr_cfg: &CmrConfig,
    samples: &[Sample],
    device: Device,
    how: &Evaluation,
) -> Score {
    let mut cmr = Cmr::new(cmr_cfg, &model.cfg, device);
    cmr.reconstruct = how.reconstruction;
    let (mut asked, mut found, mut stored, mut chance) = (0.0, 0.0, 0.0, 0.0);
    let (mut fidelity_sum, mut fidelity_n) = (0.0, 0.0);
    let (mut utilization, mut evictions, mut requests, mut hits) = (0.0, 0.0, 0u64, 0u64);
    let (mut segments, mut tokens, mut secs, mut batches) = (0usize, 0usize, 0.0, 0usize);
    for batch in samples.chunks(how.batch_size.max(1)) {
        cmr.reset();
        batches += 1;
        let count = batch[0].segments.len();
        for i in 0..count {
            cmr.capture = i == count - 1;
            let flat: Vec<i64> = batch
                .iter()
                .flat_map(|s| s.segments[i].iter().copied())
                .collect();
            let x = Tensor::from_slice(&flat)
                .view([batch.len() as i64, -1])
                .to_device(device);
            let t = Instant::now();
            let _ = if how.memory {
                cmr.forward(model, &x)
            } else {
                model.forward(&x)
            };
            sync(device);
            secs += t.elapsed().as_secs_f64();
            segments += batch.len();
            tokens += flat.len();
        }
        for (row, sample) in batch.iter().enumerate() {
            for fact in sample.asked() {
                asked += 1.0;
                if !how.memory {
                    continue;
                }
                let in_span = |&(step, pos): &(u64, usize)| {
                    step == fact.segment as u64 && fact.span.contains(&pos)
                };
                let mut miss_all = 1.0;
                let (mut hit, mut any_stored) = (false, false);
                for c in cmr.captured.iter().filter(|c| c.row == row) {
                    let r = &c.retrieved;
                    let good = r.pool.iter().filter(|p| in_span(p)).count();
                    any_stored |= good > 0;
                    miss_all *= 1.0 - chance_any(r.pool.len(), good, r.slots.len());
                    let got: Vec<usize> = (0..r.slots.len())
                        .filter(|&j| in_span(&(r.steps[j], r.positions[j])))
                        .collect();
                    hit |= !got.is_empty();
                    // Fidelity at the asking position, against the first fact state it was reconstructed from.
                    if let (Some(at), Some(recon), Some(mem)) =
                        (fact.asked_at, &c.reconstruction, &c.memories)
                        && let Some(&j) = got.iter().find(|&&j| (j as i64) < mem.size()[0])
                    {
                        let a = unit(&recon.get(at as i64).unsqueeze(0));
                        let b = unit(&mem.get(j as i64).unsqueeze(0));
                        fidelity_sum += a.matmul(&b.transpose(0, 1)).double_value(&[0, 0]);
                        fidelity_n += 1.0;
                    }
                }
                found += f64::from(u8::from(hit));
                stored += f64::from(u8::from(any_stored));
                chance += 1.0 - miss_all;
            }
        }
        utilization += cmr.buffer.utilization();
        evictions += cmr.buffer.evictions as f64;
        requests += cmr.requests;
        hits += cmr.hits;
    }
    let n = batches.max(1) as f64;
    let per = |x: f64, d: f64| if d > 0.0 { x / d } else { f64::NAN };
    let memory = |x: f64| if how.memory { x } else { f64::NAN };
    Score {
        accuracy: memory(per(found, asked)),
        chance: memory(per(chance, asked)),
        stored: memory(per(stored, asked)),
        fidelity: per(fidelity_sum, fidelity_n),
        utilization: memory(utilization / n),
        evictions: memory(evictions / n),
        hit_rate: per(hits as f64, requests as f64),
        time_per_segment: per(secs, segments as f64),
        tokens_per_second: per(tokens as f64, secs),
        asked,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::ModelConfig;

    #[test]
    fn chance_of_a_random_draw() {
        assert_eq!(chance_any(10, 0, 3), 0.0);
        assert_eq!(chance_any(10, 8, 3), 1.0);
        assert!((chance_any(10, 1, 1) - 0.1).abs() < 1e-12);
        assert!((chance_any(4, 1, 2) - 0.5).abs() < 1e-12);
    }

    /// A model small enough for tests: `layers` layers of 64.
    fn small_model(layers: usize) -> ModelConfig {
        ModelConfig {
            layers,
            d_model: 64,
            heads: 4,
            vocab: 4096,
            max_seq_len: 256,
            mlp_ratio: 2,
            seed: 0,
            weights: None,
        }
    }

    #[test]
    fn planted_facts_are_retrieved_well_above_chance() {
        tch::set_num_threads(1);
        let cfg = small_model(4);
        let model = Model::new(&cfg, Device::Cpu).unwrap();
        let cmr = CmrConfig::default();
        for kind in DatasetKind::ALL {
            let samples = datasets::generate(kind, 6, cfg.vocab, 1);
            let s = evaluate(&model, &cmr, &samples, Device::Cpu);
            eprintln!("{kind:?}: {s:?}");
            assert!(s.accuracy >= 3.0 * s.chance, "{kind:?}: {s:?}");
        }
    }

    #[test]
    fn batches_text_and_the_toggles() {
        tch::set_num_threads(1);
        let cfg = small_model(3);
        let model = Model::new(&cfg, Device::Cpu).unwrap();
        let cmr = CmrConfig::default();
        let words = datasets::words("synthetic", cfg.vocab).unwrap();
        let samples =
            datasets::samples(DatasetKind::QuestionAnswering, 48, 6, cfg.vocab, 1, &words);
        // Side by side in a batch, each sample keeps its own memory: the same facts are found as one by one.
        let one = evaluate(&model, &cmr, &samples, Device::Cpu);
        let batched = Evaluation {
            batch_size: 4,
            ..Default::default()
        };
        let four = evaluate_with(&model, &cmr, &samples, Device::Cpu, &batched);
        assert_eq!((one.asked, four.asked), (6.0, 6.0));
        assert_eq!(one.accuracy, four.accuracy, "{one:?} {four:?}");
        assert_eq!(one.stored, four.stored);
        // Real text: the facts are kept and found, though the question now shares words with the context.
        let corpus = datasets::words("corpus", cfg.vocab).unwrap();
        for kind in DatasetKind::ALL {
            let samples = datasets::samples(kind, kind.shape().1.min(64), 4, cfg.vocab, 2, &corpus);
            let s = evaluate_with(&model, &cmr, &samples, Device::Cpu, &batched);
            eprintln!("text {kind:?}: {s:?}");
            // What the scorer keeps and the retriever finds on text is the measurement; here only that it is one.
            assert!((0.0..=1.0).contains(&s.accuracy), "{kind:?}: {s:?}");
            assert!(
                (0.0..=1.0).contains(&s.stored) && s.asked >= 4.0,
                "{kind:?}: {s:?}"
            );
            assert!(s.tokens_per_second > 0.0 && s.utilization > 0.0);
        }
        // Without reconstruction: found, but nothing reweaved; without memory: only the timing.
        let no_recon = Evaluation {
            reconstruction: false,
            ..batched.clone()
        };
        let s = evaluate_with(&model, &cmr, &samples, Device::Cpu, &no_recon);
        assert_eq!(s.accuracy, four.accuracy);
        assert!(s.fidelity.is_nan());
        let plain = Evaluation {
            memory: false,
            ..batched
        };
        let s = evaluate_with(&model, &cmr, &samples, Device::Cpu, &plain);
        assert!(s.accuracy.is_nan() && s.utilization.is_nan() && s.hit_rate.is_nan());
        assert!(s.time_per_segment > 0.0 && s.asked == 6.0);
    }
}
